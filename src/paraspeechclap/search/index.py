"""An on-disk embedding index of audio files: build, update incrementally, load, search.

Layout of an index directory::

    INDEX/
      meta.json                    format, model id + checksum, dim, count, root, the data files, [ann]
      embeddings-<token>.npy       (N, D) float32, L2-normalised, row i <-> line i of items
      items-<token>.jsonl          one object per row: path (relative to root), hash, size, [caption]
      ann-<token>.faiss            optional approximate (FAISS IVF/HNSW) index over the embeddings

``meta.json`` is the commit point: it is replaced atomically *after* the data files it names are
complete, so a reader always sees a consistent set and an interrupted build leaves the previous
index intact (stale data files are removed at the next commit).

The ANN file (:mod:`.ann`) is derived data: a commit of new embeddings writes a ``meta.json`` without
it (so it is dropped), and :func:`update_ann` then builds a new one from the committed embeddings and
commits it into ``meta.json["ann"]`` with the identity of those embeddings; a file whose identity no
longer matches is refused at search time.

Updates are incremental: a file is re-embedded only when no row of the existing index has the same
content hash (BLAKE2b-128 of the bytes, so a touched but unchanged file is reused and an edited file
with the same size and mtime is not) *and* the same model checksum. Long builds commit every
``commit_every_s`` seconds, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..atomic import atomic_path, atomic_write_json
from ..errors import InputError
from .ann import (
    AnnIndex,
    build_ann,
    check_choice,
    choose_kind,
    embeddings_identity,
    load_ann,
    stale_reason,
    write_ann,
)
from .backends import Searcher, backend_class, resolve_backend

logger = logging.getLogger(__name__)

FORMAT = "paraspeechclap-index"
VERSION = 1
#: File extensions picked up when indexing a folder (what soundfile/libsndfile decodes).
AUDIO_EXTENSIONS = frozenset({".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".au", ".w64", ".caf"})
_HASH_CHUNK = 1 << 20


class AudioEmbedder(Protocol):
    """What the index needs from a model (:class:`paraspeechclap.model.ParaSpeechCLAP` has it)."""

    model_id: str
    checksum: str

    def embed_audio_report(self, items: Sequence[str], sample_rate: int | None = ..., batch_size: int = ...,
                           progress: bool = ..., skip_bad: bool = ...) -> Any: ...

    def embed_text(self, captions: Sequence[str]) -> np.ndarray: ...


@dataclass
class IndexItem:
    """One audio file to index.

    Attributes:
        path: the file.
        extra: metadata stored with the row (e.g. ``{"caption": ...}`` from a manifest).
    """

    path: Path
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class EmbeddingIndex:
    """A loaded index: ``embeddings[i]`` is the embedding of ``items[i]``.

    Attributes:
        directory: the index directory.
        embeddings: ``(N, D)`` float32, L2-normalised (a read-only memory map when loaded with mmap).
        items: N row dicts (``path`` relative to ``root`` unless absolute, ``hash``, ``size``, extras).
        meta: the parsed ``meta.json``.
    """

    directory: Path
    embeddings: np.ndarray
    items: list[dict[str, Any]]
    meta: dict[str, Any]
    _searchers: dict[tuple[Any, ...], Searcher] = field(default_factory=dict, init=False, repr=False)
    _ann: AnnIndex | None = field(default=None, init=False, repr=False)

    @property
    def root(self) -> Path:
        return Path(self.meta["root"])

    def path_of(self, i: int) -> Path:
        """Absolute path of row ``i``."""
        return self.root / self.items[i]["path"]

    @property
    def has_ann(self) -> bool:
        """Whether ``meta.json`` names an ANN index (it is checked only when loaded: :meth:`ann`)."""
        return bool(self.meta.get("ann"))

    def identity(self) -> dict[str, Any]:
        """What ties an ANN index to these embeddings (:func:`.ann.embeddings_identity`)."""
        return embeddings_identity(self.embeddings, self.meta.get("embeddings_file", ""))

    def ann(self) -> AnnIndex:
        """The persisted ANN index, loaded (memory-mapped) on first use.

        Raises:
            InputError: none, FAISS missing, or stale (built from other embeddings than these).
        """
        if self._ann is None:
            resolve_backend("ann", self.has_ann, str(self.directory))
            self._ann = load_ann(self.directory, self.meta["ann"], self.identity())
        return self._ann

    def with_embeddings(self, embeddings: np.ndarray) -> EmbeddingIndex:
        """A copy over other ``(N, D)`` embeddings for the same items (e.g. centred ones), without the
        ANN index: that was built from the stored vectors and cannot serve these."""
        meta = {k: v for k, v in self.meta.items() if k != "ann"}
        return EmbeddingIndex(self.directory, embeddings, self.items, meta)

    def resolve_backend(self, backend: str) -> str:
        """``auto`` -> ``ann`` or ``numpy``; checks an explicit name (see :func:`.backends.resolve_backend`)."""
        return resolve_backend(backend, self.has_ann, str(self.directory))

    def search(self, queries: np.ndarray, top_k: int = 10, backend: str = "auto", nprobe: int | None = None,
               ef_search: int | None = None) -> list[list[tuple[int, float]]]:
        """Top-k rows for each query embedding.

        Args:
            queries: ``(Q, D)`` or ``(D,)`` L2-normalised query embeddings.
            top_k: results per query.
            backend: ``"auto"`` (default: ``"ann"`` when the index has an ANN index and FAISS is
                installed, else ``"numpy"``), ``"numpy"`` (exact), ``"faiss"`` (exact, optional extra)
                or ``"ann"`` (approximate, needs an index built with ``--ann``). A searcher is built
                on the first call and reused by later ones.
            nprobe, ef_search: override the ANN index's stored search-time knob (IVF / HNSW).

        Returns:
            Per query, ``(row, score)`` pairs best first (ties: lower row first with numpy). ``ann``
            may return fewer than ``top_k`` pairs when its search visits fewer rows.
        """
        q = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        if len(self.items) == 0:
            return [[] for _ in range(q.shape[0])]
        if q.shape[1] != self.embeddings.shape[1]:
            raise InputError(f"query dimension {q.shape[1]} does not match the index ({self.embeddings.shape[1]})")
        if top_k < 1:
            raise InputError(f"--top-k must be at least 1, got {top_k}")
        name = self.resolve_backend(backend)
        key = (name, nprobe, ef_search)
        if key not in self._searchers:
            self._searchers[key] = backend_class(name).from_index(self, nprobe=nprobe, ef_search=ef_search)
        idx, scores = self._searchers[key].search(q, top_k)
        return [[(int(i), float(s)) for i, s in zip(ri, rs) if i >= 0] for ri, rs in zip(idx, scores)]


def file_hash(path: str | os.PathLike) -> str:
    """BLAKE2b-128 hex digest of a file's bytes (streamed in 1 MiB chunks)."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def list_audio_files(directory: str | os.PathLike) -> list[Path]:
    """Audio files under ``directory`` (recursive, by extension, sorted; hidden entries skipped)."""
    root = Path(directory)
    if not root.is_dir():
        raise InputError(f"{root}: not a directory")
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found += [Path(dirpath) / f for f in filenames
                  if not f.startswith(".") and Path(f).suffix.lower() in AUDIO_EXTENSIONS]
    return sorted(found)


