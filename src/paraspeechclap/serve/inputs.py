"""Request bodies -> clips and fields, and clips -> 16 kHz waveforms, under the service's limits.

A request is JSON (``{"audio": [...], "captions": [...], ...}``, each clip base64 text, or
``{"data": base64, "name": ...}``, or ``{"path": ...}``) or ``multipart/form-data`` (clips as file
parts named ``audio``; the other fields as form fields, repeated for lists, or all of them as one JSON
text in a field named ``json``). Every refusal is an :class:`HTTPProblem`: a status and one line that
names the clip or field.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..audio.io import AudioError, decode_reason, load_audio
from .settings import ServeSettings

#: multipart fields that may repeat (lists); other fields take one value
LIST_FIELDS = ("captions", "candidates", "attribute_sets", "prompts", "wer")


class HTTPProblem(Exception):
    """A request the service refuses: ``status`` and a one-line ``message``; ``kind`` says, for a
    clip, whether it is ``"silent"`` (decodes, nothing to hear) or ``"unreadable"``."""

    def __init__(self, status: int, message: str, kind: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind


@dataclass
class Clip:
    """One clip of a request: encoded bytes or an allow-listed path, and the name errors use."""

    name: str
    data: bytes | None = None
    path: Path | None = None


@dataclass
class Payload:
    """A parsed request: its clips (in order) and its other fields."""

    clips: list[Clip]
    fields: dict[str, Any]


async def read_payload(request: Any, settings: ServeSettings) -> Payload:
    """Parse a JSON or multipart request (a Starlette ``Request``)."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > settings.max_body_bytes:
        raise HTTPProblem(413, f"request body of {int(length) / 1e6:.1f} MB is over the limit of "
                               f"{settings.max_body_bytes / 1e6:.1f} MB")
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        return await _read_multipart(request, settings)
    if ctype in ("application/json", ""):
        return _from_json(await _read_body(request, settings.max_body_bytes), settings)
    raise HTTPProblem(415, f"unsupported content type {ctype!r}: send application/json or multipart/form-data")


async def _read_body(request: Any, limit: int) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPProblem(413, f"request body is over the limit of {limit / 1e6:.1f} MB")
        chunks.append(chunk)
    return b"".join(chunks)


