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


def test_nested_choice_picks_each_corpus_weight_on_the_other_corpora_only(steps: Any) -> None:
    scores = {"a": {0.0: 0.9, 0.5: 0.1}, "b": {0.0: 0.6, 0.5: 0.7}, "c": {0.0: 0.5, 0.5: 0.7}}
    # a: b and c prefer 0.5 (0.70 vs 0.55); b: a and c -> 0.0 (0.70 vs 0.40); c: a and b -> 0.0 (0.75 vs 0.40)
    assert steps.nested_choice(scores) == {"a": 0.5, "b": 0.0, "c": 0.0}
    tie = {"a": {0.0: 0.5, 0.3: 0.5}, "b": {0.0: 0.4, 0.3: 0.4}}
    assert steps.nested_choice(tie) == {"a": 0.0, "b": 0.0}  # ties: the smaller weight


def test_nested_summary_scores_each_corpus_at_its_own_nested_weight(steps: Any) -> None:
    def entry(uar4: float, sad: float) -> dict[str, Any]:
        return {"loco": {"uar4": uar4, "uar8": uar4 / 2, "recall": {"neutral": .5, "sad": sad, "happy": .5,
                                                                      "angry": .5}}}

    folds = {"a": {"weights": {0.0: entry(0.9, 0.1), 0.5: entry(0.1, 0.2)}},
             "b": {"weights": {0.0: entry(0.6, 0.3), 0.5: entry(0.7, 0.4)}},
             "c": {"weights": {0.0: entry(0.5, 0.5), 0.5: entry(0.7, 0.6)}}}
    got = steps.nested_summary(folds, [0.0, 0.5], key="weights")
    assert got["weights"] == {"a": 0.5, "b": 0.0, "c": 0.0}
    assert got["uar4_mean"] == pytest.approx((0.1 + 0.6 + 0.5) / 3) and got["uar4_min"] == pytest.approx(0.1)
    assert got["recall"]["sad"] == pytest.approx((0.2 + 0.3 + 0.5) / 3)


def test_the_summary_is_keyed_by_weight_and_the_dev_rule_chooses_among_them(steps: Any) -> None:
    recall = dict.fromkeys(["neutral", "sad", "happy", "angry"])
    folds = {"x": {"weights": {0.0: {"dev4": .6, "dev8": .5, "loco": {"uar4": .7, "uar8": .4, "recall": recall}},
                               0.5: {"dev4": .8, "dev8": .5, "loco": {"uar4": .6, "uar8": .4, "recall": recall}}}}}
    summary = steps.summarize(folds, [0.0, 0.5], key="weights")
    assert summary[0.5]["dev4"] == pytest.approx(0.8) and summary[0.0]["uar4_mean"] == pytest.approx(0.7)
    assert steps.choose(summary) == 0.5


def test_the_nested_summary_scores_each_corpus_at_the_k_the_others_prefer(steps: Any) -> None:
    def entry(uar4: float) -> dict[str, Any]:
        return {"loco": {"uar4": uar4, "uar8": uar4, "recall": dict.fromkeys(["neutral", "sad", "happy", "angry"],
                                                                              uar4)}}

    folds = {"a": {"k": {0.0: entry(0.9), 8.0: entry(0.2)}}, "b": {"k": {0.0: entry(0.5), 8.0: entry(0.7)}},
             "c": {"k": {0.0: entry(0.4), 8.0: entry(0.7)}}}
    got = steps.nested_summary(folds, [0.0, 8.0], key="k")
    assert got["k"] == {"a": 8.0, "b": 0.0, "c": 0.0}
    assert got["uar4_mean"] == pytest.approx((0.2 + 0.5 + 0.4) / 3)


def test_finish_settings_writes_the_dev_choice_the_nested_choice_and_the_fields(steps: Any, tmp_path: Any,
                                                                                capsys: Any) -> None:
    import argparse
    import json

    def entry(dev4: float, uar4: float) -> dict[str, Any]:
        recall = dict.fromkeys(["neutral", "sad", "happy", "angry"], uar4)
        return {"dev4": dev4, "dev8": dev4, "loco": {"uar4": uar4, "uar8": uar4, "recall": recall}}

    folds = {"a": {"k": {0.0: entry(0.5, 0.9), 4.0: entry(0.7, 0.2)}},
             "b": {"k": {0.0: entry(0.6, 0.5), 4.0: entry(0.8, 0.7)}}}
    args = argparse.Namespace(runs="runs/x", config="c.yaml", json=str(tmp_path / "out.json"))
    steps.finish_settings(args, folds, [0.0, 4.0], "k", 0.0, "the rule", ["k 4"], "K", head="main")
    got = json.loads((tmp_path / "out.json").read_text())
    assert got["chosen_on_dev"] == 4.0  # dev4 0.75 against 0.55, though the left-out mean is lower (0.45 vs 0.7)
    assert got["nested"]["k"] == {"a": 4.0, "b": 0.0}  # each corpus at the k the other prefers
    assert got["head"] == "main" and got["k"] == [0.0, 4.0] and got["variants"] == ["k 4"]
    assert list(got)[:6] == ["runs", "config", "corpora", "precision", "head", "k"]  # fields before the settings
    assert "| 4.0 (chosen on dev) |" in capsys.readouterr().out
