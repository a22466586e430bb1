"""The projection head, pooling and waveform normalisation against hand-written references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from paraspeechclap.encoders.hf_audio import normalize_waveform
from paraspeechclap.projection import Projection


def _reference_projection(x, w1, w2, gamma, beta, eps=1e-5):
    """ParaCLAP's projection written out with numpy: LN(e1 + W2 gelu(e1)), e1 = W1 x, exact GELU."""
    e1 = x @ w1.T
    gelu = 0.5 * e1 * (1.0 + np.vectorize(math.erf)(e1 / math.sqrt(2.0)))
    h = e1 + gelu @ w2.T
    mu = h.mean(axis=-1, keepdims=True)
    var = ((h - mu) ** 2).mean(axis=-1, keepdims=True)
    return (h - mu) / np.sqrt(var + eps) * gamma + beta


def test_projection_matches_reference():
    torch.manual_seed(0)
    proj = Projection(12, 8, dropout=0.5).eval()
    with torch.no_grad():
        proj.layer_norm.weight.uniform_(0.5, 1.5)
        proj.layer_norm.bias.uniform_(-0.2, 0.2)
    x = torch.randn(5, 12)
    ref = _reference_projection(x.double().numpy(), proj.linear1.weight.detach().double().numpy(),
                                proj.linear2.weight.detach().double().numpy(),
                                proj.layer_norm.weight.detach().double().numpy(),
                                proj.layer_norm.bias.detach().double().numpy())
    np.testing.assert_allclose(proj(x).detach().numpy(), ref, atol=1e-5)
    # the official head is bias-free, and its submodule names are the checkpoint's
    assert proj.linear1.bias is None and proj.linear2.bias is None
    assert set(proj.state_dict()) == {"linear1.weight", "linear2.weight", "layer_norm.weight", "layer_norm.bias"}


def test_projection_dropout_only_in_train_mode():
    torch.manual_seed(0)
    proj = Projection(6, 6, dropout=0.5)
    x = torch.randn(4, 6)
    proj.train()
    assert not torch.allclose(proj(x), proj(x))
    proj.eval()
    assert torch.equal(proj(x), proj(x))


def test_waveform_normalisation_matches_hf_feature_extractor():
    from transformers import Wav2Vec2FeatureExtractor

    fe = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True)
    wav = (np.random.default_rng(1).standard_normal(8000) * 0.1 + 0.05).astype(np.float32)
    ref = fe(wav, sampling_rate=16000, padding="do_not_pad", return_tensors="np").input_values[0]
    np.testing.assert_allclose(normalize_waveform(wav), ref, atol=1e-5)
    out = normalize_waveform(wav)
    assert abs(out.mean()) < 1e-5 and abs(out.std() - 1) < 1e-3


def test_masked_mean_pooling_equals_mean_of_the_unpadded_item(tiny):
    """Official (HEAD) pooling: mean over valid frames only. Reference: each item alone, plain mean."""
    enc = tiny.audio_branch
    rng = np.random.default_rng(2)
    wavs = [rng.standard_normal(n).astype(np.float32) for n in (16000, 9000)]
    prep = [enc.prepare(w) for w in wavs]
    longest = max(p.length for p in prep)
    feats = torch.stack([torch.nn.functional.pad(p.features, (0, longest - p.length)) for p in prep])
    lengths = torch.tensor([p.length for p in prep])
    with torch.no_grad():
        pooled = enc(feats, lengths)
        for i, p in enumerate(prep):
            hidden = enc.base(p.features[None]).last_hidden_state[0]  # (T, D), no padding at all
            torch.testing.assert_close(pooled[i], hidden.mean(0), atol=1e-5, rtol=1e-4)


def test_unmasked_mean_pooling_averages_padding_like_the_old_official_code():
    from paraspeechclap.encoders.tiny import build_tiny_wavlm

    enc = build_tiny_wavlm(pooling="mean").eval()
    assert enc.batch_mode == "equal_length"  # padding would change results, so never mix lengths
    feats = torch.randn(2, 12000)
    lengths = torch.tensor([12000, 7000])
    with torch.no_grad():
        mask = (torch.arange(12000)[None] < lengths[:, None]).long()
        ref = enc.base(feats, attention_mask=mask).last_hidden_state.mean(1)
        torch.testing.assert_close(enc(feats, lengths), ref)


def test_text_pooling_cls_and_mean():
    from paraspeechclap.encoders.tiny import build_tiny_bert, build_tiny_xlmr

    for build, pooling in ((build_tiny_xlmr, "cls"), (build_tiny_bert, "mean")):
        enc = build().eval()
        tok = enc.tokenize(["a deep voice", "someone whispering very slowly and sadly"])
        with torch.no_grad():
            out = enc(**tok)
            hidden = enc.base(**tok).last_hidden_state
        for i in range(2):
            n = int(tok["attention_mask"][i].sum())
            ref = hidden[i, 0] if pooling == "cls" else hidden[i, :n].mean(0)
            torch.testing.assert_close(out[i], ref, atol=1e-5, rtol=1e-4)


def test_logit_scale_initialised_to_one_over_0_07(tiny):
    assert tiny.log_logit_scale.item() == pytest.approx(math.log(1 / 0.07), abs=1e-6)
    assert tiny.logit_scale.item() == pytest.approx(1 / 0.07, rel=1e-6)


def test_model_attribute_names_are_the_official_prefixes(tiny):
    prefixes = {k.split(".")[0] for k in tiny.state_dict()}
    assert prefixes == {"audio_branch", "text_branch", "audio_projection", "text_projection", "log_logit_scale"}
    assert any(k.startswith("audio_branch.base.") for k in tiny.state_dict())
    assert any(k.startswith("text_branch.base.") for k in tiny.state_dict())
