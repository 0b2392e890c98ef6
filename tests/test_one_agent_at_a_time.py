"""Two agents on one spec repository never act at once: the lease on the status branch."""

from __future__ import annotations

import time

import pytest

from agent import testpoints
from agent.lease import Lease, LeaseHeld
from agent.reconcile import sync
from agent.source import SpecRepository
from test_crash_safety import kill, start_frozen_at


def test_a_lease_held_elsewhere_blocks_until_it_expires(spec_repo, tmp_path, monkeypatch):
    spec_repo.push("a spec repo")
    first = SpecRepository(str(spec_repo.remote), tmp_path / "first")
    second = SpecRepository(str(spec_repo.remote), tmp_path / "second")
    first.fetch()
    second.fetch()
    monkeypatch.setattr("agent.lease.socket.gethostname", lambda: "elsewhere")
    holder = Lease(first, "flink-gitops/status", ttl_s=1.5)
    holder.acquire()
    monkeypatch.undo()
    waiting = Lease(second, "flink-gitops/status")
    with pytest.raises(LeaseHeld, match="elsewhere"):
        waiting.acquire()
    time.sleep(1.6)
    waiting.acquire()  # expired: taken over
    holder.release()   # no longer the holder's: left alone
    assert spec_repo.remote_ref("flink-gitops/status-lease") is not None
    waiting.release()
    assert spec_repo.remote_ref("flink-gitops/status-lease") is None



def test_a_held_lease_is_renewed_once_half_its_time_is_gone(spec_repo, tmp_path):
    spec_repo.push("a spec repo")
    source = SpecRepository(str(spec_repo.remote), tmp_path / "agent")
    source.fetch()
    lease = Lease(source, "flink-gitops/status", ttl_s=2.0)
    lease.acquire()
    taken = spec_repo.remote_ref("flink-gitops/status-lease")
    lease.acquire()  # fresh: no push
    assert spec_repo.remote_ref("flink-gitops/status-lease") == taken
    time.sleep(1.1)  # a renewed lease names a later expiry (to the second)
    lease.acquire()  # half gone: renewed
    assert spec_repo.remote_ref("flink-gitops/status-lease") != taken
    lease.release()

def test_a_second_agent_waits_while_the_first_acts_and_takes_over_after_its_crash(checkpointed, 
        deployed, spec_repo, settings, rest, tmp_path):
    checkpointed("contested")
    deployed("contested", parallelism=2)
    spec_repo.push("parallelism 2")

    acting = start_frozen_at(testpoints.OLD_JOB_STOPPED, settings, tmp_path)
    commits = spec_repo.status_commits()
    jobs = rest.jobs()
    other = type(settings)(settings.repo, workdir=tmp_path / "other-agent")
    with pytest.raises(LeaseHeld, match=f":{acting.pid}:"):
        sync(other)
    assert rest.jobs() == jobs and spec_repo.status_commits() == commits

    kill(acting)
    result = sync(other)  # the holder's process is gone: its lease is taken over at once
    assert result.exit_code == 0
    status = spec_repo.status_of("contested")
    assert rest.running() == [status["job"]["id"]]
    assert rest.restored_from(status["job"]["id"]) == status["lastSavepoint"]["location"]
    assert spec_repo.remote_ref("flink-gitops/status-lease") is None


def test_a_lease_left_behind_by_an_unreachable_remote_is_taken_again_by_its_own_process(
        deployed, spec_repo, settings, rest, monkeypatch):
    """The remote goes away between a cycle's action and its status push: the lease cannot be
    given back. When the remote is back, the same process (the daemon's next cycle) takes its
    own lease again at once — no wait for the TTL — and knows the job it started (from the
    status it kept in the work dir, see test_git_faults)."""
    from agent.errors import SourceError

    deployed("left-behind")
    spec_repo.push()
    spec_repo.away_at_status_push(monkeypatch)
    with pytest.raises(SourceError):
        sync(settings)
    spec_repo.come_back()
    assert spec_repo.remote_ref("flink-gitops/status-lease") is not None   # left behind
    job = rest.job("left-behind", 1)
    assert rest.jobs()[job] == "RUNNING"

    assert sync(settings).exit_code == 0
    assert rest.running() == [job]                    # known, not started again
    assert spec_repo.status_of("left-behind")["job"]["id"] == job

    deployed("left-behind", parallelism=2)
    spec_repo.push("a change to act on: the lease is needed")
    assert sync(settings).exit_code == 0              # its own lease, taken again at once
    assert rest.running() == [rest.job("left-behind", 2)]
    assert spec_repo.remote_ref("flink-gitops/status-lease") is None
