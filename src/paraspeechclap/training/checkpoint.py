"""Atomic training checkpoints with retention, validity checks and RNG state for exact resumption.

Layout of a checkpoint directory (written by the main rank only; other ranks wait at a barrier)::

    step_00001500.pt      torch.save of the training state (model, optimizer, sampler, RNG, ...)
    step_00001500.json    sidecar written *after* the .pt is in place: step, byte size, sha256

A checkpoint is *valid* when its sidecar parses, the ``.pt`` has the recorded size, and the
``.pt`` opens as a zip archive (``torch.save``'s format; truncation destroys its trailing
central directory). Each file is written to a hidden temp file in the same directory, flushed,
``fsync``-ed and ``os.replace``-d into place, so a crash never leaves a half-written file under a
final name; a crash between the two renames leaves a ``.pt`` without sidecar, which is ignored.

State is loaded with ``weights_only=True``: only tensors, numbers, strings and containers.
:func:`capture_rng_state` therefore stores NumPy's state as a tensor, not an array.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import random
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from ..atomic import atomic_path, atomic_write_json
from ..errors import CheckpointError

__all__ = [
    "atomic_torch_save",
    "capture_rng_state",
    "find_latest_valid_checkpoint",
    "is_valid_checkpoint",
    "list_checkpoints",
    "load_training_checkpoint",
    "restore_rng_state",
    "save_training_checkpoint",
]

logger = logging.getLogger(__name__)

_NAME = re.compile(r"^step_(\d+)\.pt$")
_FORMAT_VERSION = 1


class _HashingWriter:
    """File-like wrapper that hashes and counts what ``torch.save`` writes through it."""

    def __init__(self, f: IO[bytes]) -> None:
        self.f = f
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.size += len(data)
        return self.f.write(data)

    def flush(self) -> None:
        self.f.flush()


def atomic_torch_save(obj: Any, path: str | os.PathLike[str]) -> tuple[int, str]:
    """``torch.save(obj)`` to ``path`` atomically.

    Args:
        obj: Anything ``torch.save`` accepts.
        path: Destination; an existing file is replaced only once the new one is complete.

    Returns:
        ``(size_in_bytes, sha256_hex)`` of the written file.
    """
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        writer = _HashingWriter(f)
        torch.save(obj, writer)  # type: ignore[arg-type]  # torch only calls .write()
    return writer.size, writer.sha256.hexdigest()


def _checkpoint_path(directory: Path, step: int) -> Path:
    return directory / f"step_{step:08d}.pt"


def list_checkpoints(directory: str | os.PathLike[str]) -> list[tuple[int, Path]]:
    """``(step, path)`` of every ``step_*.pt`` file in ``directory``, newest first (unvalidated)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _NAME.match(p.name))]
    return sorted(found, reverse=True)


def is_valid_checkpoint(path: str | os.PathLike[str], verify_hash: bool = False) -> bool:
    """Check a checkpoint against its sidecar without unpickling it.

    Args:
        path: The ``.pt`` file.
        verify_hash: Also recompute the sha256 (reads the whole file).

    Returns:
        True when the sidecar exists and parses, the size matches, the file is a readable zip
        archive and (optionally) the hash matches.
    """
    path = Path(path)
    try:
        meta = json.loads(path.with_suffix(".json").read_text())
        if path.stat().st_size != meta["bytes"]:
            return False
        with zipfile.ZipFile(path) as zf:  # reads only the central directory
            zf.infolist()
        if verify_hash:
            digest = hashlib.sha256()
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
            return digest.hexdigest() == meta["sha256"]
        return True
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile):
        return False


def save_training_checkpoint(
    directory: str | os.PathLike[str], step: int, state: Mapping[str, Any], keep_last: int | None = 3
) -> Path:
    """Write ``state`` as ``step_<step>.pt`` (+ sidecar) atomically and prune old checkpoints.

    Call on the main rank only, then ``distributed.barrier()``.

    Args:
        directory: Checkpoint directory (created if missing).
        step: Optimizer step count; orders checkpoints.
        state: ``weights_only``-loadable state, e.g. ``{"model": ..., "optimizer": ...,
            "rng": capture_rng_state(), ...}``.
        keep_last: Keep this many newest checkpoints (``None`` keeps all).

    Returns:
        Path of the ``.pt`` file.
    """
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if keep_last is not None and keep_last < 1:
        raise ValueError(f"keep_last must be >= 1 or None, got {keep_last}")
    directory = Path(directory)
    path = _checkpoint_path(directory, step)
    # A stale sidecar of an older run must never vouch for the new file while it is written.
    with contextlib.suppress(FileNotFoundError):
        path.with_suffix(".json").unlink()
    size, sha256 = atomic_torch_save(dict(state), path)
    meta = {"format": _FORMAT_VERSION, "step": step, "file": path.name, "bytes": size, "sha256": sha256}
    atomic_write_json(path.with_suffix(".json"), meta)
    if keep_last is not None:
        _prune(directory, keep_last)
    return path


def _prune(directory: Path, keep_last: int) -> None:
    # Temp files of writes that crashed (only the main rank writes here, and not concurrently).
    for tmp in directory.glob(".step_*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    checkpoints = list_checkpoints(directory)
    valid_steps = [step for step, path in checkpoints if is_valid_checkpoint(path)]
    if len(valid_steps) < keep_last:
        return
    # Everything older than the keep_last-th newest *valid* checkpoint goes, invalid files included;
    # invalid files never count towards keep_last, so they cannot push out a good checkpoint.
    cutoff = valid_steps[keep_last - 1]
    for _, old in (c for c in checkpoints if c[0] < cutoff):
        # Sidecar first: a crash in between leaves an orphan .pt that is simply invalid.
        for p in (old.with_suffix(".json"), old):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()


def find_latest_valid_checkpoint(directory: str | os.PathLike[str], verify_hash: bool = False) -> Path | None:
    """Newest checkpoint in ``directory`` that passes :func:`is_valid_checkpoint`, or ``None``."""
    for _step, path in list_checkpoints(directory):
        if is_valid_checkpoint(path, verify_hash=verify_hash):
            return path
        logger.warning("skipping incomplete or corrupt checkpoint %s", path)
    return None


def load_training_checkpoint(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu", weights_only: bool = True
) -> dict[str, Any]:
    """Load a state written by :func:`save_training_checkpoint`.

    Raises:
        CheckpointError: The file is missing, truncated or not a training checkpoint.
    """
    path = Path(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=weights_only)
    except Exception as exc:  # torch raises RuntimeError/UnpicklingError/EOFError/... here
        raise CheckpointError(f"{path}: cannot load training checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not a training checkpoint (got {type(state).__name__}, expected dict)")
    return state


def capture_rng_state() -> dict[str, Any]:
    """Snapshot this process's RNGs: Python ``random``, NumPy global, torch CPU and all CUDA devices.

    Under DDP each rank has its own state (seeds are ``seed + rank``): gather them with
    ``distributed.all_gather_object(capture_rng_state())`` and restore entry ``rank``.
    """
    np_state = np.random.get_state(legacy=False)
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "bit_generator": np_state["bit_generator"],
            # As a tensor so the checkpoint loads with weights_only=True.
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Restore RNGs captured by :func:`capture_rng_state` (CUDA only where devices exist)."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np_state = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": np_state["bit_generator"],
            "state": {"key": np.asarray(np_state["key"], dtype=np.uint32), "pos": int(np_state["pos"])},
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        }
    )
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = list(state["cuda"])[: torch.cuda.device_count()]
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda_states])
