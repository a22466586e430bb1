"""Training configuration: the schema (pydantic dataclasses), YAML loading with ``base:``
composition, and ``--set key=value`` overrides.

A run config is a YAML mapping with the sections of :class:`RunConfig` (``model``, ``data``,
``audio``, ``augment``, ``features``, ``loss``, ``optim``, ``train``, ``eval``, ``logging``).
A file may name another with ``base: other.yaml`` (relative to its own directory); the base is
loaded first and the file's keys are merged over it (mappings merge key by key, anything else,
lists included, is replaced). Overrides use dotted paths, ``--set optim.lr=3e-4`` or
``--set data.train.0.weight=2``; values are parsed as YAML.

The schema is declared once, in the dataclasses below: types, choices (``Literal``), ranges
(``Field``) and the rules that tie fields together (validators). Loading checks every key and
value against it; a violation is a :class:`~paraspeechclap.errors.ConfigError` of one line that
names the dotted key, the bad value and what is allowed. Fields without a default
(``model.audio_encoder``, ``model.text_encoder``, ``train.output_dir``) are required.

``${PARASPEECHCLAP_SHARED_DATA}`` in a source's ``manifest``, ``audio_root`` or ``split_file`` is
replaced by the shared data folder when the config is loaded (see :func:`shared_data_folder`).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import logging
import os
import re
from dataclasses import field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.dataclasses import dataclass
from pydantic_core import PydanticCustomError

from ..config import ModelConfig
from ..errors import ConfigError
from .schema_errors import Rule, config_error, short_repr

__all__ = [
    "AudioConfig",
    "AugmentConfig",
    "DataConfig",
    "EvalConfig",
    "FeaturesConfig",
    "LoggingConfig",
    "LossConfig",
    "OptimConfig",
    "RepitchConfig",
    "RunConfig",
    "SourceConfig",
    "SynthSourceConfig",
    "TrainConfig",
    "TrainModelConfig",
    "apply_overrides",
    "config_to_yaml",
    "load_config",
    "load_yaml_with_bases",
    "shared_data_folder",
]

logger = logging.getLogger(__name__)


# -- field types -------------------------------------------------------------------------------------
def _reject_bool(value: Any) -> Any:
    """pydantic's float takes ``true`` as 1.0 (bool is an int); a config flag is never a number."""
    if isinstance(value, bool):
        raise PydanticCustomError("float_type", "Input should be a valid number")
    return value


# Strict int and bool: 2.0, 2.5 or "3" for an int, 1 or "true" for a bool are mistakes, not values to coerce.
# Floats stay lax: YAML 1.1 reads "1e-5" (no dot) as a string, and an int is a fine float.
Int = Annotated[int, Strict()]
Bool = Annotated[bool, Strict()]
Float = Annotated[float, BeforeValidator(_reject_bool)]
PositiveInt = Annotated[Int, Field(gt=0)]
AtLeastOne = Annotated[Int, Field(ge=1)]
NonNegativeInt = Annotated[Int, Field(ge=0)]
PositiveFloat = Annotated[Float, Field(gt=0)]
NonNegativeFloat = Annotated[Float, Field(ge=0)]
Fraction = Annotated[Float, Field(ge=0, le=1)]
Pair = Annotated[list[Float], Field(min_length=2, max_length=2)]


def _ordered_pair(value: list[float], nonnegative: bool = False) -> list[float]:
    """A ``[low, high]`` range: refused unless low <= high (and, if asked, 0 <= low)."""
    if value[0] > value[1] or (nonnegative and value[0] < 0):
        raise Rule(f"{value}: expected [low, high] with {'0 <= ' if nonnegative else ''}low <= high")
    return value


_SCHEMA = ConfigDict(extra="forbid")


def _check_attribute_set(name: str, key: str | None = None) -> str:
    """The name must be a registered attribute set (``paraspeechclap data sets``)."""
    from ..data.attributes import list_attribute_sets

    known = list_attribute_sets()
    if name not in known:
        raise Rule(f"{name!r} is not an attribute set; one of: {', '.join(known)}", key)
    return name


def _check_attribute_sets(names: list[str]) -> list[str]:
    """Every name must be a registered attribute set."""
    for i, name in enumerate(names):
        _check_attribute_set(name, str(i))
    return names


#: names of registered attribute sets (each checked: ``loss.attribute_sets``, ``eval.attribute_sets``, ...)
AttributeSets = Annotated[list[str], AfterValidator(_check_attribute_sets)]


#: the name of one registered attribute set
AttributeSetName = Annotated[str, AfterValidator(_check_attribute_set)]


# -- the shared data folder --------------------------------------------------------------------------
def shared_data_folder() -> str:
    """The shared data folder (holding ``real/``, ``real2/``): ``$PARASPEECHCLAP_SHARED_DATA``, else
    ``<repository root>/../shared/data`` (found from the package's location by
    :func:`paraspeechclap.data.splits.find_shared_data`, not from the working directory).

    Raises:
        ConfigError: the variable names no folder, or it is unset and the default folder is missing.
    """
    from ..data.splits import SHARED_DATA_ENV, find_shared_data
    from ..errors import InputError

    configured = os.environ.get(SHARED_DATA_ENV)
    if configured:  # checked here: find_shared_data would fall back to the default silently
        folder = Path(configured).expanduser()
        if not folder.is_dir():
            raise ConfigError(f"{SHARED_DATA_ENV}={configured!r} is not a folder; point it at the folder holding real/")
        return str(folder.absolute())
    try:
        return str(find_shared_data())
    except InputError:
        raise ConfigError(f"{SHARED_DATA_ENV} is not set and the default <repository root>/../shared/data does not "
                          f"exist; set {SHARED_DATA_ENV} to the folder holding real/ and real2/") from None


