"""The agent's heartbeat: what it says (who beat, when, how often it beats) and what
`flink-gitops status` makes of it (pure).

The daemon beats at most every `--heartbeat-interval`; the heartbeat is a commit beside the
status branch (`status_store.beat`) whose committer time is the time of the beat and whose
message names the agent (host:pid) and its interval (`heartbeat_of` reads it back). An agent
whose newest heartbeat is older than STALE_AFTER_INTERVALS of its intervals is taken for
stopped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone

from agent.clock import age, iso

DEFAULT_HEARTBEAT_INTERVAL_S = 300.0   # `run --heartbeat-interval`'s default; assumed for a
                                       # heartbeat that does not say its interval
STALE_AFTER_INTERVALS = 3              # missed beats after which `status` warns
MAX_AGENT_CHARS = 200                  # of the agent's name shown (host:pid), printable only
_FIELD = re.compile(r"^(Agent|Interval-Seconds): *(.*)$", re.MULTILINE)


@dataclass(frozen=True)
class Heartbeat:
    agent: str                       # host:pid of the agent that beat
    at: int                          # when, in seconds since the epoch
    interval_s: float | None = None  # how often it beats; None: it did not say

    def message(self) -> str:
        """The heartbeat commit's message: a subject, then the fields `read` reads."""
        lines = [f"heartbeat of {self.agent}", "", f"Agent: {self.agent}"]
        if self.interval_s is not None:
            lines.append(f"Interval-Seconds: {self.interval_s:g}")
        return "\n".join(lines) + "\n"

    @property
    def stale_after_s(self) -> float:
        """How old it may grow before `status` warns: STALE_AFTER_INTERVALS of its interval
        (of DEFAULT_HEARTBEAT_INTERVAL_S when it did not say one: 15 minutes)."""
        return STALE_AFTER_INTERVALS * (self.interval_s or DEFAULT_HEARTBEAT_INTERVAL_S)


def heartbeat_of(message: str, at: int) -> Heartbeat:
    """The heartbeat a commit of time `at` and `message` holds; a message without the fields
    (not written by this agent) names no one and says no interval."""
    fields = dict(_FIELD.findall(message))
    try:
        interval = float(fields.get("Interval-Seconds", ""))
    except ValueError:
        interval = None
    if interval is not None and not 0 < interval < float("inf"):
        interval = None
    named = "".join(c for c in fields.get("Agent", "") if c.isprintable())   # no escapes
    agent = named.strip()[:MAX_AGENT_CHARS] or "unknown agent"
    return Heartbeat(agent, at, interval)


@dataclass(frozen=True)
class Freshness:
    """The line `flink-gitops status` prints of the agent, and whether it is a warning."""

    text: str
    stale: bool


def freshness(heartbeat: Heartbeat | None, now: datetime, where: str) -> Freshness:
    """How long ago the agent was last seen at `now`; stale when never (no heartbeat at
    `where`) or longer ago than the heartbeat's `stale_after_s`."""
    if heartbeat is None:
        return Freshness(f"agent never seen: no heartbeat at {where} (is `flink-gitops run` "
                         "running, and can it push?)", stale=True)
    beat = datetime.fromtimestamp(heartbeat.at, timezone.utc)
    seen = f"agent last seen {age(iso(beat), iso(now))} ago ({heartbeat.agent})"
    if (now - beat).total_seconds() <= heartbeat.stale_after_s:
        return Freshness(seen, stale=False)
    interval = heartbeat.interval_s or DEFAULT_HEARTBEAT_INTERVAL_S
    assumed = "" if heartbeat.interval_s else ", the default: the heartbeat does not say its own"
    return Freshness(f"{seen}: older than {STALE_AFTER_INTERVALS} heartbeat intervals "
                     f"({interval:g}s{assumed}); is the agent running?", stale=True)
