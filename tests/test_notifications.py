"""Notifications (`--notify`) against real receivers — HTTP servers of the tests' own — and a
real Flink: what is told (a failed action, a rollback, an unhealthy job, a policy block, healed
drift), once, to the receivers whose selector matches; receivers that are slow, down or failing
never slow a cycle, failing ones are tried again, and no secret of a receiver's URL is
logged."""

from __future__ import annotations

import dataclasses
import json
import logging
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from agent import outbox
from agent.config import DEFAULT_STATUS_BRANCH
from agent.errors import StatusKept
from agent.outbox import DELIVERY_ATTEMPTS, DELIVERY_TIMEOUT_S, Delivery, Outbox
from agent.reconcile import sync
from conftest import ROOT, free_port, git

STATUS_URL = "https://git.example/specs/src/branch/{branch}/deployments/{deployment}.md"
DENY_EVERY_JOB = """\
    package main

    import rego.v1

    deny contains msg if {
    	input.spec.template.spec.parallelism > 0
    	msg := sprintf("%s: no new jobs this week (change freeze)", [input.metadata.name])
    }
    """


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: dict


class Receiver:
    """A real HTTP server that records every request and answers `status` (after `delay`
    seconds; the first answers from `first`, when given)."""

    def __init__(self, status: int = 200, delay: float = 0.0, first: tuple[int, ...] = ()):
        self.requests: list[Request] = []
        answers = list(first)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.requests.append(Request(self.command, self.path, dict(self.headers),
                                                 json.loads(body or b"{}")))
                time.sleep(delay)
                answer = answers.pop(0) if answers else status
                try:
                    self.send_response(answer)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"{}")
                except OSError:
                    pass   # the agent stopped waiting

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def bodies(self) -> list[dict]:
        return [r.body for r in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiving():
    """Makes receivers; afterwards closes them and lets the agent's deliveries settle."""
    made: list[Receiver] = []

    def receiver(**answer) -> Receiver:
        made.append(Receiver(**answer))
        return made[-1]
    yield receiver
    for each in made:
        each.close()
    outbox.wait(3 * DELIVERY_TIMEOUT_S)


def wait_for(condition, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def told(settings, *receivers: str, **more):
    return dataclasses.replace(settings, notify=receivers, status_url=STATUS_URL, **more)


def blocked_by_policy(spec_repo, deployed, name: str) -> str:
    """A deployment a repo policy blocks (nothing starts: a cheap cycle with a notice); returns
    the spec commit."""
    spec_repo.write("policies/freeze.rego", DENY_EVERY_JOB)
    deployed(name)
    return spec_repo.push(f"{name} deployed")


def test_a_change_blocked_by_policy_is_told_once_with_its_links(
        deployed, spec_repo, settings, flink, receiving):
    hook = receiving()
    commit = blocked_by_policy(spec_repo, deployed, "told-blocked")
    settings = told(settings, f"{hook.url}/hooks/flink")
    assert sync(settings).exit_code == 1
    assert outbox.wait(10)
    [request] = hook.requests
    assert (request.method, request.path) == ("POST", "/hooks/flink")
    page = settings.status_page("told-blocked")
    assert request.body == {
        "event": "BLOCKED", "deployment": "told-blocked", "action": None, "result": None,
        "message": "policies/freeze.rego: told-blocked: no new jobs this week (change freeze)",
        "commit": commit, "links": {"statusPage": page, "flinkUi": flink.url},
        "text": "*told-blocked*: change blocked: policies/freeze.rego: told-blocked: no new "
                f"jobs this week (change freeze)\nspec commit {commit[:10]} · <{page}|status "
                f"page> · <{flink.url}|Flink UI>"}
    assert sync(settings).exit_code == 1   # still blocked: nothing new to tell
    assert outbox.wait(10) and len(hook.requests) == 1


def test_only_the_receivers_whose_labels_match_are_told(deployed, spec_repo, settings,
                                                        receiving):
    team, other, narrower, every = (receiving() for _ in range(4))
    blocked_by_policy(spec_repo, deployed, "told-by-label")   # labels {team: test}
    assert sync(told(settings, f"{team.url};team=test", f"{other.url};team=payments",
                     f"{narrower.url};team=test,env=prod", f"{every.url};")).exit_code == 1
    assert outbox.wait(10)
    assert [len(r.requests) for r in (team, other, narrower, every)] == [1, 0, 0, 1]


def test_a_job_that_cannot_start_is_told_failed_once(deployed, spec_repo, settings, receiving):
    hook = receiving()
    deployed("told-failed", args="--rate 0", extra="maxJobCreationAttempts: 1")
    commit = spec_repo.push()
    settings = told(settings, hook.url)
    assert sync(settings).exit_code == 1
    assert sync(settings).exit_code == 1   # the failed spec is not tried again: nothing new
    assert outbox.wait(10)
    [notice] = hook.bodies()
    assert notice | {"message": "", "links": {}, "text": ""} == {
        "event": "FAILED", "deployment": "told-failed", "action": "START", "result": "FAILED",
        "message": "", "commit": commit, "links": {}, "text": ""}
    assert "--rate and --keys must be positive" in notice["message"]
    assert notice["text"].startswith("*told-failed*: START failed: ")


def test_what_a_cycle_tells_is_told_even_when_its_status_is_kept_for_the_next_cycle(
        deployed, spec_repo, settings, receiving, monkeypatch):
    """The remote is away when the status is pushed: the failed action is told all the same,
    and the next cycle, which pushes the kept status, does not tell it again."""
    hook = receiving()
    deployed("told-kept", args="--rate 0", extra="maxJobCreationAttempts: 1")
    spec_repo.push()
    settings = told(settings, hook.url)
    spec_repo.away_at_status_push(monkeypatch)
    with pytest.raises(StatusKept):
        sync(settings)
    spec_repo.come_back()
    assert sync(settings).exit_code == 1
    assert outbox.wait(10)
    assert [(n["event"], n["deployment"]) for n in hook.bodies()] == [("FAILED", "told-kept")]
    assert spec_repo.status_of("told-kept")["lastAction"]["result"] == "FAILED"


def test_an_upgrade_rolled_back_is_told_and_fails_its_commit(deployed, spec_repo, settings,
                                                             rest, receiving, monkeypatch):
    hook, host = receiving(), receiving(status=201)
    monkeypatch.setenv("FG_TEST_GITEA_TOKEN", "gitea-s3cret-token")
    settings = told(settings, hook.url, commit_status="gitea", commit_status_url=host.url,
                    commit_status_repo="flink/specs",
                    commit_status_token="${FG_TEST_GITEA_TOKEN}")
    deployed("told-rolled-back")
    spec_repo.push()
    assert sync(settings).exit_code == 0
    deployed("told-rolled-back", args="--rate 0", extra="maxJobCreationAttempts: 1")
    upgrade = spec_repo.push("a job that cannot start")
    assert sync(settings).exit_code == 1
    assert rest.running() == [rest.job("told-rolled-back", 3)]   # 1 + maxJobCreationAttempts + 1
    assert outbox.wait(10)
    [notice] = hook.bodies()
    assert (notice["event"], notice["action"], notice["result"], notice["commit"]) == (
        "ROLLED_BACK", "STATEFUL_UPGRADE", "FAILED", upgrade)
    assert "rolled back to the spec of commit" in notice["message"]
    assert notice["links"]["flinkJob"].endswith(f"/#/job/running/"
                                                f"{rest.job('told-rolled-back', 3)}/overview")
    on_upgrade = [r.body for r in host.requests if r.path.endswith(upgrade)]
    assert [(b["state"], b["context"]) for b in on_upgrade] == [
        ("pending", "flink-gitops/told-rolled-back"), ("failure", "flink-gitops/told-rolled-back")]


def test_drift_healed_is_told(deployed, spec_repo, settings, rest, receiving):
    hook = receiving()
    settings = told(settings, hook.url)
    deployed("told-healed")
    spec_repo.push()
    assert sync(settings).exit_code == 0
    first = rest.job("told-healed", 1)
    requests.patch(f"{rest.url}/jobs/{first}", params={"mode": "cancel"}, timeout=10)
    rest.wait_state(first, "CANCELED")
    assert sync(settings).exit_code == 0
    assert outbox.wait(10)
    [notice] = hook.bodies()
    assert (notice["event"], notice["action"], notice["result"]) == (
        "DRIFT_HEALED", "RESTART", "SUCCESS")
    assert "CANCELED" in notice["message"] and rest.job("told-healed", 2) in notice["message"]


def test_a_job_turning_unhealthy_is_told_once(deployed, spec_repo, settings, rest, receiving):
    hook = receiving()
    settings = told(settings, hook.url)
    deployed("told-unhealthy", args="--rate 20 --keys 4 --fail-after 10",
             options="restart-strategy.type: fixed-delay; "
                     "restart-strategy.fixed-delay.attempts: 1000; "
                     "restart-strategy.fixed-delay.delay: 60 s")
    spec_repo.push()
    assert sync(settings).exit_code == 0
    job = rest.job("told-unhealthy", 1)
    rest.wait_state(job, "RESTARTING")
    assert sync(settings).exit_code == 1
    assert sync(settings).exit_code == 1   # unhealthy still: nothing new to tell
    assert outbox.wait(10)
    [notice] = hook.bodies()
    assert (notice["event"], notice["action"], notice["result"]) == ("UNHEALTHY", None, None)
    assert f"job {job} is RESTARTING" in notice["message"]
    assert "failing on purpose" in notice["message"]


def test_slow_and_failing_receivers_never_slow_the_cycle_and_failing_ones_are_tried_again(
        deployed, spec_repo, settings, receiving, caplog, monkeypatch):
    caplog.set_level(logging.INFO)
    monkeypatch.setenv("FG_TEST_HOOK_TOKEN", "hook-s3cret-token")
    slow = receiving(delay=6 * DELIVERY_TIMEOUT_S)
    failing = receiving(status=500)
    blocked_by_policy(spec_repo, deployed, "told-slowly")
    settings = told(settings, slow.url, f"{failing.url}/hooks/${{FG_TEST_HOOK_TOKEN}}")
    started = time.monotonic()
    assert sync(settings).exit_code == 1
    assert time.monotonic() - started < DELIVERY_TIMEOUT_S   # not one receiver's timeout
    wait_for(lambda: len(failing.requests) == DELIVERY_ATTEMPTS)
    assert {r.path for r in failing.requests} == {"/hooks/hook-s3cret-token"}
    wait_for(lambda: "not delivered after 4 attempts: HTTP 500" in caplog.text)
    time.sleep(1)
    assert len(failing.requests) == DELIVERY_ATTEMPTS and len(slow.requests) >= 1
    assert "hook-s3cret-token" not in caplog.text
    assert "hook-s3cret-token" not in git(spec_repo.remote, "log", "-p", DEFAULT_STATUS_BRANCH)


def test_an_unreachable_receiver_is_reported_in_the_log_and_the_cycle_is_fine(
        deployed, spec_repo, settings, caplog, monkeypatch):
    caplog.set_level(logging.INFO)
    monkeypatch.delenv("FG_TEST_HOOK_GONE", raising=False)   # (gone since the agent started)
    nobody = f"http://127.0.0.1:{free_port()}"
    blocked_by_policy(spec_repo, deployed, "told-nobody")
    result = sync(told(settings, f"{nobody}/hooks/flink", "${FG_TEST_HOOK_GONE}"))
    assert result.exit_code == 1 and spec_repo.status_of("told-nobody")["sync"] == "BLOCKED"
    assert outbox.wait(10)
    assert (f"notification BLOCKED of told-nobody to {nobody} not delivered after 4 attempts: "
            "no connection") in caplog.text
    assert ("notification BLOCKED of told-nobody to a URL given by reference not sent: "
            "${FG_TEST_HOOK_GONE}: the agent's environment has no variable FG_TEST_HOOK_GONE"
            ) in caplog.text
    assert "/hooks/flink" not in caplog.text   # a receiver is named by its host only


def test_a_one_shot_sync_delivers_before_its_process_ends(deployed, spec_repo, settings,
                                                         receiving):
    hook = receiving(first=(503,))   # delivered on the second attempt, after the cycle ended
    blocked_by_policy(spec_repo, deployed, "told-at-exit")
    run = subprocess.run([sys.executable, "-m", "agent.cli", "sync", "--repo",
                          str(settings.repo), "--workdir", str(settings.workdir),
                          "--notify", f"{hook.url}/hooks/flink"], capture_output=True,
                         text=True, cwd=ROOT, timeout=120)
    assert run.returncode == 1, run.stderr
    assert [(b["event"], b["deployment"]) for b in hook.bodies()] == [
        ("BLOCKED", "told-at-exit")] * 2


def test_deliveries_of_one_receiver_keep_their_order_through_retries(receiving):
    hook = receiving(first=(503,))
    mail = Outbox(workers=2)
    for state in ("pending", "success"):
        assert mail.send(Delivery(hook.url, {"state": state}, f"status {state}", "one line"))
    assert mail.wait(10)
    assert [b["state"] for b in hook.bodies()] == ["pending", "pending", "success"]


def test_a_full_outbox_drops_what_comes_and_says_so(receiving, caplog):
    slow = receiving(delay=2 * DELIVERY_TIMEOUT_S)
    mail = Outbox(capacity=2, workers=1)
    sent = [mail.send(Delivery(slow.url, {"n": n}, f"notification {n}", f"line {n}"))
            for n in range(3)]
    assert sent == [True, True, False]
    assert "notification 2 to http://127.0.0.1:" in caplog.text
    assert "dropped: 2 deliveries wait already (at most 2)" in caplog.text


@pytest.mark.parametrize("notify, said", [
    ("ftp://hooks.example/flink", "the receiver must be an http:// or https:// URL"),
    ("https://hooks.example/flink;team", "'team' is no label=value"),
    ("https://hooks.example/flink;team=a,team=b", "a label is given twice"),
    ("${FG_TEST_NO_SUCH_HOOK}", "the agent's environment has no variable FG_TEST_NO_SUCH_HOOK"),
])
def test_a_malformed_receiver_is_a_usage_error(tmp_path, notify, said):
    run = subprocess.run([sys.executable, "-m", "agent.cli", "sync", "--repo",
                          str(tmp_path / "specs.git"), "--workdir", str(tmp_path / "agent"),
                          "--notify", notify], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 2
    assert said in " ".join(run.stderr.split())
    assert "hooks.example/flink" not in run.stderr   # the path of a receiver is never shown
