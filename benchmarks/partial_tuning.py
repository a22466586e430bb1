"""Frozen vs partly tuned Whisper base for the default model's speech tower (dev split).

The default model pools blocks 1-4 of a frozen Whisper base encoder. This measures what tuning the
top block(s) would buy: one classifier architecture, trained on the train speakers of the shared
real data for 4-class emotion (angry/happy/saddened/neutral, class-balanced cross-entropy) and scored
(UAR) on the dev speakers, with the top ``k`` of the four blocks either frozen or trained (from the
pretrained weights, a smaller learning rate than the head's). Features: each block's frame mean and
standard deviation, layer-normalised without affine (as ``standardize: true``), concatenated; a
linear head with dropout. Blocks below the tuned ones run once (their outputs are cached), so only
the tuned blocks cost time in training. Same epochs, seeds and data for every variant.

    python benchmarks/partial_tuning.py --split dev --tune 0,1 --epochs 6 --seeds 0,1   # ~35 min on 2 cores
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
import time
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_json_arg, json_path, write_results  # noqa: E402

CLASSES = ["angry", "happy", "saddened", "neutral"]
N_BLOCKS = 4  # blocks 1-4 of Whisper base: the default model's


def cached_states(split: str, first_tuned: int, max_clips: int | None = None) -> tuple[list[Any], list[Any], np.ndarray]:
    """Per clip of ``split`` with a 4-class emotion: pooled stats of the frozen blocks below
    ``first_tuned`` (``(first_tuned-1, 2D)``), the input of block ``first_tuned`` (``(T', D)``; None
    when ``first_tuned`` is past the top block), and the label index.
    """
    import torch

    from paraspeechclap.audio import load_audio
    from paraspeechclap.data.splits import load_shared_manifest
    from paraspeechclap.data.vocabulary import map_label
    from paraspeechclap.encoders.whisper import create_whisper_encoder

    enc = create_whisper_encoder("base", layers=list(range(1, N_BLOCKS + 1)), level_input=False).eval()
    m = load_shared_manifest(split)
    pooled, inputs, labels = [], [], []
    for i in range(len(m)):
        label = map_label(m[i].get("emotion"), "emotion")
        if label not in CLASSES:
            continue
        if max_clips is not None and len(labels) >= max_clips:
            break
        p = enc.prepare(load_audio(str(m.audio_path(i)))[: enc.window_samples])
        with torch.no_grad():
            states, _ = enc.hidden_states(p.features[None], torch.tensor([p.length]))
        below = first_tuned - 1  # cached pooled blocks: 1 .. first_tuned-1 (at least one: first_tuned >= 2)
        pooled.append(torch.stack([stats(h[0]) for h in states[:below]]))
        # the output of the block below is the tuned blocks' input (none when nothing is tuned)
        inputs.append(states[below - 1][0] if first_tuned <= N_BLOCKS else None)
        labels.append(CLASSES.index(label))
    return pooled, inputs, np.array(labels)


def stats(h: Any) -> Any:
    """``(T, D)`` -> ``(2D,)``: layer-normalised frame mean and standard deviation, concatenated."""
    import torch
    import torch.nn.functional as F

    return torch.cat([F.layer_norm(h.mean(0), (h.shape[1],)), F.layer_norm(h.std(0), (h.shape[1],))])


class Probe:
    """The tuned top blocks + a linear head over all pooled blocks (the frozen ones from the cache)."""

    def __init__(self, blocks: list[Any], seed: int, dropout: float = 0.3) -> None:
        import torch

        torch.manual_seed(seed)
        self.blocks = torch.nn.ModuleList(copy.deepcopy(blocks))
        self.head = torch.nn.Sequential(torch.nn.Dropout(dropout), torch.nn.Linear(N_BLOCKS * 1024, len(CLASSES)))

    def logits(self, pooled: Any, x_in: Any, train: bool) -> Any:
        """``(L, 2D)`` cached pooled stats + ``(T', D)`` input of the top blocks -> ``(C,)`` logits."""
        import torch

        self.blocks.train(train)
        self.head.train(train)
        feats = [pooled.reshape(-1)]
        x = x_in[None] if x_in is not None else None
        with torch.set_grad_enabled(train):
            for block in self.blocks:
                x = block(x, None)
                feats.append(stats(x[0]))
        return self.head(torch.cat(feats))

    def parameters(self, lr_head: float, lr_block: float) -> list[dict[str, Any]]:
        groups = [{"params": list(self.head.parameters()), "lr": lr_head}]
        return groups + ([{"params": list(self.blocks.parameters()), "lr": lr_block}] if len(self.blocks) else [])


def run(data: dict[str, Any], blocks: list[Any], epochs: int, seed: int, lr_head: float,
        lr_block: float) -> dict[str, Any]:
    """Train one variant (``blocks``: the tuned top blocks, maybe none) and score dev UAR after every epoch."""
    import torch

    from paraspeechclap.evaluation import classification_metrics

    pooled, inputs, y = data["train"]
    dpooled, dinputs, dy = data["dev"]
    probe = Probe(blocks, seed)
    opt = torch.optim.AdamW(probe.parameters(lr_head, lr_block), weight_decay=0.01)
    weight = torch.tensor(len(y) / (len(CLASSES) * np.bincount(y, minlength=len(CLASSES))), dtype=torch.float32)
    rng = np.random.default_rng(seed)
    history, t0 = [], time.perf_counter()
    for _ in range(epochs):
        order = rng.permutation(len(y))
        for start in range(0, len(order), 16):
            batch = order[start:start + 16]
            logits = torch.stack([probe.logits(pooled[i], inputs[i], True) for i in batch])
            loss = torch.nn.functional.cross_entropy(logits, torch.as_tensor(y[batch]), weight=weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            pred = [CLASSES[int(probe.logits(dpooled[i], dinputs[i], False).argmax())] for i in range(len(dy))]
        history.append(classification_metrics([CLASSES[j] for j in dy], pred, CLASSES)["uar"])
    return {"tuned_blocks": len(blocks), "seed": seed, "uar_per_epoch": history, "final_uar": history[-1],
            "best_uar": max(history), "train_seconds": time.perf_counter() - t0}


def summarise(results: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean over seeds of the final and best-epoch UAR and the training time, per number of tuned blocks."""
    out = {}
    for k in dict.fromkeys(r["tuned_blocks"] for r in results):
        rs = [r for r in results if r["tuned_blocks"] == k]
        out[str(k)] = {key: float(np.mean([r[key] for r in rs])) for key in ("final_uar", "best_uar", "train_seconds")}
    return out


def write_json(args: argparse.Namespace, seeds: list[int], cache_s: dict[str, float],
               results: list[dict[str, Any]]) -> None:
    write_results(json_path(args), {"split": args.split, "epochs": args.epochs, "seeds": seeds,
                                    "tune": args.tune, "lr_head": args.lr_head, "lr_block": args.lr_block,
                                    "cache_seconds": cache_s, "runs": results, "summary": summarise(results)})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", choices=["dev", "test"], default="dev")
    ap.add_argument("--tune", default="0,1", help="numbers of top blocks to tune (0 = all frozen)")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--lr-head", type=float, default=1e-3)
    ap.add_argument("--lr-block", type=float, default=3e-5)
    ap.add_argument("--max-clips", type=int, default=None, help="first N clips of each split (smoke runs)")
    add_json_arg(ap, "partial_tuning_{split}_tune{tune}_e{epochs}.json")
    args = ap.parse_args()

    import torch

    from paraspeechclap.encoders.whisper import create_whisper_encoder

    torch.set_num_threads(2)
    tunes = [int(k) for k in args.tune.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    enc = create_whisper_encoder("base", layers=list(range(1, N_BLOCKS + 1)), level_input=False)
    results, cache_s = [], {}
    for k in tunes:
        first = N_BLOCKS - k + 1  # blocks below it run once (cached); blocks first..4 are tuned
        t0 = time.perf_counter()
        data = {"train": cached_states("train", first, args.max_clips),
                "dev": cached_states(args.split, first, args.max_clips)}
        cache_s[str(k)] = time.perf_counter() - t0
        for seed in seeds:
            r = run(data, list(enc.base.layers[first - 1:]), args.epochs, seed, args.lr_head, args.lr_block)
            results.append(r)
            print(f"tuned top blocks {k}  seed {seed}  {args.split} UAR final {r['final_uar']:.3f}  "
                  f"best {r['best_uar']:.3f}  ({r['train_seconds']:.0f} s)", flush=True)
            write_json(args, seeds, cache_s, results)  # after every run: an interrupted sweep keeps what it measured
    print(f"\n{'tuned top blocks':>16s} {'final UAR (mean)':>17s} {'best-epoch UAR':>15s} {'train s':>8s}")
    for k, row in summarise(results).items():
        print(f"{k:>16s} {row['final_uar']:17.3f} {row['best_uar']:15.3f} {row['train_seconds']:8.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
