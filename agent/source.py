"""The spec repository: clone once, fetch each cycle, read files at a commit (I/O: git).

The agent keeps one bare mirror of the spec repository in its work dir and reads files straight
from commits, without a work tree. Remote branches land under `refs/remotes/origin/`, so the
status branch is read from there too. Credentials come from git's own configuration.

A commit's files are listed with their blob ids by one `git ls-tree` (remembered per commit,
since a commit never changes), and many blobs are read by one `git cat-file --batch`: a cycle
costs a handful of git processes whatever the number of files, and callers can skip every file
whose blob id they have seen before.

The mirror holds nothing the remote does not (status commits are pushed), except a status commit
kept while the remote was away: a mirror git finds broken (a file of it deleted, truncated or
garbled) is moved aside to `<key>.broken` and cloned again from the remote, once per instance,
with a warning. A work dir on a full disk is a SourceError naming the path and the OS's reason;
git writes every object and ref to a temporary file first, so the mirror is left whole.
"""

from __future__ import annotations

import configparser
import hashlib
import logging
import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Iterable

import git

from agent.errors import ConfigError, RepoFileRefused, SourceError
from agent.logs import redact
from agent.memo import Memo
from agent.model.spec import SPEC_SUFFIXES

log = logging.getLogger(__name__)
REMOTE = "origin"
FETCH_TIMEOUT_S = 120
PENDING_STATUS_REF = "refs/flink-gitops/pending-status"   # a status commit not pushed yet
SMALL_BLOBS_KEPT, SMALL_BLOB_BYTES = 32, 512 * 1024   # files read by path, kept for a cycle
# what git says of a mirror it finds broken (a line of the remote's own, `remote: `, is not)
BROKEN = re.compile(r"^(?!remote:).*(not a git repository|bad object|\) is corrupt|corrupt loose "
                    r"object|object corrupt|corrupt packed object|object file \S+ is empty|"
                    r"does not match index|index file \S+ is too small|too short to be a packfile|"
                    r"bad config|unexpected line in \S*packed-refs|invalid sha1 pointer|"
                    rf"'{REMOTE}' does not appear to be a git repository)",
                    re.IGNORECASE | re.MULTILINE)
# what git says when another git process moved a ref it was updating (a killed agent's own push
# that outlived it): tried again, up to REF_RACE_TRIES times, half a second apart
REF_RACE = re.compile(r"cannot lock ref '[^']+': is at \w+ but expected \w+")
REF_RACE_TRIES = 3
# what the OS says of a full disk (File too large: a file size limit, RLIMIT_FSIZE)
DISK_FULL = re.compile(r"No space left on device|Disk quota exceeded|File too large",
                       re.IGNORECASE)


def normalise_url(repo: str) -> str:
    """A local path becomes an absolute path; URLs stay as they are."""
    if "://" in repo or re.match(r"^[\w.-]+@[\w.-]+:", repo):
        return repo
    return str(Path(repo).expanduser().resolve())


