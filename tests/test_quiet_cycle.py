"""A cycle that sees what the last quiet cycle saw ends there (issue 21, point 1): the spec
commit, the status branch's head and every cluster's jobs overview as they were, and no time it
depends on come. Anything else that moved (a job, a push, another agent's status, the time of a
periodic savepoint, a secret file) makes it look at every deployment again. Real Flink, real git;
the rules as values at the end."""

from __future__ import annotations

import requests

from agent import reconcile
from agent.assessment import Assessment
from agent.caches import Caches
from agent.diff import Difference
from agent.load import LoadResult, Located
from agent.model.observation import ClusterView, JobHealth, Observation
from agent.model.status import ActionKind, JobInputs, StabilityWatch
from agent.plan import Plan
from agent.quiet import Sighting, quiet_cycle
from agent.reconcile import sync
from conftest import applied, counter_deployment, deployment, git, running


def settled(settings, caches: Caches):
    """Cycles until one writes nothing: the quiet cycle is then kept."""
    for _ in range(4):
        result = sync(settings, caches=caches)
        if result.status_commit is None:
            return result
    raise AssertionError("no quiet cycle after 4")


def assessing(monkeypatch) -> list[str]:
    """The commits each later cycle assessed (every deployment looked at)."""
    assessed = []
    original = reconcile.assess

    def counted(*args, **kwargs):
        cycle = original(*args, **kwargs)
        assessed.append(cycle.commit)
        return cycle
    monkeypatch.setattr(reconcile, "assess", counted)
    return assessed


def test_a_cycle_that_sees_what_the_quiet_one_saw_ends_there(
        deployed, spec_repo, settings, rest, monkeypatch):
    deployed("quiet-a")
    deployed("quiet-b")
    spec_repo.push()
    caches = Caches()
    quiet = settled(settings, caches)
    assessed, commits = assessing(monkeypatch), spec_repo.status_commits()

    again = sync(settings, caches=caches)

    assert assessed == [] and spec_repo.status_commits() == commits
    assert (again.documents, again.exit_code, again.outcomes) == (quiet.documents, 0, {})
    assert caches.quiet is not None


def test_a_fresh_process_that_sees_what_the_last_one_kept_ends_there(
        deployed, spec_repo, settings, rest, monkeypatch):
    deployed("kept-a")
    spec_repo.push()
    for _ in range(4):   # each a process of its own, as cron runs `sync`
        if sync(settings).status_commit is None:
            break
    [kept] = settings.snapshots.glob("quiet-cycle-*.json")
    assessed = assessing(monkeypatch)

    again = sync(settings)
    assert assessed == [] and again.exit_code == 0
    assert [(d.name, d.status.job.id) for d in again.documents] == [
        ("kept-a", rest.job("kept-a", 1))]

    kept.write_bytes(kept.read_bytes().replace(b"kept-a", b"kept-b"))   # corrupt: not used
    assert sync(settings).exit_code == 0 and len(assessed) == 1
    deployed("kept-a", parallelism=2)
    pushed = spec_repo.push("kept-a parallelism 2")   # another commit: looked at
    assert sync(settings).outcomes["kept-a"].result.value == "SUCCESS"
    assert assessed[1:] == [pushed]


def test_a_push_that_changes_one_deployment_assesses_that_one_alone(
        deployed, spec_repo, settings, rest, monkeypatch):
    for name in ("alone-a", "alone-b", "alone-c"):
        deployed(name)
    spec_repo.push()
    caches = Caches()
    settled(settings, caches)
    assessed = []
    original = reconcile._assess_one
    monkeypatch.setattr(reconcile, "_assess_one", lambda *args: assessed.append(args[3])
                        or original(*args))
    deployed("alone-b", parallelism=2)
    spec_repo.push("alone-b parallelism 2")

    changed = sync(settings, caches=caches)
    after = sync(settings, caches=caches)   # the status branch moved: every grounds compared

    assert assessed == ["alone-b", "alone-b"]
    assert changed.outcomes["alone-b"].result.value == "SUCCESS" and after.exit_code == 0
    assert rest.parallelism(spec_repo.status_of("alone-b")["job"]["id"]) == 2
    assert [d.status.job.id for d in after.documents] == [
        rest.job("alone-a", 1), rest.job("alone-b", 2), rest.job("alone-c", 1)]


