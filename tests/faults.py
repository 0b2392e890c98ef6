"""Real faults for the tests (DESIGN §6): a TCP proxy between a client and a real server (Flink's
REST port, a `git daemon`) that passes, delays, blackholes, resets or truncates its connections,
or loses the answer to a chosen request after the server acted on it; the local Flink cluster's
JobManager or TaskManager SIGKILLed and started again on the same port; and a `git daemon`
serving bare repositories over the git protocol, to put the proxy in front of."""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from agent.flink import local
from conftest import free_port

HOST = "127.0.0.1"
_CHUNK, _POLL_S = 65536, 0.05  # bytes read at once; how often the threads look for close()
_REQUEST_LINE = re.compile(rb"^[A-Z]+ \S+ HTTP/1\.[01]\r?$")


class Fault(str, Enum):
    """What the proxy does to a request (and so to its connection) or to its answer."""
    PASS = "pass"            # forward both ways
    DELAY = "delay"          # forward, each chunk of the answer `delay_s` late
    BLACKHOLE = "blackhole"  # hold the connection: never forward, never answer
    RESET = "reset"          # close the client's connection with a RST (SO_LINGER 0)
    TRUNCATE = "truncate"    # forward, relay only the first `truncate_bytes` of the answer, close


@dataclass
class _Rule:
    fault: Fault
    pattern: re.Pattern[bytes] | None
    from_forwarded: int       # applies once the proxy has forwarded this many requests
    after_forwarding: bool
    times: int | None         # requests it still applies to (None: every one)


