"""The ``ray`` executor: the costly stage as a Ray Data pipeline, on one machine or a cluster.

One dataset row per pending shard flows through three stages:

1. ``decode``: CPU tasks read every clip of the shard once, measure it and resample it to 16 kHz
   (:func:`~paraspeechclap.annotate.stage.decode_and_measure`);
2. ``embed``: an actor pool, one model per actor (a GPU each when the cluster has GPUs), embeds
   the shard's waveforms in batches (:func:`~paraspeechclap.annotate.stage.embed_decoded`);
3. ``write``: CPU tasks write the stage shard atomically to the output folder, which every node
   must see (shared storage: NFS or a mounted bucket), and report the node that wrote it.

A failed task is retried and a killed actor restarted (Ray's own fault tolerance); a shard is written
whole or not at all, under a name fixed by its position, so a retried shard can only replace itself
and the finished stage has every input exactly once. Runs on a local Ray instance (``address``
None: ``ray.init()`` with this machine's CPUs) or joins a cluster (``address``: ``"auto"`` or
``"ray://host:10001"``/``"host:6379"``). Ray's progress bars and logs are silenced; the project's
bar counts clips as shards finish. ``Dataset.stats()`` goes to ``run.json``.
"""

from __future__ import annotations

import gc
import logging
import os
import pickle
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import ray  # at the top: importing this module is how the registry finds out whether the [ray] extra is there

from ..errors import InputError
from .executors import StageJob

#: CPUs a decode task and a write task ask for: fractions, so that writes and decodes still fit on a
#: node whose whole CPUs are held by an embedding actor
DECODE_CPUS, WRITE_CPUS = 0.5, 0.1
#: CPUs an embedding actor reserves (with its GPU, when the cluster has them)
EMBED_CPUS = 1
#: how often Ray retries a failed task (a killed worker process included)
TASK_RETRIES = 3


def _decode(row: dict[str, Any], min_samples: int, measured: bool = True) -> dict[str, Any]:
    from .stage import decode_and_measure

    decoded = decode_and_measure(pickle.loads(row["items"]), min_samples, measured)
    return {"shard": row["shard"], "decoded": pickle.dumps(decoded)}


class _Embedder:
    """An actor of the pool: loads the model once, embeds whole shards."""

    def __init__(self, model_spec: dict[str, Any], batch_size: int, threads: int | None) -> None:
        import torch

        from ..pretrained import load_model

        # Ray limits a worker to the CPUs it reserved (OMP_NUM_THREADS=1 here): an embedding actor is
        # meant to own its node (one per machine or GPU), so it takes the node's cores unless told otherwise
        torch.set_num_threads(threads or os.cpu_count() or 1)
        # the audio side only: the text backbone's import and load (about 2 s) would delay the first shard
        self.model = load_model(**model_spec, branches="audio")
        self.batch_size = batch_size

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        from .stage import embed_decoded

        decoded = pickle.loads(row["decoded"])
        table = embed_decoded(self.model, decoded, self.batch_size)  # releases freed memory batch by batch
        return {"shard": row["shard"], "table": pickle.dumps(table), "seconds": pickle.dumps(decoded.seconds),
                "embed_pid": os.getpid()}


def _write(row: dict[str, Any], paths: list[str]) -> dict[str, Any]:
    from pathlib import Path

    from .executors import write_stage_table

    t0 = time.perf_counter()
    table = pickle.loads(row["table"])
    write_stage_table(table, Path(paths[row["shard"]]))
    seconds = pickle.loads(row["seconds"])
    seconds["write"] = time.perf_counter() - t0
    return {"shard": row["shard"], "clips": table.num_rows, "node": ray.get_runtime_context().get_node_id(),
            "seconds": pickle.dumps(seconds), "embed_pid": row["embed_pid"]}


