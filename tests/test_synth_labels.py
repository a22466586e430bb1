"""The synthetic corpus's labels are physically true: measured on a handful of short generated clips.

The measurements here are independent of the generator: F0 by WORLD's Harvest (the generator
analyses with DIO), voicing by a plain normalised-autocorrelation test, loudness by whole-clip
RMS, speaking rate by duration per word, channel effects by band energies.
"""

from __future__ import annotations

import importlib.util
import random

import numpy as np
import pytest

pytest.importorskip("espeakng_loader")
pytest.importorskip("scipy")

from paraspeechclap.synth.engines import engine_class, find_voice
from paraspeechclap.synth.pipeline import (
    PITCH_SEMITONES,
    REFERENCE_F0_HZ,
    SAMPLE_RATE,
    ClipSpec,
    render,
    sample_params,
)
from paraspeechclap.synth.world import import_pyworld

if importlib.util.find_spec("pyworld") is None:  # pragma: no cover - the [synth] extra is missing
    pytest.skip("pyworld (the [synth] extra) is not installed", allow_module_level=True)
PW = import_pyworld()

TEXT = "The bakery on the corner opens at six every morning."
BASE = {"voice_quality": "modal", "loudness": "normal", "pitch_level": "medium", "speaking_rate": "measured",
        "clarity": "crisp"}  # fmt: skip


def _require(engine: str) -> None:
    """Skip when the engine (its packages, or the flite program) is not installed."""
    if not engine_class(engine).available():
        pytest.skip(f"synthesis engine {engine!r} is not installed")


def clip(voice_id: str, seed: int = 1, **labels: str | None) -> np.ndarray:
    voice = find_voice(voice_id)
    lab = {**BASE, **labels}
    return render(ClipSpec(0, voice, TEXT, lab, sample_params(lab, voice, random.Random(seed))))


def harvest_f0(y: np.ndarray) -> np.ndarray:
    f0, _ = PW.harvest(y.astype(np.float64), SAMPLE_RATE, f0_floor=40.0, f0_ceil=600.0, frame_period=10.0)
    return f0


def median_f0(y: np.ndarray) -> float:
    f0 = harvest_f0(y)
    return float(np.median(f0[f0 > 0]))


def voiced_fraction(y: np.ndarray) -> float:
    """Share of active 40 ms frames whose normalised autocorrelation peaks above 0.5 at 60-400 Hz lags."""
    n, hop = int(0.04 * SAMPLE_RATE), int(0.01 * SAMPLE_RATE)
    frames = np.stack([y[i : i + n] for i in range(0, len(y) - n, hop)]).astype(np.float64)
    energy = (frames**2).sum(axis=1)
    frames = frames[energy > energy.max() * 10 ** (-3.5)]  # active: within 35 dB of the loudest
    voiced = []
    for f in frames:
        f = f - f.mean()
        ac = np.correlate(f, f, "full")[n - 1 :]
        ac = ac / (ac[0] + 1e-12)
        voiced.append(ac[SAMPLE_RATE // 400 : SAMPLE_RATE // 60].max() > 0.5)
    return float(np.mean(voiced))


def rms_db(y: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(np.square(y, dtype=np.float64)))))


