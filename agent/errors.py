"""The agent's typed error tree (pure).

Every error the agent raises on purpose is a `FlinkGitopsError`. Two branches say what a caller
may do about it: a `TransientError` may succeed when tried again (a cluster that is down, a git
remote that did not answer, a push that lost a race), a `PermanentError` will not until somebody
changes something (a broken spec, a missing Java, a jar Flink refuses).
"""

from __future__ import annotations


class FlinkGitopsError(Exception):
    """Base of every error the agent raises on purpose. Its message is redacted of every secret
    the agent knows (`agent.logs.redact`) when it is made: an error's text is written to the
    status branch, the terminal and the logs, and often quotes what a server answered."""

    def __init__(self, message: object = "", *args: object):
        from agent.logs import redact
        super().__init__(redact(str(message)), *args)


class TransientError(FlinkGitopsError):
    """May succeed when tried again without any change."""


class PermanentError(FlinkGitopsError):
    """Will fail again until somebody changes the spec, the machine or the cluster."""


class ConfigError(PermanentError):
    """Bad agent configuration or command-line usage (exit code 2)."""


class SourceError(TransientError):
    """The spec repository could not be cloned, fetched or read."""


class SecretMissing(PermanentError):
    """A secret reference (`${VAR}`, `${file:PATH}`) that cannot be expanded on the agent's
    machine; the message names the reference, never a value."""


class Untrusted(PermanentError):
    """The spec branch's head is not signed by a trusted key, and no trusted revision is left
    to apply in its place (`agent.signatures`)."""


class SpecLimitError(PermanentError):
    """The spec repository holds more than the agent reads in one cycle."""


class StatusPushRejected(TransientError):
    """The status branch moved on the remote while this cycle was writing it."""


class StatusKept(SourceError):
    """The status of a cycle's actions could not be pushed; it is kept in the work dir and the
    next cycle pushes it before it reads anything."""


class CheckpointDirUnreadable(TransientError):
    """A checkpoint directory could not be read (no filesystem implementation for its scheme,
    no access, an I/O error)."""


class LocalClusterError(PermanentError):
    """The embedded local Flink cluster could not be started, found or stopped."""


class MemoryRefused(LocalClusterError):
    """Flink refuses a cluster's memory settings (e.g. below its minimum); `reason` is its own
    words."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


class JavaMissing(LocalClusterError):
    """No Java runtime or compiler on this machine; the message names the fix."""


class ArtifactError(PermanentError):
    """A job artifact (jar) could not be found, built or read."""


class RestoreUnavailable(PermanentError):
    """The savepoint or checkpoint a job is to start from is certainly not there."""


class RepoFileRefused(ArtifactError):
    """A file of the spec repository the agent will not read: a symbolic link, or a path that
    leaves the repository."""


class ArtifactUnavailable(TransientError):
    """A job artifact could not be downloaded now (network, or the server's 5xx)."""


class FlinkError(FlinkGitopsError):
    """Base of errors that come from talking to a Flink cluster."""


class FlinkUnavailable(FlinkError, TransientError):
    """The Flink REST API did not answer (connection refused, timeout, 502/503)."""


class FlinkAnswerInvalid(FlinkUnavailable):
    """Flink (or something in its place) answered with what Flink never sends: not JSON, or JSON
    of another shape. Nothing is decided on it; the next cycle asks again."""


class FlinkRequestError(FlinkError, PermanentError):
    """Flink answered a request with an error; `flink_message` is Flink's own text, verbatim."""

    def __init__(self, message: str, *, status: int | None = None, flink_message: str = ""):
        from agent.logs import redact
        super().__init__(message)
        self.status = status
        self.flink_message = redact(flink_message)


class SavepointFailed(FlinkError, PermanentError):
    """Flink could not complete a savepoint; the job it was taken of keeps running."""


class JobStartFailed(FlinkError, PermanentError):
    """A submitted job did not reach RUNNING; the message carries Flink's root exception."""


class JobDidNotEnd(FlinkError, TransientError):
    """A job told to stop or cancel is still not terminal; the next cycle looks again."""


class RecordsUnreadable(FlinkError, TransientError):
    """Flink's records of a job that changed behind the agent (its stop savepoint, what it
    restored) could not be read: its deployment is left as it is until they can."""


class StateUnchecked(PermanentError):
    """Whether a job can restore its state could not be found out here (its graph not built,
    the savepoint's metadata not read): the message says why; nothing is concluded."""


class StateGone(StateUnchecked):
    """The savepoint or checkpoint to read is not there (a checkpoint subsumed meanwhile)."""


class StateNotRestorable(PermanentError):
    """The new job cannot take the state its plan gives it (Flink would refuse it, or it would
    lose state it may not): its plan is not carried out, the running job is left as it is."""


class SqlCheckUnavailable(PermanentError):
    """Flink's SQL parser and planner cannot run on this machine (no Java, no Flink jars, a JVM
    that failed): SQL scripts go unchecked, and the message says why."""
