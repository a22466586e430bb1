"""``evaluate retrieval`` and ``evaluate classification``: the official evaluation protocols.

Both write ``metrics.json``, ``predictions.jsonl``, ``metrics.md`` and a PNG plot into ``--out``
(see ``docs/evaluation.md``) and print a short summary (or the metrics as JSON with ``--json``).

Official checkpoints (released names, ``.pth.tar`` files) run in fp32 unless ``--precision`` is
given, so that the numbers match the official code; every report records the precision and why.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

from ..errors import InputError
from .common import add_center_args, add_model_args, centering_spec, model_from_args, print_json, print_table

PRECISION_HELP = ("default: fp32 for official checkpoints (released names, .pth.tar files), as the official "
                  "evaluation runs; auto for other models (bf16 where the CPU/GPU computes it natively, else "
                  "fp32). The report records the precision used and why")


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
    add_model_args(p, precision_default=None, precision_help=PRECISION_HELP)
    add_center_args(p)
    p.set_defaults(func=run_retrieval_cmd)

    p = tasks.add_parser("classification", help="zero-shot classification (accuracy, UAR, macro-F1)",
                         description="Zero-shot classification of the clips of a manifest.")
    _add_data_args(p)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--attribute", metavar="SET",
                       help="named attribute set (pitch, texture, volume, clarity, rhythm, situational, emotion, "
                            "gender, ...; see 'paraspeechclap data sets')")
    which.add_argument("--candidates", nargs="+", metavar="C",
                       help="candidate labels; with a label field (--label-field emotion ...) each is read "
                            "through the field's label map like the gold labels (sad -> saddened), and the "
                            "prompts use the words as given")
    p.add_argument("--label-field", default=None, metavar="FIELD",
                   help="manifest field with the gold label (default: classification_tag, or the set's field)")
    p.add_argument("--drop-unmatched", action="store_true",
                   help="with --candidates, exclude clips whose gold label is no candidate (counted in the "
                        "report) instead of stopping with an error; named sets always exclude them")
    prompt = p.add_mutually_exclusive_group()
    prompt.add_argument("--template", default=None, metavar="T",
                        help="prompt template with {} (default: 'A person is speaking in a {} style.' or the "
                             "set's first template)")
    prompt.add_argument("--ensemble", action="store_true",
                        help="average the normalised embeddings of the set's paraphrase prompts per class")
    add_model_args(p, precision_default=None, precision_help=PRECISION_HELP)
    add_center_args(p)
    p.set_defaults(func=run_classification_cmd)


def _progress() -> bool:
    return sys.stderr.isatty()


def _manifest(args: argparse.Namespace) -> Any:
    from ..data.manifest import load_manifest

    return load_manifest(args.manifest, split=args.split, audio_root=args.audio_root)


def evaluation_precision(args: argparse.Namespace) -> tuple[str, str]:
    """``(precision to load with, why)``: ``--precision`` when given, else fp32 for an official
    checkpoint (the official code runs fp32; bf16 moves embeddings by about 4e-3), else ``auto``."""
    from ..pretrained import is_official_checkpoint

    if args.precision is not None:
        return args.precision, f"--precision {args.precision}"
    if is_official_checkpoint(args.model):
        return "fp32", "official checkpoint default"
    return "auto", "auto (default for non-official models)"


def _load_model(args: argparse.Namespace) -> tuple[Any, str]:
    """The model in its evaluation precision, and the precision's source for the report."""
    precision, source = evaluation_precision(args)
    model = model_from_args(args, precision=precision)
    if precision == "auto":  # say what auto became here: it depends on the machine
        source = f"{source}: {model.precision} on this device"
    return model, source


def run_retrieval_cmd(args: argparse.Namespace) -> int:
    from ..evaluation.runner import run_retrieval

    manifest = _manifest(args)
    model, source = _load_model(args)
    m = run_retrieval(model, manifest, args.out, split=args.split, batch_size=args.batch_size,
                      tie_rule=args.tie_rule, progress=_progress(), precision_source=source,
                      centering=centering_spec(args))
    if args.json:
        print_json(m)
        return 0
    rows = [[d, m[d]["R@1"], m[d]["R@5"], m[d]["R@10"], m[d]["median_rank"], m[d]["mean_rank"], m[d]["count"]]
            for d in ("audio_to_text", "text_to_audio")]
    print_table(["direction", "R@1", "R@5", "R@10", "MedR", "MeanR", "queries"], rows)
    print(f"{m['data']['clips']} clips, {m['data']['unique_captions']} unique captions; "
          f"precision {model.precision} ({source}); report in {args.out}")
    return 0


