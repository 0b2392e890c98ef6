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


class Agent:
    """The daemon process, its URL and its metrics."""

    def __init__(self, settings, tmp_path):
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = tmp_path / "daemon.log"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "agent.cli", "run", "--repo", settings.repo,
             "--workdir", str(settings.workdir), "--interval", "1h",
             "--listen", self.url.removeprefix("http://")],
            env={**os.environ, "FLINK_GITOPS_WEBHOOK_SECRET": SECRET},
            stdout=self.log.open("wb"), stderr=subprocess.STDOUT)
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
    running = Agent(settings, tmp_path)
    yield running
    if running.process.poll() is None:
        running.process.kill()
        running.process.wait()


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
    spec_repo.push()
    before = agent.cycles()
    assert agent.push_event() == 202
    time.sleep(1)  # the cycle now waits on the silent cluster
    assert agent.push_event() == 202 and agent.push_event() == 202
    wait_for(lambda: agent.cycles() == before + 2, timeout=90)
    time.sleep(2)
    assert agent.cycles() == before + 2
    listener.close()


def test_sigterm_lets_the_running_cycle_finish_and_exits_0(agent, deployed, spec_repo, rest):
    deployed("terminated")
    spec_repo.push()
    started = agent.started_cycles()
    assert agent.push_event() == 202
    wait_for(lambda: agent.started_cycles() > started)  # the cycle is under way
    agent.process.send_signal(signal.SIGTERM)
    assert agent.process.wait(timeout=120) == 0
    status = spec_repo.status_of("terminated")  # the cycle it was in completed and reported
    assert status["state"] == "RUNNING" and rest.jobs()[status["job"]["id"]] == "RUNNING"
