"""Strict loading of official-layout state dicts (reference-official.md section 3) and its refusals.

The "official" checkpoint here is assembled directly from Hugging Face models and hand-made head
tensors with the documented key names, independently of our model class.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from paraspeechclap import load_model
from paraspeechclap.errors import CheckpointError

EMBED = 24


@pytest.fixture(scope="module")
def backbones(tmp_path_factory):
    """A tiny WavLM (WavLM-Large layout) and a tiny XLM-R (Granite layout) saved as local directories."""
    from transformers import WavLMConfig, WavLMModel, XLMRobertaConfig, XLMRobertaModel

    from paraspeechclap.encoders.hf_text import minilm_path

    root = tmp_path_factory.mktemp("backbones")
    torch.manual_seed(0)
    wavlm = WavLMModel(WavLMConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                                   conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
                                   num_buckets=32, feat_extract_norm="layer", do_stable_layer_norm=True))
    xlmr = XLMRobertaModel(XLMRobertaConfig(vocab_size=30522, hidden_size=20, num_hidden_layers=1,
                                            num_attention_heads=2, intermediate_size=40, max_position_embeddings=130,
                                            pad_token_id=0))
    wavlm.save_pretrained(root / "wavlm")
    xlmr.save_pretrained(root / "xlmr")
    for f in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(minilm_path() / f, root / "xlmr" / f)
    return root / "wavlm", root / "xlmr", wavlm.state_dict(), xlmr.state_dict()


def official_state_dict(backbones) -> dict[str, torch.Tensor]:
    _, _, wavlm_sd, xlmr_sd = backbones
    g = torch.Generator().manual_seed(1)
    sd = {f"audio_branch.base.{k}": v.clone() for k, v in wavlm_sd.items()}
    sd.update({f"text_branch.base.{k}": v.clone() for k, v in xlmr_sd.items()})
    assert "text_branch.base.pooler.dense.weight" in sd  # the unused pooler stays in the state dict
    for tower, d_in in (("audio", 32), ("text", 20)):
        sd[f"{tower}_projection.linear1.weight"] = torch.randn(EMBED, d_in, generator=g)
        sd[f"{tower}_projection.linear2.weight"] = torch.randn(EMBED, EMBED, generator=g)
        sd[f"{tower}_projection.layer_norm.weight"] = torch.rand(EMBED, generator=g) + 0.5
        sd[f"{tower}_projection.layer_norm.bias"] = torch.randn(EMBED, generator=g) * 0.1
    sd["log_logit_scale"] = torch.tensor(2.5)
    return sd


def _load(path, backbones, **kw):
    # fp32: these tests compare weights and embeddings exactly, and "auto" is bf16 on some CPUs
    kw.setdefault("precision", "fp32")
    return load_model(str(path), audio_encoder=str(backbones[0]), text_encoder=str(backbones[1]), **kw)


def _save(sd, tmp_path, name="ckpt.pth.tar"):
    p = tmp_path / name
    torch.save(sd, p)
    return p


def test_strict_load_copies_every_tensor(backbones, tmp_path):
    sd = official_state_dict(backbones)
    model = _load(_save(sd, tmp_path), backbones)
    ours = model.state_dict()
    assert set(ours) == set(sd)
    for k, v in sd.items():
        assert torch.equal(ours[k], v), k
    assert model.config.embed_dim == EMBED  # read from the checkpoint
    assert len(model.checksum) == 64


def _pos_conv_keys(sd):
    return sorted(k for k in sd if "pos_conv_embed.conv.parametrizations" in k)


@pytest.mark.parametrize("variant", ["legacy_logit_scale", "position_ids", "weight_g_v", "all"])
def test_documented_variants_load_to_the_same_weights(backbones, tmp_path, variant):
    ref = official_state_dict(backbones)
    sd = dict(ref)
    if variant in ("legacy_logit_scale", "all"):
        sd["logit_scale"] = sd.pop("log_logit_scale")
    if variant in ("position_ids", "all"):
        sd["text_branch.base.embeddings.position_ids"] = torch.arange(130)[None]
    if variant in ("weight_g_v", "all"):
        g_key, v_key = _pos_conv_keys(sd)  # original0 (g), original1 (v)
        sd[g_key.replace("parametrizations.weight.original0", "weight_g")] = sd.pop(g_key)
        sd[v_key.replace("parametrizations.weight.original1", "weight_v")] = sd.pop(v_key)
    model = _load(_save(sd, tmp_path), backbones)
    ours = model.state_dict()
    for k, v in ref.items():
        assert torch.equal(ours[k], v), k


@pytest.mark.parametrize("damage,needle", [
    ("extra", "unexpected key(s): audio_projection.bias"),
    ("missing", "missing key(s): text_projection.linear2.weight"),
    ("shape", "shape mismatch: text_projection.linear1.weight"),
    ("foreign_scale", "unexpected key(s): temperature"),
])
def test_other_mismatches_are_refused_with_the_keys(backbones, tmp_path, damage, needle):
    sd = official_state_dict(backbones)
    if damage == "extra":
        sd["audio_projection.bias"] = torch.zeros(EMBED)
    elif damage == "missing":
        del sd["text_projection.linear2.weight"]
    elif damage == "shape":
        sd["text_projection.linear1.weight"] = torch.zeros(EMBED, 21)
    else:
        sd["temperature"] = sd.pop("log_logit_scale")
    with pytest.raises(CheckpointError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        _load(_save(sd, tmp_path), backbones)


def test_checkpoint_for_other_encoders_is_refused(backbones, tmp_path):
    sd = official_state_dict(backbones)
    path = _save(sd, tmp_path)
    with pytest.raises(CheckpointError, match="does not match the model"):
        load_model(str(path), audio_encoder=str(backbones[0]), text_encoder="tiny-bert")


@pytest.mark.parametrize("content", [b"this is not a checkpoint", b""])
def test_not_a_checkpoint(tmp_path, backbones, content):
    p = tmp_path / "junk.pth.tar"
    p.write_bytes(content)
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint"):
        _load(p, backbones)


def test_wrapped_or_non_tensor_checkpoint_refused(tmp_path, backbones):
    p = _save({"epoch": 3, "state_dict": {}}, tmp_path)
    with pytest.raises(CheckpointError, match="flat state dict"):
        _load(p, backbones)


def test_loaded_official_model_embeds_and_pooling_option(backbones, tmp_path, wav_files):
    path = _save(official_state_dict(backbones), tmp_path)
    masked = _load(path, backbones)
    old = _load(path, backbones, pooling="mean")
    a, b = masked.embed_audio(wav_files), old.embed_audio(wav_files)
    assert a.shape == (3, EMBED) and np.allclose(np.linalg.norm(a, axis=1), 1, atol=1e-5)
    # one clip alone has no padding: both poolings agree exactly
    np.testing.assert_allclose(masked.embed_audio(wav_files[:1]), old.embed_audio(wav_files[:1]), atol=1e-5)
    assert np.all(np.isfinite(b))


def test_cli_with_official_checkpoint(backbones, tmp_path, wav_files):
    path = _save(official_state_dict(backbones), tmp_path)
    base = [sys.executable, "-m", "paraspeechclap", "score", wav_files[0], "--text", "a calm voice",
            "--model", str(path), "--audio-encoder", str(backbones[0]), "--json"]
    ok = subprocess.run(base + ["--text-encoder", str(backbones[1])], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run(base + ["--text-encoder", "tiny-bert"], capture_output=True, text=True)
    assert bad.returncode == 2 and "does not match the model" in bad.stderr
    assert "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_released_names_resolve_from_the_hugging_face_cache(backbones, tmp_path, monkeypatch):
    """`load_model("combined")` finds the released file in the HF cache under either published name."""
    from huggingface_hub import constants

    from paraspeechclap import list_models

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    assert not {m.name: m for m in list_models()}["combined"].available
    repo = tmp_path / "models--ajd12342--paraspeechclap-combined"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    torch.save(official_state_dict(backbones), repo / "snapshots" / "abc123" / "slap-combined.pth.tar")
    info = {m.name: m for m in list_models()}["combined"]
    assert info.available and info.location.endswith("slap-combined.pth.tar")
    model = load_model("combined", audio_encoder=str(backbones[0]), text_encoder=str(backbones[1]))
    assert model.model_id == "paraspeechclap-combined" and model.config.embed_dim == EMBED


def test_is_official_checkpoint(backbones, tmp_path):
    from paraspeechclap.pretrained import is_official_checkpoint

    path = _save(official_state_dict(backbones), tmp_path)
    assert is_official_checkpoint(path) and is_official_checkpoint(str(path))
    assert all(is_official_checkpoint(n) for n in ("intrinsic", "situational", "combined"))  # nothing downloaded
    assert not is_official_checkpoint(None) and not is_official_checkpoint("lite")
    assert not is_official_checkpoint(tmp_path) and not is_official_checkpoint(tmp_path / "nothing.pth.tar")


@pytest.fixture()
def eval_manifest(tmp_path):
    """Three clips with pitch tags, laid out as <root>/corpus/cN.wav."""
    import json

    import soundfile as sf

    from paraspeechclap.testing import tone

    (tmp_path / "corpus").mkdir()
    rows = []
    for i, (sec, f0, tag) in enumerate([(0.8, 110.0, "deep"), (1.1, 330.0, "shrill"), (0.6, 200.0, "nasal")]):
        sf.write(tmp_path / "corpus" / f"c{i}.wav", tone(sec, f0, seed=i), 16000)
        rows.append({"source": "corpus", "relative_audio_path": f"c{i}.wav", "classification_tag": tag,
                     "text_description": f"A {tag} voice."})
    manifest = tmp_path / "eval.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return manifest


@pytest.fixture()
def auto_means_bf16(monkeypatch):
    """precision='auto' resolves to bf16 here, as on a CPU with AVX512-BF16 or AMX."""
    from paraspeechclap import inference

    monkeypatch.delenv("PARASPEECHCLAP_AUTO_PRECISION", raising=False)
    monkeypatch.setattr(inference, "cpu_has_bf16", lambda *a: True)
    assert inference.resolve_precision("auto", "cpu") == "bf16"


@pytest.mark.parametrize("flag, precision, source", [
    ([], "fp32", "official checkpoint default"),
    (["--precision", "bf16"], "bf16", "--precision bf16"),
    (["--precision", "auto"], "bf16", "--precision auto: bf16 on this device"),
])
def test_evaluate_runs_official_checkpoints_in_fp32_unless_told(backbones, tmp_path, eval_manifest, auto_means_bf16,
                                                                capsys, flag, precision, source):
    import json

    from paraspeechclap.cli.main import main

    path = _save(official_state_dict(backbones), tmp_path)
    model = ["--model", str(path), "--audio-encoder", str(backbones[0]), "--text-encoder", str(backbones[1]),
             "--device", "cpu", *flag]
    for task, extra in (("classification", ["--attribute", "pitch"]), ("retrieval", [])):
        out = tmp_path / task
        assert main(["evaluate", task, "--manifest", str(eval_manifest), *extra, "--out", str(out), *model]) == 0
        m = json.loads((out / "metrics.json").read_text())
        assert (m["model"]["precision"], m["model"]["precision_source"]) == (precision, source)
        assert f"precision {precision} ({source})" in (out / "metrics.md").read_text()
        assert f"precision {precision} ({source})" in capsys.readouterr().out


def test_evaluate_official_stderr_is_clean(backbones, tmp_path, eval_manifest):
    """No library progress bars or load warnings around an evaluation of an official checkpoint."""
    path = _save(official_state_dict(backbones), tmp_path)
    argv = ["evaluate", "classification", "--manifest", str(eval_manifest), "--attribute", "pitch",
            "--out", str(tmp_path / "o"), "--model", str(path),
            "--audio-encoder", str(backbones[0]), "--text-encoder", str(backbones[1])]
    run = subprocess.run([sys.executable, "-m", "paraspeechclap", *argv], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""
    assert "precision fp32 (official checkpoint default)" in run.stdout
