"""Difference + strategies -> the action and its ordered steps (pure).

The one planner of the product: `sync` executes what it returns and `plan` shows it, so what a
reviewer approves is what runs (DESIGN §5.5). Every decision of DESIGN §2.2 lives here; the
executor only carries steps out. Job ids of new jobs are decided here too (see `job_ids`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from agent.diff import Difference
from agent.job_ids import job_id
from agent.model.compatibility import StateCheck
from agent.model.spec import Deployment, DesiredState, RestoreStrategyKind, UpgradeStrategyKind
from agent.model.job_states import JobState
from agent.model.status import (ActionKind, DeploymentState, DeploymentStatus, SavepointOrigin,
                                StabilityWatch, Status)
from agent.model.observation import Observation, Settling
from agent.model.verdict import WindowVerdict
from agent.retention import Upkeep

# the actions whose new job runs its upgradeStabilityWindow before they count as done
WATCHED = {ActionKind.STATEFUL_UPGRADE, ActionKind.STATELESS_UPGRADE, ActionKind.REDEPLOY}


class StepKind(StrEnum):
    TRIGGER_SAVEPOINT = "TRIGGER_SAVEPOINT"
    STOP_WITH_SAVEPOINT = "STOP_WITH_SAVEPOINT"
    CANCEL_JOB = "CANCEL_JOB"
    START_JOB = "START_JOB"
    DISPOSE_SAVEPOINT = "DISPOSE_SAVEPOINT"


class RestoreKind(StrEnum):
    EMPTY = "EMPTY"                          # start with empty state
    SAVEPOINT = "SAVEPOINT"                  # a savepoint known when planning
    RETAINED_CHECKPOINT = "RETAINED_CHECKPOINT"  # a retained checkpoint known when planning
    STOP_SAVEPOINT = "STOP_SAVEPOINT"        # the savepoint an earlier step of this plan takes
    LATEST_STATE = "LATEST_STATE"            # newest of `path` and job_id's retained checkpoint


@dataclass(frozen=True)
class Restore:
    kind: RestoreKind
    path: str | None = None
    job_id: str | None = None

    def describe(self) -> str:
        match self.kind:
            case RestoreKind.EMPTY:
                return "empty state"
            case RestoreKind.SAVEPOINT:
                return f"restored from savepoint {self.path}"
            case RestoreKind.RETAINED_CHECKPOINT:
                return f"restored from retained checkpoint {self.path} of job {self.job_id}"
            case RestoreKind.STOP_SAVEPOINT:
                return "restored from the savepoint taken when stopping"
            case RestoreKind.LATEST_STATE:
                fallback = (f" (savepoint {self.path} if none was retained)" if self.path
                            else " (empty state if none was retained)")
                return (f"restored from the latest retained checkpoint of job {self.job_id}"
                        f"{fallback}")


@dataclass(frozen=True)
class Step:
    kind: StepKind
    job_id: str
    drain: bool = False
    origin: SavepointOrigin | None = None    # STOP_WITH_SAVEPOINT: why the savepoint is taken
    restore: Restore | None = None           # START_JOB: the state the job starts from
    parallelism: int | None = None           # START_JOB
    location: str | None = None              # DISPOSE_SAVEPOINT: the savepoint, and why
    why: str = ""

    def describe(self) -> str:
        match self.kind:
            case StepKind.DISPOSE_SAVEPOINT:
                return f"dispose savepoint {self.location} ({self.why})"
            case StepKind.TRIGGER_SAVEPOINT:
                return f"take a savepoint of job {self.job_id} (it keeps running)"
            case StepKind.STOP_WITH_SAVEPOINT:
                how = "stop with savepoint and drain" if self.drain else "stop with savepoint"
                return f"{how} job {self.job_id}"
            case StepKind.CANCEL_JOB:
                return f"cancel job {self.job_id} (no savepoint)"
            case StepKind.START_JOB:
                return (f"start job {self.job_id} with parallelism {self.parallelism}, "
                        f"{self.restore.describe()}")


@dataclass(frozen=True)
class Plan:
    name: str
    action: ActionKind | None            # None: nothing to do, or an upgrade left pending
    steps: tuple[Step, ...] = ()
    reason: str = ""
    pending: bool = False                # upgradeStrategy NONE: a change waits for the next start
    generation: int = 0                  # generation of the job START_JOB submits first
    rollback: bool = False               # a new job that cannot start: start the applied spec
    blocked: bool = False                # a policy denied the change
    rollback_restore: Restore | None = None   # the state a rollback starts from (default: the
                                              # state the failed job was to get)
    upkeep: bool = False                 # a periodic savepoint or disposal: its failure is
                                         # reported, never the deployment's failure
    health: bool = False                 # a restart the health policy asked for
    stability_window: str | None = None  # the new job is then watched this long (WATCHED)
    settles: StabilityWatch | None = None   # the watch this plan ends: stable (no steps), or
                                            # unstable (the applied spec started again)
    state_check: StateCheck | None = None   # whether its new job can restore its state
                                            # (`agent.state_check`; None: nothing to check)
    adopts: str | None = None            # ADOPT: the running job taken as the deployment's
    deferred: WindowVerdict | None = None   # a change a sync window keeps from running now
    overrides: str | None = None         # the window `sync --override-window` acts inside

    @property
    def refused(self) -> bool:
        """Its new job certainly cannot restore the state it is given: nothing is done."""
        return self.state_check is not None and self.state_check.refuses

    @property
    def rolls_back(self) -> bool:
        """An upgrade that did not settle in its stability window, rolled back."""
        return self.settles is not None and any(s.kind == StepKind.START_JOB for s in self.steps)

    @property
    def action_name(self) -> str | None:
        """The action as reviewers read it: a kind, UPGRADE_PENDING, BLOCKED, or None."""
        if self.blocked:
            return "BLOCKED"
        if self.deferred is not None:
            return "DEFERRED"
        if self.pending:
            return "UPGRADE_PENDING"
        return self.action.value if self.action else None

    def document(self) -> dict:
        """The plan as data (for policies and `plan --format json`)."""
        return {"action": self.action_name, "state": self.state, "reason": self.reason,
                "rollback": self.rollback,
                **({"stabilityWindow": self.stability_window} if self.stability_window else {}),
                **({"deferred": self.deferred.message()} if self.deferred else {}),
                **({"overridesWindow": self.overrides} if self.overrides else {}),
                **({"stateCheck": self.state_check.document()} if self.state_check else {}),
                "steps": [{"kind": s.kind.value, "jobId": s.job_id, "description": s.describe(),
                           **({"restore": s.restore.kind.value} if s.restore else {}),
                           **({"restorePath": s.restore.path} if s.restore and s.restore.path
                              else {}),
                           **({"parallelism": s.parallelism} if s.parallelism else {}),
                           **({"savepoint": s.location, "why": s.why} if s.location else {}),
                           **({"drain": True} if s.drain else {})} for s in self.steps]}

    @property
    def changes_anything(self) -> bool:
        return self.action is not None

    @property
    def state(self) -> str:
        """What happens to the job's state: UNCHANGED, SAVED (a savepoint, the job stops or
        keeps running), DISCARDED, EMPTY (a first start), RESTORED_FROM_SAVEPOINT or
        RESTORED_FROM_CHECKPOINT."""
        start = next((s for s in self.steps if s.kind == StepKind.START_JOB), None)
        ends_a_job = any(s.kind != StepKind.START_JOB for s in self.steps)
        if start is None:
            if all(s.kind == StepKind.DISPOSE_SAVEPOINT for s in self.steps):
                return "UNCHANGED"
            saved = any(s.kind != StepKind.CANCEL_JOB for s in self.steps)
            return "SAVED" if saved else "DISCARDED"
        match start.restore.kind:
            case RestoreKind.EMPTY:
                return "DISCARDED" if ends_a_job else "EMPTY"
            case RestoreKind.LATEST_STATE | RestoreKind.RETAINED_CHECKPOINT:
                return "RESTORED_FROM_CHECKPOINT"
            case _:
                return "RESTORED_FROM_SAVEPOINT"

    def steps_text(self) -> str:
        return "; then ".join(s.describe() for s in self.steps) or "no Flink call needed"

    def summary(self) -> str:
        if self.deferred is not None:
            return self.reason
        if self.pending:
            return "upgrade pending (upgradeStrategy NONE): the running job is left untouched"
        if self.action is None:
            return "nothing to do"
        if self.refused:
            return f"{self.action.value} refused, nothing changes: state {self.state_check.summary}"
        fallback = ("; if the new job cannot start, the previous spec is started again from "
                    "the same state" if self.rollback else "")
        watched = (f"; the new job is then watched for upgradeStabilityWindow "
                   f"{self.stability_window}" if self.stability_window else "")
        if self.settles is not None or self.adopts is not None:
            return f"{self.action.value}: {self.reason}" + (
                f"; {self.steps_text()}" if self.steps else "")
        return f"{self.action.value}: {self.steps_text()}{fallback}{watched}"


def heals(decided: Plan, diff: Difference) -> bool:
    """The plan only starts again what ran: a health restart, or a restart of the applied spec
    (a job that died or drifted; a change of the spec is not one)."""
    return decided.health or (decided.action == ActionKind.RESTART and not diff.job_changed)


def held(name: str, reason: str, blocked: bool = False) -> Plan:
    """No action for a deployment whose spec is refused (`blocked`: by a policy)."""
    return Plan(name, None, reason=reason, blocked=blocked)


def plan(diff: Difference, desired: Deployment | None, previous: DeploymentStatus | None,
         observation: Observation, rollback: bool = True, upkeep: Upkeep = Upkeep(),
         unhealthy: str | None = None, settling: Settling | None = None) -> Plan:
    """The action that brings one deployment to its desired state, and its steps in order.

    With `rollback`, an upgrade whose new job cannot start starts the applied spec again. A job
    `unhealthy` by its health policy (why), whose policy restarts it, is restarted from its newest
    state. An upgrade in its stability window is ended by its `settling`: stable, or rolled back.
    A deployment with nothing else to do gets its `upkeep`: a periodic savepoint, else the
    disposal of savepoints beyond its retention."""
    decided = _plan(diff, desired, previous, observation, rollback, upkeep, unhealthy, settling)
    if decided.action is not None or decided.pending or not observation.reachable \
            or desired is None or not upkeep.disposals:
        return decided
    return Plan(diff.name, ActionKind.DISPOSE_SAVEPOINTS, tuple(
        Step(StepKind.DISPOSE_SAVEPOINT, d.savepoint.job_id or "", location=d.savepoint.location,
             why=d.why) for d in upkeep.disposals), "savepoints beyond savepointRetention",
        upkeep=True)


def _plan(diff: Difference, desired: Deployment | None, previous: DeploymentStatus | None,
          observation: Observation, rollback: bool, upkeep: Upkeep,
          unhealthy: str | None, settling: Settling | None) -> Plan:
    name = diff.name
    if not observation.reachable:
        return Plan(name, None, reason=f"target unreachable: {observation.error}")
    extra = tuple(Step(StepKind.CANCEL_JOB, j.id) for j in observation.active_jobs[:-1])
    active = observation.active
    if desired is None:
        return _plan_deletion(name, previous, active, extra)
    failed = (previous is not None and previous.status.failed_attempt is not None
              and previous.status.failed_attempt == desired.attempt_key(diff.desired_hash))
    if failed and not diff.drift:
        return Plan(name, None, extra, reason="the last attempt to apply this spec failed; push "
                                              "a fix, or change restartNonce to try again")
    if diff.adopt is not None:
        return Plan(name, ActionKind.ADOPT, reason=f"job {diff.adopt}, started outside the "
                    "agent, becomes this deployment's job as it runs (no Flink call); later "
                    "changes upgrade it like any other", adopts=diff.adopt)
    state = desired.spec.state
    if state == DesiredState.SUSPENDED:
        return _stop_or_nothing(name, active, extra, ActionKind.SUSPEND,
                                Step(StepKind.STOP_WITH_SAVEPOINT, active.id if active else "",
                                     drain=desired.drain_on_stop, origin=SavepointOrigin.SUSPEND),
                                "desired state SUSPENDED")
    if state == DesiredState.CANCELLED:
        return _stop_or_nothing(name, active, extra, ActionKind.CANCEL,
                                Step(StepKind.CANCEL_JOB, active.id if active else ""),
                                "desired state CANCELLED")
    generation = _next_generation(previous, observation)
    watch = previous.status.stability if previous is not None else None
    if watch is not None and watch.spec_hash == diff.desired_hash and settling is not None:
        return _settle(diff, previous, observation, watch, settling, generation)
    if watch is not None and watch.spec_hash != diff.desired_hash and active is not None \
            and active.id == watch.job_id and not diff.job_changed:   # back to the applied spec
        return _replace(diff, desired, previous, observation, active, extra, generation, None,
                        f"the spec changed while job {watch.job_id} was in its stability "
                        "window", rollback)
    if diff.redeploy_requested:
        return _redeploy(diff, desired, previous, observation, active, extra, generation,
                         rollback)
    if active is None:
        return _plan_start(diff, desired, previous, observation, extra, generation)
    if diff.job_changed:
        changed = "; ".join(str(f) for f in diff.fields) or "the job changed"
        return _replace(diff, desired, previous, observation, active, extra, generation,
                        ActionKind.RESTART if diff.restart_only else None, changed, rollback)
    if extra:
        return Plan(name, ActionKind.RESTART, extra, reason=diff.drift or "", generation=0)
    if diff.drift:  # the job runs, but not as the agent started it: restarted by the same rules
        return _replace(diff, desired, previous, observation, active, extra, generation,
                        ActionKind.RESTART, diff.drift, rollback=False)
    if unhealthy:
        return _health_restart(diff, desired, previous, active, generation, unhealthy)
    if diff.savepoint_requested:
        return Plan(name, ActionKind.SAVEPOINT, (Step(
            StepKind.TRIGGER_SAVEPOINT, active.id, origin=SavepointOrigin.USER_REQUEST),),
            "savepointTriggerNonce changed")
    if upkeep.savepoint_due:
        return Plan(name, ActionKind.SAVEPOINT, (Step(
            StepKind.TRIGGER_SAVEPOINT, active.id, origin=SavepointOrigin.PERIODIC),),
            upkeep.savepoint_due, upkeep=True)
    return Plan(name, None, reason="in sync")


def _settle(diff, previous, observation, watch: StabilityWatch, settling: Settling,
            generation: int) -> Plan:
    """An upgrade in its stability window: stable (the applied spec becomes the new one, no
    Flink call), unstable (every job of the deployment cancelled, and the applied spec started
    again from the state the new job got), or watched on (nothing)."""
    if settling.stable:
        return Plan(diff.name, watch.action, (), f"job {watch.job_id} ran its "
                    f"upgradeStabilityWindow {watch.window} (and completed a checkpoint, when "
                    "it checkpoints)", settles=watch)
    if settling.unstable is None:
        return Plan(diff.name, None, reason=f"job {watch.job_id} is in its upgradeStabilityWindow "
                                            f"{watch.window} until {watch.until}")
    applied = previous.status
    restore = Restore(RestoreKind.SAVEPOINT, watch.restore) if watch.restore \
        else Restore(RestoreKind.EMPTY)
    template = ((applied.applied_spec or {}).get("spec") or {}).get("template") or {}
    start = Step(StepKind.START_JOB, job_id(diff.name, generation, applied.applied_spec_hash),
                 restore=restore, parallelism=(template.get("spec") or {}).get("parallelism"))
    return Plan(diff.name, watch.action, tuple(
        Step(StepKind.CANCEL_JOB, j.id) for j in observation.active_jobs) + (start,),
        settling.unstable, generation=generation, settles=watch)


def _health_restart(diff, desired, previous, active, generation, unhealthy: str) -> Plan:
    """A job its health policy finds unhealthy, cancelled (a failing job may not complete a
    savepoint) and started again from its newest state: with LATEST_STATE its retained
    checkpoint when it left one (only such jobs retain them when cancelled), else the newest
    savepoint (upgradeStrategy NONE: reported only)."""
    if desired.spec.upgrade_strategy.kind == UpgradeStrategyKind.NONE:
        return Plan(diff.name, None, reason=f"health policy: {unhealthy} (upgradeStrategy NONE: "
                                            "not restarted)")
    strategy = desired.spec.restore_strategy.kind
    latest_state = strategy == RestoreStrategyKind.LATEST_STATE
    saved = previous.status.newest_state(checkpoints=latest_state) if previous else None
    if strategy == RestoreStrategyKind.NONE:
        restore = Restore(RestoreKind.EMPTY)
    elif latest_state:
        restore = Restore(RestoreKind.LATEST_STATE, saved.location if saved else None, active.id)
    else:
        restore = Restore(RestoreKind.SAVEPOINT, saved.location) if saved \
            else Restore(RestoreKind.EMPTY)
    start = _start_step(desired, diff.desired_hash, generation, restore)
    return Plan(diff.name, ActionKind.RESTART, (Step(StepKind.CANCEL_JOB, active.id), start),
                f"health policy: {unhealthy}; started again {restore.describe()}",
                generation=generation, health=True)


def _redeploy(diff, desired, previous, observation, active, extra, generation,
              rollback: bool) -> Plan:
    """The job restarted from the savepoint `initialSavepointPath` chooses, whatever the restore
    strategy says: a running job is replaced per its upgrade strategy (a STATEFUL one stopped
    with a savepoint, kept, and what a rollback restores)."""
    chosen = Restore(RestoreKind.SAVEPOINT,
                     chosen_savepoint(desired, previous.status if previous else None))
    reason = (f"savepointRedeployNonce changed: restored from savepoint {chosen.path} "
              "(initialSavepointPath), whatever the restore strategy")
    if active is None:
        return Plan(diff.name, ActionKind.REDEPLOY, extra + (
            _start_step(desired, diff.desired_hash, generation, chosen),), reason,
            generation=generation)
    return _replace(diff, desired, previous, observation, active, extra, generation,
                    ActionKind.REDEPLOY, reason, rollback, chosen)


def naming_problem(desired: Deployment, status: Status | None) -> str | None:
    """Why `initialSavepointPath`, written as a savepoint's name (`savepoint:<id>`), names none
    a restore can use, or None."""
    written = desired.spec.initial_savepoint_path or ""
    if not written.startswith("savepoint:"):
        return None
    named = status.savepoint_named(written) if status is not None else None
    if named is None:
        return (f"initialSavepointPath {written}: no savepoint of this deployment has that id "
                "(its dashboard page lists them)")
    if not named.kept:
        return (f"initialSavepointPath {written}: savepoint {named.location} was disposed at "
                f"{named.disposed_at} ({named.disposed_why})")
    return None


def chosen_savepoint(desired: Deployment, status: Status | None) -> str | None:
    """The location `initialSavepointPath` names: a path, or a savepoint of the deployment's
    history by its id (`savepoint:<id>`) or createdAt, as the dashboard shows them."""
    written = desired.spec.initial_savepoint_path
    if written is None or status is None:
        return written
    named = status.savepoint_named(written)
    return named.location if named is not None else written


def _replace(diff, desired, previous, observation, active, extra, generation,
             kind: ActionKind | None, reason: str, rollback: bool,
             chosen: Restore | None = None) -> Plan:
    """The running job replaced by a new one of the desired spec, per its upgradeStrategy;
    `kind` names the action when it is not an upgrade. A `chosen` state (a redeploy) is
    restored instead of the strategy's, which a rollback then restores."""
    match desired.spec.upgrade_strategy.kind:
        case UpgradeStrategyKind.NONE:
            return Plan(diff.name, None, extra, reason=reason, pending=True)
        case UpgradeStrategyKind.STATEFUL:
            first = Step(StepKind.STOP_WITH_SAVEPOINT, active.id, drain=desired.drain_on_stop,
                         origin=SavepointOrigin.REDEPLOY if chosen else SavepointOrigin.UPGRADE)
            restore = _restore_after_stop(desired)
            kind = kind or ActionKind.STATEFUL_UPGRADE
        case UpgradeStrategyKind.STATELESS:
            first = Step(StepKind.CANCEL_JOB, active.id)
            restore = _restore_at_start(desired, previous, observation, first=False)
            kind = kind or ActionKind.STATELESS_UPGRADE
    start = _start_step(desired, diff.desired_hash, generation, chosen or restore)
    return Plan(diff.name, kind, extra + (first, start), reason, generation=generation,
                rollback=rollback, rollback_restore=restore if chosen else None,
                stability_window=desired.spec.upgrade_stability_window if kind in WATCHED
                else None)


