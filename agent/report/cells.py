"""Markdown table cells shared by the dashboard and the deployment pages (pure)."""

from __future__ import annotations

from agent.clock import age
from agent.model.status import Action, DeploymentStatus, Job, Savepoint
from agent.report.links import job_page


def cell(text: str) -> str:
    """Text that stays inside one table cell."""
    return text.replace("|", "\\|").replace("\n", " ")[:300]


def job_cell(job: Job | None, ui_base: str | None = None) -> str:
    """Flink status, generation and id of the job; the id links to the job's page in the web
    UI at `ui_base` (its target's, when known)."""
    if job is None:
        return "—"
    page = job_page(ui_base, job.id)
    shown = f"[`{job.id}`]({page})" if page else f"`{job.id}`"
    return f"{job.flink_status} #{job.generation} {shown}"


def savepoint_cell(savepoint: Savepoint | None, as_of: str | None) -> str:
    """Origin, time, and age at `as_of` (the report's time)."""
    if savepoint is None:
        return "—"
    old = f" ({age(savepoint.created_at, as_of)} old)" if as_of else ""
    return f"{savepoint.origin.value} {savepoint.created_at}{old}"


def action_cell(action: Action | None) -> str:
    return f"{action.kind.value} {action.result.value}" if action else "—"


def row_cells(document: DeploymentStatus, as_of: str | None) -> dict[str, str]:
    """The cells of a deployment's row that the dashboard and `flink-gitops status` share, by
    column: each adds its own name, job and commit cells."""
    status, job = document.status, document.status.job
    return {"mark": "✅" if document.in_desired_state else "⚠️", "state": status.state.value,
            "sync": status.sync.value, "parallelism": str(job.parallelism) if job else "—",
            "restarts": str(job.restarts) if job else "—",
            "savepoint": savepoint_cell(status.last_savepoint, as_of),
            "action": action_cell(status.last_action)}
