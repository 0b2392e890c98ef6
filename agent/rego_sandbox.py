"""Rego policies run in a sandboxed worker process, bounded in size, time and memory (I/O: a
child process).

A policy from the spec repository is code written by whoever can open a pull request. It runs
in a worker (`agent/rego_worker.py`) started with an empty environment, so `opa.runtime()` sees
none of the agent's variables (the Rego engine has no network or file builtins). The agent
bounds it: a file over MAX_POLICY_BYTES is not compiled; a compile over COMPILE_TIMEOUT_S, an
evaluation over EVALUATE_TIMEOUT_S or a worker whose resident memory passes MAX_WORKER_RSS_BYTES
kills the worker (a new one takes its place), and that file denies every change from then on,
naming itself and the limit. Rego's allocator reserves a huge address space at start, so the
memory bound watches resident memory, not an rlimit.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path
from typing import Any

WORKER = Path(__file__).resolve().parent / "rego_worker.py"
MAX_POLICY_BYTES = 256 * 1024
COMPILE_TIMEOUT_S = 20.0
EVALUATE_TIMEOUT_S = 2.0
MAX_WORKER_RSS_BYTES = 512 * 1024 * 1024
_POLL_S = 0.05


class Sandbox:
    """The worker of one set of policy files: compiled once, evaluated per input."""

    def __init__(self, files: dict[str, str], package: str):
        self.files = files
        self.package = package
        self.broken: dict[str, str] = {}     # path -> why it denies every change
        for path, text in files.items():
            size = len(text.encode())
            if size > MAX_POLICY_BYTES:
                self.broken[path] = (f"{path}: policy is {size:,} bytes, over the limit of "
                                     f"{MAX_POLICY_BYTES:,}; every change is held until it is "
                                     "smaller")
        self._process: subprocess.Popen | None = None
        self._buffer = b""
        self._lock = threading.Lock()
        with self._lock:
            self._start()

    @property
    def working(self) -> list[str]:
        """The files that compiled and never broke a limit, in order."""
        return [path for path in self.files if path not in self.broken]

    def evaluate(self, document: dict[str, Any]) -> dict[str, dict]:
        """Each working file's answer to `document`: {"deny": [...], "warn": [...]} or
        {"error": "..."}; a file that breaks a limit now joins `broken`."""
        with self._lock:
            answers: dict[str, dict] = {}
            while pending := [p for p in self.working if p not in answers]:
                self._send({"evaluate": document, "paths": pending, "package": self.package})
                for path in pending:
                    answer, trouble = self._read(EVALUATE_TIMEOUT_S)
                    if trouble is not None:
                        self.broken[path] = f"{path}: evaluating {trouble}; every change is " \
                                            "held until it is fixed"
                        self._start()
                        break
                    answers[path] = answer
            return answers

    def close(self) -> None:
        with self._lock:
            self._stop()

    # --- the worker --------------------------------------------------------------------------

    def _start(self) -> None:
        """A fresh worker with every working file compiled (those that fail join `broken`)."""
        while True:
            self._stop()
            self._process = subprocess.Popen(
                [sys.executable, "-I", str(WORKER)], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env={})
            self._poller = select.poll()   # poll, not select: any descriptor number
            self._poller.register(self._process.stdout.fileno(), select.POLLIN)
            # a sandbox dropped without close() still ends its worker
            self._finalizer = weakref.finalize(self, _end, self._process)
            paths = self.working
            self._send({"compile": {p: self.files[p] for p in paths}, "package": self.package})
            for path in paths:
                answer, trouble = self._read(COMPILE_TIMEOUT_S)
                if trouble is not None:
                    self.broken[path] = f"{path}: compiling {trouble}; every change is held " \
                                        "until it is fixed"
                    break
                if answer["error"]:
                    self.broken[path] = (f"{path}:{answer['error']}; every change is held "
                                         "until it is fixed")
            else:
                return

    def _stop(self) -> None:
        if self._process is not None:
            self._finalizer.detach()
            _end(self._process)
            self._process = None
            self._buffer = b""

    def _send(self, request: dict) -> None:
        try:
            self._process.stdin.write(json.dumps(request).encode() + b"\n")
            self._process.stdin.flush()
        except (BrokenPipeError, OSError):
            pass   # the worker died: the read that follows says so

    def _read(self, timeout: float) -> tuple[dict | None, str | None]:
        """The worker's next answer, or why there is none: the time limit passed, the memory
        limit was crossed or the worker died (then it is killed)."""
        deadline = time.monotonic() + timeout
        stream = self._process.stdout.fileno()
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None, f"took over {timeout:g}s (the limit)"
            if _resident_bytes(self._process.pid) > MAX_WORKER_RSS_BYTES:
                return None, (f"used over {MAX_WORKER_RSS_BYTES // 2**20} MiB of memory "
                              "(the limit)")
            if self._poller.poll(min(_POLL_S, remaining) * 1000):
                chunk = os.read(stream, 1 << 16)
                if not chunk:
                    return None, "ended the policy worker"
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line), None


def _end(process: subprocess.Popen) -> None:
    """Kills a worker and closes its pipes."""
    process.kill()
    process.wait()
    for stream in (process.stdin, process.stdout):
        stream.close()


def _resident_bytes(pid: int) -> int:
    """A process's resident memory (0 where /proc does not tell)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0
