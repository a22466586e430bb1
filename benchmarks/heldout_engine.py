"""A synthesis engine as a dev set: score a model trained without that engine on its training clips.

The test split's unseen engine (Kokoro) must not steer choices, yet some attributes (speaking rate
above all) are heard well on the training engines' held-out voices and badly on an unseen engine.
This gives the choice a dev signal of the same kind: train the recipe with one training engine
removed from the synthetic corpus, then score that engine's clips, which the run never heard.

    paraspeechclap train --config configs/train/lite.yaml --set 'data.train.0.exclude={engine: [piper]}' \\
        --set train.output_dir=runs/no_piper
    python benchmarks/heldout_engine.py --model runs/no_piper/final --engine piper   # results/heldout_engine_piper.json

The clips are those of the config's first synthetic training source (generated once and cached, as
training does). Scoring a model that did train on the engine measures nothing held out.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_json_arg, json_path, model_fields  # noqa: E402
from quality import SYNTH_SETS, evaluate, report  # noqa: E402


def engine_manifest(config: str, engine: str) -> Any:
    """The rows of ``engine`` in the first synthetic training source of ``config`` (generated once)."""
    from paraspeechclap.data.manifest import load_manifest
    from paraspeechclap.errors import ConfigError
    from paraspeechclap.training.config import load_config
    from paraspeechclap.training.data import ensure_synth_corpus

    cfg = load_config(config)
    source = next((s for s in cfg.data.train if s.synth is not None), None)
    if source is None:
        raise ConfigError(f"{config}: no synthetic training source")
    manifest = load_manifest(ensure_synth_corpus(source.synth))
    rows = manifest.filter(lambda r: r.get("engine") == engine)
    if len(rows) == 0:
        raise ConfigError(f"{config}: the synthetic corpus has no clips of engine {engine!r}")
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="a model trained without --engine")
    ap.add_argument("--engine", default="piper")
    ap.add_argument("--config", default="configs/train/lite.yaml", help="the recipe whose corpus to score")
    ap.add_argument("--precision", default="fp32", choices=["auto", "fp32", "bf16", "int8"])
    add_json_arg(ap, "heldout_engine_{engine}.json")
    args = ap.parse_args()

    from paraspeechclap import load_model
    from paraspeechclap.errors import ParaSpeechCLAPError

    try:
        rows = engine_manifest(args.config, args.engine)
        model = load_model(args.model, precision=args.precision)
    except ParaSpeechCLAPError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sets = evaluate(model, rows, SYNTH_SETS, ensemble=True, retrieval=False, prefix=f"heldout/{args.engine}")
    results = {**model_fields(model), "engine": args.engine, "sets": sets}
    report(model, results, f"{len(rows)} {args.engine} clips of {args.config}'s synthetic corpus", json_path(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