def _placeholder() -> re.Pattern[str]:
    from ..data.splits import SHARED_DATA_ENV

    return re.compile(r"\$(\{" + SHARED_DATA_ENV + r"\}|" + SHARED_DATA_ENV + r"(?![A-Za-z0-9_]))")


def _resolve_shared(value: str | None) -> str | None:
    """``${PARASPEECHCLAP_SHARED_DATA}`` (or ``$PARASPEECHCLAP_SHARED_DATA``) replaced by the folder."""
    if value is None or not _placeholder().search(value):
        return value
    try:
        folder = shared_data_folder()
    except ConfigError as exc:
        raise Rule(f"{value!r} cannot be resolved: {exc}") from None
    return _placeholder().sub(lambda _: folder, value)  # a function: no escapes in the folder name


# -- schema ------------------------------------------------------------------------------------------
_ARCHITECTURE_DEFAULTS = {f.name: f.default for f in dataclasses.fields(ModelConfig)}


@dataclass(config=_SCHEMA)
class TrainModelConfig(ModelConfig):
    """The model to train: a :class:`~paraspeechclap.config.ModelConfig` plus where to start from.

    The architecture fields are ``ModelConfig``'s (its types are checked); the three numeric ones
    are restated with the ranges a model needs, keeping ``ModelConfig``'s defaults. ``ModelConfig``
    itself stays a plain dataclass: it reads saved models' ``config.json``.

    Attributes:
        init_from: a saved model directory (``save_pretrained`` output) whose weights initialise
            the model; its architecture must match. ``None`` = pretrained backbones, new heads.
    """

    embed_dim: PositiveInt = _ARCHITECTURE_DEFAULTS["embed_dim"]
    projection_dropout: Annotated[Float, Field(ge=0, lt=1)] = _ARCHITECTURE_DEFAULTS["projection_dropout"]
    init_logit_scale: PositiveFloat = _ARCHITECTURE_DEFAULTS["init_logit_scale"]
    init_from: str | None = None

    def model_config(self) -> ModelConfig:
        """The architecture part (what ``config.json`` of the trained model holds)."""
        return ModelConfig(**{f.name: copy.deepcopy(getattr(self, f.name)) for f in dataclasses.fields(ModelConfig)})


@dataclass(config=_SCHEMA)
class SynthSourceConfig:
    """A synthetic corpus generated by :mod:`paraspeechclap.synth` into a cache folder if missing.

    Attributes:
        n: number of clips.
        seed: plan seed (same seed = same corpus).
        engines: engines of the voice pool (default: all installed engines of the synth module).
        voices: explicit voice ids (``engine:name``) instead of all voices of ``engines``.
        exclude_voices: voice ids left out (e.g. held out for the dev set).
        mix: share of clips per engine (default: the synth module's mix).
        jobs: worker processes for generation.
        vary_formants: random formant scaling per clip, up to this relative shift (speaker variety).
        cache_dir: where the corpus goes (default ``$PARASPEECHCLAP_CACHE/synth/<hash of the settings>``).
    """

    n: PositiveInt = 1000
    seed: Int = 0
    engines: list[str] | None = None
    voices: list[str] | None = None
    exclude_voices: list[str] = field(default_factory=list)
    mix: dict[str, NonNegativeFloat] | None = None
    jobs: PositiveInt = 1
    vary_formants: Annotated[Float, Field(ge=0, lt=1)] = 0.0
    cache_dir: str | None = None


@dataclass(config=_SCHEMA)
class TagsSourceConfig:
    """A corpus of official-tag recipe clips (:mod:`paraspeechclap.synth.tags`), generated into a cache
    folder if missing: every clip carries a voice tag (pitch, texture, volume) and a delivery tag
    (clarity, rhythm), every pair equally often, in the voices given, speaking the training sentences.
    Rows hold ``intrinsic_tags`` (use ``captions: tags`` for a fresh ParaSpeechCaps-style wording per
    fetch), ``classification_<set>`` and ``gender``.

    Attributes:
        n: number of clips.
        seed: orders the sentences (the tag pairs and voices follow the clip index).
        engines: engines of the voice pool.
        exclude_voices: voice ids left out (default: the held-out dev and test voices).
        jobs: worker processes for rendering.
        cache_dir: where the corpus goes (default ``$PARASPEECHCLAP_CACHE/tags/<hash of the settings>``).
        styles: also draw the situational styles (sleepy, enunciated) in the delivery slot, each alone and
            with the voice tags it leaves true (:func:`paraspeechclap.synth.tags.style_combos`), as
            ``situational_tags``.
    """

    n: PositiveInt = 1000
    seed: Int = 0
    engines: list[str] = field(default_factory=lambda: ["espeak", "piper", "flite"])
    exclude_voices: list[str] = field(default_factory=lambda: ["held-out"])
    jobs: PositiveInt = 1
    cache_dir: str | None = None
    styles: bool = False


