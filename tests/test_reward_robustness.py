"""benchmarks/reward_robustness.py: each perturbation does what it says, measurably, and the statistics and
the candidate quality gate behave (pure numpy; no model, no synthesis)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

SR = 16_000


@pytest.fixture(scope="module")
def rr(benchmark_module: Any) -> Any:
    return benchmark_module("reward_robustness")


def speech_like(f0: float = 150.0, seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    """Voiced 'syllables' (a harmonic complex on ``f0`` with slight vibrato, 4 per second, with short pauses
    of digital silence between them), a little below -20 dBFS."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.01 * np.sin(2 * np.pi * 5 * t))) / SR
    x = sum(np.sin(k * phase + rng.uniform(0, 2 * np.pi)) / k for k in range(1, 12))
    syllable = np.sin(np.pi * ((t * 4) % 1.0)) ** 2  # 250 ms bumps
    syllable[(t * 4) % 1.0 > 0.8] = 0.0  # 50 ms of silence in each
    y = x * syllable
    return (0.1 * y / np.abs(y).max()).astype(np.float32)


@pytest.mark.parametrize("snr", [20.0, 10.0, 0.0])
@pytest.mark.parametrize("kind", ["white", "speech-shaped"])
def test_noise_is_added_at_the_stated_snr_re_active_speech(rr: Any, snr: float, kind: str) -> None:
    x = speech_like()
    y = rr.add_noise(x, snr, np.random.default_rng(1), kind)
    assert y.dtype == np.float32 and y.shape == x.shape
    assert rr.measured_snr_db(x, y) == pytest.approx(snr, abs=0.5)


