"""Python deployments before they run: each PYTHON deployment's script, read from the spec repo,
compiled (never run) and its imports looked up (I/O: repo files, the agent's Python's module
finder).

Flink's Python driver answers a script that fails with "Python process exits with code: 1" and
nothing more (the traceback stays in the JobManager's output), after a STATEFUL upgrade has
already stopped the old job. So the script is checked first, at `validate`, `plan` and `sync`:
a syntax error is a problem at the script's own file and line; a module it imports that the
local target's Python (`flink.python.local_python`) cannot find is a problem at the import's
line when the job runs on the local target at `sync`, and a warning otherwise (a cluster's or a
reviewer's Python may differ). Only the first part of a dotted name is looked up, so no package
code runs. A script kept outside the spec repo (a URI the cluster reads) is not checked.
"""

from __future__ import annotations

import ast
from typing import Callable

from agent.flink.python import local_python, missing_modules
from agent.load import LoadResult, Located, SpecProblem
from agent.model.spec import ArtifactKind

ReadFile = Callable[[str], bytes | None]
MAX_SCRIPT_BYTES = 1024 * 1024   # a pythonScript above this is refused


def add_python_check(loaded: LoadResult, read: ReadFile, required: bool = True) -> LoadResult:
    """`loaded` (the same object) with the problems and warnings of its Python scripts added;
    not `required` (a review or `validate`): missing modules are warnings only."""
    for name, located in sorted(loaded.deployments.items()):
        artifact = located.spec.spec.template.spec.artifact
        path = artifact.repo_file()
        if artifact.kind != ArtifactKind.PYTHON or path is None \
                or loaded.problems_of("Deployment", name):
            continue   # not Python, kept elsewhere, or refused already (its file missing, say)
        content = read(path)
        if content is None:
            continue   # (artifact_check's problem)
        target = loaded.targets.get(located.spec.spec.deployment_target_name)
        local = target is not None and target.spec.spec.local is not None
        problems, warnings = check_script(located, path, content, required and local)
        loaded.problems.extend(problems)
        loaded.warnings.extend(warnings)
    return loaded


def check_script(located: Located, path: str, content: bytes,
                 imports_required: bool) -> tuple[list[SpecProblem], list[SpecProblem]]:
    """The problems and warnings of one script (`path` in the spec repo)."""
    def at(line: int, message: str) -> SpecProblem:
        return SpecProblem(path, line, f"pythonScript {path}: {message}", "Deployment",
                           located.spec.name)
    if len(content) > MAX_SCRIPT_BYTES:
        return [at(1, f"{len(content):,} bytes, over the limit of {MAX_SCRIPT_BYTES:,}")], []
    try:
        tree = ast.parse(content.decode("utf-8"), filename=path)
    except UnicodeDecodeError as error:
        return [at(1, f"not UTF-8 text ({error.reason} at byte {error.start})")], []
    except SyntaxError as error:
        return [at(error.lineno or 1, f"SyntaxError: {error.msg}")], []
    except (ValueError, RecursionError, MemoryError) as error:
        return [at(1, f"cannot be compiled: {type(error).__name__}")], []
    imports = _imports(tree)
    absent = set(missing_modules(local_python(), tuple(module for module, _ in imports)))
    elsewhere = "" if imports_required else " (here; the cluster's Python must have it)"
    missing = [at(line, f"ModuleNotFoundError: no module named {module!r}{elsewhere}")
               for module, line in imports if module in absent]
    return (missing, []) if imports_required else ([], missing)


def _imports(tree: ast.AST) -> list[tuple[str, int]]:
    """(top-level module name, line) of each absolute import, first occurrence of each."""
    found: dict[str, int] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            found.setdefault(name.split(".")[0], node.lineno)
    return sorted(found.items(), key=lambda item: item[1])
