"""Cron schedules of sync windows: when they open and how long they stay open (pure: every time
comes in from the caller).

A schedule is a standard five-field crontab line (minute hour day-of-month month day-of-week),
read in a time zone of the IANA database. APScheduler's CronTrigger computes the times; its
3.x `from_crontab` counts day-of-week numbers from Monday (5 = Saturday), where crontab counts
from Sunday (5 = Friday, 0 and 7 = Sunday), so numbers are turned into day names first.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from apscheduler.triggers.cron import CronTrigger

_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_NUMBERS = re.compile(r"^(\*|\d+(?:-\d+)?)(?:/(\d+))?$")
_EPOCH = datetime(2000, 1, 1, tzinfo=timezone.utc)
MAX_STEPS = 1_000   # occurrences looked at to find where overlapping ones end (then: it is open
                    # at least until there)


def time_zone(name: str) -> tzinfo:
    """The IANA time zone `name` (ValueError naming it when there is none)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):   # (OSError: a name too long)
        raise ValueError(f"{name!r} is not a time zone of the IANA database, "
                         "e.g. UTC or Europe/Berlin") from None


@lru_cache(maxsize=256)
def trigger(schedule: str, zone: str) -> CronTrigger:
    """The trigger of a crontab line in a time zone (ValueError saying what is wrong)."""
    fields = schedule.split()
    if len(fields) != 5:
        raise ValueError(f"{schedule!r} is not a cron schedule: it needs 5 fields (minute hour "
                         f"day-of-month month day-of-week), it has {len(fields)}")
    fields[4] = _weekdays(fields[4])
    from apscheduler.triggers.cron import CronTrigger   # (90 ms to import: only for a window)

    try:
        cron = CronTrigger.from_crontab(" ".join(fields), timezone=time_zone(zone))
    except ValueError as error:
        raise ValueError(f"{schedule!r} is not a cron schedule: {error}") from None
    if cron.get_next_fire_time(None, _EPOCH) is None:   # e.g. "0 0 31 2 *"
        raise ValueError(f"{schedule!r} never fires (is the day in the month?)")
    return cron


def _weekdays(field: str) -> str:
    """A crontab day-of-week field with its numbers (0-7, Sunday 0 and 7) as day names."""
    names = []
    for part in field.split(","):
        found = _NUMBERS.match(part)
        if found is None or part == "*":
            names.append(part)   # a name, a name range, or *: APScheduler reads it as it is
            continue
        span, step = found.group(1), int(found.group(2) or 1)
        first, _, last = span.partition("-")
        low, high = (0, 7) if span == "*" else (int(first), int(last or first))
        if high > 7 or low > high or step < 1:
            raise ValueError(f"day-of-week {part!r}: days are 0-7 (0 and 7: Sunday)")
        days = range(low, high + 1, step) if (last or found.group(2)) else (low,)
        names += sorted({_DAYS[day % 7] for day in days}, key=_DAYS.index)
    return ",".join(dict.fromkeys(names))


def open_until(schedule: str, zone: str, duration: timedelta,
               moment: datetime) -> datetime | None:
    """When the window open at `moment` closes (occurrences that overlap count as one), or None
    when it is closed then."""
    cron = trigger(schedule, zone)
    start = cron.get_next_fire_time(None, moment - duration + timedelta(microseconds=1))
    if start is None or start > moment:
        return None
    end = start + duration
    for _ in range(MAX_STEPS):   # a later occurrence that begins before this one ends
        start = cron.get_next_fire_time(start, start)
        if start is None or start > end:
            break
        end = max(end, start + duration)
    return end


def next_opening(schedule: str, zone: str, moment: datetime) -> datetime | None:
    """When the window next opens after `moment` (None: never again)."""
    return trigger(schedule, zone).get_next_fire_time(None, moment + timedelta(microseconds=1))
