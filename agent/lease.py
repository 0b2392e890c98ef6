"""One agent at a time: a lease on the spec repository, next to its status branch (I/O: git).

The lease is a branch (`<status branch>-lease`) whose one commit holds `lease.json`: who holds
it and until when. It is taken, renewed and given back with `git push --force-with-lease`, an
atomic compare-and-swap on the remote, so two agents can never both believe they hold it. A
holder that crashed loses it when it expires, or at once to an agent on the same host that sees
the holder's process is gone; a lease this very process left behind (git was unreachable when
it gave it back) is its own to take again.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from agent.clock import iso
from agent.errors import FlinkGitopsError, TransientError
from agent.status_store import AUTHOR
from agent.source import REMOTE, SpecRepository

DEFAULT_TTL_S = 900.0


class LeaseHeld(TransientError):
    """Another agent holds the lease; the message says who and until when."""


@dataclass(frozen=True)
class Holder:
    agent: str        # host:pid:nonce
    host: str
    pid: int
    expires_at: str

    def expired(self, now: datetime) -> bool:
        return datetime.fromisoformat(self.expires_at.replace("Z", "+00:00")) <= now

    def this_process(self) -> bool:
        """The holder is this very process: an earlier cycle of it could not give the lease
        back (git was unreachable), and it is ours to take again."""
        return self.host == socket.gethostname() and self.pid == os.getpid()

    def crashed(self) -> bool:
        """The holder ran on this host and its process is gone."""
        if self.host != socket.gethostname():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False


class Lease:
    """The lease of one agent process on one spec repository."""

    def __init__(self, source: SpecRepository, status_branch: str, ttl_s: float = DEFAULT_TTL_S):
        self.source = source
        self.ref = f"refs/heads/{status_branch}-lease"
        self.status_ref = f"refs/heads/{status_branch}"
        self.status_head: str | None = None   # the status branch's remote head when taken
        self.took_over = False                # taken from another (expired or crashed) holder
        self.ttl = timedelta(seconds=ttl_s)
        self.agent = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._commit: str | None = None   # our lease commit on the remote, while we hold it
        self._renewing = threading.Lock()  # actions on several targets renew it concurrently
        self._taken_at = 0.0               # time.monotonic() of our last take or renewal

    def acquire(self) -> None:
        """Takes the lease, or renews it once half its time is gone (renewing is a push: before
        every one of 10,000 actions it was most of a first deploy's cost); LeaseHeld when
        another live agent has it."""
        with self._renewing:
            fresh = time.monotonic() - self._taken_at < self.ttl.total_seconds() / 2
            if self._commit is None or not fresh:
                self._take()
                self._taken_at = time.monotonic()

    def _take(self) -> None:
        heads = self._remote_heads()
        current = heads.get(self.ref)
        if self._commit is None:
            self.status_head, self.took_over = heads.get(self.status_ref), current is not None
        if current is not None and current != self._commit:
            holder = self._holder(current)
            now = datetime.now(timezone.utc)
            if holder is not None and not holder.expired(now) and not holder.crashed() \
                    and not holder.this_process():
                raise LeaseHeld(f"another agent ({holder.agent}) holds the lease on this "
                                f"repository until {holder.expires_at}")
        self._commit = self._swap(current, self._lease_commit())

    def release(self) -> None:
        """Gives the lease back (only if it is still ours)."""
        if self._commit is None:
            return
        try:
            self.source.git("push", "--quiet", f"--force-with-lease={self.ref}:{self._commit}",
                            REMOTE, f":{self.ref}")
        except FlinkGitopsError:
            pass  # taken over meanwhile, or unreachable: it expires by itself
        self._commit = None

    def __enter__(self) -> Lease:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    # --- git ---------------------------------------------------------------------------------

    def _remote_heads(self) -> dict[str, str]:
        """The remote's lease and status refs -> commits, in one round trip."""
        lines = self.source.git("ls-remote", REMOTE, self.ref, self.status_ref).splitlines()
        return {ref: commit for commit, ref in (line.split() for line in lines)}

    def _holder(self, commit: str) -> Holder | None:
        self.source.git("fetch", "--quiet", REMOTE, f"+{self.ref}:refs/flink-gitops/lease")
        try:
            data = json.loads(self.source.git("show", f"{commit}:lease.json"))
            return Holder(data["agent"], data["host"], int(data["pid"]), data["expiresAt"])
        except (FlinkGitopsError, ValueError, KeyError):
            return None  # not a lease we can read: treat as free

    def _lease_commit(self) -> str:
        now = datetime.now(timezone.utc)
        lease = {"agent": self.agent, "host": socket.gethostname(), "pid": os.getpid(),
                 "acquiredAt": iso(now), "expiresAt": iso(now + self.ttl)}
        blob = self.source.git("hash-object", "-w", "--stdin", input=json.dumps(lease, indent=2))
        tree = self.source.git("mktree", input=f"100644 blob {blob}\tlease.json\n")
        return self.source.git("commit-tree", tree, "-m", f"lease: {self.agent}", env=AUTHOR)

    def _swap(self, expected: str | None, commit: str) -> str:
        try:
            self.source.git("push", "--quiet", f"--force-with-lease={self.ref}:{expected or ''}",
                            REMOTE, f"{commit}:{self.ref}")
        except FlinkGitopsError:
            raise LeaseHeld("another agent took the lease on this repository first") from None
        return commit


