"""The status branch on a real Flink cluster: a cycle with nothing to do changes nothing, a commit
rewrites only what changed, a push that lost a race is written again, secrets never reach it
(DESIGN §4, §5.6, §5.7)."""

from __future__ import annotations

import pytest

from conftest import git
from agent.reconcile import sync


def test_a_sync_with_nothing_to_do_changes_nothing(deployed, spec_repo, settings, flink_proxy,
                                                    rest):
    proxy = flink_proxy
    deployed("quiet")
    spec_repo.write_target("test", proxy.url)
    spec_repo.push()
    sync(settings)
    commits = spec_repo.status_commits()
    proxy.calls.clear()
    result = sync(settings)
    assert result.exit_code == 0 and result.status_commit is None
    assert spec_repo.status_commits() == commits
    assert proxy.paths() == [("GET", "/jobs/overview")]
    assert rest.running() == [rest.job("quiet", 1)]


def test_secrets_never_reach_the_status_branch(deployed, spec_repo, settings, flink, monkeypatch):
    monkeypatch.setenv("FLINK_TEST_TOKEN", "s3cr3t-token-value")
    spec_repo.write_target("test", flink.url,
                           headers={"Authorization": "Bearer ${FLINK_TEST_TOKEN}"})
    deployed("secretive", extra="")
    path = spec_repo.checkout / "deployments/secretive.yaml"
    path.write_text(path.read_text().replace(
        "execution.checkpointing.interval: 1s",
        "execution.checkpointing.interval: 1s\n        s3.secret-key: hunter2-secret"))
    spec_repo.push()
    assert sync(settings).exit_code == 0
    status_history = git(spec_repo.remote, "log", "-p", "flink-gitops/status")
    assert "s3cr3t-token-value" not in status_history and "hunter2-secret" not in status_history
    assert "FLINK_TEST_TOKEN" not in status_history and "Bearer" not in status_history
    options = spec_repo.status_of("secretive")["appliedSpec"]["spec"]["template"]["spec"]
    assert options["flinkConfiguration"]["s3.secret-key"] == "***"


def competing_writer(spec_repo, monkeypatch, tmp_path):
    """Another agent's status commit lands on the remote just before this agent's push."""
    from agent.status_store import StatusStore
    real_write = StatusStore.write
    other = tmp_path / "other-agent"
    git(tmp_path, "clone", "--quiet", "--branch", "flink-gitops/status", str(spec_repo.remote),
        str(other))
    state = {"raced": False}

    def racing_write(store, compose, message, **races):
        if not state["raced"]:
            state["raced"] = True
            (other / "NOTE.md").write_text("written by another agent\\n")
            git(other, "add", "-A")
            git(other, "commit", "--quiet", "-m", "another agent")
            git(other, "push", "--quiet", "origin", "HEAD:flink-gitops/status")
        return real_write(store, compose, message, **races)

    monkeypatch.setattr(StatusStore, "write", racing_write)
    return other


@pytest.mark.parametrize("acting", [True, False])
def test_a_status_push_that_lost_a_race_is_written_again_on_top(acting, deployed, spec_repo,
                                                                settings, rest, monkeypatch,
                                                                tmp_path):
    name = "raced-acting" if acting else "raced-quiet"
    deployed(name)
    spec_repo.push()
    sync(settings)
    other = competing_writer(spec_repo, monkeypatch, tmp_path)
    deployed(name, parallelism=2 if acting else 1, labels="{team: raced}")
    spec_repo.push()
    assert sync(settings).exit_code == 0
    theirs = git(other, "rev-parse", "HEAD")
    head = spec_repo.remote_ref("flink-gitops/status")
    assert git(spec_repo.remote, "merge-base", "--is-ancestor", theirs, head) == ""  # linear
    assert git(spec_repo.remote, "rev-list", "--merges", "flink-gitops/status") == ""
    status = spec_repo.status_of(name)
    assert status["appliedSpec"]["metadata"]["labels"] == {"team": "raced"}
    if acting:
        assert status["lastAction"]["kind"] == "STATEFUL_UPGRADE"
        assert rest.running() == [status["job"]["id"]]


def test_a_commit_that_changes_one_deployment_rewrites_only_its_status_files(
        deployed, spec_repo, settings, rest):
    deployed("touched")
    deployed("untouched")
    first = spec_repo.push()
    sync(settings)
    before = {path: spec_repo.status_file(path) for path in (
        "deployments/untouched.yaml", "deployments/untouched.md")}
    deployed("touched", parallelism=2)
    second = spec_repo.push("scale one out")
    assert sync(settings).exit_code == 0
    assert spec_repo.status_of("touched")["specCommit"] == second
    assert spec_repo.status_of("untouched")["specCommit"] == first  # its spec comes from there
    assert {path: spec_repo.status_file(path) for path in before} == before
