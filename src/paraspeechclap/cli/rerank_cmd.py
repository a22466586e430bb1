"""``rerank``: best-of-N selection of style-prompted TTS outputs (see ``docs/rerank.md``).

- ``paraspeechclap rerank --input-dir D --out-name NAME``: the official layout
  (``D/iter_{k}/audios/{i}.wav``), output in ``D/NAME``.
- ``paraspeechclap rerank --prompts prompts.txt --candidates DIR --out OUT``: ``DIR/{i}/*.wav``.

The input is checked before the model loads; every problem is printed as one line naming the
file. Without ``--skip-bad`` any problem stops the run (exit 2) and nothing is written.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from ..errors import InputError
from .common import add_model_args, finite_float, model_from_args, print_json, print_table


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "rerank", help="best-of-N: pick the candidate clip that best matches each style prompt",
        description="Score N candidate clips per style prompt with the model (cosine similarity), copy each "
        "prompt's winner and write selection_summary.json (the official best_of_n.py output).",
    )
    g = p.add_argument_group("official layout")
    g.add_argument("--input-dir", metavar="D", help="folder with iter_1..iter_N/audios/{i}.wav and "
                   "iter_1/input_descriptions.txt")
    g.add_argument("--out-name", metavar="NAME", help="output folder name inside D (e.g. best_of_10)")
    g = p.add_argument_group("plain layout")
    g.add_argument("--prompts", metavar="FILE", help="one style prompt per line (blank lines dropped)")
    g.add_argument("--candidates", metavar="DIR", help="DIR/{i}/*.wav: the candidates of prompt i (sorted by name)")
    g.add_argument("--out", metavar="OUT", help="output folder")
    g = p.add_argument_group("reward (docs/rerank.md)")
    g.add_argument("--wer", metavar="FILE", help="per-candidate WER table (CSV/TSV/JSONL with prompt_idx, candidate "
                   "and the WER column); default: the layout's wer_per_example.txt files")
    g.add_argument("--wer-column", default="wer", metavar="C", help="WER column of --wer (default: wer)")
    g.add_argument("--wer-threshold", type=float, metavar="T",
                   help="rank candidates with WER > T after the others (all if none passes)")
    g.add_argument("--wer-weight", type=float, default=0.0, metavar="W",
                   help="reward z(style) - W * z(WER) per prompt (default 0: style score only)")
    g.add_argument("--quality-gate", action="store_true",
                   help="rank noisy (blind SNR < 6 dB) or clipped candidates after the others and score every "
                        "candidate with its edge silence trimmed (reward gaming guard; docs/rerank.md)")
    g.add_argument("--gate-min-snr-db", type=finite_float, metavar="DB",
                   help="with --quality-gate: the blind-SNR threshold (default 6, chosen on dev data; 12 also "
                        "catches most 10 dB noise but fails about 3x more clean clips: docs/rerank.md)")
    g = p.add_argument_group("preference pairs")
    g.add_argument("--pairs", metavar="FILE.jsonl", help="also write (chosen, rejected) preference pairs")
    g.add_argument("--pairs-rule", default="best-vs-rest", choices=["best-vs-rest", "best-vs-worst"],
                   help="winner vs every candidate it beats by the margin, or vs the worst only")
    g.add_argument("--pairs-margin", type=float, default=0.0, metavar="M", help="smallest reward margin (default 0)")
    p.add_argument("--skip-bad", action="store_true",
                   help="decide prompts on the remaining candidates when some are missing or unreadable")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.add_argument("--json", action="store_true", help="print JSON")
    add_model_args(p)
    g = p.add_argument_group("centring")
    g.add_argument("--reference", nargs="+", default=None, metavar="CLIP",
                   help="subtract the mean embedding of these clips (e.g. the voice's neutral speech) from every "
                        "candidate's before scoring. There is no --center: one prompt's candidates share the "
                        "style being judged, so their own mean is no neutral reference")
    p.set_defaults(func=run_rerank)


def _load_set(args: argparse.Namespace) -> tuple[Any, Path]:
    from ..reranking.layouts import load_official, load_plain

    official = args.input_dir is not None or args.out_name is not None
    plain = any(x is not None for x in (args.prompts, args.candidates, args.out))
    if official == plain:
        raise InputError("rerank: give --input-dir D --out-name NAME, or --prompts F --candidates DIR --out OUT")
    if official:
        if not args.input_dir or not args.out_name:
            raise InputError("rerank: --input-dir and --out-name go together")
        name = args.out_name
        if Path(name).name != name or name in (".", "..") or re.fullmatch(r"iter_\d+", name):
            raise InputError(f"--out-name must be a plain folder name other than iter_k, got {name!r}")
        return load_official(args.input_dir), Path(args.input_dir) / name
    if not (args.prompts and args.candidates and args.out):
        raise InputError("rerank: --prompts, --candidates and --out go together")
    return load_plain(args.prompts, args.candidates), Path(args.out)


def _say(kind: str, lines: list[str]) -> None:
    for line in lines:
        print(f"{kind}: {line}", file=sys.stderr)


def _check_input(rset: Any, skip_bad: bool) -> None:
    """Print the layout's problems and warnings; stop unless they are all skippable and skipped."""
    _say("problem", [p.message for p in rset.problems])
    _say("warning", rset.warnings)
    fatal = [p for p in rset.problems if p.fatal]
    if fatal or (rset.problems and not skip_bad):
        hint = "" if fatal else " (--skip-bad decides those prompts on the remaining candidates)"
        raise InputError(f"{len(rset.problems)} problem(s) with the input in {rset.root}; nothing written{hint}")


