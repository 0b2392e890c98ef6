"""A Flink cluster per deployment in application mode (agent.flink.application), on real Flink:
started with the job's jar, stopped with a savepoint through its own REST API, started again
from it; its processes owned by pid and command line, and memory refused with Flink's reason."""

from __future__ import annotations

import subprocess
import time

import pytest
import requests

from agent.errors import LocalClusterError
from agent.flink import application
from agent.flink.application import Application

JOB_ID = "00c0ffee00000000000000000000000{}"


def counter(jar, generation: int, options: dict | None = None, **fields) -> Application:
    return Application("app-counter", jar, JOB_ID.format(generation), "com.example.Counter",
                       ("--rate", "20", "--keys", "4"), configuration={
                           "parallelism.default": "1", "execution.checkpointing.interval": "1s",
                           **(options or {})}, **fields)


def wait_until(condition, timeout: float = 90):
    deadline = time.monotonic() + timeout
    while (found := condition()) in (None, False):
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.3)
    return found


def job_state(cluster, job_id: str) -> str | None:
    try:
        return requests.get(f"{cluster.url}/jobs/{job_id}", timeout=5).json().get("state")
    except (requests.RequestException, ValueError):
        return None


def checkpointed(cluster, job_id: str) -> bool:
    counts = requests.get(f"{cluster.url}/jobs/{job_id}/checkpoints", timeout=5).json()
    return counts.get("counts", {}).get("completed", 0) > 0


def stop_with_savepoint(cluster, job_id: str) -> str:
    trigger = requests.post(f"{cluster.url}/jobs/{job_id}/stop", timeout=10,
                            json={"drain": False}).json()["request-id"]

    def done():
        answer = requests.get(f"{cluster.url}/jobs/{job_id}/savepoints/{trigger}",
                              timeout=10).json()
        return answer["operation"]["location"] if answer["status"]["id"] == "COMPLETED" \
            else None
    return wait_until(done, timeout=60)


@pytest.fixture
def ended(tmp_path):
    """The work dir; every deployment cluster left in it is ended after the test."""
    yield tmp_path
    for cluster in application.clusters(tmp_path):
        application.stop(tmp_path, cluster.deployment)


def test_a_deployment_cluster_runs_its_job_stops_with_a_savepoint_and_restores_it(
        ended, counter_jar):
    first = application.start(ended, counter(counter_jar, 1))
    assert set(first.alive()) == {"jobmanager", "taskmanager-1"}
    assert application.find(ended, "app-counter") == first
    assert wait_until(lambda: job_state(first, JOB_ID.format(1)) == "RUNNING")
    wait_until(lambda: checkpointed(first, JOB_ID.format(1)))
    with pytest.raises(LocalClusterError, match="still runs"):   # never a second cluster
        application.start(ended, counter(counter_jar, 2))

    savepoint = stop_with_savepoint(first, JOB_ID.format(1))
    assert savepoint.startswith((ended / "local/deployments/app-counter/savepoints").as_uri()
                                .replace("file://", "file:"))
    assert wait_until(lambda: job_state(first, JOB_ID.format(1)) == "FINISHED")   # still up
    assert application.stop(ended, "app-counter")
    assert first.alive() == {} and application.find(ended, "app-counter") is None

    second = application.start(ended, counter(counter_jar, 2, restore=savepoint,
                                              taskmanagers=2))
    assert second.rest_port != first.rest_port or second.pids != first.pids
    assert set(second.alive()) == {"jobmanager", "taskmanager-1", "taskmanager-2"}
    assert wait_until(lambda: job_state(second, JOB_ID.format(2)) == "RUNNING")
    restored = requests.get(f"{second.url}/jobs/{JOB_ID.format(2)}/checkpoints",
                            timeout=5).json()
    assert (restored.get("latest") or {}).get("restored", {}).get("external_path") == savepoint
    assert [c.deployment for c in application.clusters(ended)] == ["app-counter"]


def test_memory_below_flinks_minimum_is_refused_with_flinks_reason_and_starts_nothing(
        ended, counter_jar):
    small = counter(counter_jar, 1, {"jobmanager.memory.process.size": "64m"})
    with pytest.raises(LocalClusterError) as refused:
        application.start(ended, small)
    assert "could not compute the JM memory settings" in str(refused.value)
    assert "exceed configured Total Process Memory (64.000mb" in str(refused.value)   # Flink's
    assert application.find(ended, "app-counter") is None


def test_a_recorded_pid_that_is_no_longer_the_clusters_is_never_signalled(ended, counter_jar):
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        home = application.home(ended, "app-counter")
        home.mkdir(parents=True)
        (home / "cluster.json").write_text(
            '{"deployment": "app-counter", "home": "%s", "rest_port": 1, "rpc_port": 2, '
            '"job_id": "%s", "pids": {"jobmanager": %d}, "started_at": 0}'
            % (home, JOB_ID.format(1), stranger.pid))
        assert application.find(ended, "app-counter") is None
        assert application.stop(ended, "app-counter") is False
        assert stranger.poll() is None   # the sleep was not touched
    finally:
        stranger.kill()
        stranger.wait()


def test_a_cluster_an_agent_started_and_never_recorded_is_found_and_ended(ended, counter_jar):
    """An agent killed between starting its processes and writing cluster.json: the next one
    finds them by their command line, starts no second cluster, and can end them."""
    started = application.start(ended, counter(counter_jar, 1))
    (started.home / "cluster.json").unlink()
    found = application.find(ended, "app-counter")
    assert found is not None and sorted(found.alive().values()) == sorted(started.pids.values())
    with pytest.raises(LocalClusterError, match="still runs"):
        application.start(ended, counter(counter_jar, 2))
    assert application.stop(ended, "app-counter")
    assert started.alive() == {} and application.find(ended, "app-counter") is None
