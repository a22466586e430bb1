"""Synthetic-corpus speed: clips/s per engine and for the default engine mix.

Each run calls :func:`paraspeechclap.synth.generate_corpus` into a temporary folder with
``--jobs`` worker processes, exactly as ``paraspeechclap synth`` does (pool start-up, engine
loading, rendering, FLAC writing and the manifest included). Two numbers per run:

- ``clips_per_s``: generated clips per wall-clock second (what you get on this machine now);
- ``cpu_s_per_clip``: CPU seconds per clip of the worker processes (``RUSAGE_CHILDREN``), and
  ``cpu_bound_clips_per_s = jobs / cpu_s_per_clip``, the rate on ``jobs`` otherwise idle cores.
  On a shared machine the wall rate is lower; the load average is recorded next to it.

Target (the synth task): the default mix reaches >= 5 clips/s with ``--jobs 2`` on 2 cores.

    python benchmarks/synth.py                         # per engine + default mix, --jobs 2
    python benchmarks/synth.py --mix-clips 200 --jobs 2      # -> benchmarks/results/synth.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

from paraspeechclap.synth import DEFAULT_MIX, ENGINES, generate_corpus, select_voices

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_json_arg, json_path, write_results  # noqa: E402

TARGET_CLIPS_PER_S = 5.0


def _children_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def bench_run(name: str, n: int, jobs: int, engines: list[str] | None, workdir: Path, seed: int) -> dict:
    """Generate ``n`` clips of ``engines`` (None: default mix) and time it."""
    out = workdir / name
    voices = select_voices(engines)
    cpu0, self0 = _children_cpu_s(), time.process_time()
    load = os.getloadavg()[0]
    start = time.perf_counter()
    summary = generate_corpus(out, n, seed=seed, jobs=jobs, voices=voices, overwrite=True)
    wall = time.perf_counter() - start
    cpu = (_children_cpu_s() - cpu0) + (time.process_time() - self0)
    with open(summary.manifest, encoding="utf-8") as f:
        audio_s = sum(json.loads(line)["duration"] for line in f)
    shutil.rmtree(out, ignore_errors=True)
    return {
        "run": name, "clips": n, "jobs": jobs, "per_engine": summary.per_engine,
        "wall_s": round(wall, 2), "clips_per_s": round(n / wall, 2),
        "cpu_s_per_clip": round(cpu / n, 3), "cpu_bound_clips_per_s": round(jobs * n / cpu, 2),
        "audio_s_per_clip": round(audio_s / n, 2), "loadavg_1min_before": round(load, 2),
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--mix-clips", type=int, default=200, help="clips for the default-mix run")
    ap.add_argument("--engine-clips", default="espeak=80,piper=30,kokoro=8", help="clips per engine run")
    ap.add_argument("--engines", default=",".join(ENGINES), help="engines to time alone")
    ap.add_argument("--seed", type=int, default=0)
    add_json_arg(ap, "synth.json")
    args = ap.parse_args()

    counts = {k: int(v) for k, v in (p.split("=") for p in args.engine_clips.split(","))}
    workdir = Path(tempfile.mkdtemp(prefix="synth-bench-"))
    runs = []
    try:
        for engine in [e for e in args.engines.split(",") if e]:
            runs.append(bench_run(engine, counts.get(engine, 20), args.jobs, [engine], workdir, args.seed))
        runs.append(bench_run("default mix", args.mix_clips, args.jobs, None, workdir, args.seed))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"{'run':<12} {'clips':>5} {'jobs':>4} {'clips/s':>8} {'CPU s/clip':>10} {'cpu-bound clips/s':>17} "
          f"{'audio s/clip':>12} {'load':>5}")  # fmt: skip
    for r in runs:
        print(f"{r['run']:<12} {r['clips']:>5} {r['jobs']:>4} {r['clips_per_s']:>8} {r['cpu_s_per_clip']:>10} "
              f"{r['cpu_bound_clips_per_s']:>17} {r['audio_s_per_clip']:>12} {r['loadavg_1min_before']:>5}")  # fmt: skip
    mix = runs[-1]
    print(f"default mix {DEFAULT_MIX}: {mix['clips_per_s']} clips/s wall, {mix['cpu_bound_clips_per_s']} clips/s "
          f"CPU-bound on {args.jobs} cores (target >= {TARGET_CLIPS_PER_S} with --jobs 2)")  # fmt: skip
    write_results(json_path(args), {"default_mix": DEFAULT_MIX, "cpu_count": os.cpu_count(), "runs": runs})


if __name__ == "__main__":
    main()
