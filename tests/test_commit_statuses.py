"""Commit statuses (`--commit-status`) on the spec commit, sent to a real HTTP server of the
tests' own that stands for GitHub, GitLab or Gitea: each host's path, body and auth header;
pending then success for a START on a real Flink, failure for a job that cannot start; the
token in no log and no status; wrong settings refused before anything acts."""

from __future__ import annotations

import dataclasses
import logging
import subprocess
import sys

import pytest

from agent import outbox
from agent.commit_status import CommitState, CommitStatuses, GitHost
from agent.config import DEFAULT_STATUS_BRANCH, Settings
from agent.errors import ConfigError
from agent.reconcile import sync, sync_until_settled
from conftest import ROOT, git
from test_notifications import receiving  # noqa: F401 - the fixture: receivers of our own

TOKEN = "host-s3cret-token"
SHA = "3f1a9c0e" * 5
STATUS_URL = "https://git.example/specs/{branch}/{deployment}.md"


def reporting(settings: Settings, host: str, url: str | None, repo: str = "flink/specs"):
    return dataclasses.replace(settings, commit_status=host, commit_status_url=url,
                               commit_status_repo=repo, status_url=STATUS_URL,
                               commit_status_token="${FG_TEST_HOST_TOKEN}")


@pytest.fixture
def token(monkeypatch):
    monkeypatch.setenv("FG_TEST_HOST_TOKEN", TOKEN)


@pytest.mark.parametrize("host, repo, path, header, body", [
    ("github", "flink/specs", f"/repos/flink/specs/statuses/{SHA}",
     ("Authorization", f"Bearer {TOKEN}"), {"state": "pending", "context": "flink-gitops/orders"}),
    ("gitea", "flink/specs", f"/api/v1/repos/flink/specs/statuses/{SHA}",
     ("Authorization", f"token {TOKEN}"), {"state": "pending", "context": "flink-gitops/orders"}),
    ("gitlab", "data/flink/specs", f"/api/v4/projects/data%2Fflink%2Fspecs/statuses/{SHA}",
     ("PRIVATE-TOKEN", TOKEN), {"state": "running", "name": "flink-gitops/orders"}),
])
def test_each_host_gets_its_own_path_body_and_auth_header(settings, token, receiving, host,
                                                          repo, path, header, body):
    api = receiving(status=201)
    statuses = CommitStatuses.of(reporting(settings, host, api.url, repo))
    assert outbox.send(statuses.request("orders", SHA, CommitState.PENDING, "START: x" * 40))
    assert outbox.wait(10)
    [request] = api.requests
    assert (request.method, request.path) == ("POST", path)
    assert request.headers[header[0]] == header[1]
    assert request.body == body | {
        "description": ("START: x" * 40)[:139] + "…",
        "target_url": f"https://git.example/specs/{DEFAULT_STATUS_BRANCH}/orders.md"}


def test_github_is_the_default_api_and_each_result_has_its_state(settings, token):
    statuses = CommitStatuses.of(reporting(settings, "GitHub", None))
    assert (statuses.host, statuses.api) == (GitHost.GITHUB, "https://api.github.com")
    assert [statuses.request("a", SHA, state, "").body["state"] for state in CommitState] == [
        "pending", "success", "failure"]
    gitlab = CommitStatuses.of(reporting(settings, "gitlab", "https://gitlab.example/", "42"))
    assert [gitlab.request("a", SHA, state, "").body["state"] for state in CommitState] == [
        "running", "success", "failed"]
    assert gitlab.request("a", SHA, CommitState.SUCCESS, "").url == (
        f"https://gitlab.example/api/v4/projects/42/statuses/{SHA}")


def test_a_start_is_pending_then_success_on_the_spec_commit(
        deployed, spec_repo, settings, token, receiving, caplog):
    caplog.set_level(logging.INFO)
    api = receiving(status=201)
    deployed("reported-start")
    commit = spec_repo.push()
    assert sync(reporting(settings, "github", api.url)).exit_code == 0
    assert outbox.wait(10)
    assert [r.path for r in api.requests] == [f"/repos/flink/specs/statuses/{commit}"] * 2
    pending, success = api.bodies()
    assert pending["state"] == "pending" and pending["description"].startswith("START: start job")
    assert success["state"] == "success" and success["description"].startswith("START SUCCESS")
    for body in (pending, success):
        assert body["context"] == "flink-gitops/reported-start"
        assert body["target_url"] == (
            f"https://git.example/specs/{DEFAULT_STATUS_BRANCH}/reported-start.md")
    assert {r.headers["Authorization"] for r in api.requests} == {f"Bearer {TOKEN}"}
    assert "commit status success of reported-start delivered" in caplog.text
    assert TOKEN not in caplog.text
    assert TOKEN not in git(spec_repo.remote, "log", "-p", DEFAULT_STATUS_BRANCH)