def _wer(args: argparse.Namespace, rset: Any, config: Any) -> Any:
    from ..reranking.layouts import read_wer_table

    if args.wer:
        return read_wer_table(args.wer, rset, args.wer_column)
    if not config.uses_wer:
        return None
    wer = rset.wer_from_files()
    if wer is None:
        raise InputError(f"{rset.root}: --wer-threshold/--wer-weight need wer_per_example.txt in every iter_k or --wer")
    return wer


def _check_selections(selections: list, skip_bad: bool) -> list[int]:
    """Report scoring issues; stop on unreadable clips or prompts without a winner unless skipping."""
    bad = [i.message for s in selections for i in s.issues if i.kind == "unreadable"]
    _say("problem", bad)
    _say("warning", [f"{i.message}; ranked last" for s in selections for i in s.silent])
    empty = [s.prompt_idx for s in selections if s.best is None]
    _say("problem", [f"prompt {i}: no usable candidate" for i in empty])
    if (bad or empty) and not skip_bad:
        raise InputError(f"{len(bad)} unreadable candidate(s), {len(empty)} prompt(s) without a usable candidate; "
                         "nothing written (--skip-bad decides on the remaining candidates)")
    return empty


def _gate(args: argparse.Namespace) -> Any:
    """The quality gate the flags ask for (None without ``--quality-gate``)."""
    from ..reranking import resolve_gate

    if args.gate_min_snr_db is not None and not args.quality_gate:
        raise InputError("--gate-min-snr-db sets the threshold of --quality-gate: add --quality-gate")
    return resolve_gate(args.quality_gate, args.gate_min_snr_db)


def run_rerank(args: argparse.Namespace) -> int:
    from ..reranking import (
        RewardConfig,
        as_scorer,
        best_of_n,
        make_pairs,
        write_outputs,
        write_pairs,
    )

    rset, out_dir = _load_set(args)
    if out_dir.exists() and not args.overwrite:
        raise InputError(f"{out_dir}: output folder exists; use --overwrite or another name")
    config = RewardConfig(args.wer_threshold, args.wer_weight)
    pairs_args = (args.pairs_rule, args.pairs_margin)
    if args.pairs:
        make_pairs([], *pairs_args)  # validates rule and margin before the model loads
    wer = _wer(args, rset, config)
    _check_input(rset, args.skip_bad)
    missing = {(p.prompt_idx, p.candidate) for p in rset.problems if not p.fatal}
    lists = [[None if (i, k) in missing else c for k, c in enumerate(cands)] for i, cands in enumerate(rset.candidates)]
    names = [[str(c) for c in cands] for cands in rset.candidates]
    model = model_from_args(args)
    gate = _gate(args)
    scorer = as_scorer(model, batch_size=args.batch_size, reference=args.reference, gate=gate)
    selections = best_of_n(scorer, rset.prompts, lists, wer, config, names, progress=True)
    empty = _check_selections(selections, args.skip_bad)
    info = {"model": model.model_id, "checksum": model.checksum, "precision": model.precision, "layout": rset.layout, "input": str(rset.root),
            "prompts": len(rset.prompts), "reward": config.as_dict(), "skip_bad": args.skip_bad,
            "quality_gate": None if gate is None else gate.as_dict(),
            "problems": [p.as_dict() for p in rset.problems], "warnings": rset.warnings,
            "prompts_without_winner": empty,
            "center": {"mode": "none", "reference": list(args.reference or [])}}  # fmt: skip
    pairs = make_pairs(selections, *pairs_args) if args.pairs else None
    write_outputs(out_dir, rset, selections, config, info, overwrite=args.overwrite)
    if pairs is not None:
        write_pairs(args.pairs, pairs)
    _report(args, out_dir, selections, config, pairs, empty)
    return 0


def _report(args: argparse.Namespace, out_dir: Path, selections: list, config: Any, pairs: list | None,
            empty: list[int]) -> None:
    from ..reranking import summary_entry

    if args.json:
        print_json({"out_dir": str(out_dir), "prompts": len(selections), "pairs": None if pairs is None else len(pairs),
                    "prompts_without_winner": empty,
                    "selections": [summary_entry(s, config) for s in selections]})  # fmt: skip
        return
    rows = [[s.prompt_idx, "-" if s.best is None else s.best + 1,
             "-" if s.best is None else float(s.scores[s.best]),
             len(s.skipped), len(s.silent), s.prompt if len(s.prompt) <= 50 else s.prompt[:47] + "..."]
            for s in selections]  # fmt: skip
    print_table(["prompt", "best", "score", "skipped", "silent", "text_prompt"], rows)
    extra = f", {len(pairs)} preference pairs in {args.pairs}" if pairs is not None else ""
    print(f"wrote {out_dir}{extra}", file=sys.stderr)
