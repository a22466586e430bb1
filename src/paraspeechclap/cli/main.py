"""Entry point of the ``paraspeechclap`` console script.

Each subcommand lives in its own module under :mod:`paraspeechclap.cli` and exposes
``add_parser(subparsers)``, which registers its parser and sets ``func`` (the handler taking the
parsed ``argparse.Namespace`` and returning an exit code). Modules are imported lazily by name so
that ``paraspeechclap --help`` stays fast and an optional extra missing for one command does not
break the others.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Sequence

from ..errors import ParaSpeechCLAPError

# Subcommand modules, in the order they appear in ``--help``.
SUBCOMMAND_MODULES: tuple[str, ...] = (
    "paraspeechclap.cli.inference_cmds",  # score, classify, embed
    "paraspeechclap.cli.models_cmd",  # models
    "paraspeechclap.cli.data_cmd",  # data check / split / sets
    "paraspeechclap.cli.evaluate_cmd",  # evaluate retrieval / classification
    "paraspeechclap.cli.calibrate_cmd",  # calibrate (temperature scaling of zero-shot scores)
    "paraspeechclap.cli.centred_head_cmd",  # fit-centred-head (a head for speaker-centred scoring)
    "paraspeechclap.cli.search_cmd",  # index, search
    "paraspeechclap.cli.annotate_cmd",  # annotate (tags, measurements, captions for a corpus)
    "paraspeechclap.cli.train_cmd",  # train
    "paraspeechclap.cli.synth_cmd",  # synth (synthetic corpus, prompted candidates)
    "paraspeechclap.cli.rerank_cmd",  # rerank (best-of-N)
    "paraspeechclap.cli.serve_cmd",  # serve (HTTP service and web page)
)


def get_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="paraspeechclap",
        description="Speaking-style retrieval, zero-shot classification and reranking with ParaSpeechCLAP.",
    )
    parser.add_argument("--version", action="version", version=f"paraspeechclap {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show debug logging and full tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = get_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except ParaSpeechCLAPError as exc:
        if args.verbose:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
