"""Drift against a real Flink: a job rescaled outside the agent is restarted as applied; a job
stuck in restarts is reported unhealthy with its restart count and Flink's exception."""

from __future__ import annotations

import time

import pytest
import requests
import yaml

from agent.flink import local
from agent.reconcile import sync
from conftest import Flink, counter_deployment, free_port


@pytest.fixture
def elastic(spec_repo, settings, counter_jar):
    """A `local` target the agent starts itself, with Flink's adaptive scheduler (which can
    rescale a running job in place, as an operator might do by hand)."""
    port = free_port()
    spec_repo.write("targets/elastic.yaml", yaml.safe_dump({
        "apiVersion": "v1", "kind": "DeploymentTarget", "metadata": {"name": "elastic"},
        "spec": {"local": {"port": port, "slots": 4,
                           "flinkConfiguration": {"jobmanager.scheduler": "adaptive"}}}}))
    spec_repo.add_file("jobs/counter.jar", counter_jar)
    yield Flink(f"http://127.0.0.1:{port}")
    local.stop(settings.workdir, port=port)


def rescale(rest: Flink, job: str, parallelism: int) -> None:
    """Changes a running job's parallelism behind the agent's back (adaptive scheduler REST)."""
    requirements = rest.get(f"/jobs/{job}/resource-requirements")
    for vertex in requirements.values():
        vertex["parallelism"]["upperBound"] = min(parallelism, vertex["parallelism"]["upperBound"])
    answer = requests.put(f"{rest.url}/jobs/{job}/resource-requirements", json=requirements,
                          timeout=10)
    assert answer.status_code == 200, answer.text


def wait_for(condition, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)


def test_a_job_rescaled_outside_the_agent_is_restarted_as_applied(elastic, spec_repo, settings):
    spec_repo.write("deployments/elastic.yaml", counter_deployment(
        "elastic", parallelism=2, target="elastic"))
    spec_repo.push()
    assert sync(settings).exit_code == 0
    first = elastic.job("elastic", 1)
    elastic.wait_checkpoint(first)
    rescale(elastic, first, 1)
    wait_for(lambda: elastic.parallelism(first) == 1
             and elastic.jobs()[first] == "RUNNING")

    assert sync(settings).exit_code == 0
    status = spec_repo.status_of("elastic")
    second = elastic.job("elastic", 2)
    assert status["lastAction"]["kind"] == "RESTART" and status["job"]["id"] == second
    assert elastic.running() == [second] and elastic.parallelism(second) == 2
    assert elastic.restored_from(second) == status["lastSavepoint"]["location"]
    assert any("parallelism was changed outside the agent" in e["message"]
               for e in status["history"]["events"])


def test_a_job_stuck_in_restarts_is_reported_unhealthy_with_flinks_exception(
        deployed, spec_repo, settings, rest):
    deployed("flaky", args="--rate 20 --keys 4 --fail-after 10",
             options="restart-strategy.type: fixed-delay; "
                     "restart-strategy.fixed-delay.attempts: 1000; "
                     "restart-strategy.fixed-delay.delay: 4 s")
    spec_repo.push()
    result = sync(settings)
    assert result.exit_code == 0, spec_repo.status_of("flaky")
    job = rest.job("flaky", 1)
    for state in ("RESTARTING", "RUNNING", "RESTARTING"):  # failed, restarted, failed again
        wait_for(lambda state=state: rest.jobs()[job] == state)
    assert sync(settings).exit_code == 1
    status = spec_repo.status_of("flaky")
    assert status["job"]["flinkStatus"] == "RESTARTING" and status["job"]["restarts"] >= 1
    [problem] = status["errors"]
    assert problem["kind"] == "UNHEALTHY" and "failing on purpose" in problem["message"]
    assert rest.jobs()[job] in ("RESTARTING", "RUNNING")  # reported, not replaced
    assert "flaky" in spec_repo.status_file("README.md").split("## Problems")[1]


def test_a_job_cancelled_outside_the_agent_is_restarted_from_its_latest_savepoint(checkpointed, 
        deployed, spec_repo, settings, rest):
    checkpointed("healed")
    deployed("healed", parallelism=2)
    spec_repo.push()
    sync(settings)
    savepoint = spec_repo.status_of("healed")["lastSavepoint"]["location"]
    requests.patch(f"{rest.url}/jobs/{rest.job('healed', 2)}", params={"mode": "cancel"},
                   timeout=10)
    rest.wait_state(rest.job("healed", 2), "CANCELED")
    assert sync(settings).exit_code == 0
    status = spec_repo.status_of("healed")
    assert status["job"]["id"] == rest.job("healed", 3)
    assert status["lastAction"]["kind"] == "RESTART"
    assert rest.restored_from(rest.job("healed", 3)) == savepoint
    assert any("drift" in e["message"] and "CANCELED" in e["message"]
               for e in status["history"]["events"])
