"""Atomic checkpoint writes, retention, latest-valid selection and RNG state round trips."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from paraspeechclap.errors import CheckpointError
from paraspeechclap.training import checkpoint as ckpt


def _state(step: int) -> dict:
    return {"step": step, "model": {"w": torch.full((4, 4), float(step))}, "meta": {"name": "tiny", "lr": 1e-5}}


def _files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_save_load_round_trip(tmp_path: Path) -> None:
    path = ckpt.save_training_checkpoint(tmp_path, 7, _state(7))
    assert path == tmp_path / "step_00000007.pt"
    assert _files(tmp_path) == ["step_00000007.json", "step_00000007.pt"]
    meta = json.loads((tmp_path / "step_00000007.json").read_text())
    assert meta["step"] == 7 and meta["bytes"] == path.stat().st_size
    loaded = ckpt.load_training_checkpoint(path)
    assert loaded["step"] == 7 and loaded["meta"] == {"name": "tiny", "lr": 1e-5}
    assert torch.equal(loaded["model"]["w"], torch.full((4, 4), 7.0))
    assert ckpt.is_valid_checkpoint(path, verify_hash=True)


def test_failed_write_leaves_previous_file_and_no_temp(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "state.pt"
    ckpt.atomic_torch_save({"version": 1}, target)
    before = target.read_bytes()

    def crashing_save(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 partial bytes")  # a half-written zip header, then the process "dies"
        raise RuntimeError("disk full")

    monkeypatch.setattr(ckpt.torch, "save", crashing_save)
    with pytest.raises(RuntimeError, match="disk full"):
        ckpt.atomic_torch_save({"version": 2}, target)
    assert target.read_bytes() == before
    assert _files(tmp_path) == ["state.pt"]  # the temp file was removed


def test_crash_during_checkpoint_is_never_selected(tmp_path: Path, monkeypatch) -> None:
    ckpt.save_training_checkpoint(tmp_path, 1, _state(1))
    monkeypatch.setattr(ckpt.torch, "save", lambda obj, f, *a, **k: (f.write(b"junk"), 1 / 0))
    with pytest.raises(ZeroDivisionError):
        ckpt.save_training_checkpoint(tmp_path, 2, _state(2))
    assert not (tmp_path / "step_00000002.pt").exists()
    assert ckpt.find_latest_valid_checkpoint(tmp_path) == tmp_path / "step_00000001.pt"


def test_keeps_last_k(tmp_path: Path) -> None:
    for step in (100, 200, 300, 400, 500):
        ckpt.save_training_checkpoint(tmp_path, step, _state(step), keep_last=2)
    assert _files(tmp_path) == ["step_00000400.json", "step_00000400.pt", "step_00000500.json", "step_00000500.pt"]
    ckpt.save_training_checkpoint(tmp_path, 600, _state(600), keep_last=None)
    assert len(list(tmp_path.glob("*.pt"))) == 3


def test_latest_valid_skips_truncated_and_orphaned_files(tmp_path: Path) -> None:
    assert ckpt.find_latest_valid_checkpoint(tmp_path / "missing") is None
    for step in (10, 20, 30):
        ckpt.save_training_checkpoint(tmp_path, step, _state(step), keep_last=None)
    newest = tmp_path / "step_00000030.pt"
    data = newest.read_bytes()
    newest.write_bytes(data[: len(data) // 2])  # truncated, e.g. by a full disk
    assert not ckpt.is_valid_checkpoint(newest)
    with pytest.raises(CheckpointError, match="step_00000030.pt"):
        ckpt.load_training_checkpoint(newest)
    # A .pt without sidecar (crash between the two renames) is skipped too.
    (tmp_path / "step_00000020.json").unlink()
    # A .pt at a higher step that is not a zip at all, with a sidecar claiming the right size.
    bogus = tmp_path / "step_00000040.pt"
    bogus.write_bytes(b"x" * 64)
    (tmp_path / "step_00000040.json").write_text(json.dumps({"step": 40, "bytes": 64, "sha256": "0"}))
    assert ckpt.find_latest_valid_checkpoint(tmp_path) == tmp_path / "step_00000010.pt"


def test_verify_hash_detects_same_size_corruption(tmp_path: Path) -> None:
    path = ckpt.save_training_checkpoint(tmp_path, 1, _state(1))
    data = bytearray(path.read_bytes())
    # Flip one byte inside the tensor payload (before the zip directory at the end).
    data[len(data) // 3] ^= 0xFF
    path.write_bytes(bytes(data))
    assert ckpt.is_valid_checkpoint(path, verify_hash=False)  # cheap check cannot see it
    assert not ckpt.is_valid_checkpoint(path, verify_hash=True)
    assert ckpt.find_latest_valid_checkpoint(tmp_path, verify_hash=True) is None


def test_retention_ignores_invalid_newer_files(tmp_path: Path) -> None:
    ckpt.save_training_checkpoint(tmp_path, 1, _state(1), keep_last=1)
    # A stale, invalid file from a crashed run at a higher step must not count as "kept".
    (tmp_path / "step_00000009.pt").write_bytes(b"partial")
    ckpt.save_training_checkpoint(tmp_path, 2, _state(2), keep_last=1)
    assert ckpt.find_latest_valid_checkpoint(tmp_path) == tmp_path / "step_00000002.pt"
    assert not (tmp_path / "step_00000001.pt").exists()


def test_load_rejects_non_checkpoints(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="garbage.pt"):
        ckpt.load_training_checkpoint(garbage)
    tensor_only = tmp_path / "tensor.pt"
    torch.save(torch.zeros(2), tensor_only)
    with pytest.raises(CheckpointError, match="expected dict"):
        ckpt.load_training_checkpoint(tensor_only)


def _draw() -> tuple:
    return (
        [random.random() for _ in range(3)],
        np.random.rand(3).tolist(),
        np.random.randn(3).tolist(),  # exercises NumPy's cached-Gaussian state
        torch.rand(3).tolist(),
    )


def test_rng_state_round_trip_through_checkpoint(tmp_path: Path) -> None:
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    _draw()  # an odd number of Gaussians leaves one cached in NumPy's legacy state
    state = ckpt.capture_rng_state()
    assert state["numpy"]["has_gauss"] == 1
    expected = _draw()
    path = ckpt.save_training_checkpoint(tmp_path, 5, {"rng": state})  # loaded with weights_only=True
    random.seed(99)
    np.random.seed(99)
    torch.manual_seed(99)
    assert _draw() != expected
    ckpt.restore_rng_state(ckpt.load_training_checkpoint(path)["rng"])
    assert _draw() == expected
