"""The packed oneDNN linear path of the Whisper blocks (fp32 CPU inference) against the plain ``nn.Linear`` path."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from paraspeechclap.encoders import packed_linear as pl
from paraspeechclap.encoders.whisper_net import WhisperNet, WhisperNetConfig

pytestmark = [
    pytest.mark.skipif(not pl._ops_available(), reason="this PyTorch has no oneDNN packed linear ops"),
    # torch deprecates the dynamic quantisation the int8 precision still uses (set_precision silences it too)
    pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning"),
]

SHAPE = WhisperNetConfig(num_mel_bins=16, d_model=32, encoder_layers=2, encoder_attention_heads=4,
                         encoder_ffn_dim=64, max_source_positions=50)


def _net() -> WhisperNet:
    torch.manual_seed(0)
    net = WhisperNet(SHAPE).eval()
    with torch.no_grad():  # non-trivial biases, so a dropped or misplaced one shows
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return net


def _blocks(net: WhisperNet, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    for block in net.layers:
        x = block(x, mask)
    return x


def _packed_names(net: WhisperNet) -> set[str]:
    return {name for m in net.modules() for name in m.__dict__.get("_packed_linears", {})}


def test_packed_blocks_match_the_plain_layers(monkeypatch):
    net, x = _net(), torch.randn(3, 20, 32)
    mask = torch.zeros(3, 1, 1, 20)
    mask[2, ..., 11:] = torch.finfo(torch.float32).min  # one padded item
    with torch.no_grad():
        monkeypatch.setenv(pl.ENV_SWITCH, "0")
        _blocks(net, x, mask)
        assert _packed_names(net) == set()  # switched off: nothing packed
        for m in (None, mask):
            monkeypatch.setenv(pl.ENV_SWITCH, "0")
            plain = _blocks(net, x, m)
            monkeypatch.setenv(pl.ENV_SWITCH, "1")
            packed = _blocks(net, x, m)
            torch.testing.assert_close(packed, plain, atol=1e-5, rtol=1e-5)
    assert _packed_names(net) == {"qkv", "out", "fc1", "fc2"}  # the packed path was taken


def test_stacked_layers_and_fused_gelu():
    torch.manual_seed(1)
    layers = (nn.Linear(8, 6), nn.Linear(8, 5, bias=False), nn.Linear(8, 7))  # k_proj-like: no bias
    owner, x = nn.Module(), 3 * torch.randn(4, 9, 8)
    with torch.no_grad():
        got = pl.packed_linear(owner, "stack", layers, x)
        torch.testing.assert_close(got, torch.cat([m(x) for m in layers], dim=-1), atol=1e-5, rtol=1e-5)
        gelu = pl.packed_linear(owner, "gelu", layers[:1], x, post="gelu")
        torch.testing.assert_close(gelu, F.gelu(layers[0](x)), atol=1e-5, rtol=1e-5)  # erf GELU, as Whisper
        assert (gelu - F.gelu(layers[0](x), approximate="tanh")).abs().max() > 1e-4  # not the tanh one


def test_weights_changed_after_packing_are_repacked():
    net, x = _net(), torch.randn(2, 20, 32)
    with torch.no_grad():
        before = _blocks(net, x)
        net.layers[0].fc1.weight.mul_(1.5)  # in place: as an optimiser step or load_state_dict does
        net.layers[1].self_attn.k_proj.weight.add_(0.2)
        after = _blocks(net, x)
        assert not torch.allclose(after, before, atol=1e-3)
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv(pl.ENV_SWITCH, "0")
            torch.testing.assert_close(after, _blocks(net, x), atol=1e-5, rtol=1e-5)


def test_autograd_bf16_and_quantised_layers_keep_their_own_kernels():
    net, x = _net(), torch.randn(2, 20, 32, requires_grad=True)
    _blocks(net, x).square().sum().backward()  # autograd on: the plain layers (the packed op has no backward)
    assert _packed_names(net) == set() and x.grad is not None
    with torch.no_grad():
        _blocks(net.to(torch.bfloat16), x.detach().to(torch.bfloat16))
    assert _packed_names(net) == set()
    from torch.ao.quantization import quantize_dynamic

    quantised = quantize_dynamic(_net(), {nn.Linear}, dtype=torch.qint8)
    with torch.no_grad():
        _blocks(quantised, x.detach())
    assert _packed_names(quantised) == set()  # int8 layers are not nn.Linear: none packed


def test_int8_feed_forward_still_packs_the_fp32_attention():
    from torch.ao.quantization import quantize_dynamic

    net, x = _net(), torch.randn(2, 20, 32)
    for block in net.layers:  # as precision="int8" does: the feed-forward layers only
        quantize_dynamic(block, {"fc1", "fc2"}, dtype=torch.qint8, inplace=True)
    with torch.no_grad():
        packed = _blocks(net, x)
        assert _packed_names(net) == {"qkv", "out"}
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv(pl.ENV_SWITCH, "0")
            torch.testing.assert_close(packed, _blocks(net, x), atol=1e-5, rtol=1e-5)


def test_training_feature_cache_computes_with_plain_linears(tmp_path, monkeypatch):
    """Cache entries are made as before the packed path existed (rebuilds stay bit for bit), while
    inference, outside ``plain_linears``, takes the packed path."""
    import numpy as np
    import soundfile as sf

    from paraspeechclap.encoders.registry import create_audio_encoder
    from paraspeechclap.training.features import CacheRequest, _compute_clip, full_clip_features

    enc = create_audio_encoder({"type": "whisper", "variant": "tiny.en", "layers": [1, 2]},
                               cache_dir=tmp_path / "cache").eval()
    rng = np.random.default_rng(0)
    wav = (0.3 * np.sin(np.arange(32000) * 2 * np.pi * 140 / 16000) + 0.02 * rng.standard_normal(32000))
    sf.write(tmp_path / "a.wav", wav.astype("float32"), 16000, subtype="FLOAT")  # read back exactly
    cached = _compute_clip(CacheRequest("a", str(tmp_path / "a.wav")), "d", enc, None, 0, 1, 4)[0]["features"]
    with torch.no_grad():
        packed = full_clip_features(wav.astype("float32"), enc, 4)
        monkeypatch.setenv(pl.ENV_SWITCH, "0")
        plain = full_clip_features(wav.astype("float32"), enc, 4)
    assert torch.equal(cached, plain)
    assert not torch.equal(packed, plain)  # the packed path did run outside the cache
    torch.testing.assert_close(packed, plain, atol=1e-4, rtol=1e-5)
