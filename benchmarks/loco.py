"""Leave-one-corpus-out: train the default recipe without a corpus, test on that corpus.

For each corpus of the shared real speech, trains ``configs/train/lite.yaml`` with every clip of the
corpus removed from the training *and* dev sources (``exclude: {source: [corpus]}``, so model
selection never sees it either), then scores zero-shot emotion (4 and 8 classes) and gender on
that corpus: on its test speakers (the clips the in-corpus model is tested on, for a like-for-like
comparison with the shipped model, scored here too) and on all of its clips (none was used).

Features are cached, so each run trains the heads only (a few minutes on 2 cores).

    python benchmarks/loco.py                                   # every corpus with >= 100 clips
    python benchmarks/loco.py --corpora emodb,savee --max-steps 1000 --json /tmp/loco.json

UAR here is over the classes present in the corpus (a corpus may lack some emotions); the
``classes`` column says how many of the candidates occur.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from common import add_json_arg, json_path, write_results  # noqa: E402
from quality import REAL_SETS, evaluate  # noqa: E402


def corpora(min_clips: int) -> list[str]:
    """Corpora of the shared real speech with at least ``min_clips`` clips (all splits)."""
    from paraspeechclap.data.splits import load_shared_manifest

    counts = Counter(r["source"] for r in load_shared_manifest())
    return sorted(c for c, n in counts.items() if n >= min_clips)


def train_without(corpus: str, config: str, out_dir: Path, max_steps: int | None) -> Path:
    """Train the recipe with ``corpus`` excluded from every real source; returns the final model folder."""
    from paraspeechclap.training.config import load_config
    from paraspeechclap.training.loop import train

    final = out_dir / "final"
    if (final / "config.json").is_file():  # resume a half-finished sweep without retraining
        return final
    cfg = load_config(config)
    for src in [*cfg.data.train, *cfg.data.dev]:
        if src.manifest is not None:
            src.exclude = {**src.exclude, "source": [*src.exclude.get("source", []), corpus]}
    cfg.train.output_dir = str(out_dir)
    if max_steps:
        cfg.train.max_steps = max_steps
        cfg.eval.every_steps = max_steps  # one dev evaluation, at the end: no checkpoint selection
    train(cfg)
    return final


#: what ``score`` can report: the corpus's test speakers, or all of its clips (split None).
SCOPES = {"test": "test", "all": None}


def score(model: Any, corpus: str, ensemble: bool, scopes: tuple[str, ...] = ("test", "all")) -> dict[str, Any]:
    """Emotion/gender on the corpus's clips of each scope (see :data:`SCOPES`)."""
    from paraspeechclap.data.splits import load_shared_manifest

    out = {}
    for name in scopes:
        split = SCOPES[name]
        manifest = load_shared_manifest(split).filter(lambda r: r["source"] == corpus)
        out[name] = evaluate(model, manifest, REAL_SETS, ensemble, retrieval=False, prefix=name)[name]
    return out


def print_table(results: dict[str, Any]) -> None:
    print(f"{'corpus':10s} {'set':6s} {'model':10s} {'clips':>5s} " + " ".join(f"{s + ' UAR':>13s}" for s in REAL_SETS))
    for corpus, res in results["corpora"].items():
        for split, model in (("test", "shipped"), ("test", "loco"), ("all", "loco")):
            r = res[model][split] if model == "loco" else res["shipped"]
            cells = [f"{r[s]['uar_present']:7.3f} ({r[s]['classes_present']}/{r[s]['classes']})" if s in r else f"{'-':>13s}"
                     for s in REAL_SETS]
            print(f"{corpus:10s} {split:6s} {model:10s} {r['clips']:5d} " + " ".join(cells))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/train/lite.yaml")
    ap.add_argument("--corpora", default=None, help="comma-separated (default: every corpus with >= --min-clips)")
    ap.add_argument("--min-clips", type=int, default=100)
    ap.add_argument("--max-steps", type=int, default=None, help="override the recipe's steps (quicker sweeps)")
    ap.add_argument("--runs", default="runs/loco", help="where the per-corpus models go")
    ap.add_argument("--shipped", default=None, help="in-corpus model to compare with (default: the embedded one)")
    ap.add_argument("--no-ensemble", action="store_true")
    ap.add_argument("--precision", default="fp32", choices=["auto", "fp32", "bf16", "int8"])
    add_json_arg(ap, "loco.json")
    args = ap.parse_args()

    from paraspeechclap import load_model

    ensemble = not args.no_ensemble
    names = args.corpora.split(",") if args.corpora else corpora(args.min_clips)
    shipped = load_model(args.shipped, precision=args.precision)
    results: dict[str, Any] = {"config": args.config, "max_steps": args.max_steps, "shipped": shipped.model_id,
                               "shipped_checksum": shipped.checksum, "precision": shipped.precision,
                               "prompt_ensemble": ensemble, "corpora": {}}
    for corpus in names:
        final = train_without(corpus, args.config, Path(args.runs) / corpus, args.max_steps)
        loco = load_model(str(final), precision=args.precision)
        results["corpora"][corpus] = {"loco": score(loco, corpus, ensemble),
                                      "shipped": score(shipped, corpus, ensemble, ("test",))["test"]}
        write_results(json_path(args), results)  # partial results survive a crash
    print_table(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
