"""Rebuild the measured parts of README.md and MODEL_CARD.md from the committed results.

Every table or sentence of numbers in the two documents sits between markers::

    <!-- report:NAME -->
    ...text made by the block NAME from benchmarks/results/*.json...
    <!-- /report:NAME -->

and the blocks (:data:`BLOCKS`, in ``report_blocks.py``) make that text from the results files, which
record the command that measured them. Figures of earlier models that can no longer be regenerated
come from ``benchmarks/results/historical.json``, marked as historical.

    python benchmarks/report.py            # rewrite the blocks of both documents in place
    python benchmarks/report.py --check    # exit 1 (with a diff) when a document differs from the results

``--root DIR`` works on another checkout (the test runs ``--check`` on a copy with one result changed).
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

DOCUMENTS = ("README.md", "MODEL_CARD.md")
_BLOCK = re.compile(r"(<!-- report:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /report:(?P=name) -->)", re.S)


class ReportError(Exception):
    """A missing or unreadable results file, or a block name nobody knows."""


class Results:
    """The results folder: ``results["quality_test_fp32"]`` loads ``quality_test_fp32.json`` once."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.folder = root / "benchmarks" / "results"
        self._cache: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name not in self._cache:
            path = self.folder / f"{name}.json"
            try:
                self._cache[name] = json.loads(path.read_text(encoding="utf-8"))
            except OSError:
                raise ReportError(f"{path}: missing; run the benchmark that writes it") from None
            except ValueError as exc:
                raise ReportError(f"{path}: not valid JSON ({exc})") from None
        return self._cache[name]

    def has(self, name: str) -> bool:
        return (self.folder / f"{name}.json").is_file()

    def file(self, relative: str) -> Any:
        """Another JSON file of the checkout (e.g. the test floors)."""
        path = self.root / relative
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except OSError:
            raise ReportError(f"{path}: missing") from None


Block = Callable[[Results], str]


def render(text: str, blocks: dict[str, Block], results: Results, where: str) -> str:
    """``text`` with every marked block's body replaced by what its block makes now."""
    def replace(m: re.Match[str]) -> str:
        name = m.group("name")
        if name not in blocks:
            raise ReportError(f"{where}: unknown block {name!r} (known: {', '.join(sorted(blocks))})")
        body = blocks[name](results).rstrip("\n") + "\n"
        return m.group(1) + body + m.group(4)

    return _BLOCK.sub(replace, text)


def run(root: Path, check: bool) -> int:
    """Render every document; write it (or, with ``check``, print a diff). Returns the exit status."""
    from report_blocks import BLOCKS

    results, stale = Results(root), []
    for doc in DOCUMENTS:
        path = root / doc
        old = path.read_text(encoding="utf-8")
        new = render(old, BLOCKS, results, doc)
        if new == old:
            continue
        stale.append(doc)
        if check:
            sys.stdout.writelines(difflib.unified_diff(old.splitlines(True), new.splitlines(True), doc, doc + " (results)"))
        else:
            from paraspeechclap.atomic import atomic_write_text

            atomic_write_text(path, new)
    if check and stale:
        print(f"report: {', '.join(stale)} differ from benchmarks/results/ (run python benchmarks/report.py)",
              file=sys.stderr)
        return 1
    print(f"report: {'rewrote ' + ', '.join(stale) if stale else 'documents match the results'}", file=sys.stderr)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="exit 1 when a document differs from the results")
    ap.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1], help="the checkout")
    args = ap.parse_args()
    try:
        return run(args.root.resolve(), args.check)
    except ReportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
