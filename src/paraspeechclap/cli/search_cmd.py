"""``index`` and ``search``: style search over a folder (or manifest) of audio files.

``index`` embeds the files once into an index directory and, when run again, embeds only new or
changed files (and keeps an approximate FAISS index beside large collections, ``--ann``); ``search``
embeds a caption and lists the best-matching clips.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..search.backends import BACKEND_CHOICES
from .common import (
    add_center_args,
    add_executor_args,
    add_model_args,
    center_json,
    embedder_from_args,
    model_and_executor,
    model_from_args,
    positive_int,
    print_json,
    print_table,
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("index", help="embed a folder or manifest of audio into a searchable index",
                       description="Build or update an embedding index (only new or changed files are embedded).")
    p.add_argument("audio_dir", nargs="?", metavar="AUDIO_DIR", help="folder searched recursively for audio files")
    p.add_argument("--manifest", metavar="F", help="a manifest instead of a folder")
    p.add_argument("--split", default=None, metavar="S", help="split of a Hugging Face dataset manifest")
    p.add_argument("--audio-root", metavar="DIR", help="audio root of the manifest (default: its directory)")
    p.add_argument("--out", required=True, metavar="INDEX", help="index directory (created or updated)")
    p.add_argument("--speaker-field", default="speaker", metavar="F",
                   help="manifest field stored as each row's speaker id, for 'search --center speaker' "
                        "(default: speaker; rows without it have none)")
    p.add_argument("--skip-bad", action="store_true", help="skip unreadable files (listed in meta.json)")
    p.add_argument("--ann", default="auto", choices=["auto", "none", "ivf", "hnsw"],
                   help="approximate (FAISS) index kept beside the exact embeddings for fast search of large "
                        "collections: auto (default) = none below 50,000 clips, else ivf; none = exact only; "
                        "ivf or hnsw at any size. Rebuilt whenever the embeddings change. ivf/hnsw need "
                        "pip install 'paraspeechclap[faiss]' (auto without FAISS builds none)")
    p.add_argument("--json", action="store_true", help="print build statistics as JSON")
    add_model_args(p)
    add_executor_args(p)
    p.set_defaults(func=run_index)

    p = sub.add_parser("search", help="find the clips of an index that best match a style caption",
                       description="Search an index with one or more captions.")
    p.add_argument("index", metavar="INDEX", help="index directory written by 'paraspeechclap index'")
    p.add_argument("queries", nargs="+", metavar="QUERY", help="style caption(s), e.g. 'a woman whispering slowly'")
    p.add_argument("--top-k", type=int, default=10, metavar="K", help="results per query (default 10)")
    p.add_argument("--backend", default="auto", choices=list(BACKEND_CHOICES),
                   help="auto (default): ann when the index has an ANN index ('index --ann') and FAISS is "
                        "installed, else numpy; numpy or faiss: exact search; ann: the approximate index (an "
                        "error when there is none). With --center/--reference the search is exact (numpy): "
                        "the ANN index holds the uncentred vectors")
    p.add_argument("--nprobe", type=positive_int, default=None, metavar="N",
                   help="IVF lists scanned per query (default: stored with the index, nlist/64 and at least "
                        "16); more = higher recall, slower")
    p.add_argument("--ef-search", type=positive_int, default=None, metavar="N",
                   help="HNSW candidate beam per query (default: stored with the index, 256); more = higher "
                        "recall, slower")
    p.add_argument("--json", action="store_true", help="print JSON")
    add_model_args(p)
    add_center_args(p, speaker_field=False, speaker_help="the speaker ids 'index --manifest' stored",
                    centred_head=False)  # centres stored embeddings: the main head
    p.set_defaults(func=run_search)


def _index_items(args: argparse.Namespace) -> tuple[list[Any], Path, dict[str, Any]]:
    from ..search.index import IndexItem, list_audio_files

    if bool(args.audio_dir) == bool(args.manifest):
        raise InputError("give either AUDIO_DIR or --manifest (exactly one)")
    if args.audio_dir:
        root = Path(args.audio_dir)
        items = [IndexItem(p) for p in list_audio_files(root)]
        return items, root, {"audio_dir": str(root.resolve())}
    from ..centering import has_speaker_id
    from ..data.manifest import load_manifest

    manifest = load_manifest(args.manifest, split=args.split, audio_root=args.audio_root)
    items = []
    for i, row in enumerate(manifest):
        extra = {"key": manifest.key(i)}
        if has_speaker_id(row.get(args.speaker_field)):
            extra["speaker"] = str(row[args.speaker_field])
        desc = row.get("text_description")
        if desc:
            extra["caption"] = desc if isinstance(desc, str) else desc[0]
        items.append(IndexItem(manifest.audio_path(i), extra))
    roots = {r for r in manifest.roots if r is not None}
    root = roots.pop() if len(roots) == 1 else Path("/")
    return items, root, {"manifest": manifest.name, "split": args.split, "speaker_field": args.speaker_field}


def _model_spec(args: argparse.Namespace) -> dict[str, Any]:
    """How to load the model again at search time (paths made absolute)."""
    model = args.model
    if model is not None and Path(model).exists():
        model = str(Path(model).resolve())
    return {"model": model, "audio_encoder": args.audio_encoder, "text_encoder": args.text_encoder,
            "pooling": args.pooling}


def run_index(args: argparse.Namespace) -> int:
    from ..search.ann import check_choice
    from ..search.index import build_index

    items, root, source = _index_items(args)
    check_choice(args.ann)  # before loading the model: --ann ivf without FAISS fails at once
    with model_and_executor(args) as model:
        embedder = embedder_from_args(args, model)
        # one call for the whole pending set under an executor: it starts its pipeline once
        block = None if embedder is model else max(1, len(items))
        stats = build_index(embedder, items, args.out, root, skip_bad=args.skip_bad, batch_size=args.batch_size,
                            progress=sys.stderr.isatty(), source=source, model_spec=_model_spec(args), ann=args.ann,
                            block_size=block)
    summary = {"index": args.out, "files": stats.total, "reused": stats.reused, "embedded": stats.embedded,
               "skipped": [{"path": p, "error": e} for p, e in stats.skipped],
               "ann": {"requested": args.ann, "kind": stats.ann, "built": stats.ann_built},
               "seconds": {"hash": round(stats.hash_s, 3), "embed": round(stats.embed_s, 3),
                           "write": round(stats.write_s, 3), "ann": round(stats.ann_s, 3)}}
    if args.json:
        print_json(summary)
        return 0
    ann = "no ANN index" if stats.ann is None else f"{stats.ann} ANN index {'built' if stats.ann_built else 'kept'}"
    print(f"{stats.total} files: {stats.embedded} embedded, {stats.reused} reused, "
          f"{len(stats.skipped)} skipped, {ann} -> {args.out}")
    for p, e in stats.skipped:
        print(f"skipped: {e}", file=sys.stderr)
    return 0


def model_for_index(args: argparse.Namespace, meta: dict[str, Any]) -> Any:
    """The model given on the command line, else the one recorded in the index; it must match."""
    recorded = meta["model"].get("load", {})
    for key in ("model", "audio_encoder", "text_encoder"):
        if getattr(args, key) is None:
            setattr(args, key, recorded.get(key))
    model = model_from_args(args)
    want = meta["model"].get("checksum")
    if want and model.checksum != want:
        raise InputError(f"{args.index}: built with model {meta['model'].get('id')!r} (checksum {want[:12]}), "
                         f"but the query model {model.model_id!r} has checksum {model.checksum[:12]}; "
                         "pass the same --model or rebuild the index")
    return model


def run_search(args: argparse.Namespace) -> int:
    from ..search.index import load_index

    index = load_index(args.index)
    backend = index.resolve_backend(args.backend)  # --backend ann without an ANN index: fail before the model loads
    model = model_for_index(args, index.meta)
    index, centering = _centred(index, model, args)
    note = None
    if centering and backend == "ann":  # the ANN index holds the uncentred vectors: search the centred ones exactly
        backend = "numpy"
        if args.backend == "ann":
            note = ("--backend ann cannot serve centred vectors (its index holds the uncentred ones): "
                    "searched exactly with numpy")
            print(f"note: {note}", file=sys.stderr)
    results = index.search(model.embed_text(args.queries), top_k=args.top_k, backend=backend,
                           nprobe=args.nprobe, ef_search=args.ef_search)
    out = []
    for query, hits in zip(args.queries, results):
        rows = []
        for rank, (i, score) in enumerate(hits, start=1):
            item = index.items[i]
            rows.append({"rank": rank, "path": str(index.path_of(i)), "score": round(score, 6),
                         **({"caption": item["caption"]} if "caption" in item else {})})
        out.append({"query": query, "hits": rows})
    if args.json:
        print_json({"index": args.index, "model": index.meta["model"], "backend": backend,
                    "backend_requested": args.backend, **_ann_json(index, backend, args),
                    **({"note": note} if note else {}), "center": {**center_json(args, model, "main"), **centering},
                    "results": out})
        return 0
    for res in out:
        print(f"query: {res['query']}")
        print_table(["rank", "score", "path"], [[h["rank"], h["score"], h["path"]] for h in res["hits"]])
    return 0


def _ann_json(index: Any, backend: str, args: argparse.Namespace) -> dict[str, Any]:
    """The ANN index a search used (kind, stored parameters, the knob value applied), for ``--json``."""
    if backend != "ann":
        return {}
    from ..search.ann import ANN_KINDS

    ann = index.ann()
    knob = ANN_KINDS[ann.kind].knob
    given = getattr(args, knob)
    return {"ann": {"kind": ann.kind, "params": ann.params, knob: given if given is not None else ann.params[knob]}}


def _centred(index: Any, model: Any, args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """The index with its embeddings centred as ``--center``/``--reference`` say (a copy in memory, without
    the ANN index; the files are untouched), and what was done (``speakers``, ``fallback``: one-clip
    speakers centred on the reference; empty when nothing was centred)."""
    import numpy as np

    from ..centering import center_embeddings, has_speaker_id

    if args.center == "none" and not args.reference:
        return index, {}
    speakers = None
    if args.center == "speaker":
        missing = [i for i, it in enumerate(index.items) if not has_speaker_id(it.get("speaker"))]
        if missing:
            raise InputError(f"{args.index}: {len(missing)} row(s) have no speaker id, e.g. "
                             f"{index.path_of(missing[0])}; build the index with --manifest and --speaker-field, "
                             "or use --center collection")
        speakers = [it["speaker"] for it in index.items]
    reference = model.embed_audio(args.reference, batch_size=args.batch_size) if args.reference else None
    emb, done = center_embeddings(np.asarray(index.embeddings), args.center, speakers, reference,
                                  prior=model.config.speaker_prior)
    return index.with_embeddings(emb), {"speakers": done.speakers, "fallback": done.fallback}
