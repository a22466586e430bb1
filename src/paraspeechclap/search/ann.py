"""Approximate nearest-neighbour (ANN) structures over an index's embeddings, with FAISS.

An index directory may hold one ANN file beside its exact embeddings (see :mod:`.index`)::

    INDEX/
      ann-<token>.faiss     a FAISS IndexIVFFlat or IndexHNSWFlat over the rows of embeddings-*.npy

Two kinds, registered by name in :data:`ANN_KINDS`:

* ``"ivf"``: ``IndexIVFFlat``, inner product. Spherical k-means puts the rows into ``nlist ~ 4 sqrt(N)``
  lists; a query scans the ``nprobe`` lists whose centroids are nearest. Cheap to build (one k-means
  on a sample), the default of ``auto``.
* ``"hnsw"``: ``IndexHNSWFlat``, inner product. A navigable graph; a query walks it with a beam of
  ``ef_search`` candidates. Faster per query than IVF in the benchmark, but about 7x slower to build
  and a larger file.

Both store the vectors themselves ("Flat"), so the scores they return are the exact inner products
of the rows they find: only *which* rows are found is approximate (recall), never their scores.

The ANN file is tied to the embeddings it was built from by an identity (the embeddings file's name,
``N``, ``D`` and a fingerprint of sampled rows) stored in ``meta.json``; :func:`load_ann` refuses a
file whose identity does not match the embeddings it is asked to serve. FAISS is imported lazily: it
is an optional extra (``pip install 'paraspeechclap[faiss]'``).
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_path
from ..errors import InputError

logger = logging.getLogger(__name__)

#: ``index --ann`` choices: ``auto`` picks by size (:func:`choose_kind`), ``none`` builds nothing.
ANN_CHOICES = ("auto", "none", "ivf", "hnsw")
#: ``auto`` builds no ANN below this many rows: exact numpy search of 50k x 768 takes ~5 ms a query,
#: and an IVF index of so few rows gains little while doubling the index on disk.
AUTO_MIN_ROWS = 50_000
_FINGERPRINT_ROWS = 4096  # rows hashed into the identity: cheap on a memory map, catches any rewrite
_ADD_BLOCK = 65_536  # rows copied into FAISS at a time (bounded extra memory when the rows are a memory map)
_SEED = 1234


def faiss_available() -> bool:
    """Whether FAISS can be imported (without raising)."""
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def require_faiss(what: str = "the 'faiss' search backend") -> Any:
    """Import faiss or raise a one-line :class:`InputError` naming the extra to install."""
    try:
        import faiss
    except ImportError:
        raise InputError(f"{what} needs FAISS: pip install 'paraspeechclap[faiss]' (or faiss-cpu)") from None
    return faiss


# ---------------------------------------------------------------- the two kinds


def ivf_params(n: int) -> dict[str, int]:
    """IVF parameters for ``n`` rows: ``nlist ~ 4 sqrt(n)`` lists, with at least 39 rows each (FAISS's
    k-means minimum), and ``nprobe`` = nlist/64, at least 16 (recall@10 1.000 at 1M clustered rows in
    ``benchmarks/search.py``, scanning ~1.5% of the rows; nprobe 16 gave 0.988: the margin is for data
    less clustered than those)."""
    nlist = max(1, min(round(4 * math.sqrt(n)), n // 39))
    return {"nlist": nlist, "nprobe": min(nlist, max(16, nlist // 64))}


def _build_ivf(faiss: Any, emb: np.ndarray) -> tuple[Any, dict[str, int]]:
    """``(N, D)`` unit rows -> a trained, filled ``IndexIVFFlat`` and its parameters."""
    n, d = emb.shape
    params = ivf_params(n)
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, params["nlist"], faiss.METRIC_INNER_PRODUCT)
    index.cp.spherical = True  # unit vectors: unit centroids make inner product the right assignment
    index.cp.niter = 10  # more iterations moved recall by < 0.005 at 1M rows and cost minutes
    index.cp.seed = _SEED
    # 64 rows per list are enough for k-means; a sorted sample reads a memory map in order.
    sample = np.sort(np.random.default_rng(_SEED).choice(n, min(n, 64 * params["nlist"]), replace=False))
    index.train(np.ascontiguousarray(emb[sample], dtype=np.float32))
    _add(index, emb)
    return index, params


def hnsw_params(n: int) -> dict[str, int]:
    """HNSW parameters (any ``n``): ``M`` = 48 links a node, ``ef_construction`` = 160, ``ef_search`` = 256.

    Measured at 1M clustered rows (``benchmarks/search.py`` data): the sparser M = 32,
    ef_construction = 64 graph built 3x faster but reached only recall@10 0.89 (0.91 at ef_search
    512); this one reached 0.99 at ef_search 256.
    """
    return {"M": 48, "ef_construction": 160, "ef_search": 256}


def _build_hnsw(faiss: Any, emb: np.ndarray) -> tuple[Any, dict[str, int]]:
    """``(N, D)`` unit rows -> a filled ``IndexHNSWFlat`` and its parameters."""
    params = hnsw_params(emb.shape[0])
    index = faiss.IndexHNSWFlat(emb.shape[1], params["M"], faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = params["ef_construction"]
    _add(index, emb)
    return index, params


def _add(index: Any, emb: np.ndarray) -> None:
    for start in range(0, emb.shape[0], _ADD_BLOCK):
        index.add(np.ascontiguousarray(emb[start:start + _ADD_BLOCK], dtype=np.float32))


@dataclass(frozen=True)
class AnnKind:
    """How to build one kind of ANN structure, and its search-time knob.

    Attributes:
        name: the ``--ann`` name.
        knob: the search-time parameter, a key of the stored params (``nprobe``, ``ef_search``).
        build: ``(faiss, (N, D) rows) -> (faiss index, params)``; params hold the knob's default.
        search_params: ``(faiss, knob value) -> faiss SearchParameters`` for one search call.
    """

    name: str
    knob: str
    build: Callable[[Any, np.ndarray], tuple[Any, dict[str, int]]]
    search_params: Callable[[Any, int], Any]


ANN_KINDS: dict[str, AnnKind] = {
    "ivf": AnnKind("ivf", "nprobe", _build_ivf, lambda faiss, v: faiss.SearchParametersIVF(nprobe=v)),
    "hnsw": AnnKind("hnsw", "ef_search", _build_hnsw, lambda faiss, v: faiss.SearchParametersHNSW(efSearch=v)),
}


def check_choice(choice: str) -> None:
    """Raise a one-line :class:`InputError` for an unknown ``--ann``, or an explicit kind without FAISS
    (checked before anything is embedded)."""
    if choice not in ANN_CHOICES:
        raise InputError(f"unknown --ann {choice!r}; choose one of {', '.join(ANN_CHOICES)}")
    if choice in ANN_KINDS:
        require_faiss(f"--ann {choice}")


def choose_kind(choice: str, n: int) -> str | None:
    """The ANN kind to build for ``n`` rows, or None for none.

    ``auto``: none below :data:`AUTO_MIN_ROWS` rows, else ``ivf`` (it reached recall@10 >= 0.95 at
    >= 10x the exact speed in ``benchmarks/search.py`` and builds several times faster than HNSW);
    none, with a warning, when FAISS is missing. An explicit kind is built at any size above 0.
    """
    check_choice(choice)
    if choice == "none" or n == 0:
        return None
    if choice != "auto":
        return choice
    if n < AUTO_MIN_ROWS:
        return None
    if not faiss_available():
        logger.warning("--ann auto: %d rows but FAISS is not installed, so no ANN index "
                       "(pip install 'paraspeechclap[faiss]'); search stays exact", n)
        return None
    return "ivf"


# ---------------------------------------------------------------- identity, build, persistence


def embeddings_identity(emb: np.ndarray, embeddings_file: str) -> dict[str, Any]:
    """What ties an ANN structure to ``(N, D)`` embeddings: file name, shape and a BLAKE2b-128 of
    up to 4096 evenly spaced rows (the first and last included)."""
    n, d = emb.shape
    rows = np.unique(np.linspace(0, n - 1, min(n, _FINGERPRINT_ROWS)).round().astype(np.int64)) if n else []
    h = hashlib.blake2b(f"{n}x{d}".encode(), digest_size=16)
    h.update(np.ascontiguousarray(emb[rows], dtype=np.float32).tobytes())
    return {"embeddings_file": embeddings_file, "count": int(n), "dim": int(d), "fingerprint": h.hexdigest()}


@dataclass
class AnnIndex:
    """A FAISS ANN structure over ``(N, D)`` unit rows.

    Attributes:
        kind: a key of :data:`ANN_KINDS`.
        index: the FAISS index (row ids are the embedding rows).
        params: build parameters and the default of the search-time knob.
    """

    kind: str
    index: Any
    params: dict[str, int]

    def search(self, queries: np.ndarray, k: int, knob: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(Q, D)`` queries -> ``(indices, scores)``, int64 and float32, ``(Q, min(k, N))``, best first.

        ``knob`` overrides the stored ``nprobe``/``ef_search``. Where the search visited fewer than
        ``k`` rows, the row is padded with index -1 (score -inf or FAISS's filler).
        """
        import faiss

        kind = ANN_KINDS[self.kind]
        value = int(knob if knob is not None else self.params[kind.knob])
        if value < 1:
            raise InputError(f"{kind.knob} must be at least 1, got {value}")
        k = min(k, self.index.ntotal)
        scores, idx = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k,
                                        params=kind.search_params(faiss, value))
        return idx.astype(np.int64), scores.astype(np.float32)


