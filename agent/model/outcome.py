"""What executing a plan did, as it crosses from the executor to the report (pure data).

`Release` is a spec as it was at a commit (what a job is started from, or rolled back to);
`Outcome` records an action's result, savepoints, the job it started and the jobs it ended.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.model.job_states import FlinkJobStatus
from agent.model.spec import Deployment
from agent.model.status import ActionKind, ActionResult, Savepoint


@dataclass
class StartedJob:
    id: str
    generation: int
    flink_status: FlinkJobStatus
    parallelism: int
    restored_from: str | None
    started_at: str
    tasks: int                 # the job's tasks when it started: a change later is drift


@dataclass(frozen=True)
class Release:
    """A spec as it was at a commit: what a job is started from (and rolled back to)."""

    deployment: Deployment
    commit: str
    spec_hash: str


@dataclass
class Outcome:
    """What one action did: its result, the savepoints taken, the job started and those ended."""

    result: ActionResult = ActionResult.SUCCESS
    message: str = ""
    action: ActionKind | None = None
    permanent: bool = False              # FAILED and trying again unchanged will fail again
    rolled_back_to: str | None = None    # the commit whose spec runs again after a failed start
    savepoints: list[Savepoint] = field(default_factory=list)
    started: StartedJob | None = None
    ended: dict[str, FlinkJobStatus] = field(default_factory=dict)  # job id -> final status
    savepoint_durations: list[float] = field(default_factory=list)   # seconds Flink took
    disposed: list[tuple[str, str]] = field(default_factory=list)    # (location, why)
