"""A real Azure Blob Storage emulator for the tests: Microsoft's Azurite (its blob service, a
Node.js program from npm) on 127.0.0.1 and a free port, started once per test module and stopped
after it, with containers made and jars uploaded by azure-storage-blob, Microsoft's own client.

Azurite is installed with npm into tests/.azurite/AZURITE_VERSION/ the first time it is needed
(about 35 s and 190 MB, into a folder moved into place whole: an interrupted install leaves none);
later it is found there and starts in about 2 s. `python3 tests/azure_server.py` installs it
ahead (CI does). `azure` (per test) points the agent's standard Azure environment at it
(AZURE_STORAGE_CONNECTION_STRING, with Azurite's published development account) and returns the
store to upload to.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

AZURITE_VERSION = "3.35.0"   # the newest that runs on Node.js 20 (3.36 and later need 22)
AZURITE_HOME = Path(__file__).resolve().parent / ".azurite"
INSTALL_TIMEOUT_S = 600      # npm's install of Azurite and its 370 packages
START_TIMEOUT_S = 60         # Azurite listening on its port after it is started
STOP_TIMEOUT_S = 10          # Azurite gone after it is told to stop, else killed
# Azurite's well-known development account (documented by Microsoft; it guards nothing)
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBe"
               "ksoGMGw==")


def azurite_command() -> Path:
    """The `azurite-blob` command of AZURITE_VERSION, installed first when it is not there."""
    home = AZURITE_HOME / AZURITE_VERSION
    command = home / "node_modules" / ".bin" / "azurite-blob"
    if command.exists():
        return command
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("Azurite is installed with npm, which is not on PATH "
                           "(apt-get install nodejs npm)")
    AZURITE_HOME.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix="partial-", dir=AZURITE_HOME))
    try:
        subprocess.run([npm, "install", "--prefix", str(partial), "--no-audit", "--no-fund",
                        "--prefer-offline", "--loglevel=error", f"azurite@{AZURITE_VERSION}"],
                       check=True, timeout=INSTALL_TIMEOUT_S, stdin=subprocess.DEVNULL)
        if not command.exists():   # (else another run installed it meanwhile)
            partial.rename(home)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return command


def connection_string(endpoint: str, key: str = ACCOUNT_KEY) -> str:
    """The connection string of the development account at the blob `endpoint`."""
    return (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={key};"
            f"BlobEndpoint={endpoint};")


class AzureStore:
    """The running emulator: its endpoint, and azure-storage-blob calls to fill it."""

    def __init__(self, port: int):
        from azure.storage.blob import BlobServiceClient
        self.endpoint = f"http://127.0.0.1:{port}/{ACCOUNT}"
        self.connection_string = connection_string(self.endpoint)
        self.client = BlobServiceClient.from_connection_string(self.connection_string)

    def container(self) -> str:
        """A new empty container of its own (tests share the emulator)."""
        name = f"jars-{uuid.uuid4().hex[:12]}"
        self.client.create_container(name)
        return name

    def upload(self, container: str, key: str, source: Path) -> str:
        """Puts the file `source` at `container/key` (replacing it); returns its new ETag."""
        blob = self.client.get_blob_client(container, key)
        with source.open("rb") as content:
            answer = blob.upload_blob(content, overwrite=True)
        return answer["etag"].strip('"')


def _listening(port: int, process: subprocess.Popen, log: Path) -> None:
    """Returns once `port` accepts connections; fails with Azurite's output if it exited or
    START_TIMEOUT_S passed."""
    ends = time.monotonic() + START_TIMEOUT_S
    while process.poll() is None and time.monotonic() < ends:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"Azurite did not listen on {port}: {log.read_text(errors='replace')}")


@pytest.fixture(scope="module")
def azure_server(tmp_path_factory):
    """Azurite's blob service on a free port of 127.0.0.1, its data in a temporary folder, for
    the whole module."""
    from conftest import free_port
    command = azurite_command()
    workspace, port = tmp_path_factory.mktemp("azurite"), free_port()
    log = workspace / "azurite.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(command), "--blobHost", "127.0.0.1", "--blobPort", str(port),
             "--location", str(workspace), "--silent", "--skipApiVersionCheck", "--loose",
             "--disableTelemetry"],
            stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT)
    try:
        _listening(port, process, log)
        yield AzureStore(port)
    finally:
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


AZURE_VARIABLES = ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT_NAME",
                   "AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_SAS_TOKEN",
                   "AZURE_STORAGE_CLIENT_ID", "AZURE_STORAGE_CLIENT_SECRET",
                   "AZURE_STORAGE_TENANT_ID", "AZURE_STORAGE_ANON")


@pytest.fixture
def azure(azure_server, monkeypatch) -> AzureStore:
    """The emulator, and the agent's Azure environment pointing at it (its connection string
    alone)."""
    for name in AZURE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azure_server.connection_string)
    return azure_server


if __name__ == "__main__":
    print(azurite_command())
