"""Plan and generate a labelled synthetic corpus: N clips in parallel, plus a JSONL manifest.

Layout of ``out_dir`` (the manifest's ``audio_root``)::

    manifest.jsonl            one ParaSpeechCaps-style row per clip (index order)
    synth_config.json         seed, voices, mix, format: checked when resuming
    synth/000/000000.flac     16 kHz mono 16-bit audio; ``relative_audio_path`` = "000/000000.flac"

Determinism: the plan (:func:`plan_corpus`) uses separate seeded random streams for styles,
engines, voices, sentences and per-clip parameters, so the first ``k`` clips are the same for any
``n``; each clip depends only on its :class:`~paraspeechclap.synth.pipeline.ClipSpec`, and every
ONNX session runs single-threaded, so audio and manifest are byte-identical for a seed whatever
``jobs`` is. Existing clip files are reused (resume) unless ``overwrite``.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_write_text
from ..errors import InputError
from . import effects
from .engines import Voice, get_engine, prepare_engines, select_voices
from .grid import STYLE_ATTRIBUTES, Deck, apportion, plan_styles
from .pipeline import SAMPLE_RATE, ClipSpec, render, sample_params
from .sentences import SENTENCE_POOLS, SENTENCES

SOURCE = "synth"
MANIFEST_NAME = "manifest.jsonl"
CONFIG_NAME = "synth_config.json"
#: Bumped whenever the plan or the rendering changes, so a resumed folder never mixes versions.
PLAN_VERSION = 4  # 3: pitch levels relative to a gender reference F0; formant variation. 4: each clip's
# own median F0 is moved to its level (was: the voice table's F0 by a fixed shift)
#: Default share of clips per engine. CPU per clip (benchmarks/synth.py): eSpeak ~0.12 s, Piper
#: ~0.4 s, Kokoro ~2.5 s, so Kokoro gets a small share to keep the mix well above 5 clips/s on 2
#: cores; all three engines stay in the mix.
DEFAULT_MIX: dict[str, float] = {"espeak": 0.76, "piper": 0.20, "kokoro": 0.04}
FORMATS: dict[str, tuple[str, str]] = {"flac": ("FLAC", "PCM_16"), "wav": ("WAV", "PCM_16")}


def stream(seed: int, name: str) -> random.Random:
    """An independent random stream per purpose (string seeds hash deterministically)."""
    return random.Random(f"paraspeechclap-synth:{seed}:{name}")


def plan_corpus(
    n: int,
    seed: int = 0,
    voices: Sequence[Voice] | None = None,
    mix: Mapping[str, float] | None = None,
    sentences: Sequence[str] = SENTENCES,
    vary_formants: float = 0.0,
) -> list[ClipSpec]:
    """Plan ``n`` clips: balanced styles, engines by ``mix``, voices and sentences in shuffled passes.

    Args:
        n: number of clips.
        seed: the plan's seed.
        voices: the voice pool (default: every voice of every engine).
        mix: relative share of clips per engine (default :data:`DEFAULT_MIX`); engines of the pool
            missing from ``mix`` get no clips unless no pool engine has a weight (then equal shares).
        sentences: the texts.
        vary_formants: random formant scaling per clip (see :func:`~.pipeline.sample_params`).

    Returns:
        ``n`` clip specs, index order.

    Raises:
        InputError: ``n`` < 0, a negative mix weight or ``vary_formants`` outside [0, 0.5].
    """
    if n < 0:
        raise InputError(f"--n must be >= 0, got {n}")
    if not 0.0 <= vary_formants <= 0.5:
        raise InputError(f"--vary-formants must be in [0, 0.5] (a relative formant shift), got {vary_formants}")
    pool = list(voices) if voices is not None else select_voices()
    by_engine: dict[str, list[Voice]] = {}
    for v in pool:
        by_engine.setdefault(v.engine, []).append(v)
    mix = DEFAULT_MIX if mix is None else mix
    if any(w < 0 for w in mix.values()):
        raise InputError(f"engine mix weights must be >= 0, got {dict(mix)}")
    weights = {e: float(mix.get(e, 0.0)) for e in by_engine}
    if sum(weights.values()) <= 0:
        weights = dict.fromkeys(by_engine, 1.0)
    styles = plan_styles(n, stream(seed, "styles"))
    engines = apportion(weights, n, stream(seed, "engines"))
    voice_decks: dict[str, Deck[Voice]] = {e: Deck(vs, stream(seed, f"voices:{e}")) for e, vs in by_engine.items()}
    text_deck = Deck(list(sentences), stream(seed, "sentences"))
    specs = []
    for i in range(n):
        voice = voice_decks[engines[i]].draw()
        params = sample_params(styles[i], voice, stream(seed, f"clip:{i}"), vary_formants)
        specs.append(ClipSpec(i, voice, text_deck.draw(), styles[i], params))
    return specs


def clip_relative_path(index: int, fmt: str = "flac") -> str:
    """Path of clip ``index`` below ``out_dir/synth/`` (1000 clips per folder)."""
    return f"{index // 1000:03d}/{index:06d}.{fmt}"


def style_labels(spec: ClipSpec) -> dict[str, str]:
    """The clip's label fields (unlabelled attributes left out) plus ``gender``."""
    labels = {k: v for k, v in spec.labels.items() if v is not None}
    labels["gender"] = spec.voice.gender
    return labels


