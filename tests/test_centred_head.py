"""benchmarks/centred_head.py and the fitting pieces of paraspeechclap.centred_head it uses: a head of its own for
centred scoring, fitted on speaker-centred clips."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from paraspeechclap import centred_head as lib
from paraspeechclap.projection import Projection


@pytest.fixture(scope="module")
def ch(benchmark_module: Any) -> Any:
    return benchmark_module("centred_head")


def test_the_fit_centres_each_speaker_on_their_own_mean() -> None:
    x = [[1.0, 2.0], [3.0, 6.0], [10.0, 0.0], [5.0, 4.0]]
    speakers = ["a", "a", "b", "a"]
    got = lib.speaker_centred(np.array(x), speakers)  # what the fits and loco_probe.py centre with
    mean_a = [(1 + 3 + 5) / 3, (2 + 6 + 4) / 3]
    want = [[1 - mean_a[0], 2 - mean_a[1]], [3 - mean_a[0], 6 - mean_a[1]], [0.0, 0.0],
            [5 - mean_a[0], 4 - mean_a[1]]]
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_qualifying_speakers_need_enough_labelled_clips_in_two_classes() -> None:
    speakers = ["a"] * 4 + ["b"] * 4 + ["c"] * 3
    gold = ["x", "y", "x", None, "x", "x", "x", "x", "x", "y", "y"]
    # a: 3 labelled in 2 classes; b: 4 labelled in 1 class; c: 3 labelled in 2 classes
    assert lib.qualifying(speakers, gold, min_clips=3) == {"a", "c"}
    assert lib.qualifying(speakers, gold, min_clips=4) == set()
    assert lib.qualifying(speakers, gold, min_clips=4, min_classes=1) == {"b"}


def test_balanced_weights_give_every_present_class_the_same_total() -> None:
    target = np.array([0, 0, 0, 2, 2, 0])  # class 0: 4 rows, class 1: none, class 2: 2 rows
    got = lib.balanced_weights(target, 3)
    assert got.tolist() == pytest.approx([6 / (2 * 4), 0.0, 6 / (2 * 2)])


def test_identity_projection_starts_as_the_normalised_input_less_its_mean(ch: Any) -> None:
    head = ch.identity_projection(5).eval()
    x = torch.tensor([[0.3, -1.0, 2.0, 0.5, 0.1]])
    with torch.no_grad():
        got = F.normalize(head(x), dim=-1)[0].tolist()
    row = x[0].tolist()
    mean = sum(row) / len(row)
    norm = math.sqrt(sum((v - mean) ** 2 for v in row))
    assert got == pytest.approx([(v - mean) / norm for v in row], abs=1e-4)


def test_fit_head_learns_classes_and_leaves_the_given_head_alone(ch: Any) -> None:
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    start = Projection(8, 4, dropout=0.2).eval()
    before = {k: v.clone() for k, v in start.state_dict().items()}
    classes = F.normalize(torch.randn(3, 4), dim=-1).numpy()
    target = rng.integers(0, 3, size=90)
    # class c is the direction c of the first 3 inputs, plus noise; the last 2 columns are "extras"
    x = rng.normal(scale=0.3, size=(90, 8))
    x[np.arange(90), target] += 2.0

    def accuracy(head: Any) -> float:
        with torch.no_grad():
            emb = F.normalize(head.eval()(torch.as_tensor(x, dtype=torch.float32)), dim=-1).numpy()
        return float(np.mean((emb @ classes.T).argmax(1) == target))

    fitted = ch.fit_head(start, x, target, classes, scale=10.0, state_width=6, steps=200, lr=1e-2)
    assert accuracy(fitted) > 0.95 > accuracy(start)
    again, loss = lib.fit_projection(start, x, target, classes, 10.0, 6, lib.CentredHeadFit(steps=200, lr=1e-2))
    assert loss[1] < loss[0]
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), fitted.state_dict().values()))
    assert all(torch.equal(before[k], v) for k, v in start.state_dict().items())
    assert not fitted.training


def test_probe_scores_rank_the_right_class_and_rule_out_classes_never_seen(ch: Any) -> None:
    rng = np.random.default_rng(1)
    target = np.repeat([0, 2, 3], 30)  # class 1 never seen
    x = rng.normal(scale=0.2, size=(90, 4))
    x[np.arange(90), target] += 1.5
    test = np.eye(4)[[0, 2, 3, 1]] * 1.5
    got = ch.probe_scores(x, target, test, 4)
    assert got.shape == (4, 4)
    assert np.isneginf(got[:, 1]).all()
    assert got[:3].argmax(1).tolist() == [0, 2, 3]


def test_a_snapshot_of_the_fit_path_is_the_shorter_fit() -> None:
    """fit_path keeps the head after 40 and 120 steps: each equals a fit of that many steps run on its own, so one
    run scores every shorter fit (choosing ``steps`` on dev needs exactly the heads those fits would give)."""
    rng = np.random.default_rng(3)
    torch.manual_seed(3)
    start = Projection(8, 4, dropout=0.2).eval()
    classes = F.normalize(torch.randn(3, 4), dim=-1).numpy()
    target = rng.integers(0, 3, size=60)
    x = rng.normal(size=(60, 8))
    x[np.arange(60), target] += 1.0
    path, losses = lib.fit_path(start, x, target, classes, 10.0, 6, lib.CentredHeadFit(steps=120, lr=1e-2), (40, 120))
    assert sorted(path) == [40, 120] and len(losses) == 120
    for steps in (40, 120):
        alone, loss = lib.fit_projection(start, x, target, classes, 10.0, 6, lib.CentredHeadFit(steps=steps, lr=1e-2))
        assert loss == [losses[0], losses[steps - 1]]
        assert all(torch.equal(a, b) for a, b in zip(alone.state_dict().values(), path[steps].state_dict().values()))
        assert not path[steps].training
    with torch.no_grad():  # the fit turns gradients on itself, as its callers no longer do
        quiet, quiet_losses = lib.fit_path(start, x, target, classes, 10.0, 6,
                                           lib.CentredHeadFit(steps=120, lr=1e-2), (120,))
    assert quiet_losses == losses
    assert all(torch.equal(a, b) for a, b in zip(quiet[120].state_dict().values(), path[120].state_dict().values()))
    assert not all(torch.equal(a, b) for a, b in zip(path[40].state_dict().values(), path[120].state_dict().values()))
    with pytest.raises(lib.InputError, match="outside 1..120"):
        lib.fit_path(start, x, target, classes, 10.0, 6, lib.CentredHeadFit(steps=120), (0, 121))
