"""`flink-gitops validate`: a checkout on disk -> every problem, with file and line (I/O: reads
files; no git, no cluster, no network).

Fast enough for a pre-commit hook: the specs are loaded and checked against the schema, every
DeploymentTarget reference resolved, the policies (built-in and the checkout's `policies/`)
evaluated on each Deployment with no plan (rules about plans need `plan`), and every SQL script
checked by Flink's own parser and planner (one JVM for all of them, each script's verdict cached
in `cache_dir`; without Java or the `local` extra, a warning says the check was skipped and why).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from agent.artifact_check import add_artifact_check
from agent.config import default_workdir
from agent.errors import RepoFileRefused
from agent.flink.artifacts import dependency_jars
from agent.load import SpecProblem, load, target_problems
from agent.model.spec import SPEC_SUFFIXES, ArtifactStores
from agent.policy import (compile_policies, evaluate, policy_input, policy_sets,
                          with_built_ins)
from agent.python_check import add_python_check
from agent.size_check import add_size_check, drop_size_warnings
from agent.sql import Checker, add_sql_check

NO_PLAN = {"action": None, "state": "UNCHANGED", "steps": [], "reason": "validate"}


@dataclass(frozen=True)
class Validation:
    problems: tuple[SpecProblem, ...]
    denials: tuple[str, ...]
    warnings: tuple[str, ...]

    @property
    def valid(self) -> bool:
        return not self.problems and not self.denials


def validate(root: Path, package: str = "main", cache_dir: Path | None = None,
             checker: Checker | None = None) -> Validation:
    """Every problem of the checkout at `root`; `checker` replaces Flink's SQL check (tests).
    Symbolic links are not followed, as the agent does not follow them in git."""
    root = Path(root).resolve()
    files = {path: (root / path).read_bytes() for path in _checkout_files(root, SPEC_SUFFIXES)}
    loaded = add_artifact_check(load(files), lambda path: _file(root, path) is not None)
    cache = cache_dir or default_workdir() / "artifacts"

    def libraries(located):   # a SQL deployment's additionalDependencies, for its check
        target = loaded.targets.get(located.spec.spec.deployment_target_name)
        return dependency_jars(located.spec, cache, lambda path: _read(root, path),
                               stores=target.spec.spec.artifact_stores if target else ArtifactStores())
    loaded = add_sql_check(loaded, lambda path: _read(root, path), cache, checker, libraries)
    loaded = add_python_check(loaded, lambda path: _read(root, path), required=False)
    loaded = add_size_check(loaded, cache)
    drop_size_warnings(loaded)
    problems = list(loaded.problems)
    for located in loaded.deployments.values():
        problems += target_problems(located, loaded)
    repo_policies = {path: (root / path).read_text(errors="replace")
                     for path in _checkout_files(root, (".rego",), under="policies")}
    sets = policy_sets()   # one set, its worker ended when the check is done
    policies = compile_policies(with_built_ins(repo_policies), package, sets)
    denials, warnings = [], []
    for _, located in sorted(loaded.deployments.items()):
        verdict = evaluate(policies, policy_input(located.spec, located.spec.spec
                                                  .deployment_target_name, None, NO_PLAN, None))
        denials += [f"{located.file}:{located.line}: {d}" for d in verdict.denials]
        warnings += [f"{located.file}:{located.line}: {w}" for w in verdict.warnings]
    warnings += [str(w) for w in loaded.warnings] + list(policies.warnings)
    sets.clear()
    return Validation(tuple(problems), tuple(denials), tuple(warnings))


def spec_files(paths: list[Path]) -> dict[str, bytes]:
    """The spec files `paths` name (a file, or a directory's YAML files), by the path given."""
    files = {}
    for path in paths:
        if path.is_dir():
            files |= {(path / name).as_posix(): (path / name).read_bytes()
                      for name in _checkout_files(path.resolve(), SPEC_SUFFIXES)}
        else:
            files[path.as_posix()] = path.read_bytes()
    return files


def _checkout_files(root: Path, suffixes: tuple[str, ...], under: str = ".") -> list[str]:
    """The repo-relative paths of the checkout's regular files (no links, nothing under a link
    or under .git) ending with one of `suffixes`, below `under`."""
    found = []
    for folder, dirs, names in os.walk(root / under):   # os.walk follows no directory link
        dirs[:] = sorted(d for d in dirs if d != ".git")
        for name in sorted(names):
            path = Path(folder) / name
            if name.endswith(suffixes) and not path.is_symlink() and path.is_file():
                found.append(path.relative_to(root).as_posix())
    return found


def _file(root: Path, path: str) -> Path | None:
    """A regular file of the checkout by its repo-relative path; None when missing;
    RepoFileRefused for a symbolic link (or a path through one)."""
    file = root / path
    if file.resolve() != file.absolute() or not file.resolve().is_relative_to(root):
        raise RepoFileRefused(f"{path} is a symbolic link in the spec repository (or leaves "
                              "it); links are not followed")
    return file if file.is_file() else None


def _read(root: Path, path: str) -> bytes | None:
    """A file of the checkout by its repo-relative path (None when missing)."""
    file = _file(root, path)
    return file.read_bytes() if file is not None else None
