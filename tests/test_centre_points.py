"""benchmarks/centre_points.py: centring at the normalised embedding and at the projection's first linear output."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch

from paraspeechclap.projection import Projection


@pytest.fixture(scope="module")
def points(benchmark_module: Any) -> Any:
    return benchmark_module("centre_points")


def _l2(v: list[float]) -> list[float]:
    n = math.sqrt(sum(x * x for x in v))
    return [x / n for x in v]


@pytest.fixture
def head() -> Projection:
    torch.manual_seed(0)
    return Projection(6, 4, dropout=0.5).eval()


def test_linear1_centring_moves_each_speaker_off_its_mean_before_the_rest(points: Any, head: Projection) -> None:
    x = np.random.default_rng(0).normal(size=(5, 6)).astype(np.float32)
    speakers = ["a", "b", "a", "a", "b"]
    got = points.centred_at(head, x, "linear1", "speaker", speakers)
    with torch.no_grad():
        e1 = head.linear1(torch.from_numpy(x)).double().numpy().tolist()
    for i, s in enumerate(speakers):
        mine = [j for j, t in enumerate(speakers) if t == s]
        moved = [e1[i][k] - sum(e1[j][k] for j in mine) / len(mine) for k in range(4)]
        with torch.no_grad():
            want = _l2(head.finish(torch.tensor([moved], dtype=torch.float32))[0].tolist())
        np.testing.assert_allclose(got[i], want, atol=1e-5)
    # the same as centring the input features themselves (linear1 has no bias)
    xc = x.copy()
    for s in set(speakers):
        idx = [j for j, t in enumerate(speakers) if t == s]
        xc[idx] -= x[idx].mean(axis=0)
    with torch.no_grad():
        direct = head(torch.from_numpy(xc)).numpy()
    np.testing.assert_allclose(got, direct / np.linalg.norm(direct, axis=1, keepdims=True), atol=1e-5)


def test_embedding_centring_is_the_products_and_plain_ignores_the_groups(points: Any, head: Projection) -> None:
    from paraspeechclap.centering import center_embeddings

    x = np.random.default_rng(1).normal(size=(4, 6)).astype(np.float32)
    with torch.no_grad():
        emb = head(torch.from_numpy(x)).numpy()
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    got = points.centred_at(head, x, "embedding", "collection", ["a"] * 4)
    np.testing.assert_allclose(got, center_embeddings(unit, "collection")[0], atol=1e-6)
    for point in points.POINTS:
        np.testing.assert_allclose(points.centred_at(head, x, point, "plain", ["a", "b", "c", "d"]), unit, atol=1e-6)
    # the two points differ: the GELU branch and the LayerNorm do not commute with the mean
    assert not np.allclose(points.centred_at(head, x, "linear1", "collection", ["a"] * 4), got, atol=1e-3)


def test_mixed_speaker_mean_leaves_out_the_one_label_corpora(points: Any) -> None:
    per = {"ased": (0.6, {"saddened": 0.5}, 0.4), "urdu": (0.3, {"saddened": 0.1}, None),
           "emodb": (0.8, {"saddened": 0.9}, 0.6)}
    s = points.summary_of(per)
    assert s["uar4_mean_mixed"] == pytest.approx(0.7) and s["uar4_mean"] == pytest.approx(1.7 / 3)
    assert s["uar4_min"] == pytest.approx(0.3) and s["uar8_mean"] == pytest.approx(0.5)