class SpecRepository:
    """A bare mirror of the spec repository under the agent's work dir."""

    def __init__(self, url: str, workdir: Path, trees: Memo | None = None):
        """`trees`: commit -> (path -> blob id of every regular file, paths of symbolic links),
        remembered across cycles when the caller keeps it (a commit never changes)."""
        self.url = normalise_url(url)
        self._trees = trees if trees is not None else Memo("git trees", 8)
        # small files read by path, by blob id, for this object's life (a cycle): a first
        # deploy of thousands sharing a jar or script reads it once, not once per action
        self._small = Memo("small git blobs", SMALL_BLOBS_KEPT)
        key = hashlib.sha256(self.url.encode()).hexdigest()[:12]
        self.path = Path(workdir) / "repos" / key
        self._repo: git.Repo | None = None
        self.signing_key: Path | None = None   # an SSH private key: status commits are signed
        self._rebuilt = False
        self._rebuilding = threading.Lock()

    @property
    def repo(self) -> git.Repo:
        if self._repo is None:
            self._repo = self._open()
        return self._repo

    def _open(self) -> git.Repo:
        """The mirror; made empty when there is none, made again when git cannot open it."""
        if not self.path.exists():
            return self._make()
        try:
            repo = git.Repo(self.path)
            remotes = {remote.name for remote in repo.remotes}
        except (git.InvalidGitRepositoryError, git.NoSuchPathError, configparser.Error,
                ValueError) as error:
            return self._rebuild(f"{type(error).__name__}: {str(error).splitlines()[0]}",
                                 fetch=False)
        if REMOTE not in remotes:
            return self._rebuild(f"its config names no remote {REMOTE!r}", fetch=False)
        return repo

    def _make(self) -> git.Repo:
        """An empty mirror, made next to its place and moved there, so that a full disk leaves
        no half-made one behind."""
        fresh = self.path.with_name(self.path.name + ".new")
        shutil.rmtree(fresh, ignore_errors=True)
        try:
            fresh.mkdir(parents=True)
            git.Repo.init(fresh, bare=True).create_remote(REMOTE, self.url)
            fresh.rename(self.path)
        except (OSError, git.GitCommandError) as error:
            shutil.rmtree(fresh, ignore_errors=True)
            reason = error.strerror if isinstance(error, OSError) else _git_reason(error)
            raise SourceError(f"cannot make the mirror of {redact(self.url)} in "
                              f"{self.path.parent}: {_one_line(reason)}") from None
        return git.Repo(self.path)

    def _rebuild(self, reason: str, fetch: bool = True) -> git.Repo:
        """Moves the broken mirror aside (to `<key>.broken`, replacing an older one) and makes
        it again from the remote, once per instance: a mirror broken again raises SourceError.
        A status commit kept in it and not pushed yet is lost, and the warning says so."""
        with self._rebuilding:
            if self._rebuilt:
                raise SourceError(f"the mirror {self.path} is broken again after it was made "
                                  f"again from the remote: {_one_line(reason, BROKEN)}")
            self._rebuilt = True
            aside = self.path.with_name(self.path.name + ".broken")
            kept = self.path / PENDING_STATUS_REF
            lost = (f"; the status commit {kept.read_text().strip()[:10]} it kept (not pushed "
                    f"yet) is lost" if kept.is_file() else "")
            try:
                shutil.rmtree(aside, ignore_errors=True)
                self.path.rename(aside)
            except OSError as error:
                raise SourceError(f"the mirror {self.path} is broken ({_one_line(reason, BROKEN)})"
                                  f" and cannot be moved aside: {error.strerror}") from None
            log.warning("the mirror %s is broken (%s): moved to %s and made again from %s%s",
                        self.path, _one_line(reason, BROKEN), aside.name, redact(self.url), lost)
            self._repo = self._make()
            if fetch:
                self._fetch()
            return self._repo

    def sign_with(self, key: Path | None) -> None:
        """Status commits made here are signed with the SSH private `key` (None: unsigned);
        ConfigError when it is not a file."""
        if key is not None and not Path(key).is_file():
            raise ConfigError(f"--signing-key {key}: no such file")
        self.signing_key = Path(key).resolve() if key is not None else None

    def signing(self) -> tuple[str, ...]:
        """The options of `git commit-tree` that sign the commit (none without a key)."""
        if self.signing_key is None:
            return ()
        return ("-c", "gpg.format=ssh", "-c", f"user.signingKey={self.signing_key}")

    def git(self, *args: str, input: bytes | str | None = None,
            env: dict[str, str] | None = None) -> str:
        """Runs a git command in the mirror (plumbing for the status branch and the lease)."""
        return self._run(args, input, env).decode().strip()

    def _run(self, args: tuple[str, ...], input: bytes | str | None = None,
             env: dict[str, str] | None = None) -> bytes:
        """A git command's raw output; SourceError (redacted) when it fails or hangs. A mirror
        git finds broken is made again from the remote and the command run once more."""
        data = input.encode() if isinstance(input, str) else input
        self.repo   # the mirror is there (made, or made again) before git runs in it
        try:
            process = subprocess.run(["git", "-C", str(self.path), *args], input=data,
                                     capture_output=True, env={**os.environ, **(env or {})},
                                     timeout=FETCH_TIMEOUT_S)  # push and ls-remote go remote
        except subprocess.TimeoutExpired:
            raise SourceError(f"git {args[0]} did not answer in {FETCH_TIMEOUT_S}s "
                              f"({redact(self.url)})") from None
        except OSError as error:
            raise SourceError(f"cannot run git {args[0]} in {self.path}: "
                              f"{error.strerror}") from None
        if process.returncode != 0:
            reason = process.stderr.decode(errors="replace").strip()
            if DISK_FULL.search(reason):
                raise SourceError(f"git {args[0]} failed in {self.path}: "
                                  f"{_one_line(reason, DISK_FULL)}")
            if BROKEN.search(reason) and not self._rebuilt:
                self._rebuild(reason)
                return self._run(args, input, env)
            raise SourceError(f"git {args[0]} failed: {redact(reason)}")
        return process.stdout

    def fetch(self) -> None:
        """Fetches every branch of the remote (the spec branch and the status branch) into the
        mirror, made again from the remote when git finds it broken."""
        try:
            self._fetch(rebuild=True)
        except git.GitCommandError as error:
            self._rebuild(_git_reason(error))

    def _fetch(self, rebuild: bool = False, tries: int = REF_RACE_TRIES) -> None:
        """`fetch`; with `rebuild`, a GitCommandError when git finds the mirror broken."""
        try:
            self.repo.git.fetch(REMOTE, "--prune", "--quiet",
                                f"+refs/heads/*:refs/remotes/{REMOTE}/*",
                                kill_after_timeout=FETCH_TIMEOUT_S)
        except git.GitCommandError as error:
            reason = _git_reason(error)
            if tries > 1 and REF_RACE.search(reason):
                log.info("another git process moved a ref during the fetch: fetching again")
                time.sleep(0.5)
                return self._fetch(rebuild, tries - 1)
            if DISK_FULL.search(reason):
                raise SourceError(f"cannot fetch {redact(self.url)} into {self.path}: "
                                  f"{_one_line(reason, DISK_FULL)}") from None
            if rebuild and BROKEN.search(reason):
                raise
            raise SourceError(f"cannot fetch {redact(self.url)}: {reason}") from None

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

    def files(self, commit: str) -> dict[str, str]:
        """Every regular file at `commit`: repo-relative path -> git blob id (one `git ls-tree`).
        Symbolic links are no files of the spec repository: they are never followed."""
        return self._tree(commit)[0]

    def is_link(self, commit: str, path: str) -> bool:
        return path in self._tree(commit)[1]

    def _tree(self, commit: str) -> tuple[dict[str, str], frozenset[str]]:
        commit = self.resolve(commit) if len(commit) != 40 else commit
        return self._trees.get_or(commit, lambda: self._list(commit))

    def _list(self, commit: str) -> tuple[dict[str, str], frozenset[str]]:
        listing, links = {}, set()
        for line in self.git("ls-tree", "-r", "-z", "--full-tree", commit).split("\0"):
            if not line:
                continue
            meta, _, path = line.partition("\t")
            mode, kind, blob = meta.split()
            if mode == "120000":
                links.add(path)
            elif kind == "blob":
                listing[path] = blob
        return listing, frozenset(links)

    def spec_blobs(self, commit: str, path: str = ".",
                   suffixes: tuple[str, ...] = SPEC_SUFFIXES) -> dict[str, str]:
        """Every file under `path` at `commit` whose name ends with one of `suffixes` (spec
        YAML by default): repo-relative path -> git blob id."""
        prefix = _prefix(path)
        return {name: blob for name, blob in self.files(commit).items()
                if name.startswith(prefix) and name.endswith(suffixes)}

    def read_blobs(self, blobs: Iterable[str]) -> dict[str, bytes]:
        """The content of each blob id, read by one `git cat-file --batch`."""
        return self._cat(list(blobs))

    def _cat(self, wanted: list[str]) -> dict[str, bytes]:
        """The content of each object id, by one `git cat-file --batch` (safe from threads,
        unlike GitPython's shared one)."""
        if not wanted:
            return {}
        data = self._run(("cat-file", "--batch"), "\n".join(wanted) + "\n")
        contents, at = {}, 0
        for blob in wanted:
            end = data.index(b"\n", at)
            header = data[at:end].split()
            if len(header) != 3 and not self._rebuilt:   # listed by a tree: the mirror is broken
                self._rebuild(f"object {blob} is missing or corrupt")
                return self._cat(wanted)
            if len(header) != 3:
                raise SourceError(f"git cat-file: no object {blob}")
            size = int(header[2])
            contents[blob] = data[end + 1:end + 1 + size]
            at = end + 1 + size + 1
        return contents

    def spec_files(self, commit: str, path: str = ".",
                   suffixes: tuple[str, ...] = SPEC_SUFFIXES) -> dict[str, bytes]:
        """Every file under `path` at `commit` whose name ends with one of `suffixes` (spec
        YAML by default): repo-relative path -> content."""
        blobs = self.spec_blobs(commit, path, suffixes)
        contents = self.read_blobs(sorted(set(blobs.values())))
        return {name: contents[blob] for name, blob in blobs.items()}

    def spec_texts(self, commit: str, path: str, suffixes: tuple[str, ...]) -> dict[str, str]:
        """`spec_files` as text (bytes that are not UTF-8 read as U+FFFD)."""
        return {name: data.decode("utf-8", errors="replace")
                for name, data in self.spec_files(commit, path, suffixes).items()}

    def blob_id(self, commit: str, path: str) -> str | None:
        """Git's id of a file's content at `commit` (changes exactly when the content does)."""
        return self.files(commit).get(path)

    def read(self, commit: str, path: str) -> bytes | None:
        """One file (a normalised repo-relative path) at `commit`, or None when it is not there;
        RepoFileRefused for a symbolic link."""
        blob = self.blob_id(commit, path) if self.has_file(commit, path) else None
        if blob is None:
            return None
        content = self._small.get(blob)
        if content is None:
            content = self._cat([blob])[blob]
            if len(content) <= SMALL_BLOB_BYTES:
                self._small.put(blob, content)
        return content

    def has_file(self, commit: str, path: str) -> bool:
        """Whether `path` is a file at `commit`; RepoFileRefused for a symbolic link."""
        if self.is_link(commit, path):
            raise RepoFileRefused(f"{path} is a symbolic link in the spec repository; links are "
                                  "not followed")
        return path in self.files(commit)


def _prefix(path: str) -> str:
    cleaned = path.strip("/")
    return "" if cleaned in ("", ".") else cleaned + "/"


def _one_line(text: str, saying: re.Pattern | None = None) -> str:
    """The first line of git's `text` that matches `saying`, else its last (the `fatal:`)."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()] or [text]
    return redact(next((line for line in lines if saying and saying.search(line)), lines[-1]))


def _git_reason(error: git.GitCommandError) -> str:
    text = (error.stderr or "").strip().removeprefix("stderr:").strip().strip("'").strip()
    return redact(text or str(error))
