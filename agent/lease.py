"""One agent at a time: a lease on the spec repository, or on one shard of it, next to its status
branch (I/O: git).

The lease is a branch (`<status branch>-lease`; a shard's: `<status branch>-lease-<its
digest>`) whose one commit holds `lease.json`: who holds it, until when, and the shard's
selector. It is taken, renewed and given back with `git push --force-with-lease`, an
atomic compare-and-swap on the remote, so two agents can never both believe they hold it. A
holder that crashed loses it when it expires, or at once to an agent on the same host that sees
the holder's process is gone; a lease this very process left behind (git was unreachable when
it gave it back) is its own to take again.

An agent of the whole repo takes the lease only while it acts. An agent of a shard holds its
shard's lease from its first cycle until it stops, so that the other shards' agents see which
shards are live (`rivals`) and refuse a deployment two of them claim.
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from agent.clock import iso
from agent.errors import FlinkGitopsError, TransientError
from agent.memo import Memo
from agent.model.shard import Selector
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


@dataclass(frozen=True)
class Rival:
    """Another shard's live lease: its selector and who holds it."""

    shard: Selector
    holder: Holder


def lease_ref(status_branch: str, shard: Selector) -> str:
    """The branch of the lease of `shard` (the whole repo's: the one of agents before shards)."""
    return f"refs/heads/{status_branch}-lease" + ("" if shard.everything else f"-{shard.digest}")


class Lease:
    """The lease of one agent process on one spec repository, or on its `shard`."""

    def __init__(self, source: SpecRepository, status_branch: str, ttl_s: float = DEFAULT_TTL_S,
                 shard: Selector = Selector()):
        self.source = source
        self.shard = shard
        self.ref = lease_ref(status_branch, shard)
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
                raise LeaseHeld(f"another agent ({holder.agent}) holds the lease on "
                                f"{self._what()} until {holder.expires_at}")
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
        read = _read(self.source, commit)
        return read[1] if read is not None else None

    def _lease_commit(self) -> str:
        now = datetime.now(timezone.utc)
        lease = {"agent": self.agent, "host": socket.gethostname(), "pid": os.getpid(),
                 "acquiredAt": iso(now), "expiresAt": iso(now + self.ttl),
                 "shard": str(self.shard)}
        blob = self.source.git("hash-object", "-w", "--stdin", input=json.dumps(lease, indent=2))
        tree = self.source.git("mktree", input=f"100644 blob {blob}\tlease.json\n")
        return self.source.git("commit-tree", tree, "-m", f"lease: {self.agent}", env=AUTHOR)

    def _swap(self, expected: str | None, commit: str) -> str:
        try:
            self.source.git("push", "--quiet", f"--force-with-lease={self.ref}:{expected or ''}",
                            REMOTE, f"{commit}:{self.ref}")
        except FlinkGitopsError:
            raise LeaseHeld(f"another agent took the lease on {self._what()} first") from None
        return commit

    def _what(self) -> str:
        return "this repository" if self.shard.everything else f"the shard `{self.shard}`"


def _read(source: SpecRepository, commit: str) -> tuple[Selector, Holder] | None:
    """The shard and holder a lease commit names; None when it is not a lease we can read (it
    is then taken as free)."""
    try:
        data = json.loads(source.git("show", f"{commit}:lease.json"))
        return (Selector.parse(data.get("shard")),
                Holder(data["agent"], data["host"], int(data["pid"]), data["expiresAt"]))
    except (FlinkGitopsError, ValueError, KeyError, TypeError, AttributeError):
        return None


def rivals(source: SpecRepository, status_branch: str, own: Selector, read: Memo
           ) -> list[Rival]:
    """The live leases of shards other than `own` as the last fetch saw them: held and not
    expired, by a holder whose process is not seen gone. `read`: lease commit -> what it says
    (a lease commit changes when it is renewed)."""
    found = source.git("for-each-ref", "--format=%(refname) %(objectname)",
                       f"refs/remotes/{REMOTE}/{status_branch}-lease*")
    mine = lease_ref(status_branch, own).removeprefix("refs/heads/")
    now, live = datetime.now(timezone.utc), []
    for ref, commit in (line.split() for line in found.splitlines()):
        name = ref.removeprefix(f"refs/remotes/{REMOTE}/")
        if name == mine or not re.fullmatch(rf"{re.escape(status_branch)}-lease(-[0-9a-f]{{12}})?",
                                            name):
            continue
        if (lease := read.get(commit)) is None:
            lease = _read(source, commit) or False
            read.put(commit, lease)
        if lease and not lease[1].expired(now) and not lease[1].crashed():
            live.append(Rival(*lease))
    return sorted(live, key=lambda rival: str(rival.shard))
