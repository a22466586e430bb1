"""Speaker-centred attribute objective (losses.centred, loss.centred): the centring and the speakers' means
against hand-written references and against inference's speaker centring, and a training run that uses it,
saves the means in its checkpoints and resumes them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_train_loop import _args, _weights, toy  # noqa: F401  (toy is a fixture)

from paraspeechclap.centering import center_embeddings
from paraspeechclap.cli.main import main
from paraspeechclap.losses.centred import SpeakerMeans, centre_linear, centre_rows, weighted_group_means
from paraspeechclap.projection import Projection
from paraspeechclap.training import checkpoint as ckpt
from paraspeechclap.training.centred_fit import SpeakerClips


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_centre_rows_against_a_hand_computation() -> None:
    rng = np.random.default_rng(0)
    unit, means = _unit(rng.normal(size=(4, 3))), rng.normal(size=(2, 3))
    ids = [1, -1, 0, 1]  # row 1 has no speaker: left as it is
    expected = np.stack([_unit(unit[0] - means[1]), unit[1], _unit(unit[2] - means[0]), _unit(unit[3] - means[1])])
    got = centre_rows(torch.tensor(unit), torch.tensor(ids), torch.tensor(means))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-6, atol=1e-7)


def test_with_each_speakers_own_mean_it_is_inferences_speaker_centring() -> None:
    rng = np.random.default_rng(1)
    emb, speakers = _unit(rng.normal(size=(7, 5))), ["a", "b", "a", "c", "b", "a", "c"]
    means = SpeakerMeans(["a", "b", "c"], 5)
    ids = means.ids(speakers)
    assert ids.tolist() == [-1] * 7  # no means yet: nobody is centred
    means.set(weighted_group_means(torch.tensor(emb), torch.tensor([0, 1, 0, 2, 1, 0, 2]), torch.ones(7), 3))
    ids = means.ids(speakers)
    assert ids.tolist() == [0, 1, 0, 2, 1, 0, 2] and means.ids([None, "zzz"]).tolist() == [-1, -1]
    expected, _ = center_embeddings(emb, "speaker", speakers)
    np.testing.assert_allclose(centre_rows(torch.tensor(emb), ids, means.means).numpy(), expected, atol=1e-5)


def test_group_means_weigh_each_variant_by_its_weight() -> None:
    emb = torch.tensor([[1.0, 0.0], [0.0, 1.0], [3.0, 3.0], [9.0, 9.0]])
    ids, w = torch.tensor([0, 0, 1, -1]), torch.tensor([0.25, 0.75, 1.0, 1.0])
    expected = torch.tensor([[0.25, 0.75], [3.0, 3.0], [0.0, 0.0]])  # group 2 has no rows; row 3 is ignored
    torch.testing.assert_close(weighted_group_means(emb, ids, w, 3), expected)


class _Stub(torch.nn.Module):
    """What embed_cached needs of a model: the head over cached features and the projection."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(3, 4)
        self.audio_branch = type("Branch", (), {"forward_head": staticmethod(lambda x: x)})()
        self.device = torch.device("cpu")

    def project_audio(self, x: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        return torch.nn.functional.normalize(self.proj(x), dim=-1)


def test_refresh_sets_each_speakers_mean_of_normalised_embeddings_each_clip_once() -> None:
    torch.manual_seed(0)
    model, feats = _Stub(), [torch.randn(3) for _ in range(5)]
    # speaker 0: clip A (variants 0, 1), clip B (variant 2); speaker 1: clip C (variants 3, 4)
    clips = SpeakerClips(SpeakerMeans(["s0", "s1"], 4), feats, torch.tensor([0, 0, 0, 1, 1]),
                         torch.tensor([0.5, 0.5, 1.0, 0.5, 0.5]))
    clips.refresh(model)
    with torch.no_grad():
        e = [torch.nn.functional.normalize(model.proj(f), dim=-1) for f in feats]
    by_hand = torch.stack([((e[0] + e[1]) / 2 + e[2]) / 2, (e[3] + e[4]) / 2])
    torch.testing.assert_close(clips.means.means, by_hand)
    assert bool(clips.means.ready) and model.training  # the model's mode is put back


def test_centre_linear_moves_grouped_rows_by_their_groups_mean_only() -> None:
    rows = torch.tensor([[1.0, 2.0], [3.0, -1.0], [0.5, 0.5]])
    means = torch.tensor([[1.0, 1.0], [-2.0, 0.0]])
    got = centre_linear(rows, torch.tensor([1, -1, 0]), means)
    torch.testing.assert_close(got, torch.tensor([[3.0, 2.0], [3.0, -1.0], [-0.5, -0.5]]))  # no renormalising


def test_projection_finish_after_linear1_is_the_projection() -> None:
    torch.manual_seed(0)
    proj, x = Projection(6, 4, dropout=0.5).eval(), torch.randn(5, 6)
    torch.testing.assert_close(proj.finish(proj.linear1(x)), proj(x))
    # linear1 is linear: centring the input and centring linear1's output agree
    torch.testing.assert_close(proj.linear1(x - x.mean(0)), proj.linear1(x) - proj.linear1(x).mean(0))


def test_refresh_at_linear1_keeps_the_unnormalised_linear_outputs_means() -> None:
    torch.manual_seed(0)
    model, feats = _Stub(), [torch.randn(3) for _ in range(4)]
    model.audio_projection = type("P", (), {"linear1": model.proj})()
    clips = SpeakerClips(SpeakerMeans(["s0", "s1"], 4), feats, torch.tensor([0, 0, 1, 1]),
                         torch.tensor([1.0, 1.0, 1.0, 1.0]), at="linear1")
    clips.refresh(model)
    with torch.no_grad():
        e = [model.proj(f) for f in feats]
    torch.testing.assert_close(clips.means.means, torch.stack([(e[0] + e[1]) / 2, (e[2] + e[3]) / 2]))


COMMON = ["model.audio_trainable=[]", "features.cache=true", "features.variants=2", "data.dev=[]",
          "loss.attribute_sets=[gender, pitch_level]", "eval.every_steps=null", "eval.at_end=false",
          "train.checkpoint_every=4", "train.log_every=1"]
CENTRED = "loss.centred={require: [pitch_level], sets: [pitch_level], min_clips: 2, refresh: 3, weight: 1.0}"


def test_training_uses_it_checkpoints_and_resumes_the_means(toy, tmp_path: Path) -> None:  # noqa: F811
    cache = f"features.cache_dir={tmp_path / 'features'}"
    ref, plain = tmp_path / "ref", tmp_path / "plain"
    assert main(_args(toy, ref, *COMMON, cache, CENTRED, "train.max_steps=8")) == 0
    assert main(_args(toy, plain, *COMMON, cache, "train.max_steps=8")) == 0
    summary = json.loads((ref / "summary.json").read_text())
    assert summary["centred"]["speakers"] == 6 and 0 < summary["centred"]["mean_norm"] < 1
    logged = [json.loads(x) for x in (ref / "metrics.jsonl").read_text().splitlines()]
    assert all(m["train/centred_loss"] > 0 for m in logged if "train/loss" in m)
    # the term changes what is learnt
    w_ref, w_plain = _weights(ref / "final"), _weights(plain / "final")
    assert any(not torch.equal(w_ref[k], w_plain[k]) for k in w_ref)
    state = ckpt.load_training_checkpoint(ref / "checkpoints" / "step_00000004.pt", map_location="cpu")
    assert state["centred"]["means"].shape == (6, 16) and bool(state["centred"]["ready"])
    # resumed at step 4 (means of step 4's refresh in the checkpoint; next refresh at step 7): same final weights
    half = tmp_path / "half"
    step4 = str(ref / "checkpoints" / "step_00000004.pt")
    assert main([*_args(toy, half, *COMMON, cache, CENTRED, "train.max_steps=8"), "--resume", step4]) == 0
    w_half = _weights(half / "final")
    for k in w_ref:
        torch.testing.assert_close(w_half[k], w_ref[k])
    # centred at the projection's first linear output instead: trains, and learns something else
    lin = tmp_path / "linear1"
    assert main(_args(toy, lin, *COMMON, cache, CENTRED[:-1] + ", at: linear1}", "train.max_steps=8")) == 0
    w_lin = _weights(lin / "final")
    assert any(not torch.equal(w_ref[k], w_lin[k]) for k in w_ref)
    logged = [json.loads(x) for x in (lin / "metrics.jsonl").read_text().splitlines()]
    assert all(m["train/centred_loss"] > 0 for m in logged if "train/loss" in m)


@pytest.mark.parametrize(("extra", "field"), [
    ("loss.centred={sets: [emotion8]}", "loss.centred.sets"),  # not among loss.attribute_sets
    ("loss.centred={speaker_field: nothing_here, require: [], sets: [gender]}", "loss.centred"),  # no speaker found
])
def test_config_errors_name_the_key(toy, tmp_path: Path, capsys, extra: str, field: str) -> None:  # noqa: F811
    assert main(_args(toy, tmp_path / "run", *COMMON, f"features.cache_dir={tmp_path / 'f'}", extra)) == 2
    assert field in capsys.readouterr().err


def test_config_needs_the_feature_cache(toy, tmp_path: Path, capsys) -> None:  # noqa: F811
    assert main(_args(toy, tmp_path / "run", "loss.attribute_sets=[gender]", "loss.centred={sets: [gender]}")) == 2
    err = capsys.readouterr().err
    assert "loss.centred" in err and "features.cache" in err
