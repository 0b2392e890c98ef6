"""Whether a plan's new job can restore the state it is given, found before anything stops (I/O:
Flink REST for the running job's newest state, artifact stores for the program, a JVM through
`agent.flink.compatibility`).

Checked: the START_JOB of a plan that starts a job of the desired spec from a savepoint or
checkpoint (a start, an upgrade, a redeploy, a restart for drift); a Python job only on the local
target (its script and interpreter are on this machine). Not checked: a health restart or a
rollback (the job's own state, or the applied spec's), a start from empty state.

The state checked is the one the plan restores: the savepoint or retained checkpoint it names;
for a STOP_SAVEPOINT, which does not exist before the job stops, the running job's newest
savepoint or completed checkpoint (the same job, so the same operators); for LATEST_STATE the
checkpoint Flink retained of the job, else the savepoint it falls back to. A job id carries the
digest of the spec its job runs, so state of a job of the very spec to start needs no check.
Verdicts are remembered by job digest, state location (neither changes what it names) and
allowNonRestoredState.
"""

from __future__ import annotations

from typing import Callable

from agent.errors import FlinkGitopsError, StateGone, StateUnchecked
from agent.flink.artifacts import JobProgram
from agent.flink.compatibility import check_state
from agent.flink.rest import FlinkClient
from agent.flink.storage import newest_state
from agent.job_ids import runs_spec
from agent.memo import Memo
from agent.model.compatibility import Compatibility, StateCheck
from agent.model.spec import ArtifactKind, Deployment
from agent.model.status import ActionKind, Status
from agent.plan import Plan, Restore, RestoreKind, StepKind
from agent.secrets import expand

CHECKED = {ActionKind.START, ActionKind.STATEFUL_UPGRADE, ActionKind.STATELESS_UPGRADE,
           ActionKind.REDEPLOY, ActionKind.RESTART}
MEMO_SIZE = 256            # verdicts remembered (job digest, state location, allowNonRestored…)
ATTEMPTS = 3                         # a running job's newest state asked for, at most


def state_checks() -> Memo[tuple[str, str, bool], Compatibility]:
    return Memo("state checks", MEMO_SIZE)


def state_check(decided: Plan, desired: Deployment, desired_hash: str, status: Status | None,
                client: FlinkClient | None, program: Callable[[], JobProgram], local_target: bool,
                memo: Memo[tuple[str, str, bool], Compatibility]) -> StateCheck | None:
    """The check of `decided`'s new job against the state it restores, or None when the plan
    restores none (or is not checked). `program` fetches the new job's program; `local_target`:
    the job runs on the agent's machine (a Python job is checked only there)."""
    start = next((s for s in decided.steps if s.kind == StepKind.START_JOB), None)
    if decided.action not in CHECKED or decided.health or decided.settles is not None \
            or start is None or start.restore.kind == RestoreKind.EMPTY:
        return None
    spec = desired.spec
    for attempt in range(1, ATTEMPTS + 1):
        try:
            location, origin = _restored_state(decided, start.restore, status, client)
            if runs_spec(origin or "", desired_hash):
                return StateCheck(same_job=True)
            if spec.template.spec.artifact.kind == ArtifactKind.PYTHON and not local_target:
                raise StateUnchecked("a Python job's graph is built here only for the local "
                                     "target, whose script and interpreter are on this machine")
            allow = spec.restore_strategy.allow_non_restored_state   # (not in the job digest)
            return StateCheck(memo.get_or((desired_hash, location, allow), lambda: check_state(
                _program(program), start.parallelism or 1,
                {k: expand(v) for k, v in spec.template.spec.flink_configuration.items()},
                location, allow)))
        except StateGone as error:   # a running job's checkpoint, subsumed since it was named
            if attempt == ATTEMPTS or start.restore.kind != RestoreKind.STOP_SAVEPOINT:
                return StateCheck(unchecked=str(error))
        except FlinkGitopsError as error:   # StateUnchecked, a secret not here, Flink away
            return StateCheck(unchecked=str(error))


def _restored_state(decided: Plan, restore: Restore, status: Status | None,
                    client: FlinkClient | None) -> tuple[str, str | None]:
    """The location of the state the plan's new job restores (or, for a STOP_SAVEPOINT, of state
    of the same operators), and the id of the job that left it, when known."""
    match restore.kind:
        case RestoreKind.STOP_SAVEPOINT:
            stopped = next(s.job_id for s in decided.steps
                           if s.kind == StepKind.STOP_WITH_SAVEPOINT)
            return _newest(client, stopped, savepoints=True), stopped
        case RestoreKind.LATEST_STATE:
            retained = newest_state(client, restore.job_id, savepoints=False) if client else None
            if retained is not None:
                return retained[0], restore.job_id
            if restore.path is None:
                raise StateUnchecked(f"job {restore.job_id} retained no checkpoint that the "
                                     "agent can see")
        case RestoreKind.RETAINED_CHECKPOINT:
            return expand(restore.path), restore.job_id
    known = [*status.history.savepoints, status.last_savepoint] if status else []
    saved = next((s for s in known if s is not None and s.location == restore.path), None)
    return expand(restore.path), saved.job_id if saved else None


def _newest(client: FlinkClient | None, job: str, savepoints: bool) -> str:
    if client is None:
        raise StateUnchecked(f"the cluster did not answer: job {job}'s state is not known")
    found = newest_state(client, job, savepoints)
    if found is None:
        raise StateUnchecked(f"job {job} has completed no checkpoint or savepoint yet that the "
                             "agent can read")
    return found[0]


def _program(program: Callable[[], JobProgram]) -> JobProgram:
    try:
        return program()
    except FlinkGitopsError as error:
        raise StateUnchecked(f"the new job's program could not be had: {error}") from None
