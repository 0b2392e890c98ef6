"""Health policies (issue 17, point 1): a running job that restarts too often, or stops
completing checkpoints, is reported UNHEALTHY with Flink's last exception; with `action:
RESTART` it is cancelled and started again from its newest state, at most once a window.
Stability windows (point 2): an upgrade's new job is watched across cycles until it has run its
window and checkpointed, or the deployment is rolled back."""

from __future__ import annotations

import time

import pytest
from pydantic import ValidationError

from agent.diff import difference
from agent.health import breach, restart_allowed, settling
from agent.model.observation import JobHealth, Observation, ObservedJob, Settling
from agent.model.spec import HealthPolicy
from agent.model.status import ActionKind, Savepoint, SavepointOrigin, StabilityWatch
from agent.plan import RestoreKind, StepKind, plan
from agent.reconcile import sync, sync_until_settled
from conftest import applied, deployment, jid, running

NOW = "2026-11-29T12:00:00Z"
MS = 1_795_953_600_000   # NOW in ms since the epoch


def policy(**fields) -> HealthPolicy:
    return HealthPolicy.model_validate(fields)


def test_restarts_beyond_the_policy_within_its_window_are_a_breach():
    recent = JobHealth(restart_times=(MS - 1_000, MS - 60_000, MS - 3_600_000),
                       last_exception="java.lang.IllegalStateException: boom")
    assert breach(policy(maxRestarts=1, window="10m"), recent, NOW, NOW) == (
        "2 restarts within 10m (healthPolicy maxRestarts 1); last exception: "
        "java.lang.IllegalStateException: boom")
    assert breach(policy(maxRestarts=2, window="10m"), recent, NOW, NOW) is None
    assert breach(policy(maxRestarts=2, window="2h"), recent, NOW, NOW) is not None


def test_a_checkpointing_job_without_progress_is_a_breach_and_one_that_never_checkpoints_not():
    stalled = JobHealth(checkpointing=True, last_checkpoint=MS - 20 * 60_000)
    timeout = policy(checkpointProgressTimeout="15m")
    assert breach(timeout, stalled, NOW, NOW) == (
        "no checkpoint completed for over 15m (healthPolicy checkpointProgressTimeout)")
    fresh = JobHealth(checkpointing=True, last_checkpoint=MS - 60_000)
    assert breach(timeout, fresh, NOW, NOW) is None
    never = JobHealth(checkpointing=True)   # measured from the job's start
    assert breach(timeout, never, "2026-11-29T11:50:00Z", NOW) is None
    assert breach(timeout, never, "2026-11-29T11:40:00Z", NOW) is not None
    assert breach(timeout, JobHealth(checkpointing=False), "2026-11-29T00:00:00Z", NOW) is None


def test_one_health_restart_a_window_at_most():
    hourly = policy(maxRestarts=0, window="1h")
    assert restart_allowed(hourly, None, NOW)
    assert not restart_allowed(hourly, "2026-11-29T11:30:00Z", NOW)
    assert restart_allowed(hourly, "2026-11-29T10:30:00Z", NOW)


@pytest.mark.parametrize("fields", [{}, {"maxRestarts": -1}, {"maxRestarts": 1, "window": "x"},
                                    {"checkpointProgressTimeout": "10 minutes"},
                                    {"maxRestarts": 1, "action": "REBOOT"}])
def test_a_health_policy_that_says_nothing_or_cannot_be_read_is_refused(fields):
    with pytest.raises(ValidationError):
        policy(**fields)


@pytest.mark.parametrize("strategy, kind, said", [
    ("LATEST_STATE", RestoreKind.LATEST_STATE, "restored from the latest retained checkpoint of "
                                               "job"),
    ("LATEST_SAVEPOINT", RestoreKind.SAVEPOINT, "restored from savepoint file:///sp/1"),
])
def test_a_health_restart_cancels_and_starts_from_the_newest_state_it_names(strategy, kind,
                                                                            said):
    """Only a LATEST_STATE job retains its checkpoints when cancelled: the others start from
    their newest savepoint (a checkpoint Flink names may be gone by then)."""
    spec = deployment(restore=strategy)
    status = applied(spec)
    status.status.last_savepoint = Savepoint(location="file:///sp/1", created_at=NOW,
                                             origin=SavepointOrigin.UPGRADE)
    observation = running()
    diff = difference("orders", spec, spec.job_hash(), status, observation)
    decided = plan(diff, spec, status, observation, unhealthy="3 restarts within 10m")
    cancel, start = decided.steps
    assert decided.action.value == "RESTART" and decided.health
    assert cancel.kind == StepKind.CANCEL_JOB
    assert start.restore.kind == kind and start.restore.path == "file:///sp/1"
    assert decided.reason.startswith(f"health policy: 3 restarts within 10m; started again {said}")


RESTARTING = ("restart-strategy.type: fixed-delay; restart-strategy.fixed-delay.attempts: 1000; "
              "restart-strategy.fixed-delay.delay: 200ms")