@dataclass(config=_SCHEMA)
class RepitchConfig:
    """Derive a pitch-level corpus from a source's clips (:mod:`paraspeechclap.synth.repitch`).

    The source's rows (after ``split``, ``exclude``, ``include`` and ``max_items``) are re-pitched by WORLD to
    balanced pitch levels relative to their gender's reference F0; the derived clips replace the
    source's rows (emotion labels dropped; gender, speaker, language kept).

    Attributes:
        n: number of derived clips.
        seed: plan seed.
        jobs: worker processes for rendering.
        cache_dir: where the corpus goes (default ``$PARASPEECHCLAP_CACHE/repitch/<hash>``).
        speaking_rate: also re-time each clip to a balanced speaking-rate level, relative to the
            clip's own tempo, and label it (use on clips at an ordinary rate, e.g.
            ``include: {emotion: [neutral]}``).
        exclude: drop the derived clips whose *origin* row has one of the listed values, e.g.
            ``{source: [emodb]}``. Unlike the source's own ``exclude`` (applied before re-pitching, so a
            different corpus is derived and rendered), the derived corpus stays the full recipe's, cached
            once: leave-one-corpus-out runs only drop its clips of the left-out corpus.
        keep: fields of the origin row copied onto its derived clips, e.g. ``[emotion]`` (a moderate pitch
            shift leaves the emotion a listener hears; the derived corpus and its cache do not change).
    """

    n: PositiveInt = 1000
    seed: Int = 0
    jobs: PositiveInt = 1
    cache_dir: str | None = None
    speaking_rate: Bool = False
    exclude: dict[str, list[str]] = field(default_factory=dict)
    keep: list[str] = field(default_factory=list)


_SOURCE_KINDS = ("manifest", "hf_dataset", "synth", "tags")


