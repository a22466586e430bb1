"""Speed of the shipped default model against an earlier version's weights, on the same host in one run.

Hosts of the same name differ by more than a version change does (the same v16 weights measured 101x
real time on one 2-core AMD EPYC and about 90x on another), so a version's speed is judged as a ratio to
its predecessor measured here, interleaved: each repeat times every model in turn on the same 5 s clips,
one at a time (the README's fp32 path), and the best repeat of each is kept.

    python benchmarks/speed_versions.py --previous runs/v16-shipped     # -> results/speed_versions.json
    (v16's weights: git show <commit>:src/paraspeechclap/pretrained/lite/model.safetensors, with config.json)
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_json_arg, add_timing_args, json_path, write_results  # noqa: E402
from inference import _clips  # noqa: E402

CLIP_S = 5.0  # seconds per clip: the README's one-clip real-time figure


def real_time_factor(model, clips) -> float:
    """Seconds of audio per second of wall time, embedding ``clips`` one at a time (text side unused)."""
    t = time.perf_counter()
    for c in clips:
        model.embed_audio([c])
    return len(clips) * CLIP_S / (time.perf_counter() - t)


def interleaved(timers: dict[str, Callable[[], float]],
                repeats: int) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Each repeat runs every timer in turn (so a slow spell of the host hits all of them alike): the
    real-time factors of each, and the best of each."""
    runs: dict[str, list[float]] = {name: [] for name in timers}
    for _ in range(repeats):
        for name, timer in timers.items():
            runs[name].append(timer())
    return runs, {name: max(v) for name, v in runs.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--previous", required=True, help="folder of the earlier version (config.json, model.safetensors)")
    add_timing_args(ap)
    add_json_arg(ap, "speed_versions.json")
    args = ap.parse_args()

    import torch

    from paraspeechclap import load_model

    torch.set_num_threads(args.threads)
    models = {"shipped": load_model("lite", precision="fp32"),
              "previous": load_model(args.previous, precision="fp32")}
    clips = _clips(CLIP_S, args.clips)
    for m in models.values():
        m.embed_audio(clips[:2], batch_size=2)  # warm-up
    runs, best = interleaved({name: (lambda m=m: real_time_factor(m, clips)) for name, m in models.items()},
                             args.repeats)
    result = {"clip_s": CLIP_S, "clips": args.clips, "repeats": args.repeats, "threads": args.threads,
              "precision": "fp32", "mode": "one-at-a-time", "previous": args.previous,
              "checksums": {name: m.checksum for name, m in models.items()},
              "rtf_x": runs, "best_rtf_x": best, "ratio_shipped_to_previous": best["shipped"] / best["previous"]}
    for name, v in runs.items():
        print(f"{name:9s} best {best[name]:6.1f}x real time  repeats " + " ".join(f"{x:.1f}" for x in v))
    print(f"shipped / previous: {result['ratio_shipped_to_previous']:.3f}")
    write_results(json_path(args), result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