def manifest_row(spec: ClipSpec, relative_audio_path: str, measured: Mapping[str, float]) -> dict[str, Any]:
    """One ParaSpeechCaps-style manifest row for a rendered clip.

    Args:
        spec: the clip.
        relative_audio_path: path below ``<audio_root>/<source>/``.
        measured: ``duration`` (s), ``active_level_dbfs`` and ``peak_dbfs`` of the written file.
    """
    from ..data.captions import describe
    from ..data.vocabulary import labels_to_tags

    labels = style_labels(spec)
    intrinsic, situational = labels_to_tags(labels)
    row: dict[str, Any] = {
        "source": SOURCE,
        "relative_audio_path": relative_audio_path,
        "text_description": describe(labels, random.Random(int(spec.params["seed"]))),
        "intrinsic_tags": intrinsic,
        "situational_tags": situational,
        "duration": measured["duration"],
        "speaker": spec.voice.id,
        "gender": spec.voice.gender,
        "language": "english",
    }
    row.update({k: labels[k] for k in STYLE_ATTRIBUTES if k in labels})
    row.update({
        "engine": spec.voice.engine, "voice": spec.voice.name, "text": spec.text,
        "synth_params": dict(spec.params),
        "measured": {"active_level_dbfs": measured["active_level_dbfs"], "peak_dbfs": measured["peak_dbfs"]},
        "id": f"{SOURCE}_{spec.index:06d}",
    })  # fmt: skip
    return row


# ---------------------------------------------------------------------------------------------
# Rendering to files (runs in worker processes)


@dataclass(frozen=True)
class RenderTask:
    """Render ``spec`` to ``path`` unless the file exists and ``reuse`` is set."""

    spec: ClipSpec
    path: str
    fmt: str = "flac"
    reuse: bool = True


def write_audio_atomic(path: Path, audio: np.ndarray, fmt: str) -> None:
    """Write 16 kHz mono 16-bit audio through a temporary file in the same folder."""
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    container, subtype = FORMATS[fmt]
    try:
        sf.write(str(tmp), audio, SAMPLE_RATE, format=container, subtype=subtype)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def measure_file(path: Path) -> dict[str, float]:
    """Duration, active-speech level and peak of a written clip (as a reader will see it)."""
    import soundfile as sf

    x, sr = sf.read(str(path), dtype="float64")
    peak = float(np.abs(x).max()) if x.size else 0.0
    return {
        "duration": round(len(x) / sr, 4),
        "active_level_dbfs": round(effects.active_level_db(x, sr), 2),
        "peak_dbfs": round(20.0 * np.log10(max(peak, 1e-10)), 2),
    }


def run_task(task: RenderTask) -> tuple[int, bool, dict[str, float]]:
    """Render one task (or reuse its file). Returns ``(index, generated, measured)``."""
    path = Path(task.path)
    generated = not (task.reuse and path.exists())
    if generated:
        write_audio_atomic(path, render(task.spec), task.fmt)
    return task.spec.index, generated, measure_file(path)


def warm_up(engines: Sequence[str]) -> None:
    """Load the engines and the lazily imported DSP modules of this process (worker initialiser)."""
    import scipy.ndimage
    import scipy.signal  # noqa: F401

    from .world import import_pyworld

    import_pyworld()
    for name in engines:
        get_engine(name)