def test_a_job_restarting_beyond_its_policy_is_reported_and_restarted_once_a_window(
        deployed, spec_repo, settings, rest):
    deployed("flaky", args="--rate 20 --keys 1 --fail-after 30", options=RESTARTING,
             extra="healthPolicy: {maxRestarts: 2, window: 10m, action: RESTART}")
    spec_repo.push()
    assert sync(settings).exit_code == 0, spec_repo.status_of("flaky")
    first = spec_repo.status_of("flaky")["job"]["id"]

    def failures(job: str) -> int:
        return len(rest.get(f"/jobs/{job}/exceptions").get("exceptionHistory", {})
                   .get("entries") or [])

    def await_failures(job: str, count: int) -> None:
        deadline = time.monotonic() + 120
        while failures(job) < count:
            assert time.monotonic() < deadline, f"job {job} did not fail {count} times"
            time.sleep(0.5)

    await_failures(first, 3)
    result = sync(settings)
    status = spec_repo.status_of("flaky")
    assert result.outcomes["flaky"].action.value == "RESTART"
    assert status["lastAction"]["result"] == "SUCCESS" and status["healthRestartedAt"]
    assert status["job"]["id"] != first and first not in rest.running()
    assert any("restarts within 10m (healthPolicy maxRestarts 2); last exception:" in e["message"]
               for e in status["history"]["events"])

    await_failures(status["job"]["id"], 3)
    result = sync(settings)   # within the window: reported, not restarted again
    status = spec_repo.status_of("flaky")
    assert result.exit_code == 1 and result.outcomes == {}
    assert [e["kind"] for e in status["errors"]].count("UNHEALTHY") >= 1
    assert any(e["message"].startswith("health policy: ") for e in status["errors"])


def watched(spec, job: str, until="2026-11-29T12:00:30Z", give_up="2026-11-29T12:01:00Z"):
    """`orders` upgraded to `spec`, its new job `job` in a 30s stability window; the applied spec
    is still deployment()'s."""
    status = applied(deployment())
    status.status.stability = StabilityWatch(
        job_id=job, action=ActionKind.STATEFUL_UPGRADE, spec_hash=spec.job_hash(), commit="c2",
        window="30s", started_at=NOW, until=until, give_up_at=give_up, restore="file:///sp/2")
    return status


def test_a_watched_job_is_stable_once_it_ran_its_window_and_checkpointed():
    job = jid(2, deployment(parallelism=2))
    watch = watched(deployment(parallelism=2), job).status.stability
    seen = Observation(True, (ObservedJob(job, 2, "RUNNING"),))
    checkpointed = JobHealth(checkpointing=True, last_checkpoint=MS + 10_000)
    assert settling(watch, seen, checkpointed, "2026-11-29T12:00:10Z") == Settling()
    assert settling(watch, seen, checkpointed, "2026-11-29T12:00:30Z").stable
    assert settling(watch, seen, JobHealth(), "2026-11-29T12:00:30Z").stable   # no checkpoints
    none_yet = JobHealth(checkpointing=True)
    assert settling(watch, seen, none_yet, "2026-11-29T12:00:40Z") == Settling()
    assert "completed no checkpoint by 2026-11-29T12:01:00Z" in settling(
        watch, seen, none_yet, "2026-11-29T12:01:00Z").unstable
    assert settling(watch, seen, None, "2026-11-29T12:05:00Z") == Settling()   # silence


def test_a_watched_job_that_failed_or_is_gone_is_unstable_at_once():
    job = jid(2, deployment(parallelism=2))
    watch = watched(deployment(parallelism=2), job).status.stability
    seen = Observation(True, (ObservedJob(job, 2, "RUNNING"),))
    failed = JobHealth(restart_times=(MS + 1_000,), last_exception="java.lang.Error: boom")
    assert settling(watch, seen, failed, NOW).unstable == (
        f"job {job} failed within upgradeStabilityWindow 30s: java.lang.Error: boom")
    restarting = Observation(True, (ObservedJob(job, 2, "RESTARTING"),))
    assert settling(watch, restarting, None, NOW).unstable.startswith(f"job {job} is RESTARTING")
    assert settling(watch, Observation(True), None, NOW).unstable.startswith(f"job {job} is gone")


def test_a_watched_bounded_job_that_finished_is_stable_not_rolled_back():
    job = jid(2, deployment(parallelism=2))
    watch = watched(deployment(parallelism=2), job).status.stability
    finished = Observation(True, (ObservedJob(job, 2, "FINISHED"),))
    assert settling(watch, finished, None, NOW).stable


