"""benchmarks/centred_head_steps.py: which rows are the folds' dev, how the step count is chosen, the summary."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(scope="module")
def steps(benchmark_module: Any) -> Any:
    return benchmark_module("centred_head_steps")


def test_dev_rows_are_the_dev_speakers_of_the_corpora_the_fold_trained_on(steps: Any, monkeypatch: Any) -> None:
    import paraspeechclap.data.splits as splits

    rows = [{"source": "a", "speaker": "a1", "split": "dev"}, {"source": "a", "speaker": "a2", "split": "train"},
            {"source": "b", "speaker": "b1", "split": "dev"}, {"source": "left", "speaker": "l1", "split": "dev"},
            {"source": "a", "speaker": "", "split": "dev"}, {"source": "untrained", "speaker": "u", "split": "dev"},
            {"source": "b", "speaker": "b2", "split": "dev"}]
    monkeypatch.setattr(splits, "split_of", lambda r: r["split"])
    assert steps.dev_rows(rows, "left", {"a", "b", "left"}) == {"a": [0], "b": [2, 6]}


def test_the_choice_is_the_best_dev_4_class_then_8_class_then_the_shorter_fit(steps: Any) -> None:
    got = {0: {"dev4": 0.60, "dev8": 0.50}, 50: {"dev4": 0.70, "dev8": 0.55}, 100: {"dev4": 0.70, "dev8": 0.58},
           300: {"dev4": 0.69, "dev8": 0.70}}
    assert steps.choose(got) == 100
    got[300]["dev4"] = 0.70
    assert steps.choose(got) == 300
    got[25] = {"dev4": 0.70, "dev8": 0.70}
    assert steps.choose(got) == 25


def test_the_summary_averages_the_folds_and_keeps_the_worst_corpus(steps: Any) -> None:
    def fold(dev4: float, uar4: float, sad: float | None) -> dict[str, Any]:
        recall = {"neutral": 0.5, "sad": sad, "happy": 0.5, "angry": 0.5}
        return {"steps": {10: {"dev4": dev4, "dev8": dev4 / 2,
                               "loco": {"uar4": uar4, "uar8": uar4 / 2, "recall": recall}}}}

    got = steps.summarize({"x": fold(0.8, 0.9, 0.6), "y": fold(0.6, 0.3, None)}, [10])[10]
    assert got["dev4"] == pytest.approx(0.7) and got["dev8"] == pytest.approx(0.35)
    assert got["uar4_mean"] == pytest.approx(0.6) and got["uar4_min"] == pytest.approx(0.3)
    assert got["uar8_mean"] == pytest.approx(0.3)
    assert got["recall"]["sad"] == pytest.approx(0.6)  # a corpus without sad clips does not count as 0
