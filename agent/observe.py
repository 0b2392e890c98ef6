"""Clusters -> what each deployment really runs (I/O: one jobs-overview request per cluster; a
target of clusters per deployment, one per deployment's running cluster).

Jobs are attributed to deployments by their id (see `job_ids`), so the agent recognises its
jobs without any memory of its own.
"""

from __future__ import annotations

from dataclasses import replace

from agent.errors import FlinkError
from agent.flink.deployment_clusters import DeploymentClusters
from agent.flink.rest import FlinkClient, JobOverview, condense_trace, root_exception_of
from agent.logs import redact
from agent.job_ids import deployment_key, generation_of
from agent.model.observation import ClusterView, ObservedJob


def observe_cluster(client: FlinkClient | DeploymentClusters) -> ClusterView:
    """Reads the cluster's jobs overview once; an unreachable cluster is a view, not an error.
    A target of clusters per deployment is read cluster by cluster: one that does not answer
    makes only its deployment unreachable."""
    if isinstance(client, DeploymentClusters):
        view = ClusterView(True)
        for name in client.deployments():
            own = client.of(name)
            try:
                _add_jobs(view, own, own.jobs())
            except FlinkError as error:
                view.unreachable[deployment_key(name)] = str(error)
        return view
    try:
        jobs = client.jobs()
    except FlinkError as error:
        return ClusterView(False, error=str(error))
    return _add_jobs(ClusterView(True), client, jobs)


def _add_jobs(view: ClusterView, client: FlinkClient, jobs: list[JobOverview]) -> ClusterView:
    for job in jobs:
        observed = ObservedJob(job.id, generation_of(job.id), job.state, job.start_time,
                               job.end_time, job.tasks.get("total", 0))
        if job.state.unhealthy:
            observed = _with_trouble(client, observed)
        view.jobs.setdefault(job.id[:16], []).append(observed)
    for group in view.jobs.values():
        group.sort(key=lambda j: j.generation)
    return view


def _with_trouble(client: FlinkClient, job: ObservedJob) -> ObservedJob:
    """An unhealthy job with its restart count and the first lines of its last exception."""
    try:
        exceptions = client.exceptions(job.id)
        restarts = client.restarts(job.id, exceptions)
        exception = condense_trace(root_exception_of(exceptions)).splitlines()
    except (FlinkError, LookupError, TypeError, ValueError, AttributeError):
        return job   # details Flink could not give, or gave in another shape: not essential
    return replace(job, restarts=restarts,
                   last_exception=redact(" | ".join(exception[:2])) or None)
