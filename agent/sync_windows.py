"""Sync windows: whether a deployment's change may run now, and else until when (pure: the
time comes in from the caller).

A `SyncWindow` of the spec repo opens each time its cron `schedule` fires (in its `timeZone`)
and stays open for its `duration`; it applies to the deployments its `deployments` selector
picks (all its `matchLabels`, and one of its `targets`; all deployments when it has none).
A deployment's change runs only when no deny window that applies to it is open and, when allow
windows apply to it, one of them is: where an allow and a deny window overlap, deny wins.
Otherwise the change is deferred until the first moment both hold, named with the window that
closes it now.

What is a change: everything a spec asks for (a start, an upgrade, a suspend, a deletion, a
savepoint or redeploy by nonce, an adoption). What is not: a job that died or drifted started
again as it ran (self-heal: only inside a window that says `selfHeal: true`), a savepoint or
disposal of the deployment's own schedule, and the end of an upgrade's stability window (a
rollback included), which always run. `sync --override-window` acts inside windows that say
`manualSync: true`. A SyncWindow that cannot be read holds every change (BLOCKED, naming it):
nobody can tell whom it would freeze; a job that died is still started again as it ran.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone

from agent.clock import iso
from agent.diff import Difference
from agent.load import LoadResult, SpecProblem
from agent.model.schedule import next_opening, open_until, time_zone
from agent.model.shard import Placement
from agent.model.spec import SyncWindow, WindowKind, duration_seconds
from agent.model.verdict import WindowVerdict
from agent.plan import Plan, heals

OPEN = WindowVerdict()   # no window: every change runs
MAX_WINDOWS = 256   # SyncWindows of a spec repo; more: none is read, and every change is held
MAX_HOPS = 16   # closings and openings looked through for the first moment changes may run
HORIZON = timedelta(days=366)   # nor further ahead than this


@dataclass
class Timetable:
    """The spec repo's sync windows, judged at `now`; remembers what it computed (one cycle)."""

    windows: tuple[SyncWindow, ...]
    refused: tuple[SpecProblem, ...]
    now: datetime
    _ends: dict = field(default_factory=dict)       # (window, moment) -> open until, or None
    _verdicts: dict = field(default_factory=dict)   # names of the windows applying -> verdict
    _placed: dict = field(default_factory=dict)     # (labels, target) -> verdict

    @classmethod
    def of(cls, loaded: LoadResult, now: datetime) -> Timetable:
        windows = tuple(located.spec for _, located in sorted(loaded.windows.items()))
        refused = tuple(loaded.unread_windows)
        if len(windows) > MAX_WINDOWS:
            first = min(loaded.windows.values(), key=lambda located: (located.file, located.line))
            refused += (SpecProblem(first.file, first.line, f"{len(windows):,} SyncWindows, "
                                    f"over the limit of {MAX_WINDOWS}", "SyncWindow"),)
        return cls(windows, refused, now)

    def verdict(self, placement: Placement | None) -> WindowVerdict:
        """What the windows say of the changes of a deployment placed at `placement`."""
        if not self.windows and not self.refused:
            return OPEN
        place = None if placement is None else (frozenset(placement.labels.items()),
                                                placement.target)
        if place not in self._placed:
            applying = tuple(w for w in self.windows if placement is not None
                             and _applies(w, placement))
            key = tuple(w.name for w in applying)
            if key not in self._verdicts:
                self._verdicts[key] = self._judged(applying)
            self._placed[place] = self._verdicts[key]
        return self._placed[place]

    def _judged(self, applying: tuple[SyncWindow, ...]) -> WindowVerdict:
        names = tuple(w.name for w in applying)
        if self.refused:
            first = self.refused[0]
            return WindowVerdict(names, refused=(
                f"the SyncWindow at {first.file}:{first.line} cannot be read ({first.message}): "
                "no change runs until it is fixed"))
        closing = self._closing(applying, self.now)
        if not closing:
            return WindowVerdict(names)
        moment, first, until = self.now, closing[0], None
        for _ in range(MAX_HOPS):
            later = self._next_open(applying, moment)
            if later is None or later - self.now > HORIZON:
                break
            if later == moment:
                until = moment
                break
            moment = later
        local = until.astimezone(time_zone(first.spec.time_zone)) if until else None
        return WindowVerdict(
            names, first.name, first.spec.kind.value,
            iso(until.astimezone(timezone.utc)) if until else None,
            local.strftime("%a %Y-%m-%d %H:%M %Z") if local else None,
            all(w.spec.manual_sync for w in closing), all(w.spec.self_heal for w in closing))

    def _closing(self, applying: tuple[SyncWindow, ...], moment: datetime) -> list[SyncWindow]:
        """The windows that keep changes from running at `moment`: the deny windows open then,
        and, when no allow window is open then, every allow window."""
        denying = [w for w in applying if w.spec.kind == WindowKind.DENY
                   and self._end(w, moment) is not None]
        allows = [w for w in applying if w.spec.kind == WindowKind.ALLOW]
        if allows and all(self._end(w, moment) is None for w in allows):
            return denying + allows
        return denying

    def _next_open(self, applying: tuple[SyncWindow, ...], moment: datetime) -> datetime | None:
        """`moment` when changes may run then; else the next moment worth looking at (the end
        of the deny windows open, or the next opening of an allow window); None: never."""
        ends = [end for w in applying if w.spec.kind == WindowKind.DENY
                and (end := self._end(w, moment)) is not None]
        if ends:
            return max(ends)
        allows = [w for w in applying if w.spec.kind == WindowKind.ALLOW]
        if not allows or any(self._end(w, moment) is not None for w in allows):
            return moment
        openings = [at for w in allows
                    if (at := next_opening(w.spec.schedule, w.spec.time_zone, moment))]
        return min(openings, default=None)

    def _end(self, window: SyncWindow, moment: datetime) -> datetime | None:
        key = (window.name, moment)
        if key not in self._ends:
            self._ends[key] = open_until(window.spec.schedule, window.spec.time_zone,
                                         timedelta(seconds=duration_seconds(
                                             window.spec.duration)), moment)
        return self._ends[key]


def _applies(window: SyncWindow, placement: Placement) -> bool:
    chosen = window.spec.deployments
    if chosen is None:
        return True
    labelled = all(placement.labels.get(k) == v for k, v in chosen.match_labels.items())
    return labelled and (not chosen.targets or placement.target in chosen.targets)


def gated(decided: Plan, diff: Difference, verdict: WindowVerdict, override: bool) -> Plan:
    """The plan as the windows let it run: deferred (no action; why and until when) when it
    changes the deployment inside a closed window, else as it is (`override`: the agent was run
    with `--override-window`, which acts inside windows that allow a manual sync)."""
    if decided.action is None or verdict.open or decided.upkeep or decided.settles is not None:
        return decided
    if heals(decided, diff) and (verdict.self_heal or verdict.refused is not None):
        return decided
    if override and verdict.manual_sync and verdict.refused is None:
        return replace(decided, overrides=verdict.closed_by)
    return Plan(decided.name, None, reason=f"{decided.action.value} {verdict.message()}",
                blocked=verdict.refused is not None, deferred=verdict)
