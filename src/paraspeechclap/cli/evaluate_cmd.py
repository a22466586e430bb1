"""``evaluate retrieval`` and ``evaluate classification``: the official evaluation protocols.

Both write ``metrics.json``, ``predictions.jsonl``, ``metrics.md`` and a PNG plot into ``--out``
(see ``docs/evaluation.md``) and print a short summary (or the metrics as JSON with ``--json``).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

from ..errors import InputError
from .common import add_model_args, model_from_args, print_json, print_table


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--manifest", required=True, metavar="F",
                   help="manifest (JSONL/JSON/CSV/Parquet, a saved HF dataset, or a hub name such as "
                        "ajd12342/paraspeechclap-eval-intrinsic)")
    p.add_argument("--split", default=None, metavar="S",
                   help="split of a Hugging Face dataset (test, classification_pitch, ...)")
    p.add_argument("--audio-root", default=None, metavar="DIR",
                   help="audio is at DIR/<source>/<relative_audio_path> (default: the manifest's directory)")
    p.add_argument("--out", required=True, metavar="DIR", help="report directory (created)")
    p.add_argument("--json", action="store_true", help="print metrics.json to stdout")


def add_parser(sub: argparse._SubParsersAction) -> None:
    ev = sub.add_parser("evaluate", help="retrieval / zero-shot classification evaluation with a report",
                        description="Evaluate a model with the official ParaSpeechCLAP protocols.")
    tasks = ev.add_subparsers(dest="task", metavar="TASK")
    tasks.required = True

    p = tasks.add_parser("retrieval", help="audio-to-text retrieval (R@k, median rank), plus text-to-audio",
                         description="Audio-to-text retrieval over the de-duplicated captions of a manifest.")
    _add_data_args(p)
    p.add_argument("--tie-rule", default="index", choices=["index", "pessimistic", "optimistic"],
                   help="order of equal scores: lower index first (default), worst case or best case")
    add_model_args(p)
    p.set_defaults(func=run_retrieval_cmd)

    p = tasks.add_parser("classification", help="zero-shot classification (accuracy, UAR, macro-F1)",
                         description="Zero-shot classification of the clips of a manifest.")
    _add_data_args(p)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--attribute", metavar="SET",
                       help="named attribute set (pitch, texture, volume, clarity, rhythm, situational, emotion, "
                            "gender, ...; see 'paraspeechclap data sets')")
    which.add_argument("--candidates", nargs="+", metavar="C", help="candidate labels")
    p.add_argument("--label-field", default=None, metavar="FIELD",
                   help="manifest field with the gold label (default: classification_tag, or the set's field)")
    prompt = p.add_mutually_exclusive_group()
    prompt.add_argument("--template", default=None, metavar="T",
                        help="prompt template with {} (default: 'A person is speaking in a {} style.' or the "
                             "set's first template)")
    prompt.add_argument("--ensemble", action="store_true",
                        help="average the normalised embeddings of the set's paraphrase prompts per class")
    add_model_args(p)
    p.set_defaults(func=run_classification_cmd)


def _progress() -> bool:
    return sys.stderr.isatty()


def _manifest(args: argparse.Namespace) -> Any:
    from ..data.manifest import load_manifest

    return load_manifest(args.manifest, split=args.split, audio_root=args.audio_root)


def run_retrieval_cmd(args: argparse.Namespace) -> int:
    from ..evaluation.runner import run_retrieval

    manifest = _manifest(args)
    model = model_from_args(args)
    m = run_retrieval(model, manifest, args.out, split=args.split, batch_size=args.batch_size,
                      tie_rule=args.tie_rule, progress=_progress())
    if args.json:
        print_json(m)
        return 0
    rows = [[d, m[d]["R@1"], m[d]["R@5"], m[d]["R@10"], m[d]["median_rank"], m[d]["mean_rank"], m[d]["count"]]
            for d in ("audio_to_text", "text_to_audio")]
    print_table(["direction", "R@1", "R@5", "R@10", "MedR", "MeanR", "queries"], rows)
    print(f"{m['data']['clips']} clips, {m['data']['unique_captions']} unique captions; report in {args.out}")
    return 0


def attribute_set_from_args(args: argparse.Namespace) -> Any:
    """The :class:`AttributeSet` named by ``--attribute``, or an ad-hoc one from ``--candidates``."""
    from ..data.attributes import STYLE_TEMPLATES, AttributeSet, get_attribute_set
    from ..data.vocabulary import label_fields, tag_paraphrases

    field = args.label_field
    reader = "label_field" if field in label_fields() else "classification_tag"
    if args.attribute:
        aset = get_attribute_set(args.attribute)
        if field and field != aset.field:
            aset = dataclasses.replace(aset, field=field, gold_reader=reader)
        return aset
    cands = [c.strip() for c in args.candidates]
    if any(not c for c in cands) or len(set(cands)) != len(cands):
        raise InputError(f"--candidates must be distinct non-empty labels, got {args.candidates}")
    field = field or "classification_tag"
    reader = "label_field" if field in label_fields() else "classification_tag"
    return AttributeSet("custom", tuple(cands), field, STYLE_TEMPLATES,
                        {c: tuple(tag_paraphrases(c)) for c in cands}, reader)


def run_classification_cmd(args: argparse.Namespace) -> int:
    from ..evaluation.runner import run_classification

    aset = attribute_set_from_args(args)
    manifest = _manifest(args)
    model = model_from_args(args)
    m = run_classification(model, manifest, aset, args.out, split=args.split, template=args.template,
                           ensemble=args.ensemble, batch_size=args.batch_size, progress=_progress())
    if args.json:
        print_json(m)
        return 0
    print_table(["accuracy", "UAR", "macro-F1", "clips", "excluded", "no label"],
                [[m["accuracy"], m["uar"], m["macro_f1"], m["count"], m["excluded"], m["data"]["no_label"]]])
    print(f"report in {args.out}")
    return 0
