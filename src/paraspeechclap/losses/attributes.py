"""Zero-shot-consistent attribute classification loss (our addition; not in the official recipes).

For every named attribute set (emotion, pitch level, gender, ...) whose gold label a training row
carries, the audio embedding is scored against one prompt embedding per candidate of the set, and a
softmax cross-entropy over the set's candidates is applied. This trains exactly what zero-shot
classification does at inference (argmax of cosine to the candidates' prompts), including the
"neutral" classes (neutral emotion, medium pitch, normal loudness) that tag-BCE never sees as
positives. Prompts are drawn from each set's prompt ensemble, so the model does not overfit one
wording.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import torch
from torch import nn
from torch.nn import functional as F

RowWeights = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class AttributeTargets:
    """Gold labels of a batch for one attribute set.

    Attributes:
        name: the attribute set.
        candidates: its candidate labels (the class order of ``target``).
        target: ``(B,)`` long, index into ``candidates`` or -1 where the row has no label.
    """

    name: str
    candidates: Sequence[str]
    target: torch.Tensor


def attribute_targets(rows: Sequence[Mapping], sets: Sequence) -> list[AttributeTargets]:
    """Gold labels of ``rows`` for each attribute set (``AttributeSet`` objects with ``candidates``
    and ``gold(row)``); sets with no labelled row in the batch are dropped."""
    out = []
    for aset in sets:
        index = {c: i for i, c in enumerate(aset.candidates)}
        target = torch.tensor([index.get(aset.gold(r), -1) for r in rows], dtype=torch.long)
        if bool((target >= 0).any()):
            out.append(AttributeTargets(aset.name, list(aset.candidates), target))
    return out


class AttributeClassificationLoss(nn.Module):
    """Mean (or sum) over attribute sets of the cross-entropy of ``scale * cos(audio, class prompt)``.

    Args:
        weight: multiplier of the loss (``attribute_loss`` in the output dict includes it).
        reduction: ``mean`` over the sets labelled in the batch (each set's share shrinks as sets are
            added) or ``sum`` (a set added leaves the others' weight as it was).
    """

    def __init__(self, weight: float = 1.0, reduction: str = "mean"):
        super().__init__()
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
        self.weight, self.reduction = weight, reduction

    def forward(self, audio_emb: torch.Tensor, class_emb: Mapping[str, torch.Tensor],
                targets: Sequence[AttributeTargets], logit_scale: torch.Tensor,
                row_weights: RowWeights | None = None) -> torch.Tensor:
        """
        Args:
            audio_emb: ``(B, D)`` audio embeddings (normalised here).
            class_emb: set name -> ``(C, D)`` prompt embeddings of its candidates (normalised here).
            targets: from :func:`attribute_targets`.
            logit_scale: scalar multiplier of the cosine logits.
            row_weights: maps a set's ``(B,)`` bool mask of labelled rows to those rows' weights
                (e.g. group DRO's); ``None``: each set's rows are averaged plainly.

        Returns:
            scalar loss; 0 (connected to the graph) when no row has a label.
        """
        return self.reduce(self.per_row(audio_emb, class_emb, targets, logit_scale), row_weights, audio_emb)

    @staticmethod
    def per_row(audio_emb: torch.Tensor, class_emb: Mapping[str, torch.Tensor], targets: Sequence[AttributeTargets],
                logit_scale: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Each set's ``(valid, ce)``: the ``(B,)`` bool mask of its labelled rows and their ``(b,)``
        cross-entropies (arguments as :meth:`forward`)."""
        a = F.normalize(audio_emb, dim=-1)
        parts = []
        for t in targets:
            valid = t.target.to(a.device) >= 0
            logits = logit_scale * a[valid] @ F.normalize(class_emb[t.name], dim=-1).T  # (b, C)
            parts.append((valid, F.cross_entropy(logits, t.target.to(a.device)[valid], reduction="none")))
        return parts

    def reduce(self, parts: Sequence[tuple[torch.Tensor, torch.Tensor]], row_weights: RowWeights | None,
               audio_emb: torch.Tensor) -> torch.Tensor:
        """The loss from :meth:`per_row`'s parts (``audio_emb`` only keeps an empty batch's 0 in the graph)."""
        losses = []
        for valid, ce in parts:
            if row_weights is None:
                losses.append(ce.mean())
            else:
                w = row_weights(valid).to(ce)
                losses.append((w * ce).sum() / w.sum())
        if not losses:
            return audio_emb.sum() * 0.0
        stacked = torch.stack(losses)
        return self.weight * (stacked.sum() if self.reduction == "sum" else stacked.mean())
