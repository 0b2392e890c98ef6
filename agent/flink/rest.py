"""A client of the Flink REST API, the only way the agent talks to a cluster (I/O: HTTP).

Flink's own error messages reach the caller verbatim in `FlinkRequestError.flink_message`.
Requests that change a cluster are named so: `upload_jar`, `run_jar`, `stop_with_savepoint`,
`trigger_savepoint`, `cancel`. Works against Flink 1.19, 1.20 and 2.x: the run request carries
only the fields the cluster's version knows (`claimMode` from 1.20 on, `restoreMode` before).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import requests

from agent.flink.http import AnswerTooLarge, DeadlinePassed, deadline, read_limited, session
from agent.memo import Memo
from agent.model.job_states import FlinkJobStatus
from agent.model.spec import DEFAULT_REQUEST_TIMEOUT_S
from agent.errors import (FlinkAnswerInvalid, FlinkRequestError, FlinkUnavailable, JobStartFailed,
                          SavepointFailed)

DEFAULT_TIMEOUT = DEFAULT_REQUEST_TIMEOUT_S   # seconds a read of an answer may wait
DEADLINE_FACTOR = 3             # a whole call: at most this many timeouts
MAX_ANSWER_BYTES = 32 * 1024 * 1024
MAX_MESSAGE_CHARS = 4000
_JOB_ID = re.compile(r"[0-9a-f]{32}")
VERSION_KEPT_S = 600.0


def flink_versions() -> Memo[str, str]:
    """A memo of each cluster URL's Flink version, for VERSION_KEPT_S."""
    return Memo("Flink versions", 1000, ttl=VERSION_KEPT_S)


@dataclass(frozen=True)
class JobOverview:
    id: str
    name: str
    state: FlinkJobStatus
    start_time: int
    end_time: int
    tasks: dict[str, int] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", FlinkJobStatus.parse(self.state))

    @property
    def all_tasks_running(self) -> bool:
        """Every task deployed and running (or finished): the job's state is restored."""
        total = self.tasks.get("total", 0)
        return total > 0 and self.tasks.get("running", 0) + self.tasks.get("finished", 0) == total

    @property
    def terminal(self) -> bool:
        return self.state.terminal


def job_overview(entry: Any) -> JobOverview | None:
    """One entry of Flink's jobs overview, read field by field (pure): an entry without a job id
    of Flink's form (32 hex digits) names no job and is None; a field of the wrong type reads as
    unknown (an UNKNOWN status counts as a job still active, so nothing is started beside it)."""
    if not isinstance(entry, dict) or not isinstance(entry.get("jid"), str) \
            or not _JOB_ID.fullmatch(entry["jid"]):
        return None
    state = entry.get("state")
    tasks = entry.get("tasks")
    return JobOverview(
        entry["jid"], _typed(entry.get("name"), str, ""),
        FlinkJobStatus.parse(state),
        _typed(entry.get("start-time"), int, -1), _typed(entry.get("end-time"), int, -1),
        {k: v for k, v in tasks.items() if isinstance(k, str) and _typed(v, int, None) is not None}
        if isinstance(tasks, dict) else {})


def _typed(value: Any, kind: type, default: Any) -> Any:
    return value if isinstance(value, kind) and not isinstance(value, bool) else default


@dataclass
class SavepointResult:
    location: str
    duration_s: float


