"""What ``annotate`` reads: the input clips, in order, and where the output manifest points to them.

An input is a folder (every audio file under it, sorted) or a manifest (any source
:func:`~paraspeechclap.data.manifest.load_manifest` reads). The folder, the manifest's audio root or
its rows' paths may be object-store URIs (``s3://bucket/corpus``; :mod:`paraspeechclap.storage`):
such clips keep their URIs from listing to the output rows, and every worker reads them itself.
Each clip becomes an :class:`InputItem`; its position in the list is its identity for the whole job
(sharding, resuming, the output order), so the same file listed twice is annotated twice.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..centering import has_speaker_id
from ..storage import is_uri, list_files


@dataclass(frozen=True)
class InputItem:
    """One clip to annotate.

    Attributes:
        index: position in the input (0-based); the output keeps this order.
        path: the audio file (absolute), or its URI on object storage.
        source: the corpus name of the output row (the manifest's ``source``; the folder's name).
        speaker: the speaker id, or None when the input has none.
    """

    index: int
    path: Path | str
    source: str
    speaker: str | None = None


def items_from_dir(audio_dir: str | os.PathLike) -> list[InputItem]:
    """Every audio file under ``audio_dir`` (recursive, sorted), ``source`` = the folder's name."""
    from ..search.index import AUDIO_EXTENSIONS, list_audio_files

    if is_uri(audio_dir):
        sp = urlsplit(str(audio_dir))
        source = sp.path.rstrip("/").rsplit("/", 1)[-1] or sp.netloc or "audio"
        return [InputItem(i, u, source) for i, u in enumerate(list_files(str(audio_dir), AUDIO_EXTENSIONS))]
    root = Path(audio_dir).resolve()
    source = root.name or "audio"
    return [InputItem(i, p.resolve(), source) for i, p in enumerate(list_audio_files(root))]


def items_from_manifest(manifest: Any, speaker_field: str = "speaker") -> list[InputItem]:
    """The rows of a loaded manifest, with their speaker ids from ``speaker_field`` (blank: none)."""
    out = []
    for i, row in enumerate(manifest):
        spk = row.get(speaker_field)
        path = manifest.audio_path(i)
        out.append(InputItem(i, path if is_uri(path) else Path(os.path.abspath(path)), str(row["source"]),
                             str(spk) if has_speaker_id(spk) else None))
    return out


def output_path_fields(path: str | os.PathLike, source: str, out_dir: Path) -> dict[str, str]:
    """``source`` and ``relative_audio_path`` of an output row, so that the audio resolves from the
    output manifest's folder (``out_dir / source / relative_audio_path``) without ``--audio-root``.

    The path is relative when the audio lies under ``out_dir / source``, else absolute (a path join
    keeps an absolute right-hand side): a relative ``../`` path through ``out_dir / source``, a
    folder that does not exist, would not resolve on POSIX systems.
    """
    if is_uri(path):  # object storage: the URI itself, which resolves from anywhere
        return {"source": source, "relative_audio_path": str(path)}
    absolute = os.path.abspath(path)
    rel = os.path.relpath(absolute, os.path.abspath(out_dir / source)) if _same_drive(absolute, out_dir) else ".."
    inside = not (rel == os.pardir or rel.startswith(os.pardir + os.sep))
    return {"source": source, "relative_audio_path": Path(rel if inside else absolute).as_posix()}


def _same_drive(path: str, out_dir: Path) -> bool:
    return os.path.splitdrive(path)[0] == os.path.splitdrive(os.path.abspath(out_dir))[0]


def inputs_digest(items: Sequence[InputItem]) -> str:
    """sha256 over the clips' paths and speakers in order: a resumed job must have the same inputs."""
    h = hashlib.sha256()
    for it in items:
        h.update(f"{it.path}\t{it.source}\t{it.speaker}\n".encode())
    return h.hexdigest()
