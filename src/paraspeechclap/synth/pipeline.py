"""One clip: from a style + voice + sentence to synthesis parameters to a 16 kHz waveform.

:func:`sample_params` turns label values into control values (the *ground truth* is the control,
not a measurement): pitch in semitones relative to a reference F0 of the voice's gender, a speaking-rate factor
relative to the voice's natural rate, a target active-speech level in dBFS, and the parameters of
the voice-quality and clarity transforms. :func:`render` runs the chain

    engine (text, voice, rate) -> 16 kHz (soxr) -> trim silence -> WORLD (pitch, voice quality)
    -> clarity effect -> level + limiter

and depends only on the :class:`ClipSpec`, so a clip is reproducible from its manifest row.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from . import effects, world
from .engines import Voice, get_engine

SAMPLE_RATE = 16_000

#: Control ranges per label value (uniform draws). Pitch: semitones from the reference F0 of the
#: voice's gender (:data:`REFERENCE_F0_HZ`); rate: factor on the natural rate; level: active-speech
#: RMS in dBFS.
PITCH_SEMITONES: dict[str, tuple[float, float]] = {
    "deep": (-6.0, -4.0), "medium": (-1.0, 1.0), "high-pitched": (4.0, 6.0)
}  # fmt: skip
#: Typical adult speaking F0 per gender. Pitch labels are perceptual and gender-relative ("a deep
#: female voice" is deep for a woman), so every voice is moved to the labelled register around
#: this reference rather than shifted from its own F0: a voice that is naturally high (Kokoro's
#: jf_tebukuro, 310 Hz) or low (eSpeak's david, 75 Hz) would otherwise keep its offset and make
#: "medium" clips that any listener hears as high or deep.
REFERENCE_F0_HZ: dict[str, float] = {"male": 115.0, "female": 210.0}
RATE_FACTOR: dict[str, tuple[float, float]] = {"slow": (0.62, 0.72), "measured": (0.92, 1.08), "fast": (1.40, 1.60)}
LEVEL_DBFS: dict[str, tuple[float, float]] = {"soft": (-36.5, -33.5), "normal": (-24.5, -21.5), "loud": (-14.0, -12.0)}
QUALITY_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "modal": {},
    "whispered": {},
    "breathy": {"breathiness": (0.55, 0.75), "tilt_db_per_octave": (3.0, 5.0)},
    "raspy": {"jitter": (0.05, 0.09), "shimmer_db": (1.5, 3.0), "noise": (0.1, 0.2), "subharmonic_depth": (0.35, 0.55)},
    "creaky": {"creak_fraction": (0.35, 0.55), "irregularity": (0.12, 0.2)},
}
CLARITY_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "crisp": {},
    "muffled": {"cutoff_hz": (600.0, 1000.0)},
    "reverberant": {"rt60_s": (0.7, 1.3), "drr_db": (-4.0, 0.0)},
    "telephone": {},
}
#: eSpeak's intonation range (its "pitch range" parameter, 0-100) varies per clip for prosodic variety.
INTONATION = (30, 75)


@dataclass(frozen=True)
class ClipSpec:
    """Everything that determines one clip.

    Attributes:
        index: position in the corpus (names the file).
        voice: the voice (engine, name, gender, natural F0).
        text: the spoken sentence.
        labels: style labels (``pitch_level`` may be None: unlabelled for whispered speech).
        params: control values (see :func:`sample_params`), JSON-serialisable.
    """

    index: int
    voice: Voice
    text: str
    labels: Mapping[str, str | None]
    params: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly view (for manifests)."""
        return {"index": self.index, "voice": asdict(self.voice), "text": self.text,
                "labels": dict(self.labels), "params": dict(self.params)}  # fmt: skip


def _uniform(rng: random.Random, lo_hi: tuple[float, float], digits: int = 3) -> float:
    return round(rng.uniform(*lo_hi), digits)


