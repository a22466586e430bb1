"""Training and development data built from the config's sources.

Each source (``data.train`` / ``data.dev`` entry) is one of a registered kind: ``manifest`` (a
file or folder), ``hf_dataset`` (a Hugging Face hub dataset), ``synth`` (a synthetic corpus
generated into a cache folder on first use) or ``tags`` (official-tag recipe clips, likewise).
Rows can be restricted to one split of a split file (``split_file: shared`` = the packaged split of
the shared real data). Several training sources
are combined by concatenation, 1:1 interleaving (official Combined) or weighted mixing into one
*plan* of ``(source, row)`` entries; the sampler draws plan positions.

Captions come from the ``text_description`` field (``captions: manifest``), or are generated from
the label fields (``describe``) or tags (``tags``): training draws a fresh wording per fetch,
evaluation uses the canonical caption.

A training item that cannot be read (missing, corrupt, silent, too short) is replaced by another
item chosen deterministically and reported in the batch (``bad``); the trainer counts distinct
bad items and stops once there are more than ``data.max_bad_items``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from .. import distributed
from ..audio.io import load_audio
from ..data.manifest import Manifest, load_manifest, pick_caption
from ..encoders.base import AudioEncoder
from ..errors import AudioError, ConfigError, InputError, ParaSpeechCLAPError
from ..inference import collate_prepared
from .augment import ClipPipeline, drop_clarity, process_clip, relabel_loudness
from .config import (
    AugmentConfig,
    DataConfig,
    RepitchConfig,
    SourceConfig,
    SynthSourceConfig,
    TagsSourceConfig,
)
from .domain_shift import DomainShift, row_domain
from .features import FeatureTable, default_cache_root

logger = logging.getLogger(__name__)

#: label fields that :func:`paraspeechclap.data.captions.describe` reads.
CAPTION_FIELDS = ("gender", "pitch_level", "speaking_rate", "loudness", "voice_quality", "clarity", "emotion")
#: retries with other items when a training item is bad.
_MAX_SUBSTITUTES = 20


@dataclass
class Source:
    """One loaded source: its rows and how to caption them."""

    name: str
    manifest: Manifest
    captions: str
    weight: float = 1.0
    dropped: dict[str, str] = field(default_factory=dict)


# -- captions ----------------------------------------------------------------------------------------
def row_labels(row: Mapping[str, Any]) -> dict[str, Any]:
    """The label fields of a row that captions are built from."""
    return {k: row[k] for k in CAPTION_FIELDS if row.get(k) not in (None, "")}


def _caption_manifest(row: Mapping[str, Any], rng: random.Random | None) -> str:
    return pick_caption(row, rng)


def _caption_describe(row: Mapping[str, Any], rng: random.Random | None) -> str:
    from ..data.captions import describe

    return describe(row_labels(row), rng)


def _caption_tags(row: Mapping[str, Any], rng: random.Random | None) -> str:
    from ..data.captions import describe_tags

    return describe_tags(row.get("intrinsic_tags") or [], row.get("situational_tags") or [], row.get("gender"), rng)


CAPTIONERS: dict[str, Callable[[Mapping[str, Any], random.Random | None], str]] = {
    "manifest": _caption_manifest,
    "describe": _caption_describe,
    "tags": _caption_tags,
}


# -- sources -----------------------------------------------------------------------------------------
def synth_corpus_dir(cfg: SynthSourceConfig) -> Path:
    """Folder of a synthetic corpus: ``cache_dir`` or ``<cache>/synth/n<N>-s<seed>-<hash of the settings>``."""
    return _generated_dir("synth", cfg)


def _generated_dir(kind: str, cfg: SynthSourceConfig | TagsSourceConfig, **versions: int) -> Path:
    """Folder of a generated corpus: ``cfg.cache_dir``, or ``<cache>/<kind>/n<N>-s<seed>-<hash>`` of its
    settings (without ``jobs``), the synthetic plan's version and ``versions``."""
    if cfg.cache_dir:
        return Path(str(expand_path(cfg.cache_dir, f"{kind}.cache_dir")))
    from ..synth.corpus import PLAN_VERSION
    from ..synth.engines import expand_voice_ids

    settings = {k: v for k, v in asdict(cfg).items() if k not in ("jobs", "cache_dir")}
    for key in ("voices", "exclude_voices"):  # held-out names hash as the voices they stand for
        if settings.get(key):
            settings[key] = expand_voice_ids(settings[key])
    settings["plan_version"] = PLAN_VERSION  # a new generator never reuses an old corpus
    settings.update(versions)
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    return default_cache_root() / kind / f"n{cfg.n}-s{cfg.seed}-{digest}"


