"""Is a candidate's emotion UAR change real? Candidates against a baseline on the same real clips, paired.

Each model embeds the real recordings of ``--split`` (the shared split's unseen speakers, what
``benchmarks/quality.py`` reports as ``real``) and predicts every clip; the UAR difference of each
candidate from the baseline gets a paired, class-stratified bootstrap
(:func:`paraspeechclap.evaluation.paired.paired_uar_bootstrap`): its standard deviation, a 95 % interval, how
often the candidate comes out below the baseline, and how often it loses more than ``--tolerance`` (the
kept margin a rule holds it to). Plain (each clip alone) and speaker-centred scores; 4- and 8-class emotion.

    python benchmarks/paired.py --candidate w01=runs/lite-speaker-centred-w01/final --split dev \
        --json benchmarks/results/candidates/paired_dev.json

The test split is for versions whose test split was already scored (the shipped one and a candidate that
was about to ship): it re-reads that decision, it does not choose one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_json_arg, group_centred, json_path, model_fields, row_speakers, write_results  # noqa: E402

SETS = ("emotion", "emotion8")
MODES = ("plain", "speaker")


def predictions(model_path: str | None, rows: list[dict[str, Any]], paths: list[str]) -> dict[str, Any]:
    """One model's per-clip predictions: ``{mode: {set: predicted}}`` plus what identifies the model."""
    from paraspeechclap import load_model
    from paraspeechclap.evaluation.classification import score_attribute_set

    model = load_model(model_path, precision="fp32")
    audio = model.embed_audio(paths, batch_size=16)
    embedded = {"plain": audio, "speaker": group_centred(audio, row_speakers(rows))}
    out: dict[str, Any] = {"fields": model_fields(model), "path": model_path or "embedded default"}
    for mode, emb in embedded.items():
        out[mode] = {}
        for s in SETS:
            scored = score_attribute_set(model, emb, rows, s)
            if scored is None:
                raise SystemExit(f"paired.py: no real recording of the split has a gold label of the set {s!r}")
            out[mode][s] = scored["predicted"]
    return out


def compare(base: dict[str, Any], cand: dict[str, Any], rows: list[dict[str, Any]], args: argparse.Namespace
            ) -> dict[str, Any]:
    """Bootstrap of candidate minus baseline for every mode and set (clips with a gold label of the set)."""
    from paraspeechclap.data.attributes import get_attribute_set
    from paraspeechclap.evaluation.paired import paired_uar_bootstrap

    out: dict[str, Any] = {}
    for mode in MODES:
        for s in SETS:
            aset = get_attribute_set(s)
            gold = [aset.gold(r) for r in rows]
            keep = [i for i, g in enumerate(gold) if g in aset.candidates]
            out[f"{mode}/{s}"] = paired_uar_bootstrap(
                [gold[i] for i in keep], [base[mode][s][i] for i in keep], [cand[mode][s][i] for i in keep],
                list(aset.candidates), resamples=args.resamples, seed=args.seed, tolerance=args.tolerance)
    return out


def print_table(results: dict[str, Any]) -> None:
    print(f"{'candidate':28s} {'scores':22s} {'base':>6s} {'cand':>6s} {'diff':>7s} {'sd':>6s} "
          f"{'95% interval':>17s} {'P(<0)':>6s} {'P(<-tol)':>8s}")
    for name, res in results["candidates"].items():
        for key, r in res["comparisons"].items():
            lo, hi = r["ci95"]
            print(f"{name:28s} {key:22s} {r['uar_a']:6.3f} {r['uar_b']:6.3f} {r['difference']:+7.3f} {r['sd']:6.3f} "
                  f"[{lo:+.3f}, {hi:+.3f}] {r['share_below_zero']:6.3f} {r['share_below_tolerance']:8.3f}")


def parse_candidate(text: str) -> tuple[str, str]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"--candidate takes NAME=MODEL, got {text!r}")
    return name, path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", default=None, help="baseline model (default: the embedded default model)")
    ap.add_argument("--candidate", action="append", required=True, type=parse_candidate, metavar="NAME=MODEL")
    ap.add_argument("--split", choices=["dev", "test"], default="dev")
    ap.add_argument("--resamples", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tolerance", type=float, default=0.03, help="the kept margin (default 0.03: issue 18's)")
    add_json_arg(ap, "candidates/paired_{split}.json")
    args = ap.parse_args()

    from paraspeechclap.data.splits import load_shared_manifest

    manifest = load_shared_manifest(args.split)
    rows = [manifest[i] for i in range(len(manifest))]
    paths = [str(manifest.audio_path(i)) for i in range(len(manifest))]
    base = predictions(args.baseline, rows, paths)
    results: dict[str, Any] = {"split": args.split, "clips": len(rows), "baseline": {**base["fields"],
                               "path": base["path"]}, "resamples": args.resamples, "seed": args.seed,
                               "tolerance": args.tolerance, "candidates": {}}
    for name, path in args.candidate:
        cand = predictions(path, rows, paths)
        results["candidates"][name] = {**cand["fields"], "path": path, "comparisons": compare(base, cand, rows, args)}
    print_table(results)
    write_results(json_path(args), results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
