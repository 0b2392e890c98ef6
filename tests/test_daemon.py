"""`flink-gitops run` as a real process against real Flink and a real git repository: webhooks,
coalesced cycles, metrics, SIGTERM."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests

from agent import testpoints
from agent.reconcile import sync
from conftest import free_port

SECRET = "webhook-s3cret"


def signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={digest}", "X-GitHub-Event": "push"}


def wait_for(condition, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


STARTED: list[subprocess.Popen] = []   # every daemon a test starts, ended after the test


@pytest.fixture(autouse=True)
def no_daemon_left_running():
    yield
    while STARTED:
        process = STARTED.pop()
        if process.poll() is None:
            process.kill()
            process.wait()


class Agent:
    """The daemon process, its URL and its metrics."""

    def __init__(self, settings, tmp_path, env: dict | None = None, ready: bool = True,
                 interval: str = "1h", drift_interval: str = "1h"):
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = tmp_path / f"daemon-{self.url.rsplit(':', 1)[1]}.log"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "agent.cli", "run", "--repo", settings.repo,
             "--workdir", str(settings.workdir), "--interval", interval,
             "--drift-interval", drift_interval,
             "--listen", self.url.removeprefix("http://")],
            env={**os.environ, "FLINK_GITOPS_WEBHOOK_SECRET": SECRET, **(env or {})},
            stdout=self.log.open("wb"), stderr=subprocess.STDOUT)
        STARTED.append(self.process)
        if ready:
            wait_for(lambda: self._get("/readyz") == 200)

    def _get(self, path: str) -> int | None:
        try:
            return requests.get(self.url + path, timeout=2).status_code
        except requests.RequestException:
            return None

    def push_event(self, branch: str = "main", headers: dict | None = None) -> int:
        body = json.dumps({"ref": f"refs/heads/{branch}"}).encode()
        return requests.post(f"{self.url}/hooks/git", data=body, timeout=5,
                             headers=headers if headers is not None else signed(body)).status_code

    def metric(self, name: str) -> float:
        text = requests.get(f"{self.url}/metrics", timeout=5).text
        values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                  if line.startswith(name + " ") or line.startswith(name + "{")
                  and not line.startswith("#")]
        return sum(values)

    def cycles(self) -> float:
        return self.metric('flink_gitops_cycles_total{result="success"}') + \
            self.metric('flink_gitops_cycles_total{result="error"}')

    def started_cycles(self) -> int:
        return self.log.read_text().count(" started")


@pytest.fixture
def agent(spec_repo, settings, tmp_path):
    spec_repo.push("an empty spec repo")
    return Agent(settings, tmp_path)   # ended by no_daemon_left_running


def test_a_push_and_its_webhook_start_the_job_without_waiting_for_the_interval(
        agent, deployed, spec_repo, rest):
    deployed("hooked")
    spec_repo.push()
    assert agent.push_event() == 202
    wait_for(lambda: rest.jobs().get(rest.job("hooked", 1)) == "RUNNING")
    wait_for(lambda: agent.metric('flink_gitops_actions_total{kind="START",result="SUCCESS"}')
             == 1)
    assert agent.metric('flink_gitops_deployments{state="RUNNING",sync="SYNCED"}') == 1
    assert agent.metric("flink_gitops_cycle_duration_seconds_count") >= 2
    assert agent.metric("flink_gitops_last_successful_cycle_timestamp_seconds") > 0
    assert spec_repo.status_of("hooked")["state"] == "RUNNING"


def test_the_daemon_settles_a_stability_window_by_the_cycles_it_schedules(
        agent, deployed, spec_repo, rest):
    """No poll and no drift check in the hour: only the cycles the window asks for settle it."""
    def last_action() -> str | None:
        try:
            return spec_repo.status_of("windowed")["lastAction"]["result"]
        except subprocess.CalledProcessError:   # no status of it yet
            return None

    deployed("windowed", extra="upgradeStabilityWindow: 3s")
    spec_repo.push()
    assert agent.push_event() == 202
    wait_for(lambda: last_action() == "SUCCESS")
    deployed("windowed", parallelism=2, extra="upgradeStabilityWindow: 3s")
    spec_repo.push("upgraded, watched for 3s")
    assert agent.push_event() == 202
    wait_for(lambda: last_action() == "IN_PROGRESS")
    wait_for(lambda: spec_repo.status_of("windowed")["lastAction"]["kind"] == "STATEFUL_UPGRADE"
             and last_action() == "SUCCESS", timeout=60)
    status = spec_repo.status_of("windowed")
    assert (status["state"], status["sync"]) == ("RUNNING", "SYNCED")
    assert rest.parallelism(status["job"]["id"]) == 2


def test_a_bad_signature_is_refused_and_triggers_nothing(agent):
    before = agent.cycles()
    body = json.dumps({"ref": "refs/heads/main"}).encode()
    assert agent.push_event(headers=signed(body, "wrong-secret")) == 401
    assert agent.push_event(headers={}) == 401
    assert agent.push_event(branch="feature") == 202  # verified, but another branch: ignored
    time.sleep(1)
    assert agent.cycles() == before
    assert agent.metric('flink_gitops_webhooks_total{outcome="unauthorized"}') == 2
    assert agent.metric('flink_gitops_webhooks_total{outcome="ignored"}') == 1


def test_webhooks_during_a_cycle_make_exactly_one_more(agent, spec_repo):
    listener = socket.socket()  # a "cluster" that accepts and never answers: a slow cycle
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    spec_repo.write_target("slow", f"http://127.0.0.1:{listener.getsockname()[1]}")
    spec_repo.write("deployments/slow.yaml", "apiVersion: v1\nkind: Deployment\n"
                    "metadata: {name: slow}\nspec:\n  deploymentTargetName: slow\n"
                    "  template: {spec: {artifact: {jarUri: a.jar}}}\n")
    spec_repo.write("a.jar", "a jar never read: the cluster never answers")
    spec_repo.push()
    before = agent.cycles()
    assert agent.push_event() == 202
    time.sleep(1)  # the cycle now waits on the silent cluster
    assert agent.push_event() == 202 and agent.push_event() == 202
    wait_for(lambda: agent.cycles() == before + 2, timeout=90)
    time.sleep(2)
    assert agent.cycles() == before + 2
    assert agent.metric('flink_gitops_errors_total{source="flink",target="slow"}') == 2
    listener.close()


def test_polling_notices_a_push_without_a_webhook_and_a_quiet_poll_runs_no_cycle(
        deployed, spec_repo, settings, rest, tmp_path):
    spec_repo.push("an empty spec repo")
    polling = Agent(settings, tmp_path, interval="1s")
    deployed("polled")
    spec_repo.push()
    wait_for(lambda: rest.jobs().get(rest.job("polled", 1)) == "RUNNING")
    wait_for(lambda: polling.metric('flink_gitops_git_polls_total{outcome="unchanged"}') >= 3)
    cycles = polling.cycles()  # git did not move: polls go on, cycles do not
    wait_for(lambda: polling.metric('flink_gitops_git_polls_total{outcome="unchanged"}') >= 6)
    assert polling.cycles() == cycles
    polling.process.send_signal(signal.SIGTERM)
    assert polling.process.wait(timeout=60) == 0


def test_drift_checks_heal_a_job_cancelled_outside_the_agent_while_git_is_still(
        deployed, spec_repo, settings, rest, tmp_path):
    deployed("drifting")
    spec_repo.push()
    checking = Agent(settings, tmp_path, drift_interval="2s")
    first = rest.job("drifting", 1)
    rest.wait_state(first, "RUNNING")
    requests.patch(f"{rest.url}/jobs/{first}", params={"mode": "cancel"}, timeout=10)
    wait_for(lambda: rest.jobs().get(rest.job("drifting", 2)) == "RUNNING", timeout=90)
    assert rest.jobs()[first] == "CANCELED"
    checking.process.send_signal(signal.SIGTERM)
    assert checking.process.wait(timeout=60) == 0


def test_sigterm_during_a_stateful_upgrade_finishes_it_defers_the_rest_and_exits_0(
        deployed, spec_repo, settings, rest, tmp_path):
    deployed("sigterm-a")
    deployed("sigterm-b")
    spec_repo.push()
    assert sync(settings).exit_code == 0
    old_second = rest.job("sigterm-b", 1)
    rest.wait_checkpoint(rest.job("sigterm-a", 1))
    deployed("sigterm-a", parallelism=2)
    deployed("sigterm-b", parallelism=2)
    spec_repo.push("both scale out")

    pause = tmp_path / "paused"
    stopping = Agent(settings, tmp_path, ready=False, env={
        "FLINK_GITOPS_PAUSE_AT": testpoints.SAVEPOINT_TRIGGERED,
        "FLINK_GITOPS_PAUSE_FILE": str(pause)})
    wait_for(pause.exists)  # first's stop-with-savepoint is under way
    stopping.process.send_signal(signal.SIGTERM)
    pause.unlink()
    assert stopping.process.wait(timeout=120) == 0

    first = spec_repo.status_of("sigterm-a")  # the running upgrade completed, savepoint recorded
    assert (first["state"], first["sync"]) == ("RUNNING", "SYNCED")
    assert first["job"]["restoredFrom"] == first["lastSavepoint"]["location"]
    assert rest.restored_from(first["job"]["id"]) == first["lastSavepoint"]["location"]
    second = spec_repo.status_of("sigterm-b")  # not started: left running as it was
    assert (second["state"], second["sync"]) == ("RUNNING", "OUT_OF_SYNC")
    assert second["job"]["id"] == old_second and rest.jobs()[old_second] == "RUNNING"
    assert "deferred" in second["history"]["events"][-1]["message"]

    restarted = Agent(settings, tmp_path)  # the next start completes what was deferred
    second = spec_repo.status_of("sigterm-b")
    assert (second["state"], second["sync"]) == ("RUNNING", "SYNCED")
    assert rest.jobs()[old_second] == "FINISHED"
    assert rest.parallelism(second["job"]["id"]) == 2
    assert restarted.metric(
        'flink_gitops_actions_total{kind="STATEFUL_UPGRADE",result="SUCCESS"}') == 1
    assert restarted.metric("flink_gitops_savepoint_duration_seconds_count") == 1
    assert restarted.metric('flink_gitops_deployments{state="RUNNING",sync="SYNCED"}') == 2
    restarted.process.send_signal(signal.SIGTERM)
    assert restarted.process.wait(timeout=60) == 0


def odd_job_entries(body: bytes) -> bytes:
    """Flink's jobs overview with an entry whose id is not Flink's (32 characters, not hex)."""
    answer = json.loads(body)
    answer["jobs"].append({"jid": "z" * 32, "name": "odd", "state": "RUNNING",
                           "start-time": 1, "end-time": -1, "tasks": {"total": 1}})
    return json.dumps(answer).encode()


def tasks_as_text(body: bytes) -> bytes:
    answer = json.loads(body)
    for job in answer["jobs"]:
        job["tasks"] = "many"
    return json.dumps(answer).encode()


def test_the_daemon_outlives_every_input_that_used_to_kill_it(
        deployed, spec_repo, settings, rest, flink_proxy, tmp_path):
    from conftest import counter_deployment
    from hostile_inputs import CASES

    deployed("survivor")
    spec_repo.write_target("test", flink_proxy.url)
    spec_repo.push()
    daemon = Agent(settings, tmp_path)
    job = rest.job("survivor", 1)
    rest.wait_state(job, "RUNNING")

    def survives(why: str) -> None:
        before = daemon.cycles()
        assert daemon.push_event() == 202, why
        wait_for(lambda: daemon.cycles() > before, timeout=90)
        assert daemon.process.poll() is None, why
        assert requests.get(daemon.url + "/healthz", timeout=5).status_code == 200, why
        assert rest.running() == [job], why

    path = spec_repo.checkout / "deployments/survivor.yaml"
    for case in [c for c in CASES if c.crashed_the_daemon]:
        content = case.make(counter_deployment("survivor"), "survivor")
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        spec_repo.push(case.id)
        survives(case.id)
    deployed("survivor")
    spec_repo.write("policies/conflict.rego", "package main\nimport rego.v1\n\n"
                    "x := 1 if input.spec\nx := 2 if input.spec\n"
                    "deny contains \"never\" if x == 3\n")
    spec_repo.write("targets/tls.yaml", "apiVersion: v1\nkind: DeploymentTarget\n"
                    "metadata: {name: tls}\nspec:\n  flink:\n    url: https://127.0.0.1:9\n"
                    "    tls: {caFile: /nonexistent/ca.pem}\n")
    spec_repo.write("deployments/on-tls.yaml", counter_deployment("on-tls", target="tls"))
    spec_repo.push("a policy that fails, a CA file that is not there")
    survives("policy and TLS")
    assert spec_repo.status_of("survivor")["sync"] == "BLOCKED"
    assert any("tls.caFile /nonexistent/ca.pem cannot be read" in e["message"]
               for e in spec_repo.status_of("on-tls")["errors"])

    (spec_repo.checkout / "policies/conflict.rego").unlink()
    spec_repo.push("the policy removed")
    for fake in (odd_job_entries, b"<html>not json</html>", tasks_as_text):
        flink_proxy.answers["/jobs/overview"] = fake
        survives(getattr(fake, "__name__", "not json"))
    flink_proxy.answers.clear()

    deployed("survivor", parallelism=2)
    spec_repo.push("a valid change after all that")
    assert daemon.push_event() == 202
    wait_for(lambda: rest.jobs().get(rest.job("survivor", 2)) == "RUNNING", timeout=120)
    assert rest.jobs()[job] == "FINISHED"
    daemon.process.send_signal(signal.SIGTERM)
    assert daemon.process.wait(timeout=60) == 0
    assert "Traceback" not in daemon.log.read_text()


def raw_post(url: str, head: bytes, body: bytes = b"") -> bytes:
    """A POST written by hand (no client library fixes its headers); the status line."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(b"POST /hooks/git HTTP/1.1\r\nHost: x\r\n" + head + b"\r\n" + body)
        return conn.recv(4096).split(b"\r\n", 1)[0]


