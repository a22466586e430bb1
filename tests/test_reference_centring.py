"""benchmarks/reference_centring.py: centring on neutral reference clips through the main or the centred head,
with and without the training offset, against hand-written references and the model's own ``center=`` paths."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from paraspeechclap.testing import tiny_model_with_centred_head


@pytest.fixture(scope="module")
def rc(benchmark_module: Any) -> Any:
    return benchmark_module("reference_centring")


@pytest.fixture(scope="module")
def headed() -> Any:
    return tiny_model_with_centred_head(3)


def test_the_offset_is_what_a_neutral_mean_lacks_of_the_speaker_mean_averaged_over_speakers(rc: Any) -> None:
    x = np.array([[1.0, 0.0], [3.0, 2.0], [5.0, 4.0],  # a: neutral, sad, unlabelled
                  [0.0, 1.0], [2.0, 2.0], [4.0, 0.0],  # b: neutral, neutral, angry
                  [9.0, 9.0], [7.0, 7.0],  # c: neutral only: no other class, left out
                  [6.0, 6.0], [8.0, 2.0]])  # d: no neutral clip, left out
    speakers = ["a"] * 3 + ["b"] * 3 + ["c"] * 2 + ["d"] * 2
    gold = ["neutral", "sad", None, "neutral", "neutral", "angry", "neutral", "neutral", "sad", "angry"]
    d, n = rc.neutral_offset(x, speakers, gold)
    a = [(1 + 3 + 5) / 3 - 1, (0 + 2 + 4) / 3 - 0]  # the unlabelled clip counts in a's mean
    b = [(0 + 2 + 4) / 3 - 1, (1 + 2 + 0) / 3 - 1.5]
    assert n == 2
    np.testing.assert_allclose(d, [(a[0] + b[0]) / 2, (a[1] + b[1]) / 2], atol=1e-12)
    with pytest.raises(ValueError, match="neutral"):
        rc.neutral_offset(x[6:8], speakers[6:8], gold[6:8])


def test_each_way_centres_as_the_model_does_without_the_offset_and_moves_by_it_with(rc: Any, headed: Any) -> None:
    rng = np.random.default_rng(1)
    pooled = rng.standard_normal((6, headed.audio_branch.hidden_size)).astype(np.float32)
    dim = headed.config.embed_dim
    zero = {"main": np.zeros(dim), "centred": np.zeros(dim)}
    moved = {"main": rng.standard_normal(dim), "centred": rng.standard_normal(dim)}
    other, ref = [0, 2, 3, 5], [1, 4]
    ways, shifted = rc.centrings(headed, pooled, zero), rc.centrings(headed, pooled, moved)
    # the shipped way is reference= on the main head; the centred head's is a lone speaker's fallback in
    # center="speaker" (each clip its own speaker, centred on the reference clips through the head)
    main = headed.embed_pooled(pooled[other], "none", reference=pooled[ref])
    lone = headed.embed_pooled(pooled[other], "speaker", ["p", "q", "r", "s"], reference=pooled[ref])
    np.testing.assert_allclose(ways["main head"](other, ref), main, atol=1e-5)
    np.testing.assert_allclose(ways["main head + training offset"](other, ref), main, atol=1e-5)
    np.testing.assert_allclose(ways["centred head"](other, ref), lone, atol=1e-5)
    np.testing.assert_allclose(ways["centred head + training offset"](other, ref), lone, atol=1e-5)
    # with an offset: l2(x - mean_R x + d), by hand on the plain embeddings
    emb = headed.embed_pooled(pooled).astype(np.float64)
    want = emb[other] - emb[ref].mean(axis=0) + moved["main"]
    np.testing.assert_allclose(shifted["main head + training offset"](other, ref),
                               want / np.linalg.norm(want, axis=1, keepdims=True), atol=1e-5)
    assert not np.allclose(shifted["centred head + training offset"](other, ref), lone, atol=1e-3)


def test_the_summary_averages_each_way_over_the_corpora_that_have_its_curve(rc: Any) -> None:
    per = {"x": {"curves": {"w": {"1": 0.5, "2": 0.7, "4": 0.7, "8": 0.7, "16": 0.7}}},
           "y": {"curves": {"w": None}},  # no speaker with two neutral clips
           "z": {"curves": {"w": {"1": 0.3, "2": 0.5, "4": 0.6, "8": None, "16": 0.9}}}}
    got = rc.summarise(per, ["w"])["w"]
    assert got == pytest.approx({"1": 0.4, "2": 0.6, "4": 0.65, "8": 0.7, "16": 0.8})
