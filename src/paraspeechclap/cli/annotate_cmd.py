"""``annotate``: style tags, measurements, captions and embeddings for a whole corpus.

Unlike ``embed``/``index``, bad clips never stop the job: they are listed in ``OUT/errors.jsonl``.
Re-running into the same ``--out`` finishes an interrupted job (finished shards are kept) and does
nothing when the same job is already complete.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..errors import InputError
from .common import (
    add_center_args,
    add_executor_args,
    add_manifest_source_args,
    add_model_args,
    executor_options,
    model_and_executor,
    model_load_spec,
    positive_int,
    print_json,
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..annotate.labels import DEFAULT_CAPTIONS, DEFAULT_MIN_CONFIDENCE, DEFAULT_SETS
    from ..annotate.run import DEFAULT_SHARD_SIZE

    p = sub.add_parser("annotate", help="tag, measure, caption and embed a corpus (PSC manifest + Parquet shards)",
                       description="Annotate every clip of a folder or manifest: calibrated zero-shot labels per "
                                   "attribute set (abstaining below --min-confidence), DSP measurements, "
                                   "ParaSpeechCaps-style tags and captions, and embeddings. Writes OUT/manifest.jsonl, "
                                   "OUT/shards/*.parquet, OUT/errors.jsonl and OUT/run.json; resumable.")
    p.add_argument("audio_dir", nargs="?", metavar="AUDIO_DIR",
                   help="a folder of audio files (recursive), local or on object storage (s3://bucket/prefix, "
                        "gs://...: read with pyarrow.fs, credentials and AWS_ENDPOINT_URL as usual)")
    p.add_argument("--manifest", metavar="F", help="a manifest instead (JSONL/JSON/CSV/Parquet, a saved Hugging Face "
                   "dataset or a hub name)")
    add_manifest_source_args(p)
    p.add_argument("--out", required=True, metavar="OUT", help="output folder (created; re-use it to resume)")
    p.add_argument("--attributes", nargs="+", default=None, metavar="SET",
                   help="attribute sets, in priority order (the first to label a field wins it; default: the sets "
                        f"the model was trained for; for Lite: {' '.join(DEFAULT_SETS)})")
    p.add_argument("--min-confidence", type=_probability, default=DEFAULT_MIN_CONFIDENCE, metavar="P",
                   help=f"abstain (label null) when the top calibrated probability is below P (default "
                        f"{DEFAULT_MIN_CONFIDENCE}: more likely than all other labels together)")
    p.add_argument("--calibration", default=None, metavar="CAL",
                   help="calibration.json (or its folder) from 'paraspeechclap calibrate' (default: the one shipped "
                        "beside the model when it matches the model and centring, else none: the raw softmax)")
    p.add_argument("--captions", type=positive_int, default=DEFAULT_CAPTIONS, metavar="K",
                   help=f"captions per clip (default {DEFAULT_CAPTIONS}; the first is the canonical wording)")
    p.add_argument("--seed", type=int, default=0, help="seed of the caption wordings (default 0)")
    p.add_argument("--shard-size", type=positive_int, default=DEFAULT_SHARD_SIZE, metavar="N",
                   help=f"clips per shard, the unit of resuming (default {DEFAULT_SHARD_SIZE})")
    add_executor_args(p, "decode/measure/embed")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print run.json to stdout")
    add_model_args(p)
    add_center_args(p, centred_head=False)  # centres stored embeddings: the main head
    p.set_defaults(func=run_annotate)


def _probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {value}")
    return value


def _items(args: argparse.Namespace) -> tuple[list[Any], dict[str, Any]]:
    from ..annotate.inputs import items_from_dir, items_from_manifest
    from ..storage import is_uri

    if bool(args.audio_dir) == bool(args.manifest):
        raise InputError("give either AUDIO_DIR or --manifest (exactly one)")
    if args.audio_dir:
        where = args.audio_dir if is_uri(args.audio_dir) else str(Path(args.audio_dir).resolve())
        return items_from_dir(args.audio_dir), {"audio_dir": where}
    from ..data.manifest import load_manifest

    manifest = load_manifest(args.manifest, split=args.split, audio_root=args.audio_root)
    return items_from_manifest(manifest, args.speaker_field), {"manifest": manifest.name, "split": args.split}


def _calibration(args: argparse.Namespace, model: Any) -> Any | None:
    """The explicit calibration (refused on a model or centring mismatch), else the model's shipped
    one when it matches, else None."""
    from ..calibration import Calibration, center_key, shipped_calibration

    center = center_key(args.center, args.reference)
    if args.calibration:
        path = Path(args.calibration)
        cal = Calibration.load(path / "calibration.json" if path.is_dir() else path)
        cal.check(model.checksum, center)
        return cal
    cal = shipped_calibration(args.model, model, center)
    if cal is None and shipped_calibration(args.model, model, None) is not None:
        print(f"note: the shipped calibration is for another centring; this run (center={center}) reports the "
              "uncalibrated softmax", file=sys.stderr)
    return cal


def run_annotate(args: argparse.Namespace) -> int:
    from ..annotate.labels import default_attribute_sets
    from ..annotate.run import Settings, annotate, print_summary
    from ..pretrained import is_official_checkpoint

    items, info = _items(args)
    with model_and_executor(args) as model:
        official = is_official_checkpoint(args.model)
        settings = Settings(attributes=list(args.attributes or default_attribute_sets(model, official)),
                            min_confidence=args.min_confidence, captions=args.captions, seed=args.seed,
                            shard_size=args.shard_size, center=args.center, reference=list(args.reference or []),
                            batch_size=args.batch_size, executor=args.executor)
        calibration = _calibration(args, model)
        settings.calibration = calibration.source if calibration is not None else None
        progress = not args.no_progress and sys.stderr.isatty()
        record = annotate(model, items, args.out, settings, calibration, official, progress, info,
                          model_load_spec(args, model), executor_options(args))
    if args.json:
        print_json(record)
    print_summary(record, Path(args.out))
    return 0
