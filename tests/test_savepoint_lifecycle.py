"""Savepoints on real Flink (issue 16): restored from the one a spec chooses, taken periodically
by the daemon, disposed by retention through Flink — never one a restore could need, nor one
the agent did not take — and a failure of either reported, never the deployment's failure."""

from __future__ import annotations

import re
import time
from pathlib import Path
from urllib.parse import urlparse

import requests

from agent.reconcile import sync
from test_daemon import Agent, no_daemon_left_running, wait_for  # noqa: F401 - its fixture

PRINTING = "--rate 20 --keys 1 --print"


def printed(flink, since: int = 0) -> list[int]:
    """The counts the counter printed to the shared TaskManager's stdout after byte `since`."""
    out = flink.log_dir / "taskmanager.out"
    text = out.read_bytes()[since:].decode(errors="replace") if out.exists() else ""
    return [int(n) for n in re.findall(r"\(key-0,(\d+)\)", text)]


def printed_so_far(flink) -> int:
    out = flink.log_dir / "taskmanager.out"
    return out.stat().st_size if out.exists() else 0


def count_reaches(flink, since: int, at_least: int) -> int:
    wait_for(lambda: max(printed(flink, since), default=0) >= at_least)
    return max(printed(flink, since))


def files_of(location: str) -> Path:
    return Path(urlparse(location).path)


def test_a_redeploy_restores_the_savepoint_the_spec_chooses_and_the_count_goes_back(
        deployed, spec_repo, settings, rest, flink):
    """Two savepoints a few seconds apart; the spec then names the older by its id, with a new
    savepointRedeployNonce: the running job is stopped with a savepoint of its own (recorded),
    and the new job counts on from the older savepoint's count, not the newer's."""
    start = printed_so_far(flink)
    deployed("chosen", args=PRINTING)
    spec_repo.push()
    assert sync(settings).exit_code == 0
    count_reaches(flink, start, 10)
    deployed("chosen", args=PRINTING, extra="savepointTriggerNonce: 1")
    spec_repo.push("savepoint A")
    assert sync(settings).exit_code == 0
    at_a = max(printed(flink, start))          # at least the count savepoint A holds
    older = spec_repo.status_of("chosen")["lastSavepoint"]
    count_reaches(flink, start, at_a + 60)
    deployed("chosen", args=PRINTING, extra="savepointTriggerNonce: 2")
    spec_repo.push("savepoint B")
    before_b = max(printed(flink, start))      # at most the count savepoint B holds
    assert sync(settings).exit_code == 0
    job = spec_repo.status_of("chosen")["job"]["id"]

    from agent.model.status import Savepoint
    chosen_id = Savepoint.model_validate(older).id
    deployed("chosen", args=PRINTING, extra=f"savepointTriggerNonce: 2\n          "
             f"initialSavepointPath: savepoint:{chosen_id}\n          savepointRedeployNonce: 1")
    spec_repo.push("restore savepoint A")
    offset = printed_so_far(flink)
    result = sync(settings)
    assert result.exit_code == 0, spec_repo.status_of("chosen")
    status = spec_repo.status_of("chosen")
    assert status["lastAction"]["kind"] == "REDEPLOY"
    assert status["job"]["id"] != job and status["job"]["restoredFrom"] == older["location"]
    assert rest.restored_from(status["job"]["id"]) == older["location"]
    kept = [s for s in status["history"]["savepoints"] if s["origin"] == "REDEPLOY"]
    assert kept and kept[-1]["jobId"] == job          # the stopped job's state is kept too
    first = min(count_reaches(flink, offset, 1), *printed(flink, offset))
    assert first <= at_a + 1 < before_b - 40          # back to A's count, far below B's
    assert sync(settings).outcomes == {}              # done: the nonce is recorded


def test_a_chosen_savepoint_that_is_not_there_stops_nothing(deployed, spec_repo, settings, rest,
                                                            tmp_path):
    deployed("missing-choice")
    spec_repo.push()
    assert sync(settings).exit_code == 0
    job = rest.job("missing-choice", 1)
    nowhere = f"file://{tmp_path}/no-such-savepoint"
    deployed("missing-choice", extra=f"initialSavepointPath: {nowhere}\n          "
                                     "savepointRedeployNonce: 1")
    spec_repo.push("restore a savepoint that is not there")
    assert sync(settings).exit_code == 1
    status = spec_repo.status_of("missing-choice")
    assert status["lastAction"]["message"] == (
        f"the job could not be prepared, nothing was changed: the state to restore, {nowhere}, "
        "is not there (no _metadata)")
    assert rest.running() == [job] and "lastSavepoint" not in status


def test_a_chosen_savepoint_flink_refuses_rolls_back_to_the_stop_savepoint(
        deployed, spec_repo, settings, rest, tmp_path):
    """A savepoint directory whose _metadata is no savepoint: Flink's refusal is shown, and the
    previous spec runs again from the savepoint the old job was stopped with."""
    deployed("refused-choice")
    spec_repo.push()
    assert sync(settings).exit_code == 0
    job = rest.job("refused-choice", 1)
    rest.wait_checkpoint(job)
    broken = tmp_path / "savepoint-broken"
    broken.mkdir()
    (broken / "_metadata").write_bytes(b"not a savepoint")
    deployed("refused-choice", extra=f"initialSavepointPath: file://{broken}\n          "
                                     "savepointRedeployNonce: 1")
    spec_repo.push("restore a broken savepoint")
    assert sync(settings).exit_code == 1
    status = spec_repo.status_of("refused-choice")
    message = status["lastAction"]["message"]
    assert status["lastAction"]["result"] == "FAILED" and "rolled back" in message
    stop = status["lastSavepoint"]
    assert stop["origin"] == "REDEPLOY" and stop["jobId"] == job
    assert rest.restored_from(status["job"]["id"]) == stop["location"]