def _candidate_labels(given: list[str], field: str) -> dict[str, str]:
    """``--candidates`` -> the labels that gold labels are compared with, in the order given.

    A label field's values go through its label map, as the gold labels do (``sad`` -> ``saddened``;
    words the map lacks stay as they are and can only be distractors); other fields are compared
    stripped and lower-cased, as their gold labels are.

    Raises:
        InputError: empty candidates, or two that become the same label.
    """
    from ..data.vocabulary import label_fields, map_label

    words = [c.strip() for c in given]
    if any(not c for c in words):
        raise InputError(f"--candidates must be non-empty labels, got {given}")
    mapped = field in label_fields()
    labels: dict[str, str] = {}  # word as given -> label
    words_of: dict[str, str] = {}  # label -> word as given
    for word in words:
        label = (map_label(word, field) or word) if mapped else word.lower()
        if label in words_of:
            raise InputError(f"--candidates {words_of[label]!r} and {word!r} are the same {field} label {label!r}")
        labels[word], words_of[label] = label, word
    return labels


def attribute_set_from_args(args: argparse.Namespace) -> Any:
    """The :class:`AttributeSet` named by ``--attribute``, or an ad-hoc one from ``--candidates``.

    For ``--candidates`` the class labels are :func:`_candidate_labels`; each prompt is built from
    the word as given (then, for ``--ensemble``, the label's paraphrases).
    """
    from ..data.attributes import STYLE_TEMPLATES, AttributeSet, get_attribute_set
    from ..data.vocabulary import label_fields, tag_paraphrases

    field = args.label_field
    reader = "label_field" if field in label_fields() else "classification_tag"
    if args.attribute:
        aset = get_attribute_set(args.attribute)
        if field and field != aset.field:
            aset = dataclasses.replace(aset, field=field, gold_reader=reader)
        return aset
    field = field or "classification_tag"
    reader = "label_field" if field in label_fields() else "classification_tag"
    labels = _candidate_labels(args.candidates, field)
    phrases = {label: tuple(dict.fromkeys([word, *tag_paraphrases(label)])) for word, label in labels.items()}
    return AttributeSet("custom", tuple(labels.values()), field, STYLE_TEMPLATES, phrases, reader,
                        description="--candidates " + " ".join(labels))


def _check_gold(args: argparse.Namespace, aset: Any, manifest: Any) -> str:
    """What to do with clips whose gold label is no candidate. Checked here, before the model loads:
    stops when no clip has a usable label, or when ``--candidates`` leaves clips unmatched and
    ``--drop-unmatched`` was not given."""
    from ..evaluation.runner import check_gold

    on_unmatched = "error" if args.candidates and not args.drop_unmatched else "exclude"
    check_gold(aset, manifest, on_unmatched, hint="add them to --candidates, or pass --drop-unmatched to "
                                                  "exclude these clips (or filter the manifest)")
    if args.candidates:  # say how the words were read, as the gold labels are
        changed = [f"{w} -> {label}" for w, label in zip(args.candidates, aset.candidates) if w.strip() != label]
        if changed:
            print(f"note: --candidates read as {aset.field} labels: {', '.join(changed)}", file=sys.stderr)
    return on_unmatched


def run_classification_cmd(args: argparse.Namespace) -> int:
    from ..evaluation.runner import run_classification

    aset = attribute_set_from_args(args)
    manifest = _manifest(args)
    on_unmatched = _check_gold(args, aset, manifest)
    model, source = _load_model(args)
    m = run_classification(model, manifest, aset, args.out, split=args.split, template=args.template,
                           ensemble=args.ensemble, batch_size=args.batch_size, progress=_progress(),
                           on_unmatched=on_unmatched, precision_source=source, centering=centering_spec(args))
    if m["excluded"]:  # never silent: the table shows the count, this line the labels
        excl = ", ".join(f"{k} ({v})" for k, v in sorted(m["excluded_labels"].items(), key=lambda kv: -kv[1]))
        print(f"note: {m['excluded']} clips excluded, their gold labels are no candidate: {excl}", file=sys.stderr)
    if args.json:
        print_json(m)
        return 0
    print_table(["accuracy", "UAR", "macro-F1", "clips", "excluded", "no label"],
                [[m["accuracy"], m["uar"], m["macro_f1"], m["count"], m["excluded"], m["data"]["no_label"]]])
    print(f"precision {model.precision} ({source}); report in {args.out}")
    return 0
