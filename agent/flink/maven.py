"""Jars in Maven repositories: which repository has a `maven://` jar, which file it is, and its
identity (I/O: HTTP).

The target's `artifactStores.maven` repositories are asked in the order written (Maven Central,
CENTRAL, when it lists none); the first that has the jar wins. A repository's url, username and
password may be secret references, expanded only for the request (basic auth when a username is
set); messages name a repository by its url as written. A 404 (or 410) means "not here" and the
next repository is asked; a 401/403 is a refusal, an ArtifactError naming the repository; a 5xx,
a 429 or no answer at all is ArtifactUnavailable, on which nothing is decided.

The file, and its identity (part of the job's digest):
- a release: the jar of that version. Identity `maven:VERSION|sha1:HEX` when the repository
  serves the jar's `.sha1` (Maven repositories do), else `maven:VERSION`. Cost: one GET of the
  `.sha1` (at most MAX_CHECKSUM_BYTES), and a HEAD of the jar only when there is no checksum,
  per repository asked. Releases are immutable, so a resolved one is remembered in the memo a
  caller passes (the agent's `Caches.artifacts`: a release redeployed in place, against the
  rules, is seen within its entries' lifetime) and costs no request in later cycles;
- a -SNAPSHOT: its latest build, named by the version directory's maven-metadata.xml (one GET,
  at most MAX_METADATA_BYTES, every cycle). Identity `maven:TIMESTAMPED-VERSION`, so a new build
  upgrades the job and the plan names the build.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import requests

from agent.errors import ArtifactError, ArtifactUnavailable
from agent.flink.http import AnswerTooLarge, DeadlinePassed, deadline, read_limited, session
from agent.memo import Memo
from agent.model.maven import (CENTRAL, MAX_CHECKSUM_BYTES, MAX_METADATA_BYTES, METADATA_FILE,
                               Coordinate, CoordinateInvalid, MetadataInvalid, checksum_in,
                               parse_coordinate, snapshot_build)
from agent.model.spec import MavenRepository
from agent.secrets import expand

REQUEST_TIMEOUT_S = 10          # a metadata or checksum request's connect and read timeouts
REQUEST_DEADLINE_S = 20.0       # such a request in all

Auth = tuple[str, str] | None


class NoAnswer(Exception):
    """A server that did not answer: no connection, or the request's deadline passed."""


@dataclass(frozen=True)
class Answer:
    """A server's answer to a small request: its status and, for a GET answered 200 within the
    size asked for, its body (None past it)."""

    status: int
    body: bytes | None = None

    @property
    def transient(self) -> bool:
        """An answer that may be another when asked again: a 5xx, or 429 (too many requests)."""
        return self.status >= 500 or self.status == 429


@dataclass(frozen=True)
class Resolved:
    """Where a `maven://` jar is, and what it is."""

    repository: MavenRepository    # as written
    path: str                      # the jar's path in it
    identity: str

    def url(self) -> str:
        """The jar's address, the repository's url expanded (for the request only)."""
        return _join(expand(self.repository.url), self.path)

    def shown(self) -> str:
        """The jar's address as written, for messages."""
        return _join(self.repository.url, self.path)

    def auth(self) -> Auth:
        return credentials(self.repository)


def ask(method: str, url: str, limit: int, auth: Auth = None) -> Answer:
    """One small request, redirects followed, within REQUEST_DEADLINE_S; NoAnswer when the
    server did not answer."""
    try:
        with deadline(REQUEST_DEADLINE_S):
            with session().request(method, url, auth=auth, stream=True, allow_redirects=True,
                                   timeout=REQUEST_TIMEOUT_S) as response:
                if response.status_code != 200 or method == "HEAD":
                    return Answer(response.status_code)
                try:
                    return Answer(200, read_limited(response, limit))
                except AnswerTooLarge:
                    return Answer(200)
    except (requests.RequestException, DeadlinePassed, OSError) as error:
        raise NoAnswer(type(error).__name__) from None


def repositories(written: list[MavenRepository]) -> list[MavenRepository]:
    """The repositories asked, in order: the target's, else Maven Central."""
    return list(written) or [MavenRepository(url=CENTRAL)]


