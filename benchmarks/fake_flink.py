"""A fake Flink REST API serving many session clusters at once, for scale benchmarks only
(I/O: an HTTP server).

Thousands of jobs cannot run on two cores, so this server answers the endpoints the agent calls
(`agent/flink/rest.py`, `agent/observe.py`) with payloads shaped like a real Flink 2.3 cluster's
(field names and types copied from `GET /jobs/overview`, `/config`, `/overview`,
`/jobs/:id/checkpoints`, savepoint triggers of a real 2.3 cluster), and keeps the jobs' state:
a submitted job runs, a stop-with-savepoint finishes it with a savepoint, a cancel cancels it.

Every cluster lives under a path prefix: a DeploymentTarget with
`url: http://127.0.0.1:<port>/c/<cluster>` is one cluster. Clusters are created on first use.
The server counts requests per cluster; `GET /_stats` returns and `POST /_stats/reset` clears
them, `GET /_changes` lists the state-changing calls with the time each arrived and the job each
concerns (the benchmarks' instruments, not part of Flink's API).

    python3 benchmarks/fake_flink.py --port 18081
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

FLINK_VERSION = "2.3.0"
_CLUSTER = re.compile(r"^/c/([\w.-]+)(/.*)?$")


def _millis() -> int:
    return int(time.time() * 1000)


@dataclass
class FakeJob:
    jid: str
    name: str
    parallelism: int
    restored_from: str | None
    state: str = "RUNNING"
    start_time: int = field(default_factory=_millis)
    end_time: int = -1
    savepoint: str | None = None          # the stop-with-savepoint's location, once finished

    def overview(self) -> dict:
        """One entry of `GET /jobs/overview`, as Flink 2.3 writes it."""
        now = _millis()
        running = self.state == "RUNNING"
        tasks = {"running": self.parallelism if running else 0, "canceling": 0,
                 "canceled": self.parallelism if self.state == "CANCELED" else 0,
                 "total": self.parallelism, "created": 0, "scheduled": 0, "deploying": 0,
                 "reconciling": 0, "finished": self.parallelism if self.state == "FINISHED"
                 else 0, "initializing": 0, "failed": 0}
        return {"jid": self.jid, "name": self.name, "start-time": self.start_time,
                "end-time": self.end_time,
                "duration": (self.end_time if self.end_time > 0 else now) - self.start_time,
                "state": self.state, "last-modification": self.end_time if self.end_time > 0
                else self.start_time, "tasks": tasks, "pending-operators": 0}

    def checkpoints(self) -> dict:
        """`GET /jobs/:id/checkpoints`, as Flink 2.3 writes it."""
        savepoint = None
        if self.savepoint:
            savepoint = {"className": "completed", "id": 3, "status": "COMPLETED",
                         "is_savepoint": True, "savepointFormat": "CANONICAL",
                         "trigger_timestamp": self.end_time - 40, "latest_ack_timestamp":
                         self.end_time - 5, "checkpointed_size": 1790, "state_size": 1790,
                         "end_to_end_duration": 35, "alignment_buffered": 0,
                         "processed_data": 0, "persisted_data": 0, "num_subtasks": 2,
                         "num_acknowledged_subtasks": 2, "checkpoint_type": "SYNC_SAVEPOINT",
                         "tasks": {}, "external_path": self.savepoint, "discarded": False}
        restored = None
        if self.restored_from:
            restored = {"id": 2, "restore_timestamp": self.start_time, "is_savepoint": True,
                        "external_path": self.restored_from}
        return {"counts": {"restored": 1 if restored else 0, "total": 3, "in_progress": 0,
                           "completed": 3, "failed": 0},
                "summary": {"checkpointed_size": {"min": 1790, "max": 1790, "avg": 1790},
                            "state_size": {"min": 1790, "max": 1790, "avg": 1790},
                            "end_to_end_duration": {"min": 12, "max": 35, "avg": 21}},
                "latest": {"completed": None, "savepoint": savepoint, "failed": None,
                           "restored": restored},
                "history": []}

    def details(self) -> dict:
        """`GET /jobs/:id` (the fields the agent and its tests read)."""
        return {"jid": self.jid, "name": self.name, "isStoppable": False, "state": self.state,
                "job-type": "STREAMING", "start-time": self.start_time,
                "end-time": self.end_time, "duration": 0, "maxParallelism": -1,
                "now": _millis(), "timestamps": {self.state: _millis()},
                "vertices": [{"id": uuid.uuid4().hex, "name": "Source -> Sink",
                              "maxParallelism": 128, "parallelism": self.parallelism,
                              "status": self.state}],
                "status-counts": {self.state: 1}, "plan": {"jid": self.jid, "nodes": []}}


@dataclass
class FakeCluster:
    name: str
    jobs: dict[str, FakeJob] = field(default_factory=dict)
    jars: dict[str, dict] = field(default_factory=dict)
    triggers: dict[str, dict] = field(default_factory=dict)
    requests: Counter = field(default_factory=Counter)


class FakeFlink:
    """Every fake cluster's state, behind one lock."""

    def __init__(self, savepoints: Path | None = None) -> None:
        """`savepoints`: where savepoints are made as folders with a `_metadata` file (as an
        agent restoring after a crash checks); None: only named (at file:/savepoints)."""
        self.savepoints = savepoints
        self.clusters: dict[str, FakeCluster] = {}
        self.changes: list[dict] = []      # state-changing calls: when, where, what
        self.lock = threading.Lock()

    def cluster(self, name: str) -> FakeCluster:
        if name not in self.clusters:
            self.clusters[name] = FakeCluster(name)
        return self.clusters[name]

    def stats(self) -> dict:
        return {name: dict(c.requests) for name, c in sorted(self.clusters.items())}

    def reset(self) -> None:
        for cluster in self.clusters.values():
            cluster.requests.clear()
        self.changes.clear()

    def answer(self, cluster: FakeCluster, method: str, path: str, query: str,
               body: bytes) -> tuple[int, dict]:
        """(HTTP status, JSON answer) of one request to one cluster."""
        parts = [p for p in path.split("/") if p]
        route = "/" + "/".join(":id" if len(p) == 32 or p.startswith("t-") or p.endswith(".jar")
                               else p for p in parts)
        cluster.requests[f"{method} {route}"] += 1
        if method != "GET":   # with the job it concerns (a submission's: the id it asks for)
            job = next((p for p in parts if len(p) == 32), None) if route != \
                "/jars/:id/run" else json.loads(body or b"{}").get("jobId")
            self.changes.append({"at": time.time(), "cluster": cluster.name,
                                 "call": f"{method} {route}", "job": job})
        match method, parts:
            case "GET", ["config"]:
                return 200, {"refresh-interval": 3000, "timezone-name": "Coordinated Universal "
                             "Time", "timezone-offset": 0, "flink-version": FLINK_VERSION,
                             "flink-revision": "1b3c1ad @ 2026-03-02T10:00:00+01:00",
                             "features": {"web-submit": True, "web-cancel": True,
                                          "web-rescale": False, "web-history": False}}
            case "GET", ["overview"]:
                running = sum(1 for j in cluster.jobs.values() if j.state == "RUNNING")
                return 200, {"taskmanagers": 1, "slots-total": 100000,
                             "slots-available": 100000 - running, "jobs-running": running,
                             "jobs-finished": sum(1 for j in cluster.jobs.values()
                                                  if j.state == "FINISHED"),
                             "jobs-cancelled": sum(1 for j in cluster.jobs.values()
                                                   if j.state == "CANCELED"),
                             "jobs-failed": 0, "flink-version": FLINK_VERSION,
                             "flink-commit": "1b3c1ad"}
            case "GET", ["jobs", "overview"]:
                return 200, {"jobs": [j.overview() for j in cluster.jobs.values()]}
            case "GET", ["jars"]:
                return 200, {"address": "http://localhost:8081",
                             "files": list(cluster.jars.values())}
            case "POST", ["jars", "upload"]:
                name = re.search(rb'filename="([^"]+)"', body)
                name = name.group(1).decode() if name else "job.jar"
                jar_id = f"{uuid.uuid4()}_{name}"
                cluster.jars[jar_id] = {"id": jar_id, "name": name, "uploaded": _millis(),
                                        "entry": [{"name": "com.example.Job",
                                                   "description": None}]}
                return 200, {"filename": f"/tmp/flink-web-upload/{jar_id}",
                             "status": "success"}
            case "POST", ["jars", jar_id, "run"]:
                if jar_id not in cluster.jars:
                    return 400, {"errors": [f"Jar file /tmp/flink-web-upload/{jar_id} does "
                                            "not exist"]}
                request = json.loads(body or b"{}")
                jid = request.get("jobId") or uuid.uuid4().hex
                if jid in cluster.jobs and not cluster.jobs[jid].state in ("FINISHED",
                                                                          "CANCELED"):
                    return 500, {"errors": ["org.apache.flink.runtime.client."
                                            "DuplicateJobSubmissionException: Job has already "
                                            "been submitted."]}
                cluster.jobs[jid] = FakeJob(jid, "job", int(request.get("parallelism") or 1),
                                            request.get("savepointPath"))
                return 200, {"jobid": jid}
            case "GET", ["jobs", jid] if jid in cluster.jobs:
                return 200, cluster.jobs[jid].details()
            case "PATCH", ["jobs", jid] if jid in cluster.jobs:
                job = cluster.jobs[jid]
                if job.state == "RUNNING":
                    job.state, job.end_time = "CANCELED", _millis()
                return 202, {}
            case "POST", ["jobs", jid, "stop" | "savepoints" as kind] if jid in cluster.jobs:
                job = cluster.jobs[jid]
                trigger = f"t-{uuid.uuid4().hex}"
                if job.state != "RUNNING":
                    cluster.triggers[trigger] = {"status": {"id": "COMPLETED"}, "operation": {
                        "failure-cause": {"class": "java.util.concurrent.CompletionException",
                                          "stack-trace": "org.apache.flink.runtime.checkpoint."
                                          "CheckpointException: job is not running"}}}
                    return 202, {"request-id": trigger}
                folder = f"{job.jid[:6]}/savepoint-{job.jid[:6]}-{uuid.uuid4().hex[:12]}"
                location = f"file:/savepoints/{folder}"
                if self.savepoints is not None:
                    (self.savepoints / folder).mkdir(parents=True)
                    (self.savepoints / folder / "_metadata").write_bytes(b"")
                    location = (self.savepoints / folder).as_uri()
                if kind == "stop":
                    job.state, job.end_time, job.savepoint = "FINISHED", _millis(), location
                cluster.triggers[trigger] = {"status": {"id": "COMPLETED"},
                                             "operation": {"location": location}}
                return 202, {"request-id": trigger}
            case "GET", ["jobs", jid, "savepoints", trigger] if trigger in cluster.triggers:
                return 200, cluster.triggers[trigger]
            case "GET", ["jobs", jid, "checkpoints"] if jid in cluster.jobs:
                return 200, cluster.jobs[jid].checkpoints()
            case "GET", ["jobs", jid, "exceptions"] if jid in cluster.jobs:
                return 200, {"root-exception": None, "timestamp": None, "all-exceptions": [],
                             "truncated": False,
                             "exceptionHistory": {"entries": [], "truncated": False}}
            case "GET", ["jobs", jid, "metrics"] if jid in cluster.jobs:
                return 200, [{"id": "numRestarts", "value": "0"}]
        return 404, {"errors": ["Not found: " + path]}


