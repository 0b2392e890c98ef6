"""Every deployment checked before anything runs — its artifact, secret references, Python
script, SQL and the size of its own cluster — and each one only when it is new or changed (I/O
through the checks).

A deployment whose spec (the same parsed document, `load` keeps it from cycle to cycle), target
and spec-repo files are those of the last cycle gets the problems and warnings it got then
(`kept`), unless its checks read the agent's machine or the world: secret references (the
environment and files), a `file://` jar, a Python script (the local Python's modules), or a
dependency outside the spec repo (the SQL check's libraries). The others are checked again; at
10,000 deployments the checks of all of them cost about a second a cycle.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from agent.artifact_check import add_artifact_check
from agent.load import LoadResult, Located, by_name
from agent.memo import Memo
from agent.model.spec import ArtifactKind, repo_path
from agent.python_check import add_python_check
from agent.secret_check import ReadFile, add_secret_check
from agent.size_check import add_size_check, drop_size_warnings, machine_mebibytes
from agent.sql import Libraries, add_sql_check

Blobs = Callable[[Located], tuple[str | None, ...]]   # the blobs of a deployment's repo files


def check_all(loaded: LoadResult, read: ReadFile, exists: Callable[[str], bool],
              blobs: Blobs, file_roots: Iterable[Path] | None, cache_dir: Path,
              libraries: Libraries, offline: bool, kept: Memo) -> LoadResult:
    """`loaded` (the same object) with every check's problems and warnings added, those of
    unchanged deployments taken from `kept` (name -> what they rested on and found)."""
    fresh = LoadResult(targets=loaded.targets, session_clusters=loaded.session_clusters,
                       defaults=loaded.defaults)
    grounds, found = {}, {}
    for name, located in loaded.deployments.items():
        grounds[name] = (located, loaded.targets.get(located.spec.spec.deployment_target_name),
                         blobs(located), offline)
        known = kept.get(name)
        if known is not None and known[0] == grounds[name]:
            found[name] = known[1]
        else:
            fresh.deployments[name] = located
    fresh.problems = [p for p in loaded.problems   # (their own, which some checks look at)
                      if p.kind == "Deployment" and p.name in fresh.deployments]
    already = len(fresh.problems)
    add_artifact_check(fresh, exists, file_roots)
    add_secret_check(fresh, read, required=not offline)
    add_python_check(fresh, read, required=not offline)
    add_sql_check(fresh, read, cache_dir, libraries=libraries)
    add_size_check(fresh, cache_dir, machine_mebibytes())
    problems, warnings = by_name(fresh.problems[already:]), by_name(fresh.warnings)
    for name in fresh.deployments:
        found[name] = (problems.get(name, ()), warnings.get(name, ()))
        if name in fresh.secret_readers or _reads_the_machine(fresh.deployments[name]):
            kept.forget(name)
        else:
            kept.put(name, (grounds[name], found[name]))
    kept.retain(loaded.deployments)
    for problems, warnings in found.values():
        loaded.problems.extend(problems)
        loaded.warnings.extend(warnings)
    loaded.secret_readers |= fresh.secret_readers
    drop_size_warnings(loaded)
    return loaded


def _reads_the_machine(located: Located) -> bool:
    """Its checks read more than the spec repo: a `file://` jar, a Python script, a dependency
    kept elsewhere."""
    artifact = located.spec.spec.template.spec.artifact
    return artifact.kind == ArtifactKind.PYTHON or any(
        repo_path(uri) is None for uri in (artifact.file_uri, *artifact.dependencies) if uri)