def build_ann(emb: np.ndarray, kind: str) -> AnnIndex:
    """Build an ANN structure of ``kind`` (``ivf``/``hnsw``) over ``(N, D)`` unit rows (N >= 1)."""
    faiss = require_faiss(f"--ann {kind}")
    index, params = ANN_KINDS[kind].build(faiss, emb)
    return AnnIndex(kind, index, params)


def write_ann(directory: Path, ann: AnnIndex, identity: Mapping[str, Any], token: str,
              build_s: float) -> dict[str, Any]:
    """Write ``ann`` atomically to ``directory/ann-<token>.faiss``; returns its ``meta.json`` entry."""
    import faiss

    name = f"ann-{token}.faiss"
    with atomic_path(directory / name) as tmp:
        faiss.write_index(ann.index, str(tmp))
    return {"kind": ann.kind, "file": name, "params": dict(ann.params), "identity": dict(identity),
            "build_s": round(build_s, 3), "faiss": faiss.__version__,
            "built": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def stale_reason(entry: Mapping[str, Any], identity: Mapping[str, Any]) -> str | None:
    """Why the ANN ``entry`` does not serve embeddings with ``identity``, or None when it does."""
    built = entry.get("identity", {})
    diff = [k for k in ("embeddings_file", "count", "dim", "fingerprint") if built.get(k) != identity[k]]
    if not diff:
        return None
    return ", ".join(f"{k} {built.get(k)!r} != {identity[k]!r}" for k in diff)


def load_ann(directory: Path, entry: Mapping[str, Any], identity: Mapping[str, Any]) -> AnnIndex:
    """Open the ANN file of a ``meta.json`` entry (memory-mapped) after checking it was built from the
    embeddings with ``identity``.

    Raises:
        InputError: FAISS missing, the file missing, or built from other embeddings (stale).
    """
    faiss = require_faiss("the 'ann' search backend")
    path = directory / entry["file"]
    fix = f"rebuild it with 'paraspeechclap index ... --out {directory} --ann {entry['kind']}' or search with " \
          "--backend numpy"
    reason = stale_reason(entry, identity)
    if reason:
        raise InputError(f"{path}: stale ANN index, built from other embeddings ({reason}); {fix}")
    if not path.is_file():
        raise InputError(f"{path}: ANN index file missing; {fix}")
    # Memory-map: a query touches a few lists (IVF) or graph nodes, not the whole file.
    flags = getattr(faiss, "IO_FLAG_MMAP_IFC", 0) | getattr(faiss, "IO_FLAG_READ_ONLY", 0)
    index = faiss.read_index(str(path), flags)
    if index.ntotal != identity["count"] or index.d != identity["dim"]:
        raise InputError(f"{path}: stale ANN index ({index.ntotal} x {index.d} rows, the index has "
                         f"{identity['count']} x {identity['dim']}); {fix}")
    return AnnIndex(entry["kind"], index, dict(entry["params"]))
