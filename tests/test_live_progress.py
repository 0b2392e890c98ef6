"""An action under way is on the status branch while it runs (issue 17, point 3): one commit as
it starts shows its deployment TRANSITIONING and its action IN_PROGRESS with the steps; the
cycle's own commit replaces it, and after an agent killed mid-action the next cycle does."""

from __future__ import annotations

import yaml

from agent import testpoints
from agent.reconcile import sync
from conftest import DEFAULT_STATUS_BRANCH, git
from test_crash_safety import kill, start_frozen_at


def status_at(spec_repo, commit: str, name: str) -> dict:
    text = git(spec_repo.remote, "show", f"{commit}:deployments/{name}.yaml")
    return yaml.safe_load(text)["status"]


def test_an_upgrade_is_in_progress_on_the_status_branch_while_it_runs(
        deployed, spec_repo, settings, rest):
    deployed("progressing")
    spec_repo.push()
    assert sync(settings).exit_code == 0
    before = spec_repo.status_commits()
    deployed("progressing", parallelism=2)
    spec_repo.push("parallelism 2")
    assert sync(settings).exit_code == 0
    progress, done = reversed(spec_repo.status_commits()[:-len(before)])
    shown = status_at(spec_repo, progress, "progressing")
    assert shown["state"] == "TRANSITIONING"
    assert shown["lastAction"] | {"at": ""} == {
        "kind": "STATEFUL_UPGRADE", "result": "IN_PROGRESS", "at": "",
        "message": shown["lastAction"]["message"]}
    assert shown["lastAction"]["message"].startswith("stop with savepoint job ")
    assert git(spec_repo.remote, "log", "-1", "--format=%s", progress) == \
        "progressing: STATEFUL_UPGRADE in progress"
    assert status_at(spec_repo, done, "progressing")["lastAction"]["result"] == "SUCCESS"
    assert done == git(spec_repo.remote, "rev-parse", DEFAULT_STATUS_BRANCH)
    commits = spec_repo.status_commits()
    assert sync(settings).outcomes == {} and spec_repo.status_commits() == commits


def test_an_agent_killed_mid_action_leaves_in_progress_only_until_the_next_cycle(
        deployed, spec_repo, settings, rest, tmp_path):
    deployed("interrupted")
    spec_repo.push()
    assert sync(settings).exit_code == 0
    rest.wait_checkpoint(rest.job("interrupted", 1))
    deployed("interrupted", parallelism=2)
    spec_repo.push("parallelism 2")
    kill(start_frozen_at(testpoints.OLD_JOB_STOPPED, settings, tmp_path))
    assert spec_repo.status_of("interrupted")["lastAction"]["result"] == "IN_PROGRESS"
    assert sync(settings).exit_code == 0
    status = spec_repo.status_of("interrupted")
    assert status["state"] == "RUNNING" and status["lastAction"]["result"] == "SUCCESS"
    assert rest.running() == [status["job"]["id"]]


def test_actions_starting_together_are_told_in_one_progress_commit_per_interval(
        deployed, spec_repo, settings, rest, monkeypatch):
    from agent import reconcile

    monkeypatch.setattr(reconcile, "PROGRESS_INTERVAL_S", 3600.0)   # none ends in this cycle
    for name in ("together-a", "together-b", "together-c"):
        deployed(name)
    spec_repo.push("three at once")
    assert sync(settings).exit_code == 0
    progress, done = reversed(spec_repo.status_commits())
    assert git(spec_repo.remote, "log", "-1", "--format=%s", progress) == \
        "together-a: START in progress"       # the first action told at once, the rest not
    assert status_at(spec_repo, done, "together-c")["state"] == "RUNNING"
