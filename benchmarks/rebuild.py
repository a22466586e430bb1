"""Rebuild the default model from an empty cache and check that it is the shipped one.

Runs ``paraspeechclap train --config configs/train/lite.yaml`` with ``PARASPEECHCLAP_CACHE`` pointing at a
new empty folder (so the Whisper conversion, every synthetic corpus, the re-pitched and re-timed clips
and the feature cache are all made again), then fits the centred head on the result as the shipped one was
fitted (:data:`CENTRED_HEAD_COMMAND`), and records the wall time, the peak resident memory of the
largest process, the rows of each training source and whether ``final/model.safetensors`` and
``centred_head.safetensors`` equal the shipped files byte for byte. Needs the ``synth`` extra, the ``flite``
program and the shared real data.

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


#: how the shipped centred head is fitted on the trained weights: ``{model}``, ``{out}``, ``{shared}`` filled in
CENTRED_HEAD_COMMAND = ("fit-centred-head --model {model} --manifest {shared}/real/manifest.jsonl "
                        "{shared}/real2/manifest.jsonl {shared}/real3/manifest.jsonl --split-file shared --split train "
                        "--out {out} --json")


def fit_centred_head(final: Path, out: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run :data:`CENTRED_HEAD_COMMAND` on the trained ``final`` model into ``out``."""
    from paraspeechclap.data.splits import find_shared_data

    args = CENTRED_HEAD_COMMAND.format(model=final, out=out, shared=find_shared_data()).split()
    return subprocess.run([sys.executable, "-m", "paraspeechclap", *args], cwd=REPO, env=env, capture_output=True,
                          text=True)


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
    train_wall = time.perf_counter() - t0
    if proc.returncode == 0:
        proc = fit_centred_head(run / "final", run / "centred", env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        print(proc.stderr[-4000:], file=sys.stderr)
        return proc.returncode
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # the largest process waited for
    summary = json.loads((run / "summary.json").read_text())
    checksum = file_checksum(run / "final" / "model.safetensors")
    shipped = file_checksum(EMBEDDED_DIR / "lite" / "model.safetensors")
    head = file_checksum(run / "centred" / "centred_head.safetensors")
    shipped_head = file_checksum(EMBEDDED_DIR / "lite" / "centred_head.safetensors")
    result = {"wall_s": round(wall, 1), "wall": _minutes(wall), "peak_rss_gb": round(peak_kb / 2**20, 2),
              "train_s": summary["seconds"], "steps": summary["steps"], "train_sources": summary["train_sources"],
              "centred_head_s": round(wall - train_wall, 1),
              "checksum": checksum, "shipped_checksum": shipped,
              "identical": checksum == shipped and head == shipped_head,
              "weights_identical": checksum == shipped, "centred_head_checksum": head,
              "shipped_centred_head_checksum": shipped_head, "centred_head_identical": head == shipped_head,
              "weights_bytes": (run / "final" / "model.safetensors").stat().st_size,
              "work": str(work)}
    print(json.dumps({k: v for k, v in result.items() if k != "train_sources"}, indent=1))
    write_results(json_path(args), result)
    return 0 if result["identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
