"""The FastAPI application: ``create_app(engine)``.

Endpoints (every JSON response carries ``model``: id, checksum, precision; every refusal is
``{"error": "..."}`` with a 4xx status):

- ``POST /v1/embed``: clips and/or captions -> unit embeddings.
- ``POST /v1/score``: clips x captions -> cosines.
- ``POST /v1/classify``: clips x ``candidates`` (in ``template``), or x attribute sets -> ranked labels.
- ``POST /v1/rerank``: a ``prompt`` and candidate clips -> ranking and scores, as ``rerank`` computes them.
- ``POST /v1/reward``: ``prompts`` and clips, pairwise -> one reward each (+ per-set agreement).
- ``GET /v1/search?q=&k=``: index rows best first, with ``/v1/audio/{row}`` links (``--index``).
- ``GET /v1/models``, ``GET /healthz``, ``GET /metrics`` (Prometheus), ``GET /`` (the web page).
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import InputError
from .engine import Engine
from .inputs import (HTTPProblem, Payload, decode_clip, flag_field, number_field, read_payload, require_clips,
                     text_field, text_list)

logger = logging.getLogger(__name__)
STATIC = Path(__file__).with_name("static")
#: paths open without the API key: the page and its files, the health check, the API docs
OPEN_PATHS = ("/", "/healthz", "/docs", "/openapi.json", "/favicon.ico")


def _endpoint(path: str) -> str:
    """A bounded label for metrics (row numbers of ``/v1/audio/{row}`` folded)."""
    if path.startswith("/v1/audio/"):
        return "/v1/audio"
    if path.startswith("/static/"):
        return "/static"
    return path if path.startswith("/v1/") or path in OPEN_PATHS or path == "/metrics" else "other"


def _authorised(request: Any, key: str) -> bool:
    auth = request.headers.get("authorization", "")
    given = (auth[7:] if auth.lower().startswith("bearer ") else None) or request.headers.get("x-api-key") \
        or request.query_params.get("api_key") or ""
    return hmac.compare_digest(given.encode(), key.encode())


def create_app(engine: Engine) -> Any:
    """The application serving ``engine`` (started and stopped with the app's lifespan)."""
    from .. import __version__

    @contextlib.asynccontextmanager
    async def lifespan(app: Any):
        await engine.start()
        yield
        await engine.stop()

    app = FastAPI(title="paraspeechclap", version=__version__, lifespan=lifespan,
                  description="Style scores, zero-shot tags, rewards and search with a ParaSpeechCLAP model.")
    _add_guards(app, engine)
    _add_api_routes(app, engine)
    _add_service_routes(app, engine)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def page() -> Any:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/healthz", tags=["service"])
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "model": engine.info()}

    @app.get("/metrics", tags=["service"], response_class=Response)
    async def metrics() -> Any:
        body, ctype = engine.metrics.render()
        return Response(body, media_type=ctype)

    return app


def _error(status: int, message: str) -> Any:
    return JSONResponse({"error": message}, status_code=status)


