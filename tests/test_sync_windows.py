"""Sync windows: changes deferred by deny windows and outside allow windows, the daemon acting
at the opening, manual sync, self-heal inside a freeze, and windows that cannot be read — on a
real Flink cluster with the agent's clock set (never by sleeping), and as pure judgements."""

from __future__ import annotations

import json
import textwrap
from datetime import datetime, timezone

import pytest
import requests

from agent import clock
from agent.diff import Difference
from agent.load import load
from agent.model.shard import Placement
from agent.model.status import ActionKind
from agent.plan import Plan
from agent.reconcile import sync
from agent.sync_windows import Timetable, gated
from test_commands import run
from test_daemon import Agent, no_daemon_left_running, wait_for  # noqa: F401 (ends daemons)
from test_review_commands import plan_json


def window(name: str, kind: str, schedule: str, duration: str, zone: str = "UTC",
           select: str = "", **flags: bool) -> str:
    """The YAML of a SyncWindow (`select`: its `deployments`, as YAML flow)."""
    more = "".join(f"\n  {key}: {str(value).lower()}" for key, value in flags.items())
    return (f"apiVersion: v1\nkind: SyncWindow\nmetadata: {{name: {name}}}\nspec:\n"
            f"  kind: {kind}\n  schedule: \"{schedule}\"\n  duration: {duration}\n"
            f"  timeZone: {zone}" + (f"\n  deployments: {select}" if select else "") + more
            + "\n")


def at(moment: str) -> datetime:
    return clock.parse(moment)


def judged(windows: str, moment: str, labels: dict | None = None, target: str = "prod"):
    loaded = load({"windows.yaml": windows})
    assert loaded.problems == []
    return Timetable.of(loaded, at(moment)).verdict(Placement(labels or {}, target))


FREEZE = window("weekend-freeze", "deny", "0 18 * * 5", "62h", "Europe/Berlin",
                "{matchLabels: {env: prod}}", manualSync=True)


# --- when a window is open, as pure judgements --------------------------------------------

def test_a_weekend_freeze_defers_from_friday_evening_to_monday_morning_in_its_time_zone():
    # 2026-12-04 is a Friday; 18:00 in Berlin (CET) is 17:00 UTC, and 62 h later is Monday 08:00
    inside = judged(FREEZE, "2026-12-05T10:00:00Z", {"env": "prod"})
    assert not inside.open
    assert inside.message() == ("deferred until 2026-12-07T07:00:00Z (Mon 2026-12-07 08:00 CET) "
                                "by window weekend-freeze")
    assert judged(FREEZE, "2026-12-04T16:59:59Z", {"env": "prod"}).open
    assert not judged(FREEZE, "2026-12-04T17:00:00Z", {"env": "prod"}).open
    assert judged(FREEZE, "2026-12-07T07:00:00Z", {"env": "prod"}).open
    assert judged(FREEZE, "2026-12-05T10:00:00Z", {"env": "dev"}).open   # not selected


def test_day_of_week_numbers_count_from_sunday_as_crontab_does():
    for number, day in (("0", "Sun"), ("7", "Sun"), ("1", "Mon"), ("5", "Fri"), ("6", "Sat")):
        verdict = judged(window("weekly", "allow", f"0 8 * * {number}", "1h"),
                         "2026-12-01T12:00:00Z")   # a Tuesday: the window is closed
        assert verdict.local.startswith(day), (number, verdict.local)
    weekdays = window("weekdays", "allow", "0 8 * * 1-5", "10h")
    assert judged(weekdays, "2026-12-04T12:00:00Z").open                     # Friday
    assert judged(weekdays, "2026-12-05T12:00:00Z").local.startswith("Mon")  # Saturday


def test_outside_its_allow_windows_a_change_waits_for_the_next_opening():
    hours = window("office-hours", "allow", "0 8 * * 1-5", "10h", "Europe/Berlin")
    assert judged(hours, "2026-12-02T12:00:00Z").open
    evening = judged(hours, "2026-12-02T20:00:00Z")
    assert (evening.closed_by, evening.kind, evening.until) == (
        "office-hours", "allow", "2026-12-03T07:00:00Z")


def test_where_an_allow_and_a_deny_window_overlap_deny_wins():
    both = window("always", "allow", "0 0 * * *", "24h") + "---\n" + FREEZE
    verdict = judged(both, "2026-12-05T10:00:00Z", {"env": "prod"})
    assert verdict.closed_by == "weekend-freeze" and verdict.until == "2026-12-07T07:00:00Z"
    assert verdict.windows == ("always", "weekend-freeze")