def test_a_cycle_whose_documents_the_branch_holds_renders_nothing(
        spec_repo, settings, tmp_path, monkeypatch):
    spec_repo.write("deployments/refused.yaml", counter_deployment("refused", parallelism=0))
    spec_repo.push()
    caches = Caches()
    assert sync(settings, caches=caches).status_commit is not None   # INVALID, told once
    rendered = []
    original = reconcile.status_files
    monkeypatch.setattr(reconcile, "status_files", lambda *args: rendered.append(1)
                        or original(*args))

    again = sync(settings, caches=caches)   # the status head moved (its own commit): looked at
    assert again.status_commit is None and rendered == []
    clone = tmp_path / "other-agent"
    git(tmp_path, "clone", "-q", "-b", settings.status_branch, str(spec_repo.remote), str(clone))
    git(clone, "-c", "user.name=other", "-c", "user.email=o@x", "commit", "-q", "--allow-empty",
        "-m", "another agent's status")
    git(clone, "push", "-q", "origin", settings.status_branch)
    assert sync(settings, caches=caches).status_commit is None and rendered == [1]


def test_a_job_cancelled_outside_the_agent_ends_the_quiet_and_is_restarted(
        deployed, spec_repo, settings, rest, monkeypatch):
    deployed("quiet-drift")
    spec_repo.push()
    caches = Caches()
    settled(settings, caches)
    assessed = assessing(monkeypatch)
    job = rest.job("quiet-drift", 1)
    requests.patch(f"{rest.url}/jobs/{job}", params={"mode": "cancel"}, timeout=10)
    rest.wait_state(job, "CANCELED")

    assert sync(settings, caches=caches).exit_code == 0

    assert len(assessed) == 1
    status = spec_repo.status_of("quiet-drift")
    assert status["lastAction"]["kind"] == "RESTART"
    assert rest.jobs()[status["job"]["id"]] == "RUNNING"


def test_a_push_or_another_agents_status_commit_ends_the_quiet(
        deployed, spec_repo, settings, rest, monkeypatch, tmp_path):
    deployed("quiet-push")
    spec_repo.push()
    caches = Caches()
    settled(settings, caches)
    assessed = assessing(monkeypatch)
    clone = tmp_path / "other-agent"
    git(tmp_path, "clone", "-q", "-b", settings.status_branch, str(spec_repo.remote), str(clone))
    git(clone, "-c", "user.name=other", "-c", "user.email=o@x", "commit", "-q", "--allow-empty",
        "-m", "another agent's status")
    git(clone, "push", "-q", "origin", settings.status_branch)

    sync(settings, caches=caches)
    deployed("quiet-push", parallelism=2)
    pushed = spec_repo.push("parallelism 2")
    assert sync(settings, caches=caches).outcomes["quiet-push"].result.value == "SUCCESS"

    assert assessed[1:] == [pushed] and len(assessed) == 2
    assert rest.parallelism(spec_repo.status_of("quiet-push")["job"]["id"]) == 2


def test_a_periodic_savepoint_falling_due_ends_the_quiet(
        deployed, spec_repo, settings, rest, monkeypatch):
    deployed("quiet-periodic", extra="periodicSavepointInterval: 1h")
    spec_repo.push()
    caches = Caches()
    quiet = settled(settings, caches)
    assert caches.quiet.until == quiet.wake_at   # (the savepoint is the only time it has)
    rest.wait_checkpoint(rest.job("quiet-periodic", 1))
    monkeypatch.setattr(reconcile, "utc_now", lambda: "2099-01-01T00:00:00Z")

    result = sync(settings, caches=caches)

    assert result.outcomes["quiet-periodic"].result.value == "SUCCESS"
    saved = spec_repo.status_of("quiet-periodic")["history"]["savepoints"]
    assert [s["origin"] for s in saved] == ["PERIODIC"]


