"""Jars kept in Google Cloud Storage (`gs://`) and Azure Blob Storage (`abfs://`, `abfss://`), read
through fsspec (gcsfs, adlfs) from real emulators on 127.0.0.1 (gcp-storage-emulator,
`tests/gcs_server.py`; Microsoft's Azurite, `tests/azure_server.py`) with the stores' standard
environment: a jar is fetched byte for byte; its identity (a GCS object's generation, an Azure
blob's ETag) is stable and changes when the jar is replaced at the same key; a missing object is
the store's refusal, a store that does not answer is unavailable within the agent's deadline; and
a real Flink cluster's agent starts a job from each."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from agent.errors import ArtifactError, ArtifactUnavailable
from agent.flink import artifacts
from agent.flink.artifacts import fetch_jar, store_identity
from agent.reconcile import sync
from azure_server import ACCOUNT, azure, azure_server, connection_string  # noqa: F401 - fixtures
from conftest import counter_deployment, free_port
from gcs_server import gcs, gcs_server  # noqa: F401 - fixtures
from s3_server import another_build

REPO_JAR = "jarUri: jobs/counter.jar"
ANSWER_S_IN_TESTS = 2.0    # STORE_ANSWER_S here (its default, 30 s, is what production waits)


def no_repo(path: str) -> None:
    return None


@dataclass
class Store:
    """One emulated store, seen alike by the tests: where to put a jar, and what the agent
    should make of it."""

    name: str
    scheme: str
    place: Callable[[], str]                    # a new bucket or container
    put: Callable[[str, str, Path], str]        # (place, key, file) -> the store's version tag
    identity_kind: str                          # what the agent's identity is made of
    environment: str                            # the variable that points the agent at it
    address_of: Callable[[int], str]            # that variable's value for a port

    def uri(self, place: str, key: str) -> str:
        return f"{self.scheme}://{place}/{key}"

    def upload(self, place: str, key: str, jar: Path) -> str:
        """Puts `jar` at `place/key`; returns the identity the agent should give it."""
        return f"{self.identity_kind}:{self.put(place, key, jar)}"


def gcs_store(server) -> Store:
    return Store("gcs", "gs", server.bucket, server.upload, "version", "STORAGE_EMULATOR_HOST",
                 lambda port: f"http://127.0.0.1:{port}")


def azure_store(server) -> Store:
    return Store("azure", "abfs", server.container, server.upload, "etag",
                 "AZURE_STORAGE_CONNECTION_STRING",
                 lambda port: connection_string(f"http://127.0.0.1:{port}/{ACCOUNT}"))


@pytest.fixture(params=["gcs", "azure"])
def store(request) -> Store:
    """Each emulated store in turn, the agent's environment pointing at it."""
    made = {"gcs": gcs_store, "azure": azure_store}[request.param]
    return made(request.getfixturevalue(request.param))


def test_a_jar_in_the_store_is_fetched_byte_identical(store, counter_jar, tmp_path):
    place = store.place()
    store.upload(place, "jobs/counter.jar", counter_jar)
    jar = fetch_jar(store.uri(place, "jobs/counter.jar"), tmp_path / "cache", no_repo)
    assert jar.read_bytes() == counter_jar.read_bytes()
    assert jar.parent == tmp_path / "cache" and jar.name.startswith("counter-")
    again = fetch_jar(store.uri(place, "jobs/counter.jar"), tmp_path / "cache", no_repo)
    assert again == jar and len(list((tmp_path / "cache").iterdir())) == 1   # stored once


@pytest.mark.parametrize("form", ["abfss://{container}/c.jar",
                                  "abfs://{container}@{account}.dfs.core.windows.net/c.jar",
                                  "abfss://{container}@{account}.blob.core.windows.net/c.jar"])
def test_abfss_and_an_account_host_name_the_same_blob(azure, form, counter_jar, tmp_path):
    """`abfss://` is read as `abfs://`; a Hadoop-style `CONTAINER@ACCOUNT.dfs.core.windows.net`
    host names the container (the account comes from the connection string)."""
    container = azure.container()
    etag = azure.upload(container, "c.jar", counter_jar)
    uri = form.format(container=container, account=ACCOUNT)
    assert fetch_jar(uri, tmp_path, no_repo).read_bytes() == counter_jar.read_bytes()
    assert store_identity(uri) == f"etag:{etag}"


def test_a_jars_identity_is_stable_and_changes_when_it_is_replaced(store, counter_jar, tmp_path):
    place = store.place()
    first = store.upload(place, "c.jar", counter_jar)
    uri = store.uri(place, "c.jar")
    assert store_identity(uri) == store_identity(uri) == first

    rebuilt = another_build(counter_jar, tmp_path, "build-2")
    second = store.upload(place, "c.jar", rebuilt)
    assert second != first
    assert store_identity(uri) == second            # never an earlier answer, though cached
    assert fetch_jar(uri, tmp_path / "cache", no_repo).read_bytes() == rebuilt.read_bytes()


