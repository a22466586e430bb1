"""The explicit pitch input: F0 of known signals, voicing, gain invariance, and its place in the encoder."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from paraspeechclap.audio.pitch import F0_REFERENCE_HZ, pitch_features
from paraspeechclap.testing import tone


@pytest.mark.parametrize("f0", [70.0, 110.0, 180.0, 260.0, 420.0])
def test_median_f0_of_harmonic_tones(f0):
    med, voiced = pitch_features(tone(2.0, f0))
    assert F0_REFERENCE_HZ * 2 ** med == pytest.approx(f0, rel=0.01)
    assert voiced > 0.9


def test_gliding_tone_median_and_octave_robustness():
    sr, t = 16000, np.arange(32000) / 16000
    f = 100 + 50 * t  # 100 -> 200 Hz glide, median 150 Hz
    x = sum(np.sin(2 * np.pi * k * np.cumsum(f) / sr) / k for k in range(1, 8)).astype(np.float32) * 0.2
    med, _ = pitch_features(x)
    assert F0_REFERENCE_HZ * 2 ** med == pytest.approx(150, rel=0.05)


def test_noise_is_unvoiced_and_gain_does_not_matter():
    noise = np.random.default_rng(0).standard_normal(32000).astype(np.float32) * 0.1
    assert pitch_features(noise)[1] < 0.1
    x = tone(1.5, 140)
    np.testing.assert_allclose(pitch_features(x), pitch_features(x * 0.05), atol=1e-3)


def test_whisper_encoder_appends_the_pitch_features():
    from paraspeechclap.encoders.whisper import create_whisper_encoder

    enc = create_whisper_encoder("tiny.en", layers=[2], pooling="mean", level_input=True, pitch_input=True).eval()
    assert enc.hidden_size == 384 + 1 + 2
    x = tone(1.0, 200)
    p = enc.prepare(x)
    np.testing.assert_allclose(p.extras["pitch"].numpy(), pitch_features(x))
    with torch.no_grad():
        out = enc(p.features[None], torch.tensor([p.length]), **{k: v[None] for k, v in p.extras.items()})
    np.testing.assert_allclose(out[0, -2:].numpy(), pitch_features(x), atol=1e-6)


def test_trimmed_mean_is_the_geometric_mean_near_the_median():
    from paraspeechclap.audio.pitch import median_f0, trimmed_mean_f0

    # 5 modal frames at 200 Hz, one at 150 Hz, 5 creaky frames at 100 Hz: the median falls between
    # the clusters (150 Hz); the frames within half an octave of it are the 200s and the 150.
    f0 = np.array([200.0] * 5 + [150.0] + [100.0] * 5 + [0.0, 0.0])
    assert median_f0(f0) == 150.0
    expected = 2.0 ** ((5 * np.log2(200.0) + np.log2(150.0)) / 6)  # ~190.7 Hz
    assert trimmed_mean_f0(f0) == pytest.approx(expected, rel=1e-9)
    # an even split far apart leaves nothing near the median: the median itself, not NaN
    assert trimmed_mean_f0(np.array([100.0, 100.0, 400.0, 400.0])) == pytest.approx(200.0)
    assert trimmed_mean_f0(np.array([0.0, 120.0, 0.0, 130.0])) is None  # fewer than 3 voiced frames


def test_pitch_statistic_option_of_the_whisper_encoder():
    from paraspeechclap.encoders.whisper import create_whisper_encoder
    from paraspeechclap.errors import ConfigError
    from paraspeechclap.training.features import backbone_key

    kw = {"layers": [2], "pooling": "mean", "pitch_input": True, "pretrained": False}
    plain = create_whisper_encoder("tiny.en", **kw)
    trimmed = create_whisper_encoder("tiny.en", pitch_statistic="trimmed_mean", **kw)
    # the default is left out of the spec (earlier models and caches keep their meaning); another
    # statistic is part of it and of the feature-cache key, as it changes what is cached
    assert "pitch_statistic" not in plain.spec()
    assert trimmed.spec() == {**plain.spec(), "pitch_statistic": "trimmed_mean"}
    assert backbone_key(trimmed) != backbone_key(plain)
    # the encoder's pitch extra is the chosen summary
    x = np.concatenate([tone(2.0, 220), tone(1.0, 110)])
    np.testing.assert_allclose(trimmed.prepare(x).extras["pitch"].numpy(), pitch_features(x, "trimmed_mean"))
    with pytest.raises(ConfigError, match="pitch_statistic"):
        create_whisper_encoder("tiny.en", pitch_statistic="mode", **kw)