@dataclass
class FlinkClient:
    """One Flink cluster's REST API."""

    url: str
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    verify: bool | str = True
    cert: tuple[str, str] | str | None = None
    timeout: float = DEFAULT_TIMEOUT
    _session: requests.Session = field(default_factory=session, repr=False)
    versions: Memo[str, str] | None = field(default=None, repr=False)
    _version: str | None = field(default=None, repr=False)

    # --- reading -----------------------------------------------------------------------------

    def overview(self) -> dict[str, Any]:
        """Cluster overview: `flink-version`, `taskmanagers`, `slots-total`, `slots-available`."""
        return self._request("GET", "/overview")

    def version(self) -> str:
        """The cluster's Flink version, asked once per client and, with `versions` (see
        `flink_versions`), remembered per URL for VERSION_KEPT_S across clients (a client lives
        one cycle; the version is on an upgrade's way)."""
        if self._version is None:
            def ask() -> str:
                return str(self._request("GET", "/config").get("flink-version", ""))
            self._version = self.versions.get_or(self.url, ask) if self.versions is not None \
                else ask()
        return self._version

    def jobs(self) -> list[JobOverview]:
        """Every job the cluster knows, running or recently ended (`GET /jobs/overview`).

        Unlike `GET /jobs/:id`, which Flink serves from a cache refreshed every few seconds
        (`web.refresh-interval`), the overview is current: the agent polls it while it waits.
        """
        jobs = self._request("GET", "/jobs/overview").get("jobs")
        if not isinstance(jobs, list):
            raise FlinkAnswerInvalid(f"Flink at {self.url} answered GET /jobs/overview without "
                                     "a list of jobs")
        return [job for job in map(job_overview, jobs) if job is not None]

    def job_overview(self, job_id: str) -> JobOverview | None:
        """One job's current overview, or None when the cluster does not know the job."""
        return next((job for job in self.jobs() if job.id == job_id), None)

    def job(self, job_id: str) -> dict[str, Any]:
        return self._request("GET", f"/jobs/{job_id}")

    def parallelism(self, job_id: str) -> int:
        """The job's parallelism: as it was submitted (`GET /jobs/:id/config`), else its widest
        operator's."""
        config = self._request("GET", f"/jobs/{job_id}/config").get("execution-config") or {}
        submitted = config.get("job-parallelism") if isinstance(config, dict) else None
        if isinstance(submitted, int) and submitted > 0:
            return submitted
        widths = [v.get("parallelism") for v in self.job(job_id).get("vertices") or []
                  if isinstance(v, dict)]
        widths = [w for w in widths if isinstance(w, int) and w > 0]
        if not widths:
            raise FlinkAnswerInvalid(f"Flink at {self.url} tells no parallelism of job {job_id}")
        return max(widths)

    def checkpoint_interval(self, job_id: str) -> int | None:
        """The job's checkpoint interval (ms), None when it does not checkpoint."""
        try:
            interval = self._request("GET", f"/jobs/{job_id}/checkpoints/config").get("interval")
        except FlinkRequestError:   # Flink: "Checkpointing is not enabled for this job"
            return None
        return interval if isinstance(interval, int) and 0 < interval < 2**62 else None

    def job_state(self, job_id: str) -> FlinkJobStatus | None:
        """The job's current Flink status, or None when the cluster does not know the job."""
        job = self.job_overview(job_id)
        return job.state if job else None

    def checkpoints(self, job_id: str) -> dict[str, Any]:
        """`GET /jobs/:id/checkpoints`: counts and `latest.{completed,savepoint,restored}`."""
        return self._request("GET", f"/jobs/{job_id}/checkpoints")

    def stop_savepoint(self, job_id: str, wait: float = 10,
                       sleep: Callable[[float], None] = time.sleep) -> dict[str, Any] | None:
        """The savepoint an ended job was stopped with (Flink's `SYNC_SAVEPOINT`), or None.

        Flink serves checkpoint statistics from a cache refreshed every few seconds
        (`web.refresh-interval`), so a job that just finished may not show its final savepoint
        yet: this looks again for up to `wait` seconds before it answers None.
        """
        for delay in poll_delays(wait, first=0.25):
            latest = self.checkpoints(job_id).get("latest") or {}
            savepoint = latest.get("savepoint") or {}
            if savepoint.get("checkpoint_type") == "SYNC_SAVEPOINT" \
                    and savepoint.get("external_path"):
                return savepoint
            sleep(delay)
        return None

    def exceptions(self, job_id: str) -> dict[str, Any]:
        """`GET /jobs/:id/exceptions`: the root exception and the exception history (read once,
        told by `failures` and `root_exception_of`)."""
        return self._request("GET", f"/jobs/{job_id}/exceptions")

    def restarts(self, job_id: str, exceptions: dict[str, Any]) -> int:
        """How often the job failed and restarted, at least: the larger of its `numRestarts`
        metric and its `exceptions`' history (Flink refreshes both lazily, the metric every
        ~10 s)."""
        try:
            metrics = self._request("GET", f"/jobs/{job_id}/metrics", expect=list,
                                    params={"get": "numRestarts"})
        except FlinkRequestError:
            metrics = []
        counted = [int(float(m["value"])) for m in metrics
                   if m.get("id") == "numRestarts" and m.get("value") is not None]
        return max(counted + [len(failures(exceptions))])

    def checkpointing(self, job_id: str) -> tuple[bool, int | None]:
        """Whether the job checkpoints, and when its newest completed checkpoint was (ms)."""
        if self.checkpoint_interval(job_id) is None:
            return False, None
        latest = (self.checkpoints(job_id).get("latest") or {}).get("completed") or {}
        return True, latest.get("latest_ack_timestamp")

    def root_exception(self, job_id: str) -> str:
        """The job's root exception as Flink reports it ('' when there is none)."""
        try:
            return root_exception_of(self.exceptions(job_id))
        except FlinkRequestError:
            return ""

    def configuration(self) -> dict[str, str]:
        """The cluster's Flink options (`GET /jobmanager/config`)."""
        entries = self._request("GET", "/jobmanager/config", expect=list)
        return {str(e["key"]): str(e.get("value", "")) for e in entries
                if isinstance(e, dict) and "key" in e}

    def jars(self) -> list[dict[str, Any]]:
        return self._request("GET", "/jars").get("files", [])

    # --- changing ----------------------------------------------------------------------------

    def upload_jar(self, jar: Path) -> str:
        """Uploads a jar once per content: an uploaded jar of the same digest is reused."""
        digest = hashlib.sha256(jar.read_bytes()).hexdigest()[:12]
        name = f"{jar.stem}-{digest}.jar" if digest not in jar.stem else jar.name
        for uploaded in self.jars():
            if uploaded.get("name") == name:
                return uploaded["id"]
        with jar.open("rb") as content:
            answer = self._request(
                "POST", "/jars/upload", timeout=max(self.timeout, 120),
                files={"jarfile": (name, content, "application/x-java-archive")})
        return Path(answer["filename"]).name

    def run_jar(self, jar_id: str, *, job_id: str, entry_class: str | None, args: list[str],
                parallelism: int, savepoint_path: str | None, allow_non_restored_state: bool,
                configuration: dict[str, str]) -> str:
        """Submits a job of an uploaded jar under the job id the agent chose."""
        body: dict[str, Any] = {"jobId": job_id, "parallelism": parallelism,
                                "programArgsList": args}
        if entry_class:
            body["entryClass"] = entry_class
        if configuration:
            body["flinkConfiguration"] = configuration
        if savepoint_path:
            body["savepointPath"] = savepoint_path
            body["allowNonRestoredState"] = allow_non_restored_state
            body[self._claim_mode_field()] = "NO_CLAIM"
        answer = self._request("POST", f"/jars/{jar_id}/run", json=body,
                               timeout=max(self.timeout, 120))
        return answer.get("jobid", job_id)

    def stop_with_savepoint(self, job_id: str, *, target_directory: str | None, drain: bool,
                            format_type: str = "CANONICAL") -> str:
        """Triggers stop-with-savepoint; returns the trigger id to poll."""
        body: dict[str, Any] = {"drain": drain, "formatType": format_type}
        if target_directory:
            body["targetDirectory"] = target_directory
        return self._request("POST", f"/jobs/{job_id}/stop", json=body)["request-id"]

    def trigger_savepoint(self, job_id: str, *, target_directory: str | None,
                          format_type: str = "CANONICAL") -> str:
        """Triggers a savepoint of a running job, which keeps running; returns the trigger id."""
        body: dict[str, Any] = {"cancel-job": False, "formatType": format_type}
        if target_directory:
            body["target-directory"] = target_directory
        return self._request("POST", f"/jobs/{job_id}/savepoints", json=body)["request-id"]

    def dispose_savepoint(self, location: str, timeout: float = 600,
                          sleep: Callable[[float], None] = time.sleep) -> None:
        """Disposes a savepoint through the cluster (its files go however the cluster stores
        them) and waits for it; SavepointFailed with Flink's reason when it could not."""
        trigger_id = self._request("POST", "/savepoint-disposal",
                                   json={"savepoint-path": location})["request-id"]
        for delay in poll_delays(timeout):
            answer = self._request("GET", f"/savepoint-disposal/{trigger_id}")
            if answer.get("status", {}).get("id") == "COMPLETED":
                operation = answer.get("operation") or {}
                if operation.get("failure-cause"):
                    raise SavepointFailed(f"disposing savepoint {location} failed: "
                                          f"{failure_cause(operation)}")
                return
            sleep(delay)
        raise SavepointFailed(f"disposing savepoint {location} did not complete in "
                              f"{timeout:.0f}s")

    def cancel(self, job_id: str) -> None:
        """Cancels a job without a savepoint (Flink answers at once, the job ends later)."""
        self._request("PATCH", f"/jobs/{job_id}", params={"mode": "cancel"})

    # --- waiting -----------------------------------------------------------------------------

    def await_savepoint(self, job_id: str, trigger_id: str, timeout: float = 600,
                        sleep: Callable[[float], None] = time.sleep) -> SavepointResult:
        """Polls a savepoint trigger until it completes; short first intervals, then backoff."""
        started = time.monotonic()
        for delay in poll_delays(timeout):
            answer = self._request("GET", f"/jobs/{job_id}/savepoints/{trigger_id}")
            if answer.get("status", {}).get("id") == "COMPLETED":
                operation = answer.get("operation", {})
                if "location" in operation:
                    return SavepointResult(operation["location"], time.monotonic() - started)
                raise SavepointFailed(
                    f"savepoint of job {job_id} failed: {failure_cause(operation)}")
            sleep(delay)
        raise SavepointFailed(f"savepoint of job {job_id} did not complete in {timeout:.0f}s")

    def await_running(self, job_id: str, timeout: float = 120,
                      sleep: Callable[[float], None] = time.sleep) -> JobOverview:
        """Polls until the job RUNS — every task deployed and running, so its state is restored
        — or ends; returns the job's overview then. A job still on its way after `timeout` seconds
        (e.g. waiting for task slots) raises JobStartFailed saying where it stands."""
        job = None
        for delay in poll_delays(timeout):
            job = self.job_overview(job_id)
            if job is not None and (job.terminal or job.state == FlinkJobStatus.RUNNING
                                    and job.all_tasks_running):
                return job
            sleep(delay)
        tasks = ", ".join(f"{n} {t}" for t, n in sorted((job.tasks if job else {}).items())
                          if n and t != "total")
        raise JobStartFailed(f"job {job_id} is not running after {timeout:.0f}s: job status "
                             f"{job.state if job else 'unknown'}, tasks {tasks or 'none yet'}")

    def await_end(self, job_id: str, timeout: float = 120,
                  sleep: Callable[[float], None] = time.sleep) -> FlinkJobStatus:
        """Polls a job until it is terminal (cancellation takes Flink a few seconds); returns
        its status then, or the last one seen when `timeout` ran out."""
        state = None
        for delay in poll_delays(timeout):
            state = self.job_state(job_id)
            if state is not None and state.terminal:
                return state
            sleep(delay)
        return state or FlinkJobStatus.UNKNOWN

    # --- plumbing ----------------------------------------------------------------------------

    def _claim_mode_field(self) -> str:
        major, minor = _major_minor(self.version())
        return "claimMode" if (major, minor) >= (1, 20) else "restoreMode"

    def _request(self, method: str, path: str, timeout: float | None = None,
                 expect: type = dict, **kwargs) -> Any:
        """Flink's answer, decoded and of the `expect`ed JSON type; anything else is a typed
        error (unreachable, refused, or an answer that is not what Flink sends). A call ends
        within DEADLINE_FACTOR times its timeout in all, and an answer is at most
        MAX_ANSWER_BYTES."""
        timeout = timeout or self.timeout
        where = f"Flink at {self.url}"
        try:
            with deadline(timeout * DEADLINE_FACTOR):
                response = self._session.request(
                    method, self.url.rstrip("/") + path, headers=self.headers,
                    verify=self.verify, cert=self.cert, timeout=timeout, stream=True, **kwargs)
                with response:
                    content = read_limited(response, MAX_ANSWER_BYTES)
        except DeadlinePassed:
            raise FlinkUnavailable(f"{where} did not finish answering {method} {path} within "
                                   f"{timeout * DEADLINE_FACTOR:g}s (the limit)") from None
        except AnswerTooLarge as error:
            raise FlinkAnswerInvalid(f"{where} answered {method} {path} with {error} (the "
                                     "limit)") from None
        except requests.RequestException as error:
            raise FlinkUnavailable(f"{where} did not answer {method} {path}: "
                                   f"{type(error).__name__}") from None
        except OSError as error:   # e.g. a TLS file that cannot be read
            raise FlinkUnavailable(f"{where} could not be asked {method} {path}: "
                                   f"{error.strerror or type(error).__name__}") from None
        if response.status_code in (502, 503, 504):
            raise FlinkUnavailable(f"{where} answered {method} {path} with "
                                   f"{response.status_code}")
        if response.status_code >= 400:
            message = flink_error_text(content)
            raise FlinkRequestError(f"Flink refused {method} {path} ({response.status_code}): "
                                    f"{message}", status=response.status_code,
                                    flink_message=message)
        if not content:
            return expect()
        try:
            answer = json.loads(content)
        except (ValueError, RecursionError):
            raise FlinkAnswerInvalid(f"{where} answered {method} {path} with "
                                     "something that is not JSON") from None
        if not isinstance(answer, expect):
            raise FlinkAnswerInvalid(f"{where} answered {method} {path} with a JSON "
                                     f"{type(answer).__name__}, not a {expect.__name__}")
        return answer


