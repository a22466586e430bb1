"""benchmarks/inference.py: rows of several fresh processes reported as their median."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(scope="module")
def inference(benchmark_module: Any) -> Any:
    return benchmark_module("inference")


def _row(mode: str, rtf: float, batches: list[int]) -> dict[str, Any]:
    return {"clip_s": 5.0, "mode": mode, "clips_per_s": rtf / 5.0, "rtf_x": rtf, "batches": batches}


def test_each_row_is_the_median_over_the_processes(inference: Any) -> None:
    runs = [[_row("batched", 110.0, [8]), _row("one-at-a-time", 95.0, [1])],
            [_row("batched", 100.0, [8, 8]), _row("one-at-a-time", 81.0, [1])],
            [_row("batched", 120.0, [8]), _row("one-at-a-time", 104.0, [1])]]
    got = inference.median_rows(runs)
    assert [r["rtf_x"] for r in got] == [110.0, 95.0]
    assert [r["clips_per_s"] for r in got] == [22.0, 19.0]
    assert got[1]["rtf_x_runs"] == [95.0, 81.0, 104.0]
    assert got[0]["batches"] == [8]  # the rest of the row is the first process's
    two = inference.median_rows(runs[:2])  # an even count: the mean of the middle two
    assert two[1]["rtf_x"] == pytest.approx(88.0)


def test_processes_that_timed_different_rows_are_refused(inference: Any) -> None:
    with pytest.raises(ValueError, match="different rows"):
        inference.median_rows([[_row("batched", 1.0, [8])], [_row("one-at-a-time", 1.0, [1])]])
