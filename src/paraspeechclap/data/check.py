"""Manifest validation: per-row problems (line, field, reason) and a summary.

Errors make a row bad (required fields missing, wrong types, audio missing or unreadable);
warnings do not (unknown label spellings, durations that disagree with the audio header,
duplicate rows). Audio is checked from its header with ``soundfile.info`` (fast);
``decode=True`` also decodes every file with :func:`paraspeechclap.audio.load_audio`.
"""

from __future__ import annotations

import collections
import io
import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..audio.io import decode_audio, decode_reason, load_audio
from ..errors import ParaSpeechCLAPError
from ..storage import is_uri, read_bytes
from .manifest import (LIST_FIELDS, REQUIRED_FIELDS, RawRow, as_audio_root, normalize_row, parse_list, read_raw,
                       resolve_audio, row_key)
from .vocabulary import label_map_data, label_values, map_label

#: A duration in the manifest may differ from the audio header by this much before a warning.
DURATION_TOLERANCE_S = 0.1
DURATION_TOLERANCE_REL = 0.05
_LABEL_FIELDS = ("pitch_level", "speaking_rate", "loudness", "voice_quality", "clarity", "gender", "emotion")


@dataclass
class Problem:
    """One finding: ``line`` in the manifest, the ``field`` concerned, ``severity`` error/warning."""

    line: int
    field: str
    message: str
    severity: str = "error"
    key: str | None = None

    def __str__(self) -> str:
        where = f"line {self.line}" + (f" ({self.key})" if self.key else "")
        return f"{where} [{self.field}] {self.severity}: {self.message}"


@dataclass
class CheckReport:
    """Result of :func:`check_manifest`. ``ok`` is True when no row has an error."""

    manifest: str
    audio_root: str | None
    rows: int = 0
    bad_rows: int = 0
    hours: float = 0.0
    problems: list[Problem] = field(default_factory=list)
    sources: dict[str, int] = field(default_factory=dict)
    speakers: int = 0
    genders: dict[str, int] = field(default_factory=dict)
    emotions: dict[str, int] = field(default_factory=dict)
    intrinsic_tags: dict[str, int] = field(default_factory=dict)
    situational_tags: dict[str, int] = field(default_factory=dict)
    labels: dict[str, dict[str, int]] = field(default_factory=dict)
    captions: int = 0

    @property
    def ok(self) -> bool:
        return self.bad_rows == 0

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["ok"] = self.ok
        out["num_errors"] = len(self.errors)
        out["num_warnings"] = len(self.warnings)
        return out


