"""Optimiser and learning-rate schedule from :class:`~paraspeechclap.training.config.OptimConfig`.

Official recipe: ``torch.optim.Adam(trainable_params, lr=1e-5)`` with default betas and eps, no
weight decay, a constant rate, no warm-up and no gradient clipping.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch

from .config import OptimConfig

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


def create_optimizer(params: Iterable[torch.nn.Parameter], cfg: OptimConfig) -> torch.optim.Optimizer:
    """The optimiser of ``cfg.name`` over ``params`` (the trainable parameters)."""
    return OPTIMIZERS[cfg.name](list(params), lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps,  # type: ignore[call-arg]
                                weight_decay=cfg.weight_decay)


def lr_factor(cfg: OptimConfig, total_steps: int) -> Callable[[int], float]:
    """Multiplier of the base rate after ``step`` scheduler steps: linear warm-up, then the schedule.

    ``constant`` stays at 1; ``cosine`` and ``linear`` decay to 0 at ``total_steps``.
    """
    warmup = cfg.warmup_steps

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if cfg.schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        if cfg.schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        return 1.0 - progress

    return factor


def create_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimConfig,
                     total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` stepping once per optimiser step (its state is saved in checkpoints)."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(cfg, total_steps))
