"""The plain-PyTorch Whisper encoder against ``transformers``' ``WhisperEncoder`` (the reference)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from paraspeechclap.encoders.ct2 import build_whisper_encoder
from paraspeechclap.encoders.whisper_net import WhisperNet, WhisperNetConfig
from paraspeechclap.errors import ModelError

SHAPE = {"num_mel_bins": 16, "d_model": 32, "encoder_layers": 3, "encoder_attention_heads": 4,
         "encoder_ffn_dim": 64, "max_source_positions": 50}


def _reference() -> torch.nn.Module:
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    torch.manual_seed(0)
    ref = WhisperEncoder(WhisperConfig(**SHAPE)).eval()
    with torch.no_grad():  # non-trivial norms and biases, so a swapped or missing one shows
        for p in ref.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return ref


def _run_blocks(enc: torch.nn.Module, feats: torch.Tensor, mask: torch.Tensor | None) -> list[torch.Tensor]:
    """Front end + positions, every block's output and the final LayerNorm, as WhisperAudioEncoder runs them."""
    x = torch.nn.functional.gelu(enc.conv1(feats))
    x = torch.nn.functional.gelu(enc.conv2(x)).transpose(1, 2)
    x = x + enc.embed_positions.weight[: x.shape[1]]
    out = [x]
    for block in enc.layers:
        x = block(x, mask)
        out.append(x)
    return [*out, enc.layer_norm(x)]


def test_same_parameters_and_outputs_as_transformers():
    ref = _reference()
    net = build_whisper_encoder(SHAPE, ref.state_dict())  # strict: the same names and shapes
    assert set(net.state_dict()) == set(ref.state_dict())
    torch.manual_seed(1)
    feats = torch.randn(3, 16, 40)
    lengths = torch.tensor([20, 20, 11])  # output frames of a padded batch
    mask = torch.zeros(3, 1, 1, 20)
    mask[torch.arange(20)[None, None, None, :].expand(3, 1, 1, 20) >= lengths[:, None, None, None]] = \
        torch.finfo(torch.float32).min
    with torch.no_grad():
        for m in (None, mask):
            got, want = _run_blocks(net, feats, m), _run_blocks(ref, feats, m)
            for g, w in zip(got, want):
                torch.testing.assert_close(g, w, atol=1e-6, rtol=1e-5)
            assert not torch.allclose(got[1], got[2])  # the blocks do something


def test_gradients_flow_like_the_reference():
    ref = _reference()
    net = build_whisper_encoder(SHAPE, {k: v.clone() for k, v in ref.state_dict().items()})
    feats = torch.randn(2, 16, 30)
    for enc in (net, ref):
        enc.train()
        _run_blocks(enc, feats, None)[-1].square().sum().backward()
    torch.testing.assert_close(net.layers[0].fc1.weight.grad, ref.layers[0].fc1.weight.grad, atol=1e-5, rtol=1e-4)
    assert not net.embed_positions.weight.requires_grad  # Whisper's fixed positional table


def test_bad_config_and_weights_are_model_errors():
    with pytest.raises(ModelError, match="not a Whisper encoder config"):
        build_whisper_encoder({**SHAPE, "vocab": 3})
    state = WhisperNet(WhisperNetConfig(**SHAPE)).state_dict()
    state.pop("layers.2.fc1.bias")
    with pytest.raises(ModelError, match="layers.2.fc1.bias"):
        build_whisper_encoder(SHAPE, state)


def test_audio_side_needs_no_transformers_import():
    """Embedding audio with the default model must not import transformers (an actor's start-up cost)."""
    code = ("import sys, numpy as np\n"
            "from paraspeechclap.pretrained import load_model\n"
            "m = load_model(branches='audio')\n"
            "e = m.embed_audio([np.sin(np.arange(16000) / 9).astype('float32')], sample_rate=16000)\n"
            "assert e.shape == (1, m.config.embed_dim), e.shape\n"
            "print(sorted(k for k in sys.modules if k.split('.')[0] == 'transformers'))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_mel_bank_is_whisper_s():
    """The numpy mel bank against the one transformers' WhisperFeatureExtractor builds (librosa's)."""
    from transformers import WhisperFeatureExtractor

    from paraspeechclap.audio.features import whisper_mel_filters

    for n_mels in (80, 128):
        fe = WhisperFeatureExtractor(feature_size=n_mels, sampling_rate=16000, hop_length=160, n_fft=400)
        want = torch.from_numpy(fe.mel_filters.T.astype("float32"))
        got = whisper_mel_filters(n_mels)
        assert got.shape == want.shape == (n_mels, 201)
        torch.testing.assert_close(got, want, atol=1e-8, rtol=1e-5)


def test_gradient_checkpointing_gives_the_same_gradients():
    from paraspeechclap.encoders.base import set_grad_checkpointing

    torch.manual_seed(2)
    net = WhisperNet(WhisperNetConfig(**SHAPE)).train()
    feats = torch.randn(2, 16, 30)
    grads = []
    for enabled in (False, True):
        set_grad_checkpointing(net, enabled)
        assert all(b.checkpointing == enabled for b in net.layers)
        net.zero_grad()
        _run_blocks(net, feats, None)[-1].square().sum().backward()
        grads.append(net.layers[1].fc2.weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1])
