"""Status documents -> the status branch's files: README.md dashboard, status.json (pure).

The dashboard shows problems first, then one row per deployment, then recent events. Nothing
here reads a clock, so equal documents render to equal bytes and a quiet cycle commits nothing.
"""

from __future__ import annotations

import json
from collections import Counter

import yaml

from agent.load import SpecProblem
from agent.model.status import DeploymentState, DeploymentStatus, SyncStatus

RECENT_EVENTS = 20
_HEALTHY = {(DeploymentState.RUNNING, SyncStatus.SYNCED), (DeploymentState.SUSPENDED,
            SyncStatus.SYNCED), (DeploymentState.CANCELLED, SyncStatus.SYNCED),
            (DeploymentState.FINISHED, SyncStatus.SYNCED)}


def status_files(documents: list[DeploymentStatus], spec_commit: str,
                 unattributed: list[SpecProblem] = ()) -> dict[str, bytes]:
    """Every file of the status branch: path -> content. `unattributed` are spec problems of
    documents whose deployment name could not be read."""
    files = {f"deployments/{d.name}.yaml": _yaml(d.document()) for d in documents}
    index = status_index(documents, spec_commit, unattributed)
    files["status.json"] = (json.dumps(index, indent=2, sort_keys=True) + "\n").encode()
    files["README.md"] = render_dashboard(documents, spec_commit, unattributed).encode()
    return files


def status_index(documents: list[DeploymentStatus], spec_commit: str,
                 unattributed: list[SpecProblem] = ()) -> dict:
    """status.json: the machine-readable index of all deployments."""
    return {
        "specCommit": spec_commit,
        "counts": dict(Counter(d.status.state.value for d in documents)),
        "deployments": {d.name: _index_entry(d) for d in documents},
        "specProblems": [{"file": p.file, "line": p.line, "message": p.message}
                         for p in unattributed],
    }


def _index_entry(document: DeploymentStatus) -> dict:
    status = document.status
    entry = document.model_dump(mode="json", by_alias=True, exclude_none=True)["status"]
    entry.pop("history", None)
    entry.pop("appliedSpec", None)
    entry["labels"] = document.metadata.labels
    entry["problem"] = not is_healthy(document)
    if status.last_action is None:
        entry.pop("lastAction", None)
    return entry


def is_healthy(document: DeploymentStatus) -> bool:
    status = document.status
    return (status.state, status.sync) in _HEALTHY and not status.errors


def ordered(documents: list[DeploymentStatus]) -> list[DeploymentStatus]:
    """Problems first, then by name."""
    return sorted(documents, key=lambda d: (is_healthy(d), d.name))


def render_dashboard(documents: list[DeploymentStatus], spec_commit: str,
                     unattributed: list[SpecProblem] = ()) -> str:
    counts = Counter(d.status.state.value for d in documents)
    summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "none"
    problems = [d for d in documents if not is_healthy(d)]
    lines = [
        "# Flink deployments",
        "",
        f"**{len(documents)} deployment{'' if len(documents) == 1 else 's'}**: {summary}. "
        f"{len(problems)} need attention. Spec commit `{spec_commit[:10]}`.",
        "",
        "| | Deployment | State | Sync | Flink job | Parallelism | Restarts | Last savepoint "
        "| Last action | Spec commit |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [_row(d) for d in ordered(documents)]
    if problems or unattributed:
        lines += ["", "## Problems", ""]
        lines += [f"- `{p.file}:{p.line}`: {_cell(p.message)}" for p in unattributed]
        for document in ordered(problems):
            for problem in document.status.errors:
                where = f" (`{problem.file}:{problem.line}`)" if problem.file else ""
                lines.append(f"- **{document.name}** {problem.kind.value}{where}: "
                             f"{_cell(problem.message)}")
            if not document.status.errors:
                lines.append(f"- **{document.name}**: {document.status.state.value}, "
                             f"{document.status.sync.value}")
    events = sorted(((e.at, d.name, e.message) for d in documents
                     for e in d.status.history.events), reverse=True)[:RECENT_EVENTS]
    if events:
        lines += ["", "## Recent events", ""]
        lines += [f"- `{at}` **{name}** {_cell(message)}" for at, name, message in events]
    lines += ["", "Written by flink-gitops. Per-deployment details: `deployments/<name>.yaml`; "
              "for tools: `status.json`.", ""]
    return "\n".join(lines)


def _row(document: DeploymentStatus) -> str:
    status = document.status
    job = status.job
    mark = "✅" if is_healthy(document) else "⚠️"
    flink = f"{job.flink_status} #{job.generation} `{job.id}`" if job else "—"
    savepoint = (f"{status.last_savepoint.origin.value} {status.last_savepoint.created_at}"
                 if status.last_savepoint else "—")
    action = (f"{status.last_action.kind.value} {status.last_action.result.value}"
              if status.last_action else "—")
    name = document.name + (" (deleted)" if status.deleted else "")
    return (f"| {mark} | {name} | {status.state.value} | {status.sync.value} | {flink} | "
            f"{job.parallelism if job else '—'} | {job.restarts if job else '—'} | {savepoint} "
            f"| {action} | `{(status.spec_commit or '—')[:10]}` |")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")[:300]


def _yaml(document: dict) -> bytes:
    # libyaml's emitter (when PyYAML has it) writes the same bytes five times faster
    return yaml.dump(document, Dumper=_DUMPER, sort_keys=False, allow_unicode=True,
                     width=100).encode()


_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
