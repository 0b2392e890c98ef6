"""Faults of a real Flink cluster: its JobManager or TaskManager killed (SIGKILL) and started
again. These poison a cluster, so they run on one of their own (`faulty`), not the session's.

What is measured (state restored, duplicates, time to recover) is printed and collected by
benchmarks/faults.py; the tests assert the outcome."""

from __future__ import annotations

import re
import signal
import threading
import time

import pytest

from agent.flink import local
from agent.reconcile import sync
from conftest import Flink, a_cluster, counter_deployment, end_every_job
from faults import kill, recovered, restart

PRINTING = "--rate 20 --keys 4 --print"
ENDED = ("FINISHED", "CANCELED", "FAILED")


@pytest.fixture(scope="module")
def faulty(tmp_path_factory):
    """A real Flink session cluster of this module's own, to kill and restart."""
    yield from a_cluster(tmp_path_factory, "faulty-flink", slots=4)


@pytest.fixture(autouse=True)
def no_job_left_on_faulty(faulty):
    yield
    end_every_job(faulty.url)


@pytest.fixture
def on_faulty(spec_repo, faulty, counter_jar):
    """A spec repo with a target `faulty` for that cluster; returns a function writing the
    Deployment `name` with the given spec fields."""
    spec_repo.write_target("faulty", faulty.url)
    spec_repo.add_file("jobs/counter.jar", counter_jar)

    def write(name: str, **fields) -> None:
        spec_repo.write(f"deployments/{name}.yaml",
                        counter_deployment(name, target="faulty", **fields))
    return write


@pytest.fixture
def started(on_faulty, spec_repo, settings, faulty):
    """`checkpointed` (conftest) on the `faulty` cluster: deploys `name`, syncs, and returns
    its first job's id once it has completed a checkpoint."""
    def start(name: str, **fields) -> str:
        on_faulty(name, **fields)
        spec_repo.push(f"{name} deployed")
        assert sync(settings).exit_code == 0
        job = Flink(faulty.url).job(name, 1)
        Flink(faulty.url).wait_checkpoint(job)
        return job
    return start


def printed_counts(cluster: local.LocalCluster) -> list[int]:
    """The counts the counter printed (`--print`) to the TaskManager's stdout since it started."""
    out = cluster.log_dir / "taskmanager.out"
    text = out.read_text(errors="replace") if out.exists() else ""
    return [int(n) for n in re.findall(r"\([\w-]+,(\d+)\)", text)]


def await_counts(cluster: local.LocalCluster, timeout: float = 60) -> list[int]:
    deadline = time.monotonic() + timeout
    while not (counts := printed_counts(cluster)):
        assert time.monotonic() < deadline, "the restarted job printed nothing"
        time.sleep(0.2)
    return counts


def test_jobs_lost_with_their_jobmanager_come_back_from_their_newest_state(
        on_faulty, spec_repo, settings, faulty):
    """A JobManager without HA dies and comes back knowing no job. The next sync notices, and
    starts each deployment again: LATEST_STATE from the lost job's newest retained checkpoint
    (found in the checkpoint directory), LATEST_SAVEPOINT from its newest savepoint; one job
    each, and the counts go on from the state restored."""
    rest = Flink(faulty.url)
    on_faulty("lost-state", restore="LATEST_STATE", args=PRINTING)
    on_faulty("lost-savepoint")
    spec_repo.push("two deployments")
    assert sync(settings).exit_code == 0
    on_faulty("lost-savepoint", extra="savepointTriggerNonce: 1")
    spec_repo.push("a savepoint")
    assert sync(settings).exit_code == 0
    state_job, savepoint_job = rest.job("lost-state", 1), rest.job("lost-savepoint", 1)
    savepoint = spec_repo.status_of("lost-savepoint")["lastSavepoint"]["location"]
    for job in (state_job, savepoint_job):
        rest.wait_checkpoint(job)
    time.sleep(3)                                  # a few more checkpoints: counts well above 1
    counted = max(printed_counts(faulty))

    kill(faulty, local.JOBMANAGER)
    assert sync(settings).exit_code == 1           # unreachable: nothing is decided
    restart(faulty)
    assert rest.jobs() == {}                       # it forgot them
    back = time.monotonic()
    assert sync(settings).exit_code == 0
    recovered("JobManager lost (no HA), Flink 2.3", ["lost-state", "lost-savepoint"], rest,
              spec_repo, faulty.savepoint_dir, back)

    state = spec_repo.status_of("lost-state")
    checkpoint = state["lastSavepoint"]
    assert checkpoint["origin"] == "RETAINED_CHECKPOINT" and checkpoint["jobId"] == state_job
    assert checkpoint["location"].startswith(
        (faulty.checkpoint_dir / state_job).as_uri() + "/chk-")
    assert rest.restored_from(state["job"]["id"]) == checkpoint["location"].replace(
        "file:///", "file:/")                      # (Flink writes file URIs so)
    assert any(f"job {state_job} is lost" in e["message"] for e in state["history"]["events"])
    other = spec_repo.status_of("lost-savepoint")
    assert rest.restored_from(other["job"]["id"]) == savepoint   # not the newer checkpoint
    assert sorted(rest.running()) == sorted([state["job"]["id"], other["job"]["id"]])
    assert min(await_counts(faulty)) > counted // 2   # counting goes on, not from zero