def _relative(path: Path, root: Path) -> str:
    """``path`` relative to the absolute ``root`` (posix), or absolute when outside it.

    ``abspath`` rather than ``resolve``: no symlink lookups per file, and a symlinked folder keeps
    the names the user sees.
    """
    absolute = os.path.abspath(path)
    rel = os.path.relpath(absolute, root)
    outside = rel == os.pardir or rel.startswith(os.pardir + os.sep)
    return absolute if outside else Path(rel).as_posix()


def load_index(directory: str | os.PathLike, mmap: bool = True) -> EmbeddingIndex:
    """Load an index written by :func:`build_index`.

    Args:
        directory: the index directory.
        mmap: memory-map the embeddings instead of reading them (read-only).

    Raises:
        InputError: not an index, an unsupported version, or inconsistent files.
    """
    directory = Path(directory)
    meta_path = directory / "meta.json"
    if not meta_path.is_file():
        raise InputError(f"{directory}: not an index (no meta.json); build one with 'paraspeechclap index'")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{meta_path}: invalid JSON ({exc})") from None
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise InputError(f"{meta_path}: not a version-{VERSION} {FORMAT} (format={meta.get('format')!r})")
    emb = np.load(directory / meta["embeddings_file"], mmap_mode="r" if mmap else None)
    with open(directory / meta["items_file"], encoding="utf-8") as f:
        items = [json.loads(line) for line in f if line.strip()]
    if emb.ndim != 2 or emb.shape[0] != len(items) or emb.shape[0] != meta["count"]:
        raise InputError(f"{directory}: embeddings {emb.shape} do not match {len(items)} items / count {meta['count']}")
    return EmbeddingIndex(directory, emb, items, meta)


