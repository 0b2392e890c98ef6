"""A deployment's page on the status branch, `deployments/<name>.md`: where it stands, then its
jobs, savepoints (each with the id a spec restores it by, KEPT or DISPOSED) and events, newest
first (pure).
"""

from __future__ import annotations

from agent.model.status import DeploymentStatus, Savepoint
from agent.report.cells import action_cell, cell, job_cell, savepoint_cell
from agent.report.savepoints import COLUMNS, newest_first, savepoint_cells

RESTORE_HINT = ("To restore one, write `initialSavepointPath: savepoint:<id>` and a new "
                "`savepointRedeployNonce` in the spec.")


def render_history(document: DeploymentStatus, ui_base: str | None = None) -> str:
    """The page: absolute times only (no ages), so that it changes only when the deployment
    (or the web UI address `ui_base` of its target, which its job links to) does."""
    status = document.status
    job = status.job
    labels = ", ".join(f"{k}={v}" for k, v in sorted(document.metadata.labels.items()))
    facts = [
        ("State", f"{status.state.value} (desired: {status.desired_state or '—'})"
                  + (", spec deleted" if status.deleted else "")),
        ("Sync", status.sync.value + (f" ({status.deferred})" if status.deferred else "")),
        ("Target", status.target or "—"),
        ("Spec", f"`{status.spec_file or '—'}` at `{(status.spec_commit or '—')[:10]}`"),
        ("Labels", labels or "—"),
        ("Flink job", job_cell(job, ui_base) + (f", parallelism {job.parallelism}, restarts "
                                       f"{job.restarts}" if job else "")),
        ("Last savepoint", savepoint_cell(status.last_savepoint, None)),
        ("Last action", action_cell(status.last_action)),
    ]
    lines = [f"# {document.name}", "", "[← all deployments](../README.md)", "",
             "| | |", "|---|---|"]
    lines += [f"| {key} | {cell(value)} |" for key, value in facts]
    for title, items in (("Problems", [f"{p.kind.value}" + (f" (`{p.file}:{p.line}`)"
                                                            if p.file else "") + f": {p.message}"
                                       for p in status.errors]),
                         ("Warnings", status.warnings)):
        if items:
            lines += ["", f"## {title}", ""] + [f"- {cell(item)}" for item in items]
    history = status.history
    if history.jobs:
        lines += ["", "## Jobs", "", "| # | Job id | State | Flink status | Parallelism | "
                  "Started | Ended | Restored from | Spec commit |",
                  "|---|---|---|---|---|---|---|---|---|"]
        lines += [f"| {j.generation} | `{j.id}` | {j.state.value} | {j.flink_status} | "
                  f"{j.parallelism} | {j.started_at} | {j.ended_at or '—'} | "
                  f"{cell(j.restored_from or '—')} | `{(j.spec_commit or '—')[:10]}` |"
                  for j in reversed(history.jobs)]
    if history.savepoints:
        lines += ["", "## Savepoints", ""] + _savepoint_table(history.savepoints)
    if history.events:
        lines += ["", "## Events", ""]
        lines += [f"- `{e.at}` {cell(e.message)}" for e in reversed(history.events)]
    lines += ["", f"Machine-readable: [`{document.name}.yaml`]({document.name}.yaml).", ""]
    return "\n".join(lines)


def _savepoint_table(savepoints: list[Savepoint]) -> list[str]:
    """The savepoints, newest first, in the columns of `flink-gitops savepoints`; the hint on
    restoring one when one is kept."""
    hint = [RESTORE_HINT, ""] if any(s.kept for s in savepoints) else []
    rows = []
    for savepoint in newest_first(savepoints):
        name, created, origin, job, location, keeping = savepoint_cells(savepoint)
        rows.append(f"| `{name}` | {created} | {origin} | `{job}` | {cell(location)} | "
                    f"{cell(keeping)} |")
    return hint + ["| " + " | ".join(c.capitalize() for c in COLUMNS) + " |",
                   "|---" * len(COLUMNS) + "|"] + rows
