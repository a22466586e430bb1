"""Whisper blocks run on merged frames, probed on corpora never heard: do fewer frames keep the emotion?

``loco_probe.py`` found that Whisper base blocks 3-5 probe about 0.02 higher than the shipped blocks 1-4 on
left-out corpora, but a fifth block costs more than the fp32 speed target leaves. The speech encoder can
instead average adjacent frames 2:1 after an early block (``merge_after``), so the later blocks run on half as
many frames. This extracts every block's pooled states (mean and standard deviation, blocks 1-6) with the
frames merged after block 0 (the conv front end), 1 or 2, through the encoder's own ``merge_after``, and runs
``loco_probe``'s leave-one-corpus-out probe on each block set, beside the full-rate states of ``loco_probe``'s
cache (same clips, same level and F0 inputs, same probe). ``block_equivalents`` is the blocks' share of the
compute in full-rate blocks (a block after the merge counts 1/2): arithmetic, not a timing
(``block_cost.py`` times them).

    python benchmarks/merge_probe.py     # -> benchmarks/results/merge_probe.json (features cached in --cache)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import loco_probe  # noqa: E402
from common import add_json_arg, json_path, write_results  # noqa: E402

#: name -> ``merge_after`` (``None``: the full rate, from ``loco_probe``'s cache).
MERGES: dict[str, int | None] = {"full rate": None, "merged after block 0": 0, "merged after block 1": 1,
                                 "merged after block 2": 2}
BLOCK_SETS = [(1, 2, 3, 4), (3, 4, 5), (3, 4, 5, 6), (1, 2, 3, 4, 5), (1, 2, 3, 4, 5, 6)]
FACTOR = 2
DEPTH = 6  # Whisper base's blocks


def block_equivalents(blocks: tuple[int, ...], merge_after: int | None, factor: int = FACTOR) -> float:
    """Blocks 1..max(blocks) in full-rate block units: a block that runs after the merge costs ``1 / factor``
    (its linears scale with the frames; attention, a small share at 5 s, falls faster)."""
    last = max(blocks)
    if merge_after is None:
        return float(last)
    return float(min(merge_after, last) + max(0, last - merge_after) / factor)


def merged_states(merge_after: int) -> np.ndarray:
    """``(N, 6, 2, 512)``: pooled blocks 1-6 of :func:`loco_probe.labelled_clips` through a Whisper base encoder
    set up as the default model's (``full_clip_features``), with frames merged after ``merge_after``."""
    import torch

    from paraspeechclap.audio import load_audio
    from paraspeechclap.training.features import full_clip_features

    enc = loco_probe.probe_encoder(list(range(1, DEPTH + 1)), merge_after=merge_after, merge_factor=FACTOR)
    out = []
    for path, _row, _label in loco_probe.labelled_clips():
        wav = load_audio(str(path), min_samples=enc.min_samples)
        with torch.no_grad():
            f = full_clip_features(wav, enc, 16).numpy()
        out.append(f[: DEPTH * loco_probe.STATS * loco_probe.WIDTH].reshape(DEPTH, loco_probe.STATS, -1))
    return np.stack(out).astype(np.float32)


def extract(cache: Path, probe_cache: Path) -> dict[str, np.ndarray]:
    """``loco_probe``'s arrays plus ``merged_<k>`` ``(N, 7, 2, 512)`` for each merge (row 0, the front end, is the
    full-rate one: it precedes every merge but block 0's); cached."""
    data = loco_probe.extract(probe_cache)
    if cache.is_file():
        data.update(np.load(cache, allow_pickle=False))
        return data
    merged = {}
    for after in (a for a in MERGES.values() if a is not None):
        merged[f"merged_{after}"] = np.concatenate([data["states"][:, :1], merged_states(after)], axis=1)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, **merged)
    data.update(merged)
    return data


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "paraspeechclap" / "merge_probe.npz",
                    help="where the merged states are kept between runs")
    ap.add_argument("--probe-cache", type=Path,
                    default=Path.home() / ".cache" / "paraspeechclap" / "loco_probe_v2.npz",
                    help="loco_probe.py's cache (its full-rate states, inputs and labels; extracted if absent)")
    add_json_arg(ap, "merge_probe.json")
    args = ap.parse_args()
    t0 = time.time()
    data = extract(args.cache, args.probe_cache)
    rows = []
    for name, after in MERGES.items():
        states = data["states"] if after is None else data[f"merged_{after}"]
        for blocks in BLOCK_SETS:
            probe = loco_probe.Probe(blocks)
            r = loco_probe.loco(loco_probe.design({**data, "states": states}, probe), data, "none")
            rows.append({"merge": name, "merge_after": after, "blocks": list(blocks),
                         "block_equivalents": block_equivalents(blocks, after), **r})
            print(f"{name:22s} blocks {str(list(blocks)):20s} cost {rows[-1]['block_equivalents']:.1f} "
                  f"mean {r['uar4_mean']:.3f} min {r['uar4_min']:.3f} sad {r['sad']:.3f}", flush=True)
    result = {"corpora": loco_probe.SUMMARY_CORPORA, "train_only": loco_probe.TRAIN_ONLY,
              "clips": int(len(data["label"])), "factor": FACTOR, "rows": rows, "wall_s": round(time.time() - t0, 1)}
    write_results(json_path(args), result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
