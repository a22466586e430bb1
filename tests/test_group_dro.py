"""Worst-group weighting of the attribute cross-entropy (losses.group_dro, loss.group_dro): the row
weights and the weight update against hand-written references, the weighted loss, and a training run
that uses it, saves the weights in its checkpoints and resumes them."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from test_train_loop import _args, toy  # noqa: F401  (toy is a fixture)

from paraspeechclap.cli.main import main
from paraspeechclap.losses.attributes import AttributeClassificationLoss, AttributeTargets
from paraspeechclap.losses.group_dro import GroupDRO, group_row_weights
from paraspeechclap.training import checkpoint as ckpt


def test_row_weights_split_the_grouped_rows_share_by_q() -> None:
    # rows: no group, group 0 twice, group 1 once; group 2 is absent from the batch
    ids = torch.tensor([-1, 0, 0, 1])
    q = torch.tensor([0.2, 0.6, 0.2], dtype=torch.float64)
    # by hand: 3 grouped rows; present q (0.2, 0.6) -> shares (0.25, 0.75); group 0's 0.75 of 3 over its 2 rows
    expected = torch.tensor([1.0, 3 * 0.25 / 2, 3 * 0.25 / 2, 3 * 0.75 / 1], dtype=torch.float64)
    torch.testing.assert_close(group_row_weights(ids, q), expected)
    assert float(group_row_weights(ids, q)[1:].sum()) == pytest.approx(3.0)  # the grouped rows keep their share


def test_row_weights_are_plain_for_uniform_q_and_equal_counts_or_no_groups() -> None:
    q = torch.full((3,), 1 / 3, dtype=torch.float64)
    torch.testing.assert_close(group_row_weights(torch.tensor([0, 1, 2, 2, 1, 0, -1]), q), torch.ones(7, dtype=q.dtype))
    torch.testing.assert_close(group_row_weights(torch.tensor([-1, -1]), q), torch.ones(2, dtype=q.dtype))


def test_update_is_an_exponentiated_step_on_each_groups_mean_loss() -> None:
    dro = GroupDRO(["a", "b", "c"], eta=0.5)
    ids = dro.ids(["a", "a", "b", None, "zzz"])
    assert ids.tolist() == [0, 0, 1, -1, -1]  # None and unknown names have no group
    dro.update(ids, torch.tensor([1.0, 3.0, 1.0, 100.0, 100.0]))
    # by hand: group means a 2, b 1, c absent (no step); then renormalised
    raw = [math.exp(0.5 * 2) / 3, math.exp(0.5 * 1) / 3, 1 / 3]
    torch.testing.assert_close(dro.q, torch.tensor([r / sum(raw) for r in raw], dtype=torch.float64))
    before = dro.q.clone()
    dro.update(torch.tensor([-1, -1]), torch.tensor([5.0, 5.0]))  # nothing grouped: unchanged
    torch.testing.assert_close(dro.q, before)
    assert list(dro.describe()) == ["a", "b", "c"] and sum(dro.describe().values()) == pytest.approx(1.0)


def test_weighted_attribute_loss_against_a_hand_computation() -> None:
    torch.manual_seed(0)
    audio, classes = torch.randn(4, 5), {"s": torch.randn(3, 5)}
    targets = [AttributeTargets("s", ["x", "y", "z"], torch.tensor([0, 2, -1, 1]))]
    loss = AttributeClassificationLoss()
    scale = torch.tensor(7.0)
    unit = torch.nn.functional.normalize
    logits = scale * unit(audio, dim=-1) @ unit(classes["s"], dim=-1).T
    ce = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 2, 0, 1]), reduction="none")[[0, 1, 3]]
    torch.testing.assert_close(loss(audio, classes, targets, scale), ce.mean())
    w = torch.tensor([1.0, 2.0, 5.0, 3.0])
    weighted = loss(audio, classes, targets, scale, row_weights=lambda valid: w[valid])
    torch.testing.assert_close(weighted, (ce * w[[0, 1, 3]]).sum() / w[[0, 1, 3]].sum())
    torch.testing.assert_close(loss(audio, classes, targets, scale, row_weights=lambda v: torch.ones(int(v.sum()))),
                               ce.mean())


def test_config_needs_attribute_sets(toy, tmp_path: Path, capsys) -> None:  # noqa: F811
    assert main(_args(toy, tmp_path / "run", "loss.group_dro={group_field: speaker}", "loss.attribute_sets=[]")) == 2
    assert "loss.group_dro" in capsys.readouterr().err


def test_training_weights_the_groups_checkpoints_and_resumes_them(toy, tmp_path: Path, capsys) -> None:  # noqa: F811
    common = ["loss.attribute_sets=[gender, pitch_level]", "eval.every_steps=null", "eval.at_end=false",
              "data.dev=[]", "train.checkpoint_every=4", "train.log_every=1", "loss.group_dro={group_field: speaker, "
              "require: [gender], eta: 0.5, min_clips: 2, skip: [toy5]}"]
    ref = tmp_path / "ref"
    assert main(_args(toy, ref, *common, "train.max_steps=8")) == 0
    summary = json.loads((ref / "summary.json").read_text())
    weights = summary["group_dro"]
    assert sorted(weights) == [f"toy{k}" for k in range(5)]  # toy5 skipped
    assert sum(weights.values()) == pytest.approx(1.0) and max(weights.values()) > 0.2 + 1e-3  # moved from 1/5
    logged = [json.loads(x) for x in (ref / "metrics.jsonl").read_text().splitlines()]
    assert logged[-1]["train/group_dro/toy0"] == pytest.approx(weights["toy0"])
    state = ckpt.load_training_checkpoint(ref / "checkpoints" / "step_00000004.pt", map_location="cpu")
    assert state["group_dro"]["q"].shape == (5,)
    # resuming from step 4 continues the weights: the same final weights and heads as the uninterrupted run
    half = tmp_path / "half"
    step4 = str(ref / "checkpoints" / "step_00000004.pt")
    assert main([*_args(toy, half, *common, "train.max_steps=8"), "--resume", step4]) == 0
    resumed = json.loads((half / "summary.json").read_text())["group_dro"]
    for g, w in weights.items():
        assert resumed[g] == pytest.approx(w, rel=1e-9)
    missing = "loss.group_dro={group_field: nothing_here}"
    assert main(_args(toy, tmp_path / "none", "loss.attribute_sets=[gender]", "data.dev=[]", missing)) == 2
    assert "loss.group_dro: no group" in capsys.readouterr().err


def test_group_set_groups_rows_by_their_class(toy, tmp_path: Path, capsys) -> None:  # noqa: F811
    common = ["loss.attribute_sets=[gender]", "eval.every_steps=null", "eval.at_end=false", "data.dev=[]",
              "train.max_steps=2"]
    by_class = "loss.group_dro={group_set: gender, require: [pitch_level], min_clips: 2}"
    assert main(_args(toy, tmp_path / "run", *common, by_class)) == 0
    weights = json.loads((tmp_path / "run" / "summary.json").read_text())["group_dro"]
    assert sorted(weights) == ["female", "male"]  # the set's classes, not the rows' speakers or source
    assert main(_args(toy, tmp_path / "bad", *common, "loss.group_dro={group_set: no_such_set}")) == 2
    err = capsys.readouterr().err
    assert "loss.group_dro.group_set" in err and "no_such_set" in err
