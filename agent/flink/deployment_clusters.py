"""A local target in application mode, as the agent's Flink: each deployment's own cluster
behind one deployment's `FlinkClient` (I/O: processes, files, HTTP).

`DeploymentClusters` is the target: it knows the deployments whose clusters live in the work
dir (`agent.flink.application`), and gives each one's client (`of`). A `DeploymentCluster` is a
`FlinkClient` whose address is that of the deployment's running cluster, found again at every
request (an upgrade ends one cluster and starts the next). What differs from a session cluster:

- `run_jar` starts the deployment's cluster, sized by the spec its job id names (`sizes`:
  the job digest's 8 hex digits -> `ClusterSize`), running the job from the savepoint given. A
  cluster of the deployment that still runs is ended first, once its job has ended (one whose
  job runs is refused: the agent never runs two clusters of a deployment);
- `await_end`: once the job has ended, its cluster is retired: the job's last overview and the
  savepoint it was stopped with are written to `ended.json` in the deployment's home, then its
  processes are ended. A retired job is still seen (`jobs`, `stop_savepoint`), as Flink shows a
  session cluster's ended jobs, so an agent killed after it ended a cluster recovers as after
  any interrupted action;
- `checkpoints` of a job whose cluster is gone answers from its checkpoint directory (its newest
  retained checkpoint), and `dispose_savepoint` without a cluster deletes the savepoint's files;
- `retire_idle` (after each sync) ends the clusters that run no job any more: a bounded job that
  finished, a job that failed for good, a JobManager that died and left its TaskManagers.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import fsspec

from agent.errors import CheckpointDirUnreadable, FlinkError, FlinkRequestError, LocalClusterError
from agent.flink import application, local
from agent.flink.rest import FlinkClient, JobOverview, job_overview, root_exception_of
from agent.flink.storage import newest_checkpoint
from agent.job_ids import spec_digest_of
from agent.model.job_states import FlinkJobStatus
from agent.model.resources import ClusterSize

ENDED_KEPT = 8                     # retired jobs remembered per deployment
MAX_EXCEPTIONS_KEPT = 64 * 1024    # of a failed job's exceptions, as JSON
_ENDED = "ended.json"


@dataclass
class DeploymentCluster(FlinkClient):
    """One deployment's own cluster, as a FlinkClient (see the module)."""

    url: str = ""
    workdir: Path = Path(".")
    deployment: str = ""
    sizes: dict[str, ClusterSize] = field(default_factory=dict)
    cache_dir: Path | None = None   # where memory flags are remembered (`local.memory_flags`)

    @property
    def home(self) -> Path:
        return application.home(self.workdir, self.deployment)

    def running(self) -> application.ApplicationCluster | None:
        """The deployment's cluster when its JobManager runs."""
        cluster = application.recorded(self.workdir, self.deployment)
        return cluster if cluster is not None and application.JOBMANAGER in cluster.alive() \
            else None

    # --- reading -----------------------------------------------------------------------------

    def version(self) -> str:
        return local.flink_version()

    def jobs(self) -> list[JobOverview]:
        """The running cluster's jobs (FlinkUnavailable when its JobManager does not answer),
        then the retired ones."""
        listed = super().jobs() if self.running() is not None else []
        seen = {job.id for job in listed}
        return listed + [job for job in self._retired() if job.id not in seen]

    def stop_savepoint(self, job_id: str, wait: float = 10,
                       sleep: Callable[[float], None] = time.sleep) -> dict[str, Any] | None:
        retired = self._retired_entry(job_id)
        if retired is not None:
            return retired.get("savepoint")
        return super().stop_savepoint(job_id, wait, sleep)

    def exceptions(self, job_id: str) -> dict[str, Any]:
        retired = self._retired_entry(job_id)
        if retired is not None:
            return retired.get("exceptions") or {}
        return super().exceptions(job_id)

    def checkpoints(self, job_id: str) -> dict[str, Any]:
        try:
            return super().checkpoints(job_id)
        except FlinkRequestError:
            if self.running() is not None and self._retired_entry(job_id) is None:
                raise
        latest: dict[str, Any] = {}
        try:
            found = newest_checkpoint(self._checkpoint_dir(), job_id)
        except CheckpointDirUnreadable:
            found = None
        if found is not None:
            latest["completed"] = {"external_path": found.location,
                                   "latest_ack_timestamp": int((found.modified or 0) * 1000)}
        retired = self._retired_entry(job_id) or {}
        if retired.get("savepoint"):
            latest["savepoint"] = retired["savepoint"]
        return {"latest": latest}

    def configuration(self) -> dict[str, str]:
        return {"execution.checkpointing.dir": self._checkpoint_dir(),
                "execution.checkpointing.savepoint-dir": (self.home / "savepoints").as_uri()}

    def jars(self) -> list[dict[str, Any]]:
        return []

    # --- changing ----------------------------------------------------------------------------

    def upload_jar(self, jar: Path) -> str:
        """Nothing is uploaded: the cluster is started with the jar (its path is its id)."""
        return str(jar)

    def run_jar(self, jar_id: str, *, job_id: str, entry_class: str | None, args: list[str],
                parallelism: int, savepoint_path: str | None, allow_non_restored_state: bool,
                configuration: dict[str, str]) -> str:
        """Starts the deployment's cluster running the job (see the module)."""
        size = self.sizes.get(spec_digest_of(job_id))
        if size is None:
            raise LocalClusterError(f"the size of deployment {self.deployment}'s cluster for "
                                    f"job {job_id} is not known")
        self._end_cluster()
        jar = self.home / "job" / Path(jar_id).name
        jar.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(jar_id, jar)
        options = {**size.options, **configuration, "parallelism.default": str(parallelism),
                   "execution.state-recovery.claim-mode": "NO_CLAIM",
                   "execution.submit-failed-job-on-application-error": "true"}
        application.start(self.workdir, application.Application(
            self.deployment, jar, job_id, entry_class, tuple(args), savepoint_path,
            allow_non_restored_state, size.taskmanagers, size.slots, options,
            size.log4j(local.LOG4J_PROPERTIES), self.cache_dir))
        return job_id

    def await_end(self, job_id: str, timeout: float = 120,
                  sleep: Callable[[float], None] = time.sleep) -> FlinkJobStatus:
        """The job's status once it ended, its cluster then retired."""
        state = super().await_end(job_id, timeout, sleep)
        if state.terminal:
            self._end_cluster()
        return state

    def retire_if_idle(self) -> bool:
        """Ends the deployment's cluster when it runs no job any more: its JobManager gone (its
        TaskManagers left behind), or every job of it ended (their last records kept). True
        when it was ended; a cluster that does not answer is looked at again next time."""
        try:
            return self._end_cluster(idle_only=True)
        except LocalClusterError:
            return False

    def dispose_savepoint(self, location: str, timeout: float = 600,
                          sleep: Callable[[float], None] = time.sleep) -> None:
        if self.running() is not None:
            return super().dispose_savepoint(location, timeout, sleep)
        fs, path = fsspec.core.url_to_fs(location)
        path = path.rstrip("/")
        if fs.exists(f"{path}/_metadata"):
            fs.rm(path, recursive=True)

    # --- plumbing ----------------------------------------------------------------------------

    def _request(self, method: str, path: str, timeout: float | None = None,
                 expect: type = dict, **kwargs) -> Any:
        cluster = self.running()
        if cluster is None:
            raise FlinkRequestError(f"deployment {self.deployment} has no running cluster to ask "
                                    f"{method} {path}", status=404)
        self.url = cluster.url
        return super()._request(method, path, timeout, expect, **kwargs)

    def idle(self) -> bool:
        """Whether the deployment's cluster runs no job any more (see `retire_if_idle`)."""
        try:
            return self._endable(idle_only=True) is not None
        except LocalClusterError:
            return False

    def _end_cluster(self, idle_only: bool = False) -> bool:
        """Ends the deployment's cluster, if one runs, once none of its jobs runs (their last
        records kept; LocalClusterError while one runs, or when it does not answer). With
        `idle_only`, a JobManager that has no job yet is left running. True when it was ended."""
        ended = self._endable(idle_only)
        if ended is None:
            return False
        self._retire(ended)
        return application.stop(self.workdir, self.deployment)

    def _endable(self, idle_only: bool) -> list[JobOverview] | None:
        """The jobs of the deployment's cluster when it may be ended (see `_end_cluster`), all
        ended; None when no process of it runs, or (`idle_only`) its JobManager has no job yet."""
        if application.find(self.workdir, self.deployment) is None:
            return None
        listed: list[JobOverview] = []
        if self.running() is not None:
            try:
                listed = super().jobs()
            except FlinkError as error:
                raise LocalClusterError(f"the cluster of deployment {self.deployment} does not "
                                        f"answer, and is left running: {error}") from None
            active = [job.id for job in listed if not job.terminal]
            if active:
                raise LocalClusterError(f"the cluster of deployment {self.deployment} still "
                                        f"runs job {active[0]}: it is not ended")
            if idle_only and not listed:
                return None
        return listed

    def _retire(self, jobs: list[JobOverview]) -> None:
        """The ended jobs' overviews and stop savepoints, added to ended.json."""
        if not jobs:
            return
        entries = []
        for job in jobs:
            entry: dict[str, Any] = {"jid": job.id, "name": job.name, "state": job.state.value,
                                     "start-time": job.start_time, "end-time": job.end_time,
                                     "tasks": job.tasks}
            try:
                if job.state == FlinkJobStatus.FINISHED:
                    entry["savepoint"] = super().stop_savepoint(job.id, wait=5)
                elif job.state.unhealthy:   # (what the dashboard shows of its failure)
                    exceptions = super().exceptions(job.id)
                    if len(json.dumps(exceptions)) <= MAX_EXCEPTIONS_KEPT:
                        entry["exceptions"] = exceptions
                    else:
                        entry["exceptions"] = {"root-exception": root_exception_of(exceptions)
                                               [:MAX_EXCEPTIONS_KEPT]}
            except FlinkError:
                pass
            entries.append(entry)
        kept = entries + [e for e in self._read_retired() if e["jid"] not in {j.id for j in jobs}]
        record = self.home / _ENDED
        fresh = record.with_name(f"{_ENDED}.new")
        fresh.write_text(json.dumps(kept[:ENDED_KEPT], indent=2))
        os.replace(fresh, record)

    def _read_retired(self) -> list[dict[str, Any]]:
        try:
            entries = json.loads((self.home / _ENDED).read_text())
        except (OSError, ValueError):
            return []
        return [e for e in entries if isinstance(e, dict) and job_overview(e) is not None] \
            if isinstance(entries, list) else []

    def _retired(self) -> list[JobOverview]:
        return [job for job in map(job_overview, self._read_retired()) if job is not None]

    def _retired_entry(self, job_id: str) -> dict[str, Any] | None:
        return next((e for e in self._read_retired() if e["jid"] == job_id), None)

    def _checkpoint_dir(self) -> str:
        return (self.home / "checkpoints").as_uri()


