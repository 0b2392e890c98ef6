"""A real Google Cloud Storage emulator for the tests: gcp-storage-emulator's JSON API server (pure
Python, in this process) on 127.0.0.1 and a free port, started once per test module, with buckets
made and jars uploaded by google-cloud-storage, Google's own client.

`gcs` (per test) points the agent's standard GCS environment at it (STORAGE_EMULATOR_HOST) and
returns the store to upload to.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from conftest import free_port

PROJECT = "flink-gitops-tests"


class GcsStore:
    """The running emulator: its endpoint, and google-cloud-storage calls to fill it."""

    def __init__(self, endpoint: str):
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage
        self.endpoint = endpoint
        self.client = storage.Client(project=PROJECT, credentials=AnonymousCredentials(),
                                     client_options={"api_endpoint": endpoint})

    def bucket(self) -> str:
        """A new empty bucket of its own (tests share the emulator)."""
        name = f"jars-{uuid.uuid4().hex[:12]}"
        self.client.create_bucket(name)
        return name

    def upload(self, bucket: str, key: str, source: Path) -> str:
        """Puts the file `source` at `bucket/key`; returns the object's new generation."""
        blob = self.client.bucket(bucket).blob(key)
        blob.upload_from_filename(str(source), content_type="application/java-archive")
        return str(blob.generation)


@pytest.fixture(scope="module")
def gcs_server():
    """gcp-storage-emulator on a free port of 127.0.0.1, in memory, for the whole module."""
    from gcp_storage_emulator.server import create_server
    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True)
    server.start()
    yield GcsStore(f"http://127.0.0.1:{port}")
    server.stop()


@pytest.fixture
def gcs(gcs_server, monkeypatch) -> GcsStore:
    """The emulator, and the agent's GCS environment pointing at it (no credentials file)."""
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_server.endpoint)
    return gcs_server
