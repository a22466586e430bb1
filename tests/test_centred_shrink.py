"""benchmarks/centred_shrink.py: speaker means shrunk towards the collection's, against a hand-written reference
and the model's own ``center="speaker"``."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from paraspeechclap.testing import tiny_model, tiny_model_with_centred_head


@pytest.fixture(scope="module")
def shrink(benchmark_module: Any) -> Any:
    return benchmark_module("centred_shrink")


def test_each_row_loses_its_speaker_mean_pulled_towards_the_collection_by_k_clips(shrink: Any) -> None:
    x = np.array([[1.0, 0.0], [3.0, 2.0], [5.0, 4.0],  # a
                  [0.0, 6.0], [2.0, 2.0],  # b
                  [9.0, 1.0]])  # c, alone
    spk = ["a", "a", "a", "b", "b", "c"]
    m = [(1 + 3 + 5 + 0 + 2 + 9) / 6, (0 + 2 + 4 + 6 + 2 + 1) / 6]
    k = 2.0
    means = {"a": [(9 + k * m[0]) / 5, (6 + k * m[1]) / 5],  # hand-written: (sum of n rows + k m) / (n + k)
             "b": [(2 + k * m[0]) / 4, (8 + k * m[1]) / 4],
             "c": [(9 + k * m[0]) / 3, (1 + k * m[1]) / 3]}
    want = [[x[i, 0] - means[s][0], x[i, 1] - means[s][1]] for i, s in enumerate(spk)]
    np.testing.assert_allclose(shrink.shrunk_centre(x, spk, k), want, atol=1e-12)


def test_k_zero_is_speaker_centring_and_a_huge_k_collection_centring(shrink: Any) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(7, 3))
    spk = ["a", "a", "b", "b", "b", "c", "a"]  # c alone: on the collection mean at k = 0
    got = shrink.shrunk_centre(x, spk, 0.0)
    for s in "ab":
        idx = [i for i, t in enumerate(spk) if t == s]
        np.testing.assert_allclose(got[idx], x[idx] - x[idx].mean(axis=0), atol=1e-12)
    np.testing.assert_allclose(got[5], x[5] - x.mean(axis=0), atol=1e-12)
    np.testing.assert_allclose(shrink.shrunk_centre(x, spk, 1e12), x - x.mean(axis=0), atol=1e-9)


def test_at_k_zero_the_embeddings_are_the_models_own_speaker_centring(shrink: Any) -> None:
    model = tiny_model_with_centred_head(3)
    pooled = np.random.default_rng(1).standard_normal((6, model.audio_branch.hidden_size)).astype(np.float32)
    spk = ["p", "p", "q", "q", "q", "r"]
    got = shrink.shrunk_embeddings(model, pooled, spk, [0.0, 4.0])
    np.testing.assert_allclose(got[0.0], model.embed_pooled(pooled, "speaker", spk, reference=pooled), atol=1e-5)
    assert np.allclose(np.linalg.norm(got[4.0], axis=1), 1.0, atol=1e-5)
    assert not np.allclose(got[4.0], got[0.0], atol=1e-3)  # shrinking moves them


def test_the_models_speaker_prior_centres_as_the_benchmark_measured(shrink: Any, tmp_path: Any) -> None:
    from paraspeechclap.pretrained import load_model

    model = tiny_model_with_centred_head(4)
    pooled = np.random.default_rng(2).standard_normal((7, model.audio_branch.hidden_size)).astype(np.float32)
    spk = ["p", "p", "q", "q", "q", "r", "p"]  # r alone: centred on the shrunk mean like the rest
    want = shrink.shrunk_embeddings(model, pooled, spk, [4.0])[4.0]
    model.set_speaker_prior(4)
    np.testing.assert_allclose(model.embed_pooled(pooled, "speaker", spk), want, atol=1e-5)
    model.save_pretrained(tmp_path / "m")  # the prior is part of the saved model
    again = load_model(str(tmp_path / "m"), precision="fp32")
    assert again.config.speaker_prior == 4.0
    np.testing.assert_allclose(again.embed_pooled(pooled, "speaker", spk), want, atol=1e-5)


def test_a_bad_speaker_prior_in_a_config_is_named() -> None:
    from paraspeechclap.config import ModelConfig
    from paraspeechclap.errors import ConfigError

    base = tiny_model().config.to_dict()
    assert "speaker_prior" not in base  # written only when set: older models keep their config.json
    assert ModelConfig.from_dict({**base, "speaker_prior": 4}).speaker_prior == 4
    for bad in (-1, "4", float("nan"), True):
        with pytest.raises(ConfigError, match="config: speaker_prior must be a finite number"):
            ModelConfig.from_dict({**base, "speaker_prior": bad})


def test_the_nested_summary_scores_each_corpus_at_the_k_the_others_prefer(shrink: Any) -> None:
    def entry(uar4: float) -> dict[str, Any]:
        return {"loco": {"uar4": uar4, "uar8": uar4, "recall": dict.fromkeys(["neutral", "sad", "happy", "angry"],
                                                                              uar4)}}

    folds = {"a": {"k": {0.0: entry(0.9), 8.0: entry(0.2)}}, "b": {"k": {0.0: entry(0.5), 8.0: entry(0.7)}},
             "c": {"k": {0.0: entry(0.4), 8.0: entry(0.7)}}}
    got = shrink.nested_summary(folds, [0.0, 8.0])
    assert got["k"] == {"a": 8.0, "b": 0.0, "c": 0.0}
    assert got["uar4_mean"] == pytest.approx((0.2 + 0.5 + 0.4) / 3)
