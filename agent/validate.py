"""`flink-gitops validate`: a checkout on disk -> every problem, with file and line (I/O: reads
files; no git, no cluster, no network).

Fast enough for a pre-commit hook: the specs are loaded and checked against the schema, every
DeploymentTarget reference resolved, the policies (built-in and the checkout's `policies/`)
evaluated on each Deployment with no plan (rules about plans need `plan`), and every SQL script
checked by Flink's own parser and planner (one JVM for all of them, each script's verdict cached
in `cache_dir`; without Java or the `local` extra, a warning says the check was skipped and why).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from agent.config import default_workdir
from agent.load import SPEC_SUFFIXES, SpecProblem, load, target_problems
from agent.policy import built_in_policies, compile_policies, evaluate, policy_input
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
    """Every problem of the checkout at `root`; `checker` replaces Flink's SQL check (tests)."""
    root = Path(root)
    files = {p.relative_to(root).as_posix(): p.read_bytes()
             for p in sorted(root.rglob("*")) if p.is_file() and p.name.endswith(SPEC_SUFFIXES)
             and ".git" not in p.relative_to(root).parts}
    loaded = add_sql_check(load(files), lambda path: _read(root, path),
                           cache_dir or default_workdir() / "artifacts", checker)
    problems = list(loaded.problems)
    for located in loaded.deployments.values():
        problems += target_problems(located, loaded)
    policy_dir = root / "policies"
    repo_policies = {p.relative_to(root).as_posix(): p.read_text()
                     for p in sorted(policy_dir.rglob("*.rego"))} if policy_dir.is_dir() else {}
    policies = compile_policies({**built_in_policies(), **repo_policies}, package)
    denials, warnings = [], []
    for _, located in sorted(loaded.deployments.items()):
        document = located.spec.model_dump(mode="json", by_alias=True, exclude={"status"})
        verdict = evaluate(policies, policy_input(document, located.spec.spec
                                                  .deployment_target_name, None, NO_PLAN, None))
        denials += [f"{located.file}:{located.line}: {d}" for d in verdict.denials]
        warnings += [f"{located.file}:{located.line}: {w}" for w in verdict.warnings]
    warnings += [str(w) for w in loaded.warnings] + list(policies.warnings)
    return Validation(tuple(problems), tuple(denials), tuple(warnings))


def _read(root: Path, path: str) -> bytes | None:
    """A file of the checkout by its repo-relative path (None when missing or outside it)."""
    file = (root / path).resolve()
    if not file.is_file() or not file.is_relative_to(root.resolve()):
        return None
    return file.read_bytes()
