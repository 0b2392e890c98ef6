"""The spec repository: clone once, fetch each cycle, read files at a commit (I/O: git).

The agent keeps one bare mirror of the spec repository in its work dir and reads files straight
from commits, without a work tree. Remote branches land under `refs/remotes/origin/`, so the
status branch is read from there too. Credentials come from git's own configuration.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from pathlib import Path

import git

from agent.errors import SourceError
from agent.logs import redact
from agent.load import SPEC_SUFFIXES

REMOTE = "origin"
FETCH_TIMEOUT_S = 120
def normalise_url(repo: str) -> str:
    """A local path becomes an absolute path; URLs stay as they are."""
    if "://" in repo or re.match(r"^[\w.-]+@[\w.-]+:", repo):
        return repo
    return str(Path(repo).expanduser().resolve())


class SpecRepository:
    """A bare mirror of the spec repository under the agent's work dir."""

    def __init__(self, url: str, workdir: Path):
        self.url = normalise_url(url)
        key = hashlib.sha256(self.url.encode()).hexdigest()[:12]
        self.path = Path(workdir) / "repos" / key
        self._repo: git.Repo | None = None

    @property
    def repo(self) -> git.Repo:
        if self._repo is None:
            self._repo = self._open()
        return self._repo

    def _open(self) -> git.Repo:
        if (self.path / "HEAD").exists():
            return git.Repo(self.path)
        self.path.mkdir(parents=True, exist_ok=True)
        repo = git.Repo.init(self.path, bare=True)
        repo.create_remote(REMOTE, self.url)
        return repo

    def git(self, *args: str, input: bytes | str | None = None,
            env: dict[str, str] | None = None) -> str:
        """Runs a git command in the mirror (plumbing for the status branch and the lease)."""
        data = input.encode() if isinstance(input, str) else input
        process = subprocess.run(["git", "-C", str(self.path), *args], input=data,
                                 capture_output=True, env={**os.environ, **(env or {})})
        if process.returncode != 0:
            reason = process.stderr.decode(errors="replace").strip()
            raise SourceError(f"git {args[0]} failed: {redact(reason)}")
        return process.stdout.decode().strip()

    def fetch(self) -> None:
        """Fetches every branch of the remote (the spec branch and the status branch)."""
        try:
            self.repo.git.fetch(REMOTE, "--prune", "--quiet",
                                f"+refs/heads/*:refs/remotes/{REMOTE}/*",
                                kill_after_timeout=FETCH_TIMEOUT_S)
        except git.GitCommandError as error:
            raise SourceError(
                f"cannot fetch {redact(self.url)}: {_git_reason(error)}") from None

    def head(self, branch: str) -> str | None:
        """The commit the remote branch points at, or None when there is no such branch."""
        ref = f"refs/remotes/{REMOTE}/{branch}"
        try:
            return self.repo.git.rev_parse("--verify", "--quiet", ref + "^{commit}")
        except git.GitCommandError:
            return None

    def resolve(self, rev: str) -> str:
        """A commit id for a branch name (of the remote), tag, or commit."""
        for candidate in (f"refs/remotes/{REMOTE}/{rev}", rev):
            try:
                return self.repo.git.rev_parse("--verify", "--quiet", candidate + "^{commit}")
            except git.GitCommandError:
                continue
        raise SourceError(f"{rev!r} is neither a branch of {redact(self.url)} nor a commit")

    def spec_files(self, commit: str, path: str = ".",
                   suffixes: tuple[str, ...] = SPEC_SUFFIXES) -> dict[str, str]:
        """Every file under `path` at `commit` whose name ends with one of `suffixes` (spec
        YAML by default): repo-relative path -> text."""
        prefix = _prefix(path)
        files = {}
        for item in self.repo.commit(commit).tree.traverse():
            if item.type == "blob" and item.path.startswith(prefix) \
                    and item.path.endswith(suffixes):
                files[item.path] = item.data_stream.read().decode("utf-8", errors="replace")
        return files

    def blob_id(self, commit: str, path: str) -> str | None:
        """Git's id of a file's content at `commit` (changes exactly when the content does)."""
        try:
            return (self.repo.commit(commit).tree / path).hexsha
        except KeyError:
            return None

    def read(self, commit: str, path: str) -> bytes | None:
        """One file (a normalised repo-relative path) at `commit`, or None when it is not there."""
        try:
            return (self.repo.commit(commit).tree / path).data_stream.read()
        except KeyError:
            return None


def _prefix(path: str) -> str:
    cleaned = path.strip("/")
    return "" if cleaned in ("", ".") else cleaned + "/"


def _git_reason(error: git.GitCommandError) -> str:
    text = (error.stderr or "").strip().removeprefix("stderr:").strip().strip("'").strip()
    return redact(text or str(error))
