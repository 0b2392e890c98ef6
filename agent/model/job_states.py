"""The states of a job, in one place: Flink's job statuses and the Ververica Job states, with
what each means to the agent (pure).

Flink's `JobStatus` is what a cluster reports (`/jobs/overview`); the Ververica `JobState` is
what a deployment's status document records. Which Flink statuses are terminal, which count as a
job still running, which as unhealthy, and which Job state each maps to are decided here only.
"""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    """Ververica's Job states: what the status branch records of a job."""

    STARTING = "STARTING"
    STARTED = "STARTED"
    TERMINATING = "TERMINATING"
    TERMINATED = "TERMINATED"
    FAILED = "FAILED"
    FINISHED = "FINISHED"

    @property
    def active(self) -> bool:
        """The job runs, or is on its way into or out of running."""
        return self in (JobState.STARTING, JobState.STARTED, JobState.TERMINATING)


class FlinkJobStatus(StrEnum):
    """Flink's JobStatus, plus UNKNOWN: what a cluster did not say, or said in a way the agent
    does not know (counted as still active, so nothing is started beside it)."""

    INITIALIZING = "INITIALIZING"
    CREATED = "CREATED"
    RUNNING = "RUNNING"
    FAILING = "FAILING"
    FAILED = "FAILED"
    CANCELLING = "CANCELLING"
    CANCELED = "CANCELED"
    FINISHED = "FINISHED"
    RESTARTING = "RESTARTING"
    SUSPENDED = "SUSPENDED"
    RECONCILING = "RECONCILING"
    UNKNOWN = "UNKNOWN"

    @classmethod
    def parse(cls, text: object) -> FlinkJobStatus:
        """A status as Flink wrote it; anything else is UNKNOWN."""
        try:
            return cls(text) if isinstance(text, str) else cls.UNKNOWN
        except ValueError:
            return cls.UNKNOWN

    @property
    def terminal(self) -> bool:
        """Globally terminal: the job will not run again (Flink's isGloballyTerminalState, and
        SUSPENDED: its JobManager gave it up)."""
        return self in _TERMINAL

    @property
    def active(self) -> bool:
        """Counts as 'the deployment's job runs' (not terminal)."""
        return not self.terminal

    @property
    def unhealthy(self) -> bool:
        """Running in name, failing in fact: Flink's restart strategy is at work."""
        return self in (FlinkJobStatus.RESTARTING, FlinkJobStatus.FAILING)

    @property
    def running(self) -> bool:
        """RUNNING, or unhealthy while Flink restarts it: the deployment runs."""
        return self == FlinkJobStatus.RUNNING or self.unhealthy

    def job_state(self, otherwise: JobState) -> JobState:
        """The Job state a job in this status is in (`otherwise` when it does not say)."""
        return _JOB_STATE.get(self, otherwise)


_TERMINAL = frozenset({FlinkJobStatus.FINISHED, FlinkJobStatus.CANCELED, FlinkJobStatus.FAILED,
                       FlinkJobStatus.SUSPENDED})
_JOB_STATE = {
    FlinkJobStatus.RUNNING: JobState.STARTED, FlinkJobStatus.RESTARTING: JobState.STARTED,
    FlinkJobStatus.FAILING: JobState.STARTED, FlinkJobStatus.CREATED: JobState.STARTING,
    FlinkJobStatus.INITIALIZING: JobState.STARTING, FlinkJobStatus.RECONCILING: JobState.STARTING,
    FlinkJobStatus.CANCELLING: JobState.TERMINATING, FlinkJobStatus.CANCELED: JobState.TERMINATED,
    FlinkJobStatus.SUSPENDED: JobState.TERMINATED, FlinkJobStatus.FINISHED: JobState.FINISHED,
    FlinkJobStatus.FAILED: JobState.FAILED,
}