def test_the_webhook_endpoint_answers_every_malformed_call_and_stays_up(agent):
    from hostile_inputs import SIGNED_BODIES, WEBHOOK_CASES

    before = agent.cycles()
    for case in WEBHOOK_CASES:
        assert raw_post(agent.url, case.head, case.body).split(b" ")[1] == \
            str(case.status).encode(), case.id
    for name, body in SIGNED_BODIES.items():
        assert requests.post(f"{agent.url}/hooks/git", data=body, headers=signed(body),
                             timeout=10).status_code == 400, name
    assert requests.get(f"{agent.url}/healthz?x=1", timeout=5).status_code == 200
    time.sleep(1)
    assert agent.cycles() == before     # nothing malformed triggered a cycle

    good = json.dumps({"ref": "refs/heads/main"}).encode()
    sign = signed(good)["X-Hub-Signature-256"].encode()
    before = agent.cycles()
    replayed = {"X-Hub-Signature-256": sign.decode(), "X-GitHub-Delivery": "delivery-1"}
    for _ in range(2):
        assert requests.post(f"{agent.url}/hooks/git", data=good, headers=replayed,
                             timeout=10).status_code == 202
    wait_for(lambda: agent.cycles() == before + 1)
    time.sleep(1)
    assert agent.cycles() == before + 1
    assert agent.metric('flink_gitops_webhooks_total{outcome="replayed"}') == 1

    idle = [socket.create_connection(agent.url.removeprefix("http://").split(":"), timeout=10)
            for _ in range(200)]   # more than the connections handled at once, all silent
    wait_for(lambda: agent._get("/healthz") == 200, timeout=20)
    threads = int(open(f"/proc/{agent.process.pid}/status").read().split("Threads:")[1].split()[0])
    assert threads < 100
    for conn in idle:
        conn.close()
    assert agent.process.poll() is None


