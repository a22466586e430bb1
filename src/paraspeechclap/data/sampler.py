"""Distributed, resumable samplers: class-balanced (Intrinsic recipe), group-balanced and plain shuffled.

All take ``num_replicas``/``rank`` explicitly, expose ``set_epoch`` and
``state_dict``/``load_state_dict`` with the position inside the epoch, so a trainer can stop in the
middle of an epoch and resume at the same sample; they use their own seeded generators, never the
global RNGs. Every rank yields ``ceil(N / num_replicas)`` indices per epoch, so every rank runs the
same number of batches.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Sampler

from ..errors import InputError


class _ResumableSampler(Sampler[int]):
    """Shared epoch/rank/state logic; subclasses define :meth:`global_indices`."""

    kind = "base"

    def __init__(self, num_samples: int, num_replicas: int = 1, rank: int = 0, seed: int = 0) -> None:
        if num_samples <= 0:
            raise InputError("sampler: the dataset is empty")
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise InputError(f"sampler: invalid rank {rank} for num_replicas={num_replicas}")
        self.dataset_size = int(num_samples)
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)
        self.seed = int(seed)
        self.epoch = 0
        self.num_samples = math.ceil(self.dataset_size / self.num_replicas)  # per rank
        self.total_size = self.num_samples * self.num_replicas
        self._start = 0  # position (within this rank's share) where the next __iter__ begins
        self._position = 0  # indices yielded so far in the current epoch (incl. the resumed offset)

    def global_indices(self, epoch: int) -> np.ndarray:
        """All ranks' indices of one epoch, ``(total_size,)`` int64; identical on every rank."""
        raise NotImplementedError

    def rank_indices(self, epoch: int) -> np.ndarray:
        """This rank's indices of one epoch: ``global_indices(epoch)[rank::num_replicas]``."""
        return self.global_indices(epoch)[self.rank :: self.num_replicas]

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        indices = self.rank_indices(self.epoch)
        start, self._start = self._start, 0  # a later __iter__ without resuming is a full epoch
        self._position = start
        for i in indices[start:].tolist():
            self._position += 1
            yield i

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch; a new epoch starts from its beginning, the current one keeps a resume offset."""
        if int(epoch) != self.epoch:
            self.epoch = int(epoch)
            self._start = 0
            self._position = 0

    def state_dict(self, consumed: int | None = None) -> dict[str, Any]:
        """The state needed to resume at the same sample.

        Args:
            consumed: samples of this epoch the trainer has actually used on this rank. Pass it
                when a DataLoader prefetches (the sampler has then yielded more than was used);
                default: the number of indices yielded so far.
        """
        position = self._position if consumed is None else int(consumed)
        if not 0 <= position <= self.num_samples:
            raise InputError(f"sampler: consumed={position} outside [0, {self.num_samples}]")
        return {
            "kind": self.kind,
            "epoch": self.epoch,
            "position": position,
            "seed": self.seed,
            "num_replicas": self.num_replicas,
            "rank": self.rank,
            "dataset_size": self.dataset_size,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume: the next ``__iter__`` continues the saved epoch at the saved position.

        Raises:
            InputError: the state comes from another sampler kind, world size, rank, seed or
                dataset size (the index stream would differ, so resuming would be wrong).
        """
        for key in ("kind", "num_replicas", "rank", "seed", "dataset_size"):
            if state.get(key) != getattr(self, key):
                raise InputError(
                    f"sampler state has {key}={state.get(key)!r} but this sampler has {getattr(self, key)!r}; "
                    "cannot resume with a different setup"
                )
        self.epoch = int(state["epoch"])
        self._start = self._position = int(state["position"])