class RaySession:
    """Ray held for a block: what :func:`ray_session` yields.

    A session that started Ray (``owned``) does two things so that Ray's fixed costs overlap the
    caller's own work instead of adding to it:

    - it warms Ray Data up in a background thread: the first execution of a process starts Ray Data's
      internal actors (about 2 to 3 s on 2 cores), which then overlaps the caller's model loading;
      :meth:`ready` waits for it before a pipeline starts;
    - after its last job (``jobs``, counted by :meth:`job_done`) it stops Ray in a background thread:
      Ray's processes take about a second to exit, which then overlaps the caller's labelling and writing.

    :meth:`close` (the block's exit) waits for both. A session that joined a running Ray neither warms
    nor stops it.
    """

    def __init__(self, owned: bool, jobs: int | None = None) -> None:
        self.owned, self.jobs_left = owned, jobs
        self._warm = threading.Thread(target=_warm_up_data, name="ray-data-warm-up", daemon=True) if owned else None
        self._stop: threading.Thread | None = None
        if self._warm is not None:
            self._warm.start()

    def ready(self) -> None:
        """Wait for the warm-up (a pipeline started during it would race it for Ray Data's set-up)."""
        if self._warm is not None:
            self._warm.join()

    def job_done(self) -> None:
        """Count a finished job; after the last one, stop Ray in the background."""
        if self.jobs_left is not None:
            self.jobs_left -= 1
            if self.jobs_left <= 0:
                self.release()

    @property
    def stopping(self) -> bool:
        """Whether Ray's shutdown has started (after the last job, or at :meth:`close`)."""
        return self._stop is not None

    def release(self) -> None:
        """Stop Ray in a background thread (once; only a Ray this session started)."""
        if self.owned and self._stop is None:
            self.ready()
            self._stop = threading.Thread(target=ray.shutdown, name="ray-shutdown")
            self._stop.start()

    def close(self) -> None:
        """Stop Ray (when this session started it) and wait until it is down."""
        self.release()
        if self._stop is not None:
            self._stop.join()


#: the session of the enclosing :func:`ray_session` block, which jobs inside it report to
_current: RaySession | None = None


@contextmanager
def ray_session(options: dict[str, Any], jobs: int | None = None) -> Iterator[RaySession]:
    """Ray for the block: joined as it is when already running, else started (``options["address"]``
    None: a local instance with this machine's CPUs) or connected to a cluster, quietly, and stopped
    after ``jobs`` executor jobs (None: on exit; see :class:`RaySession`)."""
    global _current
    if ray.is_initialized():
        yield _current if _current is not None else RaySession(owned=False)
        return
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.WARNING)
    ray.init(address=options.get("address"), include_dashboard=False, log_to_driver=False,
             logging_level=logging.WARNING, configure_logging=True)
    _quiet_context()  # before the warm-up's execution, which would otherwise show Ray Data's bars
    session = _current = RaySession(owned=True, jobs=jobs)
    try:
        yield session
    finally:
        _current = None
        session.close()


def _warm_up_data() -> None:
    """One tiny Ray Data execution (a failure here is left for the real pipeline to report)."""
    try:
        ray.data.from_items([{"x": 0}]).map(_identity, num_cpus=DECODE_CPUS).take_all()
    except Exception as exc:  # noqa: BLE001
        logging.getLogger(__name__).debug("Ray Data warm-up failed: %s", exc)


def _identity(row: dict[str, Any]) -> dict[str, Any]:
    return row


def _quiet_context() -> None:
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False  # the project's one bar counts clips instead
    ctx.enable_operator_progress_bars = False
    ctx.print_on_execution_start = False
    ctx.issue_detectors_config.detectors = []  # memory hints about the pickled shards, not actionable here
    for name in ("ray", "ray.data"):  # Ray Data sets its own handlers on import: quiet them afterwards
        logging.getLogger(name).setLevel(logging.WARNING)


