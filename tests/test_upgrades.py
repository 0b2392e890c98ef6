"""Upgrades on a real Flink cluster: first start, stateful and stateless upgrades, what restarts and
what does not, restore strategies and nonces (DESIGN §2.2)."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

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


def test_stateful_upgrade_restores_the_savepoint_it_took(
        checkpointed, deployed, spec_repo, settings, rest):
    old = checkpointed("stateful", parallelism=1)
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


def test_stateless_upgrade_starts_the_new_job_with_empty_state(
        checkpointed, deployed, spec_repo, settings, rest):
    checkpointed("stateless", upgrade="STATELESS", restore="NONE")
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


def test_a_jar_is_uploaded_once_per_content(deployed, spec_repo, settings, rest):
    deployed("uploads")
    spec_repo.push()
    sync(settings)
    before = rest.jars()
    deployed("uploads", parallelism=2)
    spec_repo.push()
    sync(settings)
    assert rest.jars() == before


def test_stateless_upgrade_with_latest_state_restores_the_retained_checkpoint(
        checkpointed, deployed, spec_repo, settings, rest):
    checkpointed("laststate", upgrade="STATELESS", restore="LATEST_STATE")
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


def test_a_changed_restart_nonce_restarts_the_job_from_a_savepoint(
        checkpointed, deployed, spec_repo, settings, rest):
    checkpointed("restarted")
    deployed("restarted", extra="restartNonce: 1")
    spec_repo.push("restart, please")
    assert sync(settings).exit_code == 0
    status = spec_repo.status_of("restarted")
    assert status["lastAction"]["kind"] == "RESTART"
    assert rest.running() == [rest.job("restarted", 2)]
    assert rest.restored_from(rest.job("restarted", 2)) == status["lastSavepoint"]["location"]


def test_a_first_start_restores_the_initial_savepoint_path(
        checkpointed, deployed, spec_repo, settings, rest):
    checkpointed("origin", state="RUNNING")
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
