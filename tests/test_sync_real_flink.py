"""`sync` against a real Flink cluster and real git repositories (DESIGN §2.2, §4, §5)."""

from __future__ import annotations

import dataclasses
import shutil
import zipfile
from pathlib import Path

import pytest
import requests

from conftest import git
from agent.reconcile import sync


def test_first_sync_starts_the_job_and_writes_the_status_branch(deployed, spec_repo, settings,
                                                                 rest):
    deployed("first")
    commit = spec_repo.push("first deployment")
    result = sync(settings)
    assert result.exit_code == 0
    job = rest.job("first", 1)
    assert rest.jobs()[job] == "RUNNING"
    status = spec_repo.status_of("first")
    assert status["state"] == "RUNNING" and status["sync"] == "SYNCED"
    assert status["specCommit"] == commit
    assert status["job"]["id"] == job and status["job"]["flinkStatus"] == "RUNNING"
    assert status["lastAction"]["kind"] == "START" and status["lastAction"]["result"] == "SUCCESS"
    assert "| [first](deployments/first.md) | RUNNING | SYNCED |" in spec_repo.status_file(
        "README.md")
    assert '"first"' in spec_repo.status_file("status.json")
    assert f"| 1 | `{job}` | STARTED | RUNNING |" in spec_repo.status_file("deployments/first.md")
    assert "<svg" in spec_repo.status_file("timeline.svg")


def test_stateful_upgrade_restores_the_savepoint_it_took(deployed, spec_repo, settings, rest):
    deployed("stateful", parallelism=1)
    spec_repo.push()
    sync(settings)
    old = rest.job("stateful", 1)
    rest.wait_checkpoint(old)
    deployed("stateful", parallelism=2)
    spec_repo.push("parallelism 2")
    result = sync(settings)
    assert result.exit_code == 0
    status = spec_repo.status_of("stateful")
    new = status["job"]["id"]
    assert new == rest.job("stateful", 2)
    assert rest.jobs()[old] == "FINISHED" and rest.jobs()[new] == "RUNNING"
    savepoint = status["lastSavepoint"]["location"]
    assert status["lastSavepoint"]["origin"] == "UPGRADE"
    assert rest.restored_from(new) == savepoint
    assert status["job"]["restoredFrom"] == savepoint
    assert rest.parallelism(new) == 2
    assert status["lastAction"]["kind"] == "STATEFUL_UPGRADE"
    before, after = status["history"]["jobs"]
    assert (before["id"], before["state"], before["flinkStatus"]) == (old, "TERMINATED",
                                                                     "FINISHED")
    assert before["endedAt"] and "restoredFrom" not in before
    assert (after["id"], after["state"], after["restoredFrom"]) == (new, "STARTED", savepoint)
    assert status["history"]["savepoints"] == [status["lastSavepoint"]]


def test_stateless_upgrade_starts_the_new_job_with_empty_state(deployed, spec_repo, settings,
                                                              rest):
    deployed("stateless", upgrade="STATELESS", restore="NONE")
    spec_repo.push()
    sync(settings)
    rest.wait_checkpoint(rest.job("stateless", 1))
    deployed("stateless", parallelism=2, upgrade="STATELESS", restore="NONE")
    spec_repo.push()
    assert sync(settings).exit_code == 0
    new = rest.job("stateless", 2)
    assert rest.jobs()[rest.job("stateless", 1)] == "CANCELED"
    assert rest.jobs()[new] == "RUNNING"
    assert rest.restored_from(new) is None
    status = spec_repo.status_of("stateless")
    assert status["lastAction"]["kind"] == "STATELESS_UPGRADE"
    assert "lastSavepoint" not in status


def test_suspend_then_resume_restores_the_suspend_savepoint(deployed, spec_repo, settings, rest):
    deployed("pausing")
    spec_repo.push()
    sync(settings)
    rest.wait_checkpoint(rest.job("pausing", 1))
    deployed("pausing", state="SUSPENDED")
    spec_repo.push("suspend")
    assert sync(settings).exit_code == 0
    suspended = spec_repo.status_of("pausing")
    assert suspended["state"] == "SUSPENDED"
    assert rest.running() == []
    savepoint = suspended["lastSavepoint"]
    assert savepoint["origin"] == "SUSPEND"
    deployed("pausing", state="RUNNING")
    spec_repo.push("resume")
    assert sync(settings).exit_code == 0
    resumed = spec_repo.status_of("pausing")
    assert resumed["state"] == "RUNNING"
    assert rest.restored_from(resumed["job"]["id"]) == savepoint["location"]