def field_problems(row: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """All schema problems of one raw row as ``(field, message, severity)``; empty when valid."""
    out: list[tuple[str, str, str]] = []
    for f in REQUIRED_FIELDS:
        v = row.get(f)
        if v is None or (isinstance(v, str) and not v.strip()):
            out.append((f, "missing required field", "error"))
        elif not isinstance(v, str):
            out.append((f, f"expected a string, got {type(v).__name__}", "error"))
    for f in (*LIST_FIELDS, "text_description", "duration", "classification_tag", "speaker", "gender", "emotion"):
        if f in row and row[f] is not None:
            try:
                normalize_row({"source": "s", "relative_audio_path": "p", f: row[f]})
            except ParaSpeechCLAPError as exc:
                out.append((f, str(exc).split(": ", 1)[-1], "error"))
    for f in _LABEL_FIELDS:
        v = row.get(f)
        if not isinstance(v, str) or not v.strip():
            continue
        known = map_label(v, f) is not None or v.strip().lower() in label_map_data().get(f, {})
        if not known:
            out.append((f, f"{v!r} is not a known {f} label (vocabulary: {', '.join(label_values(f))})", "warning"))
    return out


def audio_problems(path: Path | str, duration: Any, decode: bool) -> tuple[list[tuple[str, str, str]], float | None]:
    """Problems of one audio file (a path, or an object-store URI) and its duration in seconds from the
    header (None if unreadable)."""
    import soundfile as sf

    source: Any = str(path)
    if is_uri(path):
        try:
            source = io.BytesIO(read_bytes(str(path)))
        except ParaSpeechCLAPError as exc:
            return [("relative_audio_path", str(exc), "error")], None
    elif not Path(path).is_file():
        return [("relative_audio_path", f"audio file not found: {path}", "error")], None
    try:
        info = sf.info(source)
    except Exception as exc:  # noqa: BLE001 - LibsndfileError, RuntimeError, TypeError ...
        return [("relative_audio_path", f"cannot read audio header of {path} ({decode_reason(exc)})", "error")], None
    if info.frames <= 0 or info.samplerate <= 0:
        return [("relative_audio_path", f"empty audio file: {path}", "error")], None
    seconds = info.frames / info.samplerate
    out: list[tuple[str, str, str]] = []
    if decode:
        if isinstance(source, io.BytesIO):
            source.seek(0)  # an object-store clip: decode the bytes the header came from, not a second download
        try:
            wav, sr = decode_audio(source, path)
            load_audio(wav, sr, name=str(path))
        except ParaSpeechCLAPError as exc:
            out.append(("relative_audio_path", str(exc), "error"))
    numeric = isinstance(duration, (int, float)) and not isinstance(duration, bool) and math.isfinite(duration)
    if numeric and abs(duration - seconds) > max(DURATION_TOLERANCE_S, DURATION_TOLERANCE_REL * seconds):
        out.append(("duration", f"manifest says {duration:.3f} s, audio header says {seconds:.3f} s", "warning"))
    return out, seconds


def _summarise(report: CheckReport, rows: list[dict[str, Any]]) -> None:
    report.sources = dict(collections.Counter(r["source"] for r in rows).most_common())
    report.speakers = len({r.get("speaker") for r in rows if r.get("speaker") not in (None, "")})
    report.genders = dict(collections.Counter(str(r.get("gender")) for r in rows if "gender" in r).most_common())
    report.emotions = dict(collections.Counter(str(r.get("emotion")) for r in rows if "emotion" in r).most_common())
    for f, attr in (("intrinsic_tags", "intrinsic_tags"), ("situational_tags", "situational_tags")):
        c = collections.Counter(t.lower() for r in rows for t in parse_list(r.get(f), f))
        setattr(report, attr, dict(c.most_common()))
    for f in _LABEL_FIELDS[:5]:  # pitch_level ... clarity: counts of our label fields where present
        c = collections.Counter(str(r[f]) for r in rows if r.get(f) is not None)
        if c:
            report.labels[f] = dict(c.most_common())
    report.captions = sum(1 for r in rows if r.get("text_description"))


def check_manifest(
    source: str | os.PathLike,
    audio_root: str | os.PathLike | None = None,
    split: str | None = None,
    check_audio: bool = True,
    decode: bool = False,
    progress: bool = False,
) -> CheckReport:
    """Validate every row of a manifest and summarise it.

    Args:
        source: anything :func:`~paraspeechclap.data.manifest.read_raw` reads.
        audio_root: audio folder (default: the manifest's directory).
        split: Hugging Face split, if the source has several.
        check_audio: check that each audio file exists and has a readable header.
        decode: also decode every file fully (slower).
        progress: show a tqdm progress bar on stderr.

    Raises:
        InputError: the manifest itself cannot be read (a bad row is reported, not raised).
    """
    raw, default_root, name = read_raw(source, split)
    root = as_audio_root(audio_root) if audio_root is not None else default_root
    report = CheckReport(manifest=name, audio_root=None if root is None else str(root), rows=len(raw))
    good: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    seconds_total = 0.0
    from tqdm.auto import tqdm

    for rec in tqdm(raw, desc="checking", unit="row", disable=not progress):
        problems, data = _check_record(rec, root, check_audio, decode)
        key = row_key(data) if data is not None else None
        if key is not None:
            if key in seen:
                problems.append(("relative_audio_path", f"duplicate of line {seen[key]}", "warning"))
            seen.setdefault(key, rec.line)
        report.problems += [Problem(rec.line, f, m, s, key) for f, m, s in problems]
        if any(s == "error" for _, _, s in problems) or data is None:
            report.bad_rows += 1
            continue
        seconds = data.pop("_seconds", None)
        seconds_total += seconds if seconds is not None else (data.get("duration") or 0.0)
        good.append(data)
    report.hours = seconds_total / 3600.0
    _summarise(report, good)
    return report


def _check_record(
    rec: RawRow, root: Path | str | None, check_audio: bool, decode: bool
) -> tuple[list[tuple[str, str, str]], dict[str, Any] | None]:
    if rec.data is None:
        return [("<line>", rec.error or "unreadable", "error")], None
    problems = field_problems(rec.data)
    if any(s == "error" for _, _, s in problems):
        ok_required = all(isinstance(rec.data.get(f), str) and rec.data.get(f) for f in REQUIRED_FIELDS)
        return problems, ({k: rec.data.get(k) for k in REQUIRED_FIELDS} if ok_required else None)
    data = normalize_row(rec.data)
    if check_audio:
        if root is None and not is_uri(data["relative_audio_path"]):
            problems.append(("relative_audio_path", "no audio root (pass --audio-root)", "error"))
        else:
            path = resolve_audio(root, data["source"], data["relative_audio_path"])
            audio, seconds = audio_problems(path, data.get("duration"), decode)
            problems += audio
            data["_seconds"] = seconds
    return problems, data
