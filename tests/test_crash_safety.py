"""An agent killed (SIGKILL, a real process) at any step of a stateful upgrade: the next `sync`
finishes the upgrade with exactly one job running, restored from the savepoint taken, and never
submits a job that Flink already has (DESIGN §5.3)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from agent import testpoints
from agent.job_ids import deployment_key
from agent.reconcile import sync


def start_frozen_at(point: str, settings, tmp_path) -> subprocess.Popen:
    """Runs `flink-gitops sync` as a process and returns once it is frozen at `point`."""
    marker = tmp_path / f"paused-{point}"
    env = {**os.environ, "FLINK_GITOPS_PAUSE_AT": point, "FLINK_GITOPS_PAUSE_FILE": str(marker)}
    process = subprocess.Popen(
        [sys.executable, "-m", "agent.cli", "sync", "--repo", settings.repo,
         "--workdir", str(settings.workdir),
         *(["--shard-selector", settings.shard_selector] if settings.shard_selector else [])],
        env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not marker.exists():
        if process.poll() is not None:
            raise AssertionError(f"sync ended before {point}: {process.stderr.read().decode()}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"sync never reached {point}")
        time.sleep(0.05)
    return process


def kill(process: subprocess.Popen) -> None:
    """SIGKILLs the frozen agent: no clean-up of any kind runs."""
    os.kill(process.pid, signal.SIGKILL)
    process.wait()


@pytest.mark.parametrize("point", testpoints.POINTS)
def test_a_sync_after_a_kill_finishes_the_upgrade_with_one_job_and_its_state(
        point, deployed, spec_repo, settings, rest, tmp_path):
    name = f"crash-{point}"
    deployed(name)
    spec_repo.push()
    assert sync(settings).exit_code == 0
    first = rest.job(name, 1)
    rest.wait_checkpoint(first)
    deployed(name, parallelism=2)
    spec_repo.push("parallelism 2")

    kill(start_frozen_at(point, settings, tmp_path))
    result = sync(settings)

    assert result.exit_code == 0
    jobs = {j: s for j, s in rest.jobs().items() if j.startswith(deployment_key(name))}
    active = [j for j, s in jobs.items() if s not in ("FINISHED", "CANCELED", "FAILED")]
    assert len(active) == 1, jobs
    [job] = active
    assert rest.jobs()[job] == "RUNNING" and rest.parallelism(job) == 2
    savepoint = (rest.get(f"/jobs/{first}/checkpoints")["latest"]["savepoint"] or {})
    assert rest.restored_from(job) == savepoint["external_path"]
    status = spec_repo.status_of(name)
    assert status["job"]["id"] == job and status["state"] == "RUNNING"
    assert status["sync"] == "SYNCED"
    assert status["lastSavepoint"]["location"] == savepoint["external_path"]
    if point in (testpoints.NEW_JOB_SUBMITTED, testpoints.BEFORE_STATUS_PUSH):
        assert job == rest.job(name, 2)  # adopted, not submitted again
        assert len(jobs) == 2