@dataclass(config=_SCHEMA)
class SourceConfig:
    """One data source. Exactly one of ``manifest``, ``hf_dataset``, ``synth``, ``tags`` is set.

    Attributes:
        manifest: a manifest file or folder (JSONL/JSON/CSV/Parquet, ``save_to_disk`` folder);
            relative paths are relative to the working directory; ``${PARASPEECHCLAP_SHARED_DATA}``
            is the shared data folder (see :func:`shared_data_folder`), like in ``audio_root`` and ``split_file``.
        hf_dataset: a Hugging Face hub dataset name (e.g. ``ajd12342/paraspeechcaps-intrinsic-train``).
        synth: a generated synthetic corpus.
        tags: a generated corpus of official-tag recipe clips (see :class:`TagsSourceConfig`).
        split: the Hugging Face split; with ``split_file``, the split of that file to keep.
        split_file: ``"shared"`` (the packaged split of the shared real data) or a split file path;
            rows not in ``split`` are dropped.
        audio_root: where ``<source>/<relative_audio_path>`` lives (default: the manifest's folder).
        weight: mixing weight (``data.mixing: weighted``).
        captions: ``manifest`` (the ``text_description`` field; a list gives a fresh draw per
            fetch), ``describe`` (generated from the label fields by
            :func:`paraspeechclap.data.captions.describe`, a fresh wording per fetch) or ``tags``
            (from the intrinsic/situational tags by ``describe_tags``). Evaluation uses the
            canonical caption (first / ``rng=None``).
        max_items: keep only the first N rows (quick runs).
        repitch: replace the rows by re-pitched versions with pitch-level labels (see :class:`RepitchConfig`).
        exclude: drop rows whose field has one of the listed values, e.g. ``{source: [emodb]}``
            (leave-one-corpus-out training) or ``{speaker: [...]}``.
        include: keep only rows whose field has one of the listed values (every field listed must
            match), e.g. ``{emotion: [neutral]}``; applied with ``exclude``, before ``max_items``.
        name: label in logs (default: derived from the source).
    """

    manifest: str | None = None
    hf_dataset: str | None = None
    synth: SynthSourceConfig | None = None
    tags: TagsSourceConfig | None = None
    split: str | None = None
    split_file: str | None = None
    audio_root: str | None = None
    weight: NonNegativeFloat = 1.0
    captions: Literal["manifest", "describe", "tags"] = "manifest"
    max_items: PositiveInt | None = None
    exclude: dict[str, list[str]] = field(default_factory=dict)
    include: dict[str, list[str]] = field(default_factory=dict)
    name: str | None = None
    repitch: RepitchConfig | None = None

    @field_validator("manifest", "audio_root", "split_file")
    @classmethod
    def _shared_data(cls, value: str | None) -> str | None:
        return _resolve_shared(value)

    @model_validator(mode="after")
    def _one_kind(self) -> SourceConfig:
        kinds = [k for k in _SOURCE_KINDS if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise Rule(f"set exactly one of {', '.join(_SOURCE_KINDS)} (got {', '.join(kinds) or 'none'})")
        return self


@dataclass(config=_SCHEMA)
class DataConfig:
    """Training and development data.

    ``train_manifest`` + ``audio_root`` is shorthand for one ``train`` source (likewise
    ``dev_manifest`` + ``dev_audio_root``); the loaded config holds the source list only.

    Attributes:
        mixing: how several train sources combine: ``concat``; ``interleave`` (one row of each in
            turn until the largest is exhausted, smaller ones restart: the official Combined
            recipe); ``weighted`` (draw sources by ``weight``; ``epoch_size`` rows per epoch).
        sampler: ``shuffle``, ``class_balanced`` (inverse tag frequency over ``balanced_tag_field``,
            the Intrinsic recipe) or ``group_balanced`` (the rows that carry every ``balance_require`` field
            are drawn so that each value of ``balance_group_field`` has the same share, together keeping
            theirs; other rows as with ``shuffle``: e.g. every corpus's labelled recordings equally often).
        num_workers: DataLoader worker processes (0 = load in the training process).
        max_bad_items: distinct unreadable/silent training items tolerated (each is skipped and
            counted); one more stops the run with an error.
    """

    train: list[SourceConfig] = field(default_factory=list)
    train_manifest: str | None = None
    audio_root: str | None = None
    dev: list[SourceConfig] = field(default_factory=list)
    dev_manifest: str | None = None
    dev_audio_root: str | None = None
    mixing: Literal["concat", "interleave", "weighted"] = "concat"
    epoch_size: PositiveInt | None = None
    sampler: Literal["shuffle", "class_balanced", "group_balanced"] = "shuffle"
    balanced_tag_field: str = "intrinsic_tags"
    balance_group_field: str = "source"
    balance_require: list[str] = field(default_factory=lambda: ["emotion"])
    min_rare_per_batch: NonNegativeInt = 2
    rare_threshold: Fraction = 0.05
    num_workers: NonNegativeInt = 0
    max_bad_items: NonNegativeInt = 100

    @field_validator("train_manifest", "audio_root", "dev_manifest", "dev_audio_root")
    @classmethod
    def _shared_data(cls, value: str | None) -> str | None:
        return _resolve_shared(value)

    @model_validator(mode="after")
    def _expand_shorthands(self) -> DataConfig:
        """The shorthands become one-source lists (the resolved config holds the canonical form)."""
        if self.train_manifest is not None:
            if self.train:
                raise Rule(f"{self.train_manifest!r}: set either data.train or data.train_manifest, not both",
                           "train_manifest")
            self.train = [SourceConfig(manifest=self.train_manifest, audio_root=self.audio_root)]
            self.train_manifest = self.audio_root = None
        if self.dev_manifest is not None:
            if self.dev:
                raise Rule(f"{self.dev_manifest!r}: set either data.dev or data.dev_manifest, not both",
                           "dev_manifest")
            self.dev = [SourceConfig(manifest=self.dev_manifest, audio_root=self.dev_audio_root)]
            self.dev_manifest = self.dev_audio_root = None
        return self


@dataclass(config=_SCHEMA)
class AudioConfig:
    """Training-time audio: random crops of the backbone's prepared input (official: 10 s).

    The backbone's ``prepare`` (e.g. per-utterance normalisation) runs on the whole clip first,
    then the crop is taken, as the official recipe does.

    Attributes:
        crop_seconds: crop length; ``None`` = whole clips (up to the backbone's window).
        pad_to_crop: zero-pad shorter clips to the crop length and count the padding as audio
            (all-ones masks, official); ``False`` keeps their own length (masked).
    """

    crop_seconds: PositiveFloat | None = 10.0
    pad_to_crop: Bool = True


@dataclass(config=_SCHEMA)
class AugmentConfig:
    """Waveform augmentation before ``prepare`` (none in the official recipe).

    Attributes:
        gain_db: ``[lo, hi]``: multiply the raw waveform by a random gain, uniform in dB.
        relabel_loudness: after the gain, re-derive the ``loudness`` label (and ``soft``/``loud``
            tags) of rows that have one from the new active level, so captions stay true.
        loudness_thresholds_dbfs: ``[soft_below, loud_above]`` active-level thresholds.
        narrowband_prob: probability that a clip is band-limited (resampled to ``narrowband_rate``
            and back), as a telephone or 8 kHz recording sounds once loaded; such a clip's
            ``clarity`` (recording) label is dropped. 0 = off.
        narrowband_rate: the low sample rate, Hz.
        channel_prob: probability that a clip passes through a random room, microphone colouring and
            noise floor (:mod:`paraspeechclap.training.channel`); such a clip's ``clarity`` label is
            dropped too. 0 = off.
    """

    gain_db: Pair | None = None
    relabel_loudness: Bool = False
    loudness_thresholds_dbfs: Pair = field(default_factory=lambda: [-29.0, -18.0])
    narrowband_prob: Fraction = 0.0
    narrowband_rate: Annotated[Int, Field(ge=1000, lt=16000)] = 8000
    channel_prob: Fraction = 0.0

    @field_validator("gain_db", "loudness_thresholds_dbfs")
    @classmethod
    def _ordered(cls, value: list[float] | None) -> list[float] | None:
        return value if value is None else _ordered_pair(value)


@dataclass(config=_SCHEMA)
class DomainShiftConfig:
    """Corpus- or speaker-offset augmentation of cached features (:mod:`paraspeechclap.training.domain_shift`).

    Attributes:
        prob: probability that a training clip of a known domain is moved onto another's offset.
        domain_field: the row field naming a clip's domain (the corpus, in the shared manifests' ``source``).
        scale: ``[lo, hi]``: the fraction of the offset difference applied, uniform.
        min_clips: domains with fewer training clips neither move nor are moved onto.
        skip: domains left out (e.g. ``synth``: a TTS engine's offset is not a recording's).
        match: row fields a target domain must share with the clip's domain (each domain's most
            common value), e.g. ``[gender]`` when the domains are speakers.
        require: row fields a clip must carry to move or count towards a domain (e.g. ``[emotion]``:
            the labelled real recordings only, not the synthetic voices).
    """

    prob: Fraction = 0.5
    domain_field: str = "source"
    scale: Pair = field(default_factory=lambda: [1.0, 1.0])
    min_clips: PositiveInt = 50
    skip: list[str] = field(default_factory=list)
    match: list[str] = field(default_factory=list)
    require: list[str] = field(default_factory=list)

    @field_validator("scale")
    @classmethod
    def _ordered(cls, value: list[float]) -> list[float]:
        return _ordered_pair(value, nonnegative=True)


@dataclass(config=_SCHEMA)
class AudioOffsetConfig:
    """The stored audio offset (:mod:`paraspeechclap.offset`), refit on the current weights before every
    dev evaluation and before the final model is saved, so ``best/`` and ``final/`` each carry their own.

    Attributes:
        scale: fraction of the reference embeddings' mean that is removed (``x' = l2(x - scale * mean)``).
        require: row fields a training clip must carry to be in the reference set (e.g. ``[emotion]``: the
            real recordings, not the synthetic voices or the re-pitched copies, whose labels were dropped);
            the fields' values are never read. Each distinct clip counts once, over all its cached variants.
        train: the loss sees the offset too: each step's audio embeddings become ``l2(x) - offset``, the
            offset following ``scale`` times the batches' mean (of the rows carrying ``require``) with
            ``momentum`` between refits, so the heads learn around the centred embeddings instead of
            being calibrated after training.
        momentum: weight of the running offset against each batch's mean (``train`` only).
        gate: apply the offset to each clip in proportion to how much it resembles the reference clips
            rather than the other training clips (a soft nearest-mean gate, :mod:`paraspeechclap.offset`):
            synthetic voices then keep their embeddings while recordings are calibrated. Needs ``require``.
        gate_temperature: the gate's temperature (smaller: closer to a hard nearest-mean choice).
        within: attribute sets (``paraspeechclap data sets``) whose class directions the offset is restricted
            to (e.g. ``[emotion8]``: it corrects the emotion prior and moves other attributes only through the
            directions they share); empty: the whole mean.
    """

    scale: Annotated[Float, Field(gt=0, le=2)] = 0.75
    require: list[str] = field(default_factory=list)
    train: Bool = False
    momentum: Annotated[Float, Field(ge=0, lt=1)] = 0.9
    gate: Bool = False
    gate_temperature: PositiveFloat = 0.05
    within: AttributeSets = field(default_factory=list)

    @model_validator(mode="after")
    def _gate_needs_two_groups(self) -> AudioOffsetConfig:
        if self.gate and not self.require:
            raise Rule("true needs require (the reference clips; the others are the gate's second group)", "gate")
        if self.gate and self.train:
            raise Rule("true cannot be combined with train: true (the gate is fit after training)", "gate")
        return self


@dataclass(config=_SCHEMA)
class FeaturesConfig:
    """Frozen-backbone mode: cache the speech backbone's ``forward_frozen`` outputs.

    Attributes:
        cache: train on cached features (requires ``model.audio_trainable: []``).
        cache_dir: cache root (default ``$PARASPEECHCLAP_CACHE/features``).
        variants: augmented variants cached per clip when a random crop or gain is configured;
            one is drawn per fetch. Must be >= 1 (0 would silently drop the augmentation).
        batch_size: clips per backbone pass while filling the cache.
        text_cache: cache the frozen text backbone's outputs per caption string (in memory).
        seed: seed of the cached augmented variants (default: ``train.seed``). It is part of the
            cache key, so fixing it lets runs that differ only in ``train.seed`` (the heads'
            initialisation and the data order) share one cache instead of recomputing every clip.
        domain_shift: move cached training clips onto other domains' (corpora's, speakers') offsets (off when absent);
            applied after the cache, so it is not part of the cache key.
    """

    cache: Bool = False
    cache_dir: str | None = None
    variants: AtLeastOne = 4
    batch_size: PositiveInt = 16
    text_cache: Bool = True
    seed: Int | None = None
    domain_shift: DomainShiftConfig | None = None


@dataclass(config=_SCHEMA)
class GroupDROConfig:
    """Worst-group weighting of the attribute cross-entropy (:mod:`paraspeechclap.losses.group_dro`).

    Attributes:
        group_field: the row field naming a row's group (the corpus, in the shared manifests' ``source``).
        group_set: group the rows by their gold class of this attribute set instead (e.g. ``emotion8``: the
            worst class rather than the worst corpus); ``group_field`` is then unused.
        require: row fields a row must carry to belong to a group (e.g. ``[emotion]``: the labelled real
            recordings, not the synthetic voices or the re-pitched copies); their values are never read.
        eta: step size of the group weights' update (``q_g <- q_g * exp(eta * loss_g)``).
        min_clips: groups with fewer training rows weigh as rows without a group.
        skip: groups left out (their rows weigh as rows without a group).
    """

    group_field: str = "source"
    group_set: AttributeSetName | None = None
    require: list[str] = field(default_factory=lambda: ["emotion"])
    eta: NonNegativeFloat = 0.01
    min_clips: PositiveInt = 50
    skip: list[str] = field(default_factory=list)


@dataclass(config=_SCHEMA)
class CentredConfig:
    """The attribute cross-entropy once more on speaker-centred embeddings (:mod:`paraspeechclap.losses.centred`).

    Attributes:
        speaker_field: the row field naming a row's speaker (the shared manifests' ``speaker``, unique across
            corpora).
        require: row fields a row must carry to be centred (e.g. ``[emotion]``: the labelled recordings);
            their values are never read.
        sets: the attribute sets of that cross-entropy (each in ``loss.attribute_sets``): the ones that
            change between a speaker's clips (emotion), not the ones centring removes (gender).
        weight: multiplier of the centred term (``centred_loss`` in the log includes it).
        min_clips: speakers with fewer distinct training clips are not centred.
        min_classes: speakers whose clips carry fewer distinct gold classes of ``sets`` are not centred (a
            speaker heard in one emotion only has nothing of it left once centred).
        refresh: steps between recomputing the speakers' means from the current weights (every cached
            variant of each clip, the clip counting once).
        at: where a clip is moved off its speaker's mean: ``"embedding"`` (its normalised embedding, as
            ``center="speaker"`` does at inference) or ``"linear1"`` (the output of the audio projection's
            first linear layer, the last point linear in the backbone's features; the rest of the projection
            and the normalisation follow).
    """

    speaker_field: str = "speaker"
    require: list[str] = field(default_factory=lambda: ["emotion"])
    sets: AttributeSets = field(default_factory=lambda: ["emotion8"])
    weight: NonNegativeFloat = 0.5
    min_clips: PositiveInt = 10
    min_classes: PositiveInt = 2
    refresh: PositiveInt = 100
    at: Literal["embedding", "linear1"] = "embedding"


@dataclass(config=_SCHEMA)
class AttributePromptsConfig:
    """More wordings of the attribute sets' classes for the training cross-entropy only (the inference
    ensemble is unchanged), so that the text head places words a user may type near their class.

    Attributes:
        templates: templates (one ``{}``) added to the trained sets' own.
        template_sets: the sets that get ``templates`` (``None``: every set in ``loss.attribute_sets``; a
            bare-word template suits adjective sets such as emotion, not adverb ones such as loudness).
        words: set name -> class -> phrases added to that class's own.
    """

    templates: list[str] = field(default_factory=list)
    template_sets: AttributeSets | None = None
    words: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    def for_set(self, name: str) -> tuple[list[str], dict[str, list[str]]]:
        """The templates and class phrases added to set ``name``."""
        widen = self.template_sets is None or name in self.template_sets
        return (self.templates if widen else []), self.words.get(name, {})


@dataclass(config=_SCHEMA)
class LossConfig:
    """Training objective.

    Attributes:
        name: ``contrastive`` or ``multitask`` (contrastive + tag BCE, the Intrinsic recipe).
        gather_with_grad: autograd all-gather under DDP (official: False).
        local_loss: local logits rows (requires ``gather_with_grad``).
        classification_weight: multiplier of the tag BCE (official 1.0).
        tag_field: row field holding the tags for the classification term.
        tag_vocab: tag vocabulary; default: sorted tags of the training rows.
        tag_prompts: ``builtin`` (the package's paraphrases in ``tag_prompt_template``), ``none``
            (only ``default_prompt_template``) or a JSON file ``{tag: [sentence, ...]}`` (the
            official ``synonym_templates.json`` format).
        max_logit_scale: clamp of the contrastive scale.
        clamp: ``epoch`` (official: at each epoch end and after the last step) or ``step``.
        attribute_sets: named attribute sets (``paraspeechclap data sets``) trained with a
            cross-entropy over each set's candidate prompts, for every row that has the set's
            gold label (our addition: it trains what zero-shot classification does).
        attribute_weight: multiplier of that term.
        attribute_reduction: ``mean`` over the sets a batch labels, or ``sum`` (adding a set then leaves
            the others' weight: with ``attribute_weight`` 1/K, the K sets of a recipe weigh as they did
            under ``mean``, and each set added weighs as much again).
        attribute_prompts: more templates and class phrases for that cross-entropy's prompts (training only).
        group_dro: weight the attribute cross-entropy's grouped rows (corpora) towards the groups with the
            highest recent loss (online group DRO; issue 18: an objective that penalises the worst corpus);
            off when absent.
        centred: the attribute cross-entropy again on each labelled row's embedding centred on its speaker's
            mean (issue 18: speaker-relative features learned in training); off when absent.
    """

    name: Literal["contrastive", "multitask"] = "contrastive"
    gather_with_grad: Bool = False
    local_loss: Bool = False
    classification_weight: NonNegativeFloat = 1.0
    tag_field: str = "intrinsic_tags"
    tag_vocab: list[str] | None = None
    tag_prompts: str = "builtin"
    tag_prompt_template: str = "A person is speaking in a {} style"
    default_prompt_template: str = "A person is speaking in a {} style."
    max_logit_scale: PositiveFloat = 100.0
    clamp: Literal["epoch", "step"] = "epoch"
    attribute_sets: AttributeSets = field(default_factory=list)
    attribute_weight: NonNegativeFloat = 1.0
    attribute_reduction: Literal["mean", "sum"] = "mean"
    group_dro: GroupDROConfig | None = None
    attribute_prompts: AttributePromptsConfig | None = None
    centred: CentredConfig | None = None

    @model_validator(mode="after")
    def _needs(self) -> LossConfig:
        if self.local_loss and not self.gather_with_grad:
            raise Rule("true requires loss.gather_with_grad=true", "local_loss")
        if self.group_dro is not None and not self.attribute_sets:
            raise Rule("weights the attribute cross-entropy: set loss.attribute_sets", "group_dro")
        for i, name in enumerate(self.centred.sets if self.centred is not None else []):
            self._require_trained(name, f"centred.sets.{i}")
        if self.attribute_prompts is not None:
            self._check_attribute_prompts(self.attribute_prompts)
        return self

    def _require_trained(self, name: str, key: str) -> None:
        """A set another option refers to (named at ``key``) must be one the cross-entropy trains."""
        if name not in self.attribute_sets:
            raise Rule(f"{name!r} is not in loss.attribute_sets", key)

    def _check_attribute_prompts(self, extra: AttributePromptsConfig) -> None:
        from ..data.attributes import get_attribute_set
        from ..errors import InputError

        for i, t in enumerate(extra.templates):
            if "{}" not in t:
                raise Rule(f"template {t!r} has no '{{}}' placeholder", f"attribute_prompts.templates.{i}")
        for i, name in enumerate(extra.template_sets or []):
            self._require_trained(name, f"attribute_prompts.template_sets.{i}")
        for name, words in extra.words.items():
            self._require_trained(name, f"attribute_prompts.words.{name}")
            try:  # the templates were checked above: widening by the words alone finds their classes
                get_attribute_set(name).widened(words=words)
            except InputError as e:
                raise Rule(str(e), f"attribute_prompts.words.{name}") from None


@dataclass(config=_SCHEMA)
class OptimConfig:
    """Optimiser (official: Adam, lr 1e-5, no weight decay, constant, no clipping).

    Attributes:
        name: ``adam`` or ``adamw``.
        schedule: ``constant``, ``cosine`` or ``linear`` decay to 0 at the last step, after
            ``warmup_steps`` of linear warm-up.
        grad_clip_norm: clip the global gradient norm (None = off).
    """

    name: Literal["adam", "adamw"] = "adam"
    lr: PositiveFloat = 1e-5
    betas: Annotated[list[Annotated[Float, Field(ge=0, lt=1)]], Field(min_length=2, max_length=2)] = field(
        default_factory=lambda: [0.9, 0.999])
    eps: PositiveFloat = 1e-8
    weight_decay: NonNegativeFloat = 0.0
    schedule: Literal["constant", "cosine", "linear"] = "constant"
    warmup_steps: NonNegativeInt = 0
    grad_clip_norm: PositiveFloat | None = None


@dataclass(config=_SCHEMA)
class TrainConfig:
    """The run itself.

    Attributes:
        output_dir: run folder (``config.yaml``, ``metrics.jsonl``, ``checkpoints/``, ``best/``, ``final/``).
        max_steps: stop after this many optimiser steps.
        epochs: stop after this many epochs (the first limit reached wins; one is required).
        batch_size: items per step per process (official 32/GPU).
        seed: shuffling seed, shared by all ranks; augmentation and dropout use ``seed + rank``.
        device: ``auto``, ``cpu`` or ``cuda``.
        precision: ``fp32`` or ``bf16`` (autocast).
        grad_checkpointing: activation checkpointing of trainable backbones.
        checkpoint_every: steps between resumable checkpoints.
        keep_checkpoints: newest checkpoints kept.
        log_every: steps between metric lines.
        num_threads: torch CPU threads (None = torch's default).
        progress: show a progress bar (on a terminal).
        find_unused_parameters: DDP's option, for custom backbones with parameters that get no
            gradient (off: faster, and the built-in backbones do not need it).
        deterministic: deterministic cuDNN algorithms (official; needed for exact resumption on GPUs).
    """

    output_dir: str
    max_steps: AtLeastOne | None = None
    epochs: AtLeastOne | None = None
    batch_size: PositiveInt = 32
    seed: Int = 3407
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["fp32", "bf16"] = "fp32"
    grad_checkpointing: Bool = False
    checkpoint_every: PositiveInt = 1500
    keep_checkpoints: PositiveInt = 3
    log_every: PositiveInt = 10
    num_threads: PositiveInt | None = None
    progress: Bool = True
    find_unused_parameters: Bool = False
    deterministic: Bool = True

    @model_validator(mode="after")
    def _needs_a_limit(self) -> TrainConfig:
        if self.max_steps is None and self.epochs is None:
            raise Rule("null, and so is train.epochs: set train.max_steps or train.epochs (one is required)",
                       "max_steps")
        return self


@dataclass(config=_SCHEMA)
class EvalConfig:
    """Periodic evaluation on ``data.dev`` (main rank).

    Attributes:
        every_steps: evaluate every N steps (None = only at the end).
        at_end: evaluate after the last step.
        attribute_sets: zero-shot classification sets (``paraspeechclap data sets``) scored by UAR.
        prompt_ensemble: average each class over all its prompts instead of the default prompt.
        batch_size: clips per forward pass.
        best_metric: metric that selects ``best/`` (higher is better): a recall
            (``val/audio_to_text/R@1``, ...) or ``val/<set>/uar|uar_present|accuracy`` of a set
            in ``attribute_sets`` (:func:`.metric_names.best_metric_choices`).
    """

    every_steps: AtLeastOne | None = None
    at_end: Bool = True
    attribute_sets: AttributeSets = field(default_factory=list)
    prompt_ensemble: Bool = False
    batch_size: PositiveInt = 16
    best_metric: str = "val/audio_to_text/R@1"

    @model_validator(mode="after")
    def _known_metric(self) -> EvalConfig:
        from .metric_names import best_metric_choices

        allowed = best_metric_choices(self.attribute_sets)
        if self.best_metric not in allowed:
            raise Rule(f"{self.best_metric!r} is not a higher-is-better dev metric with eval.attribute_sets="
                       f"{self.attribute_sets}; one of: {', '.join(allowed)}", "best_metric")
        return self


@dataclass(config=_SCHEMA)
class LoggingConfig:
    """Metric sinks: ``metrics.jsonl`` always; TensorBoard with the optional extra ``tensorboard``."""

    tensorboard: Bool = False


@dataclass(config=_SCHEMA)
class RunConfig:
    """A complete training run."""

    model: TrainModelConfig
    train: TrainConfig
    data: DataConfig = field(default_factory=DataConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    audio_offset: AudioOffsetConfig | None = None

    @model_validator(mode="after")
    def _offset_in_architecture(self) -> RunConfig:
        """The saved model holds the offset exactly when the run fits one."""
        self.model.audio_offset = self.audio_offset is not None
        self.model.audio_offset_gate = self.audio_offset is not None and self.audio_offset.gate
        return self

    @model_validator(mode="after")
    def _cache_needs_frozen_backbone(self) -> RunConfig:
        if self.features.cache and self.model.audio_trainable != []:
            raise Rule("true needs a frozen speech backbone: set model.audio_trainable: [] "
                       f"(got {self.model.audio_trainable!r})", "features.cache")
        if self.features.domain_shift is not None and not self.features.cache:
            raise Rule("moves cached features: it needs features.cache: true", "features.domain_shift")
        if self.loss.centred is not None and not self.features.cache:
            raise Rule("recomputes speaker means from cached features: it needs features.cache: true", "loss.centred")
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (what ``config.yaml`` and checkpoints store)."""
        return dataclasses.asdict(self)


# -- validation ---------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _run_config_adapter() -> TypeAdapter[RunConfig]:
    return TypeAdapter(RunConfig)


def _build_run_config(raw: Any) -> RunConfig:
    """Validate a raw mapping into a :class:`RunConfig`.

    Raises:
        ConfigError: one line naming the dotted key, the bad value and what is allowed.
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"config: expected a mapping, got {type(raw).__name__} {short_repr(raw)}")
    try:
        return _run_config_adapter().validate_python(raw)
    except ValidationError as exc:
        raise config_error(exc, RunConfig) from None


# -- YAML files and overrides ------------------------------------------------------------------------
def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML ({str(exc).splitlines()[0]})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a YAML mapping, got {type(data).__name__}")
    return data


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Mappings merge key by key (recursively); any other value in ``over`` replaces ``base``'s."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def load_yaml_with_bases(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Read a YAML config, resolving ``base:`` (a path relative to the file, or a list of them)."""
    path = Path(path).expanduser().resolve()
    if path in _seen:
        raise ConfigError(f"{path}: circular 'base:' chain ({' -> '.join(p.name for p in (*_seen, path))})")
    data = _read_yaml(path)
    bases = data.pop("base", None)
    if bases is None:
        return data
    merged: dict[str, Any] = {}
    for b in [bases] if isinstance(bases, str) else list(bases):
        if not isinstance(b, str):
            raise ConfigError(f"{path}: 'base' must be a path or a list of paths, got {b!r}")
        merged = deep_merge(merged, load_yaml_with_bases(path.parent / b, (*_seen, path)))
    return deep_merge(merged, data)


def _parse_override(text: str) -> tuple[list[str], Any]:
    import yaml

    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r}: expected key=value, e.g. optim.lr=1e-4")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def _set_path(data: dict[str, Any], parts: list[str], value: Any, text: str) -> None:
    """Set ``data[parts...] = value``; a numeric part indexes a list, missing mappings are created
    (so an unknown key is reported by the schema with its full path)."""
    node: Any = data
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                where = ".".join(parts[: i + 1])
                raise ConfigError(f"override {text!r}: {where!r} is not an index of a {len(node)}-item list")
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            else:
                if node.get(part) is None:
                    node[part] = {}
                node = node[part]
        else:
            raise ConfigError(f"override {text!r}: {'.'.join(parts[:i])!r} is a value, not a section")


