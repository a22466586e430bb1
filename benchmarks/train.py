"""Training throughput: samples/s of the tiny and lite recipes, with and without cached features.

Runs the real trainer (data loading, augmentation, forward, loss, backward, optimiser step) on a
toy corpus of harmonic "voices" (``paraspeechclap.training.toy``, 2-4 s clips, no synthesis
engine needed) and times steady-state optimiser steps after a warm-up. ``setup_s`` is the
trainer's construction: model loading (a backbone already loaded by an earlier mode of the same
process loads faster) and, in cached modes, filling the feature cache.

Modes:

* ``tiny/full``: tiny WavLM + tiny BERT, everything trained (crops of 1 s).
* ``tiny/cached``: tiny WavLM frozen, features cached; heads and text tower train.
* ``lite/uncached``: the lite recipe (frozen Whisper tiny.en + frozen MiniLM) with the speech
  backbone run at every step.
* ``lite/cached``: the lite recipe as shipped (backbone outputs cached).

    python benchmarks/train.py                         # all modes
    python benchmarks/train.py --modes lite/cached --steps 50 --threads 2
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, add_json_arg, json_path, write_results  # noqa: E402

MODES: dict[str, tuple[str, list[str]]] = {
    "tiny/full": ("tiny.yaml", []),
    "tiny/cached": ("tiny.yaml", ["model.audio_trainable=[]", "features.cache=true"]),
    "lite/uncached": ("lite.yaml", ["features.cache=false"]),
    "lite/cached": ("lite.yaml", []),
}


def run_mode(name: str, corpus: str, work: Path, steps: int, warmup: int, batch: int, threads: int) -> dict:
    import torch

    from paraspeechclap.distributed import DistributedInfo
    from paraspeechclap.training.config import load_config
    from paraspeechclap.training.loop import Trainer
    from paraspeechclap.training.modules import set_train_mode

    recipe, extra = MODES[name]
    cfg = load_config(REPO / "configs" / "train" / recipe, [
        # captions drawn from the labels at every fetch, as the lite recipe does
        f"data.train=[{{manifest: {corpus}, captions: describe}}]", "data.dev=[]", "data.mixing=concat",
        f"train.batch_size={batch}", f"train.max_steps={steps + warmup}", f"train.num_threads={threads}",
        f"train.output_dir={work / name.replace('/', '-')}", "train.progress=false",
        f"features.cache_dir={work / 'features'}", *extra,
    ])  # fmt: skip
    t0 = time.perf_counter()
    trainer = Trainer(cfg, DistributedInfo(0, 0, 1, torch.device("cpu")))
    setup_s = time.perf_counter() - t0
    set_train_mode(trainer.model)
    done, start, epoch = 0, 0.0, 1
    trainer.sampler.set_epoch(epoch)
    trainer.dataset.set_epoch(epoch)
    it = iter(trainer.loader)
    for step in range(1, steps + warmup + 1):
        try:
            batch_data = next(it)
        except StopIteration:  # a new epoch: new order, new caption wordings and crops
            epoch += 1
            trainer.sampler.set_epoch(epoch)
            trainer.dataset.set_epoch(epoch)
            it = iter(trainer.loader)
            batch_data = next(it)
        if step == warmup + 1:
            start = time.perf_counter()
        trainer.train_step(batch_data, step)
        if step > warmup:
            done += len(batch_data["captions"])
    seconds = time.perf_counter() - start
    trainable = sum(p.numel() for p in trainer.params)
    return {"mode": name, "samples_per_s": round(done / seconds, 2), "steps": steps, "batch_size": batch,
            "setup_s": round(setup_s, 2), "trainable_params": trainable, "threads": threads}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--modes", default=",".join(MODES), help=f"comma-separated subset of {', '.join(MODES)}")
    p.add_argument("--steps", type=int, default=30, help="timed steps per mode")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--clips", type=int, default=64, help="toy corpus size")
    p.add_argument("--threads", type=int, default=2)
    add_json_arg(p, "train.json")
    args = p.parse_args(argv)
    from paraspeechclap.training.toy import write_tone_corpus

    rows = []
    with tempfile.TemporaryDirectory(prefix="psc-train-bench-") as tmp:
        work = Path(tmp)
        corpus = str(write_tone_corpus(work / "toy", args.clips, seed=0, speakers=8, seconds=(2.0, 4.0)))
        for name in args.modes.split(","):
            rows.append(run_mode(name.strip(), corpus, work, args.steps, args.warmup, args.batch_size, args.threads))
            r = rows[-1]
            print(f"{r['mode']:<14} {r['samples_per_s']:>9.1f} samples/s   setup {r['setup_s']:>6.1f} s   "
                  f"trainable {r['trainable_params']:>9,d}", file=sys.stderr)
    print(f"{'mode':<14} {'samples/s':>10} {'setup s':>8} {'trainable':>10}")
    for r in rows:
        print(f"{r['mode']:<14} {r['samples_per_s']:>10.1f} {r['setup_s']:>8.1f} {r['trainable_params']:>10,d}")
    write_results(json_path(args), {"corpus": f"toy tones, {args.clips} clips of 2-4 s", "torch_threads": args.threads,
                                    "results": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
