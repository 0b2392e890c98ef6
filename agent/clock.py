"""Times as the status documents write them: UTC, to the second (pure, but for `utc_now`)."""

from __future__ import annotations

from datetime import datetime, timezone

_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def utc_now() -> str:
    return iso(datetime.now(timezone.utc))


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
