"""Agent settings: where the specs are, where status goes, where the agent keeps its files (pure).

Every setting is a command-line flag; the work dir also reads `FLINK_GITOPS_WORKDIR`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_STATUS_BRANCH = "flink-gitops/status"


def default_workdir() -> Path:
    configured = os.environ.get("FLINK_GITOPS_WORKDIR")
    return Path(configured) if configured else Path.home() / ".flink-gitops"


@dataclass(frozen=True)
class Settings:
    repo: str
    branch: str = "main"
    path: str = "."
    status_branch: str = DEFAULT_STATUS_BRANCH
    workdir: Path = Path.home() / ".flink-gitops"
    job_start_timeout_s: float = 120.0   # a started job must have every task running by then
    rollback: bool = True                # an upgrade whose job cannot start: start the old spec
    lease_ttl_s: float = 900.0           # how long a crashed agent's lease blocks others
    policy_package: str = "main"         # the Rego package of deny/warn rules (conftest's)
    actions_per_target: int = 1          # actions run at once on one cluster (targets: parallel)
    max_deletions: int | None = None     # deletions one cycle may make; None: max(1, 10 % known)
    file_jar_dirs: tuple[Path, ...] = ()  # where file:// jars may be read, besides the work dir
    status_url: str | None = None        # a deployment's page on the git host: a template of
                                         # {deployment} and {branch}, e.g. https://git.example/
                                         # org/specs/src/branch/{branch}/deployments/{deployment}.md
    commit_status: str | None = None     # the git host each action is reported to as a commit
                                         # status: github, gitlab or gitea (None: none)
    commit_status_url: str | None = None   # its API (None: GitHub's, https://api.github.com)
    commit_status_repo: str | None = None  # owner/name there (GitLab: project id or path)
    commit_status_token: str | None = None  # a secret reference, expanded for the request only
    notify: tuple[str, ...] = ()         # webhook receivers: URL[;label=value,...] each
    shard_selector: str | None = None    # the deployments this agent acts on (`agent.model.shard`;
                                         # None: all of the spec repo's)
    override_window: bool = False        # `sync --override-window`: act inside sync windows
                                         # that allow a manual sync (`agent.sync_windows`)
    allowed_signers: Path | None = None  # trusted SSH signers (git's allowed-signers format);
    trusted_gpg_keyring: Path | None = None   # and/or trusted OpenPGP keys: either turns
                                         # commit verification on (`agent.signatures`)
    verify_every_commit: bool = False    # every commit since the last verified one, not the head
    signing_key: Path | None = None      # an SSH private key: the status commits are signed

    def status_page(self, deployment: str) -> str | None:
        """The address of `deployment`'s status page, when `status_url` is set."""
        if self.status_url is None:
            return None
        return self.status_url.format(deployment=deployment, branch=self.status_branch)

    @property
    def file_roots(self) -> tuple[Path, ...]:
        """The directories `file://` jar URIs may point into."""
        return (self.workdir, *self.file_jar_dirs)

    @property
    def artifact_cache(self) -> Path:
        return self.workdir / "artifacts"

    @property
    def snapshots(self) -> Path:
        """Where memos are kept for a fresh process (`agent.snapshots`)."""
        return self.workdir / "cache"
