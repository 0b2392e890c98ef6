"""A real S3-compatible server for the tests (DESIGN §6): moto's standalone server on 127.0.0.1
and a free port, started once per test module, with buckets made and jars uploaded by boto3.

`s3` (per test) points the agent's standard AWS environment at it (AWS_ENDPOINT_URL,
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION) and returns the store to upload to.
"""

from __future__ import annotations

import socket
import uuid
import zipfile
from pathlib import Path

import pytest

REGION = "us-east-1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class S3Store:
    """The running server: its endpoint, and boto3 calls to fill it."""

    def __init__(self, endpoint: str):
        import boto3
        self.endpoint = endpoint
        self.client = boto3.client("s3", endpoint_url=endpoint, region_name=REGION,
                                   aws_access_key_id="test-key",
                                   aws_secret_access_key="test-secret")

    def bucket(self) -> str:
        """A new empty bucket of its own (tests share the server)."""
        name = f"jars-{uuid.uuid4().hex[:12]}"
        self.client.create_bucket(Bucket=name)
        return name

    def upload(self, bucket: str, key: str, source: Path) -> str:
        """Puts the file `source` at `bucket/key`; returns the object's ETag."""
        return self.client.put_object(Bucket=bucket, Key=key,
                                      Body=source.read_bytes())["ETag"].strip('"')


def another_build(jar: Path, into: Path, comment: str) -> Path:
    """A copy of `jar` with other bytes but the same classes (a zip comment added): what a
    rebuild of the same code uploads."""
    copy = into / f"{jar.stem}-{comment}.jar"
    copy.write_bytes(jar.read_bytes())
    with zipfile.ZipFile(copy, "a") as archive:
        archive.comment = comment.encode()
    return copy


@pytest.fixture(scope="module")
def s3_server():
    """moto's standalone S3 server on a free port of 127.0.0.1, for the whole module."""
    from moto.server import ThreadedMotoServer
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield S3Store(f"http://127.0.0.1:{port}")
    server.stop()


@pytest.fixture
def s3(s3_server, monkeypatch) -> S3Store:
    """The server, and the agent's AWS environment pointing at it."""
    for name in ("AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test-secret")
    monkeypatch.setenv("AWS_REGION", REGION)
    return s3_server