def test_noise_is_reproducible_from_its_rng_and_white_noise_is_white(rr: Any) -> None:
    x = speech_like()
    a = rr.add_noise(x, 10.0, rr.perturbation_rng(0, 3, 1))
    assert np.array_equal(a, rr.add_noise(x, 10.0, rr.perturbation_rng(0, 3, 1)))
    assert not np.array_equal(a, rr.add_noise(x, 10.0, rr.perturbation_rng(0, 4, 1)))
    noise = a.astype(np.float64) - x
    spec = np.abs(np.fft.rfft(noise)) ** 2
    low, high = spec[: len(spec) // 2].mean(), spec[len(spec) // 2 :].mean()
    assert low / high == pytest.approx(1.0, abs=0.1)  # flat: as much power below 4 kHz as above


def test_full_scale_clipping_clips_the_stated_share_at_plus_minus_one(rr: Any) -> None:
    from paraspeechclap.audio.measure import clipping_share

    x = speech_like()
    y = rr.clip_full_scale(x, 0.10)
    assert np.abs(y).max() == pytest.approx(1.0)
    assert rr.clipped_share(y) == pytest.approx(0.10, abs=0.005)
    assert clipping_share(y) >= 0.10  # the library's detector sees it (peak at full scale)
    louder = 10 * math.log10(rr.active_power(y) / rr.active_power(x))
    assert louder > 10.0  # an overdriven recording is louder


def test_level_kept_clipping_clips_the_same_share_and_keeps_the_level(rr: Any) -> None:
    from paraspeechclap.audio.measure import clipping_share

    x = speech_like()
    y = rr.clip_level_kept(x, 0.10)
    assert rr.clipped_share(y) == pytest.approx(0.10, abs=0.005)
    assert 10 * math.log10(rr.active_power(y) / rr.active_power(x)) == pytest.approx(0.0, abs=0.01)
    assert clipping_share(y) == 0.0  # below 0.99 full scale the library's detector is blind ...
    assert rr.plateau_share(y) >= 0.10  # ... the scale-free one is not
    assert rr.plateau_share(x) < 0.001  # and unclipped speech touches its peak in a few samples only


def test_silence_pads_are_one_second_of_zeros_each_side(rr: Any) -> None:
    x = speech_like()
    y = rr.pad_silence(x, 1.0)
    assert len(y) == len(x) + 2 * SR
    assert not y[:SR].any() and not y[-SR:].any()
    assert np.array_equal(y[SR:-SR], x)
    (l0, t0), (l1, t1) = rr.edge_silence_s(x), rr.edge_silence_s(y)
    assert l1 - l0 == pytest.approx(1.0, abs=0.02) and t1 - t0 == pytest.approx(1.0, abs=0.02)


def test_noise_floor_pads_sit_60_db_below_active_speech(rr: Any) -> None:
    x = speech_like()
    y = rr.pad_silence(x, 1.0, floor_db=-60.0, rng=np.random.default_rng(0))
    assert np.array_equal(y[SR:-SR], x)
    for pad in (y[:SR], y[-SR:]):
        level = 10 * math.log10(float(np.mean(pad.astype(np.float64) ** 2)) / rr.active_power(x))
        assert level == pytest.approx(-60.0, abs=0.1)
    (l0, t0), (l1, t1) = rr.edge_silence_s(x), rr.edge_silence_s(y)
    assert l1 - l0 == pytest.approx(1.0, abs=0.02) and t1 - t0 == pytest.approx(1.0, abs=0.02)
    with pytest.raises(ValueError):
        rr.pad_silence(x, 1.0, floor_db=-60.0)


def test_trimming_caps_the_edge_silence(rr: Any) -> None:
    x = speech_like()  # no edge silence of its own: trimming leaves it whole
    assert np.array_equal(rr.trim_edges(x), x)
    for y in (rr.pad_silence(x, 1.0), rr.pad_silence(x, 1.0, floor_db=-60.0, rng=np.random.default_rng(0))):
        t = rr.trim_edges(y, keep_s=0.1)  # the pads cut to at most 0.1 s each
        assert len(x) <= len(t) <= len(x) + 2 * (0.1 * SR + rr.FRAME)
        lead, trail = rr.edge_silence_s(t)
        assert lead <= 0.1 + 0.02 and trail <= 0.1 + 0.02
    assert len(rr.trim_edges(np.zeros(SR, np.float32))) == SR  # all silence: left alone


@pytest.mark.parametrize("f0", [110.0, 150.0, 230.0])
def test_stretch_halves_the_duration_and_keeps_the_pitch(rr: Any, f0: float) -> None:
    from paraspeechclap.audio.pitch import frame_f0, median_f0

    x = speech_like(f0, seconds=3.0)
    y = rr.time_stretch(x, 2.0)
    assert y.dtype == np.float32
    assert len(y) / len(x) == pytest.approx(0.5, abs=0.02)
    a, b = median_f0(frame_f0(x)[0]), median_f0(frame_f0(y)[0])
    assert a == pytest.approx(f0, rel=0.03)
    assert abs(12 * math.log2(b / a)) < 1.0
    assert abs(rr.f0_shift_semitones(x, y)) < 1.0
    # the syllables come twice as fast: the envelope's 4 Hz rhythm becomes 8 Hz
    env = np.abs(y.astype(np.float64))
    env = np.convolve(env, np.ones(160) / 160, mode="same")
    spec = np.abs(np.fft.rfft(env - env.mean()))
    freqs = np.fft.rfftfreq(len(env), 1 / SR)
    band = (freqs > 2) & (freqs < 20)
    assert freqs[band][np.argmax(spec[band])] == pytest.approx(8.0, abs=0.5)


def test_stretch_at_rate_one_reconstructs_the_clip(rr: Any) -> None:
    x = speech_like()
    y = rr.time_stretch(x, 1.0)
    assert len(y) == len(x)
    err = np.mean((y.astype(np.float64) - x) ** 2) / np.mean(x.astype(np.float64) ** 2)
    assert err < 1e-6


def test_stretch_only_for_prompts_that_are_not_fast(rr: Any) -> None:
    stretch = next(p for p in rr.PERTURBATIONS if p.name.startswith("stretch"))
    assert not stretch.targeted
    assert stretch.applies({"speaking_rate": "slow"}) and stretch.applies({"speaking_rate": "measured"})
    assert stretch.applies({"emotion": "angry"})  # a prompt without a rate does not ask for fast speech
    assert not stretch.applies({"speaking_rate": "fast"})
    assert all(p.targeted for p in rr.PERTURBATIONS if not p.name.startswith("stretch"))


def test_effects_report_what_each_perturbation_did(rr: Any) -> None:
    x = speech_like()
    by_name = {p.name: p for p in rr.PERTURBATIONS}
    rng = np.random.default_rng(0)
    assert rr.effect(by_name["noise 10 dB"], x, by_name["noise 10 dB"].apply(x, rng))["snr_db"] == \
        pytest.approx(10.0, abs=0.5)
    e = rr.effect(by_name["clip 10% (full scale)"], x, by_name["clip 10% (full scale)"].apply(x, rng))
    assert e["clipped_share"] == pytest.approx(0.10, abs=0.005)
    e = rr.effect(by_name["silence 1 s"], x, by_name["silence 1 s"].apply(x, rng))
    assert e["added_lead_s"] == pytest.approx(1.0, abs=0.02)
    both = by_name["noise 10 dB + silence 1 s"]
    e = rr.effect(both, x, both.apply(x, rng))
    assert e["snr_db"] == pytest.approx(10.0, abs=0.5) and e["added_lead_s"] == pytest.approx(1.0, abs=0.02)
    e = rr.effect(by_name["stretch 2x"], x, by_name["stretch 2x"].apply(x, rng))
    assert e["duration_ratio"] == pytest.approx(0.5, abs=0.02) and abs(e["f0_shift_semitones"]) < 1.0


def test_outranking_and_its_interval(rr: Any) -> None:
    clean = np.array([0.50, 0.50, 0.50, 0.50])
    degraded = np.array([0.49, 0.51, 0.53, 0.60])
    assert rr.outranks(clean, degraded, 0.0).tolist() == [False, True, True, True]
    assert rr.outranks(clean, degraded, 0.02).tolist() == [False, False, True, True]
    e = rr.share_entry(np.array([True] * 20 + [False] * 80), np.random.default_rng(0), boots=500)
    assert e["share"] == pytest.approx(0.2)
    lo, hi = e["ci95"]
    assert 0.10 < lo < 0.2 < hi < 0.30


def test_gated_ranking_is_tiered_like_the_wer_threshold(rr: Any) -> None:
    clean = np.array([0.50, 0.50, 0.50, 0.50, 0.50])
    degraded = np.array([0.40, 0.60, 0.60, 0.60, 0.40])
    clean_ok = np.array([False, True, True, False, True])
    degraded_ok = np.array([True, False, True, False, True])
    # a passing copy beats a failing clean clip whatever the rewards; a failing copy never beats a passing
    # clean clip; within a tier the reward (and the margin) decides
    assert rr.outranks(clean, degraded, 0.02, clean_ok, degraded_ok).tolist() == [True, False, True, True, False]


def test_the_gate_passes_clean_speech_and_names_each_defect(rr: Any) -> None:
    x = speech_like()
    assert rr.quality_gate(x).ok
    rng = np.random.default_rng(0)
    assert rr.quality_gate(rr.add_noise(x, 0.0, rng)).reasons == ["snr"]
    assert rr.quality_gate(rr.add_noise(x, 20.0, rng)).ok  # above the SNR threshold
    assert rr.quality_gate(rr.clip_full_scale(x, 0.10)).reasons == ["clipping"]
    assert rr.quality_gate(rr.clip_level_kept(x, 0.10)).reasons == ["clipping"]
    assert rr.quality_gate(rr.clip_full_scale(x, 0.002)).ok  # a few clipped peaks are tolerated
    # digital silence around a noisy clip fools a blind noise floor; the gate measures the trimmed clip
    noisy = rr.add_noise(x, 5.0, rng)
    assert rr.quality_gate(rr.pad_silence(noisy, 1.0)).reasons == ["snr"]
    padded = rr.pad_silence(x, 1.0)
    assert rr.quality_gate(padded).ok  # the edge-silence check is off by default (trimming is the fix) ...
    v = rr.quality_gate(padded, max_edge_silence_s=0.5)  # ... and on request
    assert v.reasons == ["silence"] and v.measures["lead_s"] == pytest.approx(1.0, abs=0.02)


def test_the_snr_threshold_rule_takes_the_highest_threshold_below_the_rejection_cap(rr: Any) -> None:
    def sweep(rejected: dict[str, float]) -> dict[str, Any]:
        return {"with_gate_snr_sweep": {t: {"outrank": 0.1, "clean_rejected": r} for t, r in rejected.items()}}

    sets = {"synthetic": {"perturbations": {"noise": sweep({"5": 0.0, "8": 0.01, "10": 0.02, "12": 0.03})}},
            "real": {"perturbations": {"noise": sweep({"5": 0.02, "8": 0.049, "10": 0.05, "12": 0.11}),
                                       "silence": {}}}}
    choice = rr.choose_snr_threshold(sets)
    # the worst set decides: 10 dB fails 5 % of real clean clips, which the cap (< 5 %) excludes
    assert choice["chosen_min_snr_db"] == 8.0
    assert choice["clean_rejected_worst"] == {"5": 0.02, "8": 0.049, "10": 0.05, "12": 0.11}
    assert rr.choose_snr_threshold({"real": {"perturbations": {"n": sweep({"5": 0.2})}}})["chosen_min_snr_db"] is None
