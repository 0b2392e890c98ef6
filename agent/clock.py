"""Times as the status documents write them: UTC, to the second (pure, but for `now`).

The agent's clock is the machine's, unless `FLINK_GITOPS_CLOCK` (a test hook, like
`agent.testpoints`) names the time it starts at, e.g. `2026-12-04T16:59:57Z`: from there it runs
as the machine's does, so that a test sees a sync window open without waiting for a weekend.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
CLOCK_ENV = "FLINK_GITOPS_CLOCK"


def _offset() -> timedelta:
    started = os.environ.get(CLOCK_ENV)
    return parse(started) - datetime.now(timezone.utc) if started else timedelta(0)


def now() -> datetime:
    """The agent's time (UTC)."""
    return datetime.now(timezone.utc) + _OFFSET


def utc_now() -> str:
    return iso(now())


def seconds_until(moment: str) -> float:
    """How long from now until `moment` (negative: it has passed), by the agent's clock."""
    return (parse(moment) - now()).total_seconds()


def iso(moment: datetime) -> str:
    return moment.strftime(_FORMAT)


def from_millis(millis: int | None) -> str:
    """A Flink timestamp (ms since the epoch) as status time; now when Flink gave none."""
    if not millis or millis <= 0:
        return utc_now()
    return iso(datetime.fromtimestamp(millis / 1000, timezone.utc))


def parse(moment: str) -> datetime:
    return datetime.strptime(moment, _FORMAT).replace(tzinfo=timezone.utc)


def age(since: str, until: str) -> str:
    """How long from `since` to `until`, coarsely: "45s", "12m", "3h 5m", "2d 4h"."""
    seconds = max(0, int((parse(until) - parse(since)).total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m" if minutes else f"{seconds}s"


_OFFSET = _offset()   # (set once, as the process starts)
