"""``train``: train a model from a YAML recipe.

- ``paraspeechclap train --config configs/train/lite.yaml [--set key=value ...] [--resume auto]``
  (``--set a=1 b=2`` and ``--set a=1 --set b=2`` are the same)
- ``torchrun --nproc_per_node=N -m paraspeechclap train --config ...`` (one process per GPU/CPU slot)
"""

from __future__ import annotations

import argparse
import sys


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model from a YAML recipe (configs/train/*.yaml)",
        description="Train a ParaSpeechCLAP model. Run under torchrun for several processes "
        "(torchrun --nproc_per_node=N -m paraspeechclap train ...).",
    )
    p.add_argument("--config", required=True, metavar="YAML", help="run config (e.g. configs/train/lite.yaml)")
    p.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="override config values by dotted path, value parsed as YAML: --set optim.lr=1e-4 "
                        "train.batch_size=8 (several pairs, or repeat --set); --set data.train_manifest=F "
                        "replaces the recipe's data.train (data.dev_manifest: data.dev)")
    p.add_argument("--resume", default="none", metavar="auto|PATH|none",
                   help="auto: continue from the newest valid checkpoint in train.output_dir (fresh start if none); "
                        "PATH: a checkpoint file; none (default): fresh run (refused if checkpoints exist)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("--json", action="store_true", help="print the run summary as JSON")
    p.set_defaults(func=run)


def _show_config_notes() -> None:
    """Let the config loader's INFO lines (e.g. a recipe's data list replaced by --set) reach stderr,
    once: the CLI's logging shows warnings only, and under torchrun every rank loads the config."""
    import logging
    import os

    if os.environ.get("RANK", "0") == "0":  # torchrun's variable, read directly: no torch import for --print-config
        logging.getLogger("paraspeechclap.training.config").setLevel(logging.INFO)


def run(args: argparse.Namespace) -> int:
    from ..training.config import config_to_yaml, load_config

    _show_config_notes()
    cfg = load_config(args.config, args.overrides)
    if args.print_config:
        sys.stdout.write(config_to_yaml(cfg))
        return 0
    import torch.distributed as dist

    from .. import distributed
    from ..training.loop import train

    try:
        summary = train(cfg, resume=args.resume)
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    if distributed.world_info_from_env().rank == 0:
        if args.json:
            from .common import print_json

            print_json(summary)
        else:
            best = f", best {summary['best_metric']}={summary['best_value']:.4f} at step {summary['best_step']}" \
                if summary.get("best_value") is not None else ""
            print(f"trained {summary['steps']} steps in {summary['seconds']:.1f} s{best}; model: {summary['final']}")
    return 0