def poll_delays(timeout: float, first: float = 0.05, factor: float = 1.5,
                longest: float = 1.0, quick_for: float = 2.0, brisk: float = 0.1,
                brisk_for: float = 10.0, clock: Callable[[], float] = time.monotonic):
    """Delays between polls, until `timeout` seconds are spent — in sleeps, and on the wall
    `clock`, whichever comes first (the requests between sleeps take time too): every 50 ms
    for the first 2 s, growing to 100 ms until 10 s, then to 1 s. A savepoint or a job start on
    a healthy cluster ends within the first seconds, and every poll interval there is up to as
    much downtime for the job being upgraded; a wait that lasts is asked less often."""
    spent, delay, started = 0.0, first, clock()
    while spent <= timeout and clock() - started <= timeout:
        yield delay
        spent += delay
        if spent >= quick_for:
            delay = min(delay * factor, brisk if spent < brisk_for else longest)


def failure_cause(operation: dict[str, Any]) -> str:
    """Flink's failure cause of an async operation (a savepoint), condensed."""
    cause = operation.get("failure-cause") or {}
    return condense_trace(str(cause.get("stack-trace") or cause)) or "no cause given"


def flink_error_text(content: bytes) -> str:
    """The `errors` of a Flink error answer, condensed: Flink's own lines, without frames."""
    try:
        answer = json.loads(content)
        errors = answer.get("errors") if isinstance(answer, dict) else None
    except (ValueError, RecursionError):
        errors = None
    if not errors or not isinstance(errors, list):
        return content.decode("utf-8", errors="replace").strip()[:2000]
    return "\n".join(condense_trace(str(e)) for e in errors)[:MAX_MESSAGE_CHARS]


def failures(exceptions: dict[str, Any]) -> list[dict[str, Any]]:
    """The failures of a job's `exceptions` answer that Flink keeps
    (`web.exception-history-size`, 16 by default), newest first, each with its `timestamp` (ms)
    and `stacktrace`."""
    return list((exceptions.get("exceptionHistory") or {}).get("entries") or [])


def root_exception_of(exceptions: dict[str, Any]) -> str:
    """The root exception of a job's `exceptions` answer ('' when there is none)."""
    history = failures(exceptions)
    return exceptions.get("root-exception") or (history[0].get("stacktrace") if history
                                                 else "") or ""


def condense_trace(trace: str, limit: int = 4000) -> str:
    """A Java stack trace as its message lines only: the first line and every `Caused by:`,
    verbatim, without the `at …` frames (pure)."""
    kept = [line.strip() for line in trace.strip().splitlines()
            if line.strip() and not line.strip().startswith(("at ", "... "))]
    return "\n".join(kept)[:limit]


def _major_minor(version: str) -> tuple[int, int]:
    parts = [int(p) for p in version.split("-")[0].split(".")[:2] if p.isdigit()]
    return (parts + [0, 0])[0], (parts + [0, 0])[1]
