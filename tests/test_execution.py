"""The executor on its own, against a real Flink cluster: plans written by hand, carried out
step by step (`execute.Execution`), their outcomes read directly."""

from __future__ import annotations

from agent.execute import Execution
from agent.flink.artifacts import JobProgram
from agent.flink.rest import FlinkClient
from agent.job_ids import job_id
from agent.model.job_states import FlinkJobStatus
from agent.model.outcome import Release
from agent.model.status import ActionKind, ActionResult, SavepointOrigin
from agent.plan import Plan, Restore, RestoreKind, Step, StepKind
from conftest import deployment

CHECKPOINTS = {"execution.checkpointing.interval": "1s"}   # state for a savepoint to carry


def execution(flink, counter_jar) -> Execution:
    return Execution(FlinkClient(flink.url), None, lambda release: JobProgram(
        counter_jar, "com.example.Counter", ["--rate", "20", "--keys", "4"]))


def start_step(spec, generation: int, restore: Restore) -> Step:
    return Step(StepKind.START_JOB, job_id(spec.name, generation, spec.job_hash()),
                restore=restore, parallelism=spec.spec.template.spec.parallelism)


def test_a_start_then_a_stop_with_savepoint_hands_the_savepoint_to_the_next_job(
        flink, counter_jar, rest):
    spec = deployment(name="handed-over", options=CHECKPOINTS)   # a name per test: job ids
    wider = deployment(2, name="handed-over", options=CHECKPOINTS)  # are unique on the cluster
    first = start_step(spec, 1, Restore(RestoreKind.EMPTY))
    runner = execution(flink, counter_jar)
    started = runner.run(Plan(spec.name, ActionKind.START, (first,), generation=1),
                         Release(spec, "a" * 40, spec.job_hash()))
    assert started.result == ActionResult.SUCCESS and started.started.id == first.job_id
    rest.wait_checkpoint(first.job_id)

    stop = Step(StepKind.STOP_WITH_SAVEPOINT, first.job_id, origin=SavepointOrigin.UPGRADE)
    second = start_step(wider, 2, Restore(RestoreKind.STOP_SAVEPOINT))
    upgraded = runner.run(
        Plan(spec.name, ActionKind.STATEFUL_UPGRADE, (stop, second), generation=2),
        Release(wider, "b" * 40, wider.job_hash()))
    [savepoint] = upgraded.savepoints
    assert upgraded.result == ActionResult.SUCCESS
    assert savepoint.origin == SavepointOrigin.UPGRADE and savepoint.job_id == first.job_id
    assert upgraded.ended == {first.job_id: FlinkJobStatus.FINISHED}
    assert upgraded.started.restored_from == savepoint.location
    assert rest.restored_from(second.job_id) == savepoint.location
    assert len(upgraded.savepoint_durations) == 1


def test_a_cancel_ends_the_job_without_a_savepoint(flink, counter_jar, rest):
    spec = deployment(name="cancelled-directly")
    first = start_step(spec, 1, Restore(RestoreKind.EMPTY))
    runner = execution(flink, counter_jar)
    runner.run(Plan(spec.name, ActionKind.START, (first,), generation=1),
               Release(spec, "a" * 40, spec.job_hash()))
    cancelled = runner.run(Plan(spec.name, ActionKind.CANCEL,
                                (Step(StepKind.CANCEL_JOB, first.job_id),)), None)
    assert cancelled.result == ActionResult.SUCCESS and cancelled.savepoints == []
    assert cancelled.ended == {first.job_id: FlinkJobStatus.CANCELED}
    assert rest.jobs()[first.job_id] == "CANCELED"
