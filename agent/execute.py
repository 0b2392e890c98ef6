"""Plan steps -> Flink calls, with bounded attempts (I/O: Flink REST, through `FlinkClient`).

Carries out one deployment's plan step by step and returns what happened as an `Outcome`: the
savepoints taken, the job started, the jobs ended, the result. A step that fails stops the plan
where it is; because a STATEFUL stop comes first and only a completed savepoint lets the plan go
on, a failed savepoint leaves the old job running untouched (DESIGN §5.1).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable

from agent import testpoints
from agent.clock import from_millis, utc_now
from agent.errors import (FlinkGitopsError, FlinkRequestError, FlinkUnavailable, JobDidNotEnd,
                          JobStartFailed, PermanentError, RestoreUnavailable, SavepointFailed,
                          StateNotRestorable)
from agent.flink.artifacts import JobProgram
from agent.flink.python import DriverOutput
from agent.logs import redact
from agent.flink.storage import newest_state, state_absent
from agent.flink.rest import FlinkClient, SavepointResult, poll_delays
from agent.model.job_states import FlinkJobStatus
from agent.job_ids import job_id, with_generation
from agent.model.spec import CHECKPOINT_RETENTION, Deployment, RestoreStrategyKind
from agent.model.outcome import Outcome, Release, StartedJob
from agent.model.status import ActionResult, Savepoint, SavepointOrigin
from agent.plan import Plan, Restore, RestoreKind, Step, StepKind
from agent.secrets import expand

log = logging.getLogger(__name__)


@dataclass
class Execution:
    """Carries out plans against one cluster."""

    client: FlinkClient
    savepoint_dir: str | None
    fetch_program: Callable[[Release], JobProgram]     # the jar, entry class and arguments
    clock: Callable[[], str] = utc_now
    sleep: Callable[[float], None] = time.sleep
    backoff_s: float = 1.0
    longest_backoff_s: float = 60.0      # attempts wait 1 s, 2 s, 4 s … at most this
    start_timeout_s: float = 120.0
    driver_output: DriverOutput | None = None   # the local JobManager's, for Python failures
    _uploads: dict[str, tuple[JobProgram, str]] = field(default_factory=dict, init=False)

    def run(self, plan: Plan, desired: Release | None,
            previous: Release | None = None) -> Outcome:
        """Carries the plan out for `desired` (None: a deletion of `previous`). When its new job
        cannot start and the plan allows a rollback, `previous` is started again instead. A plan
        that rolls back an upgrade that did not settle in its stability window starts `desired`,
        the applied spec, and is FAILED; an upgrade with a stability window is IN_PROGRESS once
        its job runs (later cycles settle it).

        The new job's state check is heeded and its artifact fetched and uploaded before any
        step: a job that cannot restore its state or an artifact that cannot be had stops
        nothing, and no download or upload stands between a job's savepoint and its successor
        (downtime)."""
        outcome = Outcome(action=plan.action)
        spec = desired.deployment if desired else previous.deployment if previous else None
        if desired is not None and any(s.kind == StepKind.START_JOB for s in plan.steps):
            try:
                _restorable(plan)
                self._uploaded(desired)
            except FlinkGitopsError as error:
                outcome.result = ActionResult.FAILED
                outcome.permanent = isinstance(error, PermanentError)
                outcome.message = (f"the job could not be prepared, nothing was changed: "
                                   f"{error}")
                log.warning("%s: %s", plan.name, outcome.message)
                return outcome
        for step in plan.steps:
            try:
                match step.kind:
                    case StepKind.TRIGGER_SAVEPOINT:
                        self._savepoint(step, spec, outcome)
                    case StepKind.STOP_WITH_SAVEPOINT:
                        self._stop_with_savepoint(step, spec, outcome)
                    case StepKind.CANCEL_JOB:
                        self._cancel(step, outcome)
                    case StepKind.START_JOB:
                        self._start(step, plan.generation, desired, outcome)
                    case StepKind.DISPOSE_SAVEPOINT:
                        self.client.dispose_savepoint(step.location, sleep=self.sleep)
                        outcome.disposed.append((step.location, step.why))
            except FlinkGitopsError as error:
                outcome.result = ActionResult.FAILED
                outcome.permanent = isinstance(error, PermanentError)
                outcome.message = f"{step.describe()} failed: {error}"
                log.warning("%s: %s", plan.name, outcome.message)
                if step.kind == StepKind.START_JOB and plan.rollback and previous is not None \
                        and outcome.permanent:
                    self._roll_back(plan, step, desired, previous, outcome)
                return outcome
        outcome.message = plan.steps_text()
        if plan.rolls_back:
            start = plan.steps[-1]
            outcome.result, outcome.permanent = ActionResult.FAILED, True
            outcome.rolled_back_to = desired.commit
            outcome.message = (f"{plan.reason}; rolled back to the spec of commit "
                               f"{desired.commit[:10]}: job {outcome.started.id} runs it, "
                               f"{start.restore.describe()}")
        elif plan.settles is not None or plan.adopts is not None:
            outcome.message = plan.reason
        elif plan.stability_window and outcome.started is not None:
            outcome.result = ActionResult.IN_PROGRESS
            outcome.message += (f"; job {outcome.started.id} is watched for "
                                f"upgradeStabilityWindow {plan.stability_window}")
        return outcome

    def _roll_back(self, plan: Plan, failed: Step, desired: Release, previous: Release,
                   outcome: Outcome) -> None:
        """Starts the previously applied spec again, from the state the failed job was to get."""
        generation = plan.generation + desired.deployment.spec.max_job_creation_attempts
        restore = plan.rollback_restore or failed.restore
        step = Step(StepKind.START_JOB, job_id(plan.name, generation, previous.spec_hash),
                    restore=restore, parallelism=previous.deployment.spec.template.spec.
                    parallelism)
        try:
            self._start(step, generation, previous, outcome)
        except FlinkGitopsError as error:
            outcome.message += f"; the rollback to {previous.commit[:10]} failed too: {error}"
            return
        outcome.rolled_back_to = previous.commit
        outcome.message += (f"; rolled back to the spec of commit {previous.commit[:10]}: job "
                            f"{outcome.started.id} runs it, {restore.describe()}")

    def _uploaded(self, release: Release) -> tuple[JobProgram, str]:
        """The release's program and the id of its jar on the cluster (fetched and uploaded
        once per execution)."""
        if release.spec_hash not in self._uploads:
            program = self.fetch_program(release)
            self._uploads[release.spec_hash] = (program, self.client.upload_jar(program.jar))
        return self._uploads[release.spec_hash]

    # --- steps -------------------------------------------------------------------------------

    def _savepoint(self, step: Step, spec: Deployment | None, outcome: Outcome):
        """A savepoint of a job that keeps running (savepointTriggerNonce)."""
        result = self._attempt_savepoint(step, spec, lambda: self.client.trigger_savepoint(
            step.job_id, target_directory=self.savepoint_dir, format_type=_format(spec)))
        self._record(step, result, outcome)

    def _stop_with_savepoint(self, step: Step, spec: Deployment | None, outcome: Outcome):
        result = self._attempt_savepoint(step, spec, lambda: self.client.stop_with_savepoint(
            step.job_id, target_directory=self.savepoint_dir, drain=step.drain,
            format_type=_format(spec)))
        self._record(step, result, outcome)
        outcome.ended[step.job_id] = self._await_end(step.job_id)
        testpoints.reached(testpoints.OLD_JOB_STOPPED)

    def _record(self, step: Step, result: SavepointResult, outcome: Outcome) -> None:
        outcome.savepoints.append(Savepoint(location=result.location, origin=step.origin,
                                            created_at=self.clock(), job_id=step.job_id))
        outcome.savepoint_durations.append(result.duration_s)

    def _backoff(self, retries: int) -> float:
        return min(self.backoff_s * 2 ** min(retries, 30), self.longest_backoff_s)

    def _attempt_savepoint(self, step: Step, spec: Deployment | None,
                           trigger: Callable[[], str]) -> SavepointResult:
        """Triggers and awaits a savepoint, up to maxSavepointCreationAttempts with backoff.
        A job that meanwhile ended with a stop savepoint (an earlier stop of it completed)
        counts as that savepoint; a job that ended without one ends the attempts. A job Flink
        restarts (a TaskManager lost) is tried again once it may run again."""
        attempts = spec.spec.max_savepoint_creation_attempts if spec else 4
        attempt = 1
        while True:
            try:
                trigger_id = trigger()
                testpoints.reached(testpoints.SAVEPOINT_TRIGGERED)
                return self.client.await_savepoint(step.job_id, trigger_id, sleep=self.sleep)
            except (SavepointFailed, FlinkRequestError, FlinkUnavailable) as error:
                # (unavailable: a lost answer, or a cluster away, which the state check tells)
                log.warning("job %s: savepoint attempt %d failed: %s", step.job_id, attempt, error)
                state = self._settled_state(step.job_id)
                # a stop whose savepoint completed ends the job FINISHED, or FAILED when a task
                # failed while stopping: Flink then still keeps the savepoint, consistent
                finished = self._final_savepoint(step.job_id) \
                    if state is not None and state.terminal else None
                if finished is not None:
                    return finished
                ended = state is None or state.terminal
                if attempt == attempts or ended:
                    if ended:
                        fate = f"is {state or 'gone'}"
                    elif state == FlinkJobStatus.RUNNING:
                        fate = "keeps running untouched"
                    else:
                        fate = f"is {state}, not stopped"
                    raise SavepointFailed(
                        f"no savepoint after {attempt} attempt(s), job {step.job_id} {fate}; "
                        f"Flink said: {error}") from None
                self.sleep(self._backoff(attempt - 1))
                attempt += 1

    def _cancel(self, step: Step, outcome: Outcome):
        self.client.cancel(step.job_id)
        outcome.ended[step.job_id] = self._await_end(step.job_id)

    def _start(self, step: Step, generation: int, release: Release, outcome: Outcome):
        restored_from = self._restore_path(step.restore, outcome)
        desired = release.deployment
        template = desired.spec.template.spec
        program, jar_id = self._uploaded(release)
        configuration = program.configuration | {
            key: expand(value) for key, value in template.flink_configuration.items()}
        if desired.spec.restore_strategy.kind == RestoreStrategyKind.LATEST_STATE:
            configuration.setdefault(CHECKPOINT_RETENTION, "RETAIN_ON_CANCELLATION")
        attempts = desired.spec.max_job_creation_attempts
        for attempt in range(attempts):
            job = with_generation(step.job_id, generation + attempt)
            if self.driver_output is not None:
                self.driver_output.mark()
            try:
                try:
                    self.client.run_jar(
                        jar_id, job_id=job, entry_class=program.entry_class, args=program.args,
                        parallelism=template.parallelism, savepoint_path=restored_from,
                        allow_non_restored_state=desired.spec.restore_strategy
                        .allow_non_restored_state, configuration=configuration)
                except FlinkUnavailable:   # the answer may be lost, not the request: never
                    if self.client.job_state(job) is None:   # send it twice; ask by its id
                        raise
                    log.warning("job %s: the run request's answer was lost; Flink has the job",
                                job)
                testpoints.reached(testpoints.NEW_JOB_SUBMITTED)
                running = self.client.await_running(job, self.start_timeout_s, sleep=self.sleep)
                # (a bounded job may have run to its end before it was seen running)
                if running.state not in (FlinkJobStatus.RUNNING, FlinkJobStatus.FINISHED):
                    raise JobStartFailed(f"job {job} ended {running.state}: "
                                         f"{self.client.root_exception(job) or 'no exception'}")
            except (JobStartFailed, FlinkRequestError) as error:
                said = self.driver_output.failure() if self.driver_output else None
                if said:   # (Flink's answer names no line of the script)
                    error = JobStartFailed(f"{error}; the Python script: {redact(said)}")
                log.warning("job %s: start attempt %d failed: %s", job, attempt + 1, error)
                self._discard(job)
                if attempt + 1 == attempts:
                    raise JobStartFailed(f"the job did not start in {attempts} attempt(s); "
                                         f"last: {error}") from None
                self.sleep(self._backoff(attempt))
                continue
            outcome.started = StartedJob(job, generation + attempt, running.state,
                                         template.parallelism, restored_from, self.clock(),
                                         running.tasks.get("total", 0))
            return

    # --- state -------------------------------------------------------------------------------

    def _restore_path(self, restore: Restore, outcome: Outcome) -> str | None:
        match restore.kind:
            case RestoreKind.EMPTY:
                return None
            case RestoreKind.SAVEPOINT | RestoreKind.RETAINED_CHECKPOINT:
                return expand(restore.path)   # initialSavepointPath may name a secret
            case RestoreKind.STOP_SAVEPOINT:
                return outcome.savepoints[-1].location
            case RestoreKind.LATEST_STATE:
                checkpoint = newest_state(self.client, restore.job_id, savepoints=False)
                if checkpoint is None:
                    return restore.path
                outcome.savepoints.append(Savepoint(
                    location=checkpoint[0], origin=SavepointOrigin.RETAINED_CHECKPOINT,
                    created_at=from_millis(checkpoint[1]), job_id=restore.job_id))
                return checkpoint[0]

    def _final_savepoint(self, job: str) -> SavepointResult | None:
        """The savepoint an ended job was stopped with, as Flink recorded it."""
        savepoint = self.client.stop_savepoint(job, sleep=self.sleep)
        return SavepointResult(savepoint["external_path"], 0.0) if savepoint else None

    def _settled_state(self, job: str, wait: float = 10) -> FlinkJobStatus | None:
        """The job's status once it is RUNNING or ended: a job still stopping from an earlier
        stop-with-savepoint declines new savepoints until it has finished."""
        state = None
        for delay in poll_delays(wait):
            state = self.client.job_state(job)
            if state is None or state == FlinkJobStatus.RUNNING or state.terminal:
                return state
            self.sleep(delay)
        return state

    def _discard(self, job: str) -> None:
        """Cancels a failed start attempt that Flink still runs, so that the next attempt never
        runs beside it (DESIGN §5.2)."""
        state = self.client.job_state(job)
        if state is not None and not state.terminal:
            self.client.cancel(job)
            self._await_end(job)

    def _await_end(self, job: str) -> FlinkJobStatus:
        state = self.client.await_end(job, sleep=self.sleep)
        if not state.terminal:
            raise JobDidNotEnd(f"job {job} is still {state} after it was told to end")
        return state


def _format(spec: Deployment | None) -> str:
    """The savepoint format of `spec` (savepointFormat), as Flink's requests name it."""
    return spec.spec.savepoint_format.value if spec is not None else "CANONICAL"


def _restorable(plan: Plan) -> None:
    """StateNotRestorable when the plan's new job certainly cannot take the state it is given
    (its state check), RestoreUnavailable when the savepoint or checkpoint a START_JOB step
    restores is certainly not there: found before any job is stopped for it."""
    if plan.refused:
        raise StateNotRestorable(f"the new job cannot restore its state: "
                                 f"{plan.state_check.summary}")
    for step in plan.steps:
        restore = step.restore
        if step.kind == StepKind.START_JOB and restore.path and restore.kind in (
                RestoreKind.SAVEPOINT, RestoreKind.RETAINED_CHECKPOINT) \
                and state_absent(restore.path):
            raise RestoreUnavailable(f"the state to restore, {restore.path}, is not there (no "
                                     "_metadata)")
