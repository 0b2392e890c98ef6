"""Each deployment's artifact and additionalDependencies, checked before anything runs (pure,
given a lookup of files).

A jar or SQL script kept in the spec repository must be there and be a file, not a symbolic
link; a `file://` jar must lie under a directory the agent allows (`--file-jar-dir`, and its
work dir); a jar in an object store (`s3://`, `gs://`, `abfs(s)://`) needs its fsspec
implementation installed (the project's extra for it); a jar in a Maven repository
(`maven://GROUP:ARTIFACT:VERSION[:CLASSIFIER]`) needs a well-formed coordinate (whether a
repository has it is known only by asking, at `plan` and `sync`); any other scheme is refused. A
deployment whose artifact fails is INVALID at `validate`, `plan` and `sync` time, with the file
and line of the field — never discovered half way through an upgrade.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Callable, Iterable
from urllib.parse import unquote, urlparse


from agent.errors import RepoFileRefused
from agent.load import LoadResult, SpecProblem
from agent.model.maven import CoordinateInvalid, is_maven, parse_coordinate
from agent.model.spec import repo_path

ARTIFACT = ("spec", "template", "spec", "artifact")
Exists = Callable[[str], bool]   # repo path -> is a file; RepoFileRefused for a link

# a jarUri scheme read through fsspec -> (its fsspec protocol, the project's extra installing it)
OBJECT_STORES = {"s3": ("s3", "s3"), "s3a": ("s3", "s3"), "gs": ("gs", "gcs"),
                 "abfs": ("abfs", "azure"), "abfss": ("abfs", "azure")}
SCHEMES = ("https", "http", "file", "maven", *OBJECT_STORES)
# fsspec's registry module (the name `fsspec.registry` is the mapping of known protocols)
_FILESYSTEMS = importlib.import_module("fsspec.registry")


def add_artifact_check(loaded: LoadResult, exists: Exists,
                       file_roots: Iterable[Path] | None = None) -> LoadResult:
    """`loaded` (the same object) with the problems of its deployments' artifacts added;
    `file_roots` None: `file://` jars are not checked (`validate` does not know the agent's)."""
    roots = None if file_roots is None else [Path(root).resolve() for root in file_roots]
    for located in loaded.deployments.values():
        artifact = located.spec.spec.template.spec.artifact
        checked = [(artifact.file_field, artifact.file_uri, artifact.repo_file())] + [
            (f"additionalDependencies[{index}]", uri, repo_path(uri))
            for index, uri in enumerate(artifact.dependencies)]
        for field, value, path in checked:
            if value is None:
                continue
            why = _why(field, value, path, exists, roots)
            if why is not None:
                line = located.line_of(*ARTIFACT, *field_path(field))
                loaded.problems.append(SpecProblem(located.file, line, f"{field} {value}: {why}",
                                                   "Deployment", located.spec.name))
    return loaded


def file_jar_allowed(jar_uri: str, roots: Iterable[Path]) -> Path | None:
    """The local path of a `file://` jar if it lies under one of `roots` (links resolved), else
    None."""
    path = Path(unquote(urlparse(jar_uri).path)).resolve()
    return path if any(path.is_relative_to(Path(root).resolve()) for root in roots) else None


def scheme_problem(jar_uri: str) -> str | None:
    """Why a `jarUri` URL cannot be read by this agent (an unknown scheme, a malformed Maven
    coordinate, or an object store whose extra is not installed), or None."""
    if is_maven(jar_uri):   # (before urlparse, which refuses some malformed ones)
        return _coordinate_problem(jar_uri)
    scheme = urlparse(jar_uri).scheme.lower()
    if scheme == "maven":
        return _coordinate_problem(jar_uri)
    if not scheme:
        return None
    if scheme not in SCHEMES:
        return (f"scheme {scheme!r} is not supported (use https://, http://, file://, s3://, "
                "gs://, abfs(s)://, maven:// or a path in the spec repository)")
    if scheme not in OBJECT_STORES:
        return None
    protocol, extra = OBJECT_STORES[scheme]
    try:   # is the store's fsspec implementation installed?
        _FILESYSTEMS.get_filesystem_class(protocol)
    except ImportError:
        return f"needs the {extra} extra: pip install 'flink-gitops[{extra}]'"
    return None


def _coordinate_problem(jar_uri: str) -> str | None:
    try:
        parse_coordinate(jar_uri)
    except CoordinateInvalid as error:
        return str(error)
    return None


def field_path(field: str) -> tuple[str | int, ...]:
    """An artifact field as messages name it -> its path: `additionalDependencies[2]` ->
    ("additionalDependencies", 2); `jarUri` -> ("jarUri",)."""
    name, _, index = field.partition("[")
    return (name, int(index.rstrip("]"))) if index.rstrip("]").isdigit() else (name,)


def _why(field: str, value: str, path: str | None, exists: Exists,
         roots: list[Path] | None) -> str | None:
    """Why the artifact file `field` names as `value` (in the spec repo at `path`) cannot be
    had, or None."""
    if path is not None:
        try:
            return None if exists(path) else f"no file {path} in the spec repository"
        except RepoFileRefused as refused:
            return str(refused)
    if field in ("sqlScriptFile", "pythonScript"):   # (a script's URI: the cluster reads it)
        return None
    if roots is not None and value.startswith("file:") and file_jar_allowed(value, roots) is None:
        return ("file:// jars are read only under the agent's --file-jar-dir directories "
                f"({', '.join(str(r) for r in roots)})")
    return scheme_problem(value)
