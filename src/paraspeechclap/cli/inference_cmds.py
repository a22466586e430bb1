"""``score``, ``classify`` and ``embed``: inference with a trained model."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import numpy as np

from ..atomic import atomic_path, atomic_write_json
from ..errors import InputError
from ..inference import DEFAULT_TEMPLATE
from .common import (
    add_center_args,
    add_executor_args,
    add_model_args,
    center_json,
    center_kwargs,
    embedder_from_args,
    model_and_executor,
    model_from_args,
    print_json,
    print_table,
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="cosine similarity of audio clips to style captions",
                       description="Score audio clips against one or more style captions.")
    _add_inputs(p)
    p.add_argument("--text", action="append", required=True, metavar="TEXT", help="a caption (repeatable)")
    p.add_argument("--json", action="store_true", help="print JSON")
    add_model_args(p)
    add_center_args(p)
    p.set_defaults(func=run_score)

    p = sub.add_parser("classify", help="zero-shot style classification of audio clips",
                       description="Rank candidate styles for each clip (zero-shot).")
    _add_inputs(p)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--candidates", nargs="+", metavar="C", help="candidate labels")
    which.add_argument("--attribute", metavar="SET",
                       help="a named attribute set (see `paraspeechclap data sets`): its candidates, scored "
                            "with its prompt ensemble")
    p.add_argument("--template", default=DEFAULT_TEMPLATE, metavar="T",
                   help=f"prompt template with {{}} for the label (default: {DEFAULT_TEMPLATE!r})")
    p.add_argument("--json", action="store_true", help="print JSON")
    add_model_args(p)
    add_center_args(p)
    p.set_defaults(func=run_classify)

    p = sub.add_parser("embed", help="write audio embeddings to a .npy file",
                       description="Embed audio files (or a manifest) into OUT.npy plus OUT.ids.json.")
    _add_inputs(p)
    p.add_argument("--out", required=True, metavar="OUT.npy", help="output embeddings (float32, (N, D))")
    p.add_argument("--skip-bad", action="store_true", help="report unreadable items and carry on")
    add_model_args(p)
    add_center_args(p)
    add_executor_args(p)
    p.set_defaults(func=run_embed)


def _add_inputs(p: argparse.ArgumentParser) -> None:
    p.add_argument("audio", nargs="*", metavar="AUDIO", help="audio files")
    p.add_argument("--manifest", metavar="F", help="a manifest (JSONL/CSV/Parquet) instead of files")
    p.add_argument("--audio-root", metavar="DIR", help="audio root of the manifest (default: its directory)")


def run_score(args: argparse.Namespace) -> int:
    items, speakers = _items(args)
    model = model_from_args(args)
    scores = model.score(items, args.text, batch_size=args.batch_size, **center_kwargs(args, speakers))
    if args.json:
        print_json({"audio": items, "texts": args.text, "scores": scores.round(6).tolist(),
                    "model": model.model_id, "center": center_json(args, model)})
        return 0
    header = ["audio"] + [t if len(t) <= 40 else t[:37] + "..." for t in args.text]
    print_table(header, [[a, *map(float, row)] for a, row in zip(items, scores)])
    return 0


def run_classify(args: argparse.Namespace) -> int:
    items, speakers = _items(args)
    model = model_from_args(args)
    centering = center_kwargs(args, speakers)
    if args.attribute:
        ranked = _classify_attribute(model, args, items, centering)
    else:
        ranked = model.classify(items, args.candidates, template=args.template, batch_size=args.batch_size,
                                **centering)
    if args.json:
        print_json([{"audio": a, "ranking": [{"label": lab, "score": round(s, 6)} for lab, s in r],
                     "center": center_json(args, model)} for a, r in zip(items, ranked)])
        return 0
    rows = [[a, r[0][0], r[0][1], ", ".join(f"{lab} {s:.3f}" for lab, s in r[1:4])] for a, r in zip(items, ranked)]
    print_table(["audio", "best", "score", "runners-up"], rows)
    return 0


def _classify_attribute(model, args: argparse.Namespace, items: list[str],
                        centering: dict[str, Any]) -> list[list[tuple[str, float]]]:
    """Rank an attribute set's candidates, each class the mean of its prompt ensemble."""
    from ..data.attributes import get_attribute_set
    from ..evaluation.classification import embed_class_prompts

    aset = get_attribute_set(args.attribute)
    prompts = aset.prompts(ensemble=True)
    classes = embed_class_prompts(model, prompts, aset.candidates)  # (C, D)
    return model.rank_classes(items, classes, aset.candidates, batch_size=args.batch_size, **centering)


def _items(args: argparse.Namespace) -> tuple[list[str], list[Any] | None]:
    """The audio paths the flags name, and their speaker ids (from a manifest's ``--speaker-field``)."""
    if args.manifest and args.audio:
        raise InputError("give audio files or --manifest, not both")
    if args.manifest:
        from ..centering import manifest_speakers
        from ..data.manifest import load_manifest

        manifest = load_manifest(args.manifest, audio_root=args.audio_root)
        speakers = manifest_speakers(manifest, args.speaker_field) if args.center == "speaker" else None
        return [str(manifest.audio_path(i)) for i in range(len(manifest))], speakers
    if not args.audio:
        raise InputError("no audio given: pass audio files or --manifest")
    if args.center == "speaker":
        raise InputError("--center speaker needs speaker ids: pass --manifest with a speaker field "
                         "(--speaker-field), or use --center collection or --reference")
    return list(args.audio), None


def run_embed(args: argparse.Namespace) -> int:
    if not args.out.endswith(".npy"):
        raise InputError(f"--out must end with .npy: {args.out}")
    items, speakers = _items(args)
    with model_and_executor(args) as model:
        res = embedder_from_args(args, model).embed_audio_report(
            items, batch_size=args.batch_size, progress=True, skip_bad=args.skip_bad, **center_kwargs(args, speakers))
    for i, msg in res.errors:
        print(f"skipped: {msg}", file=sys.stderr)
    with atomic_path(args.out) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, res.embeddings.astype(np.float32))
    ids = {"model": model.model_id, "checksum": model.checksum, "precision": model.precision,
           "dim": int(res.embeddings.shape[1]),
           "items": [items[i] for i in res.indices],
           "skipped": [{"item": items[i], "error": msg} for i, msg in res.errors],
           "center": center_json(args, model, res.centering.head), "executor": args.executor}
    atomic_write_json(args.out[: -len(".npy")] + ".ids.json", ids)
    print(f"wrote {len(res.indices)} embeddings to {args.out}" +
          (f" ({len(res.errors)} bad item(s) skipped)" if res.errors else ""), file=sys.stderr)
    return 0
