"""Model-free clip measurements (paraspeechclap.audio.measure) on synthetic clips of known F0, level,
speaking rate, SNR, reverberation and clipping. All clips are seeded; the whole file runs in seconds."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.signal import fftconvolve

from paraspeechclap.audio.measure import (
    KEYS,
    c50_from_rt60,
    clipping_share,
    measure,
    rt60_s,
    snr_db,
)
from paraspeechclap.synth.effects import room_impulse_response

SR = 16_000


def harmonic(n: int, f0, sr: int = SR) -> np.ndarray:
    """``(n,)`` harmonic tone (harmonics 1/k below 0.45 sr) on an F0 track ``f0`` (Hz, scalar or ``(n,)``),
    unit RMS."""
    f = np.broadcast_to(np.asarray(f0, dtype=np.float64), (n,))
    phase = 2 * np.pi * np.cumsum(f) / sr
    x = sum(np.sin(k * phase) / k for k in range(1, 11) if k * f.max() < 0.45 * sr)
    return x / np.sqrt(np.mean(x**2))


def words(seconds: float, rng: np.random.Generator, f0: float = 140.0, sr: int = SR, pause=(0.2, 0.7)):
    """Speech-like clip: voiced bursts ("words") of 150-500 ms, flat-topped with 20 ms ramps, F0 within
    10 % of ``f0``, separated by silent pauses, after 0.2 s of silence. Unit RMS inside the bursts.

    Returns:
        ``(S,)`` waveform and ``(S,)`` bool mask of the burst samples.
    """
    parts, mask = [np.zeros(round(0.2 * sr))], [np.zeros(round(0.2 * sr), bool)]
    while sum(len(p) for p in parts) < seconds * sr:
        n, ramp = round(rng.uniform(0.15, 0.5) * sr), round(0.02 * sr)
        env = np.ones(n)
        env[:ramp], env[-ramp:] = np.hanning(2 * ramp)[:ramp], np.hanning(2 * ramp)[ramp:]
        burst = harmonic(n, f0 * rng.uniform(0.9, 1.1), sr) * env
        gap = round(rng.uniform(*pause) * sr)
        parts += [burst / np.sqrt(np.mean(burst**2)), np.zeros(gap)]
        mask += [np.ones(n, bool), np.zeros(gap, bool)]
    return np.concatenate(parts), np.concatenate(mask)


def syllables(rate: float, count: int, rng: np.random.Generator, pad_s: float = 0.3) -> np.ndarray:
    """``count`` voiced syllables at ``rate`` per second, ``pad_s`` of silence either side.

    Each syllable is a 120-200 ms (at most 75 % of the period) amplitude bump (square-root Hann,
    peak 0.5-1) centred in its 1 / rate slot with a jitter of +-15 % of the period; between them
    the voicing continues at -20 dB (a dip, not a pause). F0 wanders +-1.5 semitones around 140 Hz.
    """
    period = SR / rate
    n = round(count * period)
    env = np.full(n, 0.1)
    for i in range(count):
        b = round(min(rng.uniform(0.12, 0.2), 0.75 / rate) * SR)
        centre = (i + 0.5 + rng.uniform(-0.15, 0.15)) * period
        start = int(np.clip(round(centre - b / 2), 0, n - b))
        env[start : start + b] = np.maximum(env[start : start + b], rng.uniform(0.5, 1.0) * np.sqrt(np.hanning(b)))
    f0 = 140.0 * 2 ** (1.5 * np.sin(2 * np.pi * 0.7 * np.arange(n) / SR + rng.uniform(0, 2 * np.pi)) / 12)
    pad = np.zeros(round(pad_s * SR))
    return np.concatenate([pad, 0.1 * harmonic(n, f0) * env, pad])


def semitones(a: float, b: float) -> float:
    return abs(12.0 * np.log2(a / b))


# --- the dict -------------------------------------------------------------------------------------


def test_keys_types_and_json():
    x, _ = words(3.0, np.random.default_rng(0))
    out = measure(0.1 * x)
    assert tuple(out) == KEYS
    assert all(type(v) is float for k, v in out.items() if k != "f0_semitones_re_speaker")
    assert out["f0_semitones_re_speaker"] is None
    assert json.loads(json.dumps(out)) == out
    assert out["duration_s"] == len(x) / SR


def test_gain_changes_the_level_only():
    x, _ = words(3.0, np.random.default_rng(1))
    x = x + 1e-3 * np.random.default_rng(2).standard_normal(len(x))  # some noise, so the SNR is finite
    a, b = measure(0.1 * x), measure(0.01 * x)
    assert a["active_level_dbfs"] - b["active_level_dbfs"] == pytest.approx(20.0, abs=1e-6)
    for k in KEYS:
        if k != "active_level_dbfs" and a[k] is not None:
            assert b[k] == pytest.approx(a[k], rel=1e-3, abs=1e-3), k


# --- level and F0 ---------------------------------------------------------------------------------


@pytest.mark.parametrize("gain_db", [-40.0, -23.0, -6.0])
def test_active_level_within_1_db(gain_db):
    x, mask = words(3.0, np.random.default_rng(3))
    x = x * 10 ** (gain_db / 20)
    true = 10 * np.log10(np.mean(x[mask] ** 2))  # power of the bursts alone, pauses excluded
    assert abs(measure(x)["active_level_dbfs"] - true) < 1.0


@pytest.mark.parametrize("f0", [85.0, 120.0, 190.0, 300.0])
def test_median_f0_within_1_semitone_and_relative_to_speaker(f0):
    rng = np.random.default_rng(4)
    n = 3 * SR
    x = 0.1 * harmonic(n, f0) + 1e-3 * rng.standard_normal(n)
    out = measure(x, speaker_f0_hz=150.0)
    assert semitones(out["f0_median_hz"], f0) < 1.0
    assert out["f0_spread_semitones"] < 0.2  # a steady tone
    assert out["f0_semitones_re_speaker"] == pytest.approx(12 * np.log2(f0 / 150.0), abs=1.0)


def test_f0_spread_of_a_glide():
    # F0 rises linearly in semitones, 0 -> 6 above 110 Hz: the middle half of the frames spans 3 semitones
    n = 3 * SR
    f0 = 110.0 * 2 ** (6.0 * np.arange(n) / n / 12)
    out = measure(0.1 * harmonic(n, f0))
    assert out["f0_spread_semitones"] == pytest.approx(3.0, abs=0.5)
    assert semitones(out["f0_median_hz"], 110.0 * 2 ** 0.25) < 1.0


def test_other_sample_rates_are_resampled():
    rng = np.random.default_rng(5)
    n = 3 * 48_000
    x = 0.1 * harmonic(n, 180.0, sr=48_000) + 1e-3 * rng.standard_normal(n)
    out = measure(x, sample_rate=48_000)
    assert out["duration_s"] == pytest.approx(3.0)
    assert semitones(out["f0_median_hz"], 180.0) < 1.0
    assert out["active_level_dbfs"] == pytest.approx(-20.0, abs=0.1)


# --- speaking rate --------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [2.0, 3.0, 4.0, 5.0, 6.0])
def test_speaking_rate_within_15_percent(rate):
    x = syllables(rate, 10, np.random.default_rng(int(rate * 10)))
    assert measure(x)["speaking_rate_syll_per_s"] == pytest.approx(rate, rel=0.15)


def test_speaking_rate_ignores_edge_silence_and_unvoiced_bursts():
    rng = np.random.default_rng(6)
    x = syllables(4.0, 10, rng)
    longer = np.concatenate([np.zeros(SR), x, np.zeros(SR)])
    assert measure(longer)["speaking_rate_syll_per_s"] == pytest.approx(measure(x)["speaking_rate_syll_per_s"])
    # bursts of noise (unvoiced, like fricatives) are no syllable nuclei
    hiss = np.zeros(3 * SR)
    for i in range(10):
        hiss[i * 4000 + 2000 : i * 4000 + 4000] = 0.05 * rng.standard_normal(2000) * np.hanning(2000)
    assert measure(hiss)["speaking_rate_syll_per_s"] == 0.0
    assert measure(hiss[:1000])["speaking_rate_syll_per_s"] is None  # under 200 ms


# --- SNR ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_snr_within_3_db_from_0_to_30(seed):
    rng = np.random.default_rng(10 + seed)
    x, mask = words(4.0, rng)
    x *= 0.1
    speech_power = np.mean(x[mask] ** 2)  # active speech: the bursts, pauses excluded
    errors = []
    for snr in range(0, 31, 5):
        noise = rng.standard_normal(len(x)) * np.sqrt(speech_power / 10 ** (snr / 10))
        errors.append(snr_db(x + noise) - snr)
    assert max(map(abs, errors)) < 3.0, errors


def test_snr_range_ends():
    x, _ = words(3.0, np.random.default_rng(12))
    assert snr_db(0.1 * x) == 60.0  # digital silence between the words
    assert snr_db(0.1 * np.random.default_rng(13).standard_normal(2 * SR)) == -10.0  # noise only
    assert snr_db(np.ones(1000)) is None  # under 200 ms


# --- reverberation --------------------------------------------------------------------------------


def reverberate(x: np.ndarray, rt60: float, drr_db: float = 0.0, seed: int = 0) -> np.ndarray:
    return fftconvolve(x, room_impulse_response(SR, rt60, drr_db, np.random.default_rng(seed)))


def test_c50_model():
    assert c50_from_rt60(1.0) == pytest.approx(0.0, abs=0.05)
    assert c50_from_rt60(0.1) == pytest.approx(30.0, abs=0.01)
    assert c50_from_rt60(0.5) == pytest.approx(10 * np.log10(np.expm1(0.05 * 6 * np.log(10) / 0.5)))


@pytest.mark.parametrize("noise_snr_db", [None, 30.0])
def test_dry_clip_is_clearer_than_a_reverberant_room(noise_snr_db):
    rng = np.random.default_rng(20)
    x, _ = words(5.0, rng)
    x = 0.1 * x
    wet = reverberate(x, 0.8, seed=21)
    if noise_snr_db is not None:
        std = 0.1 * 10 ** (-noise_snr_db / 20)
        x, wet = x + std * rng.standard_normal(len(x)), wet + std * rng.standard_normal(len(wet))
    dry_c50, wet_c50 = measure(x)["c50_db"], measure(wet)["c50_db"]
    assert dry_c50 > 20.0
    assert dry_c50 - wet_c50 > 10.0


@pytest.mark.parametrize("drr_db", [-4.0, 0.0, 5.0])
def test_c50_falls_and_rt60_is_roughly_right(drr_db):
    x, _ = words(5.0, np.random.default_rng(30))
    x = 0.1 * x
    c50s = []
    for rt60 in (0.2, 0.5, 0.8, 1.0):
        wet = reverberate(x, rt60, drr_db, seed=31)
        estimate = rt60_s(wet)
        assert estimate == pytest.approx(rt60, rel=0.3)  # rough: within 30 % of the room's RT60
        c50s.append(measure(wet)["c50_db"])
        assert c50s[-1] == pytest.approx(c50_from_rt60(estimate))
    assert all(np.diff(c50s) < 0), c50s


# --- clipping -------------------------------------------------------------------------------------


def test_clipping_share_of_a_clipped_sine():
    t = np.arange(SR) / SR
    sine = np.sin(2 * np.pi * 200 * t)
    # 2 sin clipped at 1: |sin| > 1/2 for 2/3 of the time
    assert clipping_share(np.clip(2 * sine, -1, 1)) == pytest.approx(2 / 3, abs=0.01)
    assert measure(np.clip(2 * sine, -1, 1))["clipping_share"] == pytest.approx(2 / 3, abs=0.01)
    # 1.1 sin clipped at 0.995: samples within 1e-3 of 0.995 where |sin| >= 0.994 / 1.1
    expected = 1 - 2 / np.pi * np.arcsin(0.994 / 1.1)
    assert clipping_share(np.clip(1.1 * sine, -0.995, 0.995)) == pytest.approx(expected, abs=0.01)
    assert clipping_share(0.5 * sine) == 0.0  # peak below 0.99: not clipped
    assert clipping_share(np.clip(2 * sine, -0.9, 0.9)) == 0.0  # clipped below 0.99 is not detected


# --- bad input ------------------------------------------------------------------------------------


def test_bad_input_gives_none_not_an_error():
    nothing = dict.fromkeys(KEYS)
    assert measure(np.zeros(0)) == {**nothing, "duration_s": 0.0}
    assert measure(np.zeros(SR)) == {**nothing, "duration_s": 1.0, "clipping_share": 0.0}
    x, _ = words(2.0, np.random.default_rng(40))
    x[100] = np.nan
    assert measure(x) == {**nothing, "duration_s": len(x) / SR}
    x[100] = np.inf
    assert measure(x, sample_rate=8000) == {**nothing, "duration_s": len(x) / 8000}
    short = measure(0.1 * harmonic(100, 200.0))  # 6 ms: a level, nothing else
    assert short["active_level_dbfs"] is not None
    assert all(short[k] is None for k in ("f0_median_hz", "speaking_rate_syll_per_s", "snr_db", "c50_db"))
    noise = measure(0.1 * np.random.default_rng(41).standard_normal(SR), speaker_f0_hz=120.0)
    assert noise["f0_median_hz"] is None and noise["f0_semitones_re_speaker"] is None
    tone = 0.1 * harmonic(SR, 150.0)
    assert measure(tone, speaker_f0_hz=0.0)["f0_semitones_re_speaker"] is None
    assert measure(tone, speaker_f0_hz=float("nan"))["f0_semitones_re_speaker"] is None
    assert measure(tone[:, None]) == measure(tone)  # (S, 1) is mono too
    with pytest.raises(ValueError, match="mono"):
        measure(np.stack([tone, tone]))
