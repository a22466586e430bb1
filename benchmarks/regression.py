"""The regression set of the default model (:mod:`paraspeechclap.evaluation.regression`), measured.

Scores the example clips, the synthetic clips made from held-out voices and sentences, and the shared
real test speakers, in each precision asked for, and prints them beside the floors that
``tests/test_shipped_model.py`` holds the shipped model to (``tests/shipped_model_floors.json``:
the lower of the measured values minus the stated margin). A floor is never lowered without a model-card
note saying why.

    python benchmarks/regression.py                  # fp32 and bf16 -> benchmarks/results/regression.json
    python benchmarks/regression.py --write-floors   # new weights: floors = min(measured) - margin

``--write-floors`` refuses to lower a floor unless ``--lower-reason TEXT`` says why; the reason is kept
in the floors file, and MODEL_CARD.md prints it beside the floors (``benchmarks/report.py``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, add_json_arg, json_path, write_results  # noqa: E402

FLOORS = REPO / "tests" / "shipped_model_floors.json"
#: floor = the lower measured value (over the precisions) minus the margin of its part: room for a few
#: clips decided the other way on another CPU, never for a real regression.
MARGINS = {"examples": 0.05, "synthetic": 0.05, "real_test": 0.03,
           "official": 0.08}  # 24-55 clips per set: one clip the other way moves a UAR by up to 0.04


def new_floors(measured: dict[str, dict[str, float]], old: dict[str, Any], checksum: str,
               reason: str | None) -> dict[str, Any]:
    """The floors file for ``measured`` (precision -> score -> value); raises if a floor would drop
    without a reason."""
    floors, lowered = {}, list(old.get("lowered", []))
    for k in sorted({k for m in measured.values() for k in m}):
        value = min(m[k] for m in measured.values() if k in m)
        floor = round(value - MARGINS[k.split("/")[0]], 3)
        before = old.get("floors", {}).get(k, {}).get("floor")
        if before is not None and floor < before:
            if not reason:
                raise SystemExit(f"error: the floor of {k} would drop from {before} to {floor}; "
                                 "pass --lower-reason TEXT (it goes into the model card)")
            lowered.append({"score": k, "from": before, "to": floor, "checksum": checksum[:12], "reason": reason})
        floors[k] = {"measured": round(value, 4), "floor": floor}
    return {"model_checksum": checksum, "margins": MARGINS, "floors": floors, "lowered": lowered,
            "measured_by": "python benchmarks/regression.py --write-floors"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="model to score (default: the embedded default model)")
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--write-floors", action="store_true", help="write tests/shipped_model_floors.json")
    ap.add_argument("--lower-reason", default=None, help="why a floor may drop (kept in the floors file)")
    add_json_arg(ap, "regression.json")
    args = ap.parse_args()

    from paraspeechclap import load_model
    from paraspeechclap.evaluation.regression import regression_scores

    old = json.loads(FLOORS.read_text()) if FLOORS.is_file() else {}
    floors = old.get("floors", {})
    measured, model = {}, None
    for precision in args.precisions.split(","):
        model = load_model(args.model, precision=precision)
        measured[precision] = regression_scores(model)
    names = sorted({k for m in measured.values() for k in m})
    print(f"{'score':28s} " + " ".join(f"{p:>7s}" for p in measured) + f" {'floor':>7s}")
    for k in names:
        floor = floors.get(k, {}).get("floor")
        print(f"{k:28s} " + " ".join(f"{measured[p].get(k, float('nan')):7.3f}" for p in measured)
              + (f" {floor:7.3f}" if floor is not None else ""))
    assert model is not None
    write_results(json_path(args), {"model": model.model_id, "checksum": model.checksum, "measured": measured})
    if args.write_floors:
        from paraspeechclap.atomic import atomic_write_text

        data = new_floors(measured, old, model.checksum, args.lower_reason)
        atomic_write_text(FLOORS, json.dumps(data, indent=1) + "\n")
        print(f"floors: {FLOORS}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
