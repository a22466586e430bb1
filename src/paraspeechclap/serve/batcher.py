"""Dynamic batching: clips of concurrent requests become one model batch.

Each request submits its items (decoded waveforms) and awaits one future per item. One loop task
takes the first waiting item, gathers more until the batch holds ``max_batch`` items or
``max_wait_ms`` has passed since the first, and runs the batch on the model's single worker thread
(the model is not shared between threads). While a batch runs, new items queue up and form the next
batch at once, so under load batches fill without waiting and with one client a clip waits at most
``max_wait_ms``. Items of one request may land in different batches; results do not depend on the
batch (the model's batched inference equals one clip at a time, ``tests/test_serve_api.py``).

Why not a library batcher: Ray Serve's ``serve.batch`` brings a Ray runtime (seconds to start, a
measured +20 to +42 % overhead for ``annotate`` on 2 cores) and LitServe its own server, neither of which
takes our multipart/path limits; this class is small and tested (``tests/test_serve_units.py``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Any


class DynamicBatcher:
    """Merge concurrently submitted items into batches of at most ``max_batch``.

    Args:
        run_batch: ``items -> results``, one result per item in order (e.g. ``(B, D)`` rows); runs
            on ``executor``. An exception fails every item of that batch.
        max_batch: the largest batch.
        max_wait_ms: how long a batch waits for more items after its first.
        executor: where ``run_batch`` runs (one thread: the model's).
        on_batch: called with ``(size, seconds)`` after each batch (metrics).
    """

    def __init__(self, run_batch: Callable[[list[Any]], Sequence[Any]], max_batch: int, max_wait_ms: float,
                 executor: Executor, on_batch: Callable[[int, float], None] | None = None) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self.run_batch = run_batch
        self.max_batch = max_batch
        self.max_wait = max(0.0, max_wait_ms) / 1000.0
        self.executor = executor
        self.on_batch = on_batch
        self._queue: asyncio.Queue[tuple[Any, asyncio.Future]] | None = None
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        """Start the loop task (call from the running event loop)."""
        self._queue = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        """Stop the loop; items still queued fail with ``RuntimeError`` (nothing waits for them after
        a graceful shutdown, which lets requests in flight finish first)."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        while self._queue is not None and not self._queue.empty():
            _, fut = self._queue.get_nowait()
            if not fut.done():
                fut.set_exception(RuntimeError("the service is shutting down"))

    async def submit(self, items: Sequence[Any]) -> list[Any]:
        """Queue ``items`` and wait for their results, in order."""
        if self._queue is None:
            raise RuntimeError("the batcher is not started")
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in items]
        for item, fut in zip(items, futures):
            self._queue.put_nowait((item, fut))
        return list(await asyncio.gather(*futures))

    async def _gather(self) -> list[tuple[Any, asyncio.Future]]:
        """The next batch: the first waiting item and whatever joins within ``max_wait``."""
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        batch = [await self._queue.get()]
        deadline = loop.time() + self.max_wait
        while len(batch) < self.max_batch:
            if not self._queue.empty():
                batch.append(self._queue.get_nowait())
                continue
            left = deadline - loop.time()
            if left <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), left))
            except asyncio.TimeoutError:
                break
        return [(item, fut) for item, fut in batch if not fut.done()]  # a cancelled request's items drop out

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._gather()
            if not batch:
                continue
            start = time.perf_counter()
            try:
                results = await loop.run_in_executor(self.executor, self.run_batch, [item for item, _ in batch])
            except Exception as exc:  # noqa: BLE001 - handed to the waiting requests, the loop goes on
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            for (_, fut), result in zip(batch, results):
                if not fut.done():
                    fut.set_result(result)
            if self.on_batch is not None:
                self.on_batch(len(batch), time.perf_counter() - start)