def band_energy(y: np.ndarray, lo: float, hi: float) -> float:
    spec = np.abs(np.fft.rfft(y.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(len(y), 1 / SAMPLE_RATE)
    return float(spec[(freqs >= lo) & (freqs < hi)].sum() / spec.sum())


@pytest.mark.parametrize("voice_id", ["espeak:en-us+m3", "espeak:en-us+f2"])
def test_pitch_levels_order_f0_for_the_same_voice_and_text(voice_id: str) -> None:
    f0 = {p: median_f0(clip(voice_id, pitch_level=p)) for p in ("deep", "medium", "high-pitched")}
    assert f0["deep"] < f0["medium"] < f0["high-pitched"], f0
    # deep <= -4 semitones, high >= +4: at least 8 semitones (x1.59) apart by construction.
    assert f0["high-pitched"] / f0["deep"] > 1.4, f0


@pytest.mark.parametrize("level", ["deep", "medium", "high-pitched"])
@pytest.mark.parametrize(
    "voice_id", ["espeak:en-us+david", "espeak:en-us+m7", "espeak:en-us+linda", "espeak:en-us+f1", "piper:joe",
                 "kokoro:jm_kumo", "kokoro:jf_tebukuro", "flite:kal16", "flite:awb", "flite:rms", "flite:slt"])  # fmt: skip
def test_pitch_level_lands_in_its_range_around_the_gender_reference(voice_id: str, level: str) -> None:
    # Natural F0 of these voices: 75, 105, 225, 175, ~90 (irregular phonation: WORLD's DIO tracks it
    # near 160), 92, 310, 90, 132, 102 and 172 Hz. Whatever the voice, a level's clip lands in the same
    # register of its gender, the label's own range around the reference, within 1 semitone of slack.
    voice = find_voice(voice_id)
    _require(voice.engine)
    lo, hi = PITCH_SEMITONES[level]
    st = 12 * np.log2(median_f0(clip(voice_id, pitch_level=level)) / REFERENCE_F0_HZ[voice.gender])
    assert lo - 1 < st < hi + 1, (voice_id, level, st)


def test_female_voices_are_higher_than_male_voices() -> None:
    male = [median_f0(clip(v)) for v in ("espeak:en-us+m1", "espeak:en-us+m7")]
    female = [median_f0(clip(v)) for v in ("espeak:en-us+f1", "espeak:en-us+f4")]
    assert max(male) * 1.3 < min(female), (male, female)


@pytest.mark.parametrize("voice_id", ["espeak:en-us+m1", "piper:joe", "flite:slt"])
def test_fast_is_shorter_than_slow(voice_id: str) -> None:
    _require(find_voice(voice_id).engine)
    words = len(TEXT.split())
    per_word = {r: len(clip(voice_id, speaking_rate=r)) / SAMPLE_RATE / words for r in ("slow", "measured", "fast")}
    assert per_word["slow"] > per_word["measured"] > per_word["fast"], per_word
    assert per_word["slow"] > 1.5 * per_word["fast"], per_word


def test_loud_is_louder_than_soft_and_nothing_clips() -> None:
    clips = {lv: clip("espeak:en-us+f3", loudness=lv, clarity="crisp") for lv in ("soft", "normal", "loud")}
    level = {k: rms_db(v) for k, v in clips.items()}
    assert level["soft"] + 8 < level["normal"] < level["loud"] - 6, level
    assert -40 < level["soft"] and level["loud"] < -8, level  # roughly the -35 / -23 / -13 dBFS targets
    for name, y in clips.items():
        assert np.abs(y).max() < 0.99, name
    # Same crest factor (peak over active level) for every loudness: the shape does not leak the label.
    crest = {k: 20 * np.log10(np.abs(v).max()) - level[k] for k, v in clips.items()}
    assert max(crest.values()) - min(crest.values()) < 2.0, crest


def test_loud_reverberant_raspy_clip_does_not_clip() -> None:
    y = clip("espeak:en-us+m5", loudness="loud", clarity="reverberant", voice_quality="raspy")
    assert np.abs(y).max() < 0.99


@pytest.mark.parametrize("voice_id", ["espeak:en-us+m2", "espeak:en-us+f5"])
def test_whispered_is_unvoiced(voice_id: str) -> None:
    modal = voiced_fraction(clip(voice_id))
    whisper = voiced_fraction(clip(voice_id, voice_quality="whispered", pitch_level=None))
    assert modal > 0.3, modal
    assert whisper < 0.3 * modal, (whisper, modal)


def test_creaky_has_low_f0_stretches() -> None:
    modal = harvest_f0(clip("espeak:en-us+f2"))
    creaky = harvest_f0(clip("espeak:en-us+f2", voice_quality="creaky"))
    # Fry drops F0 to 35-75 Hz on the last part of every voiced stretch.
    assert np.percentile(creaky[creaky > 0], 10) < 0.7 * np.percentile(modal[modal > 0], 10)


def test_clarity_effects_shape_the_spectrum() -> None:
    crisp = clip("espeak:en-us+f1")
    muffled = clip("espeak:en-us+f1", clarity="muffled")
    phone = clip("espeak:en-us+f1", clarity="telephone")
    assert band_energy(muffled, 2000, 8000) < 0.1 * band_energy(crisp, 2000, 8000)
    assert band_energy(phone, 4200, 8000) < 1e-3 and band_energy(phone, 0, 150) < 1e-2
    assert band_energy(crisp, 4200, 8000) > 10 * band_energy(phone, 4200, 8000)


def test_reverberant_adds_a_decaying_tail() -> None:
    crisp = clip("espeak:en-us+m4")
    reverb = clip("espeak:en-us+m4", clarity="reverberant")
    n = int(0.1 * SAMPLE_RATE)
    # Both clips end 0.12 s after the last word (the silence margin), the reverberant one keeps 0.4 s
    # more of room tail: 0.1 s into its tail the room still rings, where the dry clip is silent.
    dry_end = rms_db(crisp[-n:]) - rms_db(crisp)
    wet_tail = rms_db(reverb[-4 * n : -3 * n]) - rms_db(reverb)
    assert wet_tail > dry_end + 15, (wet_tail, dry_end)


def spectral_centroid(y: np.ndarray, top: float = 4000.0) -> float:
    spec = np.abs(np.fft.rfft(y.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(len(y), 1 / SAMPLE_RATE)
    band = freqs < top
    return float((spec[band] * freqs[band]).sum() / spec[band].sum())


def test_formant_scaling_moves_the_spectrum_and_keeps_the_pitch() -> None:
    voice = find_voice("espeak:en-us+m3")

    def render_with(scale: float) -> np.ndarray:
        params = {**sample_params(BASE, voice, random.Random(1)), "formant_scale": scale}
        return render(ClipSpec(0, voice, TEXT, BASE, params))

    short, long = render_with(1.15), render_with(0.85)  # shorter vocal tract = higher formants
    assert spectral_centroid(short) > 1.1 * spectral_centroid(long)
    assert abs(np.log2(median_f0(short) / median_f0(long))) < 0.05  # within about half a semitone


def test_vary_formants_draws_within_its_range_and_changes_nothing_else() -> None:
    voice = find_voice("espeak:en-us+f1")
    for seed in range(50):
        plain = sample_params(BASE, voice, random.Random(seed))
        varied = sample_params(BASE, voice, random.Random(seed), vary_formants=0.1)
        assert 1 / 1.1 <= varied.pop("formant_scale") <= 1.1
        assert varied == plain and "formant_scale" not in plain