def handler(flink: FakeFlink):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"     # keep-alive, as Flink's netty server

        def _serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            path, _, query = self.path.partition("?")
            if path == "/_changes":
                with flink.lock:
                    return self._send(200, flink.changes)
            if path.startswith("/_stats"):
                with flink.lock:
                    if method == "POST":
                        flink.reset()
                    return self._send(200, flink.stats())
            match = _CLUSTER.match(path)
            if match is None:
                return self._send(404, {"errors": ["Not found: " + path]})
            with flink.lock:
                status, answer = flink.answer(flink.cluster(match.group(1)), method,
                                              match.group(2) or "/", query, body)
            self._send(status, answer)

        def _send(self, status: int, answer) -> None:
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            self._serve("GET")

        def do_POST(self):
            self._serve("POST")

        def do_PATCH(self):
            self._serve("PATCH")

        def log_message(self, *args):
            pass

    return Handler


class Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        """A client that went away (an agent killed by a benchmark) is no error to print."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def serve(port: int, savepoints: Path | None = None) -> ThreadingHTTPServer:
    """A started server (in a thread of this process); `savepoints`: see FakeFlink."""
    server = Server(("127.0.0.1", port), handler(FakeFlink(savepoints)))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=18081)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler(FakeFlink()))
    server.daemon_threads = True
    print(f"fake Flink {FLINK_VERSION} on http://127.0.0.1:{args.port}/c/<cluster>", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
