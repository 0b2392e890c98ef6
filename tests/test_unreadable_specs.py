"""Nothing the agent could not read changes a job (DESIGN §5.8), against real Flink and real git:
a spec file that cannot be read holds its deployments, a moved file restarts nothing, deletions
need positive evidence and a mass deletion is held, and a broken status document is recovered
from Flink's own records."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from agent.config import DEFAULT_STATUS_BRANCH
from agent.reconcile import review, sync
from conftest import counter_deployment, git
from hostile_inputs import CASES

CANARY = "corpus-canary-4f1e9b"


@pytest.fixture
def running(request, deployed, spec_repo, settings, rest):
    """A deployment named after the test (job ids are unique on the shared cluster), deployed
    and running: (name, its file, its job id)."""
    name = request.node.name.removeprefix("test_").replace("_", "-")[:40].strip("-")
    deployed(name)
    spec_repo.push(name)
    assert sync(settings).exit_code == 0
    job = rest.job(name, 1)
    rest.wait_state(job, "RUNNING")
    return name, f"deployments/{name}.yaml", job


def push_file(spec_repo, path: str, content: str | bytes, message: str = "edit") -> None:
    file = spec_repo.checkout / path
    file.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        file.write_bytes(content)
    else:
        file.write_text(content)
    spec_repo.push(message)


def test_a_yaml_syntax_error_leaves_the_running_job_alone_and_says_where(
        running, spec_repo, settings, rest):
    name, path, job = running
    broken = counter_deployment(name) + "  parallelism: [oops\n"
    push_file(spec_repo, path, broken, "a typo")

    reviewed = review(settings)
    assert reviewed.exit_code == 1
    [item] = reviewed.reviews
    assert item.action == "INVALID" and item.plan.action is None
    assert any(f"{path}:21: YAML syntax error" in p for p in reviewed.problems)

    result = sync(settings)
    assert result.exit_code == 1
    assert rest.running() == [job]
    status = spec_repo.status_of(name)
    assert (status["state"], status["sync"], status["job"]["id"]) == ("RUNNING", "INVALID", job)
    assert not status.get("deleted") and status["lastAction"]["kind"] == "START"
    [problem] = status["errors"]
    assert (problem["file"], problem["line"]) == (path, 21)
    assert "YAML syntax error" in problem["message"] and "held this deployment" in \
        problem["message"]

    push_file(spec_repo, path, counter_deployment(name), "fixed")
    assert sync(settings).exit_code == 0
    assert rest.running() == [job]   # the fixed file is the applied spec: nothing to do
    assert spec_repo.status_of(name)["sync"] == "SYNCED"


def test_no_hostile_spec_file_changes_the_running_job(running, spec_repo, settings, rest, flink,
                                                      monkeypatch):
    name, path, job = running
    monkeypatch.setenv("CORPUS_CANARY", CANARY)   # a secret in play all along
    spec_repo.write_target("test", flink.url, headers={"X-Token": "${CORPUS_CANARY}"})
    for case in CASES:
        push_file(spec_repo, path, case.make(counter_deployment(name), name), case.id)
        assert sync(settings).exit_code == 1, case.id
        assert rest.running() == [job], case.id
        status = spec_repo.status_of(name)
        assert (status["state"], status["sync"]) == ("RUNNING", "INVALID"), case.id
        assert any(case.expect in e["message"] for e in status["errors"]), (case.id,
                                                                           status["errors"])
    assert spec_repo.status_of(name)["lastAction"]["kind"] == "START"
    assert CANARY not in git(spec_repo.remote, "log", "-p", DEFAULT_STATUS_BRANCH)


def test_a_deployment_moved_to_another_file_keeps_its_job(running, spec_repo, settings, rest):
    name, path, job = running
    (spec_repo.checkout / path).unlink()
    spec_repo.write(f"teams/payments/{name}.yaml", counter_deployment(name))
    spec_repo.push("moved")
    result = sync(settings)
    assert result.exit_code == 0 and result.outcomes == {}
    assert rest.running() == [job]
    status = spec_repo.status_of(name)
    assert status["specFile"] == f"teams/payments/{name}.yaml" and not status.get("deleted")


def test_three_deletions_at_once_are_held_until_confirmed(deployed, spec_repo, settings, rest):
    for name in ("del-a", "del-b", "del-c", "kept"):
        deployed(name)
    spec_repo.push("four deployments")
    assert sync(settings).exit_code == 0
    jobs = sorted(rest.running())
    for name in ("del-a", "del-b", "del-c"):
        (spec_repo.checkout / f"deployments/{name}.yaml").unlink()
    spec_repo.push("three deleted")

    planned = review(settings)
    assert planned.exit_code == 1
    held = [r for r in planned.reviews if r.plan.blocked]
    assert sorted(r.name for r in held) == ["del-a", "del-b", "del-c"]
    assert "3 deletions held; the limit is 1" in held[0].verdict.denials[0]

    assert sync(settings).exit_code == 1
    assert sorted(rest.running()) == jobs
    for name in ("del-a", "del-b", "del-c"):
        status = spec_repo.status_of(name)
        assert (status["state"], status["sync"]) == ("RUNNING", "BLOCKED")
        assert not status.get("deleted")
        assert "confirm with `--max-deletions`" in status["errors"][0]["message"]

    confirmed = dataclasses.replace(settings, max_deletions=3)
    assert sync(confirmed).exit_code == 0
    assert rest.running() == [rest.job("kept", 1)]
    for name in ("del-a", "del-b", "del-c"):
        status = spec_repo.status_of(name)
        assert status["deleted"] and status["state"] == "SUSPENDED"
        assert status["lastSavepoint"]["origin"] == "SUSPEND"


GARBAGE = {
    "invalid-yaml": b"status: [unclosed\n",
    "wrong-schema": b"apiVersion: v1\nkind: DeploymentStatus\nmetadata: {name: orders}\n"
                    b"status: {state: SOMEWHERE}\n",
    "empty": b"",
    "binary": bytes(range(256)),
}


def write_status_by_hand(spec_repo, tmp_path, path: str, content: bytes) -> None:
    checkout = tmp_path / "status-by-hand"
    if not checkout.exists():
        git(tmp_path, "clone", "--quiet", "--branch", DEFAULT_STATUS_BRANCH,
            str(spec_repo.remote), str(checkout))
    git(checkout, "pull", "--quiet")
    (checkout / path).write_bytes(content)
    git(checkout, "commit", "--quiet", "-am", "by hand")
    git(checkout, "push", "--quiet", "origin", f"HEAD:{DEFAULT_STATUS_BRANCH}")


def test_a_broken_status_document_is_recovered_from_flinks_records(
        running, spec_repo, settings, rest, tmp_path):
    name, _, job = running
    document = f"deployments/{name}.yaml"
    for kind, content in GARBAGE.items():
        write_status_by_hand(spec_repo, tmp_path, document, content)
        shown = subprocess.run([sys.executable, "-m", "agent.cli", "status", "--repo",
                                settings.repo, "--workdir", str(settings.workdir)],
                               capture_output=True, text=True, timeout=60)
        assert shown.returncode == 0 and "Traceback" not in shown.stderr, kind
        assert document in shown.stderr, kind
        assert review(settings).exit_code == 0, kind

        assert sync(settings).exit_code == 0, kind
        assert rest.running() == [job], kind
        status = spec_repo.status_of(name)
        assert (status["state"], status["sync"], status["job"]["id"]) == (
            "RUNNING", "SYNCED", job), kind
        messages = [e["message"] for e in status["history"]["events"]]
        assert any(document in m and "could not be read" in m for m in messages), kind
        assert any(f"found job {job}" in m for m in messages), kind
