"""Mixing several datasets: 1:1 interleaving (the Combined recipe) and a general weighted mix.

Both produce an index plan, a list of ``(dataset_index, row_index)`` pairs, and
:class:`MixedDataset` serves items by plan position, so any sampler (shuffled, distributed) can sit
on top exactly as on a single dataset.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import InputError


def interleave_all_exhausted(sizes: Sequence[int]) -> list[tuple[int, int]]:
    """Alternate one example from each dataset until the largest is exhausted.

    Same order as Hugging Face ``interleave_datasets(dsets, probabilities=None,
    stopping_strategy="all_exhausted")``: in round ``k`` every dataset ``d`` contributes row
    ``k mod len(d)``, for ``k < max(len)``; so smaller datasets restart from their beginning and
    the plan has ``len(sizes) * max(sizes)`` entries.

    Example: sizes ``[2, 3]`` -> ``[(0,0), (1,0), (0,1), (1,1), (0,0), (1,2)]``.

    Raises:
        InputError: no datasets, or an empty one.
    """
    if not sizes or min(sizes) <= 0:
        raise InputError(f"interleave: every dataset must be non-empty, got sizes {list(sizes)}")
    return [(d, k % n) for k in range(max(sizes)) for d, n in enumerate(sizes)]


def weighted_mix(
    sizes: Sequence[int], weights: Sequence[float], num_samples: int, seed: int = 0
) -> list[tuple[int, int]]:
    """Draw ``num_samples`` examples, choosing the dataset with probability proportional to its weight.

    Within a dataset rows are taken in a random order without replacement, reshuffled after every
    full pass, so a dataset contributes each of its rows once before any repeats.

    Args:
        sizes: dataset lengths.
        weights: non-negative mixing weights (normalised here).
        num_samples: plan length.
        seed: seeds a private numpy generator.

    Raises:
        InputError: mismatched lengths, empty datasets, or weights that are negative or all zero.
    """
    if len(sizes) != len(weights) or not sizes:
        raise InputError("weighted_mix: need one weight per dataset")
    w = np.asarray(weights, dtype=np.float64)
    if min(sizes) <= 0 or (w < 0).any() or w.sum() <= 0 or not np.isfinite(w).all():
        raise InputError(f"weighted_mix: invalid sizes {list(sizes)} or weights {list(weights)}")
    rng = np.random.default_rng(seed)
    choice = rng.choice(len(sizes), size=num_samples, p=w / w.sum())
    plan: list[tuple[int, int]] = []
    orders: list[list[int]] = [[] for _ in sizes]
    for d in choice.tolist():
        if not orders[d]:
            orders[d] = rng.permutation(sizes[d]).tolist()[::-1]  # pop() from the end = permutation order
        plan.append((d, orders[d].pop()))
    return plan


class MixedDataset:
    """A map-style dataset that serves ``datasets[d][i]`` for the ``k``-th plan entry ``(d, i)``.

    Args:
        datasets: the sources (anything with ``__getitem__``/``__len__``).
        plan: ``(dataset_index, row_index)`` pairs, e.g. from :func:`interleave_all_exhausted`;
            default: the interleaving of all datasets.
    """

    def __init__(self, datasets: Sequence[Any], plan: Sequence[tuple[int, int]] | None = None) -> None:
        self.datasets = list(datasets)
        sizes = [len(d) for d in self.datasets]
        self.plan = list(plan) if plan is not None else interleave_all_exhausted(sizes)
        for d, i in self.plan:
            if not (0 <= d < len(sizes) and 0 <= i < sizes[d]):
                raise InputError(f"MixedDataset: plan entry {(d, i)} outside dataset sizes {sizes}")

    def __len__(self) -> int:
        return len(self.plan)

    def __getitem__(self, k: int) -> Any:
        d, i = self.plan[k]
        return self.datasets[d][i]

    def set_epoch(self, epoch: int) -> None:
        """Forward the epoch to the sources that use it (e.g. :class:`StyleDataset` caption draws)."""
        for d in self.datasets:
            if hasattr(d, "set_epoch"):
                d.set_epoch(epoch)
