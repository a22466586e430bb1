"""A real S3 endpoint for tests: moto's S3 server on a free local port (no network beyond 127.0.0.1).

The AWS SDK inside pyarrow finds it the standard way, through ``AWS_ENDPOINT_URL`` and dummy
credentials in the environment; processes started afterwards (Ray workers) inherit them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ENV_KEYS = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_REGION",
            "AWS_EC2_METADATA_DISABLED")


@contextmanager
def s3_server() -> Iterator[str]:
    """Start the server and point the AWS environment at it; yields its endpoint URL."""
    server_mod = pytest.importorskip("moto.server", reason="the S3 tests need moto[server] (in [dev])")
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    saved = {k: os.environ.get(k) for k in ENV_KEYS}
    os.environ.update(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
                      AWS_DEFAULT_REGION="us-east-1", AWS_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true")
    try:
        yield endpoint
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()


def upload_folder(endpoint: str, local: Path, bucket: str, prefix: str) -> str:
    """Copy every file under ``local`` to ``s3://bucket/prefix/<relative path>``; returns that folder's URI."""
    import pyarrow.fs as pafs

    fs = pafs.S3FileSystem(endpoint_override=endpoint, region="us-east-1", allow_bucket_creation=True)
    fs.create_dir(bucket)
    for path in sorted(local.rglob("*")):
        if path.is_file():
            with fs.open_output_stream(f"{bucket}/{prefix}/{path.relative_to(local).as_posix()}") as f:
                f.write(path.read_bytes())
    return f"s3://{bucket}/{prefix}"
