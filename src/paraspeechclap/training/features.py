"""Frozen-backbone feature cache: ``forward_frozen`` outputs stored per clip, backbone and augmentation.

With a frozen speech backbone only ``forward_head`` (e.g. a learned layer mix) and the projection
heads train, so the backbone's output for a clip can be computed once and reused. An entry is keyed
by

* the sha256 of the audio **file content** (renaming or moving a file keeps its entries),
* a hash of the backbone's spec (``encoder.spec()``: type, variant, checksum, layers, pooling ...),
* an **augmentation id**: a hash of the clip pipeline (crop length, padding, gain range), the seed
  and the variant number, or ``"full"`` for the deterministic full-length evaluation input.

Augmentation is never dropped silently: when the pipeline is random (a random crop or gain),
``variants`` (K) differently augmented versions of each clip are cached and the dataset draws one
per fetch; ``K = 0`` is refused. Variant ``k`` of a clip is drawn from a generator seeded by
``(seed, file hash, k)``, so the cache content does not depend on the rank, the order or the run.

Layout: ``<root>/<backbone hash>/<augmentation id>/<sha[:2]>/<sha>.pt`` (``torch.save`` of
``{"features": (...) tensor, "level_dbfs": float | None[, "narrowband": True][, "channel": True]}``),
each written atomically; file hashes are remembered in ``<root>/file_hashes.json`` keyed by path, size and
modification time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import distributed
from ..atomic import atomic_path, atomic_write_json
from ..audio.io import load_audio
from ..encoders.base import AudioEncoder, PreparedAudio
from ..encoders.packed_linear import plain_linears
from ..errors import AudioError, ConfigError
from ..inference import collate_prepared, frozen_from_windows, split_windows
from .augment import ClipPipeline, process_clip

logger = logging.getLogger(__name__)

EVAL_AUG_ID = "full"
_FORMAT = 1


def default_cache_root() -> Path:
    """``$PARASPEECHCLAP_CACHE`` or ``~/.cache/paraspeechclap``."""
    env = os.environ.get("PARASPEECHCLAP_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "paraspeechclap"


def _short_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def backbone_key(encoder: AudioEncoder) -> str:
    """Hash of the backbone spec (what determines ``forward_frozen``'s output)."""
    return _short_hash({"format": _FORMAT, "class": type(encoder).__name__, "spec": encoder.cache_spec()})


def augmentation_id(pipeline: ClipPipeline, seed: int, variant: int) -> str:
    """Id of training variant ``variant`` of a pipeline (see module docstring)."""
    return "aug-" + _short_hash({"pipeline": pipeline.describe(), "seed": seed, "variant": variant})


class FileHasher:
    """sha256 of file contents, remembered by (path, size, mtime) in a JSON index."""

    def __init__(self, index_path: Path) -> None:
        self.index_path = index_path
        try:
            self.index: dict[str, list[Any]] = json.loads(index_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self.index = {}
        self.dirty = False

    def digest(self, path: str | os.PathLike) -> str:
        """Content hash of ``path``; raises :class:`AudioError` when it cannot be read."""
        p = str(Path(path).resolve())
        try:
            st = os.stat(p)
        except OSError:
            raise AudioError(f"{path}: file not found") from None
        hit = self.index.get(p)
        if hit and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
            return str(hit[2])
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        self.index[p] = [st.st_size, st.st_mtime_ns, h.hexdigest()]
        self.dirty = True
        return h.hexdigest()

    def save(self) -> None:
        if self.dirty:
            atomic_write_json(self.index_path, self.index, indent=None)
            self.dirty = False


class FeatureStore:
    """Entries of one backbone below ``root`` (see module docstring for the layout)."""

    def __init__(self, root: str | os.PathLike, encoder: AudioEncoder) -> None:
        self.root = Path(root)
        self.dir = self.root / backbone_key(encoder)

    def path(self, digest: str, aug_id: str) -> Path:
        return self.dir / aug_id / digest[:2] / f"{digest}.pt"

    def load(self, digest: str, aug_id: str) -> dict[str, Any] | None:
        """The entry, or ``None`` when missing or unreadable (it is then recomputed)."""
        p = self.path(digest, aug_id)
        if not p.is_file():
            return None
        try:
            return torch.load(p, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001 - any unreadable entry is recomputed, never fatal
            logger.warning("feature cache entry %s is unreadable; recomputing it", p)
            return None

    def save(self, digest: str, aug_id: str, entry: dict[str, Any]) -> None:
        with atomic_path(self.path(digest, aug_id)) as tmp:
            torch.save(entry, tmp)


@torch.no_grad()
def frozen_features(encoder: AudioEncoder, prepared: Sequence[PreparedAudio], batch_size: int) -> list[torch.Tensor]:
    """``forward_frozen`` of prepared inputs, one ``(...)`` float32 tensor per input.

    Items are batched by descending length with masks (``batch_mode="mask"``) or only with equal
    lengths (``"equal_length"``), so a batch never changes an item's output.
    """
    device = next(encoder.parameters()).device
    order = sorted(range(len(prepared)), key=lambda i: -prepared[i].length)
    groups: list[list[int]] = []
    for i in order:
        same = groups and (encoder.batch_mode == "mask" or prepared[groups[-1][0]].length == prepared[i].length)
        if same and len(groups[-1]) < batch_size:
            groups[-1].append(i)
        else:
            groups.append([i])
    out: list[torch.Tensor] = [torch.empty(0)] * len(prepared)
    for g in groups:
        inputs = {k: v.to(device) for k, v in collate_prepared([prepared[i] for i in g]).items()}
        feats = encoder.forward_frozen(inputs.pop("features"), inputs.pop("lengths"), **inputs).float().cpu()
        for i, f in zip(g, feats):
            out[i] = f.clone()
    return out


@dataclass
class CacheRequest:
    """One clip to cache: its key in the training data and its audio file."""

    key: str
    path: str


@dataclass
class FeatureTable:
    """Cached features of a set of clips: ``entries[key]`` = list of variants (``{"features", "level_dbfs"}``)."""

    entries: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    bad: dict[str, str] = field(default_factory=dict)
    computed: int = 0


def _variant_inputs(wav: np.ndarray, encoder: AudioEncoder, pipeline: ClipPipeline, digest: str, seed: int,
                    variants: int) -> list[tuple[PreparedAudio, dict[str, Any]]]:
    """The ``variants`` processed inputs of a clip, each with the entry fields besides its features."""
    out = []
    for k in range(variants):
        clip = process_clip(wav, encoder, pipeline, random.Random(f"{seed}/{digest}/{k}"), measure_level=True)
        meta: dict[str, Any] = {"level_dbfs": clip.level_dbfs}
        if clip.narrowband:  # only when true: entries of pipelines without it stay as they were
            meta["narrowband"] = True
        if clip.channel:
            meta["channel"] = True
        out.append((clip.prepared, meta))
        if not clip.randomized:  # e.g. no gain and shorter than the crop: every variant is this one
            return out * variants
    return out


def full_clip_features(wav: np.ndarray, encoder: AudioEncoder, batch_size: int) -> torch.Tensor:
    """Deterministic evaluation input: ``forward_frozen`` of the whole clip, as inference computes it.

    A clip longer than the encoder's window is cut into windows, combined exactly from their frame
    statistics where the encoder has them (``window_moments``), else as the frame-weighted mean of
    the windows' outputs (exact for mean pooling).
    """
    windows = split_windows(wav, encoder.window_samples)
    if len(windows) > 1 and encoder.has_window_moments:
        device = next(encoder.parameters()).device
        return frozen_from_windows(encoder, [wav], [windows], batch_size, device, torch.float32)[0].float().cpu()
    prepared = [encoder.prepare(w) for w in windows]
    feats = frozen_features(encoder, prepared, batch_size)
    weights = [float(encoder.num_frames(len(w))) for w in windows]
    return (sum(f.double() * w for f, w in zip(feats, weights)) / sum(weights)).float()


# Plain linears: the cache's entries (and the shipped weights trained on them) predate the packed path, and
# a rebuild from an empty cache must compute them bit for bit as before, under the same cache keys.
@plain_linears()
def _compute_clip(req: CacheRequest, digest: str, encoder: AudioEncoder, pipeline: ClipPipeline | None,
                  seed: int, variants: int, batch_size: int) -> list[dict[str, Any]]:
    wav = load_audio(req.path, min_samples=encoder.min_samples)
    if pipeline is None:  # full-length
        return [{"features": full_clip_features(wav, encoder, batch_size), "level_dbfs": None}]
    inputs = _variant_inputs(wav, encoder, pipeline, digest, seed, variants)
    distinct = list({id(p): p for p, _ in inputs}.values())  # identical variants are computed once
    feats = dict(zip((id(p) for p in distinct), frozen_features(encoder, distinct, batch_size)))
    return [{"features": feats[id(p)], **meta} for p, meta in inputs]


def build_feature_table(
    requests: Sequence[CacheRequest],
    encoder: AudioEncoder,
    root: str | os.PathLike,
    pipeline: ClipPipeline | None,
    *,
    seed: int,
    variants: int,
    batch_size: int = 16,
    progress: bool = True,
) -> FeatureTable:
    """Fill the cache for ``requests`` (ranks share the work) and load every entry.

    Args:
        requests: the clips.
        encoder: the frozen backbone (put in eval mode here).
        root: cache root.
        pipeline: the training clip pipeline, or ``None`` for full-length evaluation inputs.
        seed: seed of the variants (shared by all ranks).
        variants: K variants per clip when ``pipeline.is_random`` (else 1).

    Returns:
        The table; clips that cannot be read go to ``bad`` (key -> reason) instead.

    Raises:
        ConfigError: a random pipeline with ``variants < 1``.
    """
    if pipeline is not None and pipeline.is_random and variants < 1:
        raise ConfigError("features.variants must be >= 1 when a random crop or gain is configured "
                          "(caching a single fixed version would silently drop the augmentation)")
    k = variants if pipeline is not None and pipeline.is_random else 1
    aug_ids = [EVAL_AUG_ID] if pipeline is None else [augmentation_id(pipeline, seed, v) for v in range(k)]
    store, hasher = FeatureStore(root, encoder), FileHasher(Path(root) / "file_hashes.json")
    was_training = encoder.training
    encoder.eval()
    table = FeatureTable()
    digests = _hash_all(requests, hasher, table)
    _fill_missing(requests, digests, store, aug_ids, encoder, pipeline, seed, k, batch_size, progress, table)
    if distributed.is_main():
        hasher.save()
    distributed.barrier()
    for bad in distributed.all_gather_object(table.bad):
        table.bad.update(bad)
    for req in requests:
        if req.key in table.bad:
            continue
        entries = [store.load(digests[req.key], a) for a in aug_ids]
        if any(e is None for e in entries):
            table.bad[req.key] = "feature cache entry missing after filling"
            continue
        table.entries[req.key] = entries  # type: ignore[assignment]
    encoder.train(was_training)
    return table


def _hash_all(requests: Sequence[CacheRequest], hasher: FileHasher, table: FeatureTable) -> dict[str, str]:
    digests = {}
    for req in requests:
        try:
            digests[req.key] = hasher.digest(req.path)
        except AudioError as exc:
            table.bad[req.key] = str(exc)
    return digests


def _fill_missing(requests: Sequence[CacheRequest], digests: dict[str, str], store: FeatureStore,
                  aug_ids: list[str], encoder: AudioEncoder, pipeline: ClipPipeline | None, seed: int,
                  k: int, batch_size: int, progress: bool, table: FeatureTable) -> None:
    """Compute the entries missing from the store; rank ``r`` takes every ``W``-th missing clip."""
    from tqdm.auto import tqdm

    todo, seen = [], set()
    for req in requests:
        d = digests.get(req.key)
        if d is None or d in seen:
            continue
        seen.add(d)
        if not all(store.path(d, a).is_file() for a in aug_ids):
            todo.append(req)
    mine = todo[distributed.rank()::distributed.world_size()]
    bar = tqdm(mine, desc="caching features", unit="clip", disable=None if progress and mine else True, leave=False)
    for req in bar:
        try:
            entries = _compute_clip(req, digests[req.key], encoder, pipeline, seed, k, batch_size)
        except AudioError as exc:
            table.bad[req.key] = str(exc)
            continue
        if not all(bool(torch.isfinite(e["features"]).all()) for e in entries):
            # never cache a NaN: it would poison every later run that reads the entry
            table.bad[req.key] = f"{req.path}: features contain NaN or infinite values (not cached)"
            continue
        for aug_id, entry in zip(aug_ids, entries):
            store.save(digests[req.key], aug_id, entry)
        table.computed += 1