def test_a_secret_file_that_appears_is_seen_though_nothing_else_moved(
        deployed, spec_repo, settings, rest, tmp_path):
    secret = tmp_path / "token"
    deployed("quiet-secret", options=f"quiet.token: ${{file:{secret}}}")
    spec_repo.push()
    caches = Caches()
    assert sync(settings, caches=caches).exit_code == 1
    assert sync(settings, caches=caches).status_commit is None and caches.quiet is None
    secret.write_text("s3cr3t-canary")

    assert sync(settings, caches=caches).exit_code == 0

    assert spec_repo.status_of("quiet-secret")["state"] == "RUNNING"


# --- the rules, as values ----------------------------------------------------------------------

def item(**fields) -> Assessment:
    spec, status = deployment(), applied(deployment())
    return Assessment(**{"name": "orders", "desired": spec, "desired_hash": spec.job_hash(),
                         "spec_file": "orders.yaml", "target": None, "previous": status,
                         "observation": running(), "difference": Difference("orders", spec,
                                                                            False, False),
                         "plan": Plan("orders", None)} | fields)


SEEN = Sighting("c1", "s1", {"local": ClusterView(True)})


def test_a_quiet_cycle_holds_until_its_earliest_time_and_while_it_sees_the_same():
    kept = quiet_cycle(SEEN, LoadResult(), [
        item(next_savepoint_at="2026-11-30T10:00:00Z"),
        item(next_disposal_at="2026-11-30T09:00:00Z")], [], None)
    assert kept.until == "2026-11-30T09:00:00Z"
    assert kept.holds(SEEN, "2026-11-30T08:59:59Z")
    assert not kept.holds(SEEN, "2026-11-30T09:00:00Z")
    for moved in (Sighting("c2", "s1", SEEN.views), Sighting("c1", "s2", SEEN.views),
                  Sighting("c1", "s1", {"local": ClusterView(False, error="refused")})):
        assert not kept.holds(moved, "2026-11-30T08:00:00Z")


def test_a_cycle_whose_deployments_read_more_than_git_and_flink_is_not_kept():
    watched = applied(deployment())
    watched.status.stability = StabilityWatch(
        job_id="j", action="STATEFUL_UPGRADE", spec_hash="h", commit="c", window="1m",
        started_at="2026-11-30T08:59:00Z",
        until="2026-11-30T09:00:00Z", give_up_at="2026-11-30T09:10:00Z")
    file_jar = deployment(jar="file:///opt/jobs/a.jar")
    reading_more = {
        "its job's health": (item(health=JobHealth()), LoadResult()),
        "a jar in a store": (item(inputs=JobInputs(artifact="etag:1")), LoadResult()),
        "secrets' values": (item(inputs=JobInputs(secrets="digest")), LoadResult()),
        "secret references": (item(), LoadResult(secret_readers={"orders"})),
        "a file:// jar": (item(desired=file_jar), LoadResult(
            deployments={"orders": Located(file_jar, "orders.yaml", 1)})),
        "a stability window": (item(previous=watched), LoadResult()),
        "an assumed job": (item(observation=Observation(True, (), assumed=True)), LoadResult()),
        "an action": (item(plan=Plan("orders", ActionKind.RESTART)), LoadResult()),
    }
    for why, (each, loaded) in reading_more.items():
        assert quiet_cycle(SEEN, loaded, [each], [], None) is None, why
    assert quiet_cycle(Sighting("c1", "s1", {"local": ClusterView(False)}), LoadResult(),
                       [item()], [], None) is None
    assert quiet_cycle(SEEN, LoadResult(), [item()], [], None) is not None
