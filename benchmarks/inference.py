"""Inference speed and memory: clips/s, real-time factor, precision, batching, peak memory.

For each model (tiny, the offline default or its backbones, and WavLM-Large with random weights),
precision (fp32, bf16, int8), clip length (5 s, 30 s) and mode (batched vs one clip at a time, the
official inference path), prints clips/s and the real-time factor, with the cosine similarity of
each precision's embeddings to fp32. Each (model, precision) runs in a fresh process so that its
peak memory (max RSS) is its own; a 10-minute file is embedded to show that windowing bounds memory.
Model load time is measured in a fresh interpreter, imports included.

"batched" passes ``batch_size=8``; the encoder may still run fewer clips per forward pass
(``max_batch_positions``: 20 s of padded audio for the HF waveform encoders, so 30 s clips of
WavLM-Large go one at a time); each row records the batch sizes that actually ran (``batches``).
``--repeats N`` keeps the best of N timings (default 3) within a process; ``--processes K`` (default 3) runs each
(model, precision) in K fresh processes and reports each row's median over them, with every process's value in
``rtf_x_runs``: on a shared 2-core host one process's best timing can move by 10-20 % from one process to the next.
``--max-batch-seconds`` overrides the encoder's budget
(0: none), and ``PARASPEECHCLAP_REUSE_MEMORY=0`` turns off the reuse of freed memory in HF audio
encoders (glibc's default behaviour), for before/after comparisons, as ``PARASPEECHCLAP_PACKED_LINEAR=0`` does
for the packed oneDNN linears of the Whisper blocks (``benchmarks/packed_linear.py`` compares those in one run).

    python benchmarks/inference.py                       # all models
    python benchmarks/inference.py --models offline --threads 2      # -> benchmarks/results/inference.json
    python benchmarks/inference.py --models wavlm-large --json benchmarks/results/inference_wavlm.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_json_arg, json_path, write_results  # noqa: E402

MODELS = {
    # name -> (how to build it, clips per timing run at 5 s, at 30 s)
    "tiny": ("tiny", 32, 4),
    "offline": ("offline", 32, 4),
    "wavlm-large": ("wavlm-large", 6, 2),
}


def build(name: str, precision: str):
    from paraspeechclap import load_model
    from paraspeechclap.config import ModelConfig
    from paraspeechclap.model import ParaSpeechCLAP
    from paraspeechclap.pretrained import finalize, list_models
    from paraspeechclap.testing import tiny_config

    if name == "offline" and any(m.name == "lite" and m.available for m in list_models()):
        return load_model("lite", precision=precision)
    cfg = {
        "tiny": tiny_config,
        "offline": lambda: ModelConfig(audio_encoder={"type": "whisper", "variant": "tiny.en"},
                                       text_encoder={"type": "minilm-l6"}, embed_dim=512, name="offline-random-heads"),
        "wavlm-large": lambda: ModelConfig(audio_encoder={"type": "random-wavlm-large"},
                                           text_encoder={"type": "tiny-xlmr"}, embed_dim=768, name="wavlm-large-random"),
    }[name]()
    import torch

    torch.manual_seed(0)  # random heads: the fp32 reference and the other precisions must be the same model
    return finalize(ParaSpeechCLAP.from_config(cfg), "cpu", precision)


def _clips(seconds: float, n: int):
    from paraspeechclap.testing import tone

    return [tone(seconds, 100 + 37 * i, seed=i) for i in range(n)]


def _time(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def worker(name: str, precision: str, long_minutes: float, repeats: int = 1,
           max_batch_seconds: float | None = None) -> dict:
    """Runs in its own process: timings for one model and precision (+ its fp32 reference)."""
    import numpy as np

    from paraspeechclap.encoders.base import REUSE_MEMORY_ENV

    model = build(name, precision)
    ref = build(name, "fp32") if precision != "fp32" else model
    enc = model.audio_branch
    if max_batch_seconds is not None:
        enc.max_batch_positions = int(max_batch_seconds * 16000) or None
    batch_sizes: list[int] = []
    enc.register_forward_pre_hook(lambda _m, args: batch_sizes.append(int(args[0].shape[0])))
    _, n5, n30 = MODELS[name]
    rows = []
    for seconds, n in ((5.0, n5), (30.0, n30)):
        clips = _clips(seconds, n)
        model.embed_audio(clips[:2], batch_size=2)  # warm-up
        for mode, bs in (("batched", 8), ("one-at-a-time", 1)):
            emb = None

            def run():
                nonlocal emb
                batch_sizes.clear()
                emb = model.embed_audio(clips, batch_size=bs) if bs > 1 else np.concatenate(
                    [model.embed_audio([c]) for c in clips])

            dt = min(_time(run) for _ in range(max(1, repeats)))
            batches = list(batch_sizes)
            cos = float((emb[:2] * ref.embed_audio(clips[:2], batch_size=2)).sum(1).mean())
            rows.append({"model": name, "precision": precision, "clip_s": seconds, "mode": mode, "clips": n,
                         "clips_per_s": n / dt, "rtf_x": n * seconds / dt, "cos_to_fp32": cos,
                         "batch_size": bs, "batches": batches, "repeats": max(1, repeats),
                         "max_batch_positions": enc.max_batch_positions,
                         "reuse_memory": os.environ.get(REUSE_MEMORY_ENV, "").strip() != "0"})
    del ref
    if precision != "fp32" or long_minutes <= 0:  # the long file shows windowing; once per model is enough
        return {"rows": rows, "long": None}
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    long = _clips(long_minutes * 60, 1)
    dt = _time(lambda: model.embed_audio(long, batch_size=4))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"rows": rows, "long": {"model": name, "precision": precision, "minutes": long_minutes,
                                   "seconds": dt, "peak_rss_mb": peak, "peak_rss_before_long_mb": rss_before}}


def load_time(name: str) -> float:
    code = f"import time; t=time.time(); import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); " \
           f"from inference import build; m = build({name!r}, 'fp32'); print(time.time() - t)"
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    return time.perf_counter() - t


def run_worker(name: str, precision: str, args: argparse.Namespace, long_minutes: float) -> dict:
    """One fresh process's :func:`worker` result."""
    extra = [] if args.max_batch_seconds is None else ["--max-batch-seconds", str(args.max_batch_seconds)]
    out = subprocess.run([sys.executable, __file__, "--worker", name, precision, "--threads", str(args.threads),
                          "--long-minutes", str(long_minutes), "--repeats", str(args.repeats), *extra],
                         check=True, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def median_rows(runs: list[list[dict]]) -> list[dict]:
    """The rows of several processes (the same rows in the same order) as one: the first process's row with
    ``clips_per_s`` and ``rtf_x`` the median over the processes, every process's ``rtf_x`` in ``rtf_x_runs``."""
    import statistics

    out = []
    for same in zip(*runs):
        if len({(r["clip_s"], r["mode"]) for r in same}) != 1:
            raise ValueError("worker processes returned different rows")
        out.append({**same[0], "clips_per_s": statistics.median(r["clips_per_s"] for r in same),
                    "rtf_x": statistics.median(r["rtf_x"] for r in same), "rtf_x_runs": [r["rtf_x"] for r in same]})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--precisions", default="fp32,bf16,int8")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--long-minutes", type=float, default=10.0)
    ap.add_argument("--repeats", type=int, default=3,
                    help="time each mode N times and keep the best (default 3: the first run of a mode also pays "
                         "for growing the heap, which would count against whichever mode runs first)")
    ap.add_argument("--max-batch-seconds", type=float, default=None,
                    help="override the encoder's padded audio per forward pass (0: no limit)")
    ap.add_argument("--processes", type=int, default=3,
                    help="fresh processes per model and precision; each row reports the median over them (default 3)")
    add_json_arg(ap, "inference.json")
    ap.add_argument("--worker", nargs=2, metavar=("MODEL", "PRECISION"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.processes < 1:
        ap.error(f"--processes must be at least 1, got {args.processes}")
    import torch

    torch.set_num_threads(args.threads)
    if args.worker:
        print(json.dumps(worker(*args.worker, args.long_minutes, args.repeats, args.max_batch_seconds)))
        return
    results = {"threads": args.threads, "torch": torch.__version__, "rows": [], "long": [], "load_s": {},
               "repeats": args.repeats, "processes": args.processes, "max_batch_seconds": args.max_batch_seconds}
    for name in args.models.split(","):
        results["load_s"][name] = load_time(name)
        for precision in args.precisions.split(","):
            # the long file (memory, not speed) runs in the first process only
            runs = [run_worker(name, precision, args, args.long_minutes if k == 0 else 0.0)
                    for k in range(args.processes)]
            res = {"rows": median_rows([r["rows"] for r in runs]), "long": runs[0]["long"]}
            results["rows"] += res["rows"]
            if res["long"]:
                results["long"].append(res["long"])
            _print_rows(res)
    _summary(results)
    write_results(json_path(args), results)


def _print_rows(res: dict) -> None:
    for r in res["rows"]:
        print(f"{r['model']:12s} {r['precision']:5s} {r['clip_s']:4.0f}s {r['mode']:14s} "
              f"{r['clips_per_s']:8.2f} clips/s  {r['rtf_x']:8.1f}x real time  cos {r['cos_to_fp32']:.5f}  "
              f"batches {r['batches']}", flush=True)
    lg = res["long"]
    if not lg:
        return
    print(f"{lg['model']:12s} {lg['precision']:5s} {lg['minutes']:.0f}-min file: {lg['seconds']:.1f} s, "
          f"peak RSS {lg['peak_rss_mb']:.0f} MB (before: {lg['peak_rss_before_long_mb']:.0f} MB)", flush=True)


def _summary(results: dict) -> None:
    print("\nload time (fresh interpreter, imports included):")
    for k, v in results["load_s"].items():
        print(f"  {k:12s} {v:6.2f} s")
    for name in {r["model"] for r in results["rows"]}:
        base = [r for r in results["rows"] if r["model"] == name and r["precision"] == "fp32"
                and r["mode"] == "one-at-a-time" and r["clip_s"] == 5.0]
        best = max((r for r in results["rows"] if r["model"] == name and r["clip_s"] == 5.0),
                   key=lambda r: r["clips_per_s"])
        if base:
            print(f"{name}: fastest 5 s path = {best['precision']} {best['mode']} at {best['clips_per_s']:.2f} clips/s, "
                  f"{best['clips_per_s'] / base[0]['clips_per_s']:.2f}x the official fp32 one-at-a-time path "
                  f"(cos {best['cos_to_fp32']:.5f})")


if __name__ == "__main__":
    main()
