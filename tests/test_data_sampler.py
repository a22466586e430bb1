"""Samplers: coverage over ranks, equal batch counts, exact resume, class balancing, rare-tag chunks."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
from torch.utils.data import DistributedSampler

from paraspeechclap.data.sampler import (
    ClassBalancedSampler,
    GroupBalancedSampler,
    ShuffleSampler,
    group_weights,
    normalise_tag_sets,
    sample_weights,
    tag_weights,
)
from paraspeechclap.errors import InputError


@pytest.mark.parametrize("n, world", [(10, 1), (10, 3), (17, 4), (5, 8)])
def test_shuffle_sampler_loses_no_index_and_matches_torch(n, world):
    for epoch in (0, 1, 7):
        per_rank = []
        for rank in range(world):
            s = ShuffleSampler(n, world, rank, seed=11)
            s.set_epoch(epoch)
            ref = DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=True, seed=11)
            ref.set_epoch(epoch)
            got = list(s)
            assert got == list(ref)  # torch's DistributedSampler is the reference
            assert len(got) == len(s) == math.ceil(n / world)
            per_rank.append(got)
        union = [i for r in per_rank for i in r]
        assert set(union) == set(range(n))  # no index lost
        assert len(union) - n == math.ceil(n / world) * world - n  # only padding repeats


def test_same_number_of_batches_per_rank():
    tags = [["a"]] * 50 + [["b"]] * 3 + [[]] * 20
    for world in (2, 3, 4):
        lens = {len(ClassBalancedSampler(tags, world, r, batch_size=8)) for r in range(world)}
        lens |= {len(ShuffleSampler(len(tags), world, r)) for r in range(world)}
        assert lens == {math.ceil(len(tags) / world)}
        loaders = [torch.utils.data.DataLoader(range(len(tags)), batch_size=4, sampler=ShuffleSampler(len(tags), world, r))
                   for r in range(world)]  # fmt: skip
        assert len({len(list(dl)) for dl in loaders}) == 1


def test_weights_against_hand_computed_reference():
    tags = [["a"], ["A ", "b"], [], ["c"], ["a"]]
    # f_a=3, f_b=1, f_c=1 -> 1/f = 1/3, 1, 1 (sum 7/3); normalised to sum 3: x 9/7.
    wa, wb = (1 / 3) * 9 / 7, 9 / 7
    tw = tag_weights(normalise_tag_sets(tags))
    assert tw == pytest.approx({"a": wa, "b": wb, "c": wb})
    assert sum(tw.values()) == pytest.approx(3.0)
    expected = [wa, (wa + wb) / 2, wa, wb, wa]  # untagged sample 2 gets the minimum tag weight
    assert sample_weights(normalise_tag_sets(tags)) == pytest.approx(expected)
    assert np.all(sample_weights(normalise_tag_sets([[], []])) == 1.0)


def test_balanced_draws_follow_the_weights():
    tags = [["a"], ["a", "b"], [], ["c"], ["a"]]
    s = ClassBalancedSampler(tags, batch_size=5, min_rare_per_batch=0, seed=0)
    counts = np.zeros(5)
    for epoch in range(4000):
        counts += np.bincount(s.global_indices(epoch), minlength=5)
    wa, wb = 3 / 7, 9 / 7
    p = np.array([wa, (wa + wb) / 2, wa, wb, wa])
    p /= p.sum()
    freq = counts / counts.sum()
    assert np.abs(freq - p).max() < 0.01  # 20k draws: 3 sigma ~ 0.009 for p ~ 0.3


def test_group_weights_against_hand_computed_reference():
    # 4 grouped samples in 2 groups: each group sums to 4 / 2 = 2 (a: 3 samples of 2/3, b: 1 of 2); None keeps 1
    assert group_weights(["a", None, "a", "b", "a"]) == pytest.approx([2 / 3, 1.0, 2 / 3, 2.0, 2 / 3])
    assert np.all(group_weights([None, None]) == 1.0)
    assert group_weights(["x", "x"]) == pytest.approx([1.0, 1.0])  # one group: as shuffled


def test_group_balanced_draws_give_each_group_its_share():
    groups = ["big"] * 6 + ["small"] * 2 + [None] * 4
    s = GroupBalancedSampler(groups, seed=0)
    counts = np.zeros(len(groups))
    for epoch in range(3000):
        counts += np.bincount(s.global_indices(epoch), minlength=len(groups))
    freq = counts / counts.sum()
    # 8 grouped samples, 2 groups: each group 4 / 12 of the draws, the 4 ungrouped ones 4 / 12 together
    assert freq[:6].sum() == pytest.approx(1 / 3, abs=0.01) and freq[6:8].sum() == pytest.approx(1 / 3, abs=0.01)
    assert freq[8:].sum() == pytest.approx(1 / 3, abs=0.01)
    assert np.abs(freq[:6] - 1 / 18).max() < 0.01 and np.abs(freq[6:8] - 1 / 6).max() < 0.01


def test_build_sampler_groups_the_rows_that_carry_the_required_fields():
    from types import SimpleNamespace

    from paraspeechclap.training.config import DataConfig
    from paraspeechclap.training.data import build_sampler

    real = [{"source": "emodb", "emotion": "angry"}, {"source": "emodb", "emotion": "sad"},
            {"source": "urdu", "emotion": "happy"}, {"source": "urdu"},  # no emotion: not balanced
            {"emotion": "happy"}]  # no source: not balanced
    synth = [{"source": "synth", "caption": "x"}] * 3
    dataset = SimpleNamespace(sources=[SimpleNamespace(manifest=real), SimpleNamespace(manifest=synth)],
                              plan=[(0, i) for i in range(5)] + [(1, i) for i in range(3)])
    sampler = build_sampler(DataConfig(sampler="group_balanced"), dataset, 0, 1, 4, seed=0)
    assert isinstance(sampler, GroupBalancedSampler)
    assert sampler.weights == pytest.approx(group_weights(["emodb", "emodb", "urdu", None, None, None, None, None]))
    other = build_sampler(DataConfig(sampler="group_balanced", balance_require=[]), dataset, 0, 1, 4, seed=0)
    assert other.weights == pytest.approx(group_weights(["emodb", "emodb", "urdu", "urdu", None,
                                                         "synth", "synth", "synth"]))


def test_rare_tags_minimum_per_chunk():
    rng = random.Random(0)
    tags = [["common"]] * 380 + [["rare1"]] * 8 + [["rare2", "common"]] * 6 + [[]] * 6
    rng.shuffle(tags)
    s = ClassBalancedSampler(tags, num_replicas=2, rank=0, batch_size=16, min_rare_per_batch=3, seed=1)
    assert s.rare_tags == {"rare1", "rare2"}  # 8/400 and 6/400 < 5%; common is not rare
    rare = np.array([bool({"rare1", "rare2"} & set(t)) for t in tags])
    plain = ClassBalancedSampler(tags, 2, 0, batch_size=16, min_rare_per_batch=0, seed=1)
    for epoch in range(5):
        idx = s.global_indices(epoch)
        full = len(idx) // 16 * 16
        chunks = idx[:full].reshape(-1, 16)
        assert (rare[chunks].sum(axis=1) >= 3).all()
        # Only non-rare positions change, and only as many as were missing.
        before = plain.global_indices(epoch)[:full].reshape(-1, 16)
        for c_new, c_old in zip(chunks, before):
            changed = c_new != c_old
            assert not rare[c_old[changed]].any()
            assert changed.sum() <= max(0, 3 - rare[c_old].sum())
        # Every rank reads its share of the same global list.
        r1 = ClassBalancedSampler(tags, 2, 1, batch_size=16, min_rare_per_batch=3, seed=1)
        assert np.array_equal(r1.rank_indices(epoch), idx[1::2])


@pytest.mark.parametrize("make", [
    lambda: ShuffleSampler(37, num_replicas=3, rank=1, seed=4),
    lambda: ClassBalancedSampler([["a"]] * 30 + [["b"]] + [[]] * 6, num_replicas=3, rank=1, batch_size=4, seed=4),
    lambda: GroupBalancedSampler(["a"] * 30 + ["b"] + [None] * 6, num_replicas=3, rank=1, seed=4),
])  # fmt: skip
def test_exact_resume_mid_epoch(make):
    full = make()
    full.set_epoch(2)
    expected = list(full)
    first = make()
    first.set_epoch(2)
    it = iter(first)
    head = [next(it) for _ in range(5)]
    state = first.state_dict()
    assert state["position"] == 5 and state["epoch"] == 2
    resumed = make()
    resumed.load_state_dict(state)
    resumed.set_epoch(2)  # the trainer re-sets the same epoch: the offset must survive
    assert head + list(resumed) == expected
    assert list(resumed) == expected  # the next pass is a full epoch again
    # A DataLoader prefetches: the trainer passes what it consumed.
    again = make()
    again.load_state_dict(first.state_dict(consumed=3))
    assert expected[:3] + list(again) == expected
    resumed.set_epoch(3)
    assert len(list(resumed)) == len(expected) and list(resumed) != expected


def test_resume_with_other_world_size_or_rank_raises():
    state = ShuffleSampler(20, 2, 0, seed=1).state_dict()
    for other in (ShuffleSampler(20, 4, 0, seed=1), ShuffleSampler(20, 2, 1, seed=1), ShuffleSampler(21, 2, 0, seed=1)):
        with pytest.raises(InputError, match="cannot resume"):
            other.load_state_dict(state)
    with pytest.raises(InputError, match="kind"):
        ClassBalancedSampler([["a"]] * 20, 2, 0, seed=1).load_state_dict(state)
    with pytest.raises(InputError):
        ShuffleSampler(10, 2, 2)


def test_global_rngs_untouched():
    torch.manual_seed(123)
    random.seed(123)
    np.random.seed(123)
    t, r, n = torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy()
    list(ClassBalancedSampler([["a"]] * 30 + [["b"]], batch_size=4))
    list(ShuffleSampler(30))
    assert torch.equal(t, torch.get_rng_state()) and r == random.getstate()
    assert np.array_equal(n, np.random.get_state()[1])
