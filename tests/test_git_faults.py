"""git faults on a real remote: a remote that is away when the status is pushed, a status push
that keeps losing races. (A remote away at fetch: test_daemon; a lease left behind:
test_one_agent_at_a_time; a broken work dir: test_workdir_faults.)"""

from __future__ import annotations

import json
import time
from dataclasses import replace

import pytest
import yaml

from agent.errors import StatusKept, StatusPushRejected
from agent.reconcile import sync
from conftest import Flink, git
from faults import recovered


def savepoints_of(flink, job: str) -> int:
    """How many savepoints of the job lie in the cluster's savepoint directory."""
    return len(list(flink.savepoint_dir.glob(f"savepoint-{job[:6]}-*")))


def test_a_status_the_remote_could_not_take_is_kept_and_pushed_first_by_the_next_cycle(
        checkpointed, deployed, spec_repo, settings, flink, monkeypatch):
    """The remote goes away between a savepoint action and its status push: the status is kept
    in the work dir. When the remote is back, the next cycle pushes it before it reads the
    branch, so it does not take the savepoint a second time, and the branch has it."""
    job = checkpointed("status-kept")
    deployed("status-kept", extra="savepointTriggerNonce: 1")
    spec_repo.push("take a savepoint")
    spec_repo.away_at_status_push(monkeypatch)
    with pytest.raises(StatusKept, match="kept in the work dir"):
        sync(settings)
    assert savepoints_of(flink, job) == 1
    with pytest.raises(StatusKept):          # still away: nothing is read, nothing acts
        sync(settings)
    spec_repo.come_back()

    before, back = spec_repo.status_commits(), time.monotonic()
    assert sync(settings).exit_code == 0
    recovered("git remote away at the status push", ["status-kept"], Flink(flink.url), spec_repo,
              flink.savepoint_dir, back)
    assert savepoints_of(flink, job) == 1     # not taken twice
    status = spec_repo.status_of("status-kept")
    assert status["savepointTriggerNonce"] == 1
    assert status["lastSavepoint"]["origin"] == "USER_REQUEST"
    assert status["lastSavepoint"]["jobId"] == job
    assert len(spec_repo.status_commits()) == len(before) + 1   # the kept one, then nothing
    message = git(spec_repo.remote, "log", "-1", "--format=%B", "flink-gitops/status")
    assert "status-kept: SUCCESS take a savepoint" in message


def test_a_kept_status_lands_on_a_branch_that_moved_meanwhile_beside_another_shards(
        checkpointed, deployed, spec_repo, settings, flink, monkeypatch, tmp_path):
    """While a shard's status waits in the work dir, another shard's agent commits its document
    to the branch: the kept commit's changes are made on top of it, and the other's document
    stays, on the dashboard too."""
    job = checkpointed("kept-on-moved")
    deployed("kept-on-moved", extra="savepointTriggerNonce: 1")
    spec_repo.push("take a savepoint")
    sharded = replace(settings, shard_selector="team=test")
    spec_repo.away_at_status_push(monkeypatch)
    with pytest.raises(StatusKept):
        sync(sharded)
    spec_repo.come_back()
    other = tmp_path / "other-shard"
    git(tmp_path, "clone", "--quiet", "--branch", "flink-gitops/status", str(spec_repo.remote),
        str(other))
    (other / "deployments" / "elsewhere.yaml").write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "DeploymentStatus",
        "metadata": {"name": "elsewhere", "labels": {"team": "other"}},
        "status": {"state": "RUNNING", "sync": "SYNCED"}}))
    git(other, "add", "-A")
    git(other, "commit", "--quiet", "-m", "another shard's agent")
    git(other, "push", "--quiet", "origin", "HEAD:flink-gitops/status")
    written = spec_repo.status_file("deployments/elsewhere.yaml")

    assert sync(sharded).exit_code == 0
    assert spec_repo.status_file("deployments/elsewhere.yaml") == written
    assert "elsewhere" in json.loads(spec_repo.status_file("status.json"))["deployments"]
    assert spec_repo.status_of("kept-on-moved")["lastSavepoint"]["origin"] == "USER_REQUEST"
    assert savepoints_of(flink, job) == 1     # not taken twice


def test_a_status_push_that_keeps_losing_ends_in_bounded_time_with_a_clear_error(
        spec_repo, settings, tmp_path):
    """The remote refuses every status push, as when another writer always pushed first: a
    quiet cycle tries a bounded number of times (assessing again on top of the branch each
    time) and then fails saying why; it never spins."""
    spec_repo.write_target("test", "http://127.0.0.1:9")
    spec_repo.push("a target, no deployment")
    assert sync(settings).exit_code == 0
    spec_repo.write("notes.txt", "a new spec commit: the status records it")
    spec_repo.push()
    tries = tmp_path / "tries"
    hook = spec_repo.remote / "hooks" / "pre-receive"
    hook.write_text(f"#!/bin/sh\necho push >> {tries}\n"
                    "echo 'the status branch moved: fetch first' >&2\nexit 1\n")
    hook.chmod(0o755)
    started = time.monotonic()
    with pytest.raises(StatusPushRejected, match="fetch first"):
        sync(settings)
    assert time.monotonic() - started < 30
    assert tries.read_text().count("push") == 3     # sync's `attempts`


def test_a_git_remote_that_hangs_fails_the_cycle_in_bounded_time(spec_repo, tmp_path,
                                                                  monkeypatch):
    """The remote, served by `git daemon` behind a proxy, accepts and never answers: the fetch
    ends at its time limit (FETCH_TIMEOUT_S, 120 s; 2 s here) with a one-line reason, and the
    next cycle, the remote answering again, works."""
    import agent.source
    from agent.config import Settings
    from agent.errors import SourceError
    from faults import Fault, GitDaemon, TcpProxy

    spec_repo.write_target("test", "http://127.0.0.1:9")
    spec_repo.push("a target, no deployment")
    monkeypatch.setattr(agent.source, "FETCH_TIMEOUT_S", 2)
    with GitDaemon(spec_repo.remote.parent) as daemon, \
            TcpProxy("127.0.0.1", daemon.port) as proxy:
        settings = Settings(daemon.url(spec_repo.remote.name, via=proxy),
                            workdir=tmp_path / "agent")
        proxy.mode = Fault.BLACKHOLE
        started = time.monotonic()
        with pytest.raises(SourceError) as failed:
            sync(settings)
        assert time.monotonic() - started < 10
        assert len(str(failed.value).splitlines()) == 1, str(failed.value)
        proxy.heal()
        assert sync(settings).exit_code == 0
