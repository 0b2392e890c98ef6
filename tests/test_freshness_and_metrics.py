"""What a team watches and clicks: per-deployment series on /metrics (kept to the deployments
the status branch lists), the agent's heartbeat beside the status branch and what `flink-gitops
status` makes of it, and job links to the Flink web UI on the status branch. The daemon runs as
a real process against a real git repository and the shared real Flink cluster."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import requests
from markdown_it import MarkdownIt

from agent.config import DEFAULT_STATUS_BRANCH
from agent.model.spec import DeploymentTarget
from agent.report.dashboard import status_files
from agent.report.links import ui_bases
from agent.status_store import heartbeat_ref
from test_daemon import Agent, no_daemon_left_running, wait_for  # noqa: F401 - a fixture
from test_dashboard import COMMIT, fleet

GOLDEN = Path(__file__).parent / "golden"
HEARTBEAT = heartbeat_ref(DEFAULT_STATUS_BRANCH)
QUICK = {"FLINK_GITOPS_RUN_HEARTBEAT_INTERVAL": "1s"}   # run's --heartbeat-interval
PROD_UI = {"prod": "https://flink-prod.example.com:8081"}


def unique(prefix: str) -> str:
    """A deployment name no other test on the shared cluster uses."""
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def series(agent: Agent, deployment: str) -> list[str]:
    """The /metrics lines of one deployment."""
    text = requests.get(f"{agent.url}/metrics", timeout=5).text
    return [line for line in text.splitlines() if f'deployment="{deployment}"' in line]


def status_command(settings, tmp_path, env: dict | None = None) -> subprocess.CompletedProcess:
    """`flink-gitops status` as a user runs it, from a work dir of its own."""
    return subprocess.run([sys.executable, "-m", "agent.cli", "status", "--repo", settings.repo,
                           "--workdir", str(tmp_path / "reader")], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **(env or {})})


def remote_heartbeat(spec_repo) -> str | None:
    process = subprocess.run(["git", "-C", str(spec_repo.remote), "rev-parse", "--verify",
                              "--quiet", HEARTBEAT], capture_output=True, text=True)
    return process.stdout.strip() or None


def old_heartbeat(spec_repo, seconds_ago: int, message: str) -> None:
    """Writes the heartbeat ref on the remote by hand: an agent last seen `seconds_ago`."""
    def git(*args: str, input: str = "", env: dict | None = None) -> str:
        return subprocess.run(["git", "-C", str(spec_repo.remote), *args], input=input,
                              capture_output=True, text=True, check=True,
                              env={**os.environ, **(env or {})}).stdout.strip()
    when = f"@{int(time.time()) - seconds_ago} +0000"
    commit = git("commit-tree", git("mktree"), "-F", "-", input=message,
                 env={"GIT_AUTHOR_NAME": "flink-gitops", "GIT_AUTHOR_EMAIL": "a@localhost",
                      "GIT_COMMITTER_NAME": "flink-gitops", "GIT_COMMITTER_EMAIL": "a@localhost",
                      "GIT_AUTHOR_DATE": when, "GIT_COMMITTER_DATE": when})
    git("update-ref", HEARTBEAT, commit)


# --- per-deployment series ------------------------------------------------------------------

def test_metrics_follow_each_deployment_and_drop_one_whose_spec_is_deleted(
        deployed, spec_repo, settings, tmp_path):
    name = unique("series")
    health = "healthPolicy: {maxRestarts: 5, checkpointProgressTimeout: 15m}"
    deployed(name, extra=health)
    spec_repo.push(f"{name} deployed")
    agent = Agent(settings, tmp_path, interval="1s", drift_interval="2s", env=QUICK)
    wait_for(lambda: agent.metric(f'flink_gitops_deployment_status{{deployment="{name}",'
                                  f'state="RUNNING",sync="SYNCED"}}') == 1, timeout=90)
    assert agent.metric(f'flink_gitops_deployment_in_desired_state{{deployment="{name}"}}') == 1
    assert f'flink_gitops_deployment_job_restarts{{deployment="{name}"}} 0.0' in series(agent,
                                                                                          name)
    checkpoint_age = f'flink_gitops_deployment_last_checkpoint_age_seconds{{deployment="{name}"}}'
    wait_for(lambda: any(line.startswith(checkpoint_age) for line in series(agent, name)),
             timeout=60)   # (its health is read each cycle)
    assert 0 <= agent.metric(checkpoint_age) < 60
    assert agent.metric(f'flink_gitops_deployment_actions_total{{deployment="{name}",'
                        f'kind="START",result="SUCCESS"}}') == 1

    deployed(name, state="SUSPENDED", extra=health)
    spec_repo.push(f"{name} suspended")
    wait_for(lambda: agent.metric(f'flink_gitops_deployment_status{{deployment="{name}",'
                                  f'state="SUSPENDED",sync="SYNCED"}}') == 1, timeout=90)
    lines = series(agent, name)
    assert not [line for line in lines if 'state="RUNNING"' in line]   # one state at a time
    age = agent.metric(f'flink_gitops_deployment_last_savepoint_age_seconds{{deployment="{name}"}}')
    assert 0 <= age < 120
    assert agent.metric(f'flink_gitops_deployment_actions_total{{deployment="{name}",'
                        f'kind="SUSPEND",result="SUCCESS"}}') == 1

    (spec_repo.checkout / f"deployments/{name}.yaml").unlink()
    spec_repo.push(f"{name} deleted")
    wait_for(lambda: series(agent, name) == [], timeout=90)
    assert f'"{name}"' not in spec_repo.status_file("status.json")


# --- heartbeat ------------------------------------------------------------------------------

def test_the_heartbeat_reaches_the_remote_without_a_status_commit_and_status_prints_its_age(
        spec_repo, settings, tmp_path):
    spec_repo.push("an empty spec repo")
    agent = Agent(settings, tmp_path, drift_interval="1s", env=QUICK)
    wait_for(lambda: remote_heartbeat(spec_repo) is not None)
    status_commits, first = spec_repo.status_commits(), remote_heartbeat(spec_repo)
    wait_for(lambda: remote_heartbeat(spec_repo) != first, timeout=30)   # beats go on ...
    assert spec_repo.status_commits() == status_commits                # ... committing nothing
    assert time.time() - agent.metric("flink_gitops_last_heartbeat_timestamp_seconds") < 30
    assert agent.metric("flink_gitops_last_successful_cycle_timestamp_seconds") > 0

    shown = status_command(settings, tmp_path)
    who = f"{socket.gethostname()}:{agent.process.pid}"
    assert shown.returncode == 0
    assert re.search(rf"agent last seen \d+s ago \({re.escape(who)}\)", shown.stdout), shown
    assert "warning" not in shown.stderr


def test_status_warns_in_yellow_of_an_agent_not_seen_for_three_intervals(
        spec_repo, settings, tmp_path):
    spec_repo.push("an empty spec repo")
    old_heartbeat(spec_repo, 2 * 3600, "heartbeat of old-host:42\n\nAgent: old-host:42\n"
                                       "Interval-Seconds: 60\n")
    shown = status_command(settings, tmp_path, env={"FORCE_COLOR": "1", "TERM": "xterm"})
    assert shown.returncode == 0
    warning = re.sub(r"\x1b\[[0-9;]*m", "", shown.stderr)
    assert "agent last seen 2h 0m ago (old-host:42): older than 3 heartbeat intervals (60s)" \
        in warning
    assert "\x1b[33m" in shown.stderr   # yellow


def test_a_heartbeat_that_does_not_say_its_interval_is_stale_after_15_minutes(
        spec_repo, settings, tmp_path):
    spec_repo.push("an empty spec repo")
    old_heartbeat(spec_repo, 10 * 60, "written by hand\n")
    assert "agent last seen 10m ago (unknown agent)" in status_command(settings, tmp_path).stdout
    old_heartbeat(spec_repo, 20 * 60, "written by hand\n")
    assert "older than 3 heartbeat intervals (300s, the default" in \
        status_command(settings, tmp_path).stderr


def test_status_says_the_agent_was_never_seen_without_a_heartbeat(spec_repo, settings, tmp_path):
    spec_repo.push("an empty spec repo")
    shown = status_command(settings, tmp_path)
    assert shown.returncode == 0
    assert f"agent never seen: no heartbeat at {HEARTBEAT}" in shown.stderr


def test_a_heartbeat_the_remote_refuses_is_a_log_line_and_the_cycles_go_on(
        spec_repo, settings, tmp_path):
    spec_repo.push("an empty spec repo")
    hook = spec_repo.remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\nif grep -q refs/flink-gitops/; then\n"
                    "  echo 'no such refs here' >&2; exit 1\nfi\n")
    hook.chmod(0o755)
    agent = Agent(settings, tmp_path, drift_interval="1s", env=QUICK)
    wait_for(lambda: agent.metric('flink_gitops_heartbeats_total{outcome="failed"}') >= 2)
    assert agent.metric('flink_gitops_cycles_total{result="success"}') >= 2
    assert agent.metric('flink_gitops_cycles_total{result="error"}') == 0
    assert requests.get(f"{agent.url}/readyz", timeout=5).status_code == 200
    assert agent.metric("flink_gitops_last_heartbeat_timestamp_seconds") == 0
    assert "heartbeat not pushed" in agent.log.read_text()
    assert remote_heartbeat(spec_repo) is None


# --- links to the Flink web UI --------------------------------------------------------------

def linked_files() -> dict[str, str]:
    return {path: content.decode()
            for path, content in status_files(fleet(), COMMIT, ui_urls=PROD_UI).items()}


def as_golden(text: str, golden: str) -> bool:
    """Whether `text` is the golden file's (UPDATE_GOLDEN=1 writes it anew first)."""
    if os.environ.get("UPDATE_GOLDEN"):
        (GOLDEN / golden).write_text(text)
    return text == (GOLDEN / golden).read_text()


