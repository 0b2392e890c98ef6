"""Stopping jobs on a real Flink cluster: suspend (with a savepoint, drained when asked) and resume,
cancel, and deletion of a spec (DESIGN §2.2)."""

from __future__ import annotations

import pytest

from agent.reconcile import sync


def test_suspend_then_resume_restores_the_suspend_savepoint(
        checkpointed, deployed, spec_repo, settings, rest):
    checkpointed("pausing")
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