def _manifest_rows(path: Path) -> int:
    try:
        with open(path, encoding="utf-8") as f:
            return sum(1 for line in f if line.strip())
    except OSError:
        return -1


def ensure_synth_corpus(cfg: SynthSourceConfig) -> Path:
    """Generate the corpus unless its manifest is complete (main rank generates; others wait)."""
    out = synth_corpus_dir(cfg)
    manifest = out / "manifest.jsonl"
    if distributed.is_main() and _manifest_rows(manifest) != cfg.n:
        from ..synth.corpus import generate_corpus
        from ..synth.engines import select_voices

        voices = select_voices(cfg.engines, cfg.voices, cfg.exclude_voices)
        mix = cfg.mix if cfg.mix is not None else ({e: 1.0 for e in cfg.engines} if cfg.engines else None)
        logger.warning("generating a synthetic corpus of %d clips in %s (once)", cfg.n, out)
        generate_corpus(out, cfg.n, seed=cfg.seed, jobs=cfg.jobs, voices=voices, mix=mix,
                        vary_formants=cfg.vary_formants)
    distributed.barrier()
    return manifest


def ensure_tags_corpus(cfg: TagsSourceConfig) -> Path:
    """Generate the official-tag recipe corpus unless its manifest exists (main rank renders; others
    wait); its folder is ``cache_dir`` or ``<cache>/tags/n<N>-s<seed>-<hash of the settings and recipes>``."""
    from ..synth.engines import select_voices
    from ..synth.sentences import SENTENCE_POOLS
    from ..synth.tags import RECIPES_VERSION, generate_tagged, plan_tagged

    out = _generated_dir("tags", cfg, recipes_version=RECIPES_VERSION)
    manifest = out / "manifest.jsonl"
    if distributed.is_main() and _manifest_rows(manifest) != cfg.n:
        voices = select_voices(cfg.engines, None, cfg.exclude_voices)
        logger.warning("rendering %d official-tag clips in %s (once)", cfg.n, out)
        generate_tagged(out, plan_tagged(cfg.n, voices, SENTENCE_POOLS["train"], f"train-s{cfg.seed}", cfg.styles),
                       cfg.jobs)
    distributed.barrier()
    return manifest


def ensure_repitched(manifest: Manifest, cfg: RepitchConfig) -> Path:
    """Derive (once, cached) the re-pitched corpus of ``manifest``'s rows; main rank renders, others wait."""
    from ..synth.repitch import MANIFEST_NAME, corpus_key, generate_repitched

    keys = [manifest.key(i) for i in range(len(manifest))]
    n_key = f"n{cfg.n}-s{cfg.seed}-{corpus_key(keys, cfg.n, cfg.seed, cfg.speaking_rate)}"
    out = Path(str(expand_path(cfg.cache_dir, "repitch.cache_dir"))) if cfg.cache_dir else (
        default_cache_root() / "repitch" / n_key)
    if distributed.is_main() and not (out / MANIFEST_NAME).is_file():
        logger.warning("re-pitching %d clips of %s into %s (once)", cfg.n, manifest.name, out)
        generate_repitched(out, [manifest[i] for i in range(len(manifest))],
                           [str(manifest.audio_path(i)) for i in range(len(manifest))], keys, cfg.n, cfg.seed, cfg.jobs,
                           cfg.speaking_rate)
    distributed.barrier()
    return out / MANIFEST_NAME


def expand_path(value: str | None, what: str) -> str | None:
    """``~`` and ``$VAR``/``${VAR}`` expanded; an unset variable is a :class:`ConfigError`."""
    if value is None:
        return None
    out = os.path.expandvars(os.path.expanduser(value))
    if "$" in out:
        raise ConfigError(f"{what}: {value!r} names an environment variable that is not set")
    return out


def _load_manifest_kind(src: SourceConfig) -> tuple[Manifest, str]:
    path = expand_path(src.manifest, "data source manifest")
    split = None if src.split_file else src.split
    root = expand_path(src.audio_root, f"audio_root of {path}")
    return load_manifest(path, split=split, audio_root=root), str(path)  # type: ignore[arg-type]


def _load_hf_kind(src: SourceConfig) -> tuple[Manifest, str]:
    root = expand_path(src.audio_root, f"audio_root of {src.hf_dataset}")
    if root is None:
        raise ConfigError(f"data source {src.hf_dataset!r}: a Hugging Face dataset needs audio_root")
    split = None if src.split_file else (src.split or "train")
    return load_manifest(f"hf://{src.hf_dataset}", split=split, audio_root=root), str(src.hf_dataset)


