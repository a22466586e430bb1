"""The example clips (``examples/``): every known label against the model's zero-shot prediction.

``examples/labels.json`` holds each clip's known labels (synthesis parameters for ``synth_*``, corpus
labels for ``thorsten_*``). For every attribute set that gives a clip a gold label, the prediction is
the top candidate of the set's prompt ensemble; a wrong one is listed with the cosine margin by which
the predicted class beat the known one.

    python benchmarks/examples.py [--model M] [--precision P]      # results/examples_fp32.json

``tests/test_shipped_model.py`` pins the predictions the shipped model must keep; this script prints
the whole table, errors included (the model card quotes it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_json_arg, json_path, model_fields, write_results  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SETS = ["emotion", "emotion8", "gender", "pitch_level", "speaking_rate", "loudness", "voice_quality", "whisper"]


def predictions(model: Any, labels: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (clip, set) with a gold label in the set's candidates: gold, predicted, margin."""
    from paraspeechclap.data.attributes import get_attribute_set
    from paraspeechclap.evaluation.classification import embed_class_prompts

    clips = sorted(labels)
    audio = model.embed_audio([str(EXAMPLES / c) for c in clips])  # (N, D)
    rows = []
    for name in SETS:
        aset = get_attribute_set(name)
        scores = audio @ embed_class_prompts(model, aset.prompts(ensemble=True), aset.candidates).T  # (N, C)
        for clip, row in zip(clips, scores):
            gold = aset.gold(labels[clip])
            if gold not in aset.candidates:
                continue
            best = int(row.argmax())
            rows.append({"clip": clip, "set": name, "gold": gold, "predicted": aset.candidates[best],
                         "margin": float(row[best] - row[aset.candidates.index(gold)])})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="model to evaluate (default: the embedded default model)")
    ap.add_argument("--precision", default="fp32", choices=["auto", "fp32", "bf16", "int8"])
    add_json_arg(ap, "examples_{precision}.json")
    args = ap.parse_args()

    from paraspeechclap import load_model

    model = load_model(args.model, precision=args.precision)
    rows = predictions(model, json.loads((EXAMPLES / "labels.json").read_text()))
    right = sum(r["gold"] == r["predicted"] for r in rows)
    print(f"model {model.model_id} ({model.checksum[:12]}, {model.precision}): {right} of {len(rows)} known labels "
          f"predicted")
    for r in rows:
        if r["gold"] != r["predicted"]:
            print(f"  {r['clip']:28s} {r['set']:14s} {r['gold']:>10s} -> {r['predicted']:10s} margin {r['margin']:.3f}")
    write_results(json_path(args, precision=model.precision),
                  {**model_fields(model), "right": right, "total": len(rows), "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