def test_a_deny_window_ending_outside_every_allow_window_waits_for_the_allow_one():
    night_freeze = window("night", "deny", "0 20 * * *", "12h")   # 20:00 to 08:00 UTC
    hours = window("late-start", "allow", "0 9 * * *", "8h")      # 09:00 to 17:00 UTC
    verdict = judged(night_freeze + "---\n" + hours, "2026-12-02T23:00:00Z")
    assert verdict.closed_by == "night" and verdict.until == "2026-12-03T09:00:00Z"


def test_overlapping_occurrences_of_one_window_close_when_the_last_ends():
    every_hour = window("hourly", "deny", "0 * * * *", "90m")
    assert judged(every_hour, "2026-12-02T10:30:00Z").until is None   # never closes
    twice = window("twice", "deny", "0 10,11 * * *", "90m")
    assert judged(twice, "2026-12-02T10:15:00Z").until == "2026-12-02T12:30:00Z"


def test_windows_select_deployments_by_labels_and_targets():
    chosen = window("prod-a", "deny", "0 0 * * *", "24h",
                    select="{matchLabels: {env: prod}, targets: [a, b]}")
    assert not judged(chosen, "2026-12-02T10:00:00Z", {"env": "prod"}, "a").open
    assert judged(chosen, "2026-12-02T10:00:00Z", {"env": "prod"}, "c").open
    assert judged(chosen, "2026-12-02T10:00:00Z", {"env": "dev"}, "a").open


def plan_of(action: ActionKind, **fields) -> Plan:
    return Plan("orders", action, **fields)


def test_what_a_closed_window_lets_run():
    freeze = window("freeze", "deny", "0 0 * * *", "12h")
    closed = judged(freeze, "2026-12-02T10:00:00Z")
    healing = judged(window("freeze", "deny", "0 0 * * *", "12h", selfHeal=True,
                            manualSync=True), "2026-12-02T10:00:00Z")
    change = Difference("orders", None, applied=True, job_changed=True)
    drift = Difference("orders", None, applied=True, job_changed=False, drift="job gone")
    upgrade = plan_of(ActionKind.STATEFUL_UPGRADE)
    assert gated(upgrade, change, closed, override=False).action_name == "DEFERRED"
    assert gated(upgrade, change, closed, override=True).action_name == "DEFERRED"
    assert gated(upgrade, change, healing, override=True).overrides == "freeze"
    restart = plan_of(ActionKind.RESTART)
    assert gated(restart, drift, closed, override=False).action_name == "DEFERRED"
    assert gated(restart, drift, healing, override=False) is restart
    assert gated(restart, change, healing, override=False).action_name == "DEFERRED"
    for always in (plan_of(ActionKind.SAVEPOINT, upkeep=True),
                   plan_of(ActionKind.STATEFUL_UPGRADE, settles=object())):
        assert gated(always, change, closed, override=False) is always


# --- bad input -----------------------------------------------------------------------------

@pytest.mark.parametrize("line, text, reason", [
    ('  schedule: "0 18 * *"', "needs 5 fields", 6),
    ('  schedule: "0 25 * * 5"', "higher than the maximum value (23)", 6),
    ('  schedule: "0 18 * * 9"', "days are 0-7", 6),
    ('  schedule: "0 0 31 2 *"', "never fires", 6),
    ("  timeZone: Mars/Olympus", "'Mars/Olympus' is not a time zone of the IANA database", 8),
    ("  duration: forever", "not a duration", 7),
    ("  kind: sometimes", "Input should be 'allow' or 'deny'", 5),
])
def test_a_window_that_cannot_be_read_is_refused_at_its_line(line, text, reason):
    key = line.split(":")[0]
    written = "\n".join(line if row.startswith(key + ":") else row
                        for row in FREEZE.splitlines())
    loaded = load({"windows.yaml": written})
    [problem] = loaded.problems
    assert text in problem.message and problem.line == reason and problem.kind == "SyncWindow"
    assert loaded.unread_windows == [problem] and loaded.windows == {}


