"""`flink-gitops run`: cycles on a schedule and on webhooks, with health and metrics endpoints
(I/O: HTTP server, threads, signals).

Cycles never overlap: every trigger only marks a cycle as wanted, and one runner thread runs
them one after another — a trigger during a cycle makes exactly one more. Triggers: a webhook
push and the drift check (every `drift_interval`, with jitter) always run a full cycle; the poll
(every `interval`, with jitter) runs one only when git moved since the last cycle or that cycle
left something unsettled, so polling often costs a `git fetch`, not a look at every cluster.
SIGTERM lets the running actions finish (no step is left half way: a stopped job always has its
savepoint recorded), defers the actions not yet started, pushes status and exits 0.

After a cycle, and at most every `heartbeat_interval`, the daemon beats: it pushes its heartbeat
ref beside the status branch (`status_store.beat`), so `flink-gitops status` and an alert on
`flink_gitops_last_heartbeat_timestamp_seconds` tell when it stopped. A beat that cannot be
pushed is a log line; the cycle's result stands.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass
from collections import OrderedDict
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import urlsplit

from apscheduler.schedulers.background import BackgroundScheduler
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from agent.caches import Caches
from agent.clock import seconds_until
from agent.config import Settings
from agent.errors import ConfigError, FlinkError, FlinkGitopsError, SourceError
from agent.model.outcome import Outcome
from agent.model.status import DeploymentStatus, SavepointOrigin
from agent.reconcile import SyncResult, keep_quiet, shard_lease, spec_head, sync
from agent.report.freshness import DEFAULT_HEARTBEAT_INTERVAL_S, Heartbeat
from agent.source import SpecRepository
from agent.status_store import beat

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024            # a webhook body above this gets 413
MAX_CONNECTIONS = 64              # connections handled at once; one more is closed at once
CONNECTION_TIMEOUT_S = 5.0        # a socket read of a client waits at most this
SECRET_ENV = "FLINK_GITOPS_WEBHOOK_SECRET"


class Metrics:
    """The agent's Prometheus series (a registry of its own)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.cycles = Counter("flink_gitops_cycles", "Cycles run, by result", ["result"],
                              registry=self.registry)
        self.cycle_duration = Histogram("flink_gitops_cycle_duration_seconds",
                                        "Wall time of a cycle", registry=self.registry)
        self.deployments = Gauge("flink_gitops_deployments", "Deployments by state and sync",
                                 ["state", "sync"], registry=self.registry)
        self.actions = Counter("flink_gitops_actions", "Actions by kind and result",
                               ["kind", "result"], registry=self.registry)
        self.savepoint_duration = Histogram("flink_gitops_savepoint_duration_seconds",
                                            "Time Flink took for a savepoint",
                                            registry=self.registry)
        self.errors = Counter("flink_gitops_errors", "Flink REST and git errors",
                              ["source", "target"], registry=self.registry)
        self.last_success = Gauge("flink_gitops_last_successful_cycle_timestamp_seconds",
                                  "When the last cycle completed", registry=self.registry)
        self.polls = Counter("flink_gitops_git_polls", "Polls of the spec branch by outcome "
                             "(unchanged: no cycle needed)", ["outcome"], registry=self.registry)
        self.failed_in_a_row = Gauge("flink_gitops_failed_cycles_in_a_row",
                                     "Cycles that failed since the last one that completed",
                                     registry=self.registry)
        self.webhooks = Counter("flink_gitops_webhooks", "Webhook calls by outcome", ["outcome"],
                                registry=self.registry)
        self.last_heartbeat = Gauge("flink_gitops_last_heartbeat_timestamp_seconds",
                                    "When the agent last pushed its heartbeat",
                                    registry=self.registry)
        self.heartbeats = Counter("flink_gitops_heartbeats", "Heartbeat pushes by outcome",
                                  ["outcome"], registry=self.registry)
        self.fleet = FleetSeries()
        self.registry.register(self.fleet)

    def record(self, result: SyncResult, seconds: float) -> None:
        self.cycle_duration.observe(seconds)
        self.cycles.labels("success").inc()
        self.last_success.set(time.time())
        self.fleet.update(result.documents, result.outcomes, result.checkpoints)
        self.deployments.clear()
        counts: dict[tuple[str, str], int] = {}
        for document in result.documents:
            key = (document.status.state.value, document.status.sync.value)
            counts[key] = counts.get(key, 0) + 1
        for (state, sync_status), count in counts.items():
            self.deployments.labels(state, sync_status).set(count)
        for outcome in result.outcomes.values():
            kind = outcome.action.value if outcome.action else "NONE"
            self.actions.labels(kind, outcome.result.value).inc()
            for seconds_taken in outcome.savepoint_durations:
                self.savepoint_duration.observe(seconds_taken)
        for document in result.documents:
            for problem in document.status.errors:
                if problem.kind.value == "CLUSTER":
                    self.errors.labels("flink", document.status.target or "").inc()


