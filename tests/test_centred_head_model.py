"""A model's centred head (``paraspeechclap.centred_head``): speaker centring through it against a hand-written
reference, what keeps the main head, saving and strict loading, fitting, and ``paraspeechclap fit-centred-head``."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile as sf
import torch

from paraspeechclap import load_model
from paraspeechclap.centred_head import CentredHeadFit, fit_centred_head
from paraspeechclap.cli.main import main
from paraspeechclap.errors import CheckpointError, InputError, ModelError
from paraspeechclap.evaluation.runner import model_info
from paraspeechclap.projection import Projection
from paraspeechclap.testing import tiny_model, tiny_model_with_centred_head, tone


def _with_head(seed: int = 5):
    return tiny_model_with_centred_head(seed)


def _wavs(n: int = 5) -> list[np.ndarray]:
    return [tone(0.5 + 0.1 * i, 110.0 + 37 * i, seed=i) for i in range(n)]


def _reference_head(pooled: np.ndarray, speakers: list[str], sd: dict[str, torch.Tensor],
                    ref: np.ndarray | None = None) -> list[list[float]]:
    """l2(LayerNorm(c + W2 gelu(c))), c = W1 h - mean over the speaker's W1 h (a lone speaker: over ``ref``),
    written out with numpy and math.erf."""
    w1, w2 = sd["linear1.weight"].double().numpy(), sd["linear2.weight"].double().numpy()
    gamma, beta = sd["layer_norm.weight"].double().numpy(), sd["layer_norm.bias"].double().numpy()
    e1 = pooled.astype(np.float64) @ w1.T
    out = []
    for i, s in enumerate(speakers):
        mine = [j for j, t in enumerate(speakers) if t == s]
        mean = e1[mine].mean(0) if len(mine) > 1 else (ref.astype(np.float64) @ w1.T).mean(0)
        c = e1[i] - mean
        g = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in c])
        z = c + w2 @ g
        y = (z - z.mean()) / math.sqrt(z.var() + 1e-5) * gamma + beta
        out.append((y / np.linalg.norm(y)).tolist())
    return out


def test_speaker_centring_goes_through_the_centred_head_as_written_out() -> None:
    model = _with_head()
    wavs, speakers = _wavs(5), ["a", "b", "a", "b", "a"]
    pooled = model.pool_audio(wavs)
    res = model.embed_audio_report(wavs, center="speaker", speakers=speakers)
    sd = {k: v.detach() for k, v in model.centred_projection.state_dict().items()}
    np.testing.assert_allclose(res.embeddings, _reference_head(pooled, speakers, sd), atol=2e-5)
    assert res.centering.head == "centred" and res.centering.speakers == 2
    np.testing.assert_allclose(model.embed_pooled(pooled, "speaker", speakers), res.embeddings, atol=1e-6)


def test_a_lone_speaker_is_centred_on_the_reference_clips_through_the_head() -> None:
    model = _with_head()
    wavs, speakers, ref = _wavs(4), ["a", "a", "b", "a"], [tone(0.8, 150.0, seed=9), tone(0.7, 95.0, seed=8)]
    got = model.embed_audio(wavs, center="speaker", speakers=speakers, reference=ref)
    sd = {k: v.detach() for k, v in model.centred_projection.state_dict().items()}
    want = _reference_head(model.pool_audio(wavs), speakers, sd, model.pool_audio(ref))
    np.testing.assert_allclose(got, want, atol=2e-5)


def test_plain_and_collection_scores_keep_the_main_head() -> None:
    plain_model, model = tiny_model(), _with_head()
    wavs = _wavs(4)
    np.testing.assert_allclose(model.embed_audio(wavs), plain_model.embed_audio(wavs), atol=1e-6)
    res = model.embed_audio_report(wavs, center="collection")
    np.testing.assert_allclose(res.embeddings, plain_model.embed_audio(wavs, center="collection"), atol=1e-6)
    assert res.centering.head == "main"
    assert plain_model.embed_audio_report(wavs, center="speaker", speakers=list("aabb")).centering.head == "main"


def test_the_head_is_saved_apart_and_loaded_strictly(tmp_path) -> None:
    model = _with_head()
    model.save_pretrained(tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["centred_head"] is True
    back = load_model(str(tmp_path / "m"), precision="fp32")
    assert back.has_centred_head and len(back.centred_head_checksum) == 64
    wavs, speakers = _wavs(4), list("abab")
    np.testing.assert_allclose(back.embed_audio(wavs, center="speaker", speakers=speakers),
                               model.embed_audio(wavs, center="speaker", speakers=speakers), atol=1e-6)
    back.set_centred_head(None)  # a dropped head is no longer named by the records
    assert back.centred_head_checksum == "" and model_info(back)["centred_head_checksum"] is None
    # the plain weights file, the model's identity, is the same bytes as without a head
    tiny_model().save_pretrained(tmp_path / "plain")
    plain_bytes = (tmp_path / "plain" / "model.safetensors").read_bytes()
    assert plain_bytes == (tmp_path / "m" / "model.safetensors").read_bytes()
    assert "centred_head" not in json.loads((tmp_path / "plain" / "config.json").read_text())
    assert not (tmp_path / "plain" / "centred_head.safetensors").exists()
    (tmp_path / "plain" / "config.json").write_text(json.dumps({**cfg, "name": "tiny"}))
    with pytest.raises(ModelError, match="there is no centred_head.safetensors"):
        load_model(str(tmp_path / "plain"))
    (tmp_path / "m" / "model.safetensors").replace(tmp_path / "m" / "centred_head.safetensors")
    (tmp_path / "plain" / "model.safetensors").replace(tmp_path / "m" / "model.safetensors")
    with pytest.raises(CheckpointError, match="outside the centred head"):
        load_model(str(tmp_path / "m"))


def test_saving_a_model_without_its_head_removes_the_old_head_file(tmp_path) -> None:
    model = _with_head()
    model.save_pretrained(tmp_path)
    model.set_centred_head(None)
    model.save_pretrained(tmp_path)
    assert not (tmp_path / "centred_head.safetensors").exists()
    assert not load_model(str(tmp_path)).has_centred_head


def test_set_centred_head_checks_the_shape_and_can_drop_it() -> None:
    model = _with_head()
    with pytest.raises(ValueError, match="expected linear1"):
        model.set_centred_head(Projection(3, model.config.embed_dim))
    model.set_centred_head(None)
    assert not model.has_centred_head and not model.config.centred_head


def _clusters(model, speakers: list[str], labels: list[str], seed: int = 0) -> np.ndarray:
    """Pooled-like rows: a speaker offset (large) plus a class direction (small) plus noise."""
    rng = np.random.default_rng(seed)
    h = model.audio_branch.hidden_size
    spk = {s: 3.0 * rng.normal(size=h) for s in set(speakers)}
    cls = {c: rng.normal(size=h) for c in set(labels)}
    return np.stack([spk[s] + cls[c] + 0.2 * rng.normal(size=h) for s, c in zip(speakers, labels)])


def test_fitting_makes_speaker_centred_scores_pick_the_labelled_class() -> None:
    from paraspeechclap.data.attributes import get_attribute_set
    from paraspeechclap.evaluation.classification import embed_class_prompts

    model = tiny_model()
    classes = ["angry", "saddened", "happy", "neutral"]  # emotion8's candidates
    speakers = [f"s{i % 6}" for i in range(120)]
    labels = [classes[(i // 6) % 4] for i in range(120)]
    x = _clusters(model, speakers, labels)
    aset = get_attribute_set("emotion8")
    emb_c = embed_class_prompts(model, aset.prompts(ensemble=True), aset.candidates)

    def accuracy() -> float:
        pred = (model.embed_pooled(x, "speaker", speakers) @ emb_c.T).argmax(1)
        return float(np.mean([aset.candidates[p] == g for p, g in zip(pred, labels)]))

    before = accuracy()  # no head yet: the main head, centred at the embedding
    gold = labels[:-6] + [None] * 6  # unlabelled rows count in their speaker's mean only
    info = fit_centred_head(model, x, speakers, gold, CentredHeadFit(steps=150, lr=1e-2))
    assert model.has_centred_head and info["clips"] == 114 and info["rows"] == 120 and info["speakers"] == 6
    assert info["loss"][1] < info["loss"][0]
    assert accuracy() > max(0.9, before)


def test_fitting_refuses_what_it_cannot_fit() -> None:
    model = tiny_model()
    x = np.zeros((4, model.audio_branch.hidden_size))
    with pytest.raises(InputError, match="not classes of emotion8"):
        fit_centred_head(model, x, list("aabb"), ["angry", "grumpy", "saddened", "saddened"])
    with pytest.raises(InputError, match="no two classes"):  # each speaker is heard in one class only
        fit_centred_head(model, x, list("aabb"), ["angry", "angry", "saddened", "saddened"])
    with pytest.raises(InputError, match="4 clips, 3 speaker ids"):
        fit_centred_head(model, x, list("aab"), ["angry"] * 4)
    with pytest.raises(InputError, match="steps"):
        CentredHeadFit(steps=0)


def _manifest(tmp_path, n: int = 12) -> str:
    rows = []
    (tmp_path / "test").mkdir()
    for i in range(n):
        sf.write(tmp_path / "test" / f"c{i}.wav", tone(0.6, 100.0 + 20 * i, seed=i), 16000)
        rows.append({"source": "test", "relative_audio_path": f"c{i}.wav", "speaker": f"s{i % 3}",
                     "emotion": ["angry", "sad"][(i // 3) % 2]})
    rows.append({"source": "test", "relative_audio_path": "c0.wav", "emotion": "sad"})  # no speaker: left out
    path = tmp_path / "m.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_the_cli_fits_saves_and_classify_records_the_head(tmp_path, tiny_dir, capsys) -> None:
    manifest = _manifest(tmp_path)
    out = tmp_path / "fitted"
    assert main(["fit-centred-head", "--model", str(tiny_dir), "--manifest", manifest, "--steps", "20",
                 "--out", str(out), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["speakers"] == 3 and record["clips"] == 12 and record["rows_left_out"]["no_speaker"] == 1
    assert json.loads((out / "centred_head.json").read_text())["clips"] == 12
    assert main(["classify", "--model", str(out), "--manifest", manifest,
                 "--attribute", "emotion", "--center", "collection", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["center"]["head"] == "main"
    speakers_only = tmp_path / "s.jsonl"
    speakers_only.write_text("".join(line for line in open(manifest) if '"speaker"' in line))
    assert main(["classify", "--model", str(out), "--manifest", str(speakers_only), "--attribute", "emotion",
                 "--center", "speaker", "--json"]) == 0
    through_head = json.loads(capsys.readouterr().out)
    assert through_head[0]["center"]["head"] == "centred"
    # --no-centred-head: speaker centring as the same weights without a head centre
    args = ["--manifest", str(speakers_only), "--attribute", "emotion", "--center", "speaker", "--json"]
    assert main(["classify", "--model", str(out), "--no-centred-head", *args]) == 0
    opted_out = json.loads(capsys.readouterr().out)
    assert main(["classify", "--model", str(tiny_dir), *args]) == 0
    without = json.loads(capsys.readouterr().out)
    assert [r["center"]["head"] for r in opted_out] == ["main"] * len(without)
    assert [r["ranking"] for r in opted_out] == [r["ranking"] for r in without]
    assert [r["ranking"] for r in through_head] != [r["ranking"] for r in without]  # the flag changed something


def test_the_cli_says_what_is_wrong_in_one_line(tmp_path, tiny_dir, capsys) -> None:
    manifest = _manifest(tmp_path)
    assert main(["fit-centred-head", "--model", str(tiny_dir), "--manifest", manifest, "--split", "train",
                 "--out", str(tmp_path / "x")]) != 0
    assert "--split-file and --split go together" in capsys.readouterr().err
    assert main(["fit-centred-head", "--model", str(tiny_dir), "--manifest", manifest, "--min-clips", "50",
                 "--out", str(tmp_path / "x")]) != 0
    err = capsys.readouterr().err
    assert "no speaker has >= 50 clips" in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()


def test_the_public_centring_pieces_compose_to_speaker_centring_and_need_a_head() -> None:
    from paraspeechclap.errors import InputError

    model = _with_head()
    pooled = np.random.default_rng(3).standard_normal((5, model.audio_branch.hidden_size))
    spk = ["a", "a", "b", "b", "b"]
    rows = model.centred_head_rows(pooled)
    moved = rows.copy()
    for idx in ([0, 1], [2, 3, 4]):
        moved[idx] -= rows[idx].mean(axis=0)
    np.testing.assert_allclose(model.finish_centred_rows(moved), model.embed_pooled(pooled, "speaker", spk),
                               atol=1e-5)
    bare = tiny_model()
    for call in (lambda: bare.centred_head_rows(pooled), lambda: bare.finish_centred_rows(moved)):
        with pytest.raises(InputError, match="no centred head"):
            call()
