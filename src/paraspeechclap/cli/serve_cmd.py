"""``paraspeechclap serve``: the reward and style-search service (FastAPI on uvicorn, ``[serve]`` extra)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from ..errors import InputError
from .common import add_model_args, positive_float, positive_int


def add_parser(sub: Any) -> None:
    from ..serve.settings import MAX_CAPTIONS, MAX_CLIP_MB, MAX_CLIP_SECONDS, MAX_CLIPS, MAX_WAIT_MS

    p = sub.add_parser("serve", help="serve scores, tags, rewards and search over HTTP, with a web page",
                       description="A reward and style-search service: POST /v1/score, /v1/classify, /v1/rerank, "
                                   "/v1/reward, /v1/embed; GET /v1/search (with --index), /v1/models, /healthz, "
                                   "/metrics; the web page at /, API docs at /docs. Concurrent requests are merged "
                                   "into model batches of up to --batch-size clips.")
    add_model_args(p)
    p.add_argument("--index", default=None, metavar="INDEX", help="an index folder ('paraspeechclap index') for "
                   "/v1/search and the page's search panel; built with the same model")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--max-wait-ms", type=float, default=MAX_WAIT_MS, metavar="MS",
                   help=f"how long a batch waits for more clips after its first (default {MAX_WAIT_MS:g})")
    g = p.add_argument_group("limits (a request over them gets a 4xx JSON error)")
    g.add_argument("--max-clips", type=positive_int, default=MAX_CLIPS, metavar="N",
                   help=f"clips (candidates, pairs) per request (default {MAX_CLIPS})")
    g.add_argument("--max-clip-mb", type=positive_float, default=MAX_CLIP_MB, metavar="MB",
                   help=f"encoded size of one clip (default {MAX_CLIP_MB:g})")
    g.add_argument("--max-clip-seconds", type=positive_float, default=MAX_CLIP_SECONDS, metavar="S",
                   help=f"duration of one clip (default {MAX_CLIP_SECONDS:g})")
    g.add_argument("--max-captions", type=positive_int, default=MAX_CAPTIONS, metavar="N",
                   help=f"captions, candidates or prompts per request (default {MAX_CAPTIONS})")
    a = p.add_argument_group("access")
    a.add_argument("--allow-paths", default=None, metavar="DIR",
                   help="requests may name files by path, only inside DIR (default: uploads only)")
    a.add_argument("--api-key-env", default=None, metavar="VAR",
                   help="require the key held in environment variable VAR (Authorization: Bearer KEY) on /v1/* "
                        "and /metrics")
    p.add_argument("--attribute-sets", nargs="+", default=None, metavar="SET",
                   help="sets /v1/classify reports when a request names none (default: the model's own)")
    p.add_argument("--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"],
                   help="uvicorn's log level (default warning)")
    p.set_defaults(func=run_serve)


def _api_key(var: str | None) -> str | None:
    if var is None:
        return None
    key = os.environ.get(var, "")
    if not key:
        raise InputError(f"--api-key-env {var}: the environment variable is not set or empty")
    return key


def _settings(args: argparse.Namespace) -> Any:
    from ..serve.settings import ServeSettings

    allow = None
    if args.allow_paths is not None:
        allow = Path(args.allow_paths)
        if not allow.is_dir():
            raise InputError(f"--allow-paths {args.allow_paths}: not a folder")
    if not 1 <= args.port <= 65535:
        raise InputError(f"--port must be between 1 and 65535, got {args.port}")
    if args.max_wait_ms < 0:
        raise InputError(f"--max-wait-ms must be at least 0, got {args.max_wait_ms}")
    return ServeSettings(batch_size=args.batch_size, max_wait_ms=args.max_wait_ms, max_clips=args.max_clips,
                         max_clip_mb=args.max_clip_mb, max_clip_seconds=args.max_clip_seconds,
                         max_captions=args.max_captions, allow_paths=allow, api_key=_api_key(args.api_key_env),
                         index=Path(args.index) if args.index else None)


def build_engine(args: argparse.Namespace) -> Any:
    """The model, calibration and index the flags name, checked, as an :class:`~paraspeechclap.serve.engine.Engine`."""
    from ..annotate.labels import default_attribute_sets
    from ..calibration import shipped_calibration
    from ..data.attributes import get_attribute_set
    from ..pretrained import is_official_checkpoint
    from ..serve.engine import Engine
    from .common import model_from_args

    settings = _settings(args)
    for name in args.attribute_sets or []:
        get_attribute_set(name)  # a typo fails before the model loads
    index = None
    if settings.index is not None:
        from ..search.index import load_index
        from .search_cmd import model_for_index

        index = load_index(settings.index)
        model = model_for_index(args, index.meta)
    else:
        model = model_from_args(args)
    sets = args.attribute_sets or default_attribute_sets(model, is_official_checkpoint(args.model))
    return Engine(model, settings, sets, calibration=shipped_calibration(args.model, model), index=index)


def run_serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from ..serve.app import create_app
    except ImportError as exc:
        raise InputError(f"serve needs the [serve] extra (pip install 'paraspeechclap[serve]'): {exc}") from None
    engine = build_engine(args)
    app = create_app(engine)
    info = engine.info()
    print(f"serving {info['id']} ({info['precision']}) on http://{args.host}:{args.port}  (page: /, API docs: /docs)",
          file=sys.stderr, flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=False)
    return 0