def test_a_jobmanager_lost_between_the_stop_savepoint_and_the_new_job_loses_no_state(
        started, on_faulty, spec_repo, settings, faulty, monkeypatch):
    """The JobManager dies during a stateful upgrade, after the old job stopped with its
    savepoint and before the new job is submitted: the savepoint is recorded, and once the
    JobManager is back the next sync starts the new spec from it — one job, no state lost."""
    from agent import testpoints
    rest = Flink(faulty.url)
    old = started("upgrade-lost")
    on_faulty("upgrade-lost", parallelism=2)
    spec_repo.push("parallelism 2")
    reached = testpoints.reached

    def jobmanager_dies(point: str) -> None:
        if point == testpoints.OLD_JOB_STOPPED:
            kill(faulty, local.JOBMANAGER)
        reached(point)
    monkeypatch.setattr(testpoints, "reached", jobmanager_dies)
    assert sync(settings).exit_code == 1
    monkeypatch.undo()
    status = spec_repo.status_of("upgrade-lost")
    savepoint = status["lastSavepoint"]
    assert savepoint["origin"] == "UPGRADE" and savepoint["jobId"] == old
    assert status["lastAction"]["result"] == "FAILED"

    restart(faulty)
    back = time.monotonic()
    assert sync(settings).exit_code == 0
    recovered("JobManager lost during an upgrade", ["upgrade-lost"], rest, spec_repo,
              faulty.savepoint_dir, back)
    status = spec_repo.status_of("upgrade-lost")
    new = status["job"]["id"]
    assert rest.running() == [new] and rest.parallelism(new) == 2
    assert rest.restored_from(new) == savepoint["location"]


def test_a_taskmanager_lost_while_running_is_reported_and_left_to_flink(
        started, spec_repo, settings, faulty):
    """Flink restarts a job whose TaskManager died: the agent reports it UNHEALTHY while it
    waits for slots, does nothing rash (no Flink call that changes anything), and reports it
    healthy again once the TaskManager is back — the same job."""
    rest = Flink(faulty.url)
    job = started("tm-lost")
    kill(faulty, local.TASKMANAGER)
    rest.wait_state(job, "RESTARTING")
    assert sync(settings).exit_code == 1
    status = spec_repo.status_of("tm-lost")
    assert status["job"]["id"] == job and status["lastAction"]["kind"] == "START"
    assert [e["kind"] for e in status["errors"]] == ["UNHEALTHY"]
    assert {j: s for j, s in rest.jobs().items() if s not in ENDED} == {job: "RESTARTING"}

    restart(faulty)
    back = time.monotonic()
    rest.wait_state(job, "RUNNING")
    assert sync(settings).exit_code == 0
    recovered("TaskManager lost while running", ["tm-lost"], rest, spec_repo,
              faulty.savepoint_dir, back)
    assert not spec_repo.status_of("tm-lost")["errors"]
    assert rest.running() == [job]


