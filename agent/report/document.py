"""One deployment's cycle -> its next status document (pure).

Starts from the previous document and records what this cycle learnt: the spec's problems, the
action taken and its outcome, the savepoints, the job, and what the cluster shows. Nothing here
reads a clock: times come in from the caller, so that a cycle in which nothing happened yields a
document equal to the previous one and no commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from agent.assessment import Assessment
from agent.diff import spec_document
from agent.model.job_states import FlinkJobStatus, JobState
from agent.model.observation import JobHealth, Observation
from agent.model.outcome import Outcome
from agent.clock import from_millis, iso, parse
from agent.model.spec import DesiredState, duration_seconds
from agent.model.status import (Action, ActionResult, DeploymentState, DeploymentStatus, Event,
                                History, Job, JobInputs, Problem, ProblemKind, Savepoint,
                                StabilityWatch, Status, StatusMetadata, SyncStatus, bounded,
                                savepoint_history)
from agent.plan import StepKind



@dataclass(frozen=True)
class CycleFacts:
    """One deployment's assessment, what its action did (None: no action ran), the spec commit
    and the time: everything its next status is made of."""

    item: Assessment
    outcome: Outcome | None
    commit: str
    now: str

    @property
    def events(self) -> tuple[str, ...]:
        """What this cycle has to tell of the deployment besides its action."""
        item = self.item
        drift = (f"drift: {item.difference.drift}",) if item.difference.drift else ()
        deferred = ((f"{item.plan.action.value} deferred: the agent was stopping",)
                    if item.plan.changes_anything and self.outcome is None else ())
        overrides = ((f"{item.plan.action.value} inside sync window {item.plan.overrides}: a "
                      "manual sync (--override-window)",) if item.plan.overrides else ())
        return item.events + drift + deferred + overrides


def in_progress(item: Assessment, now: str) -> DeploymentStatus:
    """The deployment's status while its action runs: TRANSITIONING, its last action
    IN_PROGRESS with the steps under way (committed as the action starts; the cycle's own status
    replaces it when the action ends, and the next cycle when the agent died meanwhile)."""
    previous = item.previous.status if item.previous is not None else None
    status = _copy(previous) if previous else Status(
        state=DeploymentState.TRANSITIONING, sync=SyncStatus.OUT_OF_SYNC)
    status.state = DeploymentState.TRANSITIONING
    status.last_action = Action(kind=item.plan.action, result=ActionResult.IN_PROGRESS,
                                message=item.plan.steps_text(), at=now)
    status.target = item.target_name or status.target
    labels = (item.desired.metadata.labels if item.desired
              else item.previous.metadata.labels if item.previous else {})
    return DeploymentStatus(metadata=StatusMetadata(name=item.name, labels=labels),
                            status=status)


def next_status(facts: CycleFacts) -> DeploymentStatus:
    """The deployment's status after this cycle (the previous document itself when nothing
    about it changed)."""
    item = facts.item
    previous = item.previous.status if item.previous is not None else None
    status = _copy(previous) if previous else Status(
        state=DeploymentState.CANCELLED, sync=SyncStatus.SYNCED)
    labels = (item.desired.metadata.labels if item.desired
              else item.previous.metadata.labels if item.previous else {})
    status.target = item.target_name or status.target
    status.deleted = item.deleted
    status.warnings = [w.message for w in item.warnings] + list(item.verdict.warnings)
    status.errors = [Problem(kind=ProblemKind.VALIDATION, message=p.message, file=p.file,
                             line=p.line) for p in item.problems]
    status.errors += [Problem(kind=ProblemKind.POLICY, message=denial)
                      for denial in item.verdict.denials]
    if item.plan.blocked and item.plan.deferred is not None:   # a SyncWindow cannot be read
        status.errors.append(Problem(kind=ProblemKind.VALIDATION, message=item.plan.reason))
    status.deferred = item.plan.reason if item.plan.deferred and not item.plan.blocked else None
    if not item.observation.reachable:
        status.errors.append(Problem(
            kind=ProblemKind.CLUSTER, message=f"target {item.target_name}: "
                                              f"{item.observation.error}"))
    if item.desired is not None and not item.problems:
        status.desired_state = item.desired.spec.state.value
        status.spec_file = item.spec_file
    events = list(facts.events)

    _observe_job(status, item.observation, item.health)
    if item.unhealthy is not None and facts.outcome is None:
        status.errors.append(Problem(kind=ProblemKind.UNHEALTHY,
                                     message=f"health policy: {item.unhealthy}"))
    if facts.outcome is not None:
        _record_outcome(status, facts, events)
    elif (item.desired is not None and not item.problems and item.observation.reachable
          and item.plan.action is None and not item.plan.pending and not item.plan.blocked
          and item.plan.deferred is None and not _failed(status, facts)
          and status.stability is None):
        _mark_applied(status, facts)  # nothing needed doing: e.g. a label or strategy change
    if facts.outcome is None and _failed(status, facts) and status.last_action is not None:
        status.errors.append(Problem(kind=ProblemKind.EXECUTION,
                                     message=status.last_action.message))

    status.state = _deployment_state(status, facts)
    status.sync = _sync(status, facts)
    if item.problems and (previous is None or previous.errors != status.errors):
        events.append(f"spec refused: {item.problems[0]}")
    status.history.events = bounded(status.history.events + [
        Event(at=facts.now, message=e) for e in events])
    document = DeploymentStatus(metadata=StatusMetadata(name=item.name, labels=labels),
                                status=status)
    # unchanged: the previous document itself, whose rendered files the report reuses
    return item.previous if document == item.previous else document


def _observe_job(status: Status, observation: Observation, health: JobHealth | None) -> None:
    """Refreshes the recorded job from the cluster (UNKNOWN when it did not answer), and its
    restarts from its `health` when that was read."""
    if status.job is None:
        return
    if not observation.reachable:
        status.job.flink_status = FlinkJobStatus.UNKNOWN
        return
    seen = {j.id: j for j in observation.jobs}.get(status.job.id)
    if seen is not None:
        status.job.flink_status = seen.flink_status
        read = health is not None and observation.active is not None \
            and observation.active.id == seen.id   # (health is of the newest active job)
        restarts = health.restarts if read else seen.restarts
        if restarts is not None:
            status.job.restarts = restarts
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
    outcome, plan = facts.outcome, facts.item.plan
    status.last_action = Action(kind=plan.action, result=outcome.result, message=outcome.message,
                                at=facts.now)
    events.append(f"{plan.action.value} {outcome.result.value}: {outcome.message}")
    for savepoint in outcome.savepoints:
        status.history.savepoints = savepoint_history(status.history.savepoints + [savepoint])
        status.last_savepoint = savepoint
    if outcome.disposed:
        _mark_disposed(status, dict(outcome.disposed), facts.now)
    if plan.health:
        status.health_restarted_at = facts.now
        events.append(f"health policy: {facts.item.unhealthy}")
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
    if plan.adopts is not None and outcome.result == ActionResult.SUCCESS:
        _record_adopted(status, facts)
    if outcome.started is not None:
        started = outcome.started
        # (FINISHED: a bounded job that ran to its end before it was seen running)
        state = FlinkJobStatus.parse(started.flink_status).job_state(JobState.STARTED)
        status.job = Job(id=started.id, generation=started.generation, state=state,
                         flink_status=started.flink_status, parallelism=started.parallelism,
                         tasks=started.tasks,
                         restored_from=started.restored_from, started_at=started.started_at,
                         ended_at=facts.now if state == JobState.FINISHED else None,
                         spec_commit=outcome.rolled_back_to or facts.commit)
        status.history.jobs = bounded(status.history.jobs + [status.job])
    elif status.job is not None and status.job.id in outcome.ended:
        status.job = _job_in_history(status, status.job.id)
    status.stability = _watch(facts) if outcome.result == ActionResult.IN_PROGRESS else None
    if outcome.result == ActionResult.SUCCESS:
        _mark_applied(status, facts)
        status.failed_attempt = None
    elif outcome.result == ActionResult.FAILED:
        status.errors.append(Problem(kind=ProblemKind.EXECUTION, message=outcome.message))
        if outcome.permanent and facts.item.desired is not None and not plan.upkeep:
            status.failed_attempt = facts.item.desired.attempt_key(facts.item.desired_hash)


def _record_adopted(status: Status, facts: CycleFacts) -> None:
    """The job the plan adopts, as observed, becomes the deployment's job (generation 0: the
    agent's own jobs count from 1)."""
    seen = next(j for j in facts.item.observation.jobs if j.id == facts.item.plan.adopts)
    status.job = Job(id=seen.id, generation=0, state=JobState.STARTED,
                     flink_status=seen.flink_status,
                     parallelism=facts.item.desired.spec.template.spec.parallelism,
                     tasks=seen.tasks, started_at=from_millis(seen.start_time),
                     spec_commit=facts.commit)
    status.history.jobs = bounded(status.history.jobs + [status.job])
    status.adopted_job_id = seen.id


