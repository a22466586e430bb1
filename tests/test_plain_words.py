"""benchmarks/plain_words.py: plain words scored as a user's candidates, against hand-computed metrics."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest


@pytest.fixture(scope="module")
def plain_words(benchmark_module: Any) -> Any:
    return benchmark_module("plain_words")


def test_each_clip_takes_the_class_of_its_nearest_word(plain_words: Any) -> None:
    words = np.eye(4, dtype=np.float32)  # angry, happy, sad, neutral: one axis each
    audio = np.array([[1, 0, 0, 0], [0.2, 0.9, 0, 0], [0, 0, 0.1, 0.8], [0, 0, 0.9, 0.1], [0, 0.6, 0.5, 0]],
                     dtype=np.float32)  # -> angry, happy, neutral, saddened, happy
    gold = ["angry", "happy", "saddened", "saddened", "saddened"]
    got = plain_words.word_scores(audio, words, gold)
    # recalls: angry 1/1, happy 1/1, saddened 1/3 (neutral absent from gold: not averaged)
    assert got["uar"] == pytest.approx((1 + 1 + 1 / 3) / 3) and got["recall_sad"] == pytest.approx(1 / 3)
    assert plain_words.uar_and_sad(["angry", "happy"], ["angry", "angry"]) == {"uar": 0.5, "recall_sad": None}


def test_summary_means_skip_folds_without_the_metric(plain_words: Any) -> None:
    per_fold = {"a": {"clips": 3, "set": {"uar": 0.5, "recall_sad": None}},
                "b": {"clips": 4, "set": {"uar": 0.7, "recall_sad": 0.2}}}
    assert plain_words.summarize(per_fold) == {"set": {"uar": pytest.approx(0.6), "recall_sad": pytest.approx(0.2)}}


def test_synonyms_are_in_no_training_prompt_or_caption_bank(plain_words: Any) -> None:
    import re
    from importlib import resources

    from paraspeechclap.data.attributes import get_attribute_set

    prompts = " ".join(p.lower() for name in ("emotion", "emotion8")
                       for ps in get_attribute_set(name).prompts(ensemble=True).values() for p in ps)
    banks = resources.files("paraspeechclap.data").joinpath("paraphrases.json").read_text(encoding="utf-8").lower()
    assert len(plain_words.SYNONYMS) == len(plain_words.WORDS)
    for word in plain_words.SYNONYMS:
        for text in (prompts, banks):
            assert not re.search(rf"\b{word}\b", text), word
    assert re.search(r"\bsad\b", prompts) and re.search(r"\bcalm\b", banks)  # the check sees words that are there
