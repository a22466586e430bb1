"""``models``: the models that can be loaded by name."""

from __future__ import annotations

import argparse
import dataclasses

from .common import print_json, print_table


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the models that can be loaded by name")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..pretrained import list_models

    models = list_models()
    if args.json:
        print_json([dataclasses.asdict(m) for m in models])
    else:
        print_table(["name", "kind", "available", "location / note"],
                    [[m.name, m.kind, "yes" if m.available else "no", m.location or m.description] for m in models])
    return 0
