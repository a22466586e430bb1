"""Executors of the costly stage: who decodes, measures and embeds the pending shards.

An executor is a function ``(job: StageJob) -> stats`` that writes ``job.paths[k]`` (atomically, a
:func:`~paraspeechclap.annotate.stage.stage_schema` table) for every shard index ``k`` in
``job.pending`` and returns its statistics for ``run.json`` (at least ``wall_s``, ``shards_total``,
``shards_done_before``, ``shards_written`` and ``stages``). Registered by name in :data:`EXECUTORS`
as ``"module:function"``, imported on first use, so ``local`` never imports Ray.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError

#: name -> "module:function" (relative to this package)
EXECUTORS: dict[str, str] = {"local": ".executors:run_local", "ray": ".ray_executor:run_ray"}
#: name -> "module:function" of a context manager ``(options) -> ...`` that holds the executor's runtime
#: (a Ray instance or connection) for a block; executors without one run without
SESSIONS: dict[str, str] = {"ray": ".ray_executor:ray_session"}


@dataclass
class StageJob:
    """What an executor is given.

    Attributes:
        model: the loaded model (the local executor embeds with it).
        model_spec: how to load the same model elsewhere (``load_model`` keywords), for workers.
        shards: every shard's clips (``shards[k]`` is written to ``paths[k]``).
        pending: the shard indices still to write.
        paths: every shard's stage file.
        batch_size: clips per forward pass.
        progress: show the project's progress bar.
        options: executor-specific settings (``ray``: ``address``, ``workers``).
        measured: take the DSP measurements (False for ``embed`` and ``index``: their columns stay null).
    """

    model: Any
    model_spec: dict[str, Any]
    shards: Sequence[Sequence[Any]]
    pending: Sequence[int]
    paths: Sequence[Path]
    batch_size: int = 16
    progress: bool = True
    options: dict[str, Any] = field(default_factory=dict)
    measured: bool = True

    def progress_bar(self) -> Any:
        from tqdm.auto import tqdm

        todo = set(self.pending)
        done = sum(len(s) for k, s in enumerate(self.shards) if k not in todo)
        return tqdm(total=sum(len(s) for s in self.shards), initial=done, unit="clip",
                    desc="annotate" if self.measured else "embed",
                    disable=not self.progress, dynamic_ncols=True)

    def stats(self, wall: float, steps: dict[str, float], clips: int, **extra: Any) -> dict[str, Any]:
        """The common statistics of ``run.json``'s ``executor`` block."""
        return {"wall_s": round(wall, 3), "shards_total": len(self.shards),
                "shards_done_before": len(self.shards) - len(self.pending), "shards_written": len(self.pending),
                "clips_processed": clips,
                "stages": {s: {"seconds": round(v, 3), "clips_per_s": round(clips / v, 2) if v > 0 else None}
                           for s, v in steps.items()}, **extra}


def get_executor(name: str) -> Callable[[StageJob], dict[str, Any]]:
    """The executor registered as ``name``.

    Raises:
        InputError: unknown name, or its optional dependency is missing (the message says which extra).
    """
    if name not in EXECUTORS:
        raise InputError(f"unknown executor {name!r}; known: {', '.join(EXECUTORS)}")
    return _resolve(name, EXECUTORS[name])


def executor_session(name: str, options: dict[str, Any], jobs: int | None = None) -> AbstractContextManager[Any]:
    """A context manager holding executor ``name``'s runtime for a block (for ``ray``: Ray started, or
    joined, on entry and stopped if it was started there); the executor's jobs inside the block use it
    instead of starting their own, so the start-up cost can overlap other work (the CLI loads the model
    meanwhile) and is paid once for several jobs. With ``jobs``, the runtime is stopped in the
    background after that many jobs, so that its shutdown overlaps the rest of the block (the CLI's
    commands run one job, then label or write); the block's exit waits for it.

    Raises:
        InputError: as :func:`get_executor`.
    """
    get_executor(name)
    if name not in SESSIONS:
        return nullcontext()
    return _resolve(name, SESSIONS[name])(options, jobs)


def _resolve(name: str, spec: str) -> Any:
    module, func = spec.split(":")
    try:
        return getattr(importlib.import_module(module, __package__), func)
    except ImportError as exc:
        raise InputError(f"--executor {name} needs {exc.name}: pip install 'paraspeechclap[{name}]'") from None


def write_stage_table(table: Any, path: Path) -> None:
    """Write a stage shard atomically (a reader sees no file or the whole shard)."""
    import pyarrow.parquet as pq

    from ..atomic import atomic_path

    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def run_local(job: StageJob) -> dict[str, Any]:
    """Every pending shard in turn, in this process: decode and measure on the CPU, embed on the
    model's device. A shard is written when complete, so an interrupted run loses at most one."""
    from .stage import STEPS, run_shard

    t0 = time.perf_counter()
    steps = {s: 0.0 for s in (*STEPS, "write")}
    bar = job.progress_bar()
    clips = 0
    for k in job.pending:
        table, seconds = run_shard(job.model, job.shards[k], job.batch_size, job.measured)
        for s, v in seconds.items():
            steps[s] += v
        t1 = time.perf_counter()
        write_stage_table(table, job.paths[k])
        steps["write"] += time.perf_counter() - t1
        clips += len(job.shards[k])
        bar.update(len(job.shards[k]))
    bar.close()
    return job.stats(time.perf_counter() - t0, steps, clips)
