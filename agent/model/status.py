"""The status documents the agent writes to the status branch (pure data).

`DeploymentStatus` is DESIGN §4's `deployments/<name>.yaml`; the status branch is also the
agent's durable memory, so these documents carry what the next cycle needs: the applied spec,
the job generation, the savepoints taken.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from agent.model.job_states import JobState

HISTORY_LIMIT = 20


class DeploymentState(StrEnum):
    RUNNING = "RUNNING"
    SUSPENDED = "SUSPENDED"
    CANCELLED = "CANCELLED"
    TRANSITIONING = "TRANSITIONING"
    FAILED = "FAILED"
    FINISHED = "FINISHED"


class SyncStatus(StrEnum):
    SYNCED = "SYNCED"
    OUT_OF_SYNC = "OUT_OF_SYNC"
    INVALID = "INVALID"
    BLOCKED = "BLOCKED"


class SavepointOrigin(StrEnum):
    UPGRADE = "UPGRADE"
    SUSPEND = "SUSPEND"
    USER_REQUEST = "USER_REQUEST"
    PERIODIC = "PERIODIC"                    # periodicSavepointInterval
    REDEPLOY = "REDEPLOY"                    # taken before a restore from a chosen savepoint
    RETAINED_CHECKPOINT = "RETAINED_CHECKPOINT"   # Flink's own; never disposed by the agent


class ActionKind(StrEnum):
    START = "START"
    SAVEPOINT = "SAVEPOINT"
    STATEFUL_UPGRADE = "STATEFUL_UPGRADE"
    STATELESS_UPGRADE = "STATELESS_UPGRADE"
    SUSPEND = "SUSPEND"
    CANCEL = "CANCEL"
    RESTART = "RESTART"
    DELETE = "DELETE"
    REDEPLOY = "REDEPLOY"                    # restarted from the savepoint a spec chose
    DISPOSE_SAVEPOINTS = "DISPOSE_SAVEPOINTS"   # savepoints beyond savepointRetention
    ADOPT = "ADOPT"                          # a job started outside the agent taken as it runs


class ActionResult(StrEnum):
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    IN_PROGRESS = "IN_PROGRESS"


class ProblemKind(StrEnum):
    VALIDATION = "VALIDATION"
    POLICY = "POLICY"
    EXECUTION = "EXECUTION"
    CLUSTER = "CLUSTER"
    UNHEALTHY = "UNHEALTHY"


class StatusModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class Job(StatusModel):
    id: str
    generation: int
    state: JobState
    flink_status: str = "UNKNOWN"
    restarts: int = 0
    parallelism: int
    tasks: int = 0                 # tasks when started; a different count later is drift
    restored_from: str | None = None
    started_at: str
    ended_at: str | None = None
    spec_commit: str | None = None


class Savepoint(StatusModel):
    location: str
    origin: SavepointOrigin
    created_at: str
    job_id: str | None = None
    disposed_at: str | None = None   # disposed through Flink (its files gone), and why
    disposed_why: str | None = None

    @property
    def id(self) -> str:
        """A short name for it (the dashboard shows it; `initialSavepointPath: savepoint:<id>`
        names it in a spec)."""
        return hashlib.sha256(self.location.encode()).hexdigest()[:8]

    @property
    def kept(self) -> bool:
        return self.disposed_at is None

    def named(self, name: str) -> bool:
        """Is `name` this savepoint's id (`savepoint:<id>` or `<id>`), its createdAt or its
        location?"""
        return name in (self.location, self.created_at, self.id, f"savepoint:{self.id}")


class Action(StatusModel):
    kind: ActionKind
    result: ActionResult
    message: str = ""
    at: str


class Problem(StatusModel):
    kind: ProblemKind
    message: str
    file: str | None = None
    line: int | None = None


class Event(StatusModel):
    at: str
    message: str


class History(StatusModel):
    jobs: list[Job] = Field(default_factory=list)
    savepoints: list[Savepoint] = Field(default_factory=list)
    events: list[Event] = Field(default_factory=list)


class JobInputs(StatusModel):
    """What a job is made of beyond its spec's text: the identity of its jar in a store or on a
    server (a version id, ETag, checksum, Maven build) and, for a deployment that opts in, a keyed
    digest of its secret references' values. Part of the job's digest; recorded with the applied
    spec, so a review without the store's credentials or the secrets can compare with it."""

    artifact: str | None = None
    secrets: str | None = None
    dependencies: str | None = None    # a digest of its additionalDependencies' identities

    def digest_part(self, artifact: str | None = None,
                    repo_dependencies: str | None = None) -> str | None:
        """What goes into the job's digest (`artifact`: the identity of a jar in the spec repo,
        which wins; `repo_dependencies`: those of the dependencies kept there). Without secrets
        and dependencies, the artifact's identity alone, as before they existed."""
        identity = artifact or self.artifact
        dependencies = "|".join(filter(None, (self.dependencies, repo_dependencies)))
        if dependencies:
            identity = f"{identity or ''}|dependencies:{dependencies}"
        return identity if self.secrets is None else f"{identity or ''}|secrets:{self.secrets}"


