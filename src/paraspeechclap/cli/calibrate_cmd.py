"""``calibrate``: per-attribute-set temperatures for zero-shot scores, with held-out ECE and NLL.

The logits are the ones ``classify --attribute`` ranks by: ``logit_scale * cosine(audio, class)``,
each class the mean of its prompt ensemble (:func:`~paraspeechclap.evaluation.classification.
attribute_set_scores`). The labelled clips are embedded once; per attribute set a temperature is
fitted on every labelled row, and ECE / NLL before and after are measured on rows the fit did not
see: K-fold cross-validation (folds split by speaker when rows carry one), or ``--eval-manifest``.

Writes ``calibration.json`` (:class:`~paraspeechclap.calibration.Calibration`, last: its presence
marks a complete run) and ``reliability_<set>.png`` (held-out before | after) into ``--out``.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .common import (
    add_center_args,
    add_manifest_source_args,
    add_model_args,
    center_json,
    centering_spec,
    model_from_args,
    print_json,
    print_table,
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("calibrate", help="fit per-attribute-set temperatures of zero-shot scores on labelled clips",
                       description="Temperature-scale zero-shot attribute scores on a labelled manifest; report ECE "
                                   "and NLL before and after on held-out rows.")
    p.add_argument("--manifest", required=True, metavar="LABELLED", help="labelled manifest (JSONL/JSON/CSV/Parquet, "
                   "a saved HF dataset or a hub name)")
    add_manifest_source_args(p, "; also used for --eval-manifest")
    p.add_argument("--out", required=True, metavar="CAL",
                   help="output folder (created): calibration.json and reliability_<set>.png")
    p.add_argument("--attributes", nargs="+", default=None, metavar="SET",
                   help="attribute sets to calibrate (default: every set with labelled rows; see "
                        "'paraspeechclap data sets')")
    p.add_argument("--label-field", default=None, metavar="FIELD",
                   help="manifest field with the gold label (only with a single --attributes SET; default: the "
                        "set's field)")
    held = p.add_mutually_exclusive_group()
    held.add_argument("--folds", type=_folds, default=5, metavar="K",
                      help="K-fold cross-validation for the before/after metrics (default 5); folds are split by "
                           "speaker (--speaker-field) when rows have one, so no speaker is in both fit and eval")
    held.add_argument("--eval-manifest", default=None, metavar="F",
                      help="measure before/after on this labelled manifest instead of cross-validating")
    p.add_argument("--eval-split", default=None, metavar="S", help="split of --eval-manifest (HF dataset)")
    p.add_argument("--json", action="store_true", help="print calibration.json to stdout")
    add_model_args(p)
    add_center_args(p)
    p.set_defaults(func=run_calibrate)


def _folds(text: str) -> int:
    value = int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"must be at least 2, got {value}")
    return value


@dataclass
class _SetRows:
    """One attribute set's labelled rows: manifest indices, class indices, speaker groups."""

    aset: Any
    idx: list[int]
    labels: np.ndarray  # (n,) int64 indices into aset.candidates
    groups: list[Any] | None = None
    eval_idx: list[int] | None = None
    eval_labels: np.ndarray | None = None


def _attribute_sets(args: argparse.Namespace) -> list[Any]:
    """The sets to calibrate; ``--label-field`` re-reads a single set's gold labels from another field."""
    from ..data.attributes import list_attribute_sets
    from .evaluate_cmd import attribute_set_from_args

    names = list(dict.fromkeys(args.attributes or list_attribute_sets()))
    if args.label_field and len(names) != 1:
        raise InputError("--label-field needs exactly one --attributes SET")
    return [attribute_set_from_args(argparse.Namespace(attribute=n, candidates=None, label_field=args.label_field))
            for n in names]


def _labelled(aset: Any, manifest: Any) -> tuple[list[int], np.ndarray]:
    from ..data.attributes import gold_indices

    idx, labels = gold_indices(aset, manifest)
    return idx, np.asarray(labels, dtype=np.int64)


