"""What the agent saw of a deployment's jobs on its cluster, as it crosses from observing to
diffing, planning and reporting (pure data).

Jobs are attributed to deployments by their id (see `job_ids`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from agent.job_ids import deployment_key, spec_digest_of
from agent.model.job_states import FlinkJobStatus
from agent.model.status import Job


@dataclass(frozen=True)
class ObservedJob:
    id: str
    generation: int
    flink_status: FlinkJobStatus
    start_time: int = -1
    end_time: int = -1
    tasks: int = 0                 # the job's number of tasks (sum of its operators' parallelism)
    restarts: int | None = None    # read for unhealthy jobs only
    last_exception: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "flink_status", FlinkJobStatus.parse(self.flink_status))

    @property
    def spec_digest(self) -> str:
        return spec_digest_of(self.id)

    @property
    def active(self) -> bool:
        """Running or on its way there or out of it: counts as 'the deployment's job runs'."""
        return self.flink_status.active


@dataclass(frozen=True)
class JobHealth:
    """A running job's health as Flink reports it, read for deployments with a health policy
    and for upgrades in their stability window."""

    restart_times: tuple[int, ...] = ()    # ms since the epoch, of the failures Flink keeps
    last_exception: str | None = None      # the first lines of the newest one
    checkpointing: bool = False            # the job checkpoints at all
    last_checkpoint: int | None = None     # ms since the epoch of the newest completed one
    restarts: int | None = None            # Flink's count of the job's restarts


@dataclass(frozen=True)
class Settling:
    """Where an upgrade in its stability window stands this cycle: stable (it ran the window and
    checkpointed), unstable (why: the deployment is rolled back), or neither (still watched)."""

    stable: bool = False
    unstable: str | None = None


@dataclass(frozen=True)
class Observation:
    """What one deployment's target shows of it."""

    reachable: bool
    jobs: tuple[ObservedJob, ...] = ()     # oldest generation first
    error: str | None = None
    assumed: bool = False                  # not observed: taken from the status branch

    @property
    def active_jobs(self) -> list[ObservedJob]:
        return [j for j in self.jobs if j.active]

    @property
    def active(self) -> ObservedJob | None:
        """The newest active job, if any."""
        active = self.active_jobs
        return active[-1] if active else None

    @property
    def latest(self) -> ObservedJob | None:
        return self.jobs[-1] if self.jobs else None

    @property
    def max_generation(self) -> int:
        return max((j.generation for j in self.jobs), default=0)


@dataclass
class ClusterView:
    """One cluster's jobs, grouped by the deployment key of their id."""

    reachable: bool
    error: str | None = None
    jobs: dict[str, list[ObservedJob]] = field(default_factory=dict)
    unreachable: dict[str, str] = field(default_factory=dict)   # a deployment key -> why: its
    #                                                  own cluster runs and does not answer

    def of(self, name: str, adopted: tuple[str, ...] = ()) -> Observation:
        """Deployment `name`'s jobs, and the `adopted` ones (jobs started outside the agent that
        it takes, or took, as the deployment's: generation 0, oldest)."""
        if not self.reachable:
            return Observation(False, error=self.error)
        if deployment_key(name) in self.unreachable:
            return Observation(False, error=self.unreachable[deployment_key(name)])
        own = tuple(self.jobs.get(deployment_key(name), ()))
        taken = tuple(replace(job, generation=0) for job_id in dict.fromkeys(adopted)
                      for job in self.jobs.get(job_id[:16], ()) if job.id == job_id
                      and job_id[:16] != deployment_key(name))
        return Observation(True, taken + own)


def assumed_from_status(job: Job | None, error: str | None) -> Observation:
    """What the status branch last saw of a deployment's job, for planning when its cluster
    does not answer (`plan` only; `sync` never acts on assumptions) (pure)."""
    if job is None:
        return Observation(True, (), error, assumed=True)
    status = FlinkJobStatus.parse(job.flink_status)
    if status == FlinkJobStatus.UNKNOWN:
        status = FlinkJobStatus.RUNNING if job.state.active else FlinkJobStatus.FINISHED
    return Observation(True, (ObservedJob(job.id, job.generation, status, tasks=job.tasks),),
                       error, assumed=True)