def _token() -> str:
    """A fresh name part for data files: never reused, so a reader's open file is never rewritten."""
    return f"{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(4)}"


def _prune(directory: Path, meta: Mapping[str, Any]) -> None:
    """Remove data files (embeddings, items, ANN) that ``meta`` does not name."""
    keep = {meta["embeddings_file"], meta["items_file"], (meta.get("ann") or {}).get("file")}
    for pattern in ("embeddings-*.npy", "items-*.jsonl", "ann-*.faiss"):
        for old in directory.glob(pattern):
            if old.name not in keep:
                old.unlink(missing_ok=True)


def _write_index(directory: Path, emb: np.ndarray, rows: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    """Write the data files under fresh names, then commit by replacing meta.json; prune stale files.

    ``meta`` has no ``ann`` entry, so new embeddings drop the ANN index built from the old ones.
    """
    directory.mkdir(parents=True, exist_ok=True)
    token = _token()
    meta = dict(meta, embeddings_file=f"embeddings-{token}.npy", items_file=f"items-{token}.jsonl",
                count=len(rows), dim=int(emb.shape[1]), updated=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    with atomic_path(directory / meta["embeddings_file"]) as tmp, open(tmp, "wb") as f:
        np.save(f, np.ascontiguousarray(emb, dtype=np.float32))
    with atomic_path(directory / meta["items_file"]) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    atomic_write_json(directory / "meta.json", meta)
    _prune(directory, meta)


@dataclass
class BuildStats:
    """What :func:`build_index` did. Times in seconds.

    ``ann`` is the kind of ANN index the index has afterwards (None: none), ``ann_built`` whether
    this run built it (False: an up-to-date one was kept), ``ann_s`` the time that took.
    """

    total: int = 0
    reused: int = 0
    embedded: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    written: bool = False
    hash_s: float = 0.0
    embed_s: float = 0.0
    write_s: float = 0.0
    ann: str | None = None
    ann_built: bool = False
    ann_s: float = 0.0


@dataclass
class _Scan:
    """Per item: path relative to the root, content hash (None: unreadable) and size in bytes."""

    rel: list[str]
    hashes: list[str | None]
    sizes: list[int]


def _scan(items: Sequence[IndexItem], root: Path, skip_bad: bool, stats: BuildStats, progress: bool) -> _Scan:
    from tqdm.auto import tqdm

    from ..errors import AudioError

    scan = _Scan([], [], [])
    for it in tqdm(items, desc="hashing", unit="file", disable=not progress, leave=False):
        rel = _relative(it.path, root)
        try:
            size, digest = it.path.stat().st_size, file_hash(it.path)
        except OSError as exc:
            message = f"{it.path}: cannot read ({exc.strerror or exc})"
            if not skip_bad:
                raise AudioError(message) from None
            stats.skipped.append((rel, message))
            size, digest = 0, None
        scan.rel.append(rel)
        scan.hashes.append(digest)
        scan.sizes.append(size)
    return scan


def _existing(directory: Path, checksum: str) -> tuple[dict[str, np.ndarray], EmbeddingIndex | None]:
    """Content hash -> embedding from an existing index built by the same model, and that index."""
    if not (directory / "meta.json").is_file():
        if directory.is_dir() and any(directory.iterdir()):
            raise InputError(f"{directory}: exists, is not empty and is not an index; choose another --out")
        return {}, None
    old = load_index(directory, mmap=False)  # in memory: the old data files are deleted at the next commit
    if not checksum or old.meta["model"].get("checksum") != checksum:
        logger.warning("%s was built with another model (or an unidentified one): re-embedding everything", directory)
        return {}, old
    return {row["hash"]: old.embeddings[i] for i, row in enumerate(old.items)}, old


def _rows(items: Sequence[IndexItem], scan: _Scan, known: Mapping[str, np.ndarray]) -> list[dict[str, Any]]:
    """Rows (in item order) of every item whose embedding is known."""
    return [{**it.extra, "path": rel, "hash": h, "size": size}
            for it, rel, h, size in zip(items, scan.rel, scan.hashes, scan.sizes) if h is not None and h in known]


def _unchanged(old: EmbeddingIndex | None, rows: list[dict[str, Any]], meta: Mapping[str, Any]) -> bool:
    keys = ("root", "source", "model", "skipped")
    return old is not None and old.items == rows and all(old.meta.get(k) == meta[k] for k in keys)


class _Committer:
    """Writes the index from the rows known so far; skips the write when nothing changed."""

    def __init__(self, directory: Path, items: Sequence[IndexItem], scan: _Scan, known: dict[str, np.ndarray],
                 old: EmbeddingIndex | None, meta: dict[str, Any], stats: BuildStats):
        self.directory, self.items, self.scan, self.known = directory, items, scan, known
        self.old, self.meta, self.stats = old, meta, stats

    def __call__(self) -> None:
        t = time.perf_counter()
        rows = _rows(self.items, self.scan, self.known)
        self.meta["skipped"] = [{"path": p, "error": e} for p, e in self.stats.skipped]
        if _unchanged(self.old, rows, self.meta):
            return
        dim = next(iter(self.known.values())).shape[0] if self.known else 0
        emb = np.stack([self.known[r["hash"]] for r in rows]) if rows else np.zeros((0, dim), np.float32)
        _write_index(self.directory, emb, rows, self.meta)
        self.old = None  # the next commit compares against nothing: always write
        self.stats.written = True
        self.stats.write_s += time.perf_counter() - t


def build_index(
    model: AudioEmbedder,
    items: Sequence[IndexItem],
    directory: str | os.PathLike,
    root: str | os.PathLike,
    *,
    skip_bad: bool = False,
    batch_size: int = 16,
    progress: bool = False,
    commit_every_s: float = 60.0,
    block_size: int | None = None,
    source: Mapping[str, Any] | None = None,
    model_spec: Mapping[str, Any] | None = None,
    ann: str = "auto",
) -> BuildStats:
    """Create or update the index at ``directory`` so that it holds exactly ``items``.

    Rows of files whose content hash is already in the index (same model checksum) are reused; the
    rest are embedded in blocks, with a commit at least every ``commit_every_s`` seconds. Nothing is
    written when the index already holds exactly these files.

    Args:
        model: embeds audio (``embed_audio_report``) and carries ``model_id`` and ``checksum``.
        items: the files, in the row order wanted.
        directory: the index directory (created).
        root: directory that stored paths are relative to.
        skip_bad: skip (and list in ``meta.json``) files that cannot be read or embedded instead of
            stopping at the first one.
        batch_size: audio windows per forward pass.
        progress: show progress bars.
        commit_every_s: seconds between intermediate commits (checked after each block).
        block_size: files per ``embed_audio_report`` call (default ``max(64, 8 * batch_size)``).
        source: description of the input stored in ``meta.json`` (e.g. the manifest path).
        model_spec: how to load the model again (``load_model`` arguments), stored in ``meta.json``
            so that ``search`` can default to the same model.
        ann: the approximate index to keep beside the embeddings (:func:`update_ann`): ``auto``
            (none below 50,000 rows, else IVF), ``none``, ``ivf`` or ``hnsw``. Checked before
            anything is embedded (an explicit kind needs FAISS).

    Raises:
        AudioError: a file cannot be read or embedded and ``skip_bad`` is False (rows embedded so
            far are committed first, so a re-run resumes).
    """
    from tqdm.auto import tqdm

    check_choice(ann)
    directory, root = Path(directory), Path(os.path.abspath(root))
    stats = BuildStats(total=len(items))
    t0 = time.perf_counter()
    scan = _scan(items, root, skip_bad, stats, progress)
    stats.hash_s = time.perf_counter() - t0
    known, old = _existing(directory, model.checksum)
    stats.reused = sum(1 for h in scan.hashes if h is not None and h in known)
    first: dict[str, int] = {}
    for i, h in enumerate(scan.hashes):
        if h is not None and h not in known:
            first.setdefault(h, i)  # identical files are embedded once
    todo = list(first.items())
    meta = {"format": FORMAT, "version": VERSION, "root": str(root), "source": dict(source or {}),
            "model": {"id": model.model_id, "checksum": model.checksum, "load": dict(model_spec or {})},
            "hash": "blake2b-128", "skipped": []}
    commit = _Committer(directory, items, scan, known, old, meta, stats)
    block = block_size or max(64, 8 * batch_size)
    bar = tqdm(total=len(todo), desc="embedding", unit="file", disable=not progress, leave=False)
    last_commit = time.perf_counter()
    try:
        for s in range(0, len(todo), block):
            chunk = todo[s:s + block]
            t = time.perf_counter()
            res = model.embed_audio_report([str(items[i].path) for _, i in chunk], batch_size=batch_size,
                                           progress=False, skip_bad=skip_bad)
            stats.embed_s += time.perf_counter() - t
            for row, k in zip(res.embeddings, res.indices):
                known[chunk[k][0]] = np.asarray(row, dtype=np.float32)
            stats.embedded += len(res.indices)
            stats.skipped += [(scan.rel[chunk[k][1]], msg) for k, msg in res.errors]
            bar.update(len(chunk))
            if time.perf_counter() - last_commit > commit_every_s:
                commit()
                last_commit = time.perf_counter()
    finally:
        bar.close()
        commit()  # also on error: keep what was embedded so a re-run resumes
    stats.ann, stats.ann_built, stats.ann_s = update_ann(directory, ann)
    return stats


def update_ann(directory: str | os.PathLike, ann: str = "auto") -> tuple[str | None, bool, float]:
    """Make the ANN index of the index at ``directory`` what ``ann`` asks for, from its committed embeddings.

    ``ann``: ``auto`` (none below :data:`.ann.AUTO_MIN_ROWS` rows, else ``ivf``), ``none`` (an existing
    ANN index is removed), ``ivf`` or ``hnsw``. An existing ANN index of the wanted kind that was
    built from exactly these embeddings is kept; any other is replaced. The new file is written
    atomically, then committed by rewriting ``meta.json``.

    Returns:
        ``(kind or None, built by this call, seconds spent building)``.
    """
    directory = Path(directory)
    index = load_index(directory, mmap=True)
    kind = choose_kind(ann, len(index.items))
    old = index.meta.get("ann")
    if kind is None:
        if old:
            _commit_meta(directory, {k: v for k, v in index.meta.items() if k != "ann"})
        return None, False, 0.0
    identity = index.identity()
    if old and old["kind"] == kind and stale_reason(old, identity) is None and (directory / old["file"]).is_file():
        return kind, False, 0.0
    t = time.perf_counter()
    built = build_ann(index.embeddings, kind)
    seconds = time.perf_counter() - t
    entry = write_ann(directory, built, identity, _token(), seconds)
    _commit_meta(directory, dict(index.meta, ann=entry))
    logger.info("%s: built a %s ANN index over %d rows in %.1f s", directory, kind, len(index.items), seconds)
    return kind, True, seconds


def _commit_meta(directory: Path, meta: dict[str, Any]) -> None:
    atomic_write_json(directory / "meta.json", meta)
    _prune(directory, meta)
