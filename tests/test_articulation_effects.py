"""Nasal and slurred building blocks (issue 21), each measured by an estimator that is not its own analysis:
``synth.effects.nasalize`` (Klatt's nasal pole-zero pair) by a long-term A1-P0
(``audio.measure.nasal_a1_p0_db``), and ``synth.effects.smear`` (short-time spectrum averaged over time)
by the share of phoneme-rate envelope modulation (``audio.measure.fast_modulation_share``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from paraspeechclap.audio import load_audio
from paraspeechclap.audio.measure import _ltas, fast_modulation_share, nasal_a1_p0_db
from paraspeechclap.synth.effects import NASAL_POLE_HZ, nasalize, smear

SR = 16000
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CLIPS = ["thorsten_neutral.flac", "thorsten_angry.flac", "synth_deep.flac", "synth_high-pitched.flac",
         "synth_slow.flac"]


@pytest.fixture(scope="module")
def speech():
    return {c: load_audio(str(EXAMPLES / c)) for c in CLIPS}


def _tone_gain_db(freq: float, zero_hz: float) -> float:
    t = np.arange(2 * SR) / SR
    x = np.sin(2 * np.pi * freq * t)
    y = nasalize(x, SR, zero_hz)[SR:]  # past the filters' start-up
    return float(20 * np.log10(np.std(y) / np.std(x[SR:])))


def test_nasal_pair_cancels_without_coupling_and_keeps_unit_gain_at_low_frequency(speech):
    x = speech["thorsten_neutral.flac"]
    assert np.abs(nasalize(x, SR, NASAL_POLE_HZ) - x).max() < 1e-5  # zero on the pole: the identity

    def analog_db(f: float, zero_hz: float, bandwidth: float = 100.0) -> float:
        """The s-plane pole pair Klatt's resonator samples, over the zero pair: unit gain at 0 Hz."""
        s, sigma = 2j * np.pi * f, np.pi * bandwidth

        def pair(freq: float) -> complex:
            w = 2 * np.pi * freq
            return (sigma**2 + w**2) / ((s + sigma) ** 2 + w**2)

        return float(20 * np.log10(abs(pair(NASAL_POLE_HZ)) / abs(pair(zero_hz))))

    for freq in (30.0, 150.0, NASAL_POLE_HZ, 450.0, 1000.0, 3000.0):
        assert _tone_gain_db(freq, 450.0) == pytest.approx(analog_db(freq, 450.0), abs=0.1), freq
    assert _tone_gain_db(NASAL_POLE_HZ, 450.0) > 5.0 and _tone_gain_db(450.0, 450.0) < -15.0


@pytest.mark.parametrize("zero_hz", [450.0, 550.0])
def test_nasalized_speech_has_a_lower_a1_p0_than_its_twin(speech, zero_hz):
    for clip, x in speech.items():
        drop = nasal_a1_p0_db(x) - nasal_a1_p0_db(nasalize(x, SR, zero_hz))
        assert drop >= 10.0, (clip, drop)  # stated bound: A1-P0 at least 10 dB lower (measured 14-22)
        assert len(nasalize(x, SR, zero_hz)) == len(x)


def test_a1_p0_refuses_silence_and_short_clips():
    assert nasal_a1_p0_db(np.zeros(SR)) is None
    assert nasal_a1_p0_db(np.ones(100)) is None


def _modulated_noise(rate_hz: float, seconds: float = 4.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    carrier = np.random.default_rng(0).standard_normal(len(t))
    return carrier * (1.0 + 0.9 * np.sin(2 * np.pi * rate_hz * t))


def test_modulation_share_reads_the_rate_of_a_known_modulation():
    assert fast_modulation_share(_modulated_noise(12.0)) > 0.8  # phoneme rate
    assert fast_modulation_share(_modulated_noise(3.0)) < 0.2  # syllable rate
    assert fast_modulation_share(np.zeros(SR)) is None and fast_modulation_share(np.ones(SR // 4)) is None


@pytest.mark.parametrize("span_s", [0.08, 0.12])
def test_smeared_speech_loses_fast_modulation_but_keeps_its_spectrum_and_length(speech, span_s):
    edges = 150.0 * 2.0 ** np.arange(0, np.log2(6000 / 150) + 1e-9, 1 / 3)
    for clip, x in speech.items():
        y = smear(x, SR, span_s)
        assert len(y) == len(x)
        ratio = fast_modulation_share(y) / fast_modulation_share(x)
        assert ratio <= 0.5, (clip, ratio)  # stated bound: at most half the twin's (measured 0.07-0.34)
        f, before = _ltas(x, SR)
        _, after = _ltas(y, SR)
        for lo, hi in zip(edges[:-1], edges[1:]):
            band = (f >= lo) & (f < hi)
            change = 10 * np.log10(after[band].sum() / before[band].sum())
            assert abs(change) <= 1.5, (clip, lo, change)  # stated bound: the timbre stays (measured <= 0.8 dB)


def test_smear_over_less_than_a_frame_changes_little(speech):
    x = speech["thorsten_neutral.flac"]
    assert fast_modulation_share(smear(x, SR, 0.0)) / fast_modulation_share(x) > 0.8
