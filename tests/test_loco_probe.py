"""benchmarks/loco_probe.py: the prosodic statistics, the speaker centring and the leave-one-corpus-out probe."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from paraspeechclap.testing import tone

SR = 16_000


@pytest.fixture(scope="module")
def probe(benchmark_module: Any) -> Any:
    return benchmark_module("loco_probe")


def _glide(f_start: float, f_end: float, seconds: float = 1.5) -> np.ndarray:
    """A harmonic tone whose F0 moves geometrically from ``f_start`` to ``f_end``."""
    t = np.arange(int(seconds * SR)) / SR
    f0 = f_start * (f_end / f_start) ** (t / seconds)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    x = sum(np.sin(k * phase) / k for k in range(1, 6))
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


def _stat(probe: Any, wav: np.ndarray, name: str) -> float:
    return float(probe.prosody(wav)[probe.PROSODY.index(name)])


def test_a_steady_tone_has_no_melody_and_a_rising_one_rises(probe: Any) -> None:
    steady = tone(1.5, 200.0)
    assert _stat(probe, steady, "f0_std") < 0.3 and _stat(probe, steady, "f0_range") < 0.5
    assert _stat(probe, steady, "voiced_fraction") > 0.9
    up = _glide(150.0, 300.0)  # one octave in 1.5 s: 8 semitones per second
    assert 7.0 < _stat(probe, up, "f0_slope") < 9.0
    assert _stat(probe, up, "f0_range") > 6.0  # 10-90 % of a 12-semitone glide is 9.6
    assert _stat(probe, _glide(300.0, 150.0), "f0_slope") < -7.0


def test_pauses_and_voicing_rate_count_the_silent_gaps(probe: Any) -> None:
    burst, gap = tone(0.3, 180.0), np.zeros(int(0.2 * SR), np.float32)
    three = np.concatenate([burst, gap, burst, gap, burst])  # 3 voiced runs of 0.3 s over 1.3 s
    assert 2.0 < _stat(probe, three, "voicing_rate") < 2.6
    assert 0.2 < _stat(probe, three, "voiced_run_s") < 0.4
    assert 0.2 < _stat(probe, three, "pauses") < 0.4
    assert _stat(probe, tone(1.0, 180.0), "pauses") < 0.05


def test_the_statistics_do_not_hear_the_level(probe: Any) -> None:
    wav = _glide(120.0, 200.0)
    np.testing.assert_allclose(probe.prosody(wav * 0.1), probe.prosody(wav), rtol=1e-4, atol=1e-6)


def test_speaker_centring_and_the_probe_on_separable_corpora(probe: Any) -> None:
    x = np.arange(12, dtype=float).reshape(6, 2)
    got = probe.speaker_centred(x, np.array(["a", "b", "a", "b", "a", "b"]))
    np.testing.assert_allclose(got[[0, 2, 4]], x[[0, 2, 4]] - x[[0, 2, 4]].mean(0))
    rng = np.random.default_rng(0)
    corpora = probe.SUMMARY_CORPORA
    label = np.array([c for _ in corpora for c in probe.CLASSES for _ in range(5)])
    corpus = np.array([k for k in corpora for _ in range(5 * len(probe.CLASSES))])
    data = {"label": label, "corpus": corpus, "speaker": corpus.copy()}
    onehot = np.array([[float(lab == c) for c in probe.CLASSES] for lab in label])
    res = probe.loco(onehot * 3 + rng.normal(scale=0.1, size=onehot.shape) + rng.normal(size=(len(label), 1)),
                     data, "none")
    assert res["uar4_mean"] == pytest.approx(1.0) and res["sad"] == pytest.approx(1.0)
    noise = probe.loco(rng.normal(size=(len(label), 4)), data, "none")
    assert noise["uar4_mean"] < 0.6  # no signal: near chance (0.25), far from the separable case