class ShuffleSampler(_ResumableSampler):
    """Shuffled distributed sampler (like ``torch.utils.data.DistributedSampler(shuffle=True)``).

    Each epoch permutes ``range(N)`` with a generator seeded by ``seed + epoch`` and pads the end
    with the first indices up to ``total_size = ceil(N / W) * W``; rank ``r`` takes ``[r::W]``.
    So every index appears on some rank each epoch; at most ``W - 1`` are repeated.

    Args:
        num_samples: dataset size N.
        num_replicas: world size W.
        rank: this process's rank.
        seed: shared by all ranks.
        shuffle: False keeps the dataset order (evaluation).
    """

    kind = "shuffle"

    def __init__(self, num_samples: int, num_replicas: int = 1, rank: int = 0, seed: int = 0, shuffle: bool = True):
        super().__init__(num_samples, num_replicas, rank, seed)
        self.shuffle = shuffle

    def global_indices(self, epoch: int) -> np.ndarray:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + epoch)
            idx = torch.randperm(self.dataset_size, generator=g).numpy()
        else:
            idx = np.arange(self.dataset_size)
        pad = self.total_size - self.dataset_size
        return np.concatenate([idx, idx[:pad]]).astype(np.int64) if pad else idx.astype(np.int64)


def normalise_tag_sets(tags: Sequence[Sequence[str] | None]) -> list[frozenset[str]]:
    """Per sample, the set of stripped, lower-cased, non-empty tags."""
    return [frozenset(str(t).strip().lower() for t in (s or ()) if str(t).strip()) for s in tags]


def tag_weights(tag_sets: Sequence[frozenset[str]]) -> dict[str, float]:
    """Inverse-frequency tag weights normalised to sum to the number of tags (mean 1).

    ``f_t`` = number of samples carrying tag ``t``; ``w_t = (1/f_t) * T / sum_u (1/f_u)``.
    """
    freq: dict[str, int] = {}
    for s in tag_sets:
        for t in s:
            freq[t] = freq.get(t, 0) + 1
    if not freq:
        return {}
    inv = {t: 1.0 / f for t, f in sorted(freq.items())}
    scale = len(inv) / sum(inv.values())
    return {t: w * scale for t, w in inv.items()}


def sample_weights(tag_sets: Sequence[frozenset[str]]) -> np.ndarray:
    """Per-sample weight: mean tag weight of its tags; untagged samples get the minimum tag weight.

    Returns:
        ``(N,)`` float64; all ones when no sample has a tag.
    """
    tw = tag_weights(tag_sets)
    if not tw:
        return np.ones(len(tag_sets))
    floor = min(tw.values())
    return np.array([np.mean([tw[t] for t in s]) if s else floor for s in tag_sets], dtype=np.float64)


def group_weights(groups: Sequence[str | None]) -> np.ndarray:
    """Per-sample weight that gives every group the same total, the grouped samples together keeping theirs.

    ``M`` samples carry a group (``G`` distinct groups, ``n_g`` samples in group ``g``): each weighs
    ``(M / G) / n_g``, so every group sums to ``M / G`` and all of them to ``M``; ungrouped samples (None)
    weigh 1, so their share of an epoch is unchanged.

    Returns:
        ``(N,)`` float64.
    """
    counts: dict[str, int] = {}
    for g in groups:
        if g is not None:
            counts[g] = counts.get(g, 0) + 1
    grouped = sum(counts.values())
    per_group = grouped / len(counts) if counts else 0.0
    return np.array([1.0 if g is None else per_group / counts[g] for g in groups], dtype=np.float64)


class GroupBalancedSampler(_ResumableSampler):
    """Draws ``total_size`` indices per epoch with replacement from :func:`group_weights` (a torch generator
    seeded with ``seed + epoch``; rank ``r`` takes ``[r::W]``): e.g. the labelled recordings of every corpus
    equally often, whatever each corpus's size, the synthetic clips as often as without it.

    Args:
        groups: per sample, its group (e.g. its corpus) or None (not balanced).
        num_replicas, rank, seed: as :class:`ShuffleSampler`.
    """

    kind = "group_balanced"

    def __init__(self, groups: Sequence[str | None], num_replicas: int = 1, rank: int = 0, seed: int = 0) -> None:
        super().__init__(len(groups), num_replicas, rank, seed)
        self.weights = group_weights(groups)

    def global_indices(self, epoch: int) -> np.ndarray:
        return _weighted_draw(self.weights, self.total_size, self.seed + epoch)


