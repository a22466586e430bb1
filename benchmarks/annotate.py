"""Corpus annotation speed and memory: ``paraspeechclap annotate`` on shared real clips.

Each size runs in a fresh process (``annotate`` end to end: model loading, the stage, labelling and
writing), which reports its wall time, its own peak resident memory and ``run.json``'s per-stage
statistics. Peak memory at two sizes shows whether the job streams (it should not grow with the
corpus); the per-stage rates give a scaling estimate: the embed stage parallelises over machines, the
labelling pass (over every shard, for the centring means) and model loading do not.

Every size repeats the same ``--base`` clips (1,000 shared real clips by default) in shards of
``--shard-size`` (250, which divides them), so the larger corpus is made of the same shards as the
smaller, only more of them: a peak that grew with size would be memory growing with the length of the
job (not streaming), not a new grouping of long clips into one batch. (Peak RSS used to grow, from
1.2 to 1.8 GB at 4,000 clips, and to vary by 20 % between runs of the same size, until the stage
handed freed memory back to the system between batches: :func:`~paraspeechclap.annotate.stage.
embed_releasing`.)

The Ray executor is measured on the first size too, on a local Ray instance with this machine's CPUs,
``ray.init`` and the actors' model loading included: its overhead over the local executor. On a small
shared machine one run of either varies by several seconds, so the two run as ``--pairs`` adjacent
pairs (local, then Ray), and the overhead reported is the median of the pairs' ratios.

    python benchmarks/annotate.py                         # 1,000 and 4,000 clips -> results/annotate.json
    python benchmarks/annotate.py --sizes 200 --executors local --json /tmp/annotate.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, add_json_arg, json_path, write_results


def child(n: int, base: int, out: Path, precision: str, threads: int, executor: str, shard_size: int) -> None:
    """Annotate ``n`` rows cycling through the first ``base`` shared real clips into ``out``; print wall
    time and own peak RSS."""
    import resource

    import torch

    torch.set_num_threads(threads)
    from paraspeechclap.cli.main import main as cli
    from paraspeechclap.data.splits import load_shared_manifest

    manifest = load_shared_manifest(batches="all")
    if len(manifest) < base:
        raise SystemExit(f"only {len(manifest)} shared clips, asked for {base}")
    # every size cycles through the same first ``base`` clips, so sizes differ in count only (the
    # corpora differ in clip length and rate, which would otherwise show up as a memory difference)
    rows = [{**manifest[i % base], "relative_audio_path": str(manifest.audio_path(i % base)), "source": "shared"}
            for i in range(n)]
    src = out.parent / f"input-{n}.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    t0 = time.perf_counter()
    rc = cli(["annotate", "--manifest", str(src), "--out", str(out), "--precision", precision, "--no-progress",
              "--executor", executor, "--shard-size", str(shard_size)])
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    print(json.dumps({"rc": rc, "wall_s": round(wall, 2), "peak_rss_gb": round(peak, 3)}))


def measure_size(n: int, base: int, precision: str, threads: int, work: Path, executor: str = "local",
                 shard_size: int = 250) -> dict[str, Any]:
    out = Path(tempfile.mkdtemp(prefix=f"out-{executor}-{n}-", dir=work))  # a fresh folder: a finished one does nothing
    cmd = [sys.executable, __file__, "--child", str(n), "--base", str(base), "--child-out", str(out), "--precision",
           precision,
           "--threads", str(threads), "--executor", executor, "--shard-size", str(shard_size)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, check=False)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    run = json.loads((out / "run.json").read_text())
    return {"clips": n, "executor": executor, **res, "annotated": run["counts"]["annotated"],
            "errors": run["counts"]["errors"],
            "timings_s": run["timings_s"], "stages": run["executor"]["stages"],
            "clips_per_s": round(n / res["wall_s"], 2)}


def scaling(row: dict[str, Any], machines: list[int]) -> dict[str, float]:
    """Wall time estimate on N machines like this one: the stage divides by N, the rest does not."""
    stage = row["timings_s"]["stage"]
    serial = row["wall_s"] - stage
    return {str(m): round(serial + stage / m, 1) for m in machines}


def _print(r: dict[str, Any]) -> None:
    print(f"{r['executor']:5s} {r['clips']:6d} clips: {r['wall_s']:8.1f} s wall, {r['clips_per_s']:6.2f} clips/s, "
          f"peak RSS {r['peak_rss_gb']:.2f} GB; stages "
          + ", ".join(f"{k} {v['clips_per_s']}/s" for k, v in r["stages"].items()), flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000,4000")
    ap.add_argument("--precision", default="fp32", choices=["auto", "fp32", "bf16"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--executors", default="local,ray", help="ray is measured on the first size only")
    ap.add_argument("--pairs", type=int, default=3, help="adjacent local/ray runs at the first size (default 3)")
    ap.add_argument("--executor", default="local", help=argparse.SUPPRESS)
    ap.add_argument("--base", type=int, default=None, help="distinct clips (default: the smallest size); larger sizes "
                    "cycle through them")
    ap.add_argument("--shard-size", type=int, default=250, help="clips per shard (default 250: divides --base)")
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--child-out", default=None, help=argparse.SUPPRESS)
    add_json_arg(ap, "annotate.json")
    args = ap.parse_args()
    if args.child is not None:
        child(args.child, args.base, Path(args.child_out), args.precision, args.threads, args.executor,
              args.shard_size)
        return 0
    os.environ.setdefault("TQDM_DISABLE", "1")
    rows, sizes = [], list(map(int, args.sizes.split(",")))
    base = args.base or min(sizes)
    with tempfile.TemporaryDirectory(prefix="pscl-annotate-") as work:
        for n in sizes:
            rows.append(measure_size(n, base, args.precision, args.threads, Path(work), shard_size=args.shard_size))
            _print(rows[-1])
        pairs = []
        if "ray" in args.executors.split(","):
            for _ in range(args.pairs):
                pair = [measure_size(sizes[0], base, args.precision, args.threads, Path(work), ex, args.shard_size)
                        for ex in ("local", "ray")]
                for r in pair:
                    _print(r)
                pairs.append(pair)
    result = {"precision": args.precision, "threads": args.threads, "distinct_clips": base,
              "shard_size": args.shard_size, "sizes": rows,
              "rss_ratio": round(rows[-1]["peak_rss_gb"] / rows[0]["peak_rss_gb"], 3) if len(rows) > 1 else None,
              "scaling_estimate_s": scaling(rows[-1], [1, 2, 4, 8, 16])}
    if pairs:
        overheads = [ray["wall_s"] / local["wall_s"] - 1 for local, ray in pairs]
        median = len(pairs) // 2  # the middle pair by overhead (an odd --pairs gives the true median)
        local_row, ray_row = sorted(pairs, key=lambda p: p[1]["wall_s"] / p[0]["wall_s"])[median]
        result["ray"] = ray_row
        result["ray_pair_local"] = local_row
        result["ray_overhead"] = round(ray_row["wall_s"] / local_row["wall_s"] - 1, 3)
        result["ray_overhead_pairs"] = [round(o, 3) for o in overheads]
        result["ray_pairs_wall_s"] = [{"local": local["wall_s"], "ray": ray["wall_s"]} for local, ray in pairs]
    print(f"peak RSS ratio largest/smallest: {result['rss_ratio']}; Ray overhead (median of pairs): "
          f"{result.get('ray_overhead')} of {result.get('ray_overhead_pairs')}; "
          f"estimated wall on N machines ({rows[-1]['clips']} clips): {result['scaling_estimate_s']}")
    write_results(json_path(args), result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
