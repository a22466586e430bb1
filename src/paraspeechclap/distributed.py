"""Small helpers around :mod:`torch.distributed` for torchrun-launched training.

Every helper is a silent no-op in a single process (rank 0 of a world of size 1), in the manner
of encodec's ``distrib.py``: library and training code call them unconditionally and work the
same under ``python train.py`` and ``torchrun --nproc_per_node=N train.py``.

Nothing happens at import time; :func:`init_distributed` is the only function that creates a
process group.

Example (the torchrun command sets ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and
``MASTER_PORT``)::

    torchrun --nproc_per_node=4 -m paraspeechclap.cli.main train ...

    info = init_distributed()          # DistributedInfo(rank=.., local_rank=.., world_size=4, device=cuda:..)
    if is_main():
        save(...)
    barrier()
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.distributed as dist

__all__ = [
    "DistributedInfo",
    "WorldInfo",
    "all_gather_object",
    "all_reduce_mean",
    "average_metrics",
    "barrier",
    "broadcast_object",
    "init_distributed",
    "is_distributed",
    "is_main",
    "rank",
    "world_info_from_env",
    "world_size",
]


class WorldInfo(NamedTuple):
    """Process placement read from the environment (see :func:`world_info_from_env`)."""

    rank: int
    local_rank: int
    world_size: int


@dataclass(frozen=True)
class DistributedInfo:
    """Result of :func:`init_distributed`.

    Attributes:
        rank: Global rank of this process, in ``[0, world_size)``.
        local_rank: Rank on this node; selects the GPU.
        world_size: Number of processes.
        device: Device this process computes on (``cuda:<local_rank>`` or ``cpu``).
        backend: Process-group backend (``"nccl"``/``"gloo"``), or ``None`` when not distributed.
    """

    rank: int
    local_rank: int
    world_size: int
    device: torch.device
    backend: str | None = None

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(env: Mapping[str, str], name: str, default: int) -> int:
    value = env.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ValueError(f"environment variable {name}={value!r} is not an integer") from exc


def world_info_from_env(env: Mapping[str, str] | None = None) -> WorldInfo:
    """Read rank, local rank and world size from the torchrun environment variables.

    Args:
        env: Mapping to read instead of ``os.environ`` (for tests).

    Returns:
        ``WorldInfo(rank, local_rank, world_size)``; ``(0, 0, 1)`` when the variables are absent.
    """
    env = os.environ if env is None else env
    rank = _env_int(env, "RANK", 0)
    local_rank = _env_int(env, "LOCAL_RANK", 0)
    size = _env_int(env, "WORLD_SIZE", 1)
    if size < 1 or not 0 <= rank < size:
        raise ValueError(f"inconsistent torchrun environment: RANK={rank}, WORLD_SIZE={size}")
    return WorldInfo(rank=rank, local_rank=local_rank, world_size=size)


def init_distributed(
    backend: str | None = None, timeout: datetime.timedelta = datetime.timedelta(minutes=30)
) -> DistributedInfo:
    """Create the default process group when launched by torchrun, and pick this process's device.

    In a single process (``WORLD_SIZE`` unset or 1) no process group is created and the device is
    ``cuda:0`` when a GPU is visible, else ``cpu``. Calling it again after the group exists only
    reports the current placement.

    Args:
        backend: ``"nccl"`` or ``"gloo"``; default ``nccl`` when CUDA is available, else ``gloo``.
        timeout: Collective timeout (the official recipe uses 30 minutes).

    Returns:
        A :class:`DistributedInfo`.
    """
    info = world_info_from_env()
    cuda = torch.cuda.is_available()
    if cuda:
        device = torch.device("cuda", info.local_rank % torch.cuda.device_count())
        # Bind before init_process_group so NCCL creates its communicator on the right GPU.
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if info.world_size == 1:
        return DistributedInfo(0, info.local_rank, 1, device, None)
    if not dist.is_initialized():
        backend = backend or ("nccl" if cuda else "gloo")
        dist.init_process_group(
            backend=backend, init_method="env://", rank=info.rank, world_size=info.world_size, timeout=timeout
        )
    return DistributedInfo(info.rank, info.local_rank, info.world_size, device, dist.get_backend())


def is_distributed() -> bool:
    """True when a process group with more than one process is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """Global rank of this process (0 when not distributed)."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """Number of processes (1 when not distributed)."""
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """True on the process that writes files and logs (rank 0)."""
    return rank() == 0


def barrier() -> None:
    """Wait until every process reaches this point (no-op when not distributed)."""
    if is_distributed():
        dist.barrier()


def all_gather_object(obj: Any) -> list[Any]:
    """Gather one picklable object from every rank.

    Returns:
        A list of ``world_size`` objects, index = rank; ``[obj]`` when not distributed.
    """
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Return rank ``src``'s ``obj`` on every rank (the argument is ignored on other ranks)."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def _collective_device() -> torch.device:
    # NCCL only reduces CUDA tensors; gloo reduces CPU tensors.
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """Average a tensor over ranks.

    Args:
        tensor: Any shape, on any device (it is reduced on the backend's device: CUDA for NCCL).

    Returns:
        A new tensor (same shape, device and dtype) holding the mean over ranks; the input is not
        modified. Returns ``tensor`` itself when not distributed.
    """
    if not is_distributed():
        return tensor
    out = tensor.detach().to(_collective_device(), copy=True)
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return (out / dist.get_world_size()).to(tensor.device)


def average_metrics(metrics: Mapping[str, float], count: float = 1.0) -> dict[str, float]:
    """Average scalar metrics over ranks, each rank weighted by ``count`` (e.g. its sample count).

    Args:
        metrics: Name -> value; every rank must pass the same keys in the same order.
        count: Weight of this rank's values.

    Returns:
        Name -> weighted mean over ranks (a plain copy when not distributed).
    """
    if not is_distributed():
        return dict(metrics)
    keys = list(metrics)
    values = [float(metrics[k]) * count for k in keys] + [float(count)]
    # float64 so that sums of large counts stay exact.
    tensor = torch.tensor(values, dtype=torch.float64, device=_collective_device())
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    total = tensor[-1].item()
    return {k: v / total for k, v in zip(keys, tensor[:-1].tolist(), strict=False)}
