"""Job artifacts: a Deployment's artifact -> the program Flink runs (I/O: files, HTTP, git).

A JAR artifact's `jarUri`: `https://` and `http://` jars are downloaded when a job is started,
`file://` jars are read where they are, and a relative path is read from the spec repository at
the applied commit, so a jar committed next to its spec is versioned with it. A SQLSCRIPT
artifact runs as the project's SQL runner jar with the script (inline, or its `sqlScriptFile`
read from the spec repository at the same commit) as program argument.
"""

from __future__ import annotations

import hashlib
import posixpath
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable
from urllib.parse import unquote, urlparse

import requests

from agent.artifact_check import file_jar_allowed
from agent.errors import ArtifactError, ArtifactUnavailable
from agent.flink.http import DeadlinePassed, deadline, session
from agent.flink.runner import RUNNER_CLASS, runner_args, runner_jar
from agent.model.spec import ArtifactKind, Deployment
from agent.secrets import expand

ReadFromRepo = Callable[[str], bytes | None]
MAX_ARTIFACT_BYTES = 1024 ** 3      # a downloaded jar above this is refused
DOWNLOAD_DEADLINE_S = 600.0         # a download taking longer is given up (tried again later)


@dataclass(frozen=True)
class JobProgram:
    """What a job is submitted as: an uploadable jar, its entry class and program arguments."""

    jar: Path
    entry_class: str | None
    args: list[str]


def job_program(deployment: Deployment, cache_dir: Path, read_from_repo: ReadFromRepo,
                file_roots: Iterable[Path] = ()) -> JobProgram:
    """The program of `deployment`'s job: its jar, or the SQL runner with its script; secret
    references in its arguments, script and jar URL expanded (held in memory only)."""
    artifact = deployment.spec.template.spec.artifact
    if artifact.kind == ArtifactKind.SQLSCRIPT:
        script = artifact.sql_script
        if script is None:
            path = artifact.repo_file()
            content = read_from_repo(path)
            if content is None:
                raise ArtifactError(f"sqlScriptFile {artifact.sql_script_file}: no file {path} "
                                    "in the spec repository")
            script = content.decode("utf-8")
        return JobProgram(runner_jar(cache_dir), RUNNER_CLASS,
                          runner_args(deployment.name, expand(script)))
    return JobProgram(fetch_jar(artifact.jar_uri, cache_dir, read_from_repo, file_roots),
                      artifact.entry_class, [expand(a) for a in artifact.program_args()])


def repo_path(jar_uri: str) -> str | None:
    """The spec-repo path of a relative `jarUri`, or None for a URL."""
    if "://" in jar_uri:
        return None
    return posixpath.normpath(jar_uri.lstrip("/"))


def fetch_jar(jar_uri: str, cache_dir: Path, read_from_repo: ReadFromRepo,
              file_roots: Iterable[Path] = ()) -> Path:
    """A local file holding the jar `jar_uri` names (a `file://` one only under `file_roots`)."""
    parsed = urlparse(jar_uri)
    if parsed.scheme == "file":
        path = file_jar_allowed(jar_uri, file_roots)
        if path is None:
            raise ArtifactError(f"jarUri {jar_uri}: file:// jars are read only under the "
                                "agent's --file-jar-dir directories")
        if not path.is_file():
            raise ArtifactError(f"jarUri {jar_uri}: no such file on the agent's machine")
        return path
    if parsed.scheme in ("http", "https"):
        return _download(expand(jar_uri), _name_of(parsed.path), cache_dir)
    if parsed.scheme:
        raise ArtifactError(f"jarUri {jar_uri}: scheme {parsed.scheme!r} is not supported "
                            "(use https://, http://, file:// or a path in the spec repository)")
    path = repo_path(jar_uri)
    content = read_from_repo(path)
    if content is None:
        raise ArtifactError(f"jarUri {jar_uri}: no file {path} in the spec repository")
    return _keep(content, posixpath.basename(path), cache_dir)


def _download(url: str, name: str, cache_dir: Path) -> Path:
    """Streams a jar to the cache (never whole in memory), at most MAX_ARTIFACT_BYTES and
    DOWNLOAD_DEADLINE_S in all; the same content is stored once."""
    digest = hashlib.sha256()
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=cache_dir, delete=False) as partial:
        try:
            with deadline(DOWNLOAD_DEADLINE_S):
                _stream(url, partial, digest)
        except BaseException as error:
            Path(partial.name).unlink(missing_ok=True)
            if isinstance(error, DeadlinePassed):
                raise ArtifactUnavailable(f"jarUri {url}: download took over "
                                          f"{DOWNLOAD_DEADLINE_S:g}s (the limit)") from None
            raise
    return _stored(Path(partial.name), digest.hexdigest()[:12], name, cache_dir)


def _stream(url: str, partial, digest) -> None:
    try:
        with session().get(url, stream=True, timeout=60) as response:
            if response.status_code >= 500:
                raise ArtifactUnavailable(f"jarUri {url}: download answered HTTP "
                                          f"{response.status_code}")
            if response.status_code != 200:
                raise ArtifactError(f"jarUri {url}: download answered HTTP "
                                    f"{response.status_code}")
            size = 0
            for chunk in response.iter_content(1 << 20):
                size += len(chunk)
                if size > MAX_ARTIFACT_BYTES:
                    raise ArtifactError(f"jarUri {url}: larger than the limit of "
                                        f"{MAX_ARTIFACT_BYTES:,} bytes")
                digest.update(chunk)
                partial.write(chunk)
    except (requests.RequestException, OSError) as error:
        raise ArtifactUnavailable(
            f"jarUri {url}: download failed ({type(error).__name__})") from None


def _keep(content: bytes, name: str, cache_dir: Path) -> Path:
    """Stores content under a name that carries its digest; the same content is stored once."""
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=cache_dir, delete=False) as partial:
        partial.write(content)
    return _stored(Path(partial.name), hashlib.sha256(content).hexdigest()[:12], name, cache_dir)


def _stored(partial: Path, digest: str, name: str, cache_dir: Path) -> Path:
    stem = name[:-4] if name.endswith(".jar") else name
    path = Path(cache_dir) / f"{stem}-{digest}.jar"
    if path.exists():
        partial.unlink()
    else:
        partial.replace(path)
    return path


def _name_of(url_path: str) -> str:
    return posixpath.basename(unquote(url_path)) or "artifact.jar"
