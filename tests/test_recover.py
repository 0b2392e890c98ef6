"""Flink's own records correct the agent's memory before planning (`recover`), each case
directly: a stub of the two reads recover makes stands in for the cluster, whose real behaviour
the crash tests (test_crash_safety.py) exercise by killing a real agent."""

from __future__ import annotations

import pytest

from agent.errors import FlinkError, FlinkRequestError, RecordsUnreadable
from agent.model.job_states import JobState
from agent.model.observation import Observation, ObservedJob
from agent.recover import recover
from conftest import applied, deployment, jid


class Records:
    """What Flink recorded of jobs: the stop savepoint and the restored checkpoint."""

    def __init__(self, stop_savepoint=None, restored=None, refusal: FlinkError | None = None):
        self._stop, self._restored, self._refusal = stop_savepoint, restored, refusal
        self.reads = 0

    def stop_savepoint(self, job_id):
        self.reads += 1
        if self._refusal is not None:
            raise self._refusal
        return self._stop

    def checkpoints(self, job_id):
        self.reads += 1
        return {"latest": {"restored": {"external_path": self._restored}}}


def test_nothing_changed_behind_the_agent_reads_nothing():
    spec = deployment()
    records = Records()
    observation = Observation(True, (ObservedJob(jid(1), 1, "RUNNING"),))
    recovery = recover("orders", applied(spec), observation, records, spec, spec.job_hash())
    assert recovery.previous is not None and recovery.events == [] and records.reads == 0


def test_a_job_stopped_by_an_interrupted_action_gives_its_savepoint_to_the_status():
    spec = deployment(parallelism=2)
    previous = applied(deployment())
    records = Records(stop_savepoint={"external_path": "file:/sp/7",
                                      "latest_ack_timestamp": 1_700_000_000_000})
    observation = Observation(True, (ObservedJob(jid(1), 1, "FINISHED", end_time=1),))
    recovery = recover("orders", previous, observation, records, spec, spec.job_hash())
    status = recovery.previous.status
    assert status.last_savepoint.location == "file:/sp/7"
    assert status.last_savepoint.origin.value == "UPGRADE"
    assert status.job.state == JobState.TERMINATED
    assert "stopped with savepoint file:/sp/7" in recovery.events[0]
    assert previous.status.last_savepoint is None     # the previous document is not changed


def test_a_job_submitted_by_an_interrupted_action_is_adopted_not_submitted_again():
    spec = deployment(parallelism=2)
    new = jid(2, spec)
    records = Records(restored="file:/sp/7")
    observation = Observation(True, (ObservedJob(jid(1), 1, "FINISHED"),
                                     ObservedJob(new, 2, "RUNNING")))
    previous = applied(deployment())
    previous.status.job.state = JobState.TERMINATED
    recovery = recover("orders", previous, observation, records, spec, spec.job_hash())
    status = recovery.previous.status
    assert status.job.id == new and status.job.restored_from == "file:/sp/7"
    assert status.applied_spec_hash == spec.job_hash()
    assert "recorded it instead of submitting again" in recovery.events[0]


def test_an_adopted_job_of_another_spec_is_not_taken_for_the_desired_one():
    desired, other = deployment(parallelism=2), deployment(parallelism=5)
    observation = Observation(True, (ObservedJob(jid(3, other), 3, "RUNNING"),))
    recovery = recover("orders", None, observation, Records(), desired, desired.job_hash())
    assert recovery.previous.status.applied_spec_hash.endswith("?")


def test_records_that_cannot_be_read_leave_the_deployment_unplanned_not_planned_on_old_memory():
    """The stop savepoint of a job that ended behind the agent cannot be read: planning on the
    memory as it was would start the job from older state, so recover refuses to answer."""
    spec = deployment(parallelism=2)
    refusal = FlinkRequestError("GET /jobs/x/checkpoints: 500", status=500,
                                flink_message="Internal server error.")
    observation = Observation(True, (ObservedJob(jid(1), 1, "FINISHED", end_time=1),))
    with pytest.raises(RecordsUnreadable, match="could not read Flink's records.*500"):
        recover("orders", applied(deployment()), observation, Records(refusal=refusal), spec,
                spec.job_hash())
