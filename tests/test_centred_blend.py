"""benchmarks/centred_blend.py: the blend of centred and plain embeddings, the nested choice, the summaries."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest


@pytest.fixture(scope="module")
def blend_mod(benchmark_module: Any) -> Any:
    return benchmark_module("centred_blend")


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.normal(size=(n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_blend_is_the_normalised_weighted_sum_row_by_row(blend_mod: Any) -> None:
    rng = np.random.default_rng(0)
    c, p = _unit(rng, 5, 7), _unit(rng, 5, 7)
    got = blend_mod.blend(c, p, 0.3)
    for i in range(5):  # hand-written per row
        v = [0.7 * c[i, j] + 0.3 * p[i, j] for j in range(7)]
        norm = sum(x * x for x in v) ** 0.5
        assert got[i] == pytest.approx([x / norm for x in v])
    assert np.allclose(blend_mod.blend(c, p, 0.0), c) and np.allclose(blend_mod.blend(c, p, 1.0), p)


def test_a_blend_ranks_classes_by_the_weighted_sum_of_the_two_scores(blend_mod: Any) -> None:
    rng = np.random.default_rng(1)
    c, p, text = _unit(rng, 4, 6), _unit(rng, 4, 6), _unit(rng, 3, 6)
    mixed = blend_mod.blend(c, p, 0.4) @ text.T
    assert (mixed.argmax(1) == (0.6 * c @ text.T + 0.4 * p @ text.T).argmax(1)).all()


def test_nested_choice_picks_each_corpus_weight_on_the_other_corpora_only(blend_mod: Any) -> None:
    scores = {"a": {0.0: 0.9, 0.5: 0.1}, "b": {0.0: 0.6, 0.5: 0.7}, "c": {0.0: 0.5, 0.5: 0.7}}
    # a: b and c prefer 0.5 (0.70 vs 0.55); b: a and c -> 0.0 (0.70 vs 0.40); c: a and b -> 0.0 (0.75 vs 0.40)
    assert blend_mod.nested_choice(scores) == {"a": 0.5, "b": 0.0, "c": 0.0}
    tie = {"a": {0.0: 0.5, 0.3: 0.5}, "b": {0.0: 0.4, 0.3: 0.4}}
    assert blend_mod.nested_choice(tie) == {"a": 0.0, "b": 0.0}  # ties: the smaller weight


def test_nested_summary_scores_each_corpus_at_its_own_nested_weight(blend_mod: Any) -> None:
    def entry(uar4: float, sad: float) -> dict[str, Any]:
        return {"loco": {"uar4": uar4, "uar8": uar4 / 2, "recall": {"neutral": .5, "sad": sad, "happy": .5,
                                                                      "angry": .5}}}

    folds = {"a": {"weights": {0.0: entry(0.9, 0.1), 0.5: entry(0.1, 0.2)}},
             "b": {"weights": {0.0: entry(0.6, 0.3), 0.5: entry(0.7, 0.4)}},
             "c": {"weights": {0.0: entry(0.5, 0.5), 0.5: entry(0.7, 0.6)}}}
    got = blend_mod.nested_summary(folds, [0.0, 0.5])
    assert got["weights"] == {"a": 0.5, "b": 0.0, "c": 0.0}
    assert got["uar4_mean"] == pytest.approx((0.1 + 0.6 + 0.5) / 3) and got["uar4_min"] == pytest.approx(0.1)
    assert got["recall"]["sad"] == pytest.approx((0.2 + 0.3 + 0.5) / 3)


def test_the_summary_is_keyed_by_weight_and_the_dev_rule_chooses_among_them(blend_mod: Any) -> None:
    recall = dict.fromkeys(["neutral", "sad", "happy", "angry"])
    folds = {"x": {"weights": {0.0: {"dev4": .6, "dev8": .5, "loco": {"uar4": .7, "uar8": .4, "recall": recall}},
                               0.5: {"dev4": .8, "dev8": .5, "loco": {"uar4": .6, "uar8": .4, "recall": recall}}}}}
    summary = blend_mod.summarize(folds, [0.0, 0.5], key="weights")
    assert summary[0.5]["dev4"] == pytest.approx(0.8) and summary[0.0]["uar4_mean"] == pytest.approx(0.7)
    assert blend_mod.choose(summary) == 0.5
