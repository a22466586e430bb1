"""All-gather of embeddings and per-sample metadata across data-parallel ranks.

The gather lives here, called by the loss modules, never inline in the training loop
(open_clip's ``gather_features``; the official ParaSpeechCLAP code gathers inside ``train.py``).
All ranks must hold the same number of samples per step: ``torch.utils.data.DistributedSampler``
pads the dataset so that every rank sees equal batch sizes, including the last batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.distributed as dist

__all__ = ["gather_features", "gather_objects"]


def gather_features(x: torch.Tensor, rank: int, world_size: int, with_grad: bool = False) -> torch.Tensor:
    """Concatenate every rank's ``x`` along dim 0, in rank order.

    Two gradient conventions:

    * ``with_grad=False`` (the official ParaSpeechCLAP mode): a plain ``dist.all_gather`` carries no
      gradient, so the local tensor is put back at index ``rank``; gradients then flow only
      through this rank's rows. A loss computed on the result differentiates, on each rank, only
      the local rows, so the gradient of the global loss w.r.t. the model parameters is the *sum*
      over ranks of the local gradients (DDP's average is that divided by ``world_size``).
    * ``with_grad=True``: an autograd all-gather (functional collectives, or
      :mod:`torch.distributed.nn` on older torch) whose backward sums, for each rank's slice, the
      gradients that every rank's loss sends to it.

    Args:
        x: ``(B, ...)`` local tensor; ``B`` must be equal on all ranks.
        rank: This process's rank.
        world_size: Number of processes; ``1`` returns ``x`` unchanged.
        with_grad: Use the autograd all-gather.

    Returns:
        ``(world_size * B, ...)`` tensor whose rows ``rank*B:(rank+1)*B`` are ``x``.
    """
    if world_size == 1:
        return x
    if with_grad:
        return _all_gather_autograd(x)
    gathered = [torch.empty_like(x) for _ in range(world_size)]
    dist.all_gather(gathered, x.contiguous())
    # Ensure gradients for the local rank: all_gather's outputs are detached.
    gathered[rank] = x
    return torch.cat(gathered, dim=0)


def _all_gather_autograd(x: torch.Tensor) -> torch.Tensor:
    """All-gather along dim 0 whose backward reduce-scatters (sums) the gradients to each rank."""
    fcol: Any
    try:
        import torch.distributed._functional_collectives as fcol
    except ImportError:  # pragma: no cover - builds without the private module
        fcol = None
    # Same preference order as open_clip: the functional collective (its current name first, the
    # name deprecated in torch 2.13 second), then the older torch.distributed.nn version, which
    # torch 2.13 deprecates.
    gather = getattr(fcol, "all_gather_single_autograd", None) or getattr(fcol, "all_gather_tensor_autograd", None)
    if gather is not None:
        return gather(x.contiguous(), gather_dim=0, group=dist.group.WORLD)
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x), dim=0)


def gather_objects(items: Sequence[Any], world_size: int) -> list[Any]:
    """Concatenate every rank's list of picklable items, in rank order.

    Used for per-sample metadata (tag lists) that must stay aligned with the rows returned by
    :func:`gather_features` on the same step.

    Args:
        items: This rank's ``B`` items.
        world_size: Number of processes; ``1`` returns ``list(items)``.

    Returns:
        ``world_size * B`` items: rank 0's, then rank 1's, ...
    """
    if world_size == 1:
        return list(items)
    per_rank: list[Any] = [None] * world_size
    dist.all_gather_object(per_rank, list(items))
    return [item for chunk in per_rank for item in chunk]