def _reset(sock: socket.socket) -> None:
    """Close `sock` with a RST rather than a FIN."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _whole_first_line(client: socket.socket, data: bytes) -> bytes:
    """`data`, a connection's first bytes, with what the client sends right after them until
    their first line is whole (git writes a pkt-line's length apart from the line)."""
    while len(data) < 200 and not re.search(rb"[\0\n]", data) and \
            select.select([client], [], [], _POLL_S)[0] and (more := client.recv(_CHUNK)):
        data += more
    return data


def _request_lines(tail: bytes, data: bytes, first: bool) -> tuple[list[bytes], bytes]:
    """The HTTP request lines that `data` completes after `tail` (the unfinished line before it),
    and the new tail. The first chunk of a connection that is not HTTP counts as one request,
    named by its first line (git: `0032git-upload-pack /specs.git`)."""
    *complete, rest = (tail + data).split(b"\n")
    lines = [line.rstrip(b"\r") for line in complete if _REQUEST_LINE.match(line)]
    if first and not lines and not re.match(rb"[A-Z]+ ", data):
        lines = [re.split(rb"[\0\r\n]", data, maxsplit=1)[0][:200]]
    return lines, rest[-8192:]


class TcpProxy:
    """A TCP proxy on 127.0.0.1 (a free port) in front of `host:port`, doing `mode` to each new
    connection and to each request on it (an HTTP request line in the client's bytes; keep-alive
    connections carry several). `mode` may be switched at any time; `fault_when` arms a fault for
    chosen requests. Counts: `connections` accepted, `requests` seen (their first lines),
    `forwarded` requests."""

    def __init__(self, host: str, port: int, mode: Fault = Fault.PASS, delay_s: float = 1.0,
                 truncate_bytes: int = 64) -> None:
        self.target, self.port = (host, port), 0  # port: the proxy's own, once started
        self.mode, self.delay_s, self.truncate_bytes = mode, delay_s, truncate_bytes
        self.connections = self.forwarded = 0
        self.requests: list[str] = []
        self._rules: list[_Rule] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> TcpProxy:
        listener = socket.create_server((HOST, 0))
        listener.settimeout(_POLL_S)
        self.port = listener.getsockname()[1]
        self._spawn(self._accept_all, listener)
        return self

    def close(self, timeout: float = 5) -> None:
        """End every connection and thread of the proxy (each notices within `_POLL_S`)."""
        self._closed.set()
        deadline = time.monotonic() + timeout
        for thread in list(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))

    __enter__ = start

    def __exit__(self, *_: object) -> None:
        self.close()

    def fault_when(self, fault: Fault, *, pattern: bytes | None = None, after_requests: int = 0,
                   after_forwarding: bool = False, times: int | None = 1) -> None:
        """Give `fault` to the next `times` requests (None: to every one) whose request line
        matches `pattern` (any when None), once `after_requests` more have been forwarded.
        With `after_forwarding` the request still reaches the server and the fault hits its
        answer: RESET then means "the server acted on it, the answer was lost"."""
        rule = _Rule(fault, re.compile(pattern) if pattern is not None else None,
                     self.forwarded + after_requests, after_forwarding, times)
        with self._lock:
            self._rules.append(rule)

    def heal(self) -> None:
        """Back to passing everything: mode PASS, armed faults dropped."""
        with self._lock:
            self.mode, self._rules = Fault.PASS, []

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        self._threads = [t for t in self._threads if t.is_alive()]
        thread = threading.Thread(target=target, args=args, daemon=True, name="tcp-proxy")
        self._threads.append(thread)
        thread.start()

    def _accept_all(self, listener: socket.socket) -> None:
        with listener:
            while not self._closed.is_set():
                with contextlib.suppress(TimeoutError):
                    self._spawn(self._serve, listener.accept()[0])

    def _decide(self, line: bytes) -> tuple[Fault, bool]:
        """Count the request; its fault, and whether it is forwarded before the fault acts."""
        with self._lock:
            self.requests.append(line.decode("latin-1"))
            fault, after_forwarding = Fault(self.mode), False
            for rule in self._rules:
                if self.forwarded >= rule.from_forwarded and (
                        rule.pattern is None or rule.pattern.search(line)):
                    fault, after_forwarding = rule.fault, rule.after_forwarding
                    rule.times = None if rule.times is None else rule.times - 1
                    if rule.times == 0:
                        self._rules.remove(rule)
                    break
            if after_forwarding or fault not in (Fault.RESET, Fault.BLACKHOLE):
                self.forwarded += 1
            return fault, after_forwarding

    def _serve(self, client: socket.socket) -> None:
        with self._lock:
            self.connections += 1
            mode = Fault(self.mode)
        upstream: socket.socket | None = None
        try:
            client.settimeout(10)
            if mode is Fault.RESET:
                return _reset(client)
            if mode is not Fault.BLACKHOLE:
                upstream = socket.create_connection(self.target, timeout=10)
            self._relay(client, upstream)
        except OSError:  # the server refused or a side broke off: so does the proxy
            _reset(client)
        finally:
            client.close()
            if upstream is not None:
                upstream.close()

    def _relay(self, client: socket.socket, upstream: socket.socket | None) -> None:
        """Forward until either side closes or the proxy does, applying each request's fault."""
        answer, answered, tail, first = Fault.PASS, 0, b"", True
        inputs = [client] if upstream is None else [client, upstream]
        while inputs and not self._closed.is_set():
            readable, _, _ = select.select(inputs, [], [], _POLL_S)
            if client in readable:
                data = client.recv(_CHUNK)
                if not data:
                    inputs.remove(client)
                    if upstream is not None:
                        upstream.shutdown(socket.SHUT_WR)
                    continue
                if upstream is None:  # blackholed
                    continue
                data = _whole_first_line(client, data) if first else data
                lines, tail = _request_lines(tail, data, first)
                first = False
                for line in lines:
                    fault, after_forwarding = self._decide(line)
                    if fault is Fault.RESET and not after_forwarding:
                        return _reset(client)
                    if fault is Fault.BLACKHOLE and not after_forwarding:
                        upstream.close()
                        upstream, inputs = None, [client]
                        break
                    answer, answered = fault, 0
                if upstream is not None:
                    upstream.sendall(data)
            if upstream is not None and upstream in readable:
                data = upstream.recv(_CHUNK)
                if not data:
                    return
                if answer is Fault.RESET:
                    return _reset(client)
                if answer is Fault.BLACKHOLE:
                    upstream.close()
                    upstream, inputs = None, [s for s in inputs if s is client]
                    continue
                if answer is Fault.DELAY and self._closed.wait(self.delay_s):
                    return
                if answer is Fault.TRUNCATE:
                    data = data[:max(0, self.truncate_bytes - answered)]
                client.sendall(data)
                answered += len(data)
                if answer is Fault.TRUNCATE and answered >= self.truncate_bytes:
                    return


# --- the local Flink cluster's processes --------------------------------------------------------


