"""Flink's own records -> the agent's memory, corrected before planning (I/O: a few REST reads
and a checkpoint directory listing, only for jobs that changed without the agent recording it).

An agent killed half way through an action leaves its status behind what Flink did: the old job
stopped with a savepoint that no status names, or a new job submitted that no status knows. This
module reads what Flink recorded of those jobs — the savepoint a stopped job took, the state a
new job restored — and writes it into the deployment's status, so that the planner finishes the
interrupted action instead of repeating it or restoring older state. The job ids (see
`job_ids`) tell which jobs are the deployment's and which spec each one runs.

A cluster can also lose a job: a JobManager without high availability that dies and comes back
knows none of its jobs. Such a job's retained checkpoint is still in the checkpoint directory;
it is recorded here (as a RETAINED_CHECKPOINT), so that a LATEST_STATE deployment restarts from
it (LATEST_SAVEPOINT ones from their newest savepoint).

When those records cannot be read, `RecordsUnreadable` is raised: the cycle plans nothing for the
deployment rather than plan on a memory it knows to be behind.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.clock import from_millis, utc_now
from agent.errors import CheckpointDirUnreadable, FlinkError, RecordsUnreadable
from agent.flink.rest import FlinkClient
from agent.flink.storage import checkpoint_dir, newest_checkpoint
from agent.job_ids import runs_spec
from agent.model.spec import Deployment, DesiredState
from agent.model.job_states import FlinkJobStatus, JobState
from agent.model.status import (DeploymentStatus, Job, Savepoint, SavepointOrigin, Status,
                                StatusMetadata, SyncStatus, DeploymentState, bounded,
                                savepoint_history)
from agent.model.observation import ObservedJob, Observation



@dataclass
class Recovery:
    """The corrected memory of one deployment and what was found."""

    previous: DeploymentStatus | None
    events: list[str] = field(default_factory=list)


def recover(name: str, previous: DeploymentStatus | None, observation: Observation,
            client: FlinkClient | None, desired: Deployment | None,
            desired_hash: str | None) -> Recovery:
    """Brings the status in line with Flink's records of this deployment's jobs."""
    if client is None or not observation.reachable:
        return Recovery(previous)
    known = _known_jobs(previous)
    ended_unrecorded = _ended_unrecorded(previous, observation)
    adopting = desired.adopt_job_id if desired is not None else None   # (planned: ADOPT)
    unknown_active = [j for j in observation.active_jobs if j.id not in known | {adopting}]
    lost = _lost(previous, observation)
    if ended_unrecorded is None and not unknown_active and not lost:
        return Recovery(previous)
    document = previous.model_copy(deep=True) if previous else DeploymentStatus(
        metadata=StatusMetadata(name=name),
        status=Status(state=DeploymentState.CANCELLED, sync=SyncStatus.SYNCED))
    status, events = document.status, []
    try:
        if lost:
            _record_loss(status, client, desired, events)
        if ended_unrecorded is not None:
            _record_end(status, ended_unrecorded, client, desired, events)
        if unknown_active:
            _record_submitted(status, unknown_active[-1], client, desired, desired_hash, events)
    except FlinkError as error:   # planning on the uncorrected memory could restore older state
        raise RecordsUnreadable(f"could not read Flink's records of its jobs to recover: "
                                f"{error}; it is left as it is until they can be read") from error
    return Recovery(document, events)


def _known_jobs(previous: DeploymentStatus | None) -> set[str]:
    if previous is None:
        return set()
    known = {j.id for j in previous.status.history.jobs}
    if previous.status.job is not None:
        known.add(previous.status.job.id)
    return known


def _ended_unrecorded(previous, observation: Observation) -> ObservedJob | None:
    """The recorded job, if Flink shows it ended while the status still has it running."""
    job = previous.status.job if previous else None
    if job is None or not job.state.active:
        return None
    seen = next((j for j in observation.jobs if j.id == job.id), None)
    return seen if seen is not None and not seen.active else None


def _lost(previous: DeploymentStatus | None, observation: Observation) -> bool:
    """The recorded job was running, and its cluster answers without knowing it."""
    job = previous.status.job if previous else None
    return job is not None and job.state.active and all(j.id != job.id for j in observation.jobs)


def _record_loss(status: Status, client: FlinkClient, desired: Deployment | None,
                 events: list[str]) -> None:
    """A job the cluster lost: recorded as failed, with its newest retained checkpoint."""
    job = status.job
    job.state, job.flink_status = JobState.FAILED, FlinkJobStatus.UNKNOWN
    status.history.jobs = [job if j.id == job.id else j for j in status.history.jobs]
    events.append(f"job {job.id} is lost: its cluster no longer knows it (its JobManager "
                  "ended, or restarted without high availability, or Flink's record of the "
                  "job expired while the agent was away)")
    own = (status.applied_spec or {}).get("spec", {}).get("template", {}).get("spec", {})
    directory = checkpoint_dir(own.get("flinkConfiguration") or {},
                               desired.spec.template.spec.flink_configuration if desired else {}) \
        or checkpoint_dir(client.configuration())
    try:
        checkpoint = newest_checkpoint(directory, job.id) if directory else None
    except CheckpointDirUnreadable as error:
        events.append(f"its retained checkpoint could not be looked for: {error}")
        return
    if checkpoint is None:
        events.append(f"it left no retained checkpoint in {directory or 'a checkpoint directory'}")
        return
    record = Savepoint(location=checkpoint.location, origin=SavepointOrigin.RETAINED_CHECKPOINT,
                       created_at=from_millis(int(checkpoint.modified * 1000))
                       if checkpoint.modified else utc_now(), job_id=job.id)
    status.history.savepoints = savepoint_history(status.history.savepoints + [record])
    status.last_savepoint = record
    events.append(f"its newest retained checkpoint is {checkpoint.location}")


def _record_end(status: Status, ended: ObservedJob, client: FlinkClient,
                desired: Deployment | None, events: list[str]) -> None:
    """A job that ended unrecorded: keep the savepoint it was stopped with, if it took one."""
    finished = ended.flink_status == FlinkJobStatus.FINISHED
    savepoint = client.stop_savepoint(ended.id) if finished else None
    location = savepoint["external_path"] if savepoint else None
    job = status.job
    job.flink_status = ended.flink_status
    job.state = ended.flink_status.job_state(job.state)
    job.ended_at = from_millis(ended.end_time)
    known = {s.location for s in status.history.savepoints}
    if location and location not in known:
        record = Savepoint(location=location, origin=_origin(desired),
                           created_at=from_millis(savepoint.get("latest_ack_timestamp", 0)),
                           job_id=ended.id)
        status.history.savepoints = savepoint_history(status.history.savepoints + [record])
        status.last_savepoint = record
        job.state = JobState.TERMINATED
        events.append(f"recovered: job {ended.id} was stopped with savepoint {location} "
                      "by an interrupted action; the action goes on from it")
    status.history.jobs = [job if j.id == job.id else j for j in status.history.jobs]


def _record_submitted(status: Status, found: ObservedJob, client: FlinkClient,
                      desired: Deployment | None, desired_hash: str | None,
                      events: list[str]) -> None:
    """A running job of this deployment that the status does not know: the agent submitted it
    before it was interrupted. It becomes the deployment's job, with the spec its id names."""
    try:
        latest = client.checkpoints(found.id).get("latest") or {}
        restored = (latest.get("restored") or {}).get("external_path")
        restored_text = f"restored from {restored}" if restored else "started with empty state"
    except FlinkError:   # a job still initializing: Flink cannot tell yet, the job is still it
        restored, restored_text = None, "what it restored not known yet (it is initializing)"
    job = Job(id=found.id, generation=found.generation,
              state=found.flink_status.job_state(JobState.STARTING),
              flink_status=found.flink_status,
              parallelism=desired.spec.template.spec.parallelism if desired else 0,
              restored_from=restored, started_at=from_millis(found.start_time))
    status.job = job
    status.history.jobs = bounded(status.history.jobs + [job])
    if desired is not None and runs_spec(found.id, desired_hash):
        status.applied_spec_hash = desired_hash
        spec = "the current spec"
    else:
        status.applied_spec_hash = f"{found.spec_digest}?"  # a spec the agent cannot name
        spec = f"spec digest {found.spec_digest}"
    events.append(f"recovered: found job {found.id} ({spec}, {restored_text}) submitted by an "
                  "interrupted action; recorded it instead of submitting again")


def _origin(desired: Deployment | None) -> SavepointOrigin:
    """Why an interrupted action stopped the job: to suspend or delete it, or to upgrade it."""
    if desired is None or desired.spec.state != DesiredState.RUNNING:
        return SavepointOrigin.SUSPEND
    return SavepointOrigin.UPGRADE
