"""benchmarks/loco_posthoc.py: the nested class-bias fit, the score ensembles and the speaker structure."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

CANDS = ["angry", "happy", "saddened", "neutral"]


@pytest.fixture(scope="module")
def posthoc(benchmark_module: Any) -> Any:
    return benchmark_module("loco_posthoc")


def _onehot(labels: list[str], margin: float = 0.1) -> np.ndarray:
    """Scores where each clip's own class leads every other by ``margin``."""
    return np.array([[margin if c == g else 0.0 for c in CANDS] for g in labels])


def test_uar_and_recall_is_the_macro_recall_over_the_classes_present(posthoc: Any) -> None:
    gold = ["angry", "angry", "saddened", "saddened", None]
    scores = _onehot(["angry", "happy", "saddened", "saddened", "angry"])  # one angry clip called happy
    uar, recall = posthoc.uar_and_recall(scores, gold, CANDS)
    assert recall == {"angry": 0.5, "saddened": 1.0}  # happy and neutral are absent: not averaged
    assert uar == pytest.approx(0.75)


def test_fit_class_bias_finds_a_shared_shift_and_leaves_correct_scores_alone(posthoc: Any) -> None:
    gold = ["angry", "happy", "saddened", "neutral"] * 5
    perfect = _onehot(gold)
    assert posthoc.fit_class_bias([(perfect, gold)], CANDS).tolist() == [0.0, 0.0, 0.0, 0.0]
    # every sad clip scores neutral 0.032 above saddened on both folds: only saddened - neutral bias > 0.032 fixes it
    shifted = perfect.copy()
    sad = [i for i, g in enumerate(gold) if g == "saddened"]
    shifted[sad, 3] = shifted[sad, 2] + 0.032
    before = posthoc.uar_and_recall(shifted, gold, CANDS)[0]
    bias = posthoc.fit_class_bias([(shifted, gold), (shifted, gold)], CANDS)
    assert before == pytest.approx(0.75)
    assert bias[0] == 0.0 and bias[2] - bias[3] > 0.032
    assert posthoc.uar_and_recall(shifted + bias, gold, CANDS)[0] == 1.0


def test_an_ensemble_scores_the_mean_of_its_members_scores(posthoc: Any) -> None:
    gold = ["angry", "happy", "saddened", "neutral"]

    def corpus(s4: np.ndarray) -> dict[str, Any]:
        return {"gold4": gold, "candidates4": CANDS, "gold8": [None] * 4, "candidates8": ["x"],
                ("plain", 4): s4, ("speaker", 4): s4, ("plain", 8): np.zeros((4, 1)), ("speaker", 8): np.zeros((4, 1))}

    a = _onehot(gold)
    a[1] = [0.2, 0.1, 0.0, 0.0]  # member a calls the happy clip angry (by 0.1)
    b = _onehot(gold)
    b[1] = [0.0, 0.15, 0.0, 0.0]  # member b is right about it by 0.15: the mean is right by 0.025
    b[2] = [0.3, 0.0, 0.0, 0.0]  # ... but calls the sad clip angry by 0.3: the mean is wrong by 0.1
    rows = {tuple(r["members"]): r for r in posthoc.ensembles({"a": {"c": corpus(a)}, "b": {"c": corpus(b)}})}
    assert set(rows) == {("a",), ("b",), ("a", "b")}
    assert rows["a",]["plain"]["uar4_mean"] == pytest.approx(0.75)
    assert rows["b",]["plain"]["uar4_mean"] == pytest.approx(0.75)
    both = rows["a", "b"]["plain"]
    assert both["uar4_mean"] == pytest.approx(0.75) and both["sad"] == 0.0 and both["uar8_mean"] is None
    assert rows["a",]["plain"]["sad"] == 1.0


def test_one_label_speakers_counts_speakers_whose_labelled_clips_share_one_label(posthoc: Any) -> None:
    speakers = ["s1", "s1", "s2", "s2", "s3", "s3"]
    gold = ["angry", "angry", "angry", "saddened", "neutral", None]
    assert posthoc.one_label_speakers(speakers, gold) == {"speakers": 3, "one_label": 2}
    assert posthoc.one_label_speakers(["s1"], [None]) == {"speakers": 0, "one_label": 0}