@dataclass
class DeploymentClusters:
    """A local target in application mode: its deployments' clusters in `workdir`."""

    workdir: Path
    timeout: float
    cache_dir: Path | None = None   # where memory flags are remembered (`local.memory_flags`)

    def of(self, deployment: str, sizes: dict[str, ClusterSize] | None = None
           ) -> DeploymentCluster:
        """The client of `deployment`'s cluster; `sizes`: those of the specs it may start."""
        return DeploymentCluster(workdir=Path(self.workdir), deployment=deployment,
                                 sizes=dict(sizes or {}), timeout=self.timeout,
                                 cache_dir=self.cache_dir)

    def retire_idle(self) -> list[str]:
        """The deployments whose clusters were ended because they ran no job any more (see
        `DeploymentCluster.retire_if_idle`)."""
        return [name for name in self.deployments() if self.of(name).retire_if_idle()]

    def any_idle(self) -> bool:
        """Whether a deployment's cluster runs no job any more (`retire_idle` would end it)."""
        return any(self.of(name).idle() for name in self.deployments())

    def deployments(self) -> list[str]:
        """The deployments with a cluster, running or retired, in the work dir."""
        root = Path(self.workdir).resolve() / "local" / "deployments"
        return sorted(path.name for path in root.iterdir()
                      if (path / "cluster.json").exists() or (path / _ENDED).exists()) \
            if root.is_dir() else []
