"""Channel augmentation: its filters against closed-form responses (how training uses it: test_train_data.py)."""

from __future__ import annotations

import numpy as np
import pytest

from paraspeechclap.training.channel import coloured_noise, high_shelf, peaking, random_channel

SR = 16_000


def _gain_at(filt, f: float) -> float:
    """Steady-state gain (dB) of ``filt`` on a sine at ``f`` Hz (last half second, after the transient)."""
    t = np.arange(SR) / SR
    x = np.sin(2 * np.pi * f * t)
    y = filt(x)
    return 20 * np.log10(np.sqrt(np.mean(y[SR // 2:] ** 2)) / np.sqrt(np.mean(x[SR // 2:] ** 2)))


def test_peaking_band_has_its_gain_at_the_centre_and_none_far_away() -> None:
    assert _gain_at(lambda x: peaking(x, 1000.0, 6.0, 1.0), 1000.0) == pytest.approx(6.0, abs=0.05)
    assert _gain_at(lambda x: peaking(x, 1000.0, -8.0, 1.0), 1000.0) == pytest.approx(-8.0, abs=0.05)
    assert abs(_gain_at(lambda x: peaking(x, 1000.0, 6.0, 2.0), 60.0)) < 0.1


def test_high_shelf_lifts_the_top_and_leaves_the_bottom() -> None:
    assert _gain_at(lambda x: high_shelf(x, 3000.0, 6.0), 7500.0) == pytest.approx(6.0, abs=0.3)
    assert abs(_gain_at(lambda x: high_shelf(x, 3000.0, 6.0), 100.0)) < 0.1


@pytest.mark.parametrize("colour,k", [("white", 0.0), ("pink", 1.0), ("brown", 2.0)])
def test_noise_colours_have_their_spectral_slope(colour: str, k: float) -> None:
    n = coloured_noise(SR * 4, colour, np.random.default_rng(0))
    assert np.sqrt(np.mean(n**2)) == pytest.approx(1.0, rel=1e-6)
    spec = np.abs(np.fft.rfft(n)) ** 2
    f = np.fft.rfftfreq(len(n), 1 / SR)
    low, high = spec[(f > 200) & (f < 400)].mean(), spec[(f > 3200) & (f < 6400)].mean()
    # power falls as 1/f^k: 16 times the frequency is 12 dB per unit of k
    assert 10 * np.log10(low / high) == pytest.approx(10 * k * np.log10(16), abs=1.5)


def test_random_channel_keeps_length_rms_and_is_deterministic_in_its_seed() -> None:
    t = np.arange(2 * SR) / SR
    wav = (0.2 * np.sin(2 * np.pi * 220 * t) * (t % 0.5 < 0.3)).astype(np.float32)
    outs = [random_channel(wav, s) for s in range(6)]
    for y in outs:
        assert y.shape == wav.shape and y.dtype == np.float32 and np.isfinite(y).all()
        assert np.sqrt(np.mean(y**2)) == pytest.approx(np.sqrt(np.mean(wav**2)), rel=1e-3)
    np.testing.assert_array_equal(random_channel(wav, 3), outs[3])
    assert min(np.abs(a - b).max() for i, a in enumerate(outs) for b in outs[i + 1:]) > 1e-3  # seeds differ
