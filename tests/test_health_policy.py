"""Health policies (issue 17, point 1): a running job that restarts too often, or stops
completing checkpoints, is reported UNHEALTHY with Flink's last exception; with `action:
RESTART` it is cancelled and started again from its newest state, at most once a window."""

from __future__ import annotations

import time

import pytest
from pydantic import ValidationError

from agent.diff import difference
from agent.health import breach, restart_allowed
from agent.model.observation import JobHealth
from agent.model.spec import HealthPolicy
from agent.model.status import Savepoint, SavepointOrigin
from agent.plan import RestoreKind, StepKind, plan
from agent.reconcile import sync
from conftest import applied, deployment, running

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


def test_a_health_restart_cancels_and_starts_from_the_newest_state_it_names():
    spec = deployment()
    status = applied(spec)
    status.status.last_savepoint = Savepoint(location="file:///sp/1", created_at=NOW,
                                             origin=SavepointOrigin.UPGRADE)
    observation = running()
    diff = difference("orders", spec, spec.job_hash(), status, observation)
    decided = plan(diff, spec, status, observation, unhealthy="3 restarts within 10m")
    cancel, start = decided.steps
    assert decided.action.value == "RESTART" and decided.health
    assert cancel.kind == StepKind.CANCEL_JOB
    assert start.restore.kind == RestoreKind.LATEST_STATE and start.restore.path == "file:///sp/1"
    assert decided.reason.startswith("health policy: 3 restarts within 10m; started again "
                                     "restored from the latest retained checkpoint of job")


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
    assert sync(settings).exit_code == 1
    assert time.monotonic() - started < 30   # the failure ends the window early
    status = spec_repo.status_of("settling")
    message = status["lastAction"]["message"]
    assert status["lastAction"]["result"] == "FAILED"
    assert "within upgradeStabilityWindow 30s" in message and "rolled back" in message
    assert status["job"]["specCommit"] == good and rest.running() == [status["job"]["id"]]
    assert rest.restored_from(status["job"]["id"]) == status["lastSavepoint"]["location"]


def test_an_upgraded_job_that_runs_its_window_and_checkpoints_succeeds(
        deployed, spec_repo, settings, rest):
    deployed("steady-upgrade")
    spec_repo.push()
    assert sync(settings).exit_code == 0
    deployed("steady-upgrade", parallelism=2, extra="upgradeStabilityWindow: 3s")
    spec_repo.push("an upgrade watched for 3s")
    started = time.monotonic()
    assert sync(settings).exit_code == 0
    assert time.monotonic() - started >= 3
    status = spec_repo.status_of("steady-upgrade")
    assert status["lastAction"]["result"] == "SUCCESS" and rest.parallelism(
        status["job"]["id"]) == 2
