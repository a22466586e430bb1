"""The paired, class-stratified bootstrap of a UAR difference, against hand-computed references."""

from __future__ import annotations

import numpy as np
import pytest

from paraspeechclap.evaluation.paired import paired_uar_bootstrap

LABELS = ["angry", "happy", "sad"]


def hand_uar(gold, pred):
    """Mean recall over the classes present in gold, by hand."""
    classes = sorted(set(gold))
    return sum(sum(1 for g, p in zip(gold, pred) if g == c and p == c) / gold.count(c) for c in classes) / len(classes)


def test_point_estimates_are_the_hand_uars():
    gold = ["angry"] * 4 + ["happy"] * 3 + ["sad"] * 2
    a = ["angry", "angry", "happy", "sad", "happy", "happy", "happy", "sad", "angry"]
    b = ["angry", "angry", "angry", "angry", "happy", "sad", "angry", "sad", "sad"]
    r = paired_uar_bootstrap(gold, a, b, LABELS, resamples=200)
    assert r["uar_a"] == pytest.approx(hand_uar(gold, a))
    assert r["uar_b"] == pytest.approx(hand_uar(gold, b))
    assert r["difference"] == pytest.approx(hand_uar(gold, b) - hand_uar(gold, a))
    assert r["classes"] == 3 and r["clips"] == 9


def test_identical_predictions_have_no_spread():
    gold = ["angry", "happy", "sad", "sad", "happy"]
    pred = ["angry", "sad", "sad", "happy", "happy"]
    r = paired_uar_bootstrap(gold, pred, pred, LABELS, resamples=500, tolerance=0.01)
    assert r["difference"] == 0.0 and r["sd"] == 0.0 and r["ci95"] == [0.0, 0.0]
    assert r["share_below_zero"] == 0.0 and r["share_below_tolerance"] == 0.0


def test_spread_matches_the_analytic_variance_of_a_stratified_mean():
    """Resampling n_c clips of class c with replacement: var(mean of d_c) = popvar(d_c) / n_c; UAR averages
    K classes, so sd = sqrt(sum_c popvar(d_c) / n_c) / K."""
    rng = np.random.default_rng(3)
    sizes = {"angry": 40, "happy": 25, "sad": 60}
    gold = [c for c, n in sizes.items() for _ in range(n)]
    a = [g if rng.random() < 0.7 else "angry" if g != "angry" else "happy" for g in gold]
    b = [g if rng.random() < 0.6 else "sad" if g != "sad" else "happy" for g in gold]
    var = 0.0
    for c in sizes:
        d = np.array([(pb == g) - (pa == g) for g, pa, pb in zip(gold, a, b) if g == c], dtype=float)
        var += d.var() / len(d)
    expected_sd = np.sqrt(var) / len(sizes)
    r = paired_uar_bootstrap(gold, a, b, LABELS, resamples=40000, seed=1)
    assert r["sd"] == pytest.approx(expected_sd, rel=0.03)
    lo, hi = r["ci95"]
    assert lo < r["difference"] < hi


def test_pairing_cancels_what_both_models_share():
    """One clip of a 10-clip class changes: the difference is exactly 1 / (10 * classes) in every resample
    that draws it, and never negative; an unpaired comparison of these models would spread both ways."""
    gold = ["angry"] * 10 + ["happy"] * 10
    a = ["angry"] * 5 + ["happy"] * 5 + ["happy"] * 6 + ["angry"] * 4
    b = list(a)
    b[5] = "angry"  # one more angry clip right
    r = paired_uar_bootstrap(gold, a, b, LABELS, resamples=2000, tolerance=0.0)
    assert r["difference"] == pytest.approx(1 / 20)
    assert r["share_below_zero"] == 0.0 and r["share_below_tolerance"] == 0.0
    assert r["ci95"][0] >= 0.0


def test_same_seed_same_interval_and_tolerance_share_is_monotone():
    rng = np.random.default_rng(0)
    gold = list(rng.choice(LABELS, 90))
    a = list(rng.choice(LABELS, 90))
    b = list(rng.choice(LABELS, 90))
    r1 = paired_uar_bootstrap(gold, a, b, LABELS, resamples=3000, seed=7, tolerance=0.02)
    r2 = paired_uar_bootstrap(gold, a, b, LABELS, resamples=3000, seed=7, tolerance=0.02)
    assert r1 == r2
    loose = paired_uar_bootstrap(gold, a, b, LABELS, resamples=3000, seed=7, tolerance=0.2)
    assert loose["share_below_tolerance"] <= r1["share_below_tolerance"] <= r1["share_below_zero"]


def test_bad_input_names_the_problem():
    with pytest.raises(ValueError, match="one entry per clip"):
        paired_uar_bootstrap(["angry"], ["angry", "sad"], ["angry"], LABELS)
    with pytest.raises(ValueError, match="not among the labels"):
        paired_uar_bootstrap(["calm"], ["angry"], ["angry"], LABELS)
    with pytest.raises(ValueError, match="no clips"):
        paired_uar_bootstrap([], [], [], LABELS)
