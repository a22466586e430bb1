"""Starting a real ``paraspeechclap serve`` process on a free port, and small HTTP helpers (stdlib only)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Iterator


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_server(args: list[str], cwd: Path, env: dict[str, str] | None = None,
                   timeout: float = 180.0) -> Iterator[tuple[str, subprocess.Popen]]:
    """``paraspeechclap serve ARGS --port P`` until /healthz answers; yields ``(base_url, process)``,
    then terminates it (SIGTERM, as a service manager would)."""
    port = free_port()
    log = open(cwd / f"serve-{port}.log", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "paraspeechclap", "serve", *args, "--port", str(port)],
                            cwd=cwd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    try:
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"server exited with {proc.returncode}: {log.read()[-2000:]}")
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=2):
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"server did not start in {timeout} s") from None
                time.sleep(0.3)
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()


def request(method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None,
            timeout: float = 120.0) -> tuple[int, dict[str, str], bytes]:
    """``(status, headers, body)``; HTTP errors are returned, not raised."""
    req = urllib.request.Request(url, data=body, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def post_json(url: str, obj: Any, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    status, _, body = request("POST", url, json.dumps(obj).encode(),
                              {"Content-Type": "application/json", **(headers or {})})
    return status, json.loads(body)


def multipart(files: list[tuple[str, str, bytes]], fields: list[tuple[str, str]]) -> tuple[bytes, str]:
    """A multipart/form-data body from ``(field, filename, bytes)`` files and ``(name, value)`` fields."""
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, filename, data in files:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                     f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def post_files(url: str, paths: list[Path], fields: list[tuple[str, str]] = (),  # type: ignore[assignment]
               headers: dict[str, str] | None = None) -> tuple[int, Any]:
    body, ctype = multipart([("audio", Path(p).name, Path(p).read_bytes()) for p in paths], list(fields))
    status, _, data = request("POST", url, body, {"Content-Type": ctype, **(headers or {})})
    return status, json.loads(data)
