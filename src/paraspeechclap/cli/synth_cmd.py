"""``synth``: generate the offline synthetic style-speech corpus, or style-prompted candidates.

- ``paraspeechclap synth --out DIR --n N [--seed S] [--jobs J] [--engines E,..] [--voices V,..]
  [--exclude-voices V,..] [--mix espeak=0.7,..] [--format flac|wav] [--overwrite] [--json]``
- ``paraspeechclap synth --out DIR --prompted PROMPTS.jsonl | --random-prompts K
  [--candidates N] [--p-match P] ...`` (best-of-N layout, see ``docs/synth.md``)
- ``paraspeechclap synth --list-voices [--json]``

Needs the optional extra ``pip install 'paraspeechclap[synth]'``.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from ..errors import InputError
from .common import positive_int, print_json, print_table


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "synth",
        help="generate a labelled synthetic style-speech corpus (needs the [synth] extra)",
        description="Synthesise N clips with controlled pitch, rate, loudness, voice quality, clarity and "
        "gender (eSpeak NG, Piper, Kokoro, Flite + WORLD + effects), 16 kHz FLAC + manifest.jsonl. Needs "
        "`pip install 'paraspeechclap[synth]'` (and, for Flite, the flite program).",
    )
    p.add_argument("--out", metavar="DIR", help="output folder (audio root of the manifest)")
    p.add_argument("--n", type=int, default=100, metavar="N", help="number of clips (default 100)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="plan seed (default 0)")
    p.add_argument("--jobs", type=positive_int, default=os.cpu_count() or 1, metavar="J",
                   help="worker processes (default: all cores); output does not depend on it")
    p.add_argument("--engines", type=_csv, metavar="E,..",
                   help="engines to use: espeak, piper, kokoro, flite (default: all; the built-in mix gives "
                   "Flite no clips unless --mix names it)")
    p.add_argument("--voices", type=_csv, metavar="V,..", help="only these voices (engine:name or name)")
    p.add_argument("--exclude-voices", type=_csv, default=[], metavar="V,..", help="voices to leave out (held out)")
    p.add_argument("--mix", metavar="E=W,..",
                   help="share of clips per engine, e.g. espeak=0.7,piper=0.2,kokoro=0.1 (default: the built-in mix)")
    p.add_argument("--vary-formants", type=float, default=0.0, metavar="V",
                   help="scale each clip's formants by a random factor in [1/(1+V), 1+V] (default 0: off)")
    p.add_argument("--sentences", default="train", choices=["train", "dev", "test"],
                   help="sentence pool: train (default) for training corpora; dev or test for evaluation clips, "
                   "whose sentences no training corpus speaks")
    p.add_argument("--format", default="flac", choices=["flac", "wav"], help="audio format (default flac)")
    p.add_argument("--overwrite", action="store_true",
                   help="re-render existing clips (default: reuse them, i.e. resume) and accept other settings")
    p.add_argument("--list-voices", action="store_true", help="list engines and voices, then exit")
    g = p.add_argument_group("style-prompted candidates (for reranking)")
    src = g.add_mutually_exclusive_group()
    src.add_argument("--prompted", metavar="PROMPTS", help="JSONL of prompts: label fields or tags, optional text")
    src.add_argument("--random-prompts", type=positive_int, metavar="K", help="K random prompts from the style grid")
    g.add_argument("--candidates", type=positive_int, default=10, metavar="N",
                   help="candidates per prompt (default 10)")
    g.add_argument("--p-match", type=float, default=0.5, metavar="P",
                   help="probability that each prompted attribute is realised as prompted (default 0.5)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run_synth)


def _parse_mix(text: str | None) -> dict[str, float] | None:
    if text is None:
        return None
    mix: dict[str, float] = {}
    for part in _csv(text):
        name, sep, weight = part.partition("=")
        try:
            mix[name.strip()] = float(weight)
        except ValueError:
            raise InputError(f"--mix: expected ENGINE=WEIGHT, got {part!r}") from None
        if not sep:
            raise InputError(f"--mix: expected ENGINE=WEIGHT, got {part!r}")
    return mix


def _list_voices(args: argparse.Namespace) -> int:
    from ..synth.engines import ENGINES

    rows = [{"engine": n, "voice": v.name, "id": v.id, "gender": v.gender, "f0_hz": v.f0_hz,
             "installed": cls.available()} for n, cls in ENGINES.items() for v in cls.voices]  # fmt: skip
    if args.json:
        print_json(rows)
    else:
        table = [[r["id"], r["gender"], f"{r['f0_hz']:.0f}", r["installed"]] for r in rows]
        print_table(["id", "gender", "F0 Hz", "installed"], table)
    return 0


def run_synth(args: argparse.Namespace) -> int:
    if args.list_voices:
        return _list_voices(args)
    if not args.out:
        raise InputError("synth: --out DIR is required")
    from ..synth.engines import select_voices

    voices = select_voices(args.engines, args.voices, args.exclude_voices)
    mix = _parse_mix(args.mix)
    if args.prompted or args.random_prompts:
        return _run_prompted(args, voices)
    from ..synth.corpus import generate_corpus

    summary = generate_corpus(args.out, args.n, args.seed, args.jobs, voices, mix, args.format, args.overwrite,
                              args.vary_formants, args.sentences)
    out: dict[str, Any] = summary.as_dict()
    if args.json:
        print_json(out)
    else:
        print(f"wrote {summary.n} clips ({summary.generated} new, {summary.reused} reused) and {summary.manifest} "
              f"in {summary.seconds:.1f} s ({summary.clips_per_s:.2f} clips/s); per engine: {summary.per_engine}",
              file=sys.stderr)  # fmt: skip
    return 0


def _run_prompted(args: argparse.Namespace, voices: list) -> int:
    from ..synth.prompted import load_prompts, random_prompts, write_rerank_set

    prompts = load_prompts(args.prompted) if args.prompted else random_prompts(args.random_prompts, args.seed)
    summary = write_rerank_set(args.out, prompts, args.candidates, args.p_match, args.seed, args.jobs, voices,
                               args.overwrite, args.sentences)  # fmt: skip
    if args.json:
        print_json(summary)
    else:
        print(f"wrote {summary['candidates']} candidates x {summary['prompts']} prompts to {summary['out_dir']} "
              f"(prompted attributes realised as prompted: {summary['match_rate']})", file=sys.stderr)  # fmt: skip
    return 0