def test_cancelled_cancels_the_job_without_a_savepoint(deployed, spec_repo, settings, rest):
    deployed("cancelling")
    spec_repo.push()
    sync(settings)
    deployed("cancelling", state="CANCELLED")
    spec_repo.push("cancel")
    assert sync(settings).exit_code == 0
    assert rest.jobs()[rest.job("cancelling", 1)] == "CANCELED"
    status = spec_repo.status_of("cancelling")
    assert status["state"] == "CANCELLED" and "lastSavepoint" not in status
    assert status["lastAction"]["kind"] == "CANCEL"


def test_upgrade_strategy_none_leaves_the_job_and_reports_out_of_sync(deployed, spec_repo,
                                                                      settings, rest):
    deployed("frozen", upgrade="NONE")
    spec_repo.push()
    sync(settings)
    deployed("frozen", upgrade="NONE", parallelism=2)
    spec_repo.push("parallelism 2")
    result = sync(settings)
    assert result.exit_code == 1
    assert rest.running() == [rest.job("frozen", 1)]
    assert rest.parallelism(rest.job("frozen", 1)) == 1
    status = spec_repo.status_of("frozen")
    assert status["sync"] == "OUT_OF_SYNC" and status["state"] == "RUNNING"


def test_an_invalid_spec_leaves_the_running_job_untouched(deployed, spec_repo, settings, rest):
    deployed("guarded")
    spec_repo.push()
    sync(settings)
    deployed("guarded", parallelism=2, extra="maxJobCreationAttemps: 3")
    spec_repo.push("a typo")
    result = sync(settings)
    assert result.exit_code == 1
    assert rest.running() == [rest.job("guarded", 1)]
    status = spec_repo.status_of("guarded")
    assert status["sync"] == "INVALID" and status["state"] == "RUNNING"
    [error] = status["errors"]
    assert error["file"] == "deployments/guarded.yaml" and error["line"] == 11
    assert "maxJobCreationAttemps" in error["message"]
    assert "guarded" in spec_repo.status_file("README.md").split("## Problems")[1]


def test_a_label_change_restarts_nothing(deployed, spec_repo, settings, rest):
    deployed("labelled")
    spec_repo.push()
    sync(settings)
    deployed("labelled", labels="{team: other}")
    commit = spec_repo.push("relabel")
    assert sync(settings).exit_code == 0
    assert rest.running() == [rest.job("labelled", 1)]
    status = spec_repo.status_of("labelled")
    assert status["specCommit"] == commit and status["appliedSpec"]["metadata"]["labels"] == {
        "team": "other"}


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


def test_a_jar_is_uploaded_once_per_content(deployed, spec_repo, settings, rest):
    deployed("uploads")
    spec_repo.push()
    sync(settings)
    before = rest.jars()
    deployed("uploads", parallelism=2)
    spec_repo.push()
    sync(settings)
    assert rest.jars() == before


