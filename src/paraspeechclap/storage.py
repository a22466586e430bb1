"""Audio on object storage and other URI file systems: ``s3://``, ``gs://``, ``hdfs://``, ``file://``.

The file systems are Apache Arrow's (:mod:`pyarrow.fs`), the layer Ray Data reads through, so a path
Ray Data can read is a path this project can read: ``annotate s3://bucket/corpus --executor ray``
lists the bucket in the driver and every decode task opens its clips itself, on whichever node it runs.

Credentials and endpoints come from the usual places of each store (for S3: ``AWS_ACCESS_KEY_ID`` and
friends, ``AWS_ENDPOINT_URL`` for an S3-compatible server, instance roles), or from the URI's query
string (``s3://bucket/key?endpoint_override=host:9000&scheme=http``), which files listed under a
folder URI inherit. Nothing here reaches the network unless a URI names a remote store. A plain path
(no ``scheme://``) is never a URI, so local paths keep their fast, ``pathlib`` handling everywhere.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from functools import lru_cache
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from .errors import AudioError, InputError


def is_uri(path: Any) -> bool:
    """True for ``scheme://...`` strings (a scheme of two or more letters: ``C:/x`` is a Windows path)."""
    if not isinstance(path, str) or "://" not in path:
        return False
    scheme = path.split("://", 1)[0]
    return len(scheme) > 1 and scheme.replace("+", "").replace("-", "").replace(".", "").isalnum()


def join_uri(root: str, *parts: str) -> str:
    """``root`` with ``parts`` appended to its path (``/``-separated), keeping its query string.

    ``root`` is a URI (percent-encoded, as written); ``parts`` are plain file names, percent-encoded
    here, so that a name with a space or a ``%`` comes back as itself (:func:`_resolve` decodes)."""
    sp = urlsplit(root)
    path = "/".join([sp.path.rstrip("/"), *(quote(p.strip("/"), safe="/") for p in parts if p)])
    return urlunsplit((sp.scheme, sp.netloc, path, sp.query, ""))


@lru_cache(maxsize=32)
def _filesystem(scheme: str, netloc: str, query: str) -> Any:
    """One file system per store (and its options): S3 resolves its region and credentials once, not per clip."""
    try:
        import pyarrow.fs as pafs
    except ImportError:
        raise InputError(f"{scheme}:// paths need pyarrow: pip install 'paraspeechclap[data]'") from None
    try:
        return pafs.FileSystem.from_uri(urlunsplit((scheme, netloc, "/", query, "")))[0]
    except Exception as exc:  # ArrowInvalid (unknown scheme), ArrowNotImplemented (a build without S3) ...
        raise InputError(f"{scheme}://{netloc}: cannot open this file system ({_reason(exc)})") from None


def _resolve(uri: str) -> tuple[Any, str]:
    """``(file system, path inside it)`` of ``uri`` (bucket stores keep the bucket in the path)."""
    sp = urlsplit(uri)
    fs = _filesystem(sp.scheme, sp.netloc, sp.query)
    path = unquote(sp.path)  # a URI's path is percent-encoded (``Path.as_uri`` writes a space as %20)
    inner = path if sp.scheme in ("file", "hdfs", "viewfs") else f"{sp.netloc}{path}"
    return fs, inner


def read_bytes(uri: str) -> bytes:
    """The whole object at ``uri``.

    Raises:
        AudioError: it does not exist, is a folder, or cannot be read (the message names the URI).
    """
    fs, inner = _resolve(uri)
    try:
        with fs.open_input_stream(inner) as f:  # one request for a present object; its status says the rest
            return f.read()
    except FileNotFoundError:
        raise AudioError(f"{uri}: file not found") from None
    except Exception as exc:  # OSError from the store: a folder, access denied, a timeout ...
        if _is_dir(fs, inner):
            raise AudioError(f"{uri}: is a directory, not an audio file") from None
        raise AudioError(f"{uri}: cannot read ({_reason(exc)})") from None


def _is_dir(fs: Any, inner: str) -> bool:
    """Whether ``inner`` is a folder; False when the store cannot even say (the read's error is reported)."""
    import pyarrow.fs as pafs

    try:
        return fs.get_file_info(inner).type == pafs.FileType.Directory
    except Exception:  # noqa: BLE001 - the store's second error says no more than its first
        return False


def list_files(uri: str, extensions: Iterable[str]) -> list[str]:
    """The files under the folder ``uri`` whose suffix is in ``extensions`` (recursive, sorted, hidden
    entries skipped), as URIs with the folder's query string.

    Raises:
        InputError: the folder does not exist or cannot be listed.
    """
    import pyarrow.fs as pafs

    fs, inner = _resolve(uri)
    exts = {e.lower() for e in extensions}
    try:
        infos = fs.get_file_info(pafs.FileSelector(inner.rstrip("/"), recursive=True))
    except FileNotFoundError:
        raise InputError(f"{uri}: not a directory") from None
    except Exception as exc:
        raise InputError(f"{uri}: cannot list ({_reason(exc)})") from None
    base = inner.rstrip("/")
    found = []
    for info in infos:
        rel = info.path[len(base):].lstrip("/")
        if info.type != pafs.FileType.File or any(p.startswith(".") for p in rel.split("/")):
            continue
        if os.path.splitext(rel)[1].lower() in exts:
            found.append(join_uri(uri, rel))
    return sorted(found)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
