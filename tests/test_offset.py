"""The stored audio offset (paraspeechclap.offset): arithmetic, the model's paths, saving, training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_train_loop import _args, toy  # noqa: F401  (toy is a fixture)

from paraspeechclap import load_model
from paraspeechclap.cli.main import main
from paraspeechclap.config import ModelConfig
from paraspeechclap.errors import ConfigError, ModelError
from paraspeechclap.model import ParaSpeechCLAP
from paraspeechclap.offset import carries, offset_vector
from paraspeechclap.training.config import load_config

TINY = str(Path(__file__).resolve().parents[1] / "configs" / "train" / "tiny.yaml")


def _unit(rows: list[list[float]]) -> np.ndarray:
    x = np.asarray(rows, dtype=np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_offset_vector_is_the_scaled_weighted_mean() -> None:
    emb = _unit([[3, 4], [1, 0], [0, 2]])  # rows (0.6, 0.8), (1, 0), (0, 1)
    assert np.allclose(offset_vector(emb, 1.0), [(0.6 + 1) / 3, (0.8 + 1) / 3])
    assert np.allclose(offset_vector(emb, 0.5), [0.5 * 1.6 / 3, 0.5 * 1.8 / 3])
    # weights 1/2, 1/2, 1: the first two are one clip's two variants, the third a clip of its own
    assert np.allclose(offset_vector(emb, 1.0, np.array([0.5, 0.5, 1.0])), [(0.3 + 0.5) / 2, (0.4 + 1) / 2])
    with pytest.raises(ValueError, match="non-empty"):
        offset_vector(np.zeros((0, 2)), 1.0)


def test_carries_reads_presence_not_values() -> None:
    assert carries({"emotion": "sad", "speaker": "a"}, ["emotion"])
    assert carries({"emotion": "", "x": 0}, ["emotion", "x"])  # present, whatever the value
    assert not carries({"emotion": None}, ["emotion"]) and not carries({}, ["emotion"])
    assert carries({}, [])


def _model(offset: bool) -> ParaSpeechCLAP:
    cfg = ModelConfig(audio_encoder={"type": "tiny-wavlm", "seed": 0}, text_encoder={"type": "tiny-bert", "seed": 0},
                      embed_dim=4, audio_offset=offset)
    torch.manual_seed(0)
    return ParaSpeechCLAP.from_config(cfg).eval()


def test_project_audio_moves_normalised_embeddings_and_leaves_training_alone() -> None:
    model = _model(True)
    pooled = torch.randn(3, model.audio_branch.hidden_size)
    raw = model.project_audio(pooled, normalize=False)
    assert torch.allclose(model.project_audio(pooled), torch.nn.functional.normalize(raw, dim=-1))  # zeros: no change
    o = torch.tensor([0.5, -0.25, 0.0, 0.125])
    model.set_audio_offset(o)
    x = raw.detach().numpy().astype(np.float64)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ref = x - o.numpy()
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)  # hand-written: l2(l2(raw) - o)
    assert np.allclose(model.project_audio(pooled).detach().numpy(), ref, atol=1e-6)
    assert torch.equal(model.project_audio(pooled, normalize=False), raw)  # the training path never sees it
    with pytest.raises(ValueError, match="shape"):
        model.set_audio_offset(torch.zeros(5))
    with pytest.raises(ModelError, match="no audio offset"):
        _model(False).set_audio_offset(o)
    assert "audio_offset" not in _model(False).state_dict()
    from paraspeechclap.evaluation.runner import model_info

    assert model_info(model)["audio_offset"] is True and model_info(_model(False))["audio_offset"] is False


def test_the_offset_is_saved_loaded_strictly_and_applied_to_clips(tmp_path: Path) -> None:
    model = _model(True)
    model.set_audio_offset(torch.tensor([0.3, 0.1, -0.2, 0.0]))
    model.save_pretrained(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "config.json").read_text())["audio_offset"] is True
    back = load_model(str(tmp_path / "m"))
    assert torch.equal(back.audio_offset, model.audio_offset)
    rng = np.random.default_rng(0)
    clips = [rng.standard_normal(16000).astype(np.float32) * 0.1 for _ in range(2)]
    moved = back.embed_audio(clips, sample_rate=16000)
    assert np.allclose(np.linalg.norm(moved, axis=1), 1.0, atol=1e-6)
    alone = back.embed_audio(clips[:1], sample_rate=16000)
    assert np.allclose(alone[0], moved[0], atol=1e-6)  # a fixed vector: a clip's result ignores its batch
    o = back.audio_offset.numpy().copy()
    back.set_audio_offset(None)
    plain = back.embed_audio(clips, sample_rate=16000)
    ref = plain - o
    assert np.allclose(moved, ref / np.linalg.norm(ref, axis=1, keepdims=True), atol=1e-5)
    # a weights file without the offset its config promises is refused, not loaded as zeros
    from safetensors.torch import load_file, save_file

    weights = load_file(str(tmp_path / "m" / "model.safetensors"))
    del weights["audio_offset"]
    save_file(weights, str(tmp_path / "m" / "model.safetensors"))
    with pytest.raises(Exception, match="audio_offset"):
        load_model(str(tmp_path / "m"))


def test_the_config_section_sets_the_architecture_and_checks_the_scale(tmp_path: Path) -> None:
    assert load_config(TINY).model.audio_offset is False
    cfg = load_config(TINY, ["audio_offset={scale: 0.5, require: [emotion]}"])
    assert cfg.model.audio_offset is True and cfg.audio_offset.scale == 0.5
    assert cfg.model.model_config().audio_offset is True
    for bad in ("0", "2.5"):
        with pytest.raises(ConfigError, match="audio_offset.scale"):
            load_config(TINY, [f"audio_offset={{scale: {bad}}}"])


@pytest.mark.parametrize("cached", [True, False])
def test_training_fits_the_offset_on_its_reference_clips(toy, tmp_path: Path, capsys, cached: bool) -> None:  # noqa: F811
    common = [f"features.cache={str(cached).lower()}", "features.variants=2", "augment.gain_db=[-6.0, 6.0]",
              f"features.cache_dir={tmp_path / 'features'}", "train.max_steps=3", "eval.every_steps=null",
              "model.audio_trainable=[]"]
    out = tmp_path / "run"
    assert main(_args(toy, out, *common, "audio_offset={scale: 0.5, require: [speaker]}")) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["audio_offset"]["clips"] == 24 and summary["audio_offset"]["scale"] == 0.5
    model = load_model(str(out / "final"), precision="fp32")
    stored = model.audio_offset.numpy().copy()
    assert summary["audio_offset"]["norm"] == pytest.approx(float(np.linalg.norm(stored)), abs=1e-4)
    if not cached:  # the reference is the clips' files, embedded without an offset: recompute it by hand
        model.set_audio_offset(None)
        from paraspeechclap.data.manifest import load_manifest

        train = load_manifest(toy["train"])
        emb = model.embed_audio([str(train.audio_path(i)) for i in range(len(train))]).astype(np.float64)
        assert np.allclose(stored, 0.5 * emb.mean(0), atol=1e-5)
    else:  # the cached variants differ in gain, so the mean is not the plain files' mean, but close to it
        assert 0.0 < np.linalg.norm(stored) < 0.5 + 1e-6
    assert main(_args(toy, tmp_path / "none", *common, "audio_offset={require: [emotion]}")) == 2
    assert "audio_offset: no readable training clip carrying emotion" in capsys.readouterr().err


def test_init_from_neither_carries_nor_needs_an_offset(toy, tmp_path: Path) -> None:  # noqa: F811
    common = ["train.max_steps=2", "eval.every_steps=null"]
    assert main(_args(toy, tmp_path / "a", *common, "audio_offset={scale: 1.0}")) == 0
    assert main(_args(toy, tmp_path / "b", *common, f"model.init_from={tmp_path / 'a' / 'final'}")) == 0
    assert load_model(str(tmp_path / "b" / "final")).audio_offset is None
    assert main(_args(toy, tmp_path / "c", *common, f"model.init_from={tmp_path / 'b' / 'final'}",
                      "audio_offset={scale: 1.0}")) == 0


def test_follow_batches_centres_each_step_on_a_running_mean() -> None:
    from paraspeechclap.training.config import AudioOffsetConfig
    from paraspeechclap.training.offset_fit import follow_batches

    model = _model(True)
    cfg = AudioOffsetConfig(scale=0.5, require=["emotion"], train=True, momentum=0.75)
    raw = torch.tensor([[3.0, 4.0, 0.0, 0.0], [0.0, 0.0, 2.0, 0.0], [0.0, 0.0, 0.0, 5.0]], requires_grad=True)
    rows = [{"emotion": "sad"}, {"emotion": "happy"}, {}]  # the third carries no emotion: not in the mean
    out = follow_batches(model, raw, rows, cfg)
    # hand-written: unit rows (0.6, 0.8, 0, 0), (0, 0, 1, 0); offset = 0.75 * 0 + 0.25 * 0.5 * their mean
    expect = 0.25 * 0.5 * np.array([0.3, 0.4, 0.5, 0.0])
    assert np.allclose(model.audio_offset.numpy(), expect)
    assert np.allclose(out.detach().numpy()[2], np.array([0, 0, 0, 1.0]) - expect)
    out.sum().backward()  # the gradient flows through the clips, never into the offset
    assert raw.grad is not None and not model.audio_offset.requires_grad
    follow_batches(model, raw.detach(), [{}, {}, {}], cfg)  # no row carries the field: the offset stays
    assert np.allclose(model.audio_offset.numpy(), expect)


def test_training_around_centred_embeddings_runs_and_stores_the_exact_mean(toy, tmp_path: Path) -> None:  # noqa: F811
    common = ["train.max_steps=3", "eval.every_steps=null"]
    assert main(_args(toy, tmp_path / "run", *common, "audio_offset={scale: 1.0, train: true}")) == 0
    model = load_model(str(tmp_path / "run" / "final"), precision="fp32")
    stored = model.audio_offset.numpy().copy()
    model.set_audio_offset(None)
    from paraspeechclap.data.manifest import load_manifest

    train = load_manifest(toy["train"])
    emb = model.embed_audio([str(train.audio_path(i)) for i in range(len(train))]).astype(np.float64)
    assert np.allclose(stored, emb.mean(0), atol=1e-5)  # refit over every clip before saving, not the running value


def test_offset_scan_summarises_as_written_by_hand(benchmark_module) -> None:
    scan = benchmark_module("offset_scan")
    assert scan.variant(["emotion"], 0.75) == "require=emotion/scale=0.75"
    assert scan.variant([], 1.0, gated=True) == "require=none/scale=1/gated"
    side = {"emotion/uar": 0.5, "emotion8/uar": 0.25, "recall_sad": None}
    per_fold = {"a": {"none": {"left_out": side, "dev": side}},
                "b": {"none": {"left_out": {**side, "emotion/uar": 0.7, "recall_sad": 0.4}, "dev": side}}}
    s = scan.summarize(per_fold)["none"]
    assert s["left_out"]["emotion/uar"] == pytest.approx(0.6) and s["left_out"]["emotion/uar_min"] == 0.5
    assert s["left_out"]["recall_sad"] == pytest.approx(0.4)  # a fold without the class does not count as 0


def test_the_gate_is_a_soft_nearest_mean_choice() -> None:
    from paraspeechclap.offset import apply_offset, gate_vector

    gate = gate_vector(np.array([1.0, 0.0]), np.array([0.0, 1.0]), 0.5)
    assert np.allclose(gate, [2.0, -2.0, 0.0])  # w = (m_in - m_out) / T, b = (|m_in|^2 - |m_out|^2) / 2T
    emb = _unit([[1, 0], [0, 1], [1, 1]])
    g = 1 / (1 + np.exp(-(emb @ gate[:-1] - gate[-1])))
    s2 = 1 / (1 + np.exp(-2.0))
    assert np.allclose(g, [s2, 1 - s2, 0.5])  # x . w - b = 2, -2, 0: the middle clip is halfway
    o = np.array([0.5, 0.0])
    x = emb - g[:, None] * o
    assert np.allclose(apply_offset(emb, o, gate), x / np.linalg.norm(x, axis=1, keepdims=True))
    with pytest.raises(ValueError, match="temperature"):
        gate_vector(np.zeros(2), np.ones(2), 0.0)
    # the model applies the same arithmetic (torch, its buffers)
    cfg = ModelConfig(audio_encoder={"type": "tiny-wavlm", "seed": 0}, text_encoder={"type": "tiny-bert", "seed": 0},
                      embed_dim=2, audio_offset=True, audio_offset_gate=True)
    model = ParaSpeechCLAP.from_config(cfg).eval()
    model.set_audio_offset(torch.tensor(o, dtype=torch.float32), torch.from_numpy(gate))
    got = model.offset_audio(torch.tensor(emb, dtype=torch.float32)).numpy()
    assert np.allclose(got, apply_offset(emb, o, gate), atol=1e-6)
    assert json.loads(json.dumps(cfg.to_dict()))["audio_offset_gate"] is True
    with pytest.raises(ValueError, match="no gate"):
        _model(True).set_audio_offset(torch.zeros(4), torch.zeros(5))


def test_gate_config_rules() -> None:
    cfg = load_config(TINY, ["audio_offset={require: [emotion], gate: true}"])
    assert cfg.model.audio_offset_gate is True and cfg.audio_offset.gate_temperature == 0.05
    assert load_config(TINY, ["audio_offset={require: [emotion]}"]).model.audio_offset_gate is False
    with pytest.raises(ConfigError, match="audio_offset.gate: true needs require"):
        load_config(TINY, ["audio_offset={gate: true}"])
    with pytest.raises(ConfigError, match="audio_offset.gate"):
        load_config(TINY, ["audio_offset={require: [emotion], gate: true, train: true}"])


def test_training_fits_a_gate_between_reference_and_other_clips(toy, tmp_path: Path, capsys) -> None:  # noqa: F811
    rows = [json.loads(line) for line in Path(toy["train"]).read_text().splitlines() if line.strip()]
    mixed = Path(toy["train"]).with_name("mixed.jsonl")  # beside the original, so the audio paths hold
    mixed.write_text("".join(json.dumps({**r, **({"emotion": "neutral"} if i % 3 == 0 else {})}) + "\n"
                             for i, r in enumerate(rows)))
    args = ["train.max_steps=2", "eval.every_steps=null", "audio_offset={scale: 1.0, require: [emotion], gate: true}"]
    out = tmp_path / "run"
    assert main([*_args(toy, out, *args), "--set", f"data.train_manifest={mixed}"]) == 0
    info = json.loads((out / "summary.json").read_text())["audio_offset"]
    assert (info["clips"], info["other_clips"]) == (8, 16)
    model = load_model(str(out / "final"), precision="fp32")
    assert model.audio_offset_gate is not None and float(model.audio_offset_gate.abs().sum()) > 0
    from paraspeechclap.data.manifest import load_manifest
    from paraspeechclap.offset import gate_vector

    train = load_manifest(str(mixed))
    offset, gate = model.audio_offset.numpy().copy(), model.audio_offset_gate.numpy().copy()
    model.set_audio_offset(None, None)
    emb = model.embed_audio([str(train.audio_path(i)) for i in range(len(train))]).astype(np.float64)
    has = np.array(["emotion" in train[i] for i in range(len(train))])
    assert np.allclose(offset, emb[has].mean(0), atol=1e-5)
    assert np.allclose(gate, gate_vector(emb[has].mean(0), emb[~has].mean(0), 0.05), rtol=1e-3, atol=1e-3)
    every = [f"data.train_manifest={toy['train']}"]  # no clip without the field: nothing to gate against
    assert main([*_args(toy, tmp_path / "all", *args), "--set", *every,
                 "audio_offset={scale: 1.0, require: [speaker], gate: true}"]) == 2
    assert "the gate needs others" in capsys.readouterr().err


def test_within_span_keeps_the_directions_that_tell_classes_apart() -> None:
    from paraspeechclap.offset import within_span

    # set A: classes differing along x only; set B: along y only (their shared z component is each set's mean)
    a = np.array([[1.0, 0.0, 0.5], [-1.0, 0.0, 0.5]])
    b = np.array([[0.0, 2.0, 0.3], [0.0, 0.0, 0.3], [0.0, -2.0, 0.3]])
    v = np.array([0.4, -0.2, 0.9])
    assert np.allclose(within_span(v, [a]), [0.4, 0.0, 0.0])
    assert np.allclose(within_span(v, [a, b]), [0.4, -0.2, 0.0])  # z is common to every class: never kept
    # a class's score moves by -o . t: within A's span, the differences between A's classes move as with all of v
    full, kept = a @ v, a @ within_span(v, [a])
    assert np.allclose(full - full.mean(), kept - kept.mean())


def test_training_restricts_the_offset_to_the_sets_it_names(toy, tmp_path: Path) -> None:  # noqa: F811
    args = ["train.max_steps=2", "eval.every_steps=null", "audio_offset={scale: 1.0, within: [gender]}"]
    assert main(_args(toy, tmp_path / "run", *args)) == 0
    model = load_model(str(tmp_path / "run" / "final"), precision="fp32")
    stored = model.audio_offset.numpy().copy()
    from paraspeechclap.data.attributes import get_attribute_set
    from paraspeechclap.data.manifest import load_manifest
    from paraspeechclap.evaluation.classification import embed_class_prompts

    g = get_attribute_set("gender")
    t = embed_class_prompts(model, g.prompts(ensemble=True), g.candidates).astype(np.float64)  # (2, D)
    d = (t[0] - t[1]) / np.linalg.norm(t[0] - t[1])
    model.set_audio_offset(None)
    train = load_manifest(toy["train"])
    mean = model.embed_audio([str(train.audio_path(i)) for i in range(len(train))]).astype(np.float64).mean(0)
    assert np.allclose(stored, (mean @ d) * d, atol=1e-5)  # two classes: a one-direction span
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["audio_offset"]["within"] == ["gender"]
    with pytest.raises(ConfigError, match="audio_offset.within.0"):
        load_config(TINY, ["audio_offset={within: [colour]}"])