def test_a_missing_object_or_bucket_is_the_stores_refusal(store, counter_jar, tmp_path):
    place = store.place()
    store.upload(place, "c.jar", counter_jar)
    for uri in (store.uri(place, "no-such.jar"), store.uri(f"{place}-gone", "c.jar")):
        for ask in (store_identity, lambda jar_uri: fetch_jar(jar_uri, tmp_path / "cache",
                                                              no_repo)):
            with pytest.raises(ArtifactError) as refused:
                ask(uri)
            assert str(refused.value).startswith(f"jarUri {uri}: no such object or bucket")
            assert "Traceback" not in str(refused.value)
    assert not list((tmp_path / "cache").glob("*"))   # no partial file left


def test_a_store_that_does_not_answer_is_unavailable_within_the_deadline(
        store, counter_jar, tmp_path, monkeypatch):
    """Nothing listens at the address: the store's client would retry for half a minute or
    more (gcsfs about 35 s, adlfs about 85 s); the agent gives up at STORE_ANSWER_S, and asks
    again once the store is back."""
    place = store.place()
    live = store.upload(place, "c.jar", counter_jar)
    uri = store.uri(place, "c.jar")
    monkeypatch.setattr(artifacts, "STORE_ANSWER_S", ANSWER_S_IN_TESTS)
    address = os.environ[store.environment]
    monkeypatch.setenv(store.environment, store.address_of(free_port()))   # nobody there
    for ask in (store_identity, lambda jar_uri: fetch_jar(jar_uri, tmp_path, no_repo)):
        started = time.monotonic()
        with pytest.raises(ArtifactUnavailable) as unanswered:
            ask(uri)
        assert time.monotonic() - started < ANSWER_S_IN_TESTS + 3
        assert str(unanswered.value) == (f"jarUri {uri}: the store did not answer within "
                                         f"{ANSWER_S_IN_TESTS:g}s")
    monkeypatch.setenv(store.environment, address)   # back
    assert store_identity(uri) == live


def test_a_wrong_account_key_is_the_stores_refusal_and_never_written(azure, counter_jar,
                                                                     monkeypatch):
    """Azurite checks the shared key: a wrong one is refused (ArtifactError, the store's
    reason), and the key reaches no message."""
    container = azure.container()
    azure.upload(container, "c.jar", counter_jar)
    wrong = "d3JvbmctYXp1cmUta2V5LW5vdC10aGUtYWNjb3VudHM="
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", connection_string(azure.endpoint, wrong))
    with pytest.raises(ArtifactError) as refused:
        store_identity(f"abfs://{container}/c.jar")
    assert str(refused.value).startswith(f"jarUri abfs://{container}/c.jar: the store refused")
    assert wrong not in str(refused.value)


@pytest.fixture
def forbidding_gcs(monkeypatch):
    """A server that answers every request as GCS answers a caller without access (HTTP 403,
    Google's JSON error), the agent's GCS environment pointing at it: the emulator has no access
    control to refuse with."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Forbidden(BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"error": {"code": 403, "message": "no storage.objects.get"}})
            self.send_response(403)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args):
            pass
    server = ThreadingHTTPServer(("127.0.0.1", 0), Forbidden)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"127.0.0.1:{server.server_address[1]}")
    yield
    server.shutdown()


def test_a_gcs_403_is_the_stores_refusal_named_on_the_jar(forbidding_gcs, tmp_path):
    for ask in (store_identity, lambda jar_uri: fetch_jar(jar_uri, tmp_path, no_repo)):
        with pytest.raises(ArtifactError) as refused:
            ask("gs://jars/c.jar")
        assert str(refused.value).startswith("jarUri gs://jars/c.jar: the store refused it")
        assert "no storage.objects.get" in str(refused.value)


def test_a_missing_google_credentials_file_is_refused_before_any_request(tmp_path,
                                                                          monkeypatch):
    """GOOGLE_APPLICATION_CREDENTIALS naming no file: the store's refusal, not an anonymous
    read (no emulator, no request made)."""
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "no-such-key.json"))
    with pytest.raises(ArtifactError) as refused:
        store_identity("gs://jars/c.jar")
    assert str(refused.value).startswith("jarUri gs://jars/c.jar: the store refused it")
    assert "no-such-key.json" in str(refused.value)


def test_a_jar_in_the_store_starts_its_job(store, spec_repo, settings, flink, rest, counter_jar):
    name = f"{store.name}-start"
    place = store.place()
    identity = store.upload(place, "counter.jar", counter_jar)
    spec_repo.write_target("test", flink.url)
    spec_repo.write(f"deployments/{name}.yaml", counter_deployment(name).replace(
        REPO_JAR, f"jarUri: {store.uri(place, 'counter.jar')}"))
    spec_repo.push(f"{name}: a jar in {store.scheme}")
    assert sync(settings).exit_code == 0
    assert rest.jobs()[rest.job(name, 1)] == "RUNNING"
    status = spec_repo.status_of(name)
    assert status["sync"] == "SYNCED" and status["lastAction"]["result"] == "SUCCESS"
    assert status["appliedInputs"]["artifact"] == identity
    assert sync(settings).outcomes == {}   # the same object: nothing to do
