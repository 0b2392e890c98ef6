"""Real parts for the tests: one real Flink session cluster per test session (DESIGN §6), the
counter job built from its Java source, and real git repositories (a bare repo + a clone)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import textwrap
import time
from pathlib import Path

import pytest
import requests
import yaml

from agent.config import DEFAULT_STATUS_BRANCH, Settings
from agent.diff import spec_document
from agent.model.job_states import JobState
from agent.model.observation import Observation, ObservedJob
from agent.model.spec import Deployment
from agent.model.status import (DeploymentState, DeploymentStatus, Job, Savepoint,
                                SavepointOrigin, Status, StatusMetadata, SyncStatus)
from agent.flink import local
from agent.flink.build import build_jar
from agent.job_ids import deployment_key, job_id
from agent.reconcile import sync

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "spec-examples"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def a_cluster(tmp_path_factory, name: str, slots: int):
    """A real Flink standalone session cluster of its own, stopped when the generator ends."""
    workdir = tmp_path_factory.mktemp(name)
    port = free_port()
    cluster = local.start(workdir, port=port, slots=slots)
    yield cluster
    local.stop(workdir, port=port)


@pytest.fixture(scope="session")
def flink(tmp_path_factory):
    """A real Flink standalone session cluster, started once for the whole test session."""
    yield from a_cluster(tmp_path_factory, "flink", slots=8)


@pytest.fixture(scope="session")
def counter_jar(tmp_path_factory) -> Path:
    return build_jar(EXAMPLES / "jobs" / "counter" / "src", tmp_path_factory.mktemp("build"),
                     name="counter")


@pytest.fixture(autouse=True)
def no_job_left_running(request):
    """Each test leaves the shared cluster as it found it: its jobs are cancelled afterwards."""
    yield
    if "flink" in request.fixturenames:
        end_every_job(request.getfixturevalue("flink").url)


def end_every_job(url: str, timeout: float = 30) -> None:
    """Cancels every job of the cluster at `url` that has not ended, and waits till they have."""
    for job in requests.get(f"{url}/jobs/overview", timeout=10).json()["jobs"]:
        if job["state"] not in ("FINISHED", "CANCELED", "FAILED"):
            requests.patch(f"{url}/jobs/{job['jid']}", params={"mode": "cancel"}, timeout=10)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = requests.get(f"{url}/jobs/overview", timeout=10).json()["jobs"]
        if all(j["state"] in ("FINISHED", "CANCELED", "FAILED") for j in jobs):
            break
        time.sleep(0.2)


TEST_USER = {"GIT_AUTHOR_NAME": "test user", "GIT_AUTHOR_EMAIL": "test@localhost",
             "GIT_COMMITTER_NAME": "test user", "GIT_COMMITTER_EMAIL": "test@localhost"}


def git(where: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(where), *args], check=True, capture_output=True,
                          text=True, env={**os.environ, **TEST_USER}).stdout.strip()


class SpecRepo:
    """A real spec repository: a bare 'remote' and a clone the test commits and pushes from."""

    def __init__(self, root: Path):
        self.remote = root / "specs.git"
        self.checkout = root / "specs"
        subprocess.run(["git", "init", "--quiet", "--bare", "--initial-branch=main",
                        str(self.remote)], check=True)
        subprocess.run(["git", "clone", "--quiet", str(self.remote), str(self.checkout)],
                       check=True, capture_output=True)

    def write(self, path: str, text: str) -> None:
        file = self.checkout / path
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(textwrap.dedent(text))

    def write_target(self, name: str, url: str, headers: dict | None = None,
                     savepoint_dir: str | None = None, timeout: float | None = None,
                     stores: dict | None = None) -> None:
        spec: dict = {"flink": {"url": url, **({"headers": headers} if headers else {}),
                                **({"requestTimeoutSeconds": timeout} if timeout else {})}}
        if savepoint_dir:
            spec["savepointDir"] = savepoint_dir
        if stores:
            spec["artifactStores"] = stores
        self.write(f"targets/{name}.yaml", yaml.safe_dump({
            "apiVersion": "v1", "kind": "DeploymentTarget", "metadata": {"name": name},
            "spec": spec}))

    def add_file(self, path: str, source: Path) -> None:
        file = self.checkout / path
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_bytes(source.read_bytes())

    def push(self, message: str = "change") -> str:
        git(self.checkout, "add", "-A")
        git(self.checkout, "commit", "--quiet", "--allow-empty", "-m", message)
        git(self.checkout, "push", "--quiet", "origin", "HEAD:main")
        return git(self.checkout, "rev-parse", "HEAD")

    def away_at_status_push(self, monkeypatch) -> None:
        """Takes the remote away (moves it) as the next acting cycle pushes its status;
        `come_back` brings it back."""
        from agent.status_store import StatusStore
        real_write = StatusStore.write_or_keep

        def remote_gone(store, compose, message):
            monkeypatch.undo()
            self.remote.rename(self.remote.with_name("specs-away.git"))
            return real_write(store, compose, message)
        monkeypatch.setattr(StatusStore, "write_or_keep", remote_gone)

    def come_back(self) -> None:
        self.remote.with_name("specs-away.git").rename(self.remote)

    def status_commits(self) -> list[str]:
        """Commits of the status branch on the remote, newest first ([] when none)."""
        try:
            return git(self.remote, "rev-list", DEFAULT_STATUS_BRANCH).split()
        except subprocess.CalledProcessError:
            return []

    def remote_ref(self, branch: str) -> str | None:
        try:
            return git(self.remote, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}")
        except subprocess.CalledProcessError:
            return None

    def status_file(self, path: str) -> str:
        return git(self.remote, "show", f"{DEFAULT_STATUS_BRANCH}:{path}")

    def status_of(self, name: str) -> dict:
        return yaml.safe_load(self.status_file(f"deployments/{name}.yaml"))["status"]


@pytest.fixture
def spec_repo(tmp_path) -> SpecRepo:
    return SpecRepo(tmp_path)


@pytest.fixture
def settings(spec_repo, tmp_path) -> Settings:
    return Settings(str(spec_repo.remote), workdir=tmp_path / "agent")


def artifact_deployment(name: str, artifact: str, target: str = "test", extra: str = "",
                        parallelism: int = 1) -> str:
    """The YAML of a STATEFUL Deployment checkpointing every second, whose artifact is
    `artifact` (its YAML lines; `extra`: one more line under `spec`)."""
    return (f"apiVersion: v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n"
            + (f"  {extra}\n" if extra else "")
            + f"  deploymentTargetName: {target}\n  upgradeStrategy: {{kind: STATEFUL}}\n"
            "  restoreStrategy: {kind: LATEST_SAVEPOINT}\n  template:\n    spec:\n"
            f"      parallelism: {parallelism}\n      flinkConfiguration:\n"
            "        execution.checkpointing.interval: 1s\n      artifact:\n"
            + textwrap.indent(artifact, " " * 8))


def counter_deployment(name: str, parallelism: int = 1, state: str = "RUNNING",
                       upgrade: str = "STATEFUL", restore: str = "LATEST_SAVEPOINT",
                       labels: str = "{team: test}", extra: str = "", target: str = "test",
                       args: str = "--rate 20 --keys 4", options: str = "") -> str:
    """The YAML of a Deployment of the counter job (`extra`: one more line under `spec`;
    `options`: more Flink options, `key: value` separated by `; `)."""
    more = "".join(f"\n                {option}" for option in options.split("; ") if option)
    return textwrap.dedent(f"""\
        apiVersion: v1
        kind: Deployment
        metadata:
          name: {name}
          labels: {labels}
        spec:
          state: {state}
          deploymentTargetName: {target}
          upgradeStrategy: {{kind: {upgrade}}}
          restoreStrategy: {{kind: {restore}}}
          {extra}
          template:
            spec:
              artifact:
                jarUri: jobs/counter.jar
                entryClass: com.example.Counter
                mainArgs: {args}
              parallelism: {parallelism}
              flinkConfiguration:
                execution.checkpointing.interval: 1s{more}
        """)


@pytest.fixture
def deployed(spec_repo, flink, counter_jar):
    """A spec repo with a target for the test cluster and the counter jar; returns a function
    writing the Deployment `name` with the given spec fields."""
    spec_repo.write_target("test", flink.url)
    spec_repo.add_file("jobs/counter.jar", counter_jar)

    def write(name: str, **fields) -> None:
        spec_repo.write(f"deployments/{name}.yaml", counter_deployment(name, **fields))
    return write


# --- specs, statuses and observations as values, for the pure tests (deployment `orders`) ---

def deployment(parallelism=1, state="RUNNING", upgrade="STATEFUL", restore="LATEST_SAVEPOINT",
               labels=None, initial=None, name="orders", target="local", annotations=None,
               options=None, jar="a.jar") -> Deployment:
    """A Deployment as a value (default `orders`); its YAML for a spec repo: `counter_deployment`.
    `options`: its flinkConfiguration."""
    return Deployment.model_validate({
        "metadata": {"name": name, "labels": labels or {"team": "a"},
                     "annotations": annotations or {}},
        "spec": {"state": state, "deploymentTargetName": target,
                 "upgradeStrategy": {"kind": upgrade}, "restoreStrategy": {"kind": restore},
                 "initialSavepointPath": initial,
                 "template": {"spec": {"artifact": {"jarUri": jar}, "parallelism": parallelism,
                                       "flinkConfiguration": options or {}}}}})


def jid(generation, spec=None):
    """The id of an `orders` job of that generation running `spec` (default: deployment())."""
    return job_id("orders", generation, (spec or deployment()).job_hash())


def applied(spec, generation=1, state=DeploymentState.RUNNING, savepoint=None):
    """The status of `orders` with `spec` applied and its job of `generation` running."""
    job = Job(id=jid(generation, spec), generation=generation, state=JobState.STARTED,
              flink_status="RUNNING", parallelism=1, started_at="t")
    status = Status(state=state, sync=SyncStatus.SYNCED, applied_spec_hash=spec.job_hash(),
                    applied_spec=spec_document(spec), job=job, desired_state=spec.spec.state)
    status.history.jobs.append(job)
    if savepoint:
        status.last_savepoint = Savepoint(location=savepoint, origin=SavepointOrigin.SUSPEND,
                                          created_at="t", job_id=job.id)
    return DeploymentStatus(metadata=StatusMetadata(name="orders"), status=status)


def running(generation=1, flink_status="RUNNING"):
    """What the cluster shows: the `orders` job of `generation`."""
    return Observation(True, (ObservedJob(jid(generation), generation, flink_status),))



@pytest.fixture
def checkpointed(deployed, spec_repo, settings, rest):
    """The preamble of most real-Flink scenarios: a function deploying `name` (with the given
    spec fields), pushing, syncing and waiting for its first job's first checkpoint, so that it
    has state worth restoring; returns that job's id."""
    def start(name: str, **fields) -> str:
        deployed(name, **fields)
        spec_repo.push(f"{name} deployed")
        assert sync(settings).exit_code == 0
        job = rest.job(name, 1)
        rest.wait_checkpoint(job)
        return job
    return start