def _speaker_groups(manifest: Any, idx: list[int], field: str) -> list[Any] | None:
    """Speaker ids of the rows as fold groups, or None when no row has one (folds by row)."""
    from ..centering import has_speaker_id

    ids = [manifest[i].get(field) for i in idx]
    if not any(has_speaker_id(s) for s in ids):
        return None
    # a row without an id is a group of its own: it cannot be matched to any known speaker
    return [("speaker", str(s)) if has_speaker_id(s) else ("row", i) for i, s in zip(idx, ids)]


def _unusable(rows: _SetRows, manifest: Any, eval_manifest: Any) -> str | None:
    """Why a set cannot be calibrated with held-out metrics, or None."""
    if not rows.idx:
        return (f"no row of {manifest.name} has a gold label among its candidates "
                f"(field {rows.aset.field!r}: {', '.join(rows.aset.candidates)})")
    if eval_manifest is not None:
        return None if rows.eval_idx else f"no row of {eval_manifest.name} has a gold label among its candidates"
    n = len(set(rows.groups)) if rows.groups else len(rows.idx)
    if n < 2:
        return f"only 1 {'speaker' if rows.groups else 'row'} labelled in {manifest.name}: nothing to hold out"
    return None


def _plan(args: argparse.Namespace, sets: list[Any], manifest: Any, eval_manifest: Any) -> list[_SetRows]:
    """Labelled rows per set, checked before the model loads. Named sets must be usable; by default,
    sets without labelled rows are not candidates and sets that cannot be held out are noted."""
    plans, skipped = [], []
    for aset in sets:
        rows = _SetRows(aset, *_labelled(aset, manifest))
        rows.groups = _speaker_groups(manifest, rows.idx, args.speaker_field) if rows.idx else None
        if eval_manifest is not None:
            rows.eval_idx, rows.eval_labels = _labelled(aset, eval_manifest)
        why = _unusable(rows, manifest, eval_manifest)
        if why is None:
            plans.append(rows)
        elif args.attributes:
            raise InputError(f"attribute set {aset.name!r}: {why}")
        elif rows.idx:
            skipped.append(f"{aset.name} ({why})")
    if skipped:
        print(f"note: skipped {'; '.join(skipped)}", file=sys.stderr)
    if not plans:
        raise InputError(f"{manifest.name}: no attribute set has labelled rows to calibrate "
                         "(see 'paraspeechclap data sets' for the fields they read)")
    return plans


def _embed(model: Any, manifest: Any, idx: list[int], args: argparse.Namespace) -> np.ndarray:
    """``(len(manifest), D)`` embeddings; only ``idx`` rows are filled unless centring needs all rows."""
    from ..evaluation.runner import embed_rows

    centering = centering_spec(args)
    progress = sys.stderr.isatty()
    if args.center != "none" or args.reference:  # the mean is over every row, whatever its label
        return embed_rows(model, manifest, range(len(manifest)), args.batch_size, progress, centering)
    emb = embed_rows(model, manifest, idx, args.batch_size, progress)
    out = np.zeros((len(manifest), emb.shape[1]), dtype=emb.dtype)
    out[idx] = emb
    return out


