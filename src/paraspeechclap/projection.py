"""The projection head of ParaSpeechCLAP (identical to ParaCLAP's)."""

from __future__ import annotations

import torch
from torch import nn


class Projection(nn.Module):
    """Residual, bias-free two-layer projection with GELU, dropout and LayerNorm.

    ``out = LayerNorm(e1 + Dropout(linear2(GELU(e1))))`` with ``e1 = linear1(x)``. Submodule names
    (``linear1``, ``linear2``, ``drop``, ``layer_norm``) are those of the released checkpoints.

    Args:
        d_in: input width (the backbone's pooled size).
        d_out: embedding width (768 in the official models).
        dropout: dropout probability (0.5 in every official config); active only in train mode.
    """

    def __init__(self, d_in: int, d_out: int, dropout: float = 0.5):
        super().__init__()
        self.linear1 = nn.Linear(d_in, d_out, bias=False)
        self.linear2 = nn.Linear(d_out, d_out, bias=False)
        self.layer_norm = nn.LayerNorm(d_out)  # affine, eps 1e-5
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, d_in)`` -> ``(B, d_out)``."""
        return self.finish(self.linear1(x))

    def finish(self, e1: torch.Tensor) -> torch.Tensor:
        """The rest of :meth:`forward` after ``linear1``: ``(B, d_out)`` -> ``(B, d_out)``. Split out because
        ``e1`` is the last point that is linear in the input: centring there equals centring the input."""
        e2 = self.drop(self.linear2(nn.functional.gelu(e1)))  # exact (erf) GELU
        return self.layer_norm(e1 + e2)
