"""Worst-group objective: online group DRO (Sagawa et al. 2020, "Distributionally Robust Neural
Networks for Group Shifts"), applied to the attribute cross-entropy (our addition).

Issue 18 asks for objectives that penalise the worst training corpus, so that what the heads learn
holds on corpora they never heard. Each row may belong to a group (its corpus); the rows without one
(synthetic voices, re-pitched copies) keep their plain weight. The grouped rows of a batch keep their
share of the loss as a whole, but share it among the groups present in proportion to weights ``q``
rather than to their counts, and ``q`` follows each group's loss: after every step
``q_g <- q_g * exp(eta * L_g)`` for the groups in the batch, then ``q`` is renormalised, so a corpus
the heads keep getting wrong gains weight until its loss falls.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import nn

from .. import distributed


def group_row_weights(ids: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Per-row weights of a batch under group weights ``q``.

    Args:
        ids: ``(B,)`` long, each row's group index, ``-1`` for a row without one.
        q: ``(G,)`` nonnegative group weights (need not sum to 1).

    Returns:
        ``(B,)`` float: 1 for rows without a group; the ``n`` grouped rows weigh ``n`` in all, split
        among the groups present in proportion to ``q`` and equally within each group (uniform ``q``
        over groups of equal counts gives every row weight 1).
    """
    weights = torch.ones(ids.shape, dtype=q.dtype, device=q.device)
    grouped = ids >= 0
    if not bool(grouped.any()):
        return weights
    g = ids[grouped].to(q.device)
    counts = torch.bincount(g, minlength=len(q)).to(q.dtype)
    share = torch.where(counts > 0, q, torch.zeros_like(q))
    share = share / share.sum()
    weights[grouped] = grouped.sum().to(q.dtype) * share[g] / counts[g]
    return weights


def group_sums(ids: torch.Tensor, losses: torch.Tensor, groups: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum and count of ``losses`` per group (rows with ``ids < 0`` ignored).

    Args:
        ids: ``(N,)`` long group index per loss term.
        losses: ``(N,)`` float loss terms.
        groups: number of groups ``G``.

    Returns:
        ``(sums, counts)``, each ``(G,)`` float64.
    """
    keep = ids >= 0
    sums = torch.zeros(groups, dtype=torch.float64).index_add_(0, ids[keep].cpu(),
                                                               losses[keep].detach().double().cpu())
    counts = torch.bincount(ids[keep].cpu(), minlength=groups).double()
    return sums, counts


class GroupDRO(nn.Module):
    """The group weights ``q`` and their update (state in ``state_dict``, so a resumed run continues them).

    Args:
        groups: the group names (e.g. the training corpora), in a fixed order.
        eta: step size of the exponentiated-gradient update (``0`` keeps ``q`` uniform).
    """

    q: torch.Tensor

    def __init__(self, groups: Sequence[str], eta: float):
        super().__init__()
        if not groups:
            raise ValueError("group DRO needs at least one group")
        self.groups, self.eta = list(groups), float(eta)
        self.index = {g: i for i, g in enumerate(self.groups)}
        self.register_buffer("q", torch.full((len(self.groups),), 1.0 / len(self.groups), dtype=torch.float64))

    def ids(self, names: Sequence[str | None]) -> torch.Tensor:
        """``(B,)`` long: each name's group index, ``-1`` for ``None`` or a name not in ``groups``."""
        return torch.tensor([self.index.get(n, -1) if n is not None else -1 for n in names], dtype=torch.long)

    @torch.no_grad()
    def update(self, ids: torch.Tensor, losses: torch.Tensor) -> None:
        """One exponentiated-gradient step from this batch's loss terms (averaged over ranks first, so
        every process keeps the same ``q``).

        Args:
            ids: ``(N,)`` long group index per loss term (``-1``: no group).
            losses: ``(N,)`` the terms (e.g. each labelled row's cross-entropy in each attribute set).
        """
        sums, counts = group_sums(ids, losses, len(self.groups))
        stacked = distributed.all_reduce_mean(torch.stack([sums, counts]))
        sums, counts = stacked[0], stacked[1]
        present = counts > 0
        if not bool(present.any()):
            return
        mean = torch.where(present, sums / counts.clamp_min(1.0), torch.zeros_like(sums))
        self.q.mul_(torch.exp(self.eta * mean))
        self.q.div_(self.q.sum())

    def describe(self) -> Mapping[str, float]:
        """Group name -> its current weight."""
        return {g: float(w) for g, w in zip(self.groups, self.q.tolist())}