def _add_guards(app: Any, engine: Engine) -> None:
    """Every refusal as ``{"error"}``; the API key; per-request metrics; a failing request answered 500."""
    settings = engine.settings

    @app.exception_handler(HTTPProblem)
    async def _problem(request: Request, exc: HTTPProblem) -> Any:
        return _error(exc.status, exc.message)

    @app.exception_handler(InputError)
    async def _input(request: Request, exc: InputError) -> Any:  # a request the model's own checks refuse
        return _error(400, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Any:
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Any:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return _error(400, f"{where}: {first.get('msg', 'invalid request')}")

    @app.middleware("http")
    async def _guard(request: Request, call_next: Any) -> Any:
        start = time.perf_counter()
        path = request.url.path
        engine.metrics.in_flight.inc()
        try:
            if settings.api_key and path not in OPEN_PATHS and not path.startswith("/static/") \
                    and not _authorised(request, settings.api_key):
                response = _error(401, "missing or wrong API key (send 'Authorization: Bearer KEY')")
            else:
                try:
                    response = await call_next(request)
                except Exception as exc:  # noqa: BLE001 - one bad request must not take the service down
                    logger.exception("request %s failed", path)
                    response = _error(500, f"internal error: {type(exc).__name__}: {exc}")
        finally:
            engine.metrics.in_flight.dec()
        engine.metrics.observe(_endpoint(path), response.status_code, time.perf_counter() - start)
        return response


# -- helpers shared by the routes --------------------------------------------------------------------
async def _decode(engine: Engine, payload: Payload, silent_ok: bool = False, skip_bad: bool = False
                  ) -> tuple[list[np.ndarray | None], list[dict[str, Any]]]:
    """Decode every clip off the event loop: waveforms (None where a clip was let through as silent or,
    with ``skip_bad``, bad) and those clips' issues. Otherwise the first bad clip is the answer."""
    import anyio

    min_samples = engine.model.audio_branch.min_samples

    def work() -> tuple[list[np.ndarray | None], list[dict[str, Any]]]:
        wavs: list[np.ndarray | None] = []
        issues: list[dict[str, Any]] = []
        for i, clip in enumerate(payload.clips):
            try:
                wavs.append(decode_clip(clip, engine.settings, min_samples))
            except HTTPProblem as exc:
                if not (skip_bad or (silent_ok and exc.kind == "silent")):
                    raise
                wavs.append(None)
                issues.append({"index": i, "clip": clip.name, "kind": exc.kind or "refused", "status": exc.status,
                               "message": exc.message})
        return wavs, issues

    return await anyio.to_thread.run_sync(work)


async def _gate(payload: Payload, wavs: list[np.ndarray | None]) -> tuple[list[np.ndarray | None], list[Any] | None]:
    """With the request's ``quality_gate``: each clip's verdict and the clips as the gate prepares them
    (edge silence trimmed), computed off the event loop; else the clips as they are and None."""
    import anyio

    from ..reranking import resolve_gate

    min_snr = number_field(payload.fields, "gate_min_snr_db", None)
    if not flag_field(payload.fields, "quality_gate"):
        if min_snr is not None:
            raise HTTPProblem(400, "field 'gate_min_snr_db' sets the threshold of 'quality_gate': "
                                   "send quality_gate true")
        return wavs, None
    gate = resolve_gate(True, min_snr)

    def work() -> tuple[list[np.ndarray | None], list[Any]]:
        done = [None if w is None else gate.apply(w) for w in wavs]
        return [None if d is None else d[1] for d in done], [None if d is None else d[0] for d in done]

    return await anyio.to_thread.run_sync(work)


def _quality_json(verdicts: list[Any] | None) -> dict[str, Any]:
    return {} if verdicts is None else {"quality": [None if v is None else v.as_dict() for v in verdicts]}


async def _embed_present(engine: Engine, wavs: Sequence[np.ndarray | None]) -> list[np.ndarray | None]:
    """Embeddings of the decoded clips, None where there is no waveform."""
    present = [w for w in wavs if w is not None]
    emb = iter(await engine.embed_clips(present))
    return [next(emb) if w is not None else None for w in wavs]


def _names(payload: Payload) -> list[str]:
    return [c.name for c in payload.clips]


def _rounded(x: float | None) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def _add_api_routes(app: Any, engine: Engine) -> None:
    """The inference endpoints: embed, score, classify, rerank, reward."""
    from .body_docs import body_doc

    settings = engine.settings

    @app.post("/v1/embed", tags=["inference"], openapi_extra=body_doc("embed"))
    async def embed(request: Request) -> dict[str, Any]:
        payload = await read_payload(request, settings)
        captions = text_list(payload.fields, "captions", settings, required=False)
        if not payload.clips and not captions:
            raise HTTPProblem(400, "nothing to embed: send 'audio' and/or 'captions'")
        require_clips(payload, settings, at_least=0)
        wavs, _ = await _decode(engine, payload)
        audio = await engine.embed_clips(wavs)  # type: ignore[arg-type]
        text = await engine.embed_texts(captions)
        return {"model": engine.info(), "clips": _names(payload), "captions": captions, "dim": int(audio.shape[1]),
                "audio": audio.tolist(), "text": text.tolist()}

    @app.post("/v1/score", tags=["inference"], openapi_extra=body_doc("score"))
    async def score(request: Request) -> dict[str, Any]:
        payload = await read_payload(request, settings)
        captions = text_list(payload.fields, "captions", settings)
        require_clips(payload, settings)
        wavs, _ = await _decode(engine, payload)
        sims = await engine.embed_clips(wavs) @ (await engine.embed_texts(captions)).T  # type: ignore[arg-type]
        return {"model": engine.info(), "clips": _names(payload), "captions": captions, "scores": sims.tolist()}

    @app.post("/v1/classify", tags=["inference"], openapi_extra=body_doc("classify"))
    async def classify(request: Request) -> dict[str, Any]:
        from ..inference import DEFAULT_TEMPLATE
        from .engine import ranked_labels

        payload = await read_payload(request, settings)
        candidates = text_list(payload.fields, "candidates", settings, required=False)
        require_clips(payload, settings)
        if candidates:
            template = text_field(payload.fields, "template", DEFAULT_TEMPLATE)
            classes = await engine.class_embeddings(candidates, template)
            wavs, _ = await _decode(engine, payload)
            cos = (await engine.embed_clips(wavs)) @ classes.T  # type: ignore[arg-type]
            probs = engine.softmax(cos)
            sets = [{"candidates": ranked_labels(candidates, c, p, False, 1.0)} for c, p in zip(cos, probs)]
        else:
            names = engine.check_sets(text_list(payload.fields, "attribute_sets", settings, required=False)
                                      or engine.default_sets)
            wavs, _ = await _decode(engine, payload)
            sets = await engine.set_results(await engine.embed_clips(wavs), names)  # type: ignore[arg-type]
        return {"model": engine.info(), "clips": _names(payload),
                "results": [{"clip": n, "sets": s} for n, s in zip(_names(payload), sets)]}

    @app.post("/v1/rerank", tags=["inference"], openapi_extra=body_doc("rerank"))
    async def rerank(request: Request) -> dict[str, Any]:
        payload = await read_payload(request, settings)
        return await _rerank(engine, payload)

    @app.post("/v1/reward", tags=["inference"], openapi_extra=body_doc("reward"))
    async def reward(request: Request) -> dict[str, Any]:
        payload = await read_payload(request, settings)
        return await _reward(engine, payload)


def _add_service_routes(app: Any, engine: Engine) -> None:
    """``/v1/models``, and search over the ``--index`` with its audio."""
    settings = engine.settings

    @app.get("/v1/models", tags=["service"])
    async def models() -> dict[str, Any]:
        from ..data.attributes import list_attribute_sets

        entry = {**engine.info(), "embed_dim": int(engine.model.config.embed_dim),
                 "default_attribute_sets": engine.default_sets, "attribute_sets": list_attribute_sets(),
                 "calibrated_sets": sorted(engine.calibration.temperatures) if engine.calibration else [],
                 "index": _index_info(engine), "limits": settings.limits()}
        return {"model": engine.info(), "models": [entry]}

    @app.get("/v1/search", tags=["search"])
    async def search(q: str = Query(..., description="a style caption"),
                     k: int = Query(10, ge=1, le=1000, description="results")) -> dict[str, Any]:
        if engine.index is None:
            raise HTTPProblem(404, "no index: start the server with --index DIR")
        if not q.strip():
            raise HTTPProblem(400, "query 'q' is empty")
        hits = engine.index.search(await engine.embed_texts([q]), top_k=k)[0]
        rows = []
        for rank, (i, s) in enumerate(hits, start=1):
            item = engine.index.items[i]
            rows.append({"rank": rank, "row": i, "score": float(s), "path": item["path"],
                         "audio_url": f"/v1/audio/{i}", **({"caption": item["caption"]} if "caption" in item else {})})
        return {"model": engine.info(), "query": q, "results": rows}

    @app.api_route("/v1/audio/{row}", methods=["GET", "HEAD"], tags=["search"])
    async def audio(row: int) -> Any:
        if engine.index is None:
            raise HTTPProblem(404, "no index: start the server with --index DIR")
        if not 0 <= row < len(engine.index.items):
            raise HTTPProblem(404, f"no row {row} in the index ({len(engine.index.items)} rows)")
        path = engine.index.path_of(row)
        if not path.is_file():
            raise HTTPProblem(404, f"row {row}: {engine.index.items[row]['path']} is no longer on disk")
        return FileResponse(path)


def _index_info(engine: Engine) -> dict[str, Any] | None:
    if engine.index is None:
        return None
    return {"directory": str(engine.index.directory), "rows": len(engine.index.items)}


async def _rerank(engine: Engine, payload: Payload) -> dict[str, Any]:
    """One prompt's candidates ranked as ``paraspeechclap rerank`` ranks them (silent ones last)."""
    from ..errors import InputError
    from ..reranking.reward import RewardConfig, rank_candidates

    settings = engine.settings
    prompt = text_field(payload.fields, "prompt")
    require_clips(payload, settings)
    wer_raw = payload.fields.get("wer")
    wer = None
    if wer_raw is not None:
        try:
            wer = np.asarray([float(w) for w in (wer_raw if isinstance(wer_raw, list) else [wer_raw])])
        except (TypeError, ValueError):
            raise HTTPProblem(400, "field 'wer' must be a list of numbers") from None
        if not np.isfinite(wer).all():
            raise HTTPProblem(400, "field 'wer' must be a list of finite numbers")
    try:
        config = RewardConfig(number_field(payload.fields, "wer_threshold", None),
                              number_field(payload.fields, "wer_weight", 0.0) or 0.0)
        if config.uses_wer and (wer is None or len(wer) != len(payload.clips)):
            raise InputError(f"'wer' needs one value per candidate ({len(payload.clips)})")
    except InputError as exc:
        raise HTTPProblem(400, str(exc)) from None
    text = await engine.embed_texts([prompt])
    wavs, issues = await _decode(engine, payload, silent_ok=True)
    wavs, verdicts = await _gate(payload, wavs)
    emb = await _embed_present(engine, wavs)
    scores = np.array([float(e @ text[0]) if e is not None else -np.inf for e in emb])
    quality_ok = None if verdicts is None else np.array([v is None or v.ok for v in verdicts])
    ranking = rank_candidates(scores, wer, config, quality_ok)
    names = _names(payload)
    order = [{"rank": r, "index": k, "clip": names[k], "score": _rounded(scores[k]),
              "reward": _rounded(ranking.reward[k])} for r, k in enumerate(ranking.order, start=1)]
    return {"model": engine.info(), "prompt": prompt, "best": ranking.best,
            "scores": [_rounded(s) for s in scores], "ranking": order, "issues": issues,
            "reward_config": config.as_dict(), **_quality_json(verdicts)}


async def _reward(engine: Engine, payload: Payload) -> dict[str, Any]:
    """Pairwise rewards: cosine(clip_i, prompt_i), and on request per-set agreement with the prompt's tags."""
    from .tags import prompt_tags

    settings = engine.settings
    prompts = text_list(payload.fields, "prompts", settings)
    require_clips(payload, settings)
    if len(prompts) != len(payload.clips):
        raise HTTPProblem(400, f"{len(prompts)} prompts but {len(payload.clips)} clips: send one prompt per clip")
    sets = engine.check_sets(text_list(payload.fields, "attribute_sets", settings, required=False))
    skip_bad = flag_field(payload.fields, "skip_bad")
    gate_reward = number_field(payload.fields, "gate_reward", None)
    text = await engine.embed_texts(prompts)
    wavs, issues = await _decode(engine, payload, skip_bad=skip_bad)
    wavs, verdicts = await _gate(payload, wavs)
    emb = await _embed_present(engine, wavs)
    rewards = [float(e @ t) if e is not None else None for e, t in zip(emb, text)]
    if verdicts is not None and gate_reward is not None:  # a clip that fails the gate gets the stated reward
        rewards = [gate_reward if v is not None and not v.ok else r for r, v in zip(rewards, verdicts)]
    out: dict[str, Any] = {"model": engine.info(), "rewards": rewards, "errors": issues, **_quality_json(verdicts)}
    if sets:
        present = [i for i, e in enumerate(emb) if e is not None]
        stacked = np.stack([emb[i] for i in present]) if present else np.zeros((0, text.shape[1]), np.float32)
        results = await engine.set_results(stacked, sets)
        by_clip = dict(zip(present, results))
        tags = [prompt_tags(p, sets) for p in prompts]
        agreement: dict[str, list[float | None]] = {s: [] for s in sets}
        for i, t in enumerate(tags):
            for s in sets:
                probs = {e["label"]: e["probability"] for e in by_clip[i][s]["labels"]} if i in by_clip else {}
                agreement[s].append(probs.get(t[s]) if t[s] is not None else None)
        out.update({"tags": tags, "agreement": agreement})
    return out
