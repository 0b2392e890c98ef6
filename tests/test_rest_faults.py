"""Faults between the agent and Flink's REST API, injected for real by a TCP proxy (tests/faults)
in front of the session's cluster: a cluster that hangs, answers that are lost after Flink acted
on the request. Nothing is decided on a missing answer, and nothing is sent twice blindly."""

from __future__ import annotations

import textwrap
import time
from urllib.parse import urlsplit

import pytest

from agent import testpoints
from agent.job_ids import deployment_key
from agent.reconcile import sync
from conftest import artifact_deployment, counter_deployment
from faults import Fault, TcpProxy, recovered
from test_crash_safety import kill, start_frozen_at
from test_sql_real_flink import BOUNDED


@pytest.fixture
def proxied(flink):
    """A TCP proxy in front of the session cluster's REST port."""
    address = urlsplit(flink.url)
    with TcpProxy(address.hostname, address.port) as proxy:
        yield proxy


@pytest.fixture
def through_proxy(spec_repo, proxied, counter_jar):
    """A spec repo whose target `test` reaches the cluster through the proxy (REST timeout 2 s);
    returns a function writing the Deployment `name`."""
    spec_repo.write_target("test", proxied.url, timeout=2)
    spec_repo.add_file("jobs/counter.jar", counter_jar)

    def write(name: str, **fields) -> None:
        spec_repo.write(f"deployments/{name}.yaml", counter_deployment(name, **fields))
    return write


@pytest.fixture
def upgrade_pushed(through_proxy, spec_repo, settings, rest):
    """Deploys `name` and syncs; once its job has state, pushes an upgrade (parallelism 2) for
    the test's sync to carry out; returns the job's id."""
    def push(name: str) -> str:
        through_proxy(name)
        spec_repo.push()
        assert sync(settings).exit_code == 0
        job = rest.job(name, 1)
        rest.wait_checkpoint(job)
        through_proxy(name, parallelism=2)
        spec_repo.push("parallelism 2")
        return job
    return push


def test_a_hung_cluster_delays_no_other_clusters_deployments(
        through_proxy, spec_repo, settings, flink, rest, proxied):
    """The proxied cluster accepts connections and never answers: its deployment is reported
    unreachable after its REST timeout (requestTimeoutSeconds), and the deployment on the
    other cluster starts in the same cycle."""
    spec_repo.write_target("direct", rest.url)
    through_proxy("behind-a-hung-proxy")
    spec_repo.write("deployments/direct.yaml", counter_deployment("direct", target="direct"))
    spec_repo.push()
    proxied.mode = Fault.BLACKHOLE
    started = time.monotonic()
    result = sync(settings)
    took = time.monotonic() - started
    assert result.exit_code == 1
    assert rest.jobs()[rest.job("direct", 1)] == "RUNNING"
    recovered("a hung cluster (the other cluster's deployment)", ["direct"], rest, spec_repo,
              flink.savepoint_dir, started)
    hung = spec_repo.status_of("behind-a-hung-proxy")
    assert "did not answer GET /jobs/overview" in hung["errors"][0]["message"]
    assert "job" not in hung
    assert took < 6 + 30, f"the cycle took {took:.1f}s"


def test_a_run_request_whose_answer_is_lost_is_recognised_by_its_job_id_not_sent_again(
        upgrade_pushed, spec_repo, settings, rest, proxied, flink):
    """Flink runs the job, the answer never reaches the agent: the agent asks for the job id it
    chose and carries on; one run request, one job, restored from the upgrade's savepoint."""
    upgrade_pushed("run-answer-lost")
    proxied.fault_when(Fault.RESET, pattern=rb"POST /jars/\S+/run", after_forwarding=True)
    began = time.monotonic()
    assert sync(settings).exit_code == 0
    recovered("REST answer to the run request lost", ["run-answer-lost"], rest, spec_repo,
              flink.savepoint_dir, began)
    runs = [r for r in proxied.requests if "/run" in r and r.startswith("POST")]
    assert len(runs) == 2                                    # the first start, and this one
    status = spec_repo.status_of("run-answer-lost")
    assert rest.running() == [status["job"]["id"]] == [rest.job("run-answer-lost", 2)]
    assert rest.restored_from(status["job"]["id"]) == status["lastSavepoint"]["location"]


