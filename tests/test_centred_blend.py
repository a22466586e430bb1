"""benchmarks/centred_blend.py: the blend of centred and plain embeddings (the nested choice and the summaries it
shares with centred_shrink.py: tests/test_centred_head_steps.py)."""

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