def _load_synth_kind(src: SourceConfig) -> tuple[Manifest, str]:
    assert src.synth is not None
    return load_manifest(ensure_synth_corpus(src.synth)), f"synth(n={src.synth.n}, seed={src.synth.seed})"


def _load_tags_kind(src: SourceConfig) -> tuple[Manifest, str]:
    assert src.tags is not None
    return load_manifest(ensure_tags_corpus(src.tags)), f"tags(n={src.tags.n}, seed={src.tags.seed})"


SOURCE_KINDS: dict[str, Callable[[SourceConfig], tuple[Manifest, str]]] = {
    "manifest": _load_manifest_kind,
    "hf_dataset": _load_hf_kind,
    "synth": _load_synth_kind,
    "tags": _load_tags_kind,
}


def _apply_split_file(manifest: Manifest, src: SourceConfig) -> Manifest:
    from ..data.splits import load_shared_split

    if src.split is None:
        raise ConfigError(f"data source {manifest.name}: split_file needs split (train/dev/test)")
    sf = load_shared_split(None if src.split_file == "shared" else expand_path(src.split_file, "split_file"))
    return manifest.filter(lambda r: sf.split_of(r) == src.split)


def _validate_rows(manifest: Manifest, captions: str) -> tuple[Manifest, dict[str, str]]:
    """Drop rows whose caption cannot be built (no description, label outside the vocabulary)."""
    keep, dropped = [], {}
    for i, row in enumerate(manifest):
        try:
            CAPTIONERS[captions](row, None)
            keep.append(i)
        except ParaSpeechCLAPError as exc:
            dropped[manifest.key(i)] = str(exc)
    return (manifest if len(keep) == len(manifest) else manifest.select(keep)), dropped


def _filter_fields(manifest: Manifest, exclude: dict[str, list[str]], include: dict[str, list[str]]) -> Manifest:
    """Rows with no field value listed in ``exclude`` and, for every field of ``include``, a listed value
    (values compared as strings)."""
    drop = {k: {str(v) for v in vs} for k, vs in exclude.items()}
    keep = {k: {str(v) for v in vs} for k, vs in include.items()}
    return manifest.filter(lambda r: not any(str(r.get(k)) in vs for k, vs in drop.items())
                           and all(str(r.get(k)) in vs for k, vs in keep.items()))


def _drop_by_origin(derived: Manifest, origins: Manifest, exclude: dict[str, list[str]]) -> Manifest:
    """``derived`` without the rows whose ``origin`` (a key of ``origins``) matches ``exclude``."""
    kept = _filter_fields(origins, exclude, {})
    allowed = {kept.key(i) for i in range(len(kept))}
    return derived.filter(lambda r: r.get("origin") in allowed)


def _copy_from_origin(derived: Manifest, origins: Manifest, fields: list[str]) -> Manifest:
    """``derived`` with ``fields`` of each row's origin row (a key of ``origins``) copied onto it."""
    by_key = {origins.key(i): origins[i] for i in range(len(origins))}
    rows = [{**r, **{f: by_key[r["origin"]].get(f) for f in fields}} for r in derived.rows]
    return Manifest(rows, derived.roots, derived.name, derived.lines)


def load_source(src: SourceConfig) -> Source:
    """Load one source's rows (split filter, ``max_items``, caption validation).

    Raises:
        ConfigError / InputError: unknown kind, unreadable manifest, or no rows left.
    """
    kind = next(k for k in SOURCE_KINDS if getattr(src, k) is not None)
    manifest, name = SOURCE_KINDS[kind](src)
    if src.split_file:
        manifest = _apply_split_file(manifest, src)
    if src.exclude or src.include:
        manifest = _filter_fields(manifest, src.exclude, src.include)
    if src.max_items is not None:
        manifest = manifest.select(range(min(src.max_items, len(manifest))))
    if src.repitch is not None:
        origins = manifest
        manifest, name = load_manifest(ensure_repitched(manifest, src.repitch)), f"repitch({name}, n={src.repitch.n})"
        if src.repitch.exclude:
            manifest = _drop_by_origin(manifest, origins, src.repitch.exclude)
        if src.repitch.keep:
            manifest = _copy_from_origin(manifest, origins, src.repitch.keep)
    manifest, dropped = _validate_rows(manifest, src.captions)
    if dropped:
        first = next(iter(dropped.items()))
        logger.warning("%s: %d rows dropped (no usable caption), e.g. %s: %s", name, len(dropped), *first)
    if len(manifest) == 0:
        raise InputError(f"data source {src.name or name}: no rows left (split={src.split!r})")
    return Source(src.name or name, manifest, src.captions, src.weight, dropped)