def test_a_taskmanager_on_its_way_out_when_the_cluster_is_started_is_started_again(faulty):
    """A TaskManager shutting down (after a fatal error, or writing its class-data archive) is
    still running, and registered no more, when a cycle starts the local cluster: once it has
    ended a new one is started, instead of the start failing with "exited while starting"."""
    pid = int((faulty.home / f"{local.TASKMANAGER}.pid").read_text())
    local.signal_process(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while local.registered_slots(faulty.url):   # it deregisters first as it shuts down
        assert time.monotonic() < deadline, "the TaskManager did not deregister"
        time.sleep(0.01)
    local.signal_process(pid, signal.SIGSTOP)   # and is held there, on its way out, for 2 s
    assert local.alive(pid), "the TaskManager ended before it could be held"
    threading.Timer(2, local.signal_process, (pid, signal.SIGCONT)).start()
    started = local.start(faulty.home.parent.parent, port=faulty.port, slots=faulty.slots)
    assert not local.alive(pid)
    [taskmanager] = local.registered_slots(started.url)
    assert int((faulty.home / f"{local.TASKMANAGER}.pid").read_text()) != pid
    assert taskmanager.startswith(f"taskmanager-{faulty.port}-")


def test_a_taskmanager_lost_during_the_stop_savepoint_is_outlasted_by_the_attempts(
        started, on_faulty, spec_repo, settings, faulty, monkeypatch):
    """The TaskManager dies while the upgrade's stop-with-savepoint runs: the savepoint fails,
    the old job is never cancelled, and the attempt is made again (maxSavepointCreationAttempts)
    until the TaskManager is back; then the upgrade completes from a real savepoint."""
    import threading
    from agent import testpoints
    rest = Flink(faulty.url)
    old = started("tm-lost-mid-savepoint")
    on_faulty("tm-lost-mid-savepoint", parallelism=2, extra="maxSavepointCreationAttempts: 6")
    spec_repo.push("parallelism 2")
    reached, killed = testpoints.reached, threading.Event()

    def taskmanager_dies(point: str) -> None:
        if point == testpoints.SAVEPOINT_TRIGGERED and not killed.is_set():
            killed.set()
            kill(faulty, local.TASKMANAGER)
            threading.Thread(target=restart, args=(faulty,),
                             daemon=True).start()
        reached(point)
    monkeypatch.setattr(testpoints, "reached", taskmanager_dies)
    began = time.monotonic()
    assert sync(settings).exit_code == 0
    monkeypatch.undo()
    recovered("TaskManager lost during the stop savepoint", ["tm-lost-mid-savepoint"], rest,
              spec_repo, faulty.savepoint_dir, began)
    status = spec_repo.status_of("tm-lost-mid-savepoint")
    new = status["job"]["id"]
    assert killed.is_set(), "the savepoint was never triggered"
    # (a TaskManager that dies just after the stop savepoint completed fails the stopping job:
    # Flink says so, the savepoint stands, and it is what the new job restores)
    assert rest.jobs()[old] in ("FINISHED", "FAILED") and rest.running() == [new], \
        (rest.jobs(), status)
    assert status["lastSavepoint"]["origin"] == "UPGRADE"
    assert rest.restored_from(new) == status["lastSavepoint"]["location"]


def test_a_stop_savepoint_that_never_succeeds_leaves_the_old_job_and_fails_with_flinks_reason(
        started, on_faulty, spec_repo, settings, faulty):
    """The TaskManager is gone and stays away while an upgrade wants the stop savepoint: every
    attempt fails, the old job is never cancelled (Flink keeps restarting it), and the
    deployment is FAILED with Flink's reason; once the TaskManager is back the old job runs
    on, untouched."""
    rest = Flink(faulty.url)
    old = started("tm-gone-mid-savepoint")
    on_faulty("tm-gone-mid-savepoint", parallelism=2, extra="maxSavepointCreationAttempts: 2")
    spec_repo.push("parallelism 2")
    kill(faulty, local.TASKMANAGER)
    rest.wait_state(old, "RESTARTING")
    assert sync(settings).exit_code == 1
    status = spec_repo.status_of("tm-gone-mid-savepoint")
    assert (status["state"], status["lastAction"]["result"]) == ("FAILED", "FAILED")
    message = status["lastAction"]["message"]
    assert "no savepoint after 2 attempt(s)" in message and "Flink said:" in message
    assert status["job"]["id"] == old
    assert [j for j, s in rest.jobs().items() if s not in ENDED] == [old]   # not cancelled
    restart(faulty)
    back = time.monotonic()
    rest.wait_state(old, "RUNNING")
    recovered("TaskManager gone for good at the stop savepoint (old job kept)",
              ["tm-gone-mid-savepoint"], rest, spec_repo, faulty.savepoint_dir, back)
