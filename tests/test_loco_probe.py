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


def test_inner_features_are_the_moments_of_what_the_blocks_compute_over_every_window(probe: Any) -> None:
    """Reference: the activations that reach each block's fc2 and the block outputs, captured from the network's
    own forward pass (plain linears, hooks), over the frames of both 30 s windows of a 31 s clip."""
    import torch
    from torch.nn import functional as F

    from paraspeechclap.encoders.packed_linear import plain_linears
    from paraspeechclap.encoders.whisper import create_whisper_encoder
    from paraspeechclap.training.features import split_windows

    enc = create_whisper_encoder("tiny.en", layers=[0, 1, 2, 3, 4], pooling="mean_std").eval()
    wav = (np.random.default_rng(3).standard_normal(31 * 16000) * 0.1).astype(np.float32)
    ffn: dict[int, list[torch.Tensor]] = {b: [] for b in probe.INNER_BLOCKS}
    hooks = [enc.base.layers[b - 1].fc2.register_forward_pre_hook(lambda _m, a, b=b: ffn[b].append(a[0][0]))
             for b in probe.INNER_BLOCKS]
    outs: dict[int, list[torch.Tensor]] = {b: [] for b in probe.INNER_BLOCKS}
    windows = split_windows(wav, enc.window_samples)
    assert len(windows) == 2
    with torch.no_grad(), plain_linears():
        for w in windows:
            mel = enc.prepare(w).features[None]
            states, _ = enc.hidden_states(mel, torch.tensor([mel.shape[-1]]))
            for b in probe.INNER_BLOCKS:
                outs[b].append(F.layer_norm(states[b][0], states[b].shape[-1:]))
        got = probe.inner_features(enc, wav)
    for h in hooks:
        h.remove()
    for key, ref in (("ffn", ffn), ("frame_ln", outs)):
        for k, b in enumerate(probe.INNER_BLOCKS):
            frames = torch.cat(ref[b]).double()  # (T1 + T2, D)
            np.testing.assert_allclose(got[key][k, 0], frames.mean(0).numpy(), atol=2e-5)
            np.testing.assert_allclose(got[key][k, 1], frames.std(0, unbiased=False).numpy(), atol=2e-5)


def test_a_probe_design_takes_each_source_s_blocks_and_statistics(probe: Any) -> None:
    n = 3
    data = {"states": np.random.default_rng(0).normal(size=(n, 7, 2, 8)),
            "ffn": np.random.default_rng(1).normal(size=(n, 4, 2, 16)),
            "extras": np.ones((n, 3)), "prosody": np.zeros((n, 11))}
    x = probe.design(data, probe.Probe((3, 4), (("states", (0, 1)), ("ffn", (0,)))))
    assert x.shape == (n, 2 * 2 * 8 + 2 * 16 + 3)
    ffn_block4_mean = data["ffn"][:, 3, 0]  # block 4 is the inner arrays' 4th row
    ref = (ffn_block4_mean - ffn_block4_mean.mean(-1, keepdims=True)) / (ffn_block4_mean.std(-1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(x[:, 32 + 16:32 + 32], ref)
    np.testing.assert_allclose(x[:, -3:], 1.0)
