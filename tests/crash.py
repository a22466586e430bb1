"""Crash a training run from outside, for the resume tests: start it in a process group of its
own, wait until it has reached a point (a complete checkpoint, a metrics line), then SIGKILL every
process of the run at once.

Waiting for what the run writes instead of sleeping makes the kill point independent of the
machine's speed; the tests leave many steps between that point and the end of the run, so the kill
lands long before the run could finish.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from paraspeechclap.training.checkpoint import is_valid_checkpoint

POLL_S = 0.005


def start_run(cmd: list[str], cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    """Start ``cmd`` as the leader of a new session (so of a new process group), output to ``log``."""
    with open(log, "wb") as out:
        return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def checkpoint_complete(checkpoints: Path, step: int) -> Callable[[], bool]:
    """Condition: ``checkpoints/step_<step>.pt`` and its sidecar are in place."""
    return lambda: is_valid_checkpoint(checkpoints / f"step_{step:08d}.pt")


def metrics_reached(metrics: Path, step: int) -> Callable[[], bool]:
    """Condition: ``metrics.jsonl`` has a complete line of ``step`` or later."""

    def reached() -> bool:
        try:
            lines = metrics.read_text().split("\n")[:-1]  # the last piece may be a line being written
        except OSError:
            return False
        return any(json.loads(line).get("step", -1) >= step for line in lines if line.strip())

    return reached


def wait_until(proc: subprocess.Popen, condition: Callable[[], bool], what: str, log: Path,
               timeout_s: float = 300.0) -> None:
    """Return once ``condition()`` holds; fail (killing the run) if the run ends first or time runs out."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended (status {proc.returncode}) before {what}: "
                                 f"{log.read_text(errors='replace')[-2000:]}")
        if time.monotonic() > deadline:
            kill_run(proc)
            raise AssertionError(f"no {what} after {timeout_s:.0f} s: {log.read_text(errors='replace')[-2000:]}")
        time.sleep(POLL_S)


def _children(pid: int) -> list[int]:
    """Child pids of ``pid`` (read from /proc: Linux only)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # the process ended while we looked
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:  # the field after the state is the parent pid
            out.append(int(entry.name))
    return out


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        kids = _children(todo.pop())
        found += kids
        todo += kids
    return found


def _gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")  # a zombie writes nothing more


def kill_run(proc: subprocess.Popen, timeout_s: float = 60.0) -> int:
    """SIGKILL the run's process group and the groups of its descendants (torchrun starts each
    worker in a session of its own), wait until all are gone; return the leader's status."""
    members = _descendants(proc.pid)
    groups = {proc.pid}
    for pid in members:
        try:
            groups.add(os.getpgid(pid))
        except ProcessLookupError:
            pass
    groups.discard(os.getpgrp())  # never the test's own group (cannot happen: the run has its own session)
    for group in groups:
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass
    status = proc.wait(timeout=timeout_s)
    deadline = time.monotonic() + timeout_s
    while not all(_gone(pid) for pid in members):
        if time.monotonic() > deadline:
            raise AssertionError(f"processes {members} survived SIGKILL")
        time.sleep(0.05)
    return status