@dataclass(frozen=True)
class DeploymentFacts:
    """What the per-deployment series show of one deployment, from its status document."""

    state: str
    sync: str
    in_desired_state: bool
    restarts: int | None          # of its current job; None: no job
    savepoint_at: float | None    # its newest savepoint (retained checkpoints not counted)
    checkpoint_at: float | None = None   # its job's newest completed checkpoint, when read


def deployment_facts(document: DeploymentStatus,
                     checkpoint_at: float | None = None) -> DeploymentFacts:
    """The series' facts of a status document, and of when its job last completed a
    checkpoint, if that was read (pure)."""
    status = document.status
    taken = [saved.created_at for saved in (*status.history.savepoints, status.last_savepoint)
             if saved is not None and saved.origin != SavepointOrigin.RETAINED_CHECKPOINT]
    return DeploymentFacts(status.state.value, status.sync.value, document.in_desired_state,
                           status.job.restarts if status.job else None,
                           _epoch(max(taken)) if taken else None, checkpoint_at)


def _epoch(moment: str) -> float | None:
    """A status time (UTC, `...Z`) in seconds since the epoch; None when it is not one. (Read
    by `fromisoformat`, ten times faster than `clock.parse`: 10,000 of them every cycle.)"""
    try:
        read = datetime.fromisoformat(moment)
    except ValueError:
        return None
    return (read if read.tzinfo else read.replace(tzinfo=timezone.utc)).timestamp()


