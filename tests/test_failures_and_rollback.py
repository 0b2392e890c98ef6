"""When Flink refuses, on a real Flink cluster: failed savepoints, jobs that cannot start, rollback,
an unreachable cluster and an invalid spec leave the running job and every savepoint as they
were."""

from __future__ import annotations

import dataclasses

from agent.reconcile import sync


BAD_ARGS = "--rate 0"   # the counter's main() refuses it: a job Flink cannot start
BAD_ARGS_SAID = "--rate and --keys must be positive"

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
    deployed("misnamed", args=BAD_ARGS, extra="maxJobCreationAttempts: 1")
    spec_repo.push()
    result = sync(settings)
    assert result.exit_code == 1
    assert rest.running() == []
    status = spec_repo.status_of("misnamed")
    assert status["state"] == "FAILED"
    assert status["lastAction"]["result"] == "FAILED"
    assert BAD_ARGS_SAID in status["lastAction"]["message"]
    assert "did not start in 1 attempt(s)" in status["lastAction"]["message"]


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
    deployed("rollback", parallelism=2, args=BAD_ARGS, extra="maxJobCreationAttempts: 2")
    spec_repo.push("arguments the job refuses")
    assert sync(settings).exit_code == 1
    status = spec_repo.status_of("rollback")
    savepoint = status["lastSavepoint"]["location"]
    rolled_back = rest.job("rollback", 4)  # generations 2 and 3 were the two failed attempts
    assert rest.running() == [rolled_back] and rest.parallelism(rolled_back) == 1
    assert rest.restored_from(rolled_back) == savepoint
    assert status["state"] == "FAILED" and status["sync"] == "OUT_OF_SYNC"
    assert status["job"]["id"] == rolled_back and status["job"]["specCommit"] == good
    message = status["lastAction"]["message"]
    assert BAD_ARGS_SAID in message and f"rolled back to the spec of commit {good[:10]}" \
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
    deployed("norollback", args=BAD_ARGS, extra="maxJobCreationAttempts: 1")
    spec_repo.push("arguments the job refuses")
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
