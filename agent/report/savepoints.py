"""A deployment's savepoints as users look them up: newest first, each with the name a spec
restores it by (`initialSavepointPath: savepoint:<id>`) and whether it is KEPT or DISPOSED (pure).

`flink-gitops savepoints`, the deployment's page and status.json show the same savepoints in the
same words: the cells and entries here are theirs.
"""

from __future__ import annotations

from typing import Any

from agent.model.status import DeploymentStatus, Savepoint, newest_first

COLUMNS = ("id", "created", "origin", "job", "location", "status")


def restore_name(savepoint: Savepoint) -> str:
    """What `initialSavepointPath` says to restore it."""
    return f"savepoint:{savepoint.id}"


def keeping(savepoint: Savepoint) -> str:
    """KEPT, or DISPOSED with when and why."""
    if savepoint.kept:
        return "KEPT"
    why = f" ({savepoint.disposed_why})" if savepoint.disposed_why else ""
    return f"DISPOSED {savepoint.disposed_at}{why}"


def savepoint_cells(savepoint: Savepoint) -> tuple[str, ...]:
    """Its cells, in COLUMNS order, as plain text."""
    return (restore_name(savepoint), savepoint.created_at, savepoint.origin.value,
            savepoint.job_id or "—", savepoint.location, keeping(savepoint))


def savepoint_entry(savepoint: Savepoint) -> dict[str, Any]:
    """Its JSON form: the status document's fields, its `id` and whether it is `kept`."""
    return {"id": savepoint.id, "kept": savepoint.kept,
            **savepoint.model_dump(mode="json", by_alias=True, exclude_none=True)}


def savepoint_entries(document: DeploymentStatus) -> list[dict[str, Any]]:
    """The deployment's savepoints in JSON form, newest first."""
    return [savepoint_entry(s) for s in newest_first(document.status.history.savepoints)]


def savepoints_json(documents: list[DeploymentStatus]) -> dict[str, Any]:
    """What `flink-gitops savepoints --format json` prints: status.json's shape, savepoints
    only (`.deployments.<name>.savepoints` in both)."""
    return {"deployments": {d.name: {"savepoints": savepoint_entries(d)}
                            for d in sorted(documents, key=lambda d: d.name)}}