class FleetSeries:
    """The per-deployment series, as a collector: what the last completed cycle's status
    documents say, ages counted to the scrape. Labels are `deployment` and closed enums only;
    a deployment gone from the status branch has no series from the next cycle on, its action
    counts forgotten."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock   # seconds since the epoch, for the ages
        # deployment -> facts, and (deployment, kind, result) -> actions: replaced together
        self._snapshot: tuple[dict[str, DeploymentFacts], dict[tuple[str, str, str], int]] = \
            ({}, {})

    def update(self, documents: list[DeploymentStatus], outcomes: dict[str, Outcome],
               checkpoints: dict[str, float] | None = None) -> None:
        """A completed cycle's documents, the outcomes of its actions and when the jobs whose
        health it read last completed a checkpoint, by deployment."""
        checkpoints = checkpoints or {}
        facts = {document.name: deployment_facts(document, checkpoints.get(document.name))
                 for document in documents}
        actions = {key: count for key, count in self._snapshot[1].items() if key[0] in facts}
        for name, outcome in outcomes.items():
            if name in facts:
                key = (name, outcome.action.value if outcome.action else "NONE",
                       outcome.result.value)
                actions[key] = actions.get(key, 0) + 1
        self._snapshot = (facts, actions)

    def describe(self) -> list[GaugeMetricFamily | CounterMetricFamily]:
        """The families, without samples (for the registry's check of names)."""
        return self._families()

    def collect(self) -> list[GaugeMetricFamily | CounterMetricFamily]:
        """A scrape: the families with one sample per deployment (and action kind)."""
        facts, actions = self._snapshot
        now = self._clock()
        status, desired, restarts, savepoint_age, checkpoint_age, counted = self._families()
        for name, fact in sorted(facts.items()):
            status.add_metric([name, fact.state, fact.sync], 1)
            desired.add_metric([name], 1 if fact.in_desired_state else 0)
            if fact.restarts is not None:
                restarts.add_metric([name], fact.restarts)
            if fact.savepoint_at is not None:
                savepoint_age.add_metric([name], max(0.0, now - fact.savepoint_at))
            if fact.checkpoint_at is not None:
                checkpoint_age.add_metric([name], max(0.0, now - fact.checkpoint_at))
        for (name, kind, result), count in sorted(actions.items()):
            counted.add_metric([name, kind, result], count)
        return [status, desired, restarts, savepoint_age, checkpoint_age, counted]

    @staticmethod
    def _families() -> list[GaugeMetricFamily | CounterMetricFamily]:
        return [
            GaugeMetricFamily("flink_gitops_deployment_status",
                              "1 for the state and sync of each deployment",
                              labels=["deployment", "state", "sync"]),
            GaugeMetricFamily("flink_gitops_deployment_in_desired_state",
                              "1 when the deployment is where its spec wants it, in sync and "
                              "without problems (the dashboard's check mark), else 0",
                              labels=["deployment"]),
            GaugeMetricFamily("flink_gitops_deployment_job_restarts",
                              "Restarts of the deployment's job, as its status last recorded",
                              labels=["deployment"]),
            GaugeMetricFamily("flink_gitops_deployment_last_savepoint_age_seconds",
                              "Seconds since the deployment's newest savepoint was taken",
                              labels=["deployment"]),
            GaugeMetricFamily("flink_gitops_deployment_last_checkpoint_age_seconds",
                              "Seconds since the deployment's job last completed a checkpoint "
                              "(read each cycle for deployments with a healthPolicy or in a "
                              "stability window)", labels=["deployment"]),
            CounterMetricFamily("flink_gitops_deployment_actions",
                                "Actions on the deployment by kind and result, since the agent "
                                "started", labels=["deployment", "kind", "result"]),
        ]


@dataclass(frozen=True)
class Push:
    """What a webhook said: the branch pushed to, whether the call proved who it is from, the
    delivery's id (to ignore a replay), and what is wrong with the body, if anything."""

    verified: bool
    branch: str | None
    delivery: str | None = None
    malformed: str | None = None


DELIVERY_HEADERS = ("x-github-delivery", "x-gitea-delivery", "x-gitlab-event-uuid")


def read_push(headers: dict[str, str], body: bytes, secret: str | None) -> Push:
    """Verifies a GitHub, Gitea (HMAC-SHA256 of the body) or GitLab (token) push event (pure).
    Whatever the headers and body hold, the answer is a Push: a signature that is not ASCII
    does not match, a body that is not a JSON object with a string `ref` is malformed."""
    lower = {k.lower(): v for k, v in headers.items()}
    if not secret:
        verified = False
    elif "x-hub-signature-256" in lower:
        expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        verified = _same(lower["x-hub-signature-256"], expected)
    elif "x-gitea-signature" in lower:
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        verified = _same(lower["x-gitea-signature"], expected)
    elif "x-gitlab-token" in lower:
        verified = _same(lower["x-gitlab-token"], secret)
    else:
        verified = False
    delivery = next((lower[h][:200] for h in DELIVERY_HEADERS if lower.get(h)), None)
    try:
        event = json.loads(body or b"{}")
    except (ValueError, RecursionError):
        return Push(verified, None, delivery, "the body is not JSON")
    ref = event.get("ref") if isinstance(event, dict) else None
    if not isinstance(ref, str):
        return Push(verified, None, delivery, "the body has no string ref")
    branch = ref.removeprefix("refs/heads/") if ref.startswith("refs/heads/") else None
    return Push(verified, branch, delivery)


def _same(given: str, expected: str) -> bool:
    """A constant-time comparison of what the caller sent (any characters) and the secret."""
    return hmac.compare_digest(given.encode("utf-8", errors="replace"),
                               expected.encode("utf-8"))


class Deliveries:
    """The ids of the last deliveries accepted: a replayed one triggers nothing."""

    def __init__(self, kept: int = 1000):
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._kept = kept
        self._lock = threading.Lock()

    def first_time(self, delivery: str | None) -> bool:
        if delivery is None:
            return True
        with self._lock:
            if delivery in self._seen:
                return False
            self._seen[delivery] = None
            while len(self._seen) > self._kept:
                self._seen.popitem(last=False)
            return True


class BoundedServer(ThreadingHTTPServer):
    """The standard library's threading server with a bound on connections handled at once
    (one past it is closed at once) and a timeout on every socket read (`Handler.timeout`)."""

    daemon_threads = True

    def __init__(self, address, handler, connections: int = MAX_CONNECTIONS):
        super().__init__(address, handler)
        self._slots = threading.BoundedSemaphore(connections)

    def process_request(self, request, client_address):
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except Exception:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class Daemon:
    def __init__(self, settings: Settings, interval_s: float, host: str, port: int,
                 drift_interval_s: float | None = None, unready_after: int = 3,
                 heartbeat_interval_s: float = DEFAULT_HEARTBEAT_INTERVAL_S):
        self.settings = settings
        self.heartbeat_interval_s = heartbeat_interval_s
        self.agent = f"{socket.gethostname()}:{os.getpid()}"   # who beats
        self._beaten_at: float | None = None    # time.monotonic() of the last pushed beat
        self.unready_after = unready_after     # failed cycles in a row that make /readyz 503
        self.failures = 0
        self.interval_s = interval_s
        self.drift_interval_s = drift_interval_s or interval_s
        self.metrics = Metrics()
        self.secret = os.environ.get(SECRET_ENV)
        if self.secret is not None and not self.secret.strip():
            raise ConfigError(f"{SECRET_ENV} is set but empty: every webhook would be accepted; "
                              "set a secret, or unset it to turn webhooks off")
        self.deliveries = Deliveries()
        self.caches = Caches()          # what every cycle may remember of the ones before
        self.lease = shard_lease(settings, self.caches)   # a shard's, held while it runs
        self.ready = threading.Event()
        self.stopping = threading.Event()
        self._wanted = threading.Event()
        self._full = threading.Event()          # a wanted cycle must look at the clusters
        self._settled_at: str | None = None     # the spec commit of a quiet cycle
        self._cycles = 0
        self.server = BoundedServer((host, port), _handler(self))
        self.scheduler = BackgroundScheduler()

    @property
    def address(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def trigger(self, why: str, full: bool = True) -> None:
        """Asks for a cycle; triggers during a cycle make exactly one more. A poll (`full`
        False) only runs it when git moved or the last cycle left something to do."""
        log.log(logging.INFO if full else logging.DEBUG, "cycle wanted: %s", why)
        if full:
            self._full.set()
        self._wanted.set()

    def run(self) -> int:
        signal.signal(signal.SIGTERM, lambda *_: self.stop())
        signal.signal(signal.SIGINT, lambda *_: self.stop())
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        for why, seconds, full in (("poll", self.interval_s, False),
                                   ("drift check", self.drift_interval_s, True)):
            self.scheduler.add_job(self.trigger, "interval", args=[why, full], seconds=seconds,
                                   jitter=max(1, int(seconds / 10)))
        if self.lease is not None:   # renewed between cycles too: a poll may skip them
            self.scheduler.add_job(self._renew, "interval",
                                   seconds=max(1.0, self.settings.lease_ttl_s / 4))
        self.scheduler.start()
        log.info("listening on %s, polling git every %ss, checking drift every %ss",
                 self.address, self.interval_s, self.drift_interval_s)
        self.trigger("start")
        while not self.stopping.is_set():
            if not self._wanted.wait(timeout=0.2):
                continue
            self._wanted.clear()
            full = self._full.is_set()
            self._full.clear()
            if full or not self._unchanged():
                self._cycle()
        self.scheduler.shutdown(wait=False)
        self.server.shutdown()
        keep_quiet(self.settings, self.caches)   # the next start ends its first cycle early
        if self.lease is not None:
            self.lease.release()
        log.info("stopped after %d cycle(s)", self._cycles)
        return 0

    def stop(self) -> None:
        """SIGTERM: running actions finish, the others are deferred, status is pushed."""
        log.info("stopping: running actions finish first, the others wait for the next start")
        self.stopping.set()

    def _unchanged(self) -> bool:
        """True when the last cycle was quiet and git has not moved since (a poll's check)."""
        if self._settled_at is None:
            return False
        try:
            unchanged = spec_head(self.settings, self.caches) == self._settled_at
        except FlinkGitopsError as error:
            self.metrics.polls.labels("error").inc()
            self.metrics.errors.labels("git", "").inc()
            log.warning("poll failed: %s", error)
            return True
        self.metrics.polls.labels("unchanged" if unchanged else "moved").inc()
        return unchanged

    def _cycle(self) -> None:
        """One cycle, then the heartbeat when it is due, whatever the cycle's result."""
        try:
            self._run_cycle()
        finally:
            self.caches.settle()
            self._beat()

    def _run_cycle(self) -> None:
        log.info("cycle %d started", self._cycles + 1)
        started = time.monotonic()
        self._settled_at = None
        try:
            result = sync(self.settings, stopping=self.stopping, caches=self.caches,
                          lease=self.lease)
        except FlinkGitopsError as error:
            self.metrics.cycles.labels("error").inc()
            source = "git" if isinstance(error, SourceError) else \
                "flink" if isinstance(error, FlinkError) else "agent"
            self.metrics.errors.labels(source, "").inc()
            log.warning("cycle failed: %s", error)
            return self._failed()
        except Exception:  # noqa: BLE001 - the daemon outlives any one cycle; the next tries again
            self.metrics.cycles.labels("error").inc()
            self.metrics.errors.labels("agent", "").inc()
            log.exception("cycle failed unexpectedly; the next cycle tries again")
            return self._failed()
        finally:
            self._cycles += 1
        self.failures = 0
        self.metrics.failed_in_a_row.set(0)
        self.metrics.record(result, time.monotonic() - started)
        if result.exit_code == 0 and not result.outcomes:
            self._settled_at = result.commit
        if result.wake_at is not None:   # a periodic savepoint, a stability window, a sync
            self.scheduler.add_job(   # window opening: a full cycle (at the agent's clock's time)
                self.trigger, "date", args=["a cycle is due"], id="wake-up",
                run_date=datetime.now(timezone.utc) + timedelta(
                    seconds=max(0.0, seconds_until(result.wake_at))), replace_existing=True)
        self.ready.set()
        log.info("cycle done in %.2fs (status %s)", time.monotonic() - started,
                 result.status_commit[:10] if result.status_commit else "unchanged")

    def _renew(self) -> None:
        """Renews the shard's lease once half its time is gone (a failure is a log line; the
        next cycle takes it again, or finds another agent holds it)."""
        try:
            self.lease.acquire()
        except FlinkGitopsError as error:
            log.warning("the shard's lease was not renewed: %s", error)

    def _beat(self) -> None:
        """Pushes the heartbeat when `heartbeat_interval_s` passed since the last one pushed
        (a beat that failed is tried again after the next cycle); a failure is a log line."""
        now = time.monotonic()
        if self._beaten_at is not None and now - self._beaten_at < self.heartbeat_interval_s:
            return
        heartbeat = Heartbeat(self.agent, int(time.time()), self.heartbeat_interval_s)
        try:
            beat(SpecRepository(self.settings.repo, self.settings.workdir),
                 self.settings.status_branch, heartbeat)
        except Exception as error:  # noqa: BLE001 - a heartbeat never fails a cycle
            self.metrics.heartbeats.labels("failed").inc()
            log.warning("heartbeat not pushed (the next cycle tries again): %s", error)
            return
        self._beaten_at = now
        self.metrics.heartbeats.labels("pushed").inc()
        self.metrics.last_heartbeat.set(heartbeat.at)

    def _failed(self) -> None:
        """One more cycle failed in a row; from `unready_after` of them on, /readyz says 503
        (the daemon keeps serving and trying: the next cycle that completes makes it ready)."""
        self.failures += 1
        self.metrics.failed_in_a_row.set(self.failures)
        if self.failures >= self.unready_after and self.ready.is_set():
            log.warning("%d cycles failed in a row: not ready until one completes", self.failures)
            self.ready.clear()


def _handler(daemon: Daemon):
    class Handler(BaseHTTPRequestHandler):
        timeout = CONNECTION_TIMEOUT_S   # every read of the socket (a silent client is dropped)

        def do_GET(self):
            path = urlsplit(self.path).path
            if path == "/healthz":
                self._answer(200, b"ok\n")
            elif path == "/readyz":
                ready = daemon.ready.is_set()
                self._answer(200 if ready else 503, b"ready\n" if ready else b"not ready\n")
            elif path == "/metrics":
                self._answer(200, generate_latest(daemon.metrics.registry),
                             CONTENT_TYPE_LATEST)
            else:
                self._answer(404, b"not found\n")

        def do_POST(self):
            if urlsplit(self.path).path != "/hooks/git":
                return self._answer(404, b"not found\n")
            declared = self.headers.get("Content-Length")
            if declared is None:
                return self._refuse("no_length", 411, b"Content-Length required\n")
            if not declared.strip().isdigit():
                return self._refuse("malformed", 400, b"Content-Length is not a length\n")
            if int(declared) > MAX_BODY:
                return self._refuse("too_large", 413, b"body too large\n")
            try:
                body = self.rfile.read(int(declared))
            except OSError:    # the client went silent: the socket read timed out
                return self._refuse("timeout", 408, b"body not sent in time\n")
            push = read_push(dict(self.headers), body, daemon.secret)
            if not push.verified:
                return self._refuse("unauthorized", 401, b"signature or token does not match\n")
            if push.malformed:
                return self._refuse("malformed", 400, push.malformed.encode() + b"\n")
            if not daemon.deliveries.first_time(push.delivery):
                return self._refuse("replayed", 202, b"delivery seen before: ignored\n")
            if push.branch != daemon.settings.branch:
                return self._refuse("ignored", 202, b"not the spec branch: ignored\n")
            daemon.metrics.webhooks.labels("accepted").inc()
            daemon.trigger(f"webhook push to {push.branch}")
            self._answer(202, b"cycle triggered\n")

        def _refuse(self, outcome: str, code: int, body: bytes):
            daemon.metrics.webhooks.labels(outcome).inc()
            self._answer(code, body)

        def _answer(self, code: int, body: bytes, content_type: str = "text/plain"):
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

        def handle_one_request(self):
            try:
                super().handle_one_request()
            except (OSError, ValueError):   # a client that vanished or spoke no HTTP
                self.close_connection = True

    return Handler
