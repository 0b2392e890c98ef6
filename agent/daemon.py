"""`flink-gitops run`: cycles on a schedule and on webhooks, with health and metrics endpoints
(I/O: HTTP server, threads, signals).

Cycles never overlap: every trigger only marks a cycle as wanted, and one runner thread runs
them one after another — a trigger during a cycle makes exactly one more. Triggers: a webhook
push and the drift check (every `drift_interval`, with jitter) always run a full cycle; the poll
(every `interval`, with jitter) runs one only when git moved since the last cycle or that cycle
left something unsettled, so polling often costs a `git fetch`, not a look at every cluster.
SIGTERM lets the running actions finish (no step is left half way: a stopped job always has its
savepoint recorded), defers the actions not yet started, pushes status and exits 0.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from apscheduler.schedulers.background import BackgroundScheduler
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import generate_latest

from agent.config import Settings
from agent.errors import FlinkError, FlinkGitopsError, SourceError
from agent.reconcile import SyncResult, spec_head, sync

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024
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
        self.webhooks = Counter("flink_gitops_webhooks", "Webhook calls by outcome", ["outcome"],
                                registry=self.registry)

    def record(self, result: SyncResult, seconds: float) -> None:
        self.cycle_duration.observe(seconds)
        self.cycles.labels("success").inc()
        self.last_success.set(time.time())
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
class Push:
    """What a webhook said: the branch pushed to, and whether the call proved who it is from."""

    verified: bool
    branch: str | None


def read_push(headers: dict[str, str], body: bytes, secret: str | None) -> Push:
    """Verifies a GitHub, Gitea (HMAC-SHA256 of the body) or GitLab (token) push event (pure)."""
    lower = {k.lower(): v for k, v in headers.items()}
    if secret is None:
        verified = False
    elif "x-hub-signature-256" in lower:
        expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        verified = hmac.compare_digest(lower["x-hub-signature-256"], expected)
    elif "x-gitea-signature" in lower:
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        verified = hmac.compare_digest(lower["x-gitea-signature"], expected)
    elif "x-gitlab-token" in lower:
        verified = hmac.compare_digest(lower["x-gitlab-token"], secret)
    else:
        verified = False
    try:
        ref = json.loads(body or b"{}").get("ref", "")
    except (ValueError, AttributeError):
        ref = ""
    branch = ref.removeprefix("refs/heads/") if ref.startswith("refs/heads/") else None
    return Push(verified, branch)


class Daemon:
    def __init__(self, settings: Settings, interval_s: float, host: str, port: int,
                 drift_interval_s: float | None = None):
        self.settings = settings
        self.interval_s = interval_s
        self.drift_interval_s = drift_interval_s or interval_s
        self.metrics = Metrics()
        self.secret = os.environ.get(SECRET_ENV)
        self.ready = threading.Event()
        self.stopping = threading.Event()
        self._wanted = threading.Event()
        self._full = threading.Event()          # a wanted cycle must look at the clusters
        self._settled_at: str | None = None     # the spec commit of a quiet cycle
        self._cycles = 0
        self.server = ThreadingHTTPServer((host, port), _handler(self))
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
            unchanged = spec_head(self.settings) == self._settled_at
        except FlinkGitopsError as error:
            self.metrics.polls.labels("error").inc()
            self.metrics.errors.labels("git", "").inc()
            log.warning("poll failed: %s", error)
            return True
        self.metrics.polls.labels("unchanged" if unchanged else "moved").inc()
        return unchanged

    def _cycle(self) -> None:
        log.info("cycle %d started", self._cycles + 1)
        started = time.monotonic()
        self._settled_at = None
        try:
            result = sync(self.settings, stopping=self.stopping)
        except FlinkGitopsError as error:
            self.metrics.cycles.labels("error").inc()
            source = "git" if isinstance(error, SourceError) else \
                "flink" if isinstance(error, FlinkError) else "agent"
            self.metrics.errors.labels(source, "").inc()
            log.warning("cycle failed: %s", error)
            return
        except Exception:  # noqa: BLE001 - the daemon outlives any one cycle; the next tries again
            self.metrics.cycles.labels("error").inc()
            self.metrics.errors.labels("agent", "").inc()
            log.exception("cycle failed unexpectedly; the next cycle tries again")
            return
        finally:
            self._cycles += 1
        self.metrics.record(result, time.monotonic() - started)
        if result.exit_code == 0 and not result.outcomes:
            self._settled_at = result.commit
        self.ready.set()
        log.info("cycle done in %.2fs (status %s)", time.monotonic() - started,
                 result.status_commit[:10] if result.status_commit else "unchanged")


def _handler(daemon: Daemon):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/healthz":
                self._answer(200, b"ok\n")
            elif self.path == "/readyz":
                ready = daemon.ready.is_set()
                self._answer(200 if ready else 503, b"ready\n" if ready else b"not ready\n")
            elif self.path == "/metrics":
                self._answer(200, generate_latest(daemon.metrics.registry),
                             CONTENT_TYPE_LATEST)
            else:
                self._answer(404, b"not found\n")

        def do_POST(self):
            if self.path != "/hooks/git":
                return self._answer(404, b"not found\n")
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                daemon.metrics.webhooks.labels("too_large").inc()
                return self._answer(413, b"body too large\n")
            push = read_push(dict(self.headers), self.rfile.read(length), daemon.secret)
            if not push.verified:
                daemon.metrics.webhooks.labels("unauthorized").inc()
                return self._answer(401, b"signature or token does not match\n")
            if push.branch != daemon.settings.branch:
                daemon.metrics.webhooks.labels("ignored").inc()
                return self._answer(202, b"not the spec branch: ignored\n")
            daemon.metrics.webhooks.labels("accepted").inc()
            daemon.trigger(f"webhook push to {push.branch}")
            self._answer(202, b"cycle triggered\n")

        def _answer(self, code: int, body: bytes, content_type: str = "text/plain"):
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    return Handler
