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
