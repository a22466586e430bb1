"""The official ParaSpeechCaps tags the synthetic corpus can produce, as recipes over checked building blocks.

Each producible tag of the official intrinsic sets (``pitch``, ``texture``, ``volume``, ``clarity``,
``rhythm``) is a :class:`TagRecipe`: what it does to the text, to the WORLD parameters (register,
voice quality, F0 range, formants), to the waveform afterwards (filters, pauses, smearing, a room) and
to the level. Every piece has a physical check in the tests (``docs/data.md``, "Towards the rest of the
vocabulary"). :func:`render_tagged` renders one sentence in one voice with a tag from a voice set
(pitch, texture, volume) and one from a delivery set (clarity, rhythm): the chain is

    text -> engine -> 16 kHz -> trim -> WORLD (register, quality, F0 range, formants) -> effects -> level

as :func:`paraspeechclap.synth.pipeline.render`'s, so a tagged clip and its base clip differ only by the
tags. Left out, as not producible honestly by signal manipulation: silky, authoritative (no physical
definition to check against) and lisp. Parameters are fixed mid-range values: the recipes define what
a tag means here; a corpus plan draws around them. The situational styles sleepy and enunciated are
recipes too, drawn in the delivery slot beside the voice tags they leave true (:func:`style_combos`).
:func:`plan_tagged` and :func:`generate_tagged` make
a corpus of such clips (``benchmarks/vocabulary.py``'s evaluation clips, and the ``tags`` training source,
:class:`paraspeechclap.training.config.TagsSourceConfig`). Issue 21.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .engines import Voice

SAMPLE_RATE = 16_000
#: bumped whenever a recipe or :func:`plan_tagged` changes, so a cached corpus is never reused across them
RECIPES_VERSION = 3  # 2: rows carry the loudness label of their level; 3: slurred's uneven timing, style rows
#: the base clip's level (the middle of the ``normal`` loudness range) and the soft and loud levels
NORMAL_DBFS, SOFT_DBFS, LOUD_DBFS = -23.0, -35.0, -13.0
#: the loudness label (the synthetic plan's soft / normal / loud, whose level ranges hold these) of each level
LOUDNESS_OF_LEVEL = {SOFT_DBFS: "soft", NORMAL_DBFS: "normal", LOUD_DBFS: "loud"}
#: the length of the stretches uneven timing reads alternately faster and slower (about a syllable pair)
UNEVEN_STRETCH_S = 0.45

Effect = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]


@dataclass(frozen=True)
class TagRecipe:
    """How one official tag is produced.

    Attributes:
        attribute: the official set it belongs to.
        semitones: register in semitones from the gender's reference F0 (0: the reference itself).
        quality: a WORLD voice quality (:data:`paraspeechclap.synth.world.VOICE_QUALITIES`).
        f0_range: factor on every voiced frame's distance from the median F0, in semitones.
        formant_scale: factor on the formant frequencies.
        tempo: speaking-rate factor (WORLD, :func:`paraspeechclap.synth.world.change_tempo`; < 1 slower).
        uneven: depth of uneven timing (:func:`paraspeechclap.synth.world.vary_tempo`, stretches of
            :data:`UNEVEN_STRETCH_S`; 0: even), which keeps the duration and so the rate label.
        text: rewrites the sentence before synthesis (seeded).
        effects: applied to the 16 kHz waveform after WORLD, in order.
        level_dbfs: the active-speech level (None: the base's :data:`NORMAL_DBFS`).
    """

    attribute: str
    semitones: float = 0.0
    quality: str = "modal"
    f0_range: float = 1.0
    formant_scale: float = 1.0
    tempo: float = 1.0
    uneven: float = 0.0
    text: Callable[[str, random.Random], str] | None = None
    effects: tuple[Effect, ...] = ()
    level_dbfs: float | None = None


def _quality_params(quality: str) -> dict[str, float]:
    """The middle of the corpus plan's range for each parameter of ``quality``."""
    from .pipeline import QUALITY_RANGES

    return {k: (lo + hi) / 2 for k, (lo, hi) in QUALITY_RANGES[quality].items()}


def _tilt(db: float) -> Effect:
    from .effects import tilt

    return lambda x, sr, rng: tilt(x, sr, db)


def _room(x: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    from .effects import reverberant

    return reverberant(x, sr, {"rt60_s": 1.0, "drr_db": -2.0}, rng)


def _nasal(x: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    from .effects import nasalize

    return nasalize(x, sr, zero_hz=500.0)


def _smeared(x: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    from .effects import smear

    return smear(x, sr, span_s=0.1)


def _pauses(n: int, seconds: float) -> Effect:
    from .prosody import insert_pauses

    return lambda x, sr, rng: insert_pauses(x, n, seconds, rng)


def _flowing(x: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    from .prosody import close_pauses

    return close_pauses(x)


def _stammered(text: str, rng: random.Random) -> str:
    from .disfluency import stammer

    return stammer(text, rng, words=2, repeats=2)[0]


#: every producible official tag, by name
TAG_RECIPES: dict[str, TagRecipe] = {
    # pitch: register and timbre
    "shrill": TagRecipe("pitch", semitones=5.0, effects=(_tilt(4.0),)),
    "deep": TagRecipe("pitch", semitones=-5.0),
    "nasal": TagRecipe("pitch", effects=(_nasal,)),
    # texture: voice quality
    "husky": TagRecipe("texture", quality="breathy"),
    "raspy": TagRecipe("texture", quality="raspy"),
    "guttural": TagRecipe("texture", quality="raspy", formant_scale=0.85),
    "vocal-fry": TagRecipe("texture", quality="creaky"),
    # volume
    "booming": TagRecipe("volume", semitones=-5.0, effects=(_tilt(-4.0), _room), level_dbfs=LOUD_DBFS),
    "loud": TagRecipe("volume", level_dbfs=LOUD_DBFS),
    "hushed": TagRecipe("volume", quality="breathy", level_dbfs=SOFT_DBFS),
    "soft": TagRecipe("volume", level_dbfs=SOFT_DBFS),
    # clarity: articulation
    "crisp": TagRecipe("clarity"),
    "slurred": TagRecipe("clarity", uneven=0.35, effects=(_smeared,)),
    "stammering": TagRecipe("clarity", text=_stammered),
    # rhythm: pauses and melody
    "flowing": TagRecipe("rhythm", effects=(_flowing,)),
    "punctuated": TagRecipe("rhythm", effects=(_pauses(2, 0.35),)),
    "hesitant": TagRecipe("rhythm", effects=(_pauses(4, 0.7),)),
    "singsong": TagRecipe("rhythm", f0_range=2.0),
    "monotonous": TagRecipe("rhythm", f0_range=0.2),
    # situational styles the blocks can render (drawn by plan_tagged(styles=True) in the delivery slot)
    "sleepy": TagRecipe("situational", semitones=-2.0, quality="breathy", f0_range=0.4, tempo=0.75,
                        level_dbfs=SOFT_DBFS),
    "enunciated": TagRecipe("situational", tempo=0.85, effects=(_pauses(4, 0.2), _tilt(2.0))),
}
VOICE_SETS, DELIVERY_SETS, STYLE_SETS = ("pitch", "texture", "volume"), ("clarity", "rhythm"), ("situational",)


def produced_tags(attribute: str) -> list[str]:
    """The tags of one official set that :data:`TAG_RECIPES` produces, in registry order."""
    return [t for t, r in TAG_RECIPES.items() if r.attribute == attribute]


@functools.cache
def level_defined_tags() -> dict[str, str]:
    """Tags whose recipe sets the level, each with that level's loudness label (``soft`` and ``hushed``:
    soft; ``loud`` and ``booming``: loud): a gain that moves a clip to another loudness makes them false.
    Volume tags only: a sleepy clip made louder is still sleepy."""
    return {t: LOUDNESS_OF_LEVEL[r.level_dbfs] for t, r in TAG_RECIPES.items()
            if r.level_dbfs is not None and r.attribute == "volume"}


def loudness_of(tags: Sequence[str]) -> str:
    """The loudness label of a clip rendered with ``tags`` (the level its recipes set, else normal)."""
    level = _combined(tags).level_dbfs
    return LOUDNESS_OF_LEVEL[NORMAL_DBFS if level is None else level]


def _combined(tags: Sequence[str]) -> TagRecipe:
    """One recipe for several tags: registers add, F0 ranges and formant scales multiply, effects run
    in tag order; at most one non-modal quality and one level."""
    recipes = [TAG_RECIPES[t] for t in tags]
    qualities = {r.quality for r in recipes} - {"modal"}
    levels = {r.level_dbfs for r in recipes} - {None}
    texts = [r.text for r in recipes if r.text is not None]
    if len(qualities) > 1 or len(levels) > 1 or len(texts) > 1:
        raise ValueError(f"tags {list(tags)} disagree on the voice quality, level or text")
    return TagRecipe(
        attribute="+".join(r.attribute for r in recipes),
        semitones=sum(r.semitones for r in recipes),
        quality=qualities.pop() if qualities else "modal",
        f0_range=float(np.prod([r.f0_range for r in recipes])),
        formant_scale=float(np.prod([r.formant_scale for r in recipes])),
        tempo=float(np.prod([r.tempo for r in recipes])),
        uneven=max(r.uneven for r in recipes),
        text=texts[0] if texts else None,
        effects=tuple(e for r in recipes for e in r.effects),
        level_dbfs=levels.pop() if levels else None,
    )


def render_tagged(voice: Voice, text: str, tags: Sequence[str], seed: int) -> tuple[np.ndarray, str]:
    """One clip of ``text`` in ``voice`` carrying ``tags`` (keys of :data:`TAG_RECIPES`).

    Returns:
        ``((S,) float32 16 kHz waveform, the text spoken)``.
    """
    from . import effects, world
    from .pipeline import REFERENCE_F0_HZ, speak

    recipe = _combined(tags)
    spoken = recipe.text(text, random.Random(seed)) if recipe.text else text
    x = speak(voice, spoken, 1.0, {"intonation": 50})
    p = world.analyse(x, SAMPLE_RATE, voice.f0_hz)
    p = world.shift_pitch(p, world.semitones_to(p, REFERENCE_F0_HZ[voice.gender]) + recipe.semitones)
    p = world.warp_formants(world.scale_f0_range(p, recipe.f0_range), recipe.formant_scale)
    p = world.change_tempo(p, recipe.tempo)  # 1.0 returns p untouched
    if recipe.uneven:  # its own stream, so the other tags' clips keep their audio
        p = world.vary_tempo(p, recipe.uneven, UNEVEN_STRETCH_S, np.random.default_rng([seed, 1]))
    rng = np.random.default_rng(seed)
    x = world.synthesize(world.VOICE_QUALITIES[recipe.quality](p, _quality_params(recipe.quality), rng))
    for effect in recipe.effects:
        x = effect(np.asarray(x, np.float32), SAMPLE_RATE, rng)
    level = NORMAL_DBFS if recipe.level_dbfs is None else recipe.level_dbfs
    return effects.set_level(np.asarray(x, np.float64), SAMPLE_RATE, level), spoken


# -- corpora of tagged clips --------------------------------------------------------------------------
def tag_pairs() -> list[tuple[str, str]]:
    """Every (voice tag, delivery tag) pair: a tag of a voice set with a tag of a delivery set."""
    voice = [t for s in VOICE_SETS for t in produced_tags(s)]
    delivery = [t for s in DELIVERY_SETS for t in produced_tags(s)]
    return [(v, d) for v in voice for d in delivery]


#: the recipe fields a tag's label rests on: a style joins a voice tag only if they set none of these in common
_LABEL_FIELDS = ("semitones", "quality", "f0_range", "formant_scale", "tempo", "uneven", "text", "level_dbfs")


def _fields_set(recipe: TagRecipe) -> set[str]:
    plain = TagRecipe(recipe.attribute)
    return {f for f in _LABEL_FIELDS if getattr(recipe, f) != getattr(plain, f)}


def style_combos() -> list[tuple[str, ...]]:
    """Each situational style in the delivery slot: alone, and after every voice tag whose recipe sets
    nothing the style's recipe sets (register, quality, F0 range, formants, tempo, timing, text, level),
    so both labels stay true. Sleepy (register, quality, range, tempo, level) joins only nasal;
    enunciated (tempo) joins every voice tag."""
    voice = [t for s in VOICE_SETS for t in produced_tags(s)]
    combos: list[tuple[str, ...]] = []
    for style in (t for s in STYLE_SETS for t in produced_tags(s)):
        sets = _fields_set(TAG_RECIPES[style])
        combos += [(style,)] + [(v, style) for v in voice if not sets & _fields_set(TAG_RECIPES[v])]
    return combos


def plan_tagged(n: int, voices: Sequence[Voice], sentences: Sequence[str], name: str,
                styles: bool = False) -> list[dict[str, Any]]:
    """Manifest rows (without audio) of ``n`` tagged clips: clip ``i`` takes combination ``i mod C`` of
    :func:`tag_pairs` (then :func:`style_combos` if ``styles``) and voice ``(i + i // C) mod V`` (each round
    starts one voice later, so every combination meets several voices and both genders), and the
    sentences in an order shuffled by ``name``. Each row has its tags (``intrinsic_tags``, a style in
    ``situational_tags``, ``classification_<set>``), the loudness label of its level (so a training gain
    can relabel it), gender, speaker and the canonical caption."""
    from ..data.captions import describe_tags

    if not voices or not sentences:
        raise InputError("a tagged corpus needs at least one voice and one sentence")
    combos = tag_pairs() + (style_combos() if styles else [])
    order = random.Random(f"vocabulary-{name}").sample(range(len(sentences)), len(sentences))
    rows = []
    for i in range(n):
        tags, voice = combos[i % len(combos)], voices[(i + i // len(combos)) % len(voices)]
        intrinsic = [t for t in tags if TAG_RECIPES[t].attribute not in STYLE_SETS]
        style = [t for t in tags if TAG_RECIPES[t].attribute in STYLE_SETS]
        rows.append({
            "relative_audio_path": f"clips/{i:05d}.flac", "source": "vocabulary", "engine": voice.engine,
            "speaker": voice.id, "gender": voice.gender, "text": sentences[order[i % len(sentences)]],
            "seed": 1000 + i, "intrinsic_tags": intrinsic, **({"situational_tags": style} if style else {}),
            "loudness": loudness_of(tags), "text_description": describe_tags(intrinsic, style, gender=voice.gender),
            **{f"classification_{TAG_RECIPES[t].attribute}": t for t in tags},
        })
    return rows


def _render_row(job: tuple[dict[str, Any], str]) -> dict[str, Any]:
    from .corpus import write_audio_atomic
    from .engines import find_voice

    row, out = job
    tags = [*row["intrinsic_tags"], *row.get("situational_tags", [])]
    x, spoken = render_tagged(find_voice(row["speaker"]), row["text"], tags, row["seed"])
    write_audio_atomic(Path(out) / row["source"] / row["relative_audio_path"], x, "flac")
    return {**row, "spoken_text": spoken, "duration": round(len(x) / SAMPLE_RATE, 3)}


def generate_tagged(out: Path, rows: Sequence[dict[str, Any]], jobs: int = 1) -> Path:
    """Render the planned ``rows`` into ``out/<source>/clips/`` and write ``out/manifest.jsonl`` (last,
    atomically: its presence means the corpus is complete; its paths resolve from its folder, as every
    manifest's do). Returns the manifest's path."""
    import json

    from ..atomic import atomic_write_text
    from .corpus import check_engines, process_map, warm_up
    from .engines import prepare_engines

    engines = sorted({r["engine"] for r in rows})
    check_engines(engines)
    prepare_engines(engines)
    done = list(process_map(_render_row, [(r, str(out)) for r in rows], jobs, "tagged clips",
                            initializer=warm_up, initargs=(engines,)))
    manifest = out / "manifest.jsonl"
    atomic_write_text(manifest, "".join(json.dumps(r) + "\n" for r in done))
    return manifest
