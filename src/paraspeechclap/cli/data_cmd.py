"""``data``: validate manifests, show the shared split and list attribute sets.

- ``paraspeechclap data check MANIFEST [--audio-root DIR] [--split S] [--decode] [--json]``
- ``paraspeechclap data split [--split-file F] [--json]``
- ``paraspeechclap data sets [--json]``
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .common import print_json, print_table


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "data", help="check manifests, show the shared split, list attribute sets", description="Data utilities."
    )
    dsub = p.add_subparsers(dest="data_command", metavar="DATA_COMMAND")
    dsub.required = True

    c = dsub.add_parser(
        "check",
        help="validate a manifest and summarise it",
        description="Validate a manifest (fields, types, audio files) and print a summary. "
        "Exit status 1 when some rows are bad.",
    )
    c.add_argument(
        "manifest",
        metavar="MANIFEST",
        help="JSONL/JSON/CSV/TSV/Parquet file, saved Hugging Face dataset dir, or hub name",
    )
    c.add_argument("--audio-root", metavar="DIR", help="audio root (default: the manifest's directory)")
    c.add_argument("--split", metavar="S", help="split of a Hugging Face dataset")
    c.add_argument("--decode", action="store_true", help="decode every file fully (default: headers only)")
    c.add_argument("--no-audio", action="store_true", help="check fields only, not the audio files")
    c.add_argument(
        "--max-problems",
        type=int,
        default=50,
        metavar="N",
        help="list at most N problems in text output (default 50; JSON lists all)",
    )
    c.add_argument("--json", action="store_true", help="print JSON")
    c.set_defaults(func=run_check)

    s = dsub.add_parser(
        "split",
        help="summarise the committed split of the shared real data",
        description="Rows per split and manifest of the shared split file.",
    )
    s.add_argument("--split-file", metavar="F", help="a split file (default: the packaged shared_real.json)")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(func=run_split)

    a = dsub.add_parser(
        "sets",
        help="list the zero-shot attribute sets",
        description="Attribute sets: candidates, gold field and default prompt template.",
    )
    a.add_argument("--json", action="store_true", help="print JSON")
    a.set_defaults(func=run_sets)


def _top(counts: dict[str, int], n: int = 12) -> str:
    items = list(counts.items())
    text = ", ".join(f"{k} {v}" for k, v in items[:n])
    return text + (f", ... ({len(items)} in all)" if len(items) > n else "") if items else "-"


def run_check(args: argparse.Namespace) -> int:
    from ..data.check import check_manifest

    report = check_manifest(
        args.manifest,
        audio_root=args.audio_root,
        split=args.split,
        check_audio=not args.no_audio,
        decode=args.decode,
        progress=sys.stderr.isatty(),
    )
    if args.json:
        print_json(report.to_json())
        return 0 if report.ok else 1
    print(f"manifest:    {report.manifest}")
    print(f"audio root:  {report.audio_root}")
    print(f"rows:        {report.rows} ({report.bad_rows} bad, {len(report.warnings)} warnings)")
    print(f"hours:       {report.hours:.3f}")
    print(f"sources:     {_top(report.sources)}")
    print(f"speakers:    {report.speakers}")
    print(f"genders:     {_top(report.genders)}")
    print(f"emotions:    {_top(report.emotions)}")
    print(f"intrinsic:   {_top(report.intrinsic_tags)}")
    print(f"situational: {_top(report.situational_tags)}")
    for f, counts in report.labels.items():
        print(f"{f + ':':12s} {_top(counts)}")
    print(f"captions:    {report.captions} rows with text_description")
    if report.problems:
        shown = report.problems[: max(args.max_problems, 0)]
        print(f"problems ({len(report.problems)}):")
        for prob in shown:
            print(f"  {prob}")
        if len(shown) < len(report.problems):
            print(f"  ... {len(report.problems) - len(shown)} more (use --json for all)")
    print("OK" if report.ok else f"FAILED: {report.bad_rows} bad rows")
    return 0 if report.ok else 1


def run_split(args: argparse.Namespace) -> int:
    from ..data.splits import SPLITS, load_shared_split

    sf = load_shared_split(args.split_file)
    counts = sf.counts()
    if args.json:
        print_json({"manifests": sf.manifests, "counts": counts, **{k: v for k, v in sf.meta.items()}})
        return 0
    rows: list[list[Any]] = [[m, *(c.get(s, 0) for s in SPLITS), sum(c.values())] for m, c in counts.items()]
    rows.append(["all", *(sum(c.get(s, 0) for c in counts.values()) for s in SPLITS), len(sf.rows)])
    print_table(["manifest", *SPLITS, "total"], rows)
    return 0


def run_sets(args: argparse.Namespace) -> int:
    from ..data.attributes import get_attribute_set, list_attribute_sets

    sets = [get_attribute_set(n) for n in list_attribute_sets()]
    if args.json:
        print_json(
            [
                {
                    "name": s.name,
                    "candidates": list(s.candidates),
                    "field": s.field,
                    "template": s.template,
                    "prompts": {k: v[0] for k, v in s.prompts().items()},
                    "official": s.official,
                }
                for s in sets
            ]
        )
        return 0
    print_table(
        ["name", "field", "candidates", "template"],
        [[s.name, s.field, ", ".join(s.candidates), s.template] for s in sets],
    )
    return 0
