"""Savepoint upkeep, as values (pure): which savepoints retention disposes and which it never
does, when a periodic savepoint falls due, and the plans a chosen savepoint makes (issue 16)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agent.diff import difference
from agent.model.spec import Deployment, DeploymentTarget
from agent.model.status import Savepoint, SavepointOrigin
from agent.plan import RestoreKind, StepKind, naming_problem, plan
from agent.retention import Upkeep, upkeep
from conftest import applied, deployment, running

NOW = "2026-11-29T12:00:00Z"


def with_fields(spec: Deployment, **fields) -> Deployment:
    document = spec.model_dump(by_alias=True, exclude_none=True)
    document["spec"].update(fields)
    return Deployment.model_validate(document)


def saved(n: int, origin=SavepointOrigin.PERIODIC, job="j1", hour=None) -> Savepoint:
    return Savepoint(location=f"file:///sp/savepoint-{n}", origin=origin, job_id=job,
                     created_at=f"2026-11-29T{hour if hour is not None else n:02d}:00:00Z")


def with_savepoints(spec: Deployment, *savepoints: Savepoint):
    status = applied(spec)
    status.status.history.savepoints = list(savepoints)
    status.status.last_savepoint = savepoints[-1] if savepoints else None
    return status


def target(**fields) -> DeploymentTarget:
    return DeploymentTarget.model_validate({"metadata": {"name": "local"},
                                            "spec": {"local": {}, **fields}})


def test_retention_by_count_disposes_the_oldest_beyond_it():
    spec = with_fields(deployment(), savepointRetention={"maxCount": 2})
    status = with_savepoints(spec, *(saved(n) for n in range(1, 6)))
    disposals = upkeep(spec, None, status.status, True, NOW).disposals
    assert [d.savepoint.location for d in disposals] == [f"file:///sp/savepoint-{n}"
                                                         for n in (3, 2, 1)]
    assert {d.why for d in disposals} == {"beyond savepointRetention maxCount 2"}


def test_retention_never_disposes_what_a_restore_could_need():
    """The newest savepoint (the next start's), the running job's restore point, the spec's
    initialSavepointPath, and whatever the agent did not take: none of them, even past maxAge."""
    spec = with_fields(deployment(initial="file:///sp/savepoint-2"),
                       savepointRetention={"maxAge": "1h"})
    status = with_savepoints(spec, saved(1), saved(2), saved(3), saved(4),
                             saved(5, SavepointOrigin.RETAINED_CHECKPOINT), saved(6))
    status.status.job.restored_from = "file:///sp/savepoint-3"
    disposals = upkeep(spec, None, status.status, True, "2026-11-30T00:00:00Z").disposals
    assert [d.savepoint.location for d in disposals] == ["file:///sp/savepoint-4",
                                                         "file:///sp/savepoint-1"]
    assert disposals[0].why == "older than savepointRetention maxAge 1h"


def test_retention_is_off_unless_set_and_the_target_gives_a_default():
    spec = deployment()
    status = with_savepoints(spec, *(saved(n) for n in range(1, 6)))
    assert upkeep(spec, None, status.status, True, NOW) == Upkeep()
    defaulted = upkeep(spec, target(savepointRetention={"maxCount": 4}), status.status, True, NOW)
    assert [d.savepoint.location for d in defaulted.disposals] == ["file:///sp/savepoint-1"]


def test_the_next_savepoint_to_grow_beyond_max_age_is_known_before_it_does():
    spec = with_fields(deployment(), savepointRetention={"maxAge": "2h"})
    status = with_savepoints(spec, saved(1), saved(2), saved(3))   # (3, the newest, is kept)
    before = upkeep(spec, None, status.status, True, "2026-11-29T02:30:00Z")
    after = upkeep(spec, None, status.status, True, "2026-11-29T03:30:00Z")
    assert (before.disposals, before.next_disposal_at) == ((), "2026-11-29T03:00:00Z")
    assert [d.savepoint.location for d in after.disposals] == ["file:///sp/savepoint-1"]
    assert after.next_disposal_at == "2026-11-29T04:00:00Z"
    assert upkeep(deployment(), None, status.status, True, NOW).next_disposal_at is None


def test_a_disposed_savepoint_is_never_disposed_again_nor_restored():
    spec = with_fields(deployment(), savepointRetention={"maxCount": 1})
    gone = saved(1).model_copy(update={"disposed_at": NOW, "disposed_why": "x"})
    status = with_savepoints(spec, gone, saved(2))
    assert upkeep(spec, None, status.status, True, NOW).disposals == ()
    assert status.status.newest_state(checkpoints=False).location == "file:///sp/savepoint-2"


@pytest.mark.parametrize("retention", [{"maxCount": 0}, {}, {"maxAge": "soon"}])
def test_a_retention_that_keeps_nothing_or_says_nothing_is_refused(retention):
    with pytest.raises(ValidationError):
        with_fields(deployment(), savepointRetention=retention)


@pytest.mark.parametrize("interval", ["5s", "6 hours", "0h", "-1h", "1y"])
def test_a_malformed_or_too_short_interval_is_refused(interval):
    with pytest.raises(ValidationError):
        with_fields(deployment(), periodicSavepointInterval=interval)


def test_a_periodic_savepoint_falls_due_an_interval_after_the_newest_and_is_planned():
    spec = with_fields(deployment(), periodicSavepointInterval="1h")
    status = with_savepoints(spec, saved(9, job=None))   # not of the running job
    status.status.job.started_at = "2026-11-29T10:00:00Z"
    status.status.history.savepoints.append(saved(10, job=status.status.job.id, hour=10))
    early = upkeep(spec, None, status.status, True, "2026-11-29T10:59:00Z")
    assert early.savepoint_due is None and "2026-11-29T11:00:00Z" <= early.next_savepoint_at \
        <= "2026-11-29T11:06:00Z"   # the interval, and a spread of up to a tenth of it
    due = upkeep(spec, None, status.status, True, "2026-11-29T11:07:00Z")
    assert due.savepoint_due.startswith("periodicSavepointInterval 1h")
    assert upkeep(spec, None, status.status, False, "2026-11-29T11:07:00Z").savepoint_due is None
    observation = running()
    diff = difference("orders", spec, spec.job_hash(), status, observation)
    decided = plan(diff, spec, status, observation, upkeep=due)
    assert decided.action.value == "SAVEPOINT" and decided.upkeep
    assert decided.steps[0].origin == SavepointOrigin.PERIODIC


def test_a_changed_redeploy_nonce_restarts_from_the_chosen_savepoint_after_saving_the_job():
    chosen = saved(1, SavepointOrigin.USER_REQUEST)
    before = with_fields(deployment(), initialSavepointPath="x", savepointRedeployNonce=1)
    status = with_savepoints(before, chosen, saved(2))
    status.status.savepoint_redeploy_nonce = 1
    spec = with_fields(before, initialSavepointPath=f"savepoint:{chosen.id}",
                       savepointRedeployNonce=2)
    observation = running()
    diff = difference("orders", spec, spec.job_hash(), status, observation)
    assert diff.redeploy_requested and not diff.job_changed
    decided = plan(diff, spec, status, observation)
    stop, start = decided.steps
    assert decided.action.value == "REDEPLOY"
    assert stop.kind == StepKind.STOP_WITH_SAVEPOINT and stop.origin == SavepointOrigin.REDEPLOY
    assert start.restore.kind == RestoreKind.SAVEPOINT and start.restore.path == chosen.location
    assert decided.rollback_restore.kind == RestoreKind.STOP_SAVEPOINT
    assert f"restored from savepoint {chosen.location}" in decided.reason
    unchanged = difference("orders", before, before.job_hash(), status, observation)
    assert not unchanged.redeploy_requested


def test_a_savepoint_named_by_an_id_the_history_lacks_or_disposed_is_a_problem():
    spec = with_fields(deployment(), initialSavepointPath="savepoint:0badc0de")
    status = with_savepoints(spec, saved(1))
    assert "no savepoint of this deployment has that id" in naming_problem(spec, status.status)
    gone = saved(2).model_copy(update={"disposed_at": NOW, "disposed_why": "beyond maxCount"})
    status.status.history.savepoints.append(gone)
    named = with_fields(deployment(), initialSavepointPath=f"savepoint:{gone.id}")
    assert "was disposed at" in naming_problem(named, status.status)
    assert naming_problem(deployment(initial="file:///any"), status.status) is None


def test_a_redeploy_nonce_needs_a_savepoint_to_restore():
    with pytest.raises(ValidationError, match="set initialSavepointPath"):
        with_fields(deployment(), savepointRedeployNonce=1)