def test_the_dashboard_and_a_deployment_page_with_ui_links_match_their_golden_files():
    rendered = linked_files()
    assert as_golden(rendered["README.md"], "dashboard-ui-links.md")
    assert as_golden(rendered["deployments/orders.md"], "deployment-ui-links.md")


def test_each_job_links_to_its_page_in_the_web_ui_of_its_target():
    page = f"{PROD_UI['prod']}/#/job/running/{2:032x}/overview"
    for path in ("README.md", "deployments/orders.md"):
        html = MarkdownIt("commonmark").enable("table").render(linked_files()[path])
        assert f'<a href="{page}"><code>{2:032x}</code></a>' in html
    unlinked = status_files(fleet(), COMMIT)   # no web UI known: ids as before, no links
    assert "#/job/" not in unlinked["README.md"].decode()


def target(flink: dict | None = None, local: dict | None = None) -> DeploymentTarget:
    return DeploymentTarget.model_validate({
        "apiVersion": "v1", "kind": "DeploymentTarget", "metadata": {"name": "t"},
        "spec": {"flink": flink} if flink else {"local": local}})


def test_a_web_ui_link_carries_no_secret_and_no_address_that_is_not_http():
    bases = ui_bases({
        "credentials": target({"url": "https://ops:s3cret@flink.example.com:8081/x/?token=t"}),
        "reference": target({"url": "https://${FLINK_HOST}:8081"}),
        "ui": target({"url": "http://flink-rest:8081", "uiUrl": "https://flink.example.com/ui/"}),
        "script": target({"url": "http://flink-rest:8081", "uiUrl": "javascript:alert(1)"}),
        "local": target(local={"port": 8082}),
    })
    assert bases == {"credentials": "https://flink.example.com:8081/x",
                     "ui": "https://flink.example.com/ui", "local": "http://localhost:8082"}
