"""``synth.world.vary_tempo`` (slurred's uneven timing) and ``change_tempo``, measured by an estimator
that is not the warp's own: syllable nuclei (``audio.measure.syllable_nuclei``, intensity peaks that the
autocorrelation tracker hears as voiced) on a train of isochronous syllables, whose rhythm is then read
as the normalised pairwise variability index (nPVI, Grabe & Low 2002) of the inter-nucleus intervals."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pyworld")

SR = 16000
PERIOD_S = 0.22  # one syllable every 0.22 s: 4.5 syllables per second, a plain reading rate


def _syllable_train(n: int = 16, f0: float = 140.0) -> np.ndarray:
    """``n`` harmonic syllables (Gaussian envelopes, 35 ms sd) spaced exactly :data:`PERIOD_S` apart."""
    t = np.arange(int((n * PERIOD_S + 0.3) * SR)) / SR
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.03 * np.sin(2 * np.pi * 0.5 * t))) / SR
    x = sum(np.sin(k * phase) / k ** 1.2 for k in range(1, 25))
    env = sum(np.exp(-0.5 * ((t - 0.15 - i * PERIOD_S) / 0.035) ** 2) for i in range(n))
    x = x * np.clip(env, 0.0, 1.0)
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


def _intervals(x: np.ndarray) -> np.ndarray:
    from paraspeechclap.audio.measure import syllable_nuclei
    from paraspeechclap.audio.pitch import frame_f0

    return np.diff(syllable_nuclei(np.asarray(x, np.float64), frame_f0(x)[0]))


def _npvi(d: np.ndarray) -> float:
    return float(100 * np.mean(np.abs(np.diff(d)) / ((d[1:] + d[:-1]) / 2)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_uneven_timing_crowds_and_drags_syllables_and_keeps_the_duration(seed):
    from paraspeechclap.synth.world import analyse, synthesize, vary_tempo

    x = _syllable_train()
    twin = synthesize(analyse(x, SR, 140.0))
    depth = 0.35
    uneven = synthesize(vary_tempo(analyse(x, SR, 140.0), depth, 0.45, np.random.default_rng(seed)))
    d0, d1 = _intervals(twin), _intervals(uneven)
    assert len(d0) == len(d1) == 15  # every syllable is still heard, none added
    assert _npvi(d0) < 2.0  # the vocoded twin keeps the isochrony (measured: 0)
    # stated bound: nPVI 20 or more at depth 0.35 (measured 26.6-29.5 over seeds 0-3); the widest
    # interval ratio lies between the smallest and largest the rates allow, with 15 % tolerance
    assert _npvi(d1) >= 20.0, _npvi(d1)
    ratio = d1.max() / d1.min()
    assert (1 + 0.6 * depth) / (1 - 0.6 * depth) / 1.15 <= ratio <= (1 + depth) / (1 - depth) * 1.15, ratio
    assert abs(len(uneven) - len(twin)) <= SR * 0.01  # the duration (so the rate label) is kept within a frame
    assert abs(d1.mean() - d0.mean()) < 0.02


def test_change_tempo_scales_every_interval():
    from paraspeechclap.synth.world import analyse, change_tempo, synthesize

    d = _intervals(synthesize(change_tempo(analyse(_syllable_train(), SR, 140.0), 1.5)))
    assert np.allclose(d, PERIOD_S / 1.5, atol=0.015), d  # 1.5 times faster: every interval two thirds as long


@pytest.mark.parametrize("depth,stretch", [(-0.1, 0.4), (1.0, 0.4), (0.3, 0.0)])
def test_vary_tempo_refuses_impossible_settings(depth, stretch):
    from paraspeechclap.synth.world import analyse, vary_tempo

    with pytest.raises(ValueError, match="vary_tempo"):
        vary_tempo(analyse(_syllable_train(4), SR, 140.0), depth, stretch, np.random.default_rng(0))


def test_tempo_spread_reads_uneven_timing_by_alignment():
    """The DTW estimator (``audio.measure.tempo_spread``) against the known manipulation: a twin timed
    alike reads 0, uneven timing at depth 0.35 reads a spread of local rates above 0.3 octave (the rates
    1 +- 0.35 u span up to 1.05 octaves), an even slow-down little spread."""
    from paraspeechclap.audio.measure import tempo_spread
    from paraspeechclap.synth.world import analyse, change_tempo, synthesize, vary_tempo

    x = _syllable_train(16)
    twin = synthesize(analyse(x, SR, 140.0))
    uneven = synthesize(vary_tempo(analyse(x, SR, 140.0), 0.35, 0.45, np.random.default_rng(0)))
    slower = synthesize(change_tempo(analyse(x, SR, 140.0), 0.8))
    assert tempo_spread(twin, twin) == 0.0
    assert tempo_spread(twin, uneven) > 0.3 > 0.15 > tempo_spread(twin, slower)
