"""The package reads top to bottom: every module imports only modules above it in the pipeline
(the README's map), and no pure module imports one that does I/O."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "agent"
PIPELINE = ["memo", "job_ids", "clock", "testpoints", "logs", "errors", "config", "model", "secrets",
            "source", "signatures", "dialects", "defaults", "load", "convert", "artifact_check", "secret_check", "flink", "job_inputs", "sql", "python_check", "size_check", "checks", "deletion", "rego_sandbox", "rego_worker", "snapshots",
            "policy", "observe", "adoption", "health", "recover", "diff", "retention", "plan", "sync_windows", "state_check", "assessment", "quiet", "caches", "execute", "report",
            "status_store", "lease", "outbox", "commit_status", "notify", "reconcile", "validate", "daemon",
            "terminal", "demo", "cli"]
PURE = ["memo", "job_ids", "clock", "errors", "config", "model", "dialects", "defaults", "load", "convert", "artifact_check", "deletion",
        "diff", "retention", "plan", "sync_windows", "assessment", "quiet", "report"]
IO = {"signatures", "checks", "snapshots", "adoption", "python_check", "size_check", "state_check", "outbox", "commit_status", "notify", "secrets", "secret_check", "job_inputs", "health", "source", "flink", "rego_sandbox", "policy", "observe", "recover", "execute",
      "status_store", "lease", "reconcile", "validate", "daemon", "terminal", "demo", "cli"}


def imports() -> list[tuple[str, str]]:
    """(module, agent module it imports) for every module of the package."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and \
                    node.module.startswith("agent"):
                names = [n.name for n in node.names] if node.module == "agent" \
                    else [node.module.removeprefix("agent.")]
                found += [(module, name) for name in names]
    return found


def test_every_module_is_on_the_map():
    modules = {".".join(p.relative_to(PACKAGE).with_suffix("").parts).split(".")[0]
               for p in PACKAGE.rglob("*.py") if p.name != "__init__.py"}
    assert modules <= set(PIPELINE)


def test_no_module_imports_one_below_it():
    rank = {name: index for index, name in enumerate(PIPELINE)}
    upward = [(m, i) for m, i in imports() if rank[i.split(".")[0]] > rank[m.split(".")[0]]]
    assert upward == []


def test_no_pure_module_imports_one_that_does_io():
    crossing = [(m, i) for m, i in imports()
                if m.split(".")[0] in PURE and i.split(".")[0] in IO]
    assert crossing == []