def test_an_unstable_upgrade_is_rolled_back_to_the_applied_spec_from_the_state_its_job_got():
    new = deployment(parallelism=2)
    job = jid(2, new)
    status = watched(new, job)
    seen = Observation(True, (ObservedJob(jid(1), 1, "FINISHED"), ObservedJob(job, 2, "RUNNING")))
    diff = difference("orders", new, new.job_hash(), status, seen)
    decided = plan(diff, new, status, seen, settling=Settling(unstable="job failed"))
    cancel, start = decided.steps
    assert decided.rolls_back and decided.action.value == "STATEFUL_UPGRADE"
    assert (cancel.kind, cancel.job_id) == (StepKind.CANCEL_JOB, job)
    assert start.job_id == jid(3) and start.parallelism == 1   # the applied spec, generation 3
    assert (start.restore.kind, start.restore.path) == (RestoreKind.SAVEPOINT, "file:///sp/2")

    stable = plan(diff, new, status, seen, settling=Settling(stable=True))
    assert stable.settles is not None and stable.steps == () and not stable.rolls_back
    watching = plan(diff, new, status, seen, settling=Settling())
    assert watching.action is None and "in its upgradeStabilityWindow 30s until" in \
        watching.reason


def test_a_spec_pushed_back_during_the_window_replaces_the_watched_job():
    old = deployment()
    job = jid(2, deployment(parallelism=2))
    status = watched(deployment(parallelism=2), job)
    seen = Observation(True, (ObservedJob(job, 2, "RUNNING"),))
    diff = difference("orders", old, old.job_hash(), status, seen)
    decided = plan(diff, old, status, seen, settling=Settling())
    stop, start = decided.steps
    assert decided.action.value == "STATEFUL_UPGRADE" and stop.job_id == job
    assert start.job_id == jid(3) and "stability window" in decided.reason


def test_an_upgrade_with_a_window_stays_in_progress_across_cycles_and_holds_no_lane(
        deployed, spec_repo, settings, rest):
    """The upgrade ends its cycle IN_PROGRESS (TRANSITIONING, the old spec still applied); the
    next cycle upgrades another deployment of the same target meanwhile; a later one finds the
    job stable and the upgrade SUCCESS."""
    deployed("patient", extra="upgradeStabilityWindow: 8s")
    deployed("neighbour")
    spec_repo.push("two deployments")
    assert sync(settings).exit_code == 0
    old = spec_repo.status_of("patient")["appliedSpecHash"]
    deployed("patient", parallelism=2, extra="upgradeStabilityWindow: 8s")
    upgraded = spec_repo.push("patient upgraded, watched for 8s")
    started = time.monotonic()
    first = sync(settings)
    assert time.monotonic() - started < 8 and first.settling and first.wake_at
    status = spec_repo.status_of("patient")
    assert (status["state"], status["sync"], status["lastAction"]["result"]) == (
        "TRANSITIONING", "OUT_OF_SYNC", "IN_PROGRESS")
    assert status["appliedSpecHash"] == old and status["stability"]["commit"] == upgraded
    assert "is watched for upgradeStabilityWindow 8s" in status["lastAction"]["message"]

    deployed("neighbour", parallelism=2)
    spec_repo.push("neighbour upgraded while patient is watched")
    second = sync(settings)
    assert second.outcomes["neighbour"].result.value == "SUCCESS"
    assert "patient" not in second.outcomes and second.settling

    final = sync_until_settled(settings)
    assert time.monotonic() - started >= 8
    status = spec_repo.status_of("patient")
    assert final.outcomes["patient"].result.value == "SUCCESS" and not final.settling
    assert (status["state"], status["sync"], status["lastAction"]["kind"]) == (
        "RUNNING", "SYNCED", "STATEFUL_UPGRADE")
    assert "stability" not in status and status["appliedSpecHash"] != old
    assert rest.parallelism(status["job"]["id"]) == 2


def test_an_upgraded_job_that_fails_within_its_stability_window_is_rolled_back(
        deployed, spec_repo, settings, rest):
    """The new job reaches RUNNING, then fails: within upgradeStabilityWindow the upgrade is
    FAILED and the previous spec runs again from the same savepoint."""
    window = "upgradeStabilityWindow: 30s"
    deployed("settling", extra=window)
    good = spec_repo.push("a good spec")
    assert sync(settings).exit_code == 0
    rest.wait_checkpoint(rest.job("settling", 1))
    deployed("settling", args="--rate 20 --keys 1 --fail-after 30", options=RESTARTING,
             extra=window)
    spec_repo.push("a job that fails after a moment")
    started = time.monotonic()
    result = sync_until_settled(settings)
    assert result.exit_code == 1
    assert time.monotonic() - started < 30   # the failure ends the window early
    status = spec_repo.status_of("settling")
    message = status["lastAction"]["message"]
    assert status["lastAction"]["result"] == "FAILED"
    assert "within upgradeStabilityWindow 30s" in message and "rolled back" in message
    assert status["job"]["specCommit"] == good and rest.running() == [status["job"]["id"]]
    assert rest.restored_from(status["job"]["id"]) == status["lastSavepoint"]["location"]
    assert sync(settings).outcomes == {}   # the failed spec is not tried again