def _plan_start(diff, desired, previous, observation, extra, generation) -> Plan:
    first = not diff.applied
    start = _start_step(desired, diff.desired_hash, generation,
                        _restore_at_start(desired, previous, observation, first=first))
    if diff.drift:
        return Plan(diff.name, ActionKind.RESTART, extra + (start,), diff.drift,
                    generation=generation)
    if _finished_by_itself(previous) and not diff.job_changed:
        return Plan(diff.name, None, reason="the job finished by itself")
    reason = "first start" if first else "desired state RUNNING"
    return Plan(diff.name, ActionKind.START, extra + (start,), reason, generation=generation)


def _finished_by_itself(previous: DeploymentStatus | None) -> bool:
    """The deployment's job ended FINISHED with no savepoint of the agent's stopping it (a
    bounded job): so recorded, or so seen by this cycle's recovery (`recover._record_end`)."""
    job = previous.status.job if previous is not None else None
    return previous is not None and (previous.status.state == DeploymentState.FINISHED
                                     or job is not None and job.state == JobState.FINISHED)


def _plan_deletion(name, previous, active, extra) -> Plan:
    if previous is None or previous.status.deleted:
        return Plan(name, None, reason="deleted")
    steps = extra
    if active is not None:
        steps += (Step(StepKind.STOP_WITH_SAVEPOINT, active.id, origin=SavepointOrigin.SUSPEND),)
    return Plan(name, ActionKind.DELETE, steps,
                "spec deleted: the job is suspended with a savepoint, never cancelled")


