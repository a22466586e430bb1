"""What more Whisper blocks would cost the default model's speed: its audio path with 4, 5 or 6 blocks, in one run.

The default model pools Whisper base blocks 1-4. Linear probes of the frozen features on unseen corpora
(``loco_probe.py``) score 0.02 higher with blocks 3-5 or 3-6, so how much a fifth or sixth block costs decides
whether a richer model can keep the speed target (>= 100x real time for one 5 s clip at a time, fp32, 2 cores).
Block sets marked "merged" run the blocks after the one named on frames merged 2:1 (``merge_after``), which
costs less than the full rate.
This times the speech encoder's whole per-clip path (log-mel, level and F0 inputs, the blocks, pooling; what
``embed_audio`` runs before the projection) for each block set and precision, one 5 s clip at a time,
interleaved (each repeat times every variant in turn; the best repeat of each is kept), next to the shipped
model's own ``embed_audio``. A variant's whole-model figure is estimated as the shipped model's time plus the
variant's encoder time less the shipped blocks' encoder time at the same precision (the projection and the
rest do not change with the blocks); each row records both.

    python benchmarks/block_cost.py                  # -> benchmarks/results/block_cost.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_json_arg, add_timing_args, json_path, write_results  # noqa: E402
from inference import _clips  # noqa: E402
from speed_versions import CLIP_S, interleaved, real_time_factor  # noqa: E402

SHIPPED_BLOCKS, SHIPPED_NAME = (1, 2, 3, 4), "1-4 (shipped)"
#: name -> the speech encoder spec's overrides: pooled ``layers`` (only blocks up to the last one run) and the merge.
BLOCK_SETS: dict[str, dict[str, Any]] = {
    SHIPPED_NAME: {"layers": list(SHIPPED_BLOCKS)}, "1-5": {"layers": [1, 2, 3, 4, 5]}, "3-5": {"layers": [3, 4, 5]},
    "1-6": {"layers": [1, 2, 3, 4, 5, 6]},
    "3-5, merged after block 1": {"layers": [3, 4, 5], "merge_after": 1},
    "3-6, merged after block 1": {"layers": [3, 4, 5, 6], "merge_after": 1},
    "3-5, merged after block 0": {"layers": [3, 4, 5], "merge_after": 0},
    "1 and 3-5, merged after block 1": {"layers": [1, 3, 4, 5], "merge_after": 1},
    "1-4, merged after block 2": {"layers": list(SHIPPED_BLOCKS), "merge_after": 2},
}
PRECISIONS = ("fp32", "bf16")


def encoder(spec: dict[str, Any], overrides: dict[str, Any], precision: str) -> Any:
    """The shipped model's speech encoder (its config's ``spec``) with a block set's ``overrides`` (other pooled
    blocks, a merge), its weights in ``precision``."""
    import torch

    from paraspeechclap.encoders.registry import create_audio_encoder

    enc = create_audio_encoder({**spec, **overrides}).eval()
    return enc.to(torch.bfloat16) if precision == "bf16" else enc


def encoder_rtf(enc: Any, clips: list[Any]) -> float:
    """Seconds of audio per second of wall time through ``enc``'s per-clip path, one clip at a time."""
    import torch

    from paraspeechclap.training.features import frozen_features

    t = time.perf_counter()
    with torch.inference_mode():
        for c in clips:
            frozen_features(enc, [enc.prepare(c)], 1)
    return len(clips) * CLIP_S / (time.perf_counter() - t)


def estimated_model_rtf(model_rtf: float, variant_rtf: float, shipped_rtf: float) -> float:
    """The whole model's real-time factor with a variant's encoder: per-clip seconds of the shipped model, plus
    the variant's encoder seconds, less the shipped encoder's (all as ``CLIP_S / rtf``)."""
    return CLIP_S / (CLIP_S / model_rtf + CLIP_S / variant_rtf - CLIP_S / shipped_rtf)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_timing_args(ap)
    add_json_arg(ap, "block_cost.json")
    args = ap.parse_args()

    import torch

    from paraspeechclap import load_model

    torch.set_num_threads(args.threads)
    clips = _clips(CLIP_S, args.clips)
    timers = {}
    for p in PRECISIONS:
        model = load_model("lite", precision=p)
        model.embed_audio(clips[:2], batch_size=2)  # warm-up
        timers[f"model {p}"] = lambda m=model: real_time_factor(m, clips)
        for name, overrides in BLOCK_SETS.items():
            enc = encoder(model.config.audio_encoder, overrides, p)
            encoder_rtf(enc, clips[:2])
            timers[f"blocks {name} {p}"] = lambda e=enc: encoder_rtf(e, clips)
    runs, best = interleaved(timers, args.repeats)
    rows = []
    for p in PRECISIONS:
        shipped = best[f"blocks {SHIPPED_NAME} {p}"]
        for name, overrides in BLOCK_SETS.items():
            rtf = best[f"blocks {name} {p}"]
            rows.append({"blocks": overrides["layers"], "merge_after": overrides.get("merge_after"),
                         "name": name, "precision": p, "encoder_rtf_x": rtf,
                         "encoder_ms_per_clip": 1000 * CLIP_S / rtf, "encoder_time_ratio": shipped / rtf,
                         "estimated_model_rtf_x": estimated_model_rtf(best[f"model {p}"], rtf, shipped)})
    result = {"clip_s": CLIP_S, "clips": args.clips, "repeats": args.repeats, "threads": args.threads,
              "mode": "one-at-a-time", "model_rtf_x": {p: best[f"model {p}"] for p in PRECISIONS},
              "rows": rows, "rtf_x_runs": runs}
    write_results(json_path(args), result)
    print("| blocks | precision | encoder ms / clip | time vs blocks 1-4 | whole model (est.) x real time |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['name']} | {r['precision']} | {r['encoder_ms_per_clip']:.1f} | {r['encoder_time_ratio']:.2f} "
              f"| {r['estimated_model_rtf_x']:.1f} |")
    print("shipped model: " + ", ".join(f"{p} {v:.1f}x" for p, v in result["model_rtf_x"].items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
