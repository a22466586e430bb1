"""``paraspeechclap fit-centred-head``: fit a model's head for speaker-centred scoring on labelled clips and save
the model with it (:mod:`paraspeechclap.centred_head`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..errors import InputError
from .common import add_model_args, model_from_args, positive_float, positive_int, print_json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fit-centred-head", help="fit a head of its own for speaker-centred scoring on labelled clips",
                       description="Fit a second audio head that --center speaker scores with, on labelled clips of "
                                   "speakers heard in several classes, and save the model with it. Plain scoring, "
                                   "collection centring and the text side are unchanged.")
    p.add_argument("--manifest", nargs="+", required=True, metavar="LABELLED",
                   help="labelled manifests (JSONL/JSON/CSV/Parquet) with a speaker field")
    p.add_argument("--audio-root", default=None, metavar="DIR",
                   help="audio is at DIR/<source>/<relative_audio_path> (default: each manifest's directory)")
    p.add_argument("--split-file", default=None, metavar="F",
                   help="'shared' (the packaged split of the shared real data) or a split file: keep the rows of "
                        "--split only")
    p.add_argument("--split", default=None, choices=["train", "dev", "test"], help="the split of --split-file to keep")
    p.add_argument("--attribute", default="emotion8", metavar="SET",
                   help="attribute set whose labels and class prompts the head is fitted against (default emotion8)")
    p.add_argument("--speaker-field", default="speaker", metavar="F", help="speaker id field (default speaker)")
    p.add_argument("--min-clips", type=positive_int, default=2,
                   help="labelled clips a speaker needs, at least (default 2)")
    p.add_argument("--min-classes", type=positive_int, default=2,
                   help="classes a speaker must be heard in, at least (default 2)")
    p.add_argument("--steps", type=positive_int, default=300, help="full-batch steps (default 300)")
    p.add_argument("--lr", type=positive_float, default=1e-3, help="AdamW learning rate (default 1e-3)")
    p.add_argument("--seed", type=int, default=0, help="seed of the dropout masks (default 0)")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="where the model is saved with its centred head (config.json, model.safetensors, "
                        "centred_head.json)")
    p.add_argument("--json", action="store_true", help="print centred_head.json to stdout")
    add_model_args(p, precision_default="fp32", precision_help="fp32 (default: the head is fitted and saved in fp32)")
    p.set_defaults(func=run_fit_centred_head)


def _rows(args: argparse.Namespace) -> tuple[list[str], list[Any], list[Any], dict[str, int]]:
    """Audio paths, speaker ids and labels of the manifests' rows (of ``--split``), and the rows left out."""
    from ..centering import has_speaker_id
    from ..data.attributes import get_attribute_set
    from ..data.manifest import load_manifest
    from ..data.splits import load_shared_split, read_split_file

    if (args.split_file is None) != (args.split is None):
        raise InputError("--split-file and --split go together")
    sf = None
    if args.split_file is not None:
        sf = load_shared_split() if args.split_file == "shared" else read_split_file(args.split_file)
    aset = get_attribute_set(args.attribute)
    paths, speakers, gold = [], [], []
    left = {"other_split": 0, "no_speaker": 0}
    for name in args.manifest:
        manifest = load_manifest(name, audio_root=args.audio_root)
        for i, row in enumerate(manifest):
            if sf is not None and sf.split_of(row) != args.split:
                left["other_split"] += 1
            elif not has_speaker_id(row.get(args.speaker_field)):
                left["no_speaker"] += 1
            else:
                paths.append(str(manifest.audio_path(i)))
                speakers.append(str(row[args.speaker_field]))
                gold.append(aset.gold(row))
    return paths, speakers, gold, left


def run_fit_centred_head(args: argparse.Namespace) -> int:
    from ..atomic import atomic_write_json
    from ..centred_head import CentredHeadFit, fit_centred_head, select_rows

    fit = CentredHeadFit(args.attribute, args.min_clips, args.min_classes, args.steps, args.lr, seed=args.seed)
    paths, speakers, gold, left = _rows(args)
    keep = select_rows(speakers, gold, fit)
    if not keep:
        raise InputError(f"no speaker has >= {fit.min_clips} clips labelled in {fit.attribute} in >= "
                         f"{fit.min_classes} classes ({len(paths)} rows read, field {args.speaker_field!r})")
    model = model_from_args(args)
    base = model.checksum
    print(f"pooling {len(keep)} clips of {len({speakers[i] for i in keep})} speakers", file=sys.stderr)
    pooled = model.pool_audio([paths[i] for i in keep], batch_size=args.batch_size, progress=True)
    info = fit_centred_head(model, pooled, [speakers[i] for i in keep], [gold[i] for i in keep], fit)
    out = Path(args.out)
    model.save_pretrained(out)
    record = {"model": model.model_id, "base_checksum": base,
              "manifests": list(args.manifest), "split_file": args.split_file, "split": args.split,
              "speaker_field": args.speaker_field, "rows_read": len(paths), "rows_left_out": left, **info}
    atomic_write_json(out / "centred_head.json", record)
    if args.json:
        print_json(record)
    else:
        print(f"fitted on {info['clips']} labelled clips of {info['speakers']} speakers "
              f"(loss {info['loss'][0]:.3f} -> {info['loss'][1]:.3f}); saved to {out}", file=sys.stderr)
    return 0
