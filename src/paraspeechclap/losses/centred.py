"""Speaker-centred attribute objective (issue 18: "speaker-relative features learned in training"; our addition).

Speaker centring at inference (:mod:`paraspeechclap.centering`) scores ``l2(x - mean_s)``, a clip's
normalised embedding minus its speaker's mean, against the class prompts. The heads are trained on ``x``
alone, so nothing asks the difference from a speaker's mean to point at the right class. This objective
does: each training speaker's mean normalised embedding ``mu_s`` is kept (recomputed from the current
weights every few steps, no gradient through it), and the attribute cross-entropy is applied once more to
``l2(l2(x) - mu_s)`` for the rows whose speaker has a mean. What a speaker shares across their clips (voice,
room, microphone, language) then cannot carry the class, only what changes between their clips can.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn
from torch.nn import functional as F


def centre_rows(unit: torch.Tensor, ids: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
    """Rows moved off their group's mean and renormalised.

    Args:
        unit: ``(B, D)`` normalised embeddings.
        ids: ``(B,)`` long, each row's group index, ``-1`` for a row without one (left as it is).
        means: ``(G, D)`` group means (no gradient flows into them).

    Returns:
        ``(B, D)``: ``l2(unit[i] - means[ids[i]])`` where ``ids[i] >= 0``, else ``unit[i]``.
    """
    return F.normalize(centre_linear(unit, ids, means), dim=-1)


def centre_linear(rows: torch.Tensor, ids: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
    """``rows[i] - means[ids[i]]`` where ``ids[i] >= 0``, else ``rows[i]``; no renormalisation (for a linear
    stage such as the projection's ``linear1`` output, whatever follows finishes it).

    Args:
        rows: ``(B, D)``; ids: ``(B,)`` long, ``-1`` for a row without a group; means: ``(G, D)`` (no gradient).
    """
    grouped = (ids >= 0).to(rows.device)
    shift = means.detach().to(rows)[ids.clamp_min(0).to(rows.device)]
    return torch.where(grouped[:, None], rows - shift, rows)


def weighted_group_means(emb: torch.Tensor, ids: torch.Tensor, weights: torch.Tensor, groups: int) -> torch.Tensor:
    """Weighted mean row of each group.

    Args:
        emb: ``(N, D)`` rows.
        ids: ``(N,)`` long group index per row (``-1``: ignored).
        weights: ``(N,)`` nonnegative row weights (e.g. ``1 / variants`` so each clip counts once).
        groups: number of groups ``G``.

    Returns:
        ``(G, D)`` float32; a group without rows gets zeros.
    """
    keep = ids >= 0
    w = weights[keep].double()
    rows = emb[keep].double() * w[:, None]
    sums = torch.zeros(groups, emb.shape[1], dtype=torch.float64).index_add_(0, ids[keep], rows)
    total = torch.zeros(groups, dtype=torch.float64).index_add_(0, ids[keep], w)
    return (sums / total.clamp_min(1e-12)[:, None]).float()


class SpeakerMeans(nn.Module):
    """The training speakers' mean normalised embeddings (a buffer, so checkpoints carry it).

    Args:
        groups: the speaker ids, in a fixed order.
        dim: embedding size ``D``.
    """

    means: torch.Tensor
    ready: torch.Tensor

    def __init__(self, groups: Sequence[str], dim: int):
        super().__init__()
        if not groups:
            raise ValueError("speaker centring needs at least one speaker")
        self.groups = list(groups)
        self.index = {g: i for i, g in enumerate(self.groups)}
        self.register_buffer("means", torch.zeros(len(self.groups), dim))
        self.register_buffer("ready", torch.zeros((), dtype=torch.bool))

    def ids(self, names: Sequence[str | None]) -> torch.Tensor:
        """``(B,)`` long: each name's index, ``-1`` for ``None``, an unknown name, or before the first :meth:`set`."""
        if not bool(self.ready):
            return torch.full((len(names),), -1, dtype=torch.long)
        return torch.tensor([self.index.get(n, -1) if n is not None else -1 for n in names], dtype=torch.long)

    @torch.no_grad()
    def set(self, means: torch.Tensor) -> None:
        """Replace the means with ``(G, D)`` new ones."""
        self.means.copy_(means)
        self.ready.fill_(True)

    def describe(self) -> Mapping[str, float]:
        """Summary for ``summary.json``: how many speakers, and the mean length of their mean embedding
        (how much a speaker's clips share: 0 for unrelated clips, 1 for identical ones)."""
        return {"speakers": len(self.groups), "mean_norm": round(float(self.means.norm(dim=-1).mean()), 4)}
