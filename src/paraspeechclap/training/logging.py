"""Training metrics: ``metrics.jsonl`` (always), TensorBoard (optional extra), and a progress bar.

Only the main rank writes. One JSON object per line: ``{"step": ..., "time": ..., "train/loss": ...}``
with metric keys ``train/...`` and ``val/...``; retrieval recalls and UAR are fractions in [0, 1].
On resume, lines after the resumed step (written by the interrupted run after its last checkpoint)
are dropped, so the file reads like one uninterrupted run.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_text

logger = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"


def truncate_metrics(path: Path, step: int) -> None:
    """Drop lines of ``path`` whose ``step`` is greater than ``step`` (atomically)."""
    if not path.is_file():
        return
    keep = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if int(json.loads(line).get("step", 0)) <= step:
                keep.append(line)
        except (ValueError, AttributeError, TypeError):
            continue  # a torn last line of a killed run
    atomic_write_text(path, "".join(f"{line}\n" for line in keep))


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN/inf
    return value


class MetricsLogger:
    """Appends metric dicts to ``<output_dir>/metrics.jsonl`` and, if enabled, to TensorBoard.

    Args:
        output_dir: run folder.
        enabled: False on non-main ranks (every call is then a no-op).
        tensorboard: also write TensorBoard events under ``<output_dir>/tensorboard``.
        resume_step: the step a resumed run continues from (later lines are dropped).
    """

    def __init__(self, output_dir: str | Path, enabled: bool = True, tensorboard: bool = False,
                 resume_step: int | None = None) -> None:
        self.enabled = enabled
        self.path = Path(output_dir) / METRICS_FILE
        self._tb = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is not None:
            truncate_metrics(self.path, resume_step)
        elif self.path.exists():
            self.path.unlink()  # a fresh run in a reused folder
        if tensorboard:
            self._tb = _summary_writer(Path(output_dir) / "tensorboard")

    def log(self, step: int, metrics: Mapping[str, Any]) -> None:
        """Write one line (and TensorBoard scalars for the numeric values)."""
        if not self.enabled:
            return
        record = {"step": int(step), "time": round(time.time(), 3), **{k: _clean(v) for k, v in metrics.items()}}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        if self._tb is not None:
            for k, v in metrics.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                    self._tb.add_scalar(k, v, step)
            self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def _summary_writer(directory: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        logger.warning("logging.tensorboard=true but TensorBoard is not installed "
                       "(pip install 'paraspeechclap[tensorboard]'); writing metrics.jsonl only")
        return None
    return SummaryWriter(str(directory))


class Progress:
    """A tqdm bar over optimiser steps with the loss and throughput (main rank, terminals only)."""

    def __init__(self, total: int | None, initial: int, enabled: bool) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, initial=initial, unit="step", desc="training", dynamic_ncols=True,
                        disable=None if enabled else True)

    def update(self, loss: float, samples_per_s: float) -> None:
        self.bar.set_postfix(loss=f"{loss:.4f}", samples_per_s=f"{samples_per_s:.1f}", refresh=False)
        self.bar.update(1)

    def write(self, text: str) -> None:
        """A line on stderr that does not break the bar (stdout stays clean for --json)."""
        self.bar.write(text, file=sys.stderr)

    def close(self) -> None:
        self.bar.close()
