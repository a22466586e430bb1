"""Real recordings moved to a controlled pitch level: natural voices with pitch-level labels.

The synthetic corpus teaches pitch level with 21 voices of two engines; a head trained on them
alone can tie "deep" to their timbre and then misjudge a natural voice it never heard (a Kokoro
voice raised to 142 Hz was still called deep). Re-pitching real clips with WORLD (the analysis and
resynthesis the synthetic pipeline uses) to a level relative to the reference F0 of the speaker's
gender adds every real speaker's vocal tract, language and recording to the pitch-level data.

Labels follow the synthetic corpus exactly: a level is drawn (balanced), its target in semitones
from :data:`REFERENCE_F0_HZ <paraspeechclap.synth.pipeline.REFERENCE_F0_HZ>` lies in
:data:`PITCH_SEMITONES <paraspeechclap.synth.pipeline.PITCH_SEMITONES>`, and the clip is shifted
by the target minus its own median F0 (measured by :func:`paraspeechclap.audio.pitch.frame_f0`).
Shifts are at most :data:`MAX_SHIFT` semitones (WORLD's artefacts grow with the shift), so each
level draws from the clips that can reach it. The active-speech level of the source is kept.
Emotion labels are dropped (a pitch shift changes emotional cues); gender, speaker and language
are kept. The result is measured again and dropped when its median F0 misses the target by more
than :data:`MAX_ERROR` semitones. Clips without a measurable F0 (whispers, noise) are not used.

With ``speaking_rate`` on, each clip is also re-timed by WORLD to a balanced speaking-rate level:
a tempo factor drawn from :data:`RATE_FACTOR <paraspeechclap.synth.pipeline.RATE_FACTOR>`, relative
to the clip's own tempo, exactly as the synthetic corpus scales each voice's natural rate. The
source clips should then be at an unremarkable rate themselves (e.g. neutral emotion only: an
angry clip slowed down is not "slow"); the training config selects them (``include``).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from .corpus import MANIFEST_NAME, measure_file, process_map, write_audio_atomic
from .pipeline import PITCH_SEMITONES, RATE_FACTOR, REFERENCE_F0_HZ, SAMPLE_RATE

#: bump when the labelling or the rendering changes (a new version never reuses an old corpus).
VERSION = 1
#: largest pitch shift in semitones.
MAX_SHIFT = 10.0
#: largest distance in semitones between the target and the re-pitched clip's measured median F0.
MAX_ERROR = 1.5
#: source name of the derived rows (``<audio_root>/repitch/<relative_audio_path>``).
SOURCE = "repitch"


@dataclass(frozen=True)
class RepitchTask:
    """Shift the clip at ``source_path`` (median F0 ``own`` semitones from its gender's reference) to
    ``semitones`` from that reference, which lies in the range of ``level``; with ``rate_level``,
    also speak ``rate`` times faster (a factor in the range of that speaking-rate level)."""

    index: int
    source_path: str
    out_path: str
    gender: str
    own: float
    level: str
    semitones: float
    seed: int
    rate_level: str | None = None
    rate: float = 1.0


def reach(level: str, own: float) -> tuple[float, float] | None:
    """Targets of ``level`` within :data:`MAX_SHIFT` of ``own`` (an interval in semitones), or None."""
    lo, hi = PITCH_SEMITONES[level]
    lo, hi = max(lo, own - MAX_SHIFT), min(hi, own + MAX_SHIFT)
    return (lo, hi) if lo <= hi else None


def _deck(rng: random.Random, values: Sequence[Any]) -> Iterator[Any]:
    """Endless draws of ``values``, balanced: a fresh shuffle of all of them each round."""
    while True:  # drawn from the end of each shuffle, lazily (the order the plan has always had)
        yield from reversed(rng.sample(list(values), len(values)))


def plan_repitch(paths: Sequence[str], genders: Sequence[str | None], owns: Sequence[float | None], n: int,
                 seed: int, out_dir: Path, speaking_rate: bool = False) -> list[RepitchTask]:
    """``n`` tasks with balanced levels (a shuffled deck of the three), each drawing a clip that can
    reach the level (every such clip once before any is reused) and a target within that reach;
    with ``speaking_rate``, each also draws a rate level (a deck of its own, so the pitch plan is
    the same either way) and a tempo factor in its range.

    Args:
        paths: source clips.
        genders: their gender labels (clips not male or female are not used).
        owns: their median F0 in semitones from the gender's reference (None: unvoiced, not used).

    Raises:
        ValueError: no clip can reach some level.
    """
    rng = random.Random(seed)
    usable = [i for i, (g, o) in enumerate(zip(genders, owns)) if g in REFERENCE_F0_HZ and o is not None]
    pools = {level: [i for i in usable if reach(level, owns[i]) is not None] for level in PITCH_SEMITONES}  # type: ignore[arg-type]
    if not all(pools.values()):
        raise ValueError(f"no clip to re-pitch can reach every pitch level ({len(usable)} usable clips)")
    levels = _deck(rng, list(PITCH_SEMITONES))
    decks = {level: _deck(rng, pools[level]) for level in PITCH_SEMITONES}
    rate_rng = random.Random(f"{seed}/speaking_rate")
    rate_levels = _deck(rate_rng, list(RATE_FACTOR))
    tasks = []
    for k in range(n):
        level = next(levels)
        i = next(decks[level])
        own = float(owns[i])  # type: ignore[arg-type]
        lo, hi = reach(level, own)  # type: ignore[misc]
        task = RepitchTask(k, str(paths[i]), str(out_dir / SOURCE / f"{k // 1000:03d}/{k:06d}.flac"),
                           str(genders[i]), round(own, 3), level, round(rng.uniform(lo, hi), 3), seed * 1_000_003 + k)
        if speaking_rate:
            rate_level = next(rate_levels)
            task = replace(task, rate_level=rate_level, rate=round(rate_rng.uniform(*RATE_FACTOR[rate_level]), 3))
        tasks.append(task)
    return tasks


def median_semitones(x: np.ndarray, gender: str) -> float | None:
    """Median F0 of ``x`` (S,) over voiced frames, in semitones from ``gender``'s reference; None if unvoiced."""
    from ..audio.pitch import frame_f0, median_f0

    med = median_f0(frame_f0(x)[0])
    return 12.0 * math.log2(med / REFERENCE_F0_HZ[gender]) if med is not None else None


def source_semitones(path: str, gender: str | None) -> float | None:
    """:func:`median_semitones` of a source clip (None for an unusable gender or an unreadable clip)."""
    from ..audio.io import load_audio
    from ..errors import AudioError

    if gender not in REFERENCE_F0_HZ:
        return None
    try:
        return median_semitones(load_audio(path).astype(np.float64), gender)
    except AudioError:
        return None


def render_task(task: RepitchTask) -> dict[str, Any] | None:
    """Render one task (or reuse its file). Returns the label fields, or None when the result's
    median F0 misses the target by more than :data:`MAX_ERROR` semitones."""
    from ..audio.io import load_audio
    from . import effects, world

    out = Path(task.out_path)
    if out.exists():
        y = load_audio(str(out)).astype(np.float64)
    else:
        x = load_audio(task.source_path).astype(np.float64)
        f0_hz = REFERENCE_F0_HZ[task.gender] * 2.0 ** (task.own / 12.0)
        y = world.restyle(x, SAMPLE_RATE, f0_hz, task.semitones - task.own, "modal", {}, task.seed, rate=task.rate)
        y = effects.set_level(np.asarray(y, np.float64), SAMPLE_RATE, effects.active_level_db(x, SAMPLE_RATE))
    got = median_semitones(y, task.gender)
    if got is None or abs(got - task.semitones) > MAX_ERROR:
        return None  # the resynthesis missed its target (an F0 tracking error): no label rather than a wrong one
    if not out.exists():
        write_audio_atomic(out, y, "flac")
    info = {"semitones": task.semitones, "shift": round(task.semitones - task.own, 3), "measured": round(got, 3)}
    if task.rate_level is None:
        return {"pitch_level": task.level, "repitch": info}
    return {"pitch_level": task.level, "speaking_rate": task.rate_level, "repitch": {**info, "rate": task.rate}}


def corpus_key(origin_keys: Sequence[str], n: int, seed: int, speaking_rate: bool = False) -> str:
    """Short hash naming a derived corpus (the source clips, ``n``, ``seed``, the labelling version,
    the rate levels when re-timed: pitch-only corpora keep the names they always had)."""
    spec = {"version": VERSION, "n": n, "seed": seed, "origins": list(origin_keys),
            "pitch": PITCH_SEMITONES, "reference": REFERENCE_F0_HZ, "max_shift": MAX_SHIFT,
            "max_error": MAX_ERROR}
    if speaking_rate:
        spec["rate"] = RATE_FACTOR
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]