def _calibrate_set(rows: _SetRows, logits: np.ndarray, eval_logits: np.ndarray | None, folds: int
                   ) -> tuple[float, dict[str, Any], tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Final ``T`` (all rows), held-out metrics, and the held-out ``(raw, scaled, labels)`` to plot."""
    from .. import calibration as cal

    t = cal.fit_temperature(logits, rows.labels)
    if eval_logits is None:
        scaled, temps = cal.cross_validated_logits(logits, rows.labels, folds, rows.groups)
        raw, labels = logits, rows.labels
        scheme = f"{len(temps)}-fold cross-validation by {'speaker' if rows.groups else 'row'}"
    else:
        raw, labels, temps = eval_logits, rows.eval_labels, [t]
        scaled, scheme = raw / t, "--eval-manifest (temperature fitted on every --manifest row)"
    metrics = {"label_field": rows.aset.field, "classes": len(rows.aset.candidates),
               "classes_present": len(np.unique(rows.labels)), "rows": len(rows.idx),
               "held_out": {"scheme": scheme, "rows": len(labels), "temperatures": temps},
               "accuracy": float(np.mean(raw.argmax(axis=1) == labels)),
               "before": cal.calibration_metrics(raw, labels), "after": cal.calibration_metrics(scaled, labels),
               "temperature_at_bound": cal.at_bound(t)}
    return t, metrics, (raw, scaled, labels)


def _info(args: argparse.Namespace, model: Any, manifest: Any, eval_manifest: Any) -> dict[str, Any]:
    from .. import __version__
    from ..calibration import DEFAULT_BINS, T_MAX, T_MIN

    data = {"manifest": manifest.name, "split": args.split, "rows": len(manifest),
            "eval_manifest": eval_manifest.name if eval_manifest is not None else None,
            "eval_split": args.eval_split if eval_manifest is not None else None}
    protocol = {"logits": "logit_scale * cosine(audio, class embedding)", "prompts": "ensemble (per class, the "
                "renormalised mean of the set's prompt ensemble)", "fit": f"mean NLL, bounded search of log T, "
                f"T in [{T_MIN:g}, {T_MAX:g}]", "final_temperature": "fitted on every labelled row of --manifest",
                "ece": f"top-label, {DEFAULT_BINS} equal-width bins (lo, hi]", "nll": "mean, nats"}
    return {"data": data, "protocol": protocol, "centering": center_json(args, model),
            "precision": model.precision,
            "software": {"paraspeechclap": __version__, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}}


def run_calibrate(args: argparse.Namespace) -> int:
    from .. import calibration as cal
    from ..data.manifest import load_manifest

    if args.eval_split and not args.eval_manifest:
        raise InputError("--eval-split needs --eval-manifest")
    sets = _attribute_sets(args)
    manifest = load_manifest(args.manifest, split=args.split, audio_root=args.audio_root)
    eval_manifest = (load_manifest(args.eval_manifest, split=args.eval_split, audio_root=args.audio_root)
                     if args.eval_manifest else None)
    plans = _plan(args, sets, manifest, eval_manifest)
    model = model_from_args(args)
    audio = _embed(model, manifest, sorted({i for p in plans for i in p.idx}), args)
    eval_audio = (_embed(model, eval_manifest, sorted({i for p in plans for i in p.eval_idx or []}), args)
                  if eval_manifest is not None else None)
    out = Path(args.out)
    record = cal.Calibration(model.checksum, cal.center_key(args.center, args.reference), {},
                             model_id=model.model_id, logit_scale=cal.model_logit_scale(model),
                             info=_info(args, model, manifest, eval_manifest))
    for rows in plans:
        logits = cal.zero_shot_logits(model, audio[rows.idx], rows.aset)
        eval_logits = cal.zero_shot_logits(model, eval_audio[rows.eval_idx], rows.aset) if eval_audio is not None else None
        t, metrics, (raw, scaled, labels) = _calibrate_set(rows, logits, eval_logits, args.folds)
        record.temperatures[rows.aset.name], record.metrics[rows.aset.name] = t, metrics
        cal.reliability_diagrams({"before (T = 1)": cal.apply(raw, 1.0), "after (held-out T)": cal.apply(scaled, 1.0)},
                                 labels, out / f"reliability_{rows.aset.name}.png",
                                 title=f"{rows.aset.name}: {metrics['held_out']['scheme']}")
    record.save(out / "calibration.json")  # last: its presence marks a complete run
    _report(args, record)
    return 0


def _report(args: argparse.Namespace, record: Any) -> None:
    if args.json:
        print_json(record.to_dict())
        return
    table = []
    for name, t in record.temperatures.items():
        m = record.metrics[name]
        table.append([name, m["rows"], t, m["before"]["ece"], m["after"]["ece"], m["before"]["nll"],
                      m["after"]["nll"], m["held_out"]["scheme"].split(" (")[0]])
    print_table(["set", "rows", "T", "ECE before", "ECE after", "NLL before", "NLL after", "held out"], table)
    bound = [n for n, m in record.metrics.items() if m["temperature_at_bound"]]
    if bound:  # a T at a search bound: the scores are all right or no better than chance there
        print(f"note: temperature at a search bound for {', '.join(bound)}: these scores carry no usable "
              "confidence", file=sys.stderr)
    print(f"calibration in {Path(args.out) / 'calibration.json'}")