class StabilityWatch(StatusModel):
    """An upgrade whose new job is in its upgradeStabilityWindow: each cycle looks at the job
    until it has run `until` and, when it checkpoints, completed a checkpoint (by `give_up_at`),
    or rolls the deployment back to its applied spec from `restore`, the state the job got.
    The applied spec stays the one before the upgrade until then."""

    job_id: str
    action: ActionKind
    spec_hash: str          # the digest of the job it watches (the desired one)
    commit: str             # the spec commit whose upgrade it is (its commit status)
    window: str             # upgradeStabilityWindow, as the spec wrote it
    started_at: str
    until: str              # started_at + window
    give_up_at: str         # until + window: a job that checkpoints has completed none by then
    restore: str | None = None


class Status(StatusModel):
    state: DeploymentState
    sync: SyncStatus
    desired_state: str | None = None
    spec_commit: str | None = None
    spec_file: str | None = None
    target: str | None = None
    deleted: bool = False
    job: Job | None = None
    last_savepoint: Savepoint | None = None
    last_action: Action | None = None
    errors: list[Problem] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    applied_spec_hash: str | None = None
    applied_spec: dict[str, Any] | None = None
    applied_inputs: JobInputs | None = None
    failed_attempt: str | None = None     # attempt key of a spec whose action failed for good
    savepoint_trigger_nonce: int | str | None = None   # the last one a savepoint was taken for
    savepoint_redeploy_nonce: int | str | None = None  # the last one the job was restored for
    health_restarted_at: str | None = None  # the last restart its health policy made
    stability: StabilityWatch | None = None  # an upgrade still in its stability window
    adopted_job_id: str | None = None        # the job started outside the agent it took over
    deferred: str | None = None              # why its change waits: a sync window, until when
    history: History = Field(default_factory=History)

    def savepoint_named(self, name: str) -> Savepoint | None:
        """The savepoint of the history that `name` names (`Savepoint.named`), or None."""
        return next((s for s in self.history.savepoints if s.named(name)), None)

    def newest_state(self, checkpoints: bool) -> Savepoint | None:
        """The newest savepoint recorded; with `checkpoints`, retained checkpoints count too
        (LATEST_STATE), without them they do not (LATEST_SAVEPOINT)."""
        for saved in reversed([*self.history.savepoints, self.last_savepoint]):
            if saved is not None and saved.kept and (
                    checkpoints or saved.origin != SavepointOrigin.RETAINED_CHECKPOINT):
                return saved
        return None


class StatusMetadata(StatusModel):
    name: str
    labels: dict[str, str] = Field(default_factory=dict)


class DeploymentStatus(StatusModel):
    api_version: Literal["v1"] = "v1"
    kind: Literal["DeploymentStatus"] = "DeploymentStatus"
    metadata: StatusMetadata
    status: Status

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def in_desired_state(self) -> bool:
        """Where its spec wants it, in sync, and without problems: healthy on the dashboard,
        and exit code 0 of `sync`."""
        status = self.status
        if status.sync != SyncStatus.SYNCED or status.errors:
            return False
        if status.deleted:
            return status.state != DeploymentState.FAILED
        return status.state in _WANTED.get(status.desired_state, set())

    def document(self) -> dict[str, Any]:
        """The YAML/JSON form, camelCase, without empty optional fields."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


_WANTED = {"RUNNING": {DeploymentState.RUNNING, DeploymentState.FINISHED},
           "SUSPENDED": {DeploymentState.SUSPENDED}, "CANCELLED": {DeploymentState.CANCELLED}}


def bounded(items: list, limit: int = HISTORY_LIMIT) -> list:
    """The newest `limit` entries of a history list (newest last)."""
    return items[-limit:]


def newest_first(savepoints: list[Savepoint]) -> list[Savepoint]:
    """By createdAt, newest first; of equal times (a second apart at most), the one recorded
    last first."""
    return sorted(reversed(savepoints), key=lambda saved: saved.created_at, reverse=True)


def savepoint_history(savepoints: list[Savepoint]) -> list[Savepoint]:
    """Every savepoint still kept (a restore may need any: none ages out), and the newest
    HISTORY_LIMIT disposed ones, oldest first."""
    disposed = {id(s) for s in bounded([s for s in savepoints if not s.kept])}
    return [s for s in savepoints if s.kept or id(s) in disposed]
