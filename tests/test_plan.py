"""The planner: desired spec + applied status + observed jobs -> action and steps (pure)."""

import pytest

from agent.diff import difference
from agent.job_ids import (deployment_key, generation_of, job_id, spec_digest_of,
                            with_generation)
from agent.model.spec import Deployment
from agent.model.job_states import JobState
from agent.model.status import DeploymentState, Savepoint, SavepointOrigin
from agent.model.observation import ObservedJob, Observation
from agent.plan import RestoreKind, StepKind, plan
from conftest import applied, deployment, jid, running


def decide(desired, previous, observation):
    diff = difference("orders", desired, desired.job_hash() if desired else None, previous,
                      observation)
    return diff, plan(diff, desired, previous, observation)


def test_job_ids_carry_the_deployment_its_generation_and_its_spec():
    spec_hash = deployment().job_hash()
    job = job_id("orders", 7, spec_hash)
    assert job.startswith(deployment_key("orders")) and len(job) == 32
    assert generation_of(job) == 7 and spec_digest_of(job) == spec_hash[:8]
    assert generation_of(with_generation(job, 8)) == 8 and spec_digest_of(with_generation(job, 8))\
        == spec_hash[:8]
    assert deployment_key("orders") != deployment_key("orders2")


def test_first_start_submits_generation_one_with_empty_state():
    _, decided = decide(deployment(), None, Observation(True))
    assert decided.action == "START"
    [start] = decided.steps
    assert start.kind == StepKind.START_JOB and start.job_id == jid(1)
    assert start.restore.kind == RestoreKind.EMPTY


def test_first_start_restores_the_initial_savepoint_path():
    _, decided = decide(deployment(initial="file:/sp/1"), None, Observation(True))
    assert decided.steps[0].restore.kind == RestoreKind.SAVEPOINT
    assert decided.steps[0].restore.path == "file:/sp/1"


def test_stateful_upgrade_stops_with_savepoint_then_starts_from_it():
    diff, decided = decide(deployment(parallelism=4), applied(deployment()), running())
    assert [str(f) for f in diff.fields] == ["spec.template.spec.parallelism: 1 → 4"]
    assert decided.action == "STATEFUL_UPGRADE"
    stop, start = decided.steps
    assert stop.kind == StepKind.STOP_WITH_SAVEPOINT and stop.job_id == jid(1)
    assert start.job_id == jid(2, deployment(parallelism=4)) and start.parallelism == 4
    assert start.restore.kind == RestoreKind.STOP_SAVEPOINT
    assert "stop with savepoint" in decided.summary()


def test_stateful_upgrade_with_restore_none_starts_empty():
    _, decided = decide(deployment(2, restore="NONE"), applied(deployment(restore="NONE")),
                        running())
    assert decided.steps[1].restore.kind == RestoreKind.EMPTY


def test_stateless_upgrade_cancels_and_starts_empty_without_savepoints():
    _, decided = decide(deployment(2, upgrade="STATELESS", restore="NONE"),
                        applied(deployment(upgrade="STATELESS", restore="NONE")), running())
    assert decided.action == "STATELESS_UPGRADE"
    assert [s.kind for s in decided.steps] == [StepKind.CANCEL_JOB, StepKind.START_JOB]
    assert decided.steps[1].restore.kind == RestoreKind.EMPTY


def test_stateless_upgrade_with_latest_state_restores_the_retained_checkpoint():
    _, decided = decide(deployment(2, upgrade="STATELESS", restore="LATEST_STATE"),
                        applied(deployment(upgrade="STATELESS", restore="LATEST_STATE")),
                        running())
    restore = decided.steps[1].restore
    assert restore.kind == RestoreKind.LATEST_STATE and restore.job_id == jid(1)


def lost_with_a_retained_checkpoint(restore: str):
    """`orders` whose job its cluster lost; the status has a savepoint, then a retained
    checkpoint of the lost job (as recovery records it)."""
    previous = applied(deployment(restore=restore), savepoint="file:/sp/older")
    previous.status.history.savepoints.append(previous.status.last_savepoint)
    previous.status.last_savepoint = Savepoint(
        location="file:/chk/lost/chk-9", origin=SavepointOrigin.RETAINED_CHECKPOINT,
        created_at="t", job_id=jid(1))
    previous.status.history.savepoints.append(previous.status.last_savepoint)
    return decide(deployment(restore=restore), previous, Observation(True))[1]


def test_a_lost_latest_state_job_restarts_from_its_retained_checkpoint():
    decided = lost_with_a_retained_checkpoint("LATEST_STATE")
    assert decided.action == "RESTART" and "missing from the cluster" in decided.reason
    [start] = decided.steps
    assert start.restore.kind == RestoreKind.RETAINED_CHECKPOINT
    assert start.restore.path == "file:/chk/lost/chk-9" and decided.state == \
        "RESTORED_FROM_CHECKPOINT"
    assert "retained checkpoint file:/chk/lost/chk-9" in decided.summary()


def test_a_lost_latest_savepoint_job_restarts_from_its_newest_savepoint_not_a_checkpoint():
    [start] = lost_with_a_retained_checkpoint("LATEST_SAVEPOINT").steps
    assert start.restore.kind == RestoreKind.SAVEPOINT and start.restore.path == "file:/sp/older"