def clip_key(sources: Sequence[Source], s: int, i: int) -> str:
    """The feature-cache key of row ``i`` of source ``s`` (a plan entry ``(s, i)``)."""
    return f"{s}:{sources[s].manifest.key(i)}"


def cached_clips(sources: Sequence[Source], plan: Sequence[tuple[int, int]],
                 table: FeatureTable) -> Iterator[tuple[str, Mapping[str, Any], list[torch.Tensor]]]:
    """Each distinct clip of ``plan`` that ``table`` holds, once, in plan order: its key, its row and its
    cached feature variants (references into the table, not copies)."""
    seen: set[str] = set()
    for s, i in plan:
        key = clip_key(sources, s, i)
        if key in table.entries and key not in seen:
            seen.add(key)
            yield key, sources[s].manifest[i], [e["features"] for e in table.entries[key]]


def build_plan(sizes: Sequence[int], weights: Sequence[float], mixing: str, epoch_size: int | None,
               seed: int) -> list[tuple[int, int]]:
    """``(source, row)`` entries of one epoch's index space (see module docstring)."""
    from ..data.mixing import interleave_all_exhausted, weighted_mix

    if mixing == "interleave" and len(sizes) > 1:
        return interleave_all_exhausted(sizes)
    if mixing == "weighted" and len(sizes) > 1:
        return weighted_mix(sizes, weights, epoch_size or sum(sizes), seed)
    return [(s, i) for s, n in enumerate(sizes) for i in range(n)]


# -- training dataset --------------------------------------------------------------------------------
@dataclass
class TrainItem:
    """One training example (``audio`` is a ``PreparedAudio`` or a cached feature tensor)."""

    audio: Any
    caption: str
    tags: list[str]
    index: int
    bad: list[tuple[str, str]] = field(default_factory=list)
    row: dict[str, Any] = field(default_factory=dict)  # the labels after augmentation (loudness relabelled)


class TrainDataset(torch.utils.data.Dataset):
    """Plan positions -> :class:`TrainItem` (decoded, augmented, prepared; or from the feature cache).

    Randomness (caption wording, cached variant, gain, crop) comes from a generator seeded by
    ``(seed + rank, epoch, position)``, so an item does not depend on the DataLoader worker or on
    resuming.
    """

    def __init__(self, sources: Sequence[Source], plan: Sequence[tuple[int, int]], encoder: AudioEncoder,
                 pipeline: ClipPipeline, augment: AugmentConfig, *, seed: int, rank: int = 0,
                 tag_field: str = "intrinsic_tags", features: FeatureTable | None = None,
                 shift: DomainShift | None = None) -> None:
        self.sources = list(sources)
        self.plan = list(plan)
        self.encoder = encoder
        self.pipeline = pipeline
        self.augment = augment
        self.seed = seed + rank
        self.tag_field = tag_field
        self.features = features
        self.shift = shift
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.plan)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def key(self, pos: int) -> str:
        return clip_key(self.sources, *self.plan[pos])

    def tags(self, pos: int) -> list[str]:
        s, i = self.plan[pos]
        return [str(t) for t in self.sources[s].manifest[i].get(self.tag_field) or []]

    def __getitem__(self, pos: int) -> TrainItem:
        bad: list[tuple[str, str]] = []
        sub = random.Random(f"{self.seed}/{self.epoch}/{pos}/substitute")
        candidate = pos
        for _ in range(_MAX_SUBSTITUTES):
            try:
                item = self._load(candidate)
                item.bad = bad
                return item
            except AudioError as exc:
                bad.append((self.key(candidate), str(exc)))
                candidate = sub.randrange(len(self.plan))
        raise InputError(f"{_MAX_SUBSTITUTES} training items in a row could not be read; last: {bad[-1][1]}")

    def _load(self, pos: int) -> TrainItem:
        s, i = self.plan[pos]
        src = self.sources[s]
        row = src.manifest[i]
        rng = random.Random(f"{self.seed}/{self.epoch}/{pos}")
        relabel = self.augment.relabel_loudness and row.get("loudness") is not None
        if self.features is not None:
            variants = self.features.entries.get(self.key(pos))
            if variants is None:
                raise AudioError(self.features.bad.get(self.key(pos), f"{self.key(pos)}: not in the feature cache"))
            entry = variants[rng.randrange(len(variants))]
            audio, level = entry["features"], entry.get("level_dbfs")
            if self.shift is not None:  # its own stream: every other draw stays as without it
                own = random.Random(f"{self.seed}/{self.epoch}/{pos}/domain-shift")
                audio = self.shift.move(audio, row, own)
            narrow = bool(entry.get("narrowband")) or bool(entry.get("channel"))  # either way the recording changed
        else:
            wav = load_audio(src.manifest.audio_path(i), min_samples=self.encoder.min_samples)
            clip = process_clip(wav, self.encoder, self.pipeline, rng, measure_level=relabel)
            audio, level, narrow = clip.prepared, clip.level_dbfs, clip.narrowband or clip.channel
        if relabel and level is not None:
            row = relabel_loudness(row, level, self.augment.loudness_thresholds_dbfs)
        if narrow:
            row = drop_clarity(row)
        caption = CAPTIONERS[src.captions](row, rng)
        return TrainItem(audio, caption, [str(t) for t in row.get(self.tag_field) or []], pos, row=row)