def process_map(fn: Callable[[Any], Any], items: Sequence[Any], jobs: int = 1, desc: str = "synth",
                initializer: Callable[..., None] | None = None, initargs: tuple = ()) -> Iterator[Any]:
    """``fn`` over ``items`` in ``jobs`` spawned processes (in this one when ``jobs <= 1``), in order,
    while a tqdm bar runs on stderr. Spawned, not forked: engines and WORLD hold global C state."""
    from tqdm import tqdm

    bar = tqdm(total=len(items), desc=desc, unit="clip", disable=None)
    try:
        if jobs <= 1 or len(items) <= 1:
            for item in items:
                yield fn(item)
                bar.update(1)
            return
        ctx = multiprocessing.get_context("spawn")
        chunk = max(1, min(8, len(items) // (jobs * 8)))
        with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=initializer, initargs=initargs) as pool:
            for result in pool.map(fn, items, chunksize=chunk):
                yield result
                bar.update(1)
    finally:
        bar.close()


def run_tasks(tasks: Sequence[RenderTask], jobs: int = 1, desc: str = "synth") -> Iterator[tuple[int, bool, dict]]:
    """Run render tasks in ``jobs`` processes (:func:`process_map`), in order.

    Yields:
        ``(index, generated, measured)`` per task, in task order.
    """
    engines = sorted({t.spec.voice.engine for t in tasks})
    check_engines(engines)
    prepare_engines(engines)  # before any worker starts: workers must not race to build model files
    yield from process_map(run_task, tasks, jobs, desc, initializer=warm_up, initargs=(engines,))


def check_engines(engines: Iterable[str]) -> None:
    """Fail fast, in the parent, when an engine's packages are missing."""
    from .engines import engine_class
    from .world import import_pyworld

    for name in engines:
        engine_class(name).require()
    import_pyworld()


# ---------------------------------------------------------------------------------------------
# The corpus


@dataclass
class CorpusSummary:
    """What :func:`generate_corpus` did."""

    out_dir: str
    manifest: str
    n: int
    generated: int
    reused: int
    seconds: float
    per_engine: dict[str, int] = field(default_factory=dict)

    @property
    def clips_per_s(self) -> float:
        """Generated clips per wall-clock second."""
        return self.generated / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly view."""
        return {"out_dir": self.out_dir, "manifest": self.manifest, "n": self.n, "generated": self.generated,
                "reused": self.reused, "seconds": round(self.seconds, 3), "clips_per_s": round(self.clips_per_s, 3),
                "per_engine": self.per_engine}  # fmt: skip


def check_config(out_dir: Path, config: dict[str, Any], overwrite: bool) -> None:
    """Record ``config`` in ``out_dir/synth_config.json``; refuse to mix it with another config.

    Raises:
        InputError: the folder already holds output of other settings (and not ``overwrite``).
    """
    path = out_dir / CONFIG_NAME
    if path.exists() and not overwrite:
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = None
        if old != config:
            raise InputError(
                f"{out_dir}: holds a corpus made with other settings ({CONFIG_NAME} differs); "
                "use another --out or --overwrite"
            )
    atomic_write_text(path, json.dumps(config, indent=2, sort_keys=True) + "\n")


def generate_corpus(
    out_dir: str | os.PathLike,
    n: int,
    seed: int = 0,
    jobs: int = 1,
    voices: Sequence[Voice] | None = None,
    mix: Mapping[str, float] | None = None,
    fmt: str = "flac",
    overwrite: bool = False,
    vary_formants: float = 0.0,
    sentences: str = "train",
) -> CorpusSummary:
    """Generate ``n`` labelled clips and ``manifest.jsonl`` under ``out_dir``.

    Args:
        out_dir: output folder (created; becomes the manifest's audio root).
        n: number of clips.
        seed: plan seed (same seed -> byte-identical audio and manifest, for any ``jobs``).
        jobs: worker processes.
        voices: voice pool (default: all voices of all engines; see :func:`select_voices`).
        mix: share of clips per engine (default :data:`DEFAULT_MIX`).
        fmt: ``flac`` or ``wav``.
        overwrite: re-render existing clip files and accept a different ``synth_config.json``.
        vary_formants: random formant scaling per clip (0 = the voices as they are).
        sentences: the sentence pool (:data:`~paraspeechclap.synth.sentences.SENTENCE_POOLS`): ``train``
            for training corpora, ``dev``/``test`` for evaluation clips whose words no training
            corpus spoke.

    Raises:
        InputError: bad arguments, or ``out_dir`` holds a corpus with other settings.
        ModelError: an engine's packages are missing (the message names the extra).
    """
    if fmt not in FORMATS:
        raise InputError(f"unknown audio format {fmt!r}; choose from {', '.join(FORMATS)}")
    if jobs < 1:
        raise InputError(f"--jobs must be >= 1, got {jobs}")
    out = Path(out_dir)
    pool = list(voices) if voices is not None else select_voices()
    if sentences not in SENTENCE_POOLS:
        raise InputError(f"unknown sentence pool {sentences!r}; choose from {', '.join(SENTENCE_POOLS)}")
    specs = plan_corpus(n, seed, pool, mix, sentences=SENTENCE_POOLS[sentences], vary_formants=vary_formants)
    mix_used = dict(DEFAULT_MIX if mix is None else mix)
    config = {"plan_version": PLAN_VERSION, "seed": seed, "voices": [v.id for v in pool], "mix": mix_used,
              "format": fmt, "sample_rate": SAMPLE_RATE, "vary_formants": vary_formants}  # fmt: skip
    if sentences != "train":  # only then: existing training corpora keep their recorded config
        config["sentences"] = sentences
    check_engines(sorted({s.voice.engine for s in specs}))
    check_config(out, config, overwrite)
    rels = [clip_relative_path(s.index, fmt) for s in specs]
    tasks = [RenderTask(s, str(out / SOURCE / r), fmt, not overwrite) for s, r in zip(specs, rels)]
    start = time.perf_counter()
    rows, generated = [], 0
    for (index, gen, measured), spec, rel in zip(run_tasks(tasks, jobs), specs, rels):
        rows.append(manifest_row(spec, rel, measured))
        generated += int(gen)
    seconds = time.perf_counter() - start
    manifest = out / MANIFEST_NAME
    atomic_write_text(manifest, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    per_engine: dict[str, int] = {}
    for s in specs:
        per_engine[s.voice.engine] = per_engine.get(s.voice.engine, 0) + 1
    return CorpusSummary(str(out), str(manifest), n, generated, n - generated, seconds, per_engine)