def kill(cluster: local.LocalCluster, role: str, timeout: float = 30) -> None:
    """SIGKILL the cluster's JobManager or TaskManager (`role`: "jobmanager" or "taskmanager")
    and wait until it is gone; the other process lives on."""
    if role not in (local.JOBMANAGER, local.TASKMANAGER):
        raise ValueError(f"no Flink process {role!r}: {local.JOBMANAGER} or {local.TASKMANAGER}")
    pid = int((cluster.home / f"{role}.pid").read_text().strip())
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)  # local.start makes each JVM a session (group) leader
    deadline = time.monotonic() + timeout
    while role in local.status(_workdir(cluster), cluster.port).pids:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the {role} (pid {pid}) outlived SIGKILL for {timeout:g}s")
        time.sleep(0.1)


def restart(cluster: local.LocalCluster, timeout: float = 90) -> local.LocalCluster:
    """Start the cluster again (`local.start`): a dead TaskManager anew; when the JobManager
    died, both afresh on the same REST port (a TaskManager left over is stopped)."""
    return local.start(_workdir(cluster), port=cluster.port, slots=cluster.slots,
                       timeout=timeout)


def _workdir(cluster: local.LocalCluster) -> Path:
    return cluster.home.parent.parent   # a cluster's home is <workdir>/local/<port>


# --- git over the git protocol ------------------------------------------------------------------


class GitDaemon:
    """`git daemon` serving every bare repository under `base` (fetch and push) on 127.0.0.1."""

    def __init__(self, base: Path) -> None:
        self.base, self.port = Path(base), 0
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10) -> GitDaemon:
        self.port = free_port()
        self._process = subprocess.Popen(
            ["git", "daemon", "--reuseaddr", "--export-all", "--enable=receive-pack",
             f"--base-path={self.base}", f"--port={self.port}", f"--listen={HOST}", str(self.base)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(OSError), socket.create_connection((HOST, self.port), 0.5):
                return self
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"git daemon did not listen on {HOST}:{self.port}")
            time.sleep(0.05)

    def url(self, repo: str, via: TcpProxy | None = None) -> str:
        """`git://127.0.0.1:P/<repo>.git`, P this daemon's port or that of a proxy before it."""
        port = via.port if via is not None else self.port
        return f"git://{HOST}:{port}/{repo.removesuffix('.git')}.git"

    def close(self) -> None:
        """Kill the daemon and the children serving its connections."""
        if self._process is not None and self._process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait(10)

    __enter__ = start

    def __exit__(self, *_: object) -> None:
        self.close()


# --- what a fault cost, for benchmarks/faults.py --------------------------------------------------

FIGURES_ENV = "FLINK_GITOPS_FAULT_FIGURES"   # a file each measured fault scenario appends a line to


def recovered(fault: str, names: list[str], rest, spec_repo, savepoint_dir: Path,
              since: float) -> dict:
    """Asserts that the deployments `names` lost nothing to a fault the agent recovered from,
    and records what it cost them (benchmarks/faults.py gathers it): jobs lost
    (a deployment whose recorded job does not run), duplicate jobs (more than one running job
    of a deployment), savepoints lost (one on disk of a deployment's job that its status does
    not name) and seconds from `since` (the fault healed) to now. Appended as a JSON line to
    the file FLINK_GITOPS_FAULT_FIGURES names, when set, and returned."""
    import json
    from agent.job_ids import deployment_key
    running = rest.running()
    lost = duplicates = savepoints_lost = 0
    for name in names:
        status = spec_repo.status_of(name)
        mine = [job for job in running if job.startswith(deployment_key(name))]
        lost += (status.get("job") or {}).get("id") not in mine
        duplicates += max(0, len(mine) - 1)
        known = {s["location"].rsplit("/", 1)[-1]
                 for s in status["history"].get("savepoints", [])}
        jobs = {j["id"][:6] for j in status["history"].get("jobs", [])}
        on_disk = {p.name for p in savepoint_dir.glob("savepoint-*")
                   if p.name.split("-")[1] in jobs}
        savepoints_lost += len(on_disk - known)
    figures = {"fault": fault, "jobs_lost": lost, "duplicates": duplicates,
               "savepoints_lost": savepoints_lost, "recover_s": round(time.monotonic() - since, 2)}
    if os.environ.get(FIGURES_ENV):
        with open(os.environ[FIGURES_ENV], "a") as out:
            out.write(json.dumps(figures) + "\n")
    assert (lost, duplicates, savepoints_lost) == (0, 0, 0), figures
    return figures