def collate_train(items: Sequence[TrainItem]) -> dict[str, Any]:
    """Batch of :class:`TrainItem`: ``{"audio": {...}, "captions", "tags", "rows", "indices", "bad"}``.

    ``audio`` is ``{"features", "lengths", **extras}`` (padded) or ``{"cached": (B, ...)}``.
    """
    if isinstance(items[0].audio, torch.Tensor):
        audio = {"cached": torch.stack([it.audio for it in items])}
    else:
        audio = collate_prepared([it.audio for it in items])
    return {
        "audio": audio,
        "captions": [it.caption for it in items],
        "tags": [it.tags for it in items],
        "rows": [it.row for it in items],
        "indices": [it.index for it in items],
        "bad": [b for it in items for b in it.bad],
    }


def build_sampler(cfg: DataConfig, dataset: TrainDataset, rank: int, world_size: int, batch_size: int,
                  seed: int) -> torch.utils.data.Sampler[int]:
    """The resumable distributed sampler of ``data.sampler`` (``shuffle``, ``class_balanced`` or
    ``group_balanced``)."""
    from ..data.sampler import ClassBalancedSampler, GroupBalancedSampler, ShuffleSampler

    if cfg.sampler == "class_balanced":
        tags = [[str(t) for t in (dataset.sources[s].manifest[i].get(cfg.balanced_tag_field) or [])]
                for s, i in dataset.plan]  # fmt: skip
        return ClassBalancedSampler(tags, num_replicas=world_size, rank=rank, batch_size=batch_size,
                                    min_rare_per_batch=cfg.min_rare_per_batch, rare_threshold=cfg.rare_threshold,
                                    seed=seed)  # fmt: skip
    if cfg.sampler == "group_balanced":
        groups = [row_domain(dataset.sources[s].manifest[i], cfg.balance_group_field, cfg.balance_require)
                  for s, i in dataset.plan]
        return GroupBalancedSampler(groups, num_replicas=world_size, rank=rank, seed=seed)
    return ShuffleSampler(len(dataset), num_replicas=world_size, rank=rank, seed=seed)


# -- development data --------------------------------------------------------------------------------
@dataclass
class DevSet:
    """Evaluation rows with their canonical captions and audio paths (in manifest order)."""

    rows: list[dict[str, Any]]
    captions: list[str]
    paths: list[str]
    keys: list[str]

    def __len__(self) -> int:
        return len(self.rows)


def build_dev_set(sources: Sequence[Source]) -> DevSet:
    """Concatenate dev sources; every clip gets its source's canonical caption."""
    rows, captions, paths, keys = [], [], [], []
    for s, src in enumerate(sources):
        for i, row in enumerate(src.manifest):
            rows.append(row)
            captions.append(CAPTIONERS[src.captions](row, None))
            paths.append(str(src.manifest.audio_path(i)))
            keys.append(f"dev{s}:{src.manifest.key(i)}")
    return DevSet(rows, captions, paths, keys)


def tag_vocabulary(sources: Sequence[Source], tag_field: str) -> list[str]:
    """Sorted, stripped, lower-cased tags of the training rows (the official vocabulary rule)."""
    tags = {str(t).strip().lower() for src in sources for row in src.manifest for t in row.get(tag_field) or []}
    return sorted(t for t in tags if t)
