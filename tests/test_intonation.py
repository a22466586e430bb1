"""``synth.world.scale_f0_range``: monotonous and singsong intonation, checked with an independent F0
estimator (the autocorrelation tracker of :mod:`paraspeechclap.audio.pitch`, not WORLD's DIO)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pyworld")

SR = 16000


def _gliding_voice(seconds: float = 2.0, f0: float = 150.0, swing_st: float = 4.0) -> np.ndarray:
    """A harmonic voice whose F0 swings +-``swing_st`` semitones around ``f0`` (1.5 cycles), with a formant-ish tilt."""
    t = np.arange(int(seconds * SR)) / SR
    contour = f0 * 2.0 ** (swing_st * np.sin(2 * np.pi * 0.75 * t) / 12.0)
    phase = 2 * np.pi * np.cumsum(contour) / SR
    x = sum(np.sin(k * phase) / k ** 1.2 for k in range(1, 25))
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


def _range_st(x: np.ndarray) -> tuple[float, float]:
    """5-95 % span of the voiced frames' F0 in semitones, and their median in Hz."""
    from paraspeechclap.audio.pitch import frame_f0

    f0 = frame_f0(x)[0]
    v = f0[f0 > 0]
    st = 12 * np.log2(v)
    return float(np.percentile(st, 95) - np.percentile(st, 5)), float(np.median(v))


@pytest.mark.parametrize("factor", [0.0, 0.25, 2.0])
def test_f0_range_scales_and_the_level_stays(factor):
    from paraspeechclap.synth.world import analyse, scale_f0_range, synthesize

    x = _gliding_voice()
    modal = synthesize(analyse(x, SR, 150.0))  # the vocoded twin without the change
    changed = synthesize(scale_f0_range(analyse(x, SR, 150.0), factor))
    r0, m0 = _range_st(modal)
    r1, m1 = _range_st(changed)
    assert 7.0 < r0 < 9.0  # the source swings +-4 semitones: about 8 st from 5 % to 95 %
    # stated tolerance: the measured span is the factor times the twin's, within 0.6 semitones
    assert abs(r1 - factor * r0) < 0.6, (r0, r1)
    assert abs(12 * np.log2(m1 / m0)) < 0.5  # the median pitch (the pitch level) stays within half a semitone


def test_monotonous_below_and_singsong_above_stated_bounds():
    from paraspeechclap.synth.world import analyse, scale_f0_range, synthesize

    x = _gliding_voice(swing_st=2.0)
    flat = _range_st(synthesize(scale_f0_range(analyse(x, SR, 150.0), 0.2)))[0]
    wide = _range_st(synthesize(scale_f0_range(analyse(x, SR, 150.0), 2.5)))[0]
    assert flat < 1.5 and wide > 8.0
    with pytest.raises(ValueError):
        scale_f0_range(analyse(x, SR, 150.0), -1.0)