#: an override of one of these replaces the other, set by the recipe (a file setting both is an error).
_DISPLACES = {"data.train_manifest": "train", "data.dev_manifest": "dev",
              "data.train": "train_manifest", "data.dev": "dev_manifest"}


def _displace_alternative(data: dict[str, Any], key: str, value: Any) -> None:
    """``--set data.train_manifest=F`` on a recipe with a ``data.train`` list: the list goes (and
    ``--set data.train=[...]`` on a recipe with ``data.train_manifest``: the shorthand goes)."""
    section, other = data.get("data"), _DISPLACES.get(key)
    if other is None or value in (None, []) or not isinstance(section, dict) or section.get(other) in (None, []):
        return
    if isinstance(section[other], list):
        n = len(section[other])
        logger.info("--set %s replaces the recipe's data.%s (%d source%s)", key, other, n, "" if n == 1 else "s")
        section[other] = []
    else:
        logger.info("--set %s replaces the recipe's data.%s (%s)", key, other, section[other])
        section[other] = None


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` overrides to a raw config mapping (validation happens later).

    A numeric path component indexes a list (``data.train.0.weight=2``); missing mappings on the
    way are created, so an unknown key is reported by the schema check with its full path.
    ``data.train_manifest`` / ``data.dev_manifest`` replace the recipe's ``data.train`` /
    ``data.dev`` list, and the other way round (logged at INFO level).
    """
    data = copy.deepcopy(data)
    for text in overrides:
        parts, value = _parse_override(text)
        _set_path(data, parts, value, text)
        _displace_alternative(data, ".".join(parts), value)
    return data


def load_config(path: str | Path | None = None, overrides: list[str] | None = None,
                data: dict[str, Any] | None = None) -> RunConfig:
    """Load, override and validate a run config.

    Args:
        path: YAML file (``base:`` resolved).
        overrides: ``key.sub=value`` strings applied after the file.
        data: a raw mapping instead of (or merged over) the file.

    Raises:
        ConfigError: unreadable file, unknown key, wrong type, missing or inconsistent value.
    """
    raw = load_yaml_with_bases(path) if path is not None else {}
    if data:
        raw = deep_merge(raw, data)
    return _build_run_config(apply_overrides(raw, list(overrides or [])))


def config_to_yaml(cfg: RunConfig) -> str:
    """The resolved config as YAML text (keys in schema order)."""
    import yaml

    return yaml.safe_dump(cfg.to_dict(), sort_keys=False, allow_unicode=True)
