"""Dataset mixing: HF-style 1:1 interleaving and weighted mixing."""

from __future__ import annotations

import collections

import pytest

from paraspeechclap.data.mixing import MixedDataset, interleave_all_exhausted, weighted_mix
from paraspeechclap.errors import InputError


def _flat(plan, sizes):
    offsets = [sum(sizes[:d]) for d in range(len(sizes))]
    return [offsets[d] + i for d, i in plan]


def test_interleave_hand_example():
    # Hugging Face's documented example for all_exhausted with lengths [3, 4, 5].
    assert _flat(interleave_all_exhausted([3, 4, 5]), [3, 4, 5]) == [0, 3, 7, 1, 4, 8, 2, 5, 9, 0, 6, 10, 1, 3, 11]
    assert interleave_all_exhausted([2, 3]) == [(0, 0), (1, 0), (0, 1), (1, 1), (0, 0), (1, 2)]
    with pytest.raises(InputError):
        interleave_all_exhausted([3, 0])


def test_interleave_matches_hf_datasets():
    datasets = pytest.importorskip("datasets")
    sizes = [7, 3]
    dsets = [datasets.Dataset.from_dict({"id": [f"{d}:{i}" for i in range(n)]}) for d, n in enumerate(sizes)]
    ref = datasets.interleave_datasets(dsets, stopping_strategy="all_exhausted")["id"]
    mixed = MixedDataset([ds["id"] for ds in dsets])
    assert [mixed[k] for k in range(len(mixed))] == ref
    assert len(mixed) == 2 * max(sizes)  # the Combined recipe: epoch = 2 x the larger dataset


def test_weighted_mix_proportions_and_passes():
    plan = weighted_mix([100, 10], [3.0, 1.0], num_samples=4000, seed=0)
    assert plan == weighted_mix([100, 10], [3.0, 1.0], num_samples=4000, seed=0)
    share = collections.Counter(d for d, _ in plan)
    assert abs(share[0] / 4000 - 0.75) < 0.03
    # Dataset 1 (10 rows): each consecutive block of 10 draws from it is a permutation (no repeats within a pass).
    rows1 = [i for d, i in plan if d == 1]
    for k in range(0, len(rows1) - 9, 10):
        assert sorted(rows1[k : k + 10]) == list(range(10))
    with pytest.raises(InputError):
        weighted_mix([5, 5], [1.0, -1.0], 10)
    with pytest.raises(InputError):
        weighted_mix([5], [1.0, 1.0], 10)


def test_mixed_dataset_forwards_epoch_and_checks_plan():
    class Src(list):
        epoch = None

        def set_epoch(self, e):
            self.epoch = e

    a, b = Src("abc"), Src("xy")
    m = MixedDataset([a, b])
    assert [m[k] for k in range(len(m))] == ["a", "x", "b", "y", "c", "x"]
    m.set_epoch(4)
    assert a.epoch == b.epoch == 4
    with pytest.raises(InputError, match="outside"):
        MixedDataset([a, b], plan=[(1, 2)])