def generate_repitched(out_dir: str | Path, rows: Sequence[dict[str, Any]], paths: Sequence[str],
                       origin_keys: Sequence[str], n: int, seed: int = 0, jobs: int = 1,
                       speaking_rate: bool = False) -> Path:
    """Write ``n`` re-pitched clips of ``rows`` (audio at ``paths``) and ``manifest.jsonl`` under ``out_dir``.

    Audio files are written atomically and reused when present (an interrupted run resumes); the
    manifest is written last, atomically, so its presence means the corpus is complete. With
    ``speaking_rate`` the clips are re-timed too and labelled with a speaking rate.

    Returns:
        the manifest path.
    """
    from ..atomic import atomic_write_text
    from .world import import_pyworld

    out = Path(out_dir)
    genders = [r.get("gender") for r in rows]
    owns = [source_semitones(p, g) for p, g in zip(paths, genders)]
    tasks = plan_repitch(paths, genders, owns, n, seed, out, speaking_rate)
    by_path = {str(p): (r, k) for p, r, k in zip(paths, rows, origin_keys)}
    lines = []
    for task, labels in zip(tasks, process_map(render_task, tasks, jobs, "repitch", initializer=import_pyworld)):
        if labels is None:
            continue
        row, key = by_path[task.source_path]
        measured = measure_file(Path(task.out_path))
        lines.append({
            "source": SOURCE, "relative_audio_path": str(Path(task.out_path).relative_to(out / SOURCE)),
            "speaker": row.get("speaker"), "gender": task.gender, "language": row.get("language"),
            **{k: labels[k] for k in ("pitch_level", "speaking_rate") if k in labels},
            "duration": measured["duration"], "origin": key,
            "repitch": labels["repitch"], "id": f"{SOURCE}_{out.name}_{task.index:06d}",  # unique across corpora
        })  # fmt: skip
    manifest = out / MANIFEST_NAME
    atomic_write_text(manifest, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in lines))
    return manifest
