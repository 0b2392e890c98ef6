"""Clusters -> what each deployment really runs (I/O: one jobs-overview request per cluster).

Jobs are attributed to deployments by their id (see `job_ids`), so the agent recognises its
jobs without any memory of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from agent.errors import FlinkError
from agent.flink.rest import TERMINAL_JOB_STATES, FlinkClient, condense_trace
from agent.logs import redact
from agent.job_ids import deployment_key, generation_of, spec_digest_of
from agent.model.status import Job, JobState


UNHEALTHY_STATES = frozenset({"RESTARTING", "FAILING"})


@dataclass(frozen=True)
class ObservedJob:
    id: str
    generation: int
    flink_status: str
    start_time: int = -1
    end_time: int = -1
    tasks: int = 0                 # the job's number of tasks (sum of its operators' parallelism)
    restarts: int | None = None    # read for unhealthy jobs only
    last_exception: str | None = None

    @property
    def spec_digest(self) -> str:
        return spec_digest_of(self.id)

    @property
    def active(self) -> bool:
        """Running or on its way there or out of it: counts as 'the deployment's job runs'."""
        return self.flink_status not in TERMINAL_JOB_STATES


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

    def of(self, name: str) -> Observation:
        if not self.reachable:
            return Observation(False, error=self.error)
        return Observation(True, tuple(self.jobs.get(deployment_key(name), ())))


def assumed_from_status(job: Job | None, error: str | None) -> Observation:
    """What the status branch last saw of a deployment's job, for planning when its cluster
    does not answer (`plan` only; `sync` never acts on assumptions) (pure)."""
    if job is None:
        return Observation(True, (), error, assumed=True)
    running = job.state in (JobState.STARTING, JobState.STARTED, JobState.TERMINATING)
    status = job.flink_status if job.flink_status != "UNKNOWN" else (
        "RUNNING" if running else "FINISHED")
    return Observation(True, (ObservedJob(job.id, job.generation, status, tasks=job.tasks),),
                       error, assumed=True)


def observe_cluster(client: FlinkClient) -> ClusterView:
    """Reads the cluster's jobs overview once; an unreachable cluster is a view, not an error."""
    try:
        jobs = client.jobs()
    except FlinkError as error:
        return ClusterView(False, error=str(error))
    view = ClusterView(True)
    for job in jobs:
        observed = ObservedJob(job.id, generation_of(job.id), job.state, job.start_time,
                               job.end_time, job.tasks.get("total", 0))
        if job.state in UNHEALTHY_STATES:
            observed = _with_trouble(client, observed)
        view.jobs.setdefault(job.id[:16], []).append(observed)
    for group in view.jobs.values():
        group.sort(key=lambda j: j.generation)
    return view


def _with_trouble(client: FlinkClient, job: ObservedJob) -> ObservedJob:
    """An unhealthy job with its restart count and the first lines of its last exception."""
    try:
        restarts = client.restarts(job.id)
        exception = condense_trace(client.root_exception(job.id)).splitlines()
    except (FlinkError, LookupError, TypeError, ValueError, AttributeError):
        return job   # details Flink could not give, or gave in another shape: not essential
    return replace(job, restarts=restarts,
                   last_exception=redact(" | ".join(exception[:2])) or None)