def test_a_failed_savepoint_leaves_the_old_job_running_and_reports_flinks_cause(
        deployed, spec_repo, settings, flink, rest, tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the savepoint directory's parent should be")
    spec_repo.write_target("broken", flink.url, savepoint_dir=f"file://{blocker}/savepoints")
    deployed("unsaved", extra="maxSavepointCreationAttempts: 2", target="broken")
    spec_repo.push()
    sync(settings)
    old = rest.job("unsaved", 1)
    deployed("unsaved", parallelism=2, extra="maxSavepointCreationAttempts: 2", target="broken")
    spec_repo.push("parallelism 2")
    result = sync(settings)
    assert result.exit_code == 1
    assert rest.running() == [old]
    status = spec_repo.status_of("unsaved")
    assert status["state"] == "FAILED" and status["sync"] == "OUT_OF_SYNC"
    assert status["job"]["flinkStatus"] == "RUNNING"
    assert status["lastAction"] == {**status["lastAction"], "kind": "STATEFUL_UPGRADE",
                                    "result": "FAILED"}
    message = status["lastAction"]["message"]
    assert "no savepoint after 2 attempt(s)" in message and "keeps running untouched" in message
    assert "Failed to create savepoint directory" in message or "IOException" in message
    assert status["job"]["id"] == old
    commits = spec_repo.status_commits()
    assert sync(settings).exit_code == 1  # the failed spec is not tried again as it is
    assert spec_repo.status_commits() == commits and rest.running() == [old]


def test_a_job_that_cannot_start_is_reported_with_flinks_message(deployed, spec_repo, settings,
                                                                 rest):
    deployed("misnamed", extra="maxJobCreationAttempts: 1")
    path = spec_repo.checkout / "deployments/misnamed.yaml"
    path.write_text(path.read_text().replace("com.example.Counter", "com.example.Nope"))
    spec_repo.push()
    result = sync(settings)
    assert result.exit_code == 1
    assert rest.running() == []
    status = spec_repo.status_of("misnamed")
    assert status["state"] == "FAILED"
    assert status["lastAction"]["result"] == "FAILED"
    assert "com.example.Nope" in status["lastAction"]["message"]
    assert "did not start in 1 attempt(s)" in status["lastAction"]["message"]


def test_a_deleted_spec_suspends_the_job_with_a_savepoint(deployed, spec_repo, settings, rest):
    deployed("retired")
    spec_repo.push()
    sync(settings)
    (spec_repo.checkout / "deployments/retired.yaml").unlink()
    spec_repo.push("retire")
    assert sync(settings).exit_code == 0
    assert rest.jobs()[rest.job("retired", 1)] == "FINISHED"
    status = spec_repo.status_of("retired")
    assert status["deleted"] is True and status["state"] == "SUSPENDED"
    assert status["lastAction"]["kind"] == "DELETE"
    assert status["lastSavepoint"]["origin"] == "SUSPEND"
    assert status["history"]["savepoints"][-1] == status["lastSavepoint"]


def test_a_job_cancelled_outside_the_agent_is_restarted_from_its_latest_savepoint(
        deployed, spec_repo, settings, rest):
    deployed("healed")
    spec_repo.push()
    sync(settings)
    rest.wait_checkpoint(rest.job("healed", 1))
    deployed("healed", parallelism=2)
    spec_repo.push()
    sync(settings)
    savepoint = spec_repo.status_of("healed")["lastSavepoint"]["location"]
    requests.patch(f"{rest.url}/jobs/{rest.job('healed', 2)}", params={"mode": "cancel"},
                   timeout=10)
    rest.wait_state(rest.job("healed", 2), "CANCELED")
    assert sync(settings).exit_code == 0
    status = spec_repo.status_of("healed")
    assert status["job"]["id"] == rest.job("healed", 3)
    assert status["lastAction"]["kind"] == "RESTART"
    assert rest.restored_from(rest.job("healed", 3)) == savepoint
    assert any("drift" in e["message"] and "CANCELED" in e["message"]
               for e in status["history"]["events"])


def test_stateless_upgrade_with_latest_state_restores_the_retained_checkpoint(
        deployed, spec_repo, settings, rest):
    deployed("laststate", upgrade="STATELESS", restore="LATEST_STATE")
    spec_repo.push()
    sync(settings)
    rest.wait_checkpoint(rest.job("laststate", 1))
    deployed("laststate", parallelism=2, upgrade="STATELESS", restore="LATEST_STATE")
    spec_repo.push()
    assert sync(settings).exit_code == 0
    assert rest.jobs()[rest.job("laststate", 1)] == "CANCELED"
    status = spec_repo.status_of("laststate")
    restored = rest.restored_from(rest.job("laststate", 2))
    assert restored is not None and "/chk-" in restored
    assert status["job"]["restoredFrom"] == restored
    assert status["lastSavepoint"] == {**status["lastSavepoint"], "origin": "RETAINED_CHECKPOINT",
                                       "location": restored}


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


def test_an_unreachable_cluster_is_reported_and_nothing_is_lost(deployed, spec_repo, settings,
                                                                rest):
    deployed("stranded")
    spec_repo.push()
    sync(settings)
    spec_repo.write_target("test", "http://127.0.0.1:9")
    deployed("stranded", parallelism=2)
    spec_repo.push("moved target, and a change")
    result = sync(settings)
    assert result.exit_code == 1
    assert rest.running() == [rest.job("stranded", 1)]
    status = spec_repo.status_of("stranded")
    assert status["sync"] == "OUT_OF_SYNC" and status["job"]["flinkStatus"] == "UNKNOWN"
    [problem] = status["errors"]
    assert problem["kind"] == "CLUSTER" and "did not answer" in problem["message"]


def test_a_new_jar_under_the_same_path_is_a_stateful_upgrade(deployed, spec_repo, settings,
                                                              rest, counter_jar, tmp_path):
    deployed("rebuilt")
    spec_repo.push()
    sync(settings)
    uploaded = set(rest.jars())
    rebuilt = tmp_path / "counter.jar"
    shutil.copy(counter_jar, rebuilt)
    with zipfile.ZipFile(rebuilt, "a") as jar:
        jar.writestr("build-info.txt", "build 2\n")
    spec_repo.add_file("jobs/counter.jar", rebuilt)
    spec_repo.push("jobs/counter.jar: build 2")
    assert sync(settings).exit_code == 0
    status = spec_repo.status_of("rebuilt")
    assert status["lastAction"]["kind"] == "STATEFUL_UPGRADE"
    assert rest.restored_from(rest.job("rebuilt", 2)) == status["lastSavepoint"]["location"]
    assert len(set(rest.jars()) - uploaded) == 1  # the new content, uploaded once


def test_a_job_that_never_gets_its_slots_is_cancelled_between_attempts(deployed, spec_repo,
                                                                       settings, rest):
    deployed("oversized", parallelism=64, extra="maxJobCreationAttempts: 2")
    spec_repo.push()
    result = sync(dataclasses.replace(settings, job_start_timeout_s=3))
    assert result.exit_code == 1
    jobs = rest.jobs()
    attempts = [rest.job("oversized", 1), rest.job("oversized", 2)]
    assert [jobs[j] for j in attempts] == ["CANCELED", "CANCELED"]
    status = spec_repo.status_of("oversized")
    assert status["state"] == "FAILED"
    assert "is not running after 3s" in status["lastAction"]["message"]
    assert "did not start in 2 attempt(s)" in status["lastAction"]["message"]


def test_an_upgrade_whose_job_cannot_start_rolls_back_to_the_previous_spec_and_state(
        deployed, spec_repo, settings, rest):
    deployed("rollback")
    good = spec_repo.push("a good spec")
    sync(settings)
    rest.wait_checkpoint(rest.job("rollback", 1))
    deployed("rollback", parallelism=2, extra="maxJobCreationAttempts: 2")
    path = spec_repo.checkout / "deployments/rollback.yaml"
    path.write_text(path.read_text().replace("com.example.Counter", "com.example.Nope"))
    spec_repo.push("a bad entry class")
    assert sync(settings).exit_code == 1
    status = spec_repo.status_of("rollback")
    savepoint = status["lastSavepoint"]["location"]
    rolled_back = rest.job("rollback", 4)  # generations 2 and 3 were the two failed attempts
    assert rest.running() == [rolled_back] and rest.parallelism(rolled_back) == 1
    assert rest.restored_from(rolled_back) == savepoint
    assert status["state"] == "FAILED" and status["sync"] == "OUT_OF_SYNC"
    assert status["job"]["id"] == rolled_back and status["job"]["specCommit"] == good
    message = status["lastAction"]["message"]
    assert "com.example.Nope" in message and f"rolled back to the spec of commit {good[:10]}" \
        in message
    commits = spec_repo.status_commits()
    assert sync(settings).exit_code == 1 and spec_repo.status_commits() == commits

    deployed("rollback", parallelism=2)
    spec_repo.push("fixed")
    assert sync(settings).exit_code == 0
    fixed = spec_repo.status_of("rollback")
    assert fixed["state"] == "RUNNING" and "failedAttempt" not in fixed
    assert rest.restored_from(fixed["job"]["id"]) == fixed["lastSavepoint"]["location"]


def test_without_rollback_a_failed_upgrade_keeps_its_savepoint_for_the_fix(
        deployed, spec_repo, settings, rest):
    deployed("norollback")
    spec_repo.push()
    sync(settings)
    deployed("norollback", extra="maxJobCreationAttempts: 1")
    path = spec_repo.checkout / "deployments/norollback.yaml"
    path.write_text(path.read_text().replace("com.example.Counter", "com.example.Nope"))
    spec_repo.push("a bad entry class")
    no_rollback = dataclasses.replace(settings, rollback=False)
    assert sync(no_rollback).exit_code == 1
    assert rest.running() == []
    status = spec_repo.status_of("norollback")
    assert status["state"] == "FAILED" and "rolled back" not in status["lastAction"]["message"]
    deployed("norollback")
    spec_repo.push("fixed")
    assert sync(no_rollback).exit_code == 0
    fixed = spec_repo.status_of("norollback")
    assert rest.restored_from(fixed["job"]["id"]) == status["lastSavepoint"]["location"]


def test_a_changed_savepoint_trigger_nonce_takes_a_savepoint_of_the_running_job(
        deployed, spec_repo, settings, rest):
    deployed("snapshots", extra="savepointTriggerNonce: 1")
    spec_repo.push()
    sync(settings)
    job = rest.job("snapshots", 1)
    assert "lastSavepoint" not in spec_repo.status_of("snapshots")  # a first nonce asks nothing
    rest.wait_checkpoint(job)
    deployed("snapshots", extra="savepointTriggerNonce: 2")
    spec_repo.push("a savepoint, please")
    assert sync(settings).exit_code == 0
    status = spec_repo.status_of("snapshots")
    assert status["lastAction"]["kind"] == "SAVEPOINT"
    assert status["lastSavepoint"]["origin"] == "USER_REQUEST"
    assert rest.running() == [job]
    written = Path(status["lastSavepoint"]["location"].removeprefix("file:"))
    assert (written / "_metadata").is_file()  # Flink wrote it (its statistics lag a few seconds)
    commits = spec_repo.status_commits()
    assert sync(settings).exit_code == 0 and spec_repo.status_commits() == commits


def test_a_changed_restart_nonce_restarts_the_job_from_a_savepoint(deployed, spec_repo, settings,
                                                                  rest):
    deployed("restarted")
    spec_repo.push()
    sync(settings)
    rest.wait_checkpoint(rest.job("restarted", 1))
    deployed("restarted", extra="restartNonce: 1")
    spec_repo.push("restart, please")
    assert sync(settings).exit_code == 0
    status = spec_repo.status_of("restarted")
    assert status["lastAction"]["kind"] == "RESTART"
    assert rest.running() == [rest.job("restarted", 2)]
    assert rest.restored_from(rest.job("restarted", 2)) == status["lastSavepoint"]["location"]


def test_state_a_new_job_cannot_map_needs_allow_non_restored_state(deployed, spec_repo, settings,
                                                                   rest):
    deployed("reshaped")
    good = spec_repo.push()
    sync(settings)
    rest.wait_checkpoint(rest.job("reshaped", 1))
    deployed("reshaped", args="--rate 20 --keys 4 --count-uid count-v2",
             extra="maxJobCreationAttempts: 1")
    spec_repo.push("the counting operator gets a new uid")
    assert sync(settings).exit_code == 1
    refused = spec_repo.status_of("reshaped")
    assert "count-v2" not in refused["job"]["id"] and refused["job"]["specCommit"] == good
    assert "allowNonRestoredState" in refused["lastAction"]["message"]  # Flink's own advice
    assert "rolled back" in refused["lastAction"]["message"]

    deployed("reshaped", args="--rate 20 --keys 4 --count-uid count-v2",
             restore="LATEST_SAVEPOINT, allowNonRestoredState: true")
    spec_repo.push("allow the old counts to be dropped")
    assert sync(settings).exit_code == 0
    status = spec_repo.status_of("reshaped")
    assert status["state"] == "RUNNING"
    assert rest.restored_from(status["job"]["id"]) == status["lastSavepoint"]["location"]


def test_a_first_start_restores_the_initial_savepoint_path(deployed, spec_repo, settings, rest):
    deployed("origin", state="RUNNING")
    spec_repo.push()
    sync(settings)
    rest.wait_checkpoint(rest.job("origin", 1))
    deployed("origin", state="SUSPENDED")
    spec_repo.push()
    sync(settings)
    savepoint = spec_repo.status_of("origin")["lastSavepoint"]["location"]
    deployed("copy", extra=f"initialSavepointPath: {savepoint}")
    spec_repo.push("a copy of origin, from its savepoint")
    assert sync(settings).exit_code == 0
    copy = spec_repo.status_of("copy")
    assert copy["lastAction"]["kind"] == "START" and copy["job"]["restoredFrom"] == savepoint
    assert rest.restored_from(rest.job("copy", 1)) == savepoint


@pytest.mark.parametrize("drain", ["stopWithDrain: true", None])
def test_suspend_drains_when_asked_and_only_then(drain, deployed, spec_repo, settings,
                                                 flink_proxy):
    proxy = flink_proxy
    spec_repo.write_target("test", proxy.url)
    name = "drained" if drain else "undrained"
    deployed(name, extra=drain or "")
    spec_repo.push()
    sync(settings)
    deployed(name, state="SUSPENDED", extra=drain or "")
    spec_repo.push("suspend")
    assert sync(settings).exit_code == 0
    [stop] = proxy.sent("POST", "/stop")
    assert stop["drain"] is bool(drain)
    assert spec_repo.status_of(name)["state"] == "SUSPENDED"


def test_the_ververica_stop_with_drain_annotation_is_honoured(deployed, spec_repo, settings,
                                                              flink_proxy):
    proxy = flink_proxy
    spec_repo.write_target("test", proxy.url)
    spec_file = spec_repo.checkout / "deployments/annotated.yaml"

    def annotated(**fields):
        deployed("annotated", **fields)
        spec_file.write_text(spec_file.read_text().replace("  labels: {team: test}", (
            "  labels: {team: test}\n  annotations:\n"
            "    com.dataartisans.appmanager.controller.deployment.stop-with-drain: 'true'")))

    annotated()
    spec_repo.push()
    sync(settings)
    annotated(state="SUSPENDED")
    spec_repo.push("suspend")
    assert sync(settings).exit_code == 0
    [stop] = proxy.sent("POST", "/stop")
    assert stop["drain"] is True


def test_a_change_a_repo_policy_denies_is_blocked_and_the_job_left_running(
        deployed, spec_repo, settings, rest):
    spec_repo.write("policies/max_parallelism.rego", """\
        package main

        import rego.v1

        deny contains msg if {
        	input.spec.template.spec.parallelism > 1
        	msg := sprintf("%s: parallelism above 1 needs a bigger cluster", [input.metadata.name])
        }
        """)
    deployed("guarded-by-policy")
    spec_repo.push()
    assert sync(settings).exit_code == 0
    job = rest.job("guarded-by-policy", 1)
    deployed("guarded-by-policy", parallelism=2)
    spec_repo.push("parallelism 2")
    assert sync(settings).exit_code == 1
    assert rest.running() == [job] and rest.parallelism(job) == 1
    status = spec_repo.status_of("guarded-by-policy")
    assert status["sync"] == "BLOCKED" and status["state"] == "RUNNING"
    [problem] = status["errors"]
    assert problem["kind"] == "POLICY"
    assert problem["message"] == ("policies/max_parallelism.rego: guarded-by-policy: parallelism "
                                  "above 1 needs a bigger cluster")
    assert status["appliedSpec"]["spec"]["template"]["spec"]["parallelism"] == 1


def test_a_policy_that_does_not_compile_holds_every_change_and_says_where(
        deployed, spec_repo, settings, rest):
    spec_repo.write("policies/broken.rego",
                    "package main\nimport rego.v1\n\ndeny contains msg if {\n  x := \n}\n")
    deployed("unguarded")
    spec_repo.push()
    assert sync(settings).exit_code == 1
    assert rest.running() == []
    status = spec_repo.status_of("unguarded")
    assert status["sync"] == "BLOCKED"
    [problem] = status["errors"]
    assert problem["kind"] == "POLICY"
    assert problem["message"].startswith("policies/broken.rego:5: policy does not compile")


def competing_writer(spec_repo, monkeypatch, tmp_path):
    """Another agent's status commit lands on the remote just before this agent's push."""
    from agent.status_store import StatusStore
    real_write = StatusStore.write
    other = tmp_path / "other-agent"
    git(tmp_path, "clone", "--quiet", "--branch", "flink-gitops/status", str(spec_repo.remote),
        str(other))
    state = {"raced": False}

    def racing_write(store, files, message):
        if not state["raced"]:
            state["raced"] = True
            (other / "NOTE.md").write_text("written by another agent\\n")
            git(other, "add", "-A")
            git(other, "commit", "--quiet", "-m", "another agent")
            git(other, "push", "--quiet", "origin", "HEAD:flink-gitops/status")
        return real_write(store, files, message)

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
