"""benchmarks/merge_probe.py: the compute arithmetic, and merged states probed beside loco_probe's full-rate ones."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest


@pytest.fixture(scope="module")
def mp(benchmark_module: Any) -> Any:
    return benchmark_module("merge_probe")


def test_blocks_after_the_merge_cost_half(mp: Any) -> None:
    assert mp.block_equivalents((1, 2, 3, 4), None) == 4.0
    assert mp.block_equivalents((3, 4, 5), 1) == 1 + 4 / 2  # block 1 full, blocks 2-5 on half the frames
    assert mp.block_equivalents((3, 4, 5), 0) == 5 / 2
    assert mp.block_equivalents((1, 2, 3, 4), 2) == 2 + 2 / 2
    assert mp.block_equivalents((1, 2), 2) == 2.0  # nothing runs after the merge
    assert mp.block_equivalents((3, 4, 5, 6), 1, factor=3) == pytest.approx(1 + 5 / 3)


def test_merged_states_keep_the_front_end_row_and_are_cached(mp: Any, monkeypatch: Any, tmp_path: Path) -> None:
    n = 4
    base = {"states": np.random.default_rng(0).standard_normal((n, 7, 2, 8)).astype(np.float32),
            "label": np.array(["angry"] * n)}
    calls = []

    def fake_merged(after: int) -> np.ndarray:
        calls.append(after)
        return np.full((n, 6, 2, 8), float(after), np.float32)

    monkeypatch.setattr(mp.loco_probe, "extract", lambda cache: dict(base))
    monkeypatch.setattr(mp, "merged_states", fake_merged)
    data = mp.extract(tmp_path / "merged.npz", tmp_path / "probe.npz")
    assert calls == [0, 1, 2]
    for after in (0, 1, 2):
        got = data[f"merged_{after}"]
        assert got.shape == (n, 7, 2, 8)
        np.testing.assert_array_equal(got[:, 0], base["states"][:, 0])  # the front end: loco_probe's own
        assert (got[:, 1:] == after).all()
    again = mp.extract(tmp_path / "merged.npz", tmp_path / "probe.npz")  # from the cache: nothing recomputed
    assert calls == [0, 1, 2] and all(np.array_equal(again[k], data[k]) for k in data)


def test_the_probed_clips_are_loco_probe_s(mp: Any, shared_data: Path) -> None:
    """The clip selection both probes share: the committed results were computed on these clips."""
    loco_probe = mp.loco_probe
    clips = list(loco_probe.labelled_clips())
    assert {label for _, _, label in clips} == set(loco_probe.CLASSES)
    assert {row["source"] for _, row, _ in clips} == set(loco_probe.SUMMARY_CORPORA + loco_probe.TRAIN_ONLY)
    assert all(path.is_file() for path, _, _ in clips[:20])
    committed = json.loads((Path(__file__).resolve().parents[1] / "benchmarks/results/loco_probe.json").read_text())
    assert len(clips) == committed["clips"]
