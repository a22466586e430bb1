"""Reading manifests in the ParaSpeechCaps schema.

A manifest row is a dict with at least ``source`` and ``relative_audio_path``; the audio is at
``<audio_root>/<source>/<relative_audio_path>``. Known optional fields are ``text_description``
(a string or a list of strings), ``intrinsic_tags``, ``situational_tags`` (lists of strings),
``classification_tag``, ``duration`` (seconds), ``speaker``, ``gender``, plus our label fields
(``emotion``, ``pitch_level`` ...) and anything else, which is kept as it is.

Supported sources (see :func:`load_manifest`): JSONL, JSON (a list of rows), CSV/TSV, Parquet,
Hugging Face datasets saved with ``save_to_disk``, and Hugging Face hub names (online only).
"""

from __future__ import annotations

import csv
import json
import math
import os
import random
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._quiet import quiet_library_progress
from ..errors import InputError
from ..storage import is_uri, join_uri

REQUIRED_FIELDS: tuple[str, ...] = ("source", "relative_audio_path")
#: Fields holding lists of strings; CSV stores them as JSON strings or comma-separated text.
LIST_FIELDS: tuple[str, ...] = ("intrinsic_tags", "situational_tags")
#: The official ParaSpeechCLAP datasets on the Hugging Face hub and the splits their code uses.
OFFICIAL_DATASETS: dict[str, tuple[str, ...]] = {
    "ajd12342/paraspeechcaps-intrinsic-train": ("train",),
    "ajd12342/paraspeechcaps-situational-train": ("train",),
    "ajd12342/paraspeechclap-eval-intrinsic": (
        "test",
        "classification_pitch",
        "classification_texture",
        "classification_volume",
        "classification_clarity",
        "classification_rhythm",
    ),
    "ajd12342/paraspeechclap-eval-situational": ("test",),
    "ajd12342/paraspeechclap-eval-combined": ("test",),
}
_MANIFEST_NAMES = ("manifest.jsonl", "manifest.json", "manifest.csv", "manifest.parquet")


@dataclass
class RawRow:
    """One record as read from disk, before normalisation.

    Attributes:
        line: 1-based line number in a text file (JSONL/CSV), else the 1-based row number.
        data: the decoded record, or None when the line could not be parsed.
        error: why the line could not be parsed (None when ``data`` is set).
    """

    line: int
    data: dict[str, Any] | None
    error: str | None = None


# ---------------------------------------------------------------------------------------------
# Readers: each returns a list of RawRow and never raises on a single bad line.


def _read_jsonl(path: Path) -> list[RawRow]:
    out: list[RawRow] = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                out.append(RawRow(lineno, None, f"invalid JSON ({exc.msg})"))
                continue
            if not isinstance(obj, dict):
                out.append(RawRow(lineno, None, f"expected a JSON object, got {type(obj).__name__}"))
                continue
            out.append(RawRow(lineno, obj))
    return out


def _read_json(path: Path) -> list[RawRow]:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: invalid JSON ({exc.msg} at line {exc.lineno})") from None
    if isinstance(obj, dict) and isinstance(obj.get("rows"), list):
        obj = obj["rows"]
    if not isinstance(obj, list):
        raise InputError(f"{path}: expected a JSON list of rows (or JSONL, one object per line)")
    return [
        RawRow(i, r) if isinstance(r, dict) else RawRow(i, None, f"expected an object, got {type(r).__name__}")
        for i, r in enumerate(obj, start=1)
    ]


def _read_csv(path: Path) -> list[RawRow]:
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    out: list[RawRow] = []
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter=delimiter)
        for rec in reader:
            # line_num is the reader's physical line after the record (multi-line fields included).
            data = {k: (None if v == "" else v) for k, v in rec.items() if k is not None}
            if None in rec:
                out.append(RawRow(reader.line_num, None, "more values than header columns"))
                continue
            out.append(RawRow(reader.line_num, data))
    return out