def sample_params(labels: Mapping[str, str | None], voice: Voice, rng: random.Random,
                  vary_formants: float = 0.0) -> dict[str, Any]:
    """Control values for a style (random within each value's range), JSON-serialisable.

    Args:
        labels: ``voice_quality``, ``loudness``, ``pitch_level`` (or None), ``speaking_rate``, ``clarity``.
        voice: the voice (eSpeak voices also get an intonation range).
        rng: source of randomness, consumed in a fixed order.
        vary_formants: when > 0, the formants are scaled by a factor drawn log-uniformly in
            ``[1 / (1 + v), 1 + v]`` (``formant_scale``): new vocal tracts from each voice, so a
            model trained on few voices meets more speakers. 0 draws nothing (the clip's other
            parameters are the same either way).

    Returns:
        ``{"pitch_semitones", "rate", "level_dbfs", "quality": {...}, "clarity": {...}, "seed", ...}``:
        ``pitch_semitones`` is the label's control, the clip's median F0 in semitones from the
        reference F0 of the voice's gender (0 and no shift when the pitch is unlabelled).
    """
    pitch = labels.get("pitch_level")
    params: dict[str, Any] = {
        "pitch_semitones": _uniform(rng, PITCH_SEMITONES[pitch]) if pitch else 0.0,  # from the reference
        "rate": _uniform(rng, RATE_FACTOR[labels["speaking_rate"] or "measured"]),
        "level_dbfs": _uniform(rng, LEVEL_DBFS[labels["loudness"] or "normal"], 2),
        "quality": {k: _uniform(rng, r) for k, r in QUALITY_RANGES[labels["voice_quality"] or "modal"].items()},
        "clarity": {k: _uniform(rng, r) for k, r in CLARITY_RANGES[labels["clarity"] or "crisp"].items()},
        "seed": rng.getrandbits(31),
    }
    if voice.engine == "espeak":
        params["intonation"] = rng.randint(*INTONATION)
    if vary_formants > 0:
        params["formant_scale"] = round(math.exp(rng.uniform(-1.0, 1.0) * math.log1p(vary_formants)), 4)
    return params


def speak(voice: Voice, text: str, rate: float, params: Mapping[str, Any]) -> np.ndarray:
    """The engine's ``(S,)`` float64 waveform of ``text`` at 16 kHz (soxr), silence trimmed at the edges."""
    import soxr

    audio, sr = get_engine(voice.engine).synthesize(text, voice, rate, params)
    x = soxr.resample(audio, sr, SAMPLE_RATE, quality="HQ") if sr != SAMPLE_RATE else audio
    return effects.trim_silence(np.asarray(x, np.float64), SAMPLE_RATE)


def render(spec: ClipSpec) -> np.ndarray:
    """Synthesise one clip.

    Returns:
        (S,) float32 waveform at 16 kHz with peak < 1.
    """
    p = spec.params
    quality = spec.labels.get("voice_quality") or "modal"
    clarity = spec.labels.get("clarity") or "crisp"
    x = speak(spec.voice, spec.text, float(p["rate"]), p)
    seed = int(p["seed"])
    # Each clip's own median F0 is moved to the label's F0 (not the voice's nominal F0 by a fixed
    # shift): sentences differ in register, and some voices are tracked at another F0 than the
    # voice table's; either way the clip would miss its label. Unlabelled pitch: no shift.
    target = REFERENCE_F0_HZ[spec.voice.gender] if spec.labels.get("pitch_level") else None
    x = world.restyle(x, SAMPLE_RATE, spec.voice.f0_hz, float(p["pitch_semitones"]), quality, p["quality"], seed,
                      float(p.get("formant_scale", 1.0)), target_f0_hz=target)
    x = effects.CLARITY_EFFECTS[clarity](x, SAMPLE_RATE, p["clarity"], np.random.default_rng(seed + 1))
    return effects.set_level(np.asarray(x, np.float64), SAMPLE_RATE, float(p["level_dbfs"]))
