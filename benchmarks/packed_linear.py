"""Packed oneDNN linears (``encoders/packed_linear.py``) against plain ``nn.Linear``, measured in one run.

Two tables. Layers: Whisper-base's block shapes on 250 frames (one 5 s clip), the plain layer, the
packed one and fc1 with its GELU fused. Model: the shipped default embedding 5 s clips one at a time in
fp32 (the README's real-time figure), the two paths interleaved (``PARASPEECHCLAP_PACKED_LINEAR`` toggled
between repeats on the same loaded model), best repeat of each, and the largest difference between the
two paths' embeddings.

    python benchmarks/packed_linear.py          # -> benchmarks/results/packed_linear.json
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_json_arg, add_timing_args, json_path, write_results  # noqa: E402
from inference import _clips  # noqa: E402
from speed_versions import CLIP_S, interleaved, real_time_factor  # noqa: E402

FRAMES = 250  # Whisper frames of one 5 s clip
SHAPES = {"fc1 512->2048": (512, 2048), "fc2 2048->512": (2048, 512), "attention 512->512": (512, 512)}


def _ms(fn, n: int) -> float:
    """Best of 5 means of ``n`` calls, in milliseconds."""
    for _ in range(10):
        fn()
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t) / n * 1e3)
    return best


def layer_rows(calls: int) -> list[dict]:
    import torch
    from torch.nn import functional as F

    from paraspeechclap.encoders.packed_linear import packed_linear

    rows = []
    for name, (d_in, d_out) in SHAPES.items():
        torch.manual_seed(0)
        layer, owner, x = torch.nn.Linear(d_in, d_out), torch.nn.Module(), torch.randn(1, FRAMES, d_in)
        with torch.inference_mode():
            row = {"layer": name, "frames": FRAMES,
                   "plain_ms": _ms(lambda: layer(x), calls),
                   "packed_ms": _ms(lambda: packed_linear(owner, "w", (layer,), x), calls)}
            if name.startswith("fc1"):
                row["plain_gelu_ms"] = _ms(lambda: F.gelu(layer(x)), calls)
                row["packed_gelu_ms"] = _ms(lambda: packed_linear(owner, "w", (layer,), x, post="gelu"), calls)
        row["speedup"] = row["plain_ms"] / row["packed_ms"]
        rows.append(row)
    return rows


def model_rows(n_clips: int, repeats: int) -> dict:
    import numpy as np

    from paraspeechclap import load_model
    from paraspeechclap.encoders.packed_linear import ENV_SWITCH

    model, clips = load_model("lite", precision="fp32"), _clips(CLIP_S, n_clips)
    paths = {"plain": "0", "packed": "1"}
    emb = {}
    for name, switch in paths.items():
        os.environ[ENV_SWITCH] = switch
        emb[name] = model.embed_audio(clips)  # also the warm-up

    def timer(switch: str):
        def run() -> float:
            os.environ[ENV_SWITCH] = switch
            return real_time_factor(model, clips)
        return run

    runs, best = interleaved({name: timer(switch) for name, switch in paths.items()}, repeats)
    os.environ.pop(ENV_SWITCH)
    return {"clip_s": CLIP_S, "clips": n_clips, "repeats": repeats, "mode": "one-at-a-time", "precision": "fp32",
            "checksum": model.checksum, "rtf_x": runs, "best_rtf_x": best,
            "ratio_packed_to_plain": best["packed"] / best["plain"],
            "max_abs_embedding_diff": float(np.abs(emb["packed"] - emb["plain"]).max())}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_timing_args(ap)
    ap.add_argument("--layer-calls", type=int, default=100)
    add_json_arg(ap, "packed_linear.json")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    layers = layer_rows(args.layer_calls)
    for r in layers:
        fused = f"  with GELU {r['plain_gelu_ms']:.3f} -> {r['packed_gelu_ms']:.3f}" if "plain_gelu_ms" in r else ""
        print(f"{r['layer']:20s} plain {r['plain_ms']:.3f} ms  packed {r['packed_ms']:.3f} ms  "
              f"x{r['speedup']:.2f}{fused}")
    model = model_rows(args.clips, args.repeats)
    for name, v in model["rtf_x"].items():
        print(f"model {name:7s} best {model['best_rtf_x'][name]:6.1f}x real time  repeats "
              + " ".join(f"{x:.1f}" for x in v))
    print(f"packed / plain: {model['ratio_packed_to_plain']:.3f}; "
          f"embeddings differ by at most {model['max_abs_embedding_diff']:.1e}")
    write_results(json_path(args), {"threads": args.threads, "layers": layers, "model": model})
    return 0


if __name__ == "__main__":
    sys.exit(main())