def _from_json(body: bytes, settings: ServeSettings) -> Payload:
    if not body.strip():
        raise HTTPProblem(400, "empty request body: send a JSON object")
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HTTPProblem(400, f"request body is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise HTTPProblem(400, "request body must be a JSON object")
    audio = data.pop("audio", [])
    if not isinstance(audio, list):
        audio = [audio]
    _check_count("audio", len(audio), settings.max_clips)
    return Payload([_json_clip(a, i, settings) for i, a in enumerate(audio)], data)


def _json_clip(entry: Any, i: int, settings: ServeSettings) -> Clip:
    name = f"audio[{i}]"
    if isinstance(entry, dict):
        name = str(entry.get("name") or name)
        if "path" in entry:
            return Clip(name if entry.get("name") else str(entry["path"]), path=Path(str(entry["path"])))
        entry = entry.get("data")
    if not isinstance(entry, str) or not entry:
        raise HTTPProblem(400, f"{name}: expected base64 text, {{\"data\": base64}} or {{\"path\": ...}}")
    if len(entry) * 3 // 4 > settings.max_clip_bytes:
        raise HTTPProblem(413, f"{name}: clip is over the limit of {settings.max_clip_mb:g} MB")
    try:
        data = base64.b64decode(entry, validate=True)
    except (binascii.Error, ValueError):
        raise HTTPProblem(400, f"{name}: not valid base64") from None
    return Clip(name, data=data)


async def _read_multipart(request: Any, settings: ServeSettings) -> Payload:
    try:
        form = await request.form(max_files=settings.max_clips, max_fields=settings.max_captions + 64)
    except Exception as exc:  # noqa: BLE001 - Starlette raises its HTTPException or a parser error
        raise HTTPProblem(400, f"cannot parse the multipart body ({getattr(exc, 'detail', exc)})") from None
    clips = []
    for i, part in enumerate(form.getlist("audio")):
        name = getattr(part, "filename", None) or f"audio[{i}]"
        if not hasattr(part, "read"):
            raise HTTPProblem(400, f"{name}: the 'audio' field must be a file part")
        if (part.size or 0) > settings.max_clip_bytes:
            raise HTTPProblem(413, f"{name}: clip is over the limit of {settings.max_clip_mb:g} MB")
        clips.append(Clip(name, data=await part.read()))
    fields: dict[str, Any] = {}
    for key in form.keys():
        if key == "audio":
            continue
        values = [v for v in form.getlist(key) if isinstance(v, str)]
        if key == "json":
            fields.update(_json_object(values[-1] if values else "", "json"))
        else:
            fields[key] = values if key in LIST_FIELDS else (values[-1] if values else None)
    await form.close()
    return Payload(clips, fields)


def _json_object(text: str, field: str) -> dict[str, Any]:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise HTTPProblem(400, f"field '{field}' is not valid JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise HTTPProblem(400, f"field '{field}' must hold a JSON object")
    return obj


def _check_count(field: str, n: int, limit: int) -> None:
    if n > limit:
        raise HTTPProblem(400, f"too many items in '{field}': {n} (the limit is {limit})")


# -- fields ------------------------------------------------------------------------------------------
def text_list(fields: dict[str, Any], key: str, settings: ServeSettings, required: bool = True) -> list[str]:
    """A list of non-empty strings (a single string counts as one)."""
    value = fields.get(key)
    if value is None:
        if required:
            raise HTTPProblem(400, f"missing field '{key}'")
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise HTTPProblem(400, f"field '{key}' must be a list of strings")
    _check_count(key, len(value), settings.max_captions)
    for i, v in enumerate(value):
        if not isinstance(v, str) or not v.strip():
            raise HTTPProblem(400, f"{key}[{i}] is empty or not a string")
    return list(value)


def text_field(fields: dict[str, Any], key: str, default: str | None = None) -> str:
    value = fields.get(key, default)
    if value is None:
        raise HTTPProblem(400, f"missing field '{key}'")
    if not isinstance(value, str) or not value.strip():
        raise HTTPProblem(400, f"field '{key}' is empty or not a string")
    return value


def number_field(fields: dict[str, Any], key: str, default: float | None) -> float | None:
    value = fields.get(key, default)
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise HTTPProblem(400, f"field '{key}' must be a number, got {value!r}") from None
    if not math.isfinite(number):  # "inf"/"nan" parse as floats, and Python's JSON reads Infinity and NaN
        raise HTTPProblem(400, f"field '{key}' must be a finite number, got {value!r}")
    return number


def flag_field(fields: dict[str, Any], key: str) -> bool:
    value = fields.get(key, False)
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def require_clips(payload: Payload, settings: ServeSettings, at_least: int = 1) -> None:
    if len(payload.clips) < at_least:
        raise HTTPProblem(400, "no audio: send clips in 'audio' (base64 in JSON, file parts in multipart)")
    _check_count("audio", len(payload.clips), settings.max_clips)


# -- decoding ----------------------------------------------------------------------------------------
def allowed_path(raw: Path, root: Path | None) -> Path:
    """``raw`` (relative to ``root``, or absolute) resolved, when it lies inside ``root``.

    Raises:
        HTTPProblem: 403 without ``root`` or outside it (``..``, a symlink out), 404 when missing.
    """
    if root is None:
        raise HTTPProblem(403, f"{raw}: file paths are not accepted (start the server with --allow-paths DIR)")
    base = root.resolve()
    resolved = (raw if raw.is_absolute() else base / raw).resolve()
    if not resolved.is_relative_to(base):
        raise HTTPProblem(403, f"{raw}: outside the allowed folder")
    if not resolved.is_file():
        raise HTTPProblem(404, f"{raw}: no such file")
    return resolved


def decode_clip(clip: Clip, settings: ServeSettings, min_samples: int) -> np.ndarray:
    """A clip -> ``(S,)`` float32 mono 16 kHz, within the size and duration limits.

    Raises:
        HTTPProblem: 403/404 (paths), 413 (over the size or duration limit), 422 (undecodable,
            silent, too short: ``kind`` ``"unreadable"`` or ``"silent"``).
    """
    import soundfile as sf

    source: Any
    if clip.path is not None:
        source = str(allowed_path(clip.path, settings.allow_paths))
        if Path(source).stat().st_size > settings.max_clip_bytes:
            raise HTTPProblem(413, f"{clip.name}: clip is over the limit of {settings.max_clip_mb:g} MB")
    else:
        source = io.BytesIO(clip.data or b"")
    try:
        info = sf.info(source)
        if info.frames / max(info.samplerate, 1) > settings.max_clip_seconds:
            raise HTTPProblem(413, f"{clip.name}: clip is {info.frames / info.samplerate:.1f} s long; the limit is "
                                   f"{settings.max_clip_seconds:g} s")
        if not isinstance(source, str):
            source.seek(0)
        data, sr = sf.read(source, dtype="float32", always_2d=True)
    except HTTPProblem:
        raise
    except Exception as exc:  # noqa: BLE001 - soundfile's errors vary by format
        raise HTTPProblem(422, f"{clip.name}: cannot decode audio ({decode_reason(exc)})", kind="unreadable") from None
    wav = data.mean(axis=1)
    try:
        return load_audio(wav, int(sr), min_samples=min_samples, name=clip.name)
    except AudioError as exc:
        from ..reranking.scorer import issue_kind

        raise HTTPProblem(422, str(exc), kind=issue_kind(wav, min_samples, int(sr))) from None