def test_an_empty_webhook_secret_is_refused_at_start(settings, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "agent.cli", "run", "--repo", settings.repo, "--workdir",
         str(settings.workdir), "--listen", f"127.0.0.1:{free_port()}"],
        env={**os.environ, "FLINK_GITOPS_WEBHOOK_SECRET": " "}, capture_output=True, text=True,
        timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "FLINK_GITOPS_WEBHOOK_SECRET is set but empty" in result.stderr


def test_a_remote_that_goes_away_makes_the_daemon_unready_not_dead(agent, spec_repo):
    moved = spec_repo.remote.with_name("specs-away.git")
    spec_repo.remote.rename(moved)
    try:
        for failed in range(1, 4):
            before = agent.cycles()
            assert agent.push_event() == 202
            wait_for(lambda: agent.cycles() > before)
            assert agent.metric("flink_gitops_failed_cycles_in_a_row") == failed
            assert agent._get("/readyz") == (503 if failed >= 3 else 200)
        assert agent._get("/healthz") == 200 and agent.process.poll() is None
        assert agent.metric('flink_gitops_errors_total{source="git",target=""}') >= 3
    finally:
        moved.rename(spec_repo.remote)
    assert agent.push_event() == 202
    wait_for(lambda: agent._get("/readyz") == 200)
    assert agent.metric("flink_gitops_failed_cycles_in_a_row") == 0
    assert "cannot fetch" in agent.log.read_text()