def credentials(repository: MavenRepository) -> Auth:
    """A repository's basic-auth user and password, expanded, or None without a username."""
    if repository.username is None:
        return None
    return expand(repository.username), expand(repository.password or "")


def resolve(jar_uri: str, written: list[MavenRepository], known: Memo | None = None) -> Resolved:
    """The repository and file of the jar `jar_uri` names, and its identity (a release found
    once is taken from `known` afterwards)."""
    try:
        coordinate = parse_coordinate(jar_uri)
    except CoordinateInvalid as error:
        raise ArtifactError(f"jarUri {jar_uri}: {error}") from None
    asked = repositories(written)
    if coordinate.snapshot:
        return _first(jar_uri, coordinate, asked, _snapshot_in)
    if known is None:
        return _first(jar_uri, coordinate, asked, _release_in)
    key = ("maven", str(coordinate), tuple((r.url, r.username, r.password) for r in asked))
    return known.get_or(key, lambda: _first(jar_uri, coordinate, asked, _release_in))


def identity(jar_uri: str, written: list[MavenRepository], known: Memo | None = None) -> str:
    """The identity of the jar `jar_uri` names, as part of its job's digest."""
    return resolve(jar_uri, written, known).identity


Look = Callable[[str, Coordinate, MavenRepository], Resolved | None]


def _first(jar_uri: str, coordinate: Coordinate, asked: list[MavenRepository],
           look: Look) -> Resolved:
    for repository in asked:
        found = look(jar_uri, coordinate, repository)
        if found is not None:
            return found
    where = coordinate.metadata_path() if coordinate.snapshot else coordinate.jar_path()
    plural = "y" if len(asked) == 1 else "ies"
    raise ArtifactError(f"jarUri {jar_uri}: not found in the Maven repositor{plural} "
                        f"{', '.join(r.url for r in asked)} (no {where})")


def _release_in(jar_uri: str, coordinate: Coordinate,
                repository: MavenRepository) -> Resolved | None:
    path = coordinate.jar_path()
    answer = _ask(jar_uri, repository, "GET", f"{path}.sha1", MAX_CHECKSUM_BYTES)
    digest = checksum_in(answer.body, "sha1") if answer is not None and answer.body else None
    if digest is None and _ask(jar_uri, repository, "HEAD", path, 0) is None:
        return None
    checksum = f"|sha1:{digest}" if digest else ""
    return Resolved(repository, path, f"maven:{coordinate.version}{checksum}")


def _snapshot_in(jar_uri: str, coordinate: Coordinate,
                 repository: MavenRepository) -> Resolved | None:
    answer = _ask(jar_uri, repository, "GET", coordinate.metadata_path(), MAX_METADATA_BYTES)
    if answer is None:
        return None
    try:
        if answer.body is None:
            raise MetadataInvalid(f"{METADATA_FILE} is over {MAX_METADATA_BYTES:,} bytes")
        build = snapshot_build(answer.body, coordinate)
    except MetadataInvalid as error:
        raise ArtifactError(f"jarUri {jar_uri}: the Maven repository {repository.url}: "
                            f"{error}") from None
    return Resolved(repository, coordinate.jar_path(build), f"maven:{build}")


def _ask(jar_uri: str, repository: MavenRepository, method: str, path: str,
         limit: int) -> Answer | None:
    """A repository's answer for `path`, None when it does not have it; its refusal an
    ArtifactError, its silence or trouble ArtifactUnavailable."""
    where = f"jarUri {jar_uri}: the Maven repository {repository.url}"
    try:
        answer = ask(method, _join(expand(repository.url), path), limit, credentials(repository))
    except NoAnswer as error:
        raise ArtifactUnavailable(f"{where} did not answer ({error})") from None
    if answer.status in (404, 410):
        return None
    if answer.status in (401, 403):
        raise ArtifactError(f"{where} refused access (HTTP {answer.status}; check the "
                            "target's artifactStores.maven username and password)")
    if answer.transient:
        raise ArtifactUnavailable(f"{where} answered HTTP {answer.status}")
    if answer.status != 200:
        raise ArtifactError(f"{where} answered HTTP {answer.status} for {path}")
    return answer


def _join(base: str, path: str) -> str:
    return f"{base.rstrip('/')}/{path}"