def test_retention_disposes_the_oldest_savepoints_through_flink_and_nothing_else(
        deployed, spec_repo, settings, rest, flink):
    """maxCount 2 over five savepoints: the oldest three are disposed (their files gone, their
    entries DISPOSED with why); the two newest, and a savepoint taken by hand, stay."""
    retention = "savepointRetention: {maxCount: 2}"
    deployed("retained", extra=retention)
    spec_repo.push()
    assert sync(settings).exit_code == 0
    job = rest.job("retained", 1)
    for nonce in range(1, 6):
        deployed("retained", extra=f"{retention}\n          savepointTriggerNonce: {nonce}")
        spec_repo.push(f"savepoint {nonce}")
        result = sync(settings)
        assert result.exit_code == 0 and result.outcomes["retained"].action.value == "SAVEPOINT"
    by_hand = requests.post(f"{flink.url}/jobs/{job}/savepoints",
                            json={"cancel-job": False}, timeout=10).json()["request-id"]
    wait_for(lambda: requests.get(f"{flink.url}/jobs/{job}/savepoints/{by_hand}", timeout=10)
             .json()["status"]["id"] == "COMPLETED")
    hand_made = requests.get(f"{flink.url}/jobs/{job}/savepoints/{by_hand}", timeout=10).json()[
        "operation"]["location"]

    result = sync(settings)
    assert result.exit_code == 0
    assert result.outcomes["retained"].action.value == "DISPOSE_SAVEPOINTS"
    history = spec_repo.status_of("retained")["history"]["savepoints"]
    disposed = [s for s in history if "disposedAt" in s]
    kept = [s for s in history if "disposedAt" not in s]
    assert len(disposed) == 3 and len(kept) == 2
    assert {s["disposedWhy"] for s in disposed} == {"beyond savepointRetention maxCount 2"}
    assert max(s["createdAt"] for s in disposed) <= min(s["createdAt"] for s in kept)
    assert not any(files_of(s["location"]).exists() for s in disposed)
    assert all(files_of(s["location"]).exists() for s in kept)
    assert files_of(hand_made).exists() and rest.running() == [job]
    assert sync(settings).outcomes == {}


def test_a_disposal_flink_refuses_is_reported_and_the_job_runs_on(
        deployed, spec_repo, settings, rest):
    retention = "savepointRetention: {maxCount: 1}"
    deployed("undisposable", extra=retention)
    spec_repo.push()
    assert sync(settings).exit_code == 0
    job = rest.job("undisposable", 1)
    for nonce in (1, 2):
        deployed("undisposable", extra=f"{retention}\n          savepointTriggerNonce: {nonce}")
        spec_repo.push(f"savepoint {nonce}")
        assert sync(settings).exit_code == 0
    oldest = spec_repo.status_of("undisposable")["history"]["savepoints"][0]
    for path in sorted(files_of(oldest["location"]).rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    files_of(oldest["location"]).rmdir()              # gone behind the agent's back

    result = sync(settings)
    status = spec_repo.status_of("undisposable")
    assert result.exit_code == 1 and status["state"] == "RUNNING"
    assert status["lastAction"] | {"message": ""} == {**status["lastAction"], "message": "",
                                                      "kind": "DISPOSE_SAVEPOINTS",
                                                      "result": "FAILED"}
    assert oldest["location"] in status["errors"][0]["message"]
    assert rest.running() == [job] and "disposedAt" not in status["history"]["savepoints"][0]


def test_the_daemon_takes_periodic_savepoints(deployed, spec_repo, settings, rest, tmp_path):
    deployed("periodic", extra="periodicSavepointInterval: 10s")
    spec_repo.push()
    Agent(settings, tmp_path, interval="2s")
    wait_for(lambda: rest.jobs().get(rest.job("periodic", 1)) == "RUNNING")
    started = time.monotonic()

    def periodic() -> list[dict]:
        status = spec_repo.status_of("periodic") or {}
        return [s for s in status.get("history", {}).get("savepoints", [])
                if s["origin"] == "PERIODIC"]
    wait_for(lambda: len(periodic()) >= 2, timeout=60)
    assert time.monotonic() - started >= 18           # one interval (and its spread) apart
    assert {s["jobId"] for s in periodic()} == {rest.job("periodic", 1)}
    assert spec_repo.status_of("periodic")["state"] == "RUNNING"


def test_savepoint_format_native_reaches_flinks_savepoint_and_stop_requests(
        deployed, spec_repo, settings, rest, flink_proxy):
    deployed("native", extra="savepointFormat: NATIVE")
    spec_repo.write_target("test", flink_proxy.url)
    spec_repo.push()
    assert sync(settings).exit_code == 0
    deployed("native", extra="savepointFormat: NATIVE\n          savepointTriggerNonce: 1")
    spec_repo.push("a savepoint")
    assert sync(settings).exit_code == 0
    deployed("native", parallelism=2, extra="savepointFormat: NATIVE\n          "
                                            "savepointTriggerNonce: 1")
    spec_repo.push("an upgrade")
    assert sync(settings).exit_code == 0
    assert [body["formatType"] for body in flink_proxy.sent("POST", "/savepoints")] == ["NATIVE"]
    assert [body["formatType"] for body in flink_proxy.sent("POST", "/stop")] == ["NATIVE"]
    status = spec_repo.status_of("native")
    assert rest.restored_from(status["job"]["id"]) == status["lastSavepoint"]["location"]