@pytest.mark.parametrize("field, value, reason", [
    ("timeZone", "a" * 300, "is not a time zone"),
    ("timeZone", "../../etc/passwd", "is not a time zone"),
    ("timeZone", "/etc/localtime", "is not a time zone"),
    ("schedule", "'" + "1," * 2000 + "1 * * * *'", "at most 256 characters"),
    ("schedule", "'*/0 * * * *'", "is not a cron schedule"),
    ("schedule", "[0, 18]", "Input should be a valid string"),
    ("duration", "-5h", "not a duration"),
    ("duration", "99999d", "longer than ten years"),
    ("manualSync", "'yes'", "valid boolean"),
    ("deployments", "{targets: [" + ", ".join(["x"] * 300) + "]}", "at most 256 items"),
])
def test_a_hostile_window_is_refused_at_its_line_and_never_raises(field, value, reason):
    key = "  " + field
    lines = FREEZE.splitlines()
    lines = [row for row in lines if not row.startswith(key + ":")] + [f"{key}: {value}"]
    loaded = load({"windows.yaml": "\n".join(lines) + "\n"})
    [problem] = loaded.problems
    assert reason in problem.message and problem.line == len(lines)
    assert loaded.unread_windows == [problem]


def test_a_window_file_broken_as_yaml_still_holds_every_change():
    loaded = load({"windows.yaml": "kind: SyncWindow\nmetadata: {name: [oops\n"})
    verdict = Timetable.of(loaded, at("2026-12-02T10:00:00Z")).verdict(Placement({}, "prod"))
    assert not verdict.open and "windows.yaml:" in verdict.message()
    drift = Difference("orders", None, applied=True, job_changed=False, drift="job gone")
    held = gated(plan_of(ActionKind.STATEFUL_UPGRADE), drift, verdict, override=True)
    assert held.blocked and "no change runs until it is fixed" in held.reason
    restart = plan_of(ActionKind.RESTART)
    assert gated(restart, drift, verdict, override=False) is restart   # a died job: as it ran


def test_more_windows_than_the_limit_hold_every_change():
    many = "---\n".join(window(f"w{i}", "allow", "0 0 * * *", "24h") for i in range(257))
    loaded = load({"windows.yaml": many})
    verdict = Timetable.of(loaded, at("2026-12-02T10:00:00Z")).verdict(Placement({}, "prod"))
    assert "257 SyncWindows, over the limit of 256" in verdict.message()


# --- on real Flink, the agent's clock set ---------------------------------------------------

@pytest.fixture
def clock_at(monkeypatch):
    """Sets the agent's clock to a time, in this process and the commands it runs (which start
    there); it runs on from there."""
    def set_to(moment: str) -> None:
        monkeypatch.setattr(clock, "_OFFSET", at(moment) - datetime.now(timezone.utc))
        monkeypatch.setenv(clock.CLOCK_ENV, moment)
    return set_to


def test_a_freeze_defers_an_upgrade_until_a_manual_sync_overrides_it(
        checkpointed, deployed, spec_repo, settings, rest, clock_at):
    first = checkpointed("freeze-deferred", labels="{env: prod}")
    spec_repo.write("windows/freeze.yaml", FREEZE)
    deployed("freeze-deferred", labels="{env: prod}", parallelism=2)
    spec_repo.push("parallelism 2, on a Saturday")
    clock_at("2026-12-05T10:00:00Z")

    code, planned = plan_json(settings)
    [review] = planned["deployments"]
    assert code == 2 and review["action"] == "DEFERRED"
    assert review["window"]["closedBy"] == "weekend-freeze"
    assert review["window"]["until"] == "2026-12-07T07:00:00Z"

    result = sync(settings)
    assert result.exit_code == 1 and rest.running() == [first]
    status = spec_repo.status_of("freeze-deferred")
    assert status["sync"] == "OUT_OF_SYNC" and status["state"] == "RUNNING"
    assert status["deferred"] == ("STATEFUL_UPGRADE deferred until 2026-12-07T07:00:00Z "
                                  "(Mon 2026-12-07 08:00 CET) by window weekend-freeze")
    assert status["appliedSpec"]["spec"]["template"]["spec"]["parallelism"] == 1
    assert result.wake_at == "2026-12-07T07:00:00Z"   # the daemon's next cycle
    assert "deferred until 2026-12-07T07:00:00Z" in spec_repo.status_file("README.md")

    manual = run("sync", "--repo", settings.repo, "--workdir", str(settings.workdir),
                 "--override-window")
    assert manual.returncode == 0, manual.stdout + manual.stderr
    status = spec_repo.status_of("freeze-deferred")
    assert status["sync"] == "SYNCED" and "deferred" not in status
    assert rest.parallelism(rest.job("freeze-deferred", 2)) == 2
    assert any("inside sync window weekend-freeze: a manual sync (--override-window)"
               in event["message"] for event in status["history"]["events"])


