"""Fit the calibration shipped beside the embedded model on its dev data, and measure it held out.

Dev data: the synthetic dev clips of ``quality.py`` (held-out dev voices, dev sentences) and the
shared real dev speakers of every corpus (``real``, ``real2``, ``real3``). Per attribute set (the
sets ``annotate`` uses by default, plus 4-class ``emotion``) the temperature is fitted on every
labelled dev clip (:func:`paraspeechclap.calibration.fit_temperature`; logits ``logit_scale *
cosine`` with prompt-ensemble classes, as ``calibrate`` and ``annotate`` score them). Top-label ECE
(15 bins) and NLL before and after, on clips the fit did not see:

- ``dev_cv``: 5-fold cross-validation on dev, folds by speaker;
- ``test``: the test split (synthetic test voices, Kokoro included; real test speakers), with the
  temperature fitted on all of dev;
A set with fewer than ``MIN_ERRORS`` (20) dev errors is not fitted (``T = 1``, ``fitted: false``).

- ``left_out_corpus`` (``--loco-runs``): for each corpus, the leave-one-corpus-out model that never
  heard it (``benchmarks/loco.py``), calibrated on its own dev clips (the corpus's dev rows
  removed) and scored on every clip of the corpus: calibration on recordings the model never heard.

    python benchmarks/calibrate_shipped.py --write      # -> pretrained/lite/calibration.json, results/calibration.json
    python benchmarks/calibrate_shipped.py --loco-runs runs/loco-lite-real3 --loco-corpora emodb,savee
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, add_json_arg, json_path, row_speakers, write_results

SETS = ["emotion8", "emotion", "gender", "pitch_level", "speaking_rate", "loudness", "voice_quality", "whisper",
        "recording"]
REAL_ONLY = ["emotion8", "emotion", "gender"]  # the sets a real corpus has labels for
FIGURES = REPO / "benchmarks" / "results" / "calibration"
#: a set is calibrated only when the model gets at least this many dev clips wrong; with fewer, the NLL
#: is all correct clips and the fitted T collapses towards 0 (one-hot probabilities), which does not
#: hold on clips less like dev (the synthetic dev clips are two eSpeak voices). Such a set keeps T = 1.
MIN_ERRORS = 20


def dev_and_test(jobs: int) -> tuple[Any, Any]:
    """The dev and test manifests: synthetic clips of the split plus the real speakers of the split."""
    from quality import SYNTH_N, synthetic_manifest

    from paraspeechclap.data.manifest import Manifest
    from paraspeechclap.data.splits import load_shared_manifest

    return tuple(Manifest.concat([synthetic_manifest(s, SYNTH_N[s], jobs), load_shared_manifest(s, batches="all")],
                                 name=f"{s}: synthetic + real") for s in ("dev", "test"))  # type: ignore[return-value]


def labelled(manifest: Any, set_name: str) -> tuple[list[int], np.ndarray]:
    from paraspeechclap.data.attributes import get_attribute_set, gold_indices

    idx, labels = gold_indices(get_attribute_set(set_name), manifest)
    return idx, np.asarray(labels, dtype=np.int64)


def logits(model: Any, emb: np.ndarray, set_name: str) -> np.ndarray:
    from paraspeechclap.calibration import zero_shot_logits
    from paraspeechclap.data.attributes import get_attribute_set

    return zero_shot_logits(model, emb, get_attribute_set(set_name))


def embed(model: Any, manifest: Any) -> np.ndarray:
    from paraspeechclap.evaluation.runner import embed_rows

    return embed_rows(model, manifest, range(len(manifest)), 16, False)


def fit_and_measure(model: Any, dev: Any, dev_emb: np.ndarray, test: Any, test_emb: np.ndarray,
                    sets: list[str]) -> tuple[dict[str, float], dict[str, Any]]:
    """Temperatures fitted on dev, and per set the held-out before/after metrics (dev CV, test)."""
    from paraspeechclap import calibration as cal

    temps, metrics = {}, {}
    for name in sets:
        idx, y = labelled(dev, name)
        z = logits(model, dev_emb[idx], name)
        errors = int(np.sum(z.argmax(axis=1) != y))
        groups = row_speakers([dev[i] for i in idx])
        if errors >= MIN_ERRORS:
            t = cal.fit_temperature(z, y)
            scaled, fold_t = cal.cross_validated_logits(z, y, 5, groups)
        else:  # too few dev errors to learn how unsure to be: the fit would drive T towards 0
            t, scaled, fold_t = 1.0, z, []
        tidx, ty = labelled(test, name)
        tz = logits(model, test_emb[tidx], name)
        temps[name] = t
        metrics[name] = {"temperature": t, "fitted": errors >= MIN_ERRORS, "dev_rows": len(idx), "dev_errors": errors,
                         "test_rows": len(tidx),
                         "dev_cv": {"before": cal.calibration_metrics(z, y), "after": cal.calibration_metrics(scaled, y),
                                    "fold_temperatures": fold_t},
                         "test": {"before": cal.calibration_metrics(tz, ty), "after": cal.calibration_metrics(tz / t, ty),
                                  "accuracy": float(np.mean(tz.argmax(axis=1) == ty))}}
        cal.reliability_diagrams({"before (T = 1)": cal.apply(tz, 1.0), f"after (T = {t:.2f})": cal.apply(tz / t, 1.0)},
                                 ty, FIGURES / f"reliability_test_{name}.png",
                                 title=f"{name}: test split, temperature fitted on dev")
    return temps, metrics


def left_out_corpus(runs: Path, corpora: list[str], dev: Any, precision: str) -> dict[str, Any]:
    """Per corpus: the LOCO model calibrated on its dev clips (the corpus removed), scored on the corpus."""
    from paraspeechclap import calibration as cal
    from paraspeechclap import load_model
    from paraspeechclap.data.splits import load_shared_manifest

    every = load_shared_manifest(batches="all")
    out = {}
    for corpus in corpora:
        if not (runs / corpus / "final").is_dir():
            print(f"note: no leave-one-corpus-out model for {corpus} in {runs} (benchmarks/loco.py); skipped")
            continue
        model = load_model(str(runs / corpus / "final"), precision=precision)
        fit_rows = dev.filter(lambda r, c=corpus: r["source"] != c)
        held = every.filter(lambda r, c=corpus: r["source"] == c)
        fit_emb, held_emb = embed(model, fit_rows), embed(model, held)
        out[corpus] = {}
        for name in REAL_ONLY:
            idx, y = labelled(fit_rows, name)
            hidx, hy = labelled(held, name)
            if len(np.unique(hy)) < 2:
                continue
            t = cal.fit_temperature(logits(model, fit_emb[idx], name), y)
            hz = logits(model, held_emb[hidx], name)
            out[corpus][name] = {"temperature": t, "rows": len(hidx), "before": cal.calibration_metrics(hz, hy),
                                 "after": cal.calibration_metrics(hz / t, hy)}
        print(f"{corpus}: " + ", ".join(f"{n} ECE {m['before']['ece']:.3f} -> {m['after']['ece']:.3f}"
                                        for n, m in out[corpus].items()), flush=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--precision", default="fp32", choices=["auto", "fp32", "bf16"])
    ap.add_argument("--jobs", type=int, default=2, help="synthesis processes (first run only)")
    ap.add_argument("--write", action="store_true", help="write the embedded model's calibration.json")
    ap.add_argument("--loco-runs", default=None, help="folder of benchmarks/loco.py's per-corpus models")
    ap.add_argument("--loco-corpora", default="ased,emodb,emovo,savee,urdu,ucm_es")
    add_json_arg(ap, "calibration.json")
    args = ap.parse_args()

    from paraspeechclap import calibration as cal
    from paraspeechclap import load_model
    from paraspeechclap.pretrained import EMBEDDED_DIR

    t0 = time.perf_counter()
    model = load_model(None, precision=args.precision)
    dev, test = dev_and_test(args.jobs)
    temps, metrics = fit_and_measure(model, dev, embed(model, dev), test, embed(model, test), SETS)
    record = cal.Calibration(model.checksum, "none", temps,
                             {n: {k: m[k] for k in ("fitted", "dev_rows", "dev_errors", "dev_cv", "test")}
                              for n, m in metrics.items()},
                             model_id=model.model_id, logit_scale=cal.model_logit_scale(model),
                             info={"data": "dev split: synthetic dev voices and sentences + real dev speakers "
                                           "(real, real2, real3)", "command": "python benchmarks/calibrate_shipped.py "
                                   "--write", "precision": model.precision})
    if args.write:
        record.save(EMBEDDED_DIR / "lite" / "calibration.json")
    results = {"model": model.model_id, "checksum": model.checksum, "precision": model.precision, "sets": metrics,
               "dev_rows": len(dev), "test_rows": len(test)}
    if args.loco_runs:
        results["left_out_corpus"] = left_out_corpus(Path(args.loco_runs), args.loco_corpora.split(","), dev,
                                                     args.precision)
    results["wall_s"] = round(time.perf_counter() - t0, 1)
    write_results(json_path(args), results)
    print(f"{'set':14s} {'T':>6s} {'dev errors':>10s} {'dev-CV ECE':>17s} {'test ECE':>15s}")
    for name, m in metrics.items():
        print(f"{name:14s} {m['temperature']:6.2f} {m['dev_errors']:10d} {m['dev_cv']['before']['ece']:7.3f} -> "
              f"{m['dev_cv']['after']['ece']:.3f}"
              f" {m['test']['before']['ece']:6.3f} -> {m['test']['after']['ece']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