def _weighted_draw(weights: np.ndarray, size: int, seed: int) -> np.ndarray:
    """``size`` indices drawn with replacement in proportion to ``weights`` by a torch generator seeded ``seed``."""
    g = torch.Generator().manual_seed(seed)
    w = torch.as_tensor(weights, dtype=torch.float64)
    return torch.multinomial(w, size, replacement=True, generator=g).numpy().astype(np.int64)


class ClassBalancedSampler(_ResumableSampler):
    """Class-balanced tag sampler of the Intrinsic recipe (official ``DistributedBalancedTagSampler``).

    Per epoch: draw ``total_size = ceil(N/W)*W`` indices with replacement from the per-sample
    weights (:func:`sample_weights`) using a torch generator seeded with ``seed + epoch``; then walk
    the global list in chunks of ``batch_size`` and, in every full chunk with fewer than
    ``min_rare_per_batch`` samples carrying a rare tag (``f_t / N < rare_threshold``), overwrite
    the first non-rare positions with rare-tag samples drawn without replacement; rank ``r`` takes
    ``[r::W]``.

    Difference from the official code: the rare-tag top-up draws from a generator seeded by
    ``(seed, epoch)`` (official: Python ``random`` seeded ``seed + rank`` once per run), so the
    global list is the same on every rank and an epoch can be regenerated exactly on resume.

    Args:
        tags: per sample, its tags (e.g. the ``intrinsic_tags`` column).
        num_replicas: world size W.
        rank: this process's rank.
        batch_size: chunk length for the rare-tag guarantee (official: 32, the per-GPU batch).
        min_rare_per_batch: rare-tag samples required per chunk (official: 2).
        rare_threshold: a tag is rare if it is on fewer than this fraction of samples (0.05).
        seed: shared by all ranks (official: 3407).
    """

    kind = "class_balanced"

    def __init__(
        self,
        tags: Sequence[Sequence[str] | None],
        num_replicas: int = 1,
        rank: int = 0,
        batch_size: int = 32,
        min_rare_per_batch: int = 2,
        rare_threshold: float = 0.05,
        seed: int = 3407,
    ) -> None:
        super().__init__(len(tags), num_replicas, rank, seed)
        self.tag_sets = normalise_tag_sets(tags)
        self.weights = sample_weights(self.tag_sets)
        n = self.dataset_size
        freq: dict[str, int] = {}
        for s in self.tag_sets:
            for t in s:
                freq[t] = freq.get(t, 0) + 1
        self.rare_tags = frozenset(t for t, f in freq.items() if f / n < rare_threshold)
        self.is_rare = np.array([bool(s & self.rare_tags) for s in self.tag_sets])
        self.rare_indices = np.flatnonzero(self.is_rare)
        self.batch_size = int(batch_size)
        self.min_rare_per_batch = int(min_rare_per_batch)

    def global_indices(self, epoch: int) -> np.ndarray:
        idx = _weighted_draw(self.weights, self.total_size, self.seed + epoch)
        if len(self.rare_indices) and self.min_rare_per_batch > 0:
            self._top_up_rare(idx, np.random.default_rng([self.seed, epoch]))
        return idx

    def _top_up_rare(self, idx: np.ndarray, rng: np.random.Generator) -> None:
        """In place: give every full chunk at least ``min_rare_per_batch`` rare-tag samples."""
        bs, need = self.batch_size, self.min_rare_per_batch
        for start in range(0, len(idx) - bs + 1, bs):
            chunk = idx[start : start + bs]  # a view: writes go into idx
            rare = self.is_rare[chunk]
            missing = need - int(rare.sum())
            if missing <= 0:
                continue
            k = min(missing, len(self.rare_indices), int((~rare).sum()))
            replace_pos = np.flatnonzero(~rare)[:k]
            chunk[replace_pos] = rng.choice(self.rare_indices, size=k, replace=False)