def _watch(facts: CycleFacts) -> StabilityWatch:
    """The stability window the upgrade's new job begins (the applied spec stays the old one
    until later cycles find it stable)."""
    started, window = facts.outcome.started, facts.item.plan.stability_window
    seconds = timedelta(seconds=duration_seconds(window))
    until = parse(started.started_at) + seconds
    return StabilityWatch(job_id=started.id, action=facts.item.plan.action,
                          spec_hash=facts.item.desired_hash, commit=facts.commit, window=window,
                          started_at=started.started_at, until=iso(until),
                          give_up_at=iso(until + seconds), restore=started.restored_from)


def _mark_disposed(status: Status, disposed: dict[str, str], now: str) -> None:
    """The savepoints at `disposed`'s locations recorded as disposed, and why."""
    def marked(saved: Savepoint) -> Savepoint:
        if saved.location not in disposed or not saved.kept:
            return saved
        return saved.model_copy(update={"disposed_at": now,
                                        "disposed_why": disposed[saved.location]})
    status.history.savepoints = savepoint_history([marked(s) for s in status.history.savepoints])
    if status.last_savepoint is not None:
        status.last_savepoint = marked(status.last_savepoint)


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
    if facts.item.desired is None:
        return
    applied = spec_document(facts.item.desired)
    before = facts.item.previous.status.spec_file if facts.item.previous else None
    if (status.applied_spec_hash, status.applied_spec, before) != (
            facts.item.desired_hash, applied, facts.item.spec_file) or status.spec_commit is None:
        status.spec_commit = facts.commit
    status.applied_spec_hash = facts.item.desired_hash
    status.applied_spec = applied
    status.applied_inputs = facts.item.inputs if facts.item.inputs != JobInputs() else None
    status.savepoint_trigger_nonce = facts.item.desired.spec.savepoint_trigger_nonce
    status.savepoint_redeploy_nonce = facts.item.desired.spec.savepoint_redeploy_nonce


