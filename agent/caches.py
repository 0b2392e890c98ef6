"""Every memo the agent keeps across cycles, owned by one object (pure data, and `settle`
tells Python's garbage collector about it).

`sync` makes one for its cycle unless it is given one; the daemon makes one and passes it to
every cycle, so that unchanged spec files are not parsed again, unchanged status documents not
read or rendered again, policies not compiled again, Flink versions not asked again, no state
checked twice, unchanged deployments not checked or assessed again, and a cycle that would
repeat a quiet one ends once it has looked. Tests and a long-running daemon see and reset them
here. (The memo of redacted contents goes with the process's registry of secrets, in
`agent.logs`.)
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from typing import Iterator

from agent.flink.rest import flink_versions
from agent.job_inputs import ARTIFACT_MEMO_SIZE, ARTIFACT_MEMO_TTL_S
from agent.load import ParsedFiles
from agent.memo import Memo
from agent.policy import policy_sets
from agent.quiet import QuietCycle
from agent.state_check import state_checks


FULL_COLLECTION_EVERY = 100   # cycles of a long-running process between full collections


@dataclass
class Caches:
    trees: Memo = field(default_factory=lambda: Memo("git trees", 8))      # commit -> files
    parsed: ParsedFiles = field(default_factory=ParsedFiles)   # files of the last two loads
    documents: Memo = field(default_factory=lambda: Memo("status documents", 1_000_000))
    rendered: Memo = field(default_factory=lambda: Memo("rendered documents", 1_000_000))
    policies: Memo = field(default_factory=policy_sets)        # 8 sets, their workers closed
    versions: Memo = field(default_factory=flink_versions)     # per cluster URL, 10 minutes
    artifacts: Memo = field(default_factory=lambda: Memo(   # identities that do not change
        "artifact identities", ARTIFACT_MEMO_SIZE, ARTIFACT_MEMO_TTL_S))   # (`job_inputs`)
    state_checks: Memo = field(default_factory=state_checks)   # (job digest, state, allow…)
    checks: Memo = field(default_factory=lambda: Memo(   # name -> grounds, problems found
        "deployment checks", 1_000_000))
    quiet: QuietCycle | None = None    # the last cycle, when it changed nothing (`agent.quiet`)
    quiet_on_disk: QuietCycle | bool | None = None   # the one in the work dir (False: none
                                                     # usable; None: not looked for yet)
    deployments: Memo = field(default_factory=lambda: Memo(   # name -> QuietDeployment
        "quiet deployments", 1_000_000))
    leases: Memo = field(default_factory=lambda: Memo(   # lease commit -> (shard, holder)
        "leases", 64))
    settled: int = 0                   # cycles after which `settle` ran
    # the status branch's head as this process last wrote (or found) it, and the report it
    # holds: (spec commit, unattributed problems, web UIs, documents)
    written: tuple | None = None

    @classmethod
    @contextmanager
    def for_one_cycle(cls) -> Iterator[Caches]:
        """Caches that live one cycle (a `sync` or `plan` on its own): cleared after it, which
        ends its policy worker."""
        caches = cls()
        try:
            yield caches
        finally:
            caches.clear()

    def settle(self) -> None:
        """After a cycle of a long-running process (the daemon): what is alive now, the memos
        above all, is kept for long, so Python's cyclic garbage collector is told to leave it
        alone (`gc.freeze`, after collecting the cycle's young garbage). Otherwise every full
        collection, which a cycle's allocations trigger now and then, walks millions of kept
        objects: about a second at 10,000 deployments. Every FULL_COLLECTION_EVERY cycles,
        everything is collected once."""
        self.settled += 1
        if self.settled % FULL_COLLECTION_EVERY == 0:
            gc.unfreeze()
            gc.collect()
        else:
            gc.collect(1)
        gc.freeze()

    def clear(self) -> None:
        """Forgets everything (a policy set's worker process is closed)."""
        for each in fields(self):
            value = getattr(self, each.name)
            if isinstance(value, Memo):
                value.clear()
        self.parsed = ParsedFiles()
        self.quiet = self.quiet_on_disk = self.written = None