def test_upgrade_strategy_none_leaves_the_job_and_marks_the_upgrade_pending():
    _, decided = decide(deployment(2, upgrade="NONE"), applied(deployment(upgrade="NONE")),
                        running())
    assert decided.action is None and decided.pending and decided.steps == ()


def test_a_label_change_restarts_nothing():
    diff, decided = decide(deployment(labels={"team": "b"}), applied(deployment()), running())
    assert diff.metadata_only and not diff.job_changed
    assert decided.action is None


def test_suspend_takes_a_savepoint_and_resume_restores_it():
    _, suspend = decide(deployment(state="SUSPENDED"), applied(deployment()), running())
    assert suspend.action == "SUSPEND"
    assert suspend.steps[0].kind == StepKind.STOP_WITH_SAVEPOINT
    assert suspend.steps[0].origin == SavepointOrigin.SUSPEND
    suspended = applied(deployment(state="SUSPENDED"), state=DeploymentState.SUSPENDED,
                        savepoint="file:/sp/s1")
    _, resume = decide(deployment(), suspended, running(flink_status="FINISHED"))
    assert resume.action == "START"
    assert resume.steps[0].restore.path == "file:/sp/s1"
    assert resume.steps[0].job_id == jid(2)


def test_cancelled_cancels_without_savepoint():
    _, decided = decide(deployment(state="CANCELLED"), applied(deployment()), running())
    assert decided.action == "CANCEL"
    assert [s.kind for s in decided.steps] == [StepKind.CANCEL_JOB]


def test_nothing_to_do_when_the_applied_job_runs():
    _, decided = decide(deployment(), applied(deployment()), running())
    assert decided.action is None and not decided.pending


def test_a_job_cancelled_outside_the_agent_is_restarted_from_the_latest_savepoint():
    previous = applied(deployment(), savepoint="file:/sp/1")
    diff, decided = decide(deployment(), previous, running(flink_status="CANCELED"))
    assert "CANCELED" in diff.drift
    assert decided.action == "RESTART"
    assert decided.steps[0].restore.path == "file:/sp/1"


def test_a_job_that_finished_by_itself_is_not_started_again_until_its_job_changes():
    previous = applied(deployment())
    previous.status.job.state = JobState.FINISHED   # as recovery records it: no stop savepoint
    diff, decided = decide(deployment(), previous, running(flink_status="FINISHED"))
    assert diff.drift is None and decided.action is None
    assert decided.reason == "the job finished by itself"
    _, changed = decide(deployment(parallelism=2), previous, running(flink_status="FINISHED"))
    assert changed.action == "START"


def test_a_deleted_spec_suspends_the_job_with_a_savepoint():
    _, decided = decide(None, applied(deployment()), running())
    assert decided.action == "DELETE"
    assert decided.steps[0].kind == StepKind.STOP_WITH_SAVEPOINT


def test_an_unreachable_target_plans_nothing():
    _, decided = decide(deployment(2), applied(deployment()), Observation(False, error="down"))
    assert decided.action is None and "unreachable" in decided.reason


@pytest.mark.parametrize("generation", [1, 5])
def test_the_new_job_id_is_past_every_generation_seen(generation):
    _, decided = decide(deployment(2), applied(deployment(), generation=1), running(generation))
    assert decided.steps[-1].job_id == jid(generation + 1, deployment(2))


def test_a_job_missing_from_the_cluster_is_drift_and_is_restarted():
    previous = applied(deployment(), savepoint="file:/sp/1")
    diff, decided = decide(deployment(), previous, Observation(True))
    assert "missing from the cluster" in diff.drift
    assert decided.action == "RESTART" and decided.steps[0].restore.path == "file:/sp/1"


def test_a_job_rescaled_behind_the_agents_back_is_restarted_per_its_strategy():
    previous = applied(deployment())
    previous.status.job.tasks = 3
    rescaled = Observation(True, (ObservedJob(jid(1), 1, "RUNNING", tasks=2),))
    diff, decided = decide(deployment(), previous, rescaled)
    assert "parallelism was changed outside the agent" in diff.drift
    assert decided.action == "RESTART"
    assert [s.kind for s in decided.steps] == [StepKind.STOP_WITH_SAVEPOINT, StepKind.START_JOB]


def test_a_spec_whose_action_failed_is_not_tried_again_until_it_changes():
    previous = applied(deployment())
    previous.status.failed_attempt = deployment(2).attempt_key(deployment(2).job_hash())
    _, held = decide(deployment(2), previous, running())
    assert held.action is None and "failed" in held.reason
    _, retried = decide(deployment(2, restore="NONE"), previous, running())
    assert retried.action == "STATEFUL_UPGRADE"


def test_a_changed_savepoint_trigger_nonce_plans_a_savepoint_only():
    def with_nonce(nonce):
        spec = deployment().model_dump(by_alias=True)
        spec["spec"]["savepointTriggerNonce"] = nonce
        return Deployment.model_validate(spec)
    previous = applied(with_nonce(1))
    previous.status.savepoint_trigger_nonce = 1
    _, decided = decide(with_nonce(2), previous, running())
    assert decided.action == "SAVEPOINT"
    assert [s.kind for s in decided.steps] == [StepKind.TRIGGER_SAVEPOINT]
    _, same = decide(with_nonce(1), previous, running())
    assert same.action is None