def _require(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise InputError(f"reading this manifest needs {module!r}: pip install 'paraspeechclap[data]'") from None


def _read_parquet(path: Path) -> list[RawRow]:
    pq = _require("pyarrow.parquet")
    try:
        table = pq.read_table(str(path))
    except Exception as exc:  # noqa: BLE001 - ArrowInvalid, OSError ...
        raise InputError(f"{path}: cannot read Parquet ({exc})") from None
    return [RawRow(i, r) for i, r in enumerate(table.to_pylist(), start=1)]


def _hf_rows(ds: Any, name: str, split: str | None) -> list[RawRow]:
    """Rows of a ``datasets.Dataset`` or one split of a ``DatasetDict``."""
    if isinstance(ds, Mapping):  # DatasetDict (a dict subclass): pick one split
        splits = list(ds.keys())
        if split is None:
            if len(splits) != 1:
                raise InputError(f"{name}: has splits {splits}; choose one with split=...")
            split = splits[0]
        if split not in splits:
            raise InputError(f"{name}: no split {split!r}; available: {splits}")
        ds = ds[split]
    elif split is not None and getattr(ds, "split", None) not in (None, split):
        raise InputError(f"{name}: is the {ds.split!r} split, not {split!r}")
    return [RawRow(i, dict(r)) for i, r in enumerate(ds.to_list(), start=1)]


def _read_hf_disk(path: Path, split: str | None) -> list[RawRow]:
    datasets = _require("datasets")
    try:
        with quiet_library_progress():
            ds = datasets.load_from_disk(str(path))
    except Exception as exc:  # noqa: BLE001 - datasets raises many types
        raise InputError(f"{path}: cannot load a saved Hugging Face dataset ({exc})") from None
    return _hf_rows(ds, str(path), split)


def _read_hf_hub(name: str, split: str | None) -> list[RawRow]:
    datasets = _require("datasets")
    known = OFFICIAL_DATASETS.get(name)
    if split is not None and known is not None and split not in known:
        raise InputError(f"{name}: unknown split {split!r}; the official splits are {list(known)}")
    try:
        with quiet_library_progress():  # hub download bars stay: see paraspeechclap._quiet
            ds = datasets.load_dataset(name, split=split)
    except Exception as exc:  # noqa: BLE001 - offline, unknown name, auth ...
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{name}: cannot load from the Hugging Face hub ({reason})") from None
    return _hf_rows(ds, name, split)


def _is_hf_saved(path: Path) -> bool:
    return path.is_dir() and any((path / n).exists() for n in ("dataset_info.json", "state.json", "dataset_dict.json"))


def read_raw(source: str | os.PathLike, split: str | None = None) -> tuple[list[RawRow], Path | None, str]:
    """Read a manifest's records without normalising them.

    Args:
        source: a file (``.jsonl``/``.json``/``.csv``/``.tsv``/``.parquet``), a directory holding
            ``manifest.jsonl`` (or .json/.csv/.parquet), a directory written by
            ``datasets.Dataset.save_to_disk``, or a hub name ``owner/name`` (``hf://owner/name``
            forces the hub).
        split: split of a Hugging Face dataset (e.g. ``train``, ``classification_pitch``).

    Returns:
        ``(rows, default_audio_root, display_name)``: the audio root defaults to the manifest's
        directory for files, to None for hub datasets.

    Raises:
        InputError: the source does not exist, has an unknown format, or cannot be read.
    """
    text = str(source)
    if text.startswith("hf://"):
        return _read_hf_hub(text[5:], split), None, text[5:]
    path = Path(source).expanduser()
    if path.is_dir():
        if _is_hf_saved(path):
            return _read_hf_disk(path, split), path, str(path)
        for name in _MANIFEST_NAMES:
            if (path / name).is_file():
                path = path / name
                break
        else:
            raise InputError(f"{path}: directory holds neither a manifest.jsonl nor a saved Hugging Face dataset")
    if not path.exists():
        if "/" in text and not text.startswith((".", "/", "~")) and text.count("/") == 1 and not path.suffix:
            return _read_hf_hub(text, split), None, text
        raise InputError(f"{path}: manifest not found")
    readers: dict[str, Callable[[Path], list[RawRow]]] = {
        ".jsonl": _read_jsonl, ".ndjson": _read_jsonl, ".json": _read_json,
        ".csv": _read_csv, ".tsv": _read_csv, ".parquet": _read_parquet, ".pq": _read_parquet,
    }  # fmt: skip
    reader = readers.get(path.suffix.lower())
    if reader is None:
        raise InputError(f"{path}: unknown manifest format {path.suffix!r}; use .jsonl, .json, .csv, .tsv or .parquet")
    return reader(path), path.parent, str(path)


# ---------------------------------------------------------------------------------------------
# Normalisation: one row -> python types, or InputError naming the field.


def _to_python(value: Any) -> Any:
    """numpy/pyarrow scalars and arrays -> python objects; NaN -> None."""
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        value = value.tolist()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def parse_list(value: Any, field: str) -> list[str]:
    """A list field from any source: list, JSON list string, comma-separated string, or None.

    Raises:
        InputError: the value is neither a list of strings nor a string.
    """
    value = _to_python(value)
    if value is None:
        return []
    if isinstance(value, str):
        s = value.strip()
        if s.startswith("["):
            try:
                value = json.loads(s)
            except json.JSONDecodeError:
                raise InputError(f"field {field!r}: invalid JSON list {s[:60]!r}") from None
        else:
            return [p.strip() for p in s.split(",") if p.strip()]
    if not isinstance(value, (list, tuple)):
        raise InputError(f"field {field!r}: expected a list of strings, got {type(value).__name__}")
    if not all(isinstance(v, str) for v in value):
        raise InputError(f"field {field!r}: expected a list of strings, got an item that is not a string")
    return [v.strip() for v in value if v.strip()]


def _parse_description(value: Any) -> str | list[str] | None:
    value = _to_python(value)
    if value is None:
        return None
    if isinstance(value, str):
        s = value.strip()
        if s.startswith("[") and s.endswith("]"):  # CSV: a JSON list of captions
            try:
                parsed = json.loads(s)
            except json.JSONDecodeError:
                return value
            value = parsed
        else:
            return value
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return list(value)
    raise InputError("field 'text_description': expected a string or a non-empty list of strings")


def normalize_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """Validate the required fields and convert known fields to python types.

    ``source`` and ``relative_audio_path`` must be non-empty strings; list fields become lists of
    stripped strings; ``duration`` becomes a float; ``text_description`` a string or a list of
    strings; every other field is kept (numpy/pyarrow values converted to python).

    Raises:
        InputError: naming the offending field.
    """
    out = {str(k): _to_python(v) for k, v in row.items()}
    for field in REQUIRED_FIELDS:
        v = out.get(field)
        if v is None or (isinstance(v, str) and not v.strip()):
            raise InputError(f"missing required field {field!r}")
        if not isinstance(v, str):
            raise InputError(f"field {field!r}: expected a string, got {type(v).__name__}")
    for field in LIST_FIELDS:
        if field in out:
            out[field] = parse_list(out[field], field)
    if "text_description" in out:
        out["text_description"] = _parse_description(out["text_description"])
    if out.get("duration") is not None:
        try:
            out["duration"] = float(out["duration"])
        except (TypeError, ValueError):
            raise InputError(f"field 'duration': expected a number, got {out['duration']!r}") from None
        if not math.isfinite(out["duration"]) or out["duration"] < 0:
            raise InputError(f"field 'duration': expected a non-negative number, got {out['duration']}")
    for field in ("classification_tag", "speaker", "gender", "emotion"):
        v = out.get(field)
        if v is not None and not isinstance(v, str):
            if isinstance(v, (int, float)) and field == "speaker":
                out[field] = str(v)  # numeric speaker ids from CSV/Parquet
            else:
                raise InputError(f"field {field!r}: expected a string, got {type(v).__name__}")
    return out


def row_key(row: Mapping[str, Any]) -> str:
    """Identity of a row: ``"<source>/<relative_audio_path>"`` (the split files use it)."""
    return f"{row['source']}/{row['relative_audio_path']}"


def row_tags(row: Mapping[str, Any]) -> list[str]:
    """The row's intrinsic and situational tags, stripped and lower-cased, without duplicates."""
    out: list[str] = []
    for field in LIST_FIELDS:
        for t in parse_list(row.get(field), field):
            t = t.lower()
            if t not in out:
                out.append(t)
    return out


def pick_caption(row: Mapping[str, Any], rng: random.Random | None = None) -> str:
    """The row's caption: the first of a list (evaluation) or a uniform draw from ``rng`` (training).

    Raises:
        InputError: the row has no ``text_description``.
    """
    desc = row.get("text_description")
    if desc is None or desc == [] or desc == "":
        raise InputError(f"{row_key(row)}: no 'text_description'")
    if isinstance(desc, str):
        return desc
    return desc[0] if rng is None else rng.choice(list(desc))


# ---------------------------------------------------------------------------------------------


def as_audio_root(root: str | os.PathLike | None) -> Path | str | None:
    """An audio root: a local folder, or an object-store URI kept as text (``Path`` would fold ``//``)."""
    if root is None:
        return None
    return root if is_uri(root) else Path(root)


def resolve_audio(root: Path | str | None, source: str, relative: str) -> Path | str:
    """Where a row's audio is: ``root / source / relative``; a URI when ``root`` is an object-store URI
    (``s3://bucket/corpora``), or ``relative`` itself when it is a URI (``annotate`` of object storage
    writes its rows so).

    Raises:
        InputError: no root for a row whose path is not a URI.
    """
    if is_uri(relative):
        return relative
    if root is None:
        raise InputError(f"{source}/{relative}: no audio root")
    if isinstance(root, str):
        return join_uri(root, source, relative)
    return root / source / relative


class Manifest:
    """A light list-of-dicts container of manifest rows.

    Each row carries its own audio root (so manifests from different folders can be
    concatenated) and the line it came from (for error messages).

    Args:
        rows: normalised rows.
        audio_root: the audio root of every row, or a sequence with one root per row.
        name: where the rows came from (file path or hub name).
        lines: 1-based line/row numbers in the source, one per row.
    """

    def __init__(
        self,
        rows: Sequence[dict[str, Any]],
        audio_root: str | os.PathLike | None | Sequence[str | os.PathLike | None] = None,
        name: str = "<memory>",
        lines: Sequence[int] | None = None,
    ) -> None:
        self.rows: list[dict[str, Any]] = list(rows)
        if audio_root is None or isinstance(audio_root, (str, os.PathLike)):
            roots = [as_audio_root(audio_root)] * len(self.rows)
        else:
            roots = [as_audio_root(r) for r in audio_root]
        if len(roots) != len(self.rows):
            raise InputError(f"{name}: {len(roots)} audio roots for {len(self.rows)} rows")
        self.roots: list[Path | str | None] = roots
        self.name = name
        self.lines: list[int] = list(lines) if lines is not None else list(range(1, len(self.rows) + 1))

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.rows[i]

    def __repr__(self) -> str:
        return f"Manifest({self.name!r}, rows={len(self)})"

    def audio_path(self, i: int) -> Path | str:
        """Absolute path of row ``i``'s audio: ``<audio_root>/<source>/<relative_audio_path>`` (see
        :func:`resolve_audio`: a URI when the root or the row's path is one).

        Raises:
            InputError: the row has no audio root (hub datasets need ``audio_root=``).
        """
        row = self.rows[i]
        if not is_uri(row["relative_audio_path"]) and self.roots[i] is None:
            raise InputError(f"{self.name}: no audio root for row {self.lines[i]}; pass audio_root=")
        return resolve_audio(self.roots[i], row["source"], row["relative_audio_path"])

    def key(self, i: int) -> str:
        """``"<source>/<relative_audio_path>"`` of row ``i``."""
        return row_key(self.rows[i])

    def column(self, field: str, default: Any = None) -> list[Any]:
        """Values of one field over all rows (``default`` where a row lacks it)."""
        return [r.get(field, default) for r in self.rows]

    def select(self, indices: Iterable[int]) -> Manifest:
        """A new manifest with the given rows, in the given order."""
        idx = list(indices)
        return Manifest(
            [self.rows[i] for i in idx], [self.roots[i] for i in idx], self.name, [self.lines[i] for i in idx]
        )

    def filter(self, predicate: Callable[[dict[str, Any]], bool]) -> Manifest:
        """A new manifest with the rows for which ``predicate(row)`` is true."""
        return self.select(i for i, r in enumerate(self.rows) if predicate(r))

    def with_audio_root(self, audio_root: str | os.PathLike) -> Manifest:
        """The same rows with a different audio root."""
        return Manifest(self.rows, audio_root, self.name, self.lines)

    @staticmethod
    def concat(manifests: Sequence[Manifest], name: str | None = None) -> Manifest:
        """Concatenate manifests; every row keeps its own audio root."""
        rows = [r for m in manifests for r in m.rows]
        roots = [p for m in manifests for p in m.roots]
        lines = [n for m in manifests for n in m.lines]
        return Manifest(rows, roots, name or "+".join(m.name for m in manifests), lines)


def load_manifest(
    source: str | os.PathLike,
    split: str | None = None,
    audio_root: str | os.PathLike | None = None,
) -> Manifest:
    """Load a manifest from a file, a saved Hugging Face dataset or a hub name.

    Args:
        source: see :func:`read_raw` (JSONL, JSON, CSV/TSV, Parquet, ``save_to_disk`` directory,
            directory with ``manifest.jsonl``, hub name such as
            ``ajd12342/paraspeechcaps-intrinsic-train``).
        split: Hugging Face split (``train``, ``test``, ``classification_pitch`` ...).
        audio_root: where ``<source>/<relative_audio_path>`` lives; defaults to the manifest's
            directory (None for hub datasets).

    Returns:
        The rows, normalised by :func:`normalize_row`.

    Raises:
        InputError: unreadable source, or a row that cannot be parsed or lacks a required field
            (the message names the line and field; ``paraspeechclap data check`` lists them all).
    """
    raw, default_root, name = read_raw(source, split)
    rows: list[dict[str, Any]] = []
    for rec in raw:
        if rec.data is None:
            raise InputError(f"{name}: line {rec.line}: {rec.error}")
        try:
            rows.append(normalize_row(rec.data))
        except InputError as exc:
            raise InputError(f"{name}: line {rec.line}: {exc}") from None
    root = audio_root if audio_root is not None else default_root
    return Manifest(rows, root, name, [r.line for r in raw])