def test_a_job_that_cannot_start_is_a_failure_on_its_commit(deployed, spec_repo, settings,
                                                            token, receiving):
    api = receiving(status=201)
    deployed("reported-failure", args="--rate 0", extra="maxJobCreationAttempts: 1")
    commit = spec_repo.push()
    assert sync(reporting(settings, "gitea", api.url)).exit_code == 1
    assert outbox.wait(10)
    assert [r.path for r in api.requests] == [f"/api/v1/repos/flink/specs/statuses/{commit}"] * 2
    assert [b["state"] for b in api.bodies()] == ["pending", "failure"]
    assert api.bodies()[1]["description"].startswith("START FAILED: ")
    assert len(api.bodies()[1]["description"]) <= 140


def test_an_upgrade_in_its_stability_window_is_pending_on_its_commit_until_it_settles(
        deployed, spec_repo, settings, token, receiving):
    """The upgrade's commit stays pending through its window, and gets the success even when
    a later commit (that does not touch the deployment) is the branch head by then."""
    api = receiving(status=201)
    reported = reporting(settings, "github", api.url)
    deployed("reported-window", extra="upgradeStabilityWindow: 3s")
    spec_repo.push()
    assert sync(reported).exit_code == 0
    deployed("reported-window", parallelism=2, extra="upgradeStabilityWindow: 3s")
    upgrade = spec_repo.push("upgraded, watched for 3s")
    assert sync(reported).settling
    later = spec_repo.push("a later commit that touches no deployment")
    assert sync_until_settled(reported).exit_code == 0
    assert outbox.wait(10)
    upgrade_path = f"/repos/flink/specs/statuses/{upgrade}"
    told = [(r.path, b["state"]) for r, b in zip(api.requests, api.bodies())][2:]
    assert told == [(upgrade_path, "pending")] * 3 + [(upgrade_path, "success")]
    assert api.bodies()[-1]["description"].startswith("STATEFUL_UPGRADE SUCCESS: job ")
    assert later not in {r.path.rsplit("/", 1)[1] for r in api.requests}


@pytest.mark.parametrize("changes, said", [
    ({"commit_status": "bitbucket"}, "--commit-status 'bitbucket': not a git host this agent "
                                     "reports to (github, gitlab, gitea)"),
    ({"commit_status": "gitlab", "commit_status_url": None},
     "--commit-status gitlab needs --commit-status-url"),
    ({"commit_status_repo": "specs"}, "--commit-status-repo 'specs': owner/name"),
    ({"commit_status_token": TOKEN}, "--commit-status-token: the host's API token as a secret "
                                     "reference"),
    ({"commit_status": None}, "--commit-status is needed by --commit-status-url, "
                              "--commit-status-repo, --commit-status-token"),
])
def test_wrong_commit_status_settings_fail_the_cycle_before_anything(
        settings, token, spec_repo, changes, said):
    wrong = dataclasses.replace(reporting(settings, "github", "https://api.github.com"),
                                **changes)
    with pytest.raises(ConfigError) as refused:
        sync(wrong)
    assert said in str(refused.value) and TOKEN not in str(refused.value)
    assert spec_repo.status_commits() == []


@pytest.mark.parametrize("options, said", [
    (["--commit-status", "bitbucket"], "'bitbucket' is not one of 'github', 'gitlab', 'gitea'"),
    (["--commit-status", "github", "--commit-status-repo", "flink/specs",
      "--commit-status-token", "${FG_TEST_NO_SUCH_TOKEN}"],
     "--commit-status-token: ${FG_TEST_NO_SUCH_TOKEN}: the agent's environment has no variable "
     "FG_TEST_NO_SUCH_TOKEN"),
])
def test_an_unknown_host_or_a_token_not_here_is_a_usage_error(tmp_path, options, said):
    run = subprocess.run([sys.executable, "-m", "agent.cli", "sync", "--repo",
                          str(tmp_path / "specs.git"), "--workdir", str(tmp_path / "agent"),
                          *options], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 2
    assert said in " ".join(run.stderr.split())
