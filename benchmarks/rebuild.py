"""Rebuild the default model from an empty cache and check that it is the shipped one.

Runs ``paraspeechclap train --config configs/train/lite.yaml`` with ``PARASPEECHCLAP_CACHE`` pointing at a
new empty folder (so the Whisper conversion, every synthetic corpus, the re-pitched and re-timed clips
and the feature cache are all made again), and records the wall time, the peak resident memory of the
largest process, the rows of each training source and whether ``final/model.safetensors`` equals the
shipped weights byte for byte. Needs the ``synth`` extra, the ``flite`` program and the shared real data.

    python benchmarks/rebuild.py                   # about half an hour on 2 cores -> results/rebuild.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, add_json_arg, json_path, write_results  # noqa: E402


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {int(round(seconds % 60))} s"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(REPO / "configs" / "train" / "lite.yaml"))
    ap.add_argument("--work", default=None, help="where the cache and the run go (default: a new temporary folder)")
    add_json_arg(ap, "rebuild.json")
    args = ap.parse_args()

    from paraspeechclap.pretrained import EMBEDDED_DIR, file_checksum

    work = Path(args.work or tempfile.mkdtemp(prefix="pscl-rebuild-"))
    cache, run = work / "cache", work / "run"
    if cache.exists() and any(cache.iterdir()):
        print(f"error: {cache} is not empty; a rebuild starts from an empty cache", file=sys.stderr)
        return 2
    cmd = [sys.executable, "-m", "paraspeechclap", "train", "--config", args.config, "--set",
           f"train.output_dir={run}", "train.progress=false", "--json"]
    env = {**os.environ, "PARASPEECHCLAP_CACHE": str(cache)}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        print(proc.stderr[-4000:], file=sys.stderr)
        return proc.returncode
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # the largest process waited for
    summary = json.loads((run / "summary.json").read_text())
    checksum = file_checksum(run / "final" / "model.safetensors")
    shipped = file_checksum(EMBEDDED_DIR / "lite" / "model.safetensors")
    result = {"wall_s": round(wall, 1), "wall": _minutes(wall), "peak_rss_gb": round(peak_kb / 2**20, 2),
              "train_s": summary["seconds"], "steps": summary["steps"], "train_sources": summary["train_sources"],
              "checksum": checksum, "shipped_checksum": shipped, "identical": checksum == shipped,
              "weights_bytes": (run / "final" / "model.safetensors").stat().st_size,
              "work": str(work)}
    print(json.dumps({k: v for k, v in result.items() if k != "train_sources"}, indent=1))
    write_results(json_path(args), result)
    return 0 if result["identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
