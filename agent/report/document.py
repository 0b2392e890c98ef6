"""One deployment's cycle -> its next status document (pure).

Starts from the previous document and records what this cycle learnt: the spec's problems, the
action taken and its outcome, the savepoints, the job, and what the cluster shows. Nothing here
reads a clock: times come in from the caller, so that a cycle in which nothing happened yields a
document equal to the previous one and no commit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.diff import spec_document
from agent.model.outcome import Outcome
from agent.load import SpecProblem
from agent.model.spec import Deployment, DesiredState
from agent.model.status import (Action, ActionResult, DeploymentState, DeploymentStatus, Event,
                                History, Job, Problem, ProblemKind, Status,
                                StatusMetadata, SyncStatus, bounded)
from agent.model.job_states import FlinkJobStatus, JobState
from agent.model.observation import Observation
from agent.plan import Plan, StepKind
from agent.model.verdict import Verdict



@dataclass(frozen=True)
class CycleFacts:
    """Everything one cycle knows about one deployment, as input to its next status."""

    name: str
    previous: DeploymentStatus | None
    desired: Deployment | None
    desired_hash: str | None
    spec_file: str | None
    target: str | None
    observation: Observation
    plan: Plan
    outcome: Outcome | None
    commit: str
    now: str
    problems: tuple[SpecProblem, ...] = ()
    warnings: tuple[SpecProblem, ...] = ()
    deleted: bool = False
    events: tuple[str, ...] = field(default=())
    verdict: Verdict = Verdict()


def next_status(facts: CycleFacts) -> DeploymentStatus:
    """The deployment's status after this cycle (the previous document itself when nothing
    about it changed)."""
    previous = facts.previous.status if facts.previous is not None else None
    status = _copy(previous) if previous else Status(
        state=DeploymentState.CANCELLED, sync=SyncStatus.SYNCED)
    labels = (facts.desired.metadata.labels if facts.desired
              else facts.previous.metadata.labels if facts.previous else {})
    status.target = facts.target or status.target
    status.deleted = facts.deleted
    status.warnings = [w.message for w in facts.warnings] + list(facts.verdict.warnings)
    status.errors = [Problem(kind=ProblemKind.VALIDATION, message=p.message, file=p.file,
                             line=p.line) for p in facts.problems]
    status.errors += [Problem(kind=ProblemKind.POLICY, message=denial)
                      for denial in facts.verdict.denials]
    if not facts.observation.reachable:
        status.errors.append(Problem(kind=ProblemKind.CLUSTER,
                                     message=f"target {facts.target}: {facts.observation.error}"))
    if facts.desired is not None and not facts.problems:
        status.desired_state = facts.desired.spec.state.value
        status.spec_file = facts.spec_file
    events = list(facts.events)

    _observe_job(status, facts.observation)
    if facts.outcome is not None:
        _record_outcome(status, facts, events)
    elif (facts.desired is not None and not facts.problems and facts.observation.reachable
          and facts.plan.action is None and not facts.plan.pending and not facts.plan.blocked
          and not _failed(status, facts)):
        _mark_applied(status, facts)  # nothing needed doing: e.g. a label or strategy change
    if facts.outcome is None and _failed(status, facts) and status.last_action is not None:
        status.errors.append(Problem(kind=ProblemKind.EXECUTION,
                                     message=status.last_action.message))

    status.state = _deployment_state(status, facts)
    status.sync = _sync(status, facts)
    if facts.problems and (previous is None or previous.errors != status.errors):
        events.append(f"spec refused: {facts.problems[0]}")
    status.history.events = bounded(status.history.events + [
        Event(at=facts.now, message=e) for e in events])
    document = DeploymentStatus(metadata=StatusMetadata(name=facts.name, labels=labels),
                                status=status)
    # unchanged: the previous document itself, whose rendered files the report reuses
    return facts.previous if document == facts.previous else document


def _observe_job(status: Status, observation: Observation) -> None:
    """Refreshes the recorded job from the cluster (UNKNOWN when it did not answer)."""
    if status.job is None:
        return
    if not observation.reachable:
        status.job.flink_status = FlinkJobStatus.UNKNOWN
        return
    seen = {j.id: j for j in observation.jobs}.get(status.job.id)
    if seen is not None:
        status.job.flink_status = seen.flink_status
        if seen.restarts is not None:
            status.job.restarts = seen.restarts
        if seen.flink_status == FlinkJobStatus.UNKNOWN:
            status.errors.append(Problem(
                kind=ProblemKind.CLUSTER,
                message=f"Flink reports job {seen.id} in a state this agent does not know; it "
                        "is left as it is"))
        if seen.flink_status.unhealthy:
            status.errors.append(Problem(
                kind=ProblemKind.UNHEALTHY,
                message=f"job {seen.id} is {seen.flink_status} (restarts: "
                        f"{status.job.restarts}): {seen.last_exception or 'no exception known'}"))
        if status.job.state.active:
            status.job.state = seen.flink_status.job_state(status.job.state)
    _replace_in_history(status, status.job)


def _record_outcome(status: Status, facts: CycleFacts, events: list[str]) -> None:
    outcome, plan = facts.outcome, facts.plan
    status.last_action = Action(kind=plan.action, result=outcome.result, message=outcome.message,
                                at=facts.now)
    events.append(f"{plan.action.value} {outcome.result.value}: {outcome.message}")
    for savepoint in outcome.savepoints:
        status.history.savepoints = bounded(status.history.savepoints + [savepoint])
        status.last_savepoint = savepoint
    stopped_with_savepoint = {s.job_id for s in plan.steps
                              if s.kind == StepKind.STOP_WITH_SAVEPOINT}
    for job_id, flink_status in outcome.ended.items():
        ended = _job_in_history(status, job_id)
        if ended is None:
            continue
        ended.flink_status = flink_status
        ended.state = (JobState.TERMINATED if job_id in stopped_with_savepoint
                       or flink_status == FlinkJobStatus.CANCELED
                       else FlinkJobStatus.parse(flink_status).job_state(ended.state))
        ended.ended_at = facts.now
    if outcome.started is not None:
        started = outcome.started
        status.job = Job(id=started.id, generation=started.generation, state=JobState.STARTED,
                         flink_status=started.flink_status, parallelism=started.parallelism,
                         tasks=started.tasks,
                         restored_from=started.restored_from, started_at=started.started_at,
                         spec_commit=outcome.rolled_back_to or facts.commit)
        status.history.jobs = bounded(status.history.jobs + [status.job])
    elif status.job is not None and status.job.id in outcome.ended:
        status.job = _job_in_history(status, status.job.id)
    if outcome.result == ActionResult.SUCCESS:
        _mark_applied(status, facts)
        status.failed_attempt = None
    else:
        status.errors.append(Problem(kind=ProblemKind.EXECUTION, message=outcome.message))
        if outcome.permanent and facts.desired is not None:
            status.failed_attempt = facts.desired.attempt_key(facts.desired_hash)


def _copy(status: Status) -> Status:
    """A copy of the previous status that `next_status` may change without touching it (the
    previous documents are kept between cycles): what it changes in place — the job and the
    history's jobs — is copied, the rest is shared (it is only ever replaced). A deep copy of
    every document was the larger part of a cycle with nothing to do."""
    copy = status.model_copy()
    copy.job = status.job.model_copy() if status.job else None
    copy.history = History(jobs=[job.model_copy() for job in status.history.jobs],
                           savepoints=list(status.history.savepoints),
                           events=list(status.history.events))
    return copy


def _mark_applied(status: Status, facts: CycleFacts) -> None:
    """Records the desired spec as applied. `specCommit` moves only when the applied spec (or
    its file) changed: it names the commit the applied spec comes from, so a commit that changes
    one deployment changes one status document."""
    if facts.desired is None:
        return
    applied = spec_document(facts.desired)
    before = facts.previous.status.spec_file if facts.previous else None
    if (status.applied_spec_hash, status.applied_spec, before) != (
            facts.desired_hash, applied, facts.spec_file) or status.spec_commit is None:
        status.spec_commit = facts.commit
    status.applied_spec_hash = facts.desired_hash
    status.applied_spec = applied
    status.savepoint_trigger_nonce = facts.desired.spec.savepoint_trigger_nonce


def _deployment_state(status: Status, facts: CycleFacts) -> DeploymentState:
    """What the deployment is now. FAILED while its spec's last action failed (the old job may
    still run, or a rolled-back one: see `job`)."""
    if not facts.observation.reachable:
        return status.state
    if _failed(status, facts) or (facts.outcome is not None
                                  and facts.outcome.result == ActionResult.FAILED):
        return DeploymentState.FAILED
    job = status.job
    if job is not None and job.state.active:
        running = FlinkJobStatus.parse(job.flink_status).running
        return DeploymentState.RUNNING if running else DeploymentState.TRANSITIONING
    if facts.deleted:
        return DeploymentState.SUSPENDED
    desired = status.desired_state
    if desired == DesiredState.SUSPENDED:
        return DeploymentState.SUSPENDED
    if desired == DesiredState.CANCELLED or job is None:
        return DeploymentState.CANCELLED
    if job.state == JobState.FINISHED:
        return DeploymentState.FINISHED
    if job.state == JobState.FAILED:
        return DeploymentState.FAILED
    return DeploymentState.CANCELLED


def _sync(status: Status, facts: CycleFacts) -> SyncStatus:
    if facts.problems:
        return SyncStatus.INVALID
    if facts.verdict.denied:
        return SyncStatus.BLOCKED
    if facts.plan.changes_anything and facts.outcome is None:
        return SyncStatus.OUT_OF_SYNC  # deferred: the agent stopped before this action
    if facts.deleted:
        return SyncStatus.SYNCED
    if not facts.observation.reachable or facts.plan.pending:
        return SyncStatus.OUT_OF_SYNC
    if facts.outcome is not None and facts.outcome.result != ActionResult.SUCCESS:
        return SyncStatus.OUT_OF_SYNC
    if facts.desired is not None and status.applied_spec_hash != facts.desired_hash:
        return SyncStatus.OUT_OF_SYNC
    return SyncStatus.SYNCED


def _failed(status: Status, facts: CycleFacts) -> bool:
    """The desired spec's last action failed for good (it is not tried again as it is)."""
    return (facts.desired is not None and status.failed_attempt is not None
            and status.failed_attempt == facts.desired.attempt_key(facts.desired_hash))


def _job_in_history(status: Status, job_id: str) -> Job | None:
    return next((j for j in status.history.jobs if j.id == job_id), None)


def _replace_in_history(status: Status, job: Job) -> None:
    status.history.jobs = [job if j.id == job.id else j for j in status.history.jobs]
