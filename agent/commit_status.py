"""Commit statuses on the spec commit a cycle applies, on GitHub, GitLab or Gitea: `pending` when
a deployment's action starts, `success` or `failure` when it ends (a rolled-back upgrade failed),
context `flink-gitops/<deployment>`, linked to the deployment's status page (I/O: HTTP, through
`agent.outbox`, so a git host that is slow or down never slows a cycle).

Each host's own API: GitHub `POST {api}/repos/{owner}/{repo}/statuses/{sha}` (`Authorization:
Bearer`), Gitea `POST {api}/api/v1/repos/{owner}/{repo}/statuses/{sha}` (`Authorization:
token`), both with {state, target_url, description, context}; GitLab `POST
{api}/api/v4/projects/{id}/statuses/{sha}` (`PRIVATE-TOKEN`) with {state, name, target_url,
description}, where an action under way is `running` and a failed one `failed`. The token is a
secret reference, expanded for the request only. Upkeep (periodic savepoints, disposals) is no
change of the spec commit and is not reported.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import quote, urlsplit

from agent.assessment import Assessment
from agent.config import Settings
from agent.errors import ConfigError
from agent.logs import redact
from agent.model.outcome import Outcome
from agent.model.references import references
from agent.model.status import ActionResult
from agent.outbox import Delivery, send
from agent.secrets import unresolved

CONTEXT_PREFIX = "flink-gitops/"
MAX_DESCRIPTION = 140            # characters of a description (GitHub's limit), cut with "…"
GITHUB_API_VERSION = "2022-11-28"


class GitHost(StrEnum):
    GITHUB = "github"
    GITLAB = "gitlab"
    GITEA = "gitea"


class CommitState(StrEnum):
    PENDING = "pending"          # the action started
    SUCCESS = "success"
    FAILURE = "failure"


DEFAULT_API = {GitHost.GITHUB: "https://api.github.com"}
_GITLAB_WORDS = {CommitState.PENDING: "running", CommitState.SUCCESS: "success",
                 CommitState.FAILURE: "failed"}
_OWNER_NAME = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
_GITLAB_PROJECT = re.compile(r"[0-9]+|[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+")


@dataclass(frozen=True)
class CommitStatuses:
    """Where a cycle's actions are reported; `host` None: nowhere."""

    host: GitHost | None = None
    api: str = ""
    repo: str = ""
    token: str = ""                                   # a secret reference
    page: Callable[[str], str | None] = lambda deployment: None   # a deployment's status page

    @classmethod
    def of(cls, settings: Settings) -> CommitStatuses:
        """The commit statuses `settings` ask for; ConfigError says what is wrong with them."""
        if settings.commit_status is None:
            given = [flag for flag, value in (
                ("--commit-status-url", settings.commit_status_url),
                ("--commit-status-repo", settings.commit_status_repo),
                ("--commit-status-token", settings.commit_status_token)) if value]
            if given:
                raise ConfigError(f"--commit-status is needed by {', '.join(given)}")
            return cls()
        host = _host(settings.commit_status)
        return cls(host, _api(host, settings.commit_status_url),
                   _repo(host, settings.commit_status_repo),
                   _token(settings.commit_status_token), settings.status_page)

    def unresolved(self) -> list[str]:
        """Why the token's reference cannot be expanded on this machine now, if it cannot
        (checked when the agent starts; a delivery that cannot expand it is logged)."""
        return [f"--commit-status-token: {why}" for _, why in unresolved(self.token)]

    def started(self, item: Assessment, commit: str) -> None:
        """`pending` on `commit`: `item`'s action starts."""
        if self._reports(item):
            send(self.request(item.name, commit, CommitState.PENDING,
                              f"{item.plan.action.value}: {item.plan.steps_text()}"))

    def ended(self, item: Assessment, commit: str, outcome: Outcome) -> None:
        """`success` or `failure` on `commit`: `item`'s action ended with `outcome` (`pending`
        still while its upgrade is in its stability window)."""
        if not self._reports(item):
            return
        state = {ActionResult.SUCCESS: CommitState.SUCCESS,   # (in its stability window)
                 ActionResult.IN_PROGRESS: CommitState.PENDING}.get(outcome.result,
                                                                   CommitState.FAILURE)
        send(self.request(item.name, commit, state,
                          f"{item.plan.action.value} {outcome.result.value}: {outcome.message}"))

    def _reports(self, item: Assessment) -> bool:
        return self.host is not None and item.plan.changes_anything and not item.plan.upkeep

    def request(self, deployment: str, commit: str, state: CommitState,
                description: str) -> Delivery:
        """The host's request setting `deployment`'s status on `commit` (pure)."""
        context = CONTEXT_PREFIX + deployment
        body = {"state": _GITLAB_WORDS[state] if self.host == GitHost.GITLAB else state.value,
                "description": _short(redact(description))}
        target = self.page(deployment)
        if target is not None:
            body["target_url"] = target
        match self.host:
            case GitHost.GITLAB:
                url = f"{self.api}/api/v4/projects/{quote(self.repo, safe='')}/statuses/{commit}"
                headers = (("PRIVATE-TOKEN", self.token),)
                body["name"] = context
            case GitHost.GITEA:
                url = f"{self.api}/api/v1/repos/{self.repo}/statuses/{commit}"
                headers = (("Authorization", f"token {self.token}"),)
                body["context"] = context
            case _:
                url = f"{self.api}/repos/{self.repo}/statuses/{commit}"
                headers = (("Authorization", f"Bearer {self.token}"),
                           ("Accept", "application/vnd.github+json"),
                           ("X-GitHub-Api-Version", GITHUB_API_VERSION))
                body["context"] = context
        return Delivery(url, body, f"commit status {state.value} of {deployment}",
                        f"{url}#{context}", headers)


def _short(text: str) -> str:
    return text if len(text) <= MAX_DESCRIPTION else text[:MAX_DESCRIPTION - 1] + "…"


def _host(written: str) -> GitHost:
    try:
        return GitHost(written.lower())
    except ValueError:
        raise ConfigError(f"--commit-status {written!r}: not a git host this agent reports to "
                          f"({', '.join(GitHost)})") from None


def _api(host: GitHost, written: str | None) -> str:
    api = written or DEFAULT_API.get(host)
    if api is None:
        raise ConfigError(f"--commit-status {host} needs --commit-status-url, the address of "
                          f"the {host} server (e.g. https://{host}.example.com)")
    parts = urlsplit(api)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
        raise ConfigError(f"--commit-status-url {redact(api)!r}: the http:// or https:// "
                          "address of the host's API")
    return api.rstrip("/")


def _repo(host: GitHost, written: str | None) -> str:
    pattern, form = ((_GITLAB_PROJECT, "a project id or group/project path")
                     if host == GitHost.GITLAB else (_OWNER_NAME, "owner/name"))
    if not written:
        raise ConfigError(f"--commit-status {host} needs --commit-status-repo, the spec repo "
                          f"there: {form}")
    if not pattern.fullmatch(written):
        raise ConfigError(f"--commit-status-repo {written!r}: {form}")
    return written


def _token(written: str | None) -> str:
    """The token's secret reference: required, as a token written out would stand in process
    lists and shell histories."""
    if not written or not references(written):
        raise ConfigError("--commit-status-token: the host's API token as a secret reference, "
                          "e.g. '${GITHUB_TOKEN}' or '${file:/run/secrets/git-token}'")
    return written