def test_a_bounded_job_that_ended_before_its_start_was_seen_is_started_once(
        spec_repo, settings, rest, proxied):
    """The run request's answer comes late (6 s), after the job already ran to its end: the
    start succeeded — it is not taken for a failed start and submitted again (a batch job's
    output twice)."""
    spec_repo.write_target("test", proxied.url)
    spec_repo.write("deployments/short.yaml", artifact_deployment("short", (
        "kind: SQLSCRIPT\nsqlScript: |\n" + textwrap.indent(BOUNDED.format(rows=1), "  "))))
    spec_repo.push("a short bounded query")
    proxied.delay_s = 6   # (the REST timeout: 10 s)
    proxied.fault_when(Fault.DELAY, pattern=rb"POST /jars/\S+/run", after_forwarding=True)
    assert sync(settings).exit_code == 0, spec_repo.status_of("short")["history"]
    status = spec_repo.status_of("short")
    assert (status["lastAction"]["kind"], status["lastAction"]["result"]) == ("START", "SUCCESS")
    job = rest.job("short", 1)
    assert (status["state"], status["job"]["id"], status["job"]["state"]) == (
        "FINISHED", job, "FINISHED")
    assert [j for j in rest.jobs() if j.startswith(deployment_key("short"))] == [job]


def test_a_stop_request_whose_answer_is_lost_loses_no_savepoint(
        upgrade_pushed, spec_repo, settings, rest, proxied, flink):
    """Flink stops the job with a savepoint, the answer never reaches the agent: the savepoint
    the job stopped with is found and recorded, and the new job restores it; one job."""
    old = upgrade_pushed("stop-answer-lost")
    proxied.fault_when(Fault.RESET, pattern=rb"POST /jobs/\S+/stop", after_forwarding=True)
    began = time.monotonic()
    assert sync(settings).exit_code == 0     # the same cycle: its final savepoint is found
    recovered("REST answer to the stop request lost", ["stop-answer-lost"], rest, spec_repo,
              flink.savepoint_dir, began)
    status = spec_repo.status_of("stop-answer-lost")
    assert rest.jobs()[old] == "FINISHED"
    assert rest.running() == [status["job"]["id"]]
    saved = status["lastSavepoint"]
    assert saved["jobId"] == old and saved["origin"] == "UPGRADE"
    assert rest.restored_from(status["job"]["id"]) == saved["location"]
    # (the stop may be asked again while the job still runs: Flink refuses it once it stopped)


def test_a_job_stopped_behind_the_agent_is_left_as_it_is_while_flinks_records_cannot_be_read(
        upgrade_pushed, spec_repo, settings, rest, proxied, flink, tmp_path):
    """An agent killed once the old job stopped with its savepoint; the next cycle cannot read
    Flink's record of that savepoint. A start then would restore older state, so it starts
    nothing and says why; once the records can be read, the upgrade goes on from it."""
    old = upgrade_pushed("records-unreadable")
    kill(start_frozen_at(testpoints.OLD_JOB_STOPPED, settings, tmp_path))
    proxied.fault_when(Fault.RESET, pattern=rf"GET /jobs/{old}/checkpoints".encode(), times=None)
    sync(settings)
    assert rest.jobs()[old] == "FINISHED"
    assert not [job for job in rest.jobs() if job.startswith(deployment_key("records-unreadable"))
                and job != old]                                    # nothing started
    errors = " ".join(e["message"] for e in spec_repo.status_of("records-unreadable")["errors"])
    assert "could not read Flink's records of its jobs" in errors

    proxied.heal()
    began = time.monotonic()
    assert sync(settings).exit_code == 0
    recovered("Flink's records of a stopped job unreadable", ["records-unreadable"], rest,
              spec_repo, flink.savepoint_dir, began)
    status = spec_repo.status_of("records-unreadable")
    assert status["lastSavepoint"]["jobId"] == old
    assert rest.restored_from(status["job"]["id"]) == status["lastSavepoint"]["location"]