def _stop_or_nothing(name, active, extra, action, step, reason) -> Plan:
    if active is None:
        return Plan(name, ActionKind.CANCEL if extra else None, extra, reason)
    return Plan(name, action, extra + (step,), reason)


def _start_step(desired: Deployment, desired_hash: str, generation: int,
                restore: Restore) -> Step:
    return Step(StepKind.START_JOB, job_id(desired.name, generation, desired_hash), restore=restore,
                parallelism=desired.spec.template.spec.parallelism)


def _restore_after_stop(desired: Deployment) -> Restore:
    if desired.spec.restore_strategy.kind == RestoreStrategyKind.NONE:
        return Restore(RestoreKind.EMPTY)
    return Restore(RestoreKind.STOP_SAVEPOINT)


def _restore_at_start(desired: Deployment, previous: DeploymentStatus | None,
                      observation: Observation, first: bool) -> Restore:
    """The state a job starts from when no savepoint is taken on the way (DESIGN §2.2)."""
    strategy = desired.spec.restore_strategy.kind
    if first and desired.spec.initial_savepoint_path and strategy != RestoreStrategyKind.NONE:
        return Restore(RestoreKind.SAVEPOINT, chosen_savepoint(
            desired, previous.status if previous else None))
    if strategy == RestoreStrategyKind.NONE:
        return Restore(RestoreKind.EMPTY)
    status = previous.status if previous is not None else None
    latest_state = strategy == RestoreStrategyKind.LATEST_STATE
    saved = status.newest_state(checkpoints=latest_state) if status is not None else None
    latest_job = observation.latest.id if observation.latest else None
    stopped_with_savepoint = (status is not None and status.last_savepoint is not None
                              and status.last_savepoint.job_id == latest_job)
    if latest_state and latest_job and not stopped_with_savepoint:
        # the newest state of a job that was cancelled or failed is its retained checkpoint
        return Restore(RestoreKind.LATEST_STATE, saved.location if saved else None, latest_job)
    if saved is None:
        return Restore(RestoreKind.EMPTY)
    if saved.origin == SavepointOrigin.RETAINED_CHECKPOINT:   # e.g. of a job the cluster lost
        return Restore(RestoreKind.RETAINED_CHECKPOINT, saved.location, saved.job_id)
    return Restore(RestoreKind.SAVEPOINT, saved.location)


def _next_generation(previous: DeploymentStatus | None, observation: Observation) -> int:
    known = [observation.max_generation]
    if previous is not None:
        known += [j.generation for j in previous.status.history.jobs]
        if previous.status.job is not None:
            known.append(previous.status.job.generation)
    return max(known) + 1
