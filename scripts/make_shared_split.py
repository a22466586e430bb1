#!/usr/bin/env python
"""Regenerate the committed split of the shared real data (``src/paraspeechclap/data/splits/shared_real.json``).

Speaker-disjoint 70/15/15 split of the shared manifests (``real/``, ``real2/``, ``real3/``) balanced over
emotion, corpus and corpus x emotion (:func:`paraspeechclap.data.splits.speaker_disjoint_split`).
The batches are split in the groups they arrived in (``GROUPS``: real and real2 together, then real3
on its own, with the same seed and fractions), so adding a batch never moves a row of an earlier one:
the default model's train, dev and test speakers stay what they were.
Fixed choices: the 8 CC0 Thorsten clips and the two single whisper clips (wesper, whisper2voice) go
to test (they are example clips and the only real whispers; whispered training data comes from
synthesis).

Usage:
    python scripts/make_shared_split.py [--data-root ../shared/data] [--seed 0] [--out PATH]
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

from paraspeechclap.atomic import atomic_write_text
from paraspeechclap.data.manifest import Manifest, load_manifest
from paraspeechclap.data.splits import SPLITS, SplitFile, find_shared_data, speaker_disjoint_split, speaker_group
from paraspeechclap.data.vocabulary import map_label

MANIFESTS = {"real": "real/manifest.jsonl", "real2": "real2/manifest.jsonl", "real3": "real3/manifest.jsonl"}
GROUPS = (("real", "real2"), ("real3",))
FIXED_SOURCES_TO_TEST = ("thorsten", "wesper", "whisper2voice")
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src/paraspeechclap/data/splits/shared_real.json"


def build(data_root: Path, seed: int, fractions: tuple[float, float, float]) -> tuple[SplitFile, Manifest, list[str]]:
    parts, names, assign = [], [], []
    for group in GROUPS:
        ms = [load_manifest(data_root / MANIFESTS[name]) for name in group]
        gm = Manifest.concat(ms)
        fixed = {speaker_group(r): "test" for r in gm if r["source"] in FIXED_SOURCES_TO_TEST}
        assign += speaker_disjoint_split(gm.rows, fractions, seed, fixed=fixed)
        parts += ms
        names += [name for name, m in zip(group, ms) for _ in range(len(m))]
    allm = Manifest.concat(parts)
    speakers = {}
    for r, a in zip(allm, assign):
        if speakers.setdefault(speaker_group(r), a) != a:
            sys.exit(f"speaker {speaker_group(r)} is in two splits (a speaker id shared across batches?)")
    rows = {allm.key(i): (names[i], assign[i]) for i in range(len(allm))}
    if len(rows) != len(allm):
        sys.exit("duplicate row keys across the shared manifests")
    meta = {
        "format": "paraspeechclap-split/1",
        "description": "Speaker-disjoint split of the shared real data; regenerate with scripts/make_shared_split.py",
        "seed": seed,
        "fractions": list(fractions),
        "fixed": {"test": list(FIXED_SOURCES_TO_TEST)},
        "groups": [list(g) for g in GROUPS],
    }
    return SplitFile(rows, dict(MANIFESTS), meta), allm, assign


def report(allm: Manifest, assign: list[str]) -> None:
    table: dict[str, collections.Counter] = {s: collections.Counter() for s in SPLITS}
    for r, s in zip(allm, assign):
        table[s][(map_label(r.get("emotion"), "emotion") or "<none>", r["source"])] += 1
    for s in SPLITS:
        n = sum(table[s].values())
        spk = len({r.get("speaker") for r, a in zip(allm, assign) if a == s})
        print(f"{s}: {n} rows ({n / len(allm):.1%}), {spk} speakers")
        for label in ("angry", "happy", "saddened", "neutral"):
            by_src = {src: c for (lab, src), c in sorted(table[s].items()) if lab == label}
            print(f"  {label:9s} {sum(by_src.values()):4d}  {by_src}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", default=None, help="folder with real/, real2/, real3/ (default: auto-detect)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args()
    sf, allm, assign = build(find_shared_data(args.data_root), args.seed, (0.7, 0.15, 0.15))
    report(allm, assign)
    atomic_write_text(args.out, sf.dumps())
    print(f"wrote {args.out} ({len(sf.rows)} rows)")


if __name__ == "__main__":
    main()
