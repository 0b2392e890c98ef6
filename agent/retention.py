"""A deployment's savepoint upkeep: is a periodic savepoint due, and which savepoints does its
retention dispose (pure, given the time).

Periodic savepoints (`periodicSavepointInterval`, else its target's): due when the newest
savepoint of the running job's deployment (or, without one, the job's start) is older than the
interval plus a spread of up to SPREAD of it, fixed per deployment, so that a target's jobs do
not all take theirs in the same cycle.

Retention (`savepointRetention`, else its target's; none: every savepoint is kept): of the
savepoints the agent took (not Flink's retained checkpoints, nor any it did not take), those
beyond the newest `maxCount`, or older than `maxAge`, are disposed — never:
- the newest savepoint, and the newest state (savepoint or retained checkpoint), which a next
  start restores whatever the restore strategy;
- the savepoint or checkpoint the job of the deployment was restored from, while it runs;
- the deployment's `initialSavepointPath`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta

from agent.clock import iso, parse
from agent.model.spec import (Deployment, DeploymentTarget, SavepointRetention,
                              duration_seconds)
from agent.model.status import Savepoint, SavepointOrigin, Status, newest_first

SPREAD = 0.1   # a periodic savepoint is due up to this fraction of the interval late
TAKEN_BY_THE_AGENT = {SavepointOrigin.UPGRADE, SavepointOrigin.SUSPEND,
                      SavepointOrigin.USER_REQUEST, SavepointOrigin.PERIODIC,
                      SavepointOrigin.REDEPLOY}


@dataclass(frozen=True)
class Disposal:
    savepoint: Savepoint
    why: str


@dataclass(frozen=True)
class Upkeep:
    """What a deployment in sync is due: a periodic savepoint (why), savepoints to dispose."""

    savepoint_due: str | None = None
    disposals: tuple[Disposal, ...] = ()
    next_savepoint_at: str | None = None   # when the next periodic savepoint falls due
    next_disposal_at: str | None = None    # when the next savepoint kept grows beyond maxAge


def upkeep(desired: Deployment, target: DeploymentTarget | None, status: Status | None,
           running: bool, now: str) -> Upkeep:
    """The upkeep of `desired`'s savepoints at `now` (a status time; `running`: its job
    runs)."""
    if status is None:
        return Upkeep()
    due = _savepoint_due_at(desired, target, status) if running else None
    late = due is not None and parse(now) >= parse(due[0])
    disposals = _disposals(desired, target, status, now)
    return Upkeep(due[1] if late else None, tuple(d for d, _ in disposals if d is not None),
                  None if due is None or late else due[0],
                  min((at for _, at in disposals if at is not None), key=parse, default=None))


def _savepoint_due_at(desired: Deployment, target: DeploymentTarget | None,
                      status: Status) -> tuple[str, str] | None:
    """When the running job's next periodic savepoint falls due, and why, or None."""
    interval = desired.spec.periodic_savepoint_interval or (
        target.spec.periodic_savepoint_interval if target else None)
    if interval is None or status.job is None:
        return None
    saved = [s.created_at for s in status.history.savepoints
             if s.origin in TAKEN_BY_THE_AGENT and s.job_id == status.job.id]
    since = max([status.job.started_at, *saved])
    spread = int(hashlib.sha256(desired.name.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    after = timedelta(seconds=duration_seconds(interval) * (1 + SPREAD * spread))
    return (iso(parse(since) + after),
            f"periodicSavepointInterval {interval}: the newest savepoint is from {since}")


def _disposals(desired: Deployment, target: DeploymentTarget | None, status: Status,
               now: str) -> list[tuple[Disposal | None, str | None]]:
    """Each savepoint retention may dispose: (its disposal now, or None and when it grows
    beyond maxAge, if it has one)."""
    retention = desired.spec.savepoint_retention or (
        target.spec.savepoint_retention if target else None)
    if retention is None:
        return []
    protected = _protected(desired, status)
    kept = [s for s in status.history.savepoints if s.kept and s.origin in TAKEN_BY_THE_AGENT]
    return [(Disposal(saved, why), None) if (why := _beyond(retention, rank, saved, now))
            else (None, _aged_at(retention, saved))
            for rank, saved in enumerate(newest_first(kept)) if saved.location not in protected]


def _beyond(retention: SavepointRetention, rank: int, saved: Savepoint,
            now: str) -> str | None:
    """Why `saved`, the `rank`-th newest, is beyond `retention`, or None."""
    if retention.max_count is not None and rank >= retention.max_count:
        return f"beyond savepointRetention maxCount {retention.max_count}"
    aged_at = _aged_at(retention, saved)
    if aged_at is not None and parse(now) > parse(aged_at):
        return f"older than savepointRetention maxAge {retention.max_age}"
    return None


def _aged_at(retention: SavepointRetention, saved: Savepoint) -> str | None:
    """When `saved` grows older than `retention`'s maxAge (None: it has none)."""
    if retention.max_age is None:
        return None
    return iso(parse(saved.created_at) + timedelta(seconds=duration_seconds(retention.max_age)))


def _protected(desired: Deployment, status: Status) -> set[str]:
    """The locations a restore could still need."""
    protected = {desired.spec.initial_savepoint_path}
    for newest in (status.newest_state(checkpoints=False), status.newest_state(checkpoints=True)):
        if newest is not None:
            protected.add(newest.location)
    if status.job is not None and status.job.state.active and status.job.restored_from:
        protected.add(status.job.restored_from)
    return protected - {None}