def check_capacity(workers: int, cpus: float) -> None:
    """Refuse an actor pool that would hold every CPU of the cluster: Ray would then never schedule a
    decode task, and the job would wait forever (``--workers 2`` on a 2-CPU machine did)."""
    spare = DECODE_CPUS + WRITE_CPUS
    if workers * EMBED_CPUS + spare > cpus:
        fits = int((cpus - spare) // EMBED_CPUS)
        hint = f"use --workers {fits} or fewer" if fits >= 1 else "Ray needs at least 2 CPUs here"
        raise InputError(f"--workers {workers}: the Ray cluster has {cpus:g} CPUs now; each embedding actor reserves "
                         f"{EMBED_CPUS} and decoding needs {spare:g} more, so no clip could be decoded: {hint}")


def _pipeline(job: StageJob) -> Any:
    rows = [{"shard": k, "items": pickle.dumps(list(job.shards[k]))} for k in job.pending]
    workers = int(job.options.get("workers") or 1)
    resources = ray.cluster_resources()
    check_capacity(workers, resources.get("CPU", 0))
    gpus = 1 if resources.get("GPU", 0) >= 1 and job.model_spec.get("device") != "cpu" else 0
    spec = {**job.model_spec, "device": "cuda" if gpus else "cpu"}
    ds = ray.data.from_items(rows, override_num_blocks=max(1, len(rows)))
    # retries, restarts and spreading have no named parameter yet in Ray Data (2.60): they go through
    # **ray_remote_args, which warns that it will change in 2.64 (the extra pins ray below 2.64)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated")
        ds = ds.map(_decode, fn_kwargs={"min_samples": job.model.audio_branch.min_samples, "measured": job.measured},
                    num_cpus=DECODE_CPUS,
                    max_retries=TASK_RETRIES, scheduling_strategy="SPREAD")
        ds = ds.map(_Embedder, fn_constructor_kwargs={"model_spec": spec, "batch_size": job.batch_size,
                                                      "threads": job.options.get("threads")},
                    concurrency=workers, num_cpus=EMBED_CPUS, num_gpus=gpus, max_restarts=-1, max_task_retries=-1)
        return ds.map(_write, fn_kwargs={"paths": [str(p) for p in job.paths]}, num_cpus=WRITE_CPUS,
                      max_retries=TASK_RETRIES, scheduling_strategy="SPREAD")


def run_ray(job: StageJob) -> dict[str, Any]:
    """Run the pending shards through the Ray Data pipeline (see the module docstring)."""
    t0 = time.perf_counter()
    if not job.pending:  # a finished stage: no cluster to start
        return job.stats(0.0, {}, 0, shards_by_node={}, embed_pids=[])
    with ray_session(job.options) as session:
        session.ready()
        _quiet_context()
        steps: dict[str, float] = {"decode": 0.0, "measure": 0.0, "embed": 0.0, "write": 0.0}
        nodes: dict[str, int] = {}
        pids: set[int] = set()
        clips = 0
        bar = job.progress_bar()
        ds = _pipeline(job)
        for row in ds.iter_rows():
            for s, v in pickle.loads(row["seconds"]).items():
                steps[s] = steps.get(s, 0.0) + v
            nodes[row["node"]] = nodes.get(row["node"], 0) + 1
            pids.add(int(row["embed_pid"]))
            clips += row["clips"]
            bar.update(row["clips"])
        bar.close()
        resources = ray.cluster_resources()
        stats = job.stats(time.perf_counter() - t0, steps, clips, shards_by_node=nodes, embed_pids=sorted(pids),
                          cluster={"nodes": len([n for n in ray.nodes() if n.get("Alive")]),
                                   "cpus": resources.get("CPU", 0), "gpus": resources.get("GPU", 0)},
                          ray_version=ray.__version__, ray_stats=ds.stats())
        # Drop every Ray-backed object (the dataset, its blocks' refs) while Ray is up: job_done may start
        # Ray's shutdown in a background thread, and a ref freed during it (e.g. at this function's return)
        # reaches the core worker mid-shutdown, which ends the process ("The core worker has already been
        # shutdown ... The process will exit"; seen once in seven 1,000-clip runs, after the shards were written).
        ds = row = None
        gc.collect()
        session.job_done()
        return stats