class Flink:
    """Reads of the test cluster's REST API, for assertions."""

    def __init__(self, url: str):
        self.url = url

    def get(self, path: str) -> dict:
        return requests.get(self.url + path, timeout=10).json()

    def jobs(self) -> dict[str, str]:
        return {j["jid"]: j["state"] for j in self.get("/jobs/overview")["jobs"]}

    def job(self, deployment: str, generation: int) -> str:
        """The id of a deployment's job of that generation (job ids: see agent.job_ids)."""
        prefix = f"{deployment_key(deployment)}{generation:08x}"
        [found] = [j for j in self.jobs() if j.startswith(prefix)] or [f"{prefix}-not-found"]
        return found

    def running(self) -> list[str]:
        return [j for j, s in self.jobs().items() if s == "RUNNING"]

    def restored_from(self, job: str, timeout: float = 15) -> str | None:
        """The savepoint or checkpoint `job` was started from (None: none, after `timeout`: the
        REST API keeps a job's statistics a few seconds, so a fresh job may not show it yet)."""
        deadline = time.monotonic() + timeout
        while True:
            restored = (self.get(f"/jobs/{job}/checkpoints").get("latest") or {}).get("restored")
            if restored or time.monotonic() > deadline:
                return restored["external_path"] if restored else None
            time.sleep(0.5)

    def parallelism(self, job: str) -> int:
        """The job's parallelism: its widest operator (the counter's source is fixed at 1)."""
        return max(v["parallelism"] for v in self.get(f"/jobs/{job}")["vertices"])

    def jars(self) -> list[str]:
        return [f["id"] for f in self.get("/jars")["files"]]

    def wait_state(self, job: str, state: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.jobs().get(job) != state:
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job} is {self.jobs().get(job)}, not {state}")
            time.sleep(0.2)

    def wait_checkpoint(self, job: str, timeout: float = 60) -> None:
        """Waits for a completed checkpoint, so that the job has state worth restoring."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.get(f"/jobs/{job}/checkpoints").get("counts", {}).get("completed", 0) > 0:
                return
            time.sleep(0.2)
        raise AssertionError(f"job {job} completed no checkpoint in {timeout}s")


@pytest.fixture
def rest(flink) -> Flink:
    return Flink(flink.url)


class FlinkProxy:
    """A real HTTP proxy of the tests' own in front of Flink's REST port: it records every
    request the agent makes (`calls`) and passes it through, except that `answers[path]`, when
    set, is sent back instead of Flink's answer to `GET path` (bytes, a (status, bytes) pair, or
    a function of Flink's real answer body returning one of those)."""

    def __init__(self, upstream: str):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        import threading

        self.calls: list[tuple[str, str, bytes]] = []
        self.answers: dict[str, object] = {}
        self.echo_headers: dict[str, int] = {}   # path suffix -> status of an answer echoing them
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
                proxy.calls.append((self.command, self.path, body))
                echo = next((status for suffix, status in proxy.echo_headers.items()
                             if self.path.endswith(suffix)), None)
                if echo is not None:   # a gateway that quotes the request in its error
                    text = json.dumps({"errors": [f"refused; request headers: "
                                                  f"{dict(self.headers.items())}; body: "
                                                  f"{body.decode(errors='replace')}"]}).encode()
                    self.send_response(echo)
                    self.send_header("Content-Length", str(len(text)))
                    self.end_headers()
                    self.wfile.write(text)
                    return
                answer = requests.request(self.command, upstream + self.path, data=body,
                                          headers={k: v for k, v in self.headers.items()
                                                   if k.lower() != "host"}, timeout=120)
                content, status = answer.content, answer.status_code
                fake = proxy.answers.get(self.path) if self.command == "GET" else None
                if fake is not None:   # bytes, (status, bytes) or a function of the real
                    content, status = (fake(content) if callable(fake) else fake), 200
                    if isinstance(content, tuple):
                        status, content = content
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", answer.headers.get("Content-Type", ""))
                    self.send_header("Content-Length", str(len(content)))
                    self.end_headers()
                    self.wfile.write(content)
                except (BrokenPipeError, ConnectionResetError):
                    pass   # the agent stopped reading (an answer over its limit)

            do_GET = do_POST = do_PATCH = do_DELETE = _forward

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def paths(self) -> list[tuple[str, str]]:
        return [(method, path) for method, path, _ in self.calls]

    def sent(self, method: str, suffix: str) -> list[dict]:
        """The JSON bodies of the requests of `method` to paths ending with `suffix`."""
        return [json.loads(body) for m, path, body in self.calls
                if m == method and path.endswith(suffix)]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def flink_proxy(flink):
    proxy = FlinkProxy(flink.url)
    yield proxy
    proxy.close()