def test_self_heal_inside_a_freeze_only_where_the_window_allows_it(
        deployed, spec_repo, settings, rest, clock_at):
    for name in ("heals", "waits"):
        deployed(name, labels=f"{{app: {name}}}")
    spec_repo.write("windows.yaml", window(
        "heal-freeze", "deny", "0 0 * * *", "12h", select="{matchLabels: {app: heals}}",
        selfHeal=True) + "---\n" + window(
        "strict-freeze", "deny", "0 0 * * *", "12h", select="{matchLabels: {app: waits}}"))
    spec_repo.push("two jobs, each under its own freeze")
    clock_at("2026-12-01T23:59:00Z")   # just before both freezes
    assert sync(settings).exit_code == 0
    for name in ("heals", "waits"):
        job = rest.job(name, 1)
        rest.wait_state(job, "RUNNING")
        requests.patch(f"{rest.url}/jobs/{job}", params={"mode": "cancel"}, timeout=10)
        rest.wait_state(job, "CANCELED")
    clock_at("2026-12-02T10:00:00Z")   # inside both

    sync(settings)
    assert rest.jobs()[rest.job("heals", 2)] in ("RUNNING", "CREATED", "INITIALIZING")
    assert spec_repo.status_of("heals")["lastAction"]["kind"] == "RESTART"
    waits = spec_repo.status_of("waits")
    assert waits["deferred"].startswith("RESTART deferred until 2026-12-02T12:00:00Z")
    assert rest.job("waits", 2).endswith("-not-found")


def test_the_daemon_runs_a_deferred_change_when_its_allow_window_opens(
        checkpointed, deployed, spec_repo, settings, rest, tmp_path):
    checkpointed("opening")
    spec_repo.write("windows.yaml", window("monday-8", "allow", "0 8 * * 1", "1h"))
    deployed("opening", parallelism=2)
    spec_repo.push("parallelism 2, for Monday 08:00")
    opening = "2026-12-07T08:00:00Z"
    daemon = Agent(settings, tmp_path, env={clock.CLOCK_ENV: "2026-12-07T07:59:45Z"})
    wait_for(lambda: spec_repo.status_of("opening").get("deferred", "").startswith(
        f"STATEFUL_UPGRADE deferred until {opening}"), timeout=15)
    assert rest.job("opening", 2).endswith("-not-found")

    wait_for(lambda: spec_repo.status_of("opening")["sync"] == "SYNCED", timeout=90)
    status = spec_repo.status_of("opening")
    assert status["lastAction"]["kind"] == "STATEFUL_UPGRADE"
    assert status["lastAction"]["at"] >= opening   # by the agent's clock: not before it opened
    assert rest.parallelism(rest.job("opening", 2)) == 2
    assert "a cycle is due" in daemon.log.read_text()


def test_a_window_that_cannot_be_read_blocks_every_change_and_says_where(
        checkpointed, deployed, spec_repo, settings, rest):
    first = checkpointed("unwindowed")
    spec_repo.write("windows.yaml", window("typo", "deny", "0 18 * *", "1h"))
    deployed("unwindowed", parallelism=2)
    spec_repo.push("a change and a broken window")
    assert sync(settings).exit_code == 1
    assert rest.running() == [first]
    status = spec_repo.status_of("unwindowed")
    assert status["sync"] == "BLOCKED"
    [error] = status["errors"]
    assert error["message"].startswith("STATEFUL_UPGRADE the SyncWindow at windows.yaml:6 "
                                       "cannot be read")
    assert "needs 5 fields" in error["message"]
    assert "windows.yaml:6" in spec_repo.status_file("README.md")


def test_policies_see_the_window_verdict(deployed, spec_repo, settings, clock_at):
    deployed("judged", labels="{env: prod}")
    spec_repo.write("windows.yaml", FREEZE)
    spec_repo.write("policies/window.rego", textwrap.dedent("""\
        package main
        import rego.v1
        warn contains msg if {
            not input.window.open
            msg := sprintf("closed by %s until %s", [input.window.closedBy, input.window.until])
        }
        """))
    spec_repo.push("a first start during the freeze")
    clock_at("2026-12-05T10:00:00Z")
    sync(settings)
    status = spec_repo.status_of("judged")
    assert status["deferred"].startswith("START deferred until 2026-12-07T07:00:00Z")
    assert any("closed by weekend-freeze until 2026-12-07T07:00:00Z" in w
               for w in status["warnings"])
    assert json.loads(spec_repo.status_file("status.json"))   # the dashboard's data is whole
