"""A deployment's next status document, from its assessment and what its action did (pure:
`report.document.next_status`, each branch reached directly, not through a real-Flink scenario)."""

from __future__ import annotations

from agent.assessment import Assessment
from agent.diff import difference
from agent.model.job_states import FlinkJobStatus, JobState
from agent.model.observation import Observation
from agent.model.outcome import Outcome, StartedJob
from agent.model.status import (ActionKind, ActionResult, DeploymentState, Savepoint,
                                SavepointOrigin, SyncStatus)
from agent.plan import plan
from agent.report.document import CycleFacts, next_status
from conftest import applied, deployment, jid, running

COMMIT = "c" * 40


def assessed(desired, previous, observation, **fields) -> Assessment:
    digest = desired.job_hash() if desired else None
    diff = difference("orders", desired, digest, previous, observation)
    return Assessment("orders", desired, digest, "deployments/orders.yaml", None, previous,
                      observation, diff, plan(diff, desired, previous, observation), **fields)


def test_a_cycle_that_learnt_nothing_returns_the_previous_document_itself():
    spec = deployment()
    first = next_status(CycleFacts(assessed(spec, applied(spec), running()), None, COMMIT, "t"))
    again = assessed(spec, first, running())
    assert next_status(CycleFacts(again, None, COMMIT, "later")) is first


def test_a_stateful_upgrade_records_the_savepoint_the_ended_job_and_the_new_one():
    old, new = deployment(), deployment(parallelism=2)
    previous = applied(old)
    item = assessed(new, previous, running())
    assert item.plan.action == ActionKind.STATEFUL_UPGRADE
    savepoint = Savepoint(location="file:/sp/1", origin=SavepointOrigin.UPGRADE,
                          created_at="now", job_id=jid(1))
    outcome = Outcome(action=ActionKind.STATEFUL_UPGRADE, message="done", savepoints=[savepoint],
                      started=StartedJob(jid(2, new), 2, FlinkJobStatus.RUNNING, 2,
                                         "file:/sp/1", "now", 3),
                      ended={jid(1): FlinkJobStatus.FINISHED})
    status = next_status(CycleFacts(item, outcome, COMMIT, "now")).status
    assert (status.state, status.sync) == (DeploymentState.RUNNING, SyncStatus.SYNCED)
    assert status.job.id == jid(2, new) and status.job.restored_from == "file:/sp/1"
    assert status.last_savepoint == savepoint and status.applied_spec_hash == new.job_hash()
    ended = next(j for j in status.history.jobs if j.id == jid(1))
    assert ended.state == JobState.TERMINATED and ended.ended_at == "now"
    assert status.spec_commit == COMMIT and status.last_action.result == ActionResult.SUCCESS


def test_a_permanent_failure_is_failed_until_the_spec_changes():
    spec, broken = deployment(), deployment(parallelism=3)
    item = assessed(broken, applied(spec), running())
    outcome = Outcome(ActionResult.FAILED, "Flink refused", ActionKind.STATEFUL_UPGRADE,
                      permanent=True)
    status = next_status(CycleFacts(item, outcome, COMMIT, "now")).status
    assert status.state == DeploymentState.FAILED and status.sync == SyncStatus.OUT_OF_SYNC
    assert status.failed_attempt == broken.attempt_key(broken.job_hash())
    assert [e.kind.value for e in status.errors] == ["EXECUTION"]


def test_an_unreachable_cluster_leaves_the_state_and_says_so():
    spec = deployment()
    item = assessed(spec, applied(spec), Observation(False, error="connection refused"))
    status = next_status(CycleFacts(item, None, COMMIT, "now")).status
    assert status.state == DeploymentState.RUNNING and status.sync == SyncStatus.OUT_OF_SYNC
    assert status.job.flink_status == "UNKNOWN"
    assert status.errors[0].message == "target None: connection refused"


def test_an_action_deferred_by_a_stopping_agent_is_out_of_sync_and_told():
    item = assessed(deployment(parallelism=2), applied(deployment()), running())
    status = next_status(CycleFacts(item, None, COMMIT, "now")).status
    assert status.sync == SyncStatus.OUT_OF_SYNC
    assert status.history.events[-1].message == ("STATEFUL_UPGRADE deferred: the agent was "
                                                 "stopping")


def test_a_job_in_a_state_the_agent_does_not_know_is_reported():
    spec = deployment()
    item = assessed(spec, applied(spec), running(flink_status="SOMETHING_NEW"))
    status = next_status(CycleFacts(item, None, COMMIT, "now")).status
    assert "a state this agent does not know" in status.errors[0].message