def _deployment_state(status: Status, facts: CycleFacts) -> DeploymentState:
    """What the deployment is now. FAILED while its spec's last action failed (the old job may
    still run, or a rolled-back one: see `job`)."""
    if not facts.item.observation.reachable:
        return status.state
    if _failed(status, facts) or (facts.outcome is not None and not facts.item.plan.upkeep
                                  and facts.outcome.result == ActionResult.FAILED):
        return DeploymentState.FAILED
    job = status.job
    if job is not None and job.state.active:
        running = FlinkJobStatus.parse(job.flink_status).running
        return DeploymentState.RUNNING if running and status.stability is None \
            else DeploymentState.TRANSITIONING
    if facts.item.deleted:
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
    if facts.item.problems:
        return SyncStatus.INVALID
    if facts.item.verdict.denied or facts.item.plan.blocked:
        return SyncStatus.BLOCKED
    if facts.item.plan.changes_anything and facts.outcome is None:
        return SyncStatus.OUT_OF_SYNC  # deferred: the agent stopped before this action
    if facts.item.deleted:
        return SyncStatus.SYNCED
    if not facts.item.observation.reachable or facts.item.plan.pending \
            or facts.item.plan.deferred is not None:
        return SyncStatus.OUT_OF_SYNC
    if facts.outcome is not None and facts.outcome.result != ActionResult.SUCCESS:
        return SyncStatus.OUT_OF_SYNC
    if facts.item.desired is not None and status.applied_spec_hash != facts.item.desired_hash:
        return SyncStatus.OUT_OF_SYNC
    return SyncStatus.SYNCED


def _failed(status: Status, facts: CycleFacts) -> bool:
    """The desired spec's last action failed for good (it is not tried again as it is)."""
    return (facts.item.desired is not None and status.failed_attempt is not None
            and status.failed_attempt == facts.item.desired.attempt_key(facts.item.desired_hash))


def _job_in_history(status: Status, job_id: str) -> Job | None:
    return next((j for j in status.history.jobs if j.id == job_id), None)


def _replace_in_history(status: Status, job: Job) -> None:
    status.history.jobs = [job if j.id == job.id else j for j in status.history.jobs]
