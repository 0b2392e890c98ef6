"""Spec files in any dialect the loader reads -> the same documents in the agent's canonical
dialect, as YAML text with a comment for everything left out (pure).

For teams that migrate their repository once: a FlinkSessionJob becomes the Deployment it is
read as, a Ververica export loses its server-side fields (id, resourceVersion, timestamps,
status) and the fields that have no effect (displayName, deploymentTargetId,
jobFailureExpirationTime), and enum values are written in capitals. Defaults are not merged
in: the converted deployment still takes them from its DeploymentDefaults, as before. Loading
the output gives the same deployments as loading the input.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml

from agent.load import Draft, Located, ParsedFile
from agent.model.spec import Deployment

# (path, why it is left out) of what a Deployment may carry but has no effect
DROPPED: tuple[tuple[tuple[str, ...], str], ...] = (
    (("metadata", "id"), "Ververica's id, written by its server"),
    (("metadata", "resourceVersion"), "written by Ververica's server"),
    (("metadata", "createdAt"), "written by Ververica's server"),
    (("metadata", "modifiedAt"), "written by Ververica's server"),
    (("metadata", "displayName"), "the status branch names a deployment by metadata.name"),
    (("spec", "deploymentTargetId"), "the target is named by deploymentTargetName"),
    (("spec", "jobFailureExpirationTime"), "failed jobs are kept as Flink keeps them"),
    (("status",), "the agent writes its status on the status branch"),
)
ENUMS = (("spec", "state"), ("spec", "upgradeStrategy", "kind"),
         ("spec", "restoreStrategy", "kind"), ("spec", "template", "spec", "artifact", "kind"),
         ("spec", "savepointFormat"), ("spec", "healthPolicy", "action"))


def converted(parsed: dict[str, ParsedFile]) -> tuple[str, list[str]]:
    """Every document of `parsed` (path -> its parsed file) in the canonical dialect, one YAML
    stream; and the problems of documents that could not be read (not converted)."""
    documents, problems = [], []
    for path in sorted(parsed):
        file = parsed[path]
        problems += [str(p) for p in file.problems]
        found: list[tuple[int, Located | Draft | None, str]] = (
            [(located.line, located, "") for located in file.specs]
            + [(draft.line, draft, "") for draft in file.drafts]
            + [(note.line, None, note.message) for note in file.notes])
        for line, document, note in sorted(found, key=lambda f: f[0]):
            if document is None:
                documents.append(f"# {path}:{line}: {note}\n")
            elif isinstance(document, Draft):
                documents.append(_deployment(document))
            else:
                written = document.spec.model_dump(mode="json", by_alias=True,
                                                   exclude_unset=True, exclude={"status"})
                documents.append(f"# {path}:{line}\n" + _yaml(_capitals(written)))
    return "---\n".join(documents), problems


def _deployment(draft: Draft) -> str:
    """One Deployment document (its dialect's warnings and what is dropped as comments)."""
    data = copy.deepcopy(draft.data)
    comments = [f"# {draft.file}:{draft.line}"
                + (f" (a {draft.dialect})" if draft.dialect != "Deployment" else "")]
    comments += [f"# note: {w.message}" for w in draft.warnings]
    for path, why in DROPPED:
        value = _pop(data, path)
        if value is not None:
            comments.append(f"# left out: {'.'.join(path)}: {_inline(value)} ({why})")
    return "\n".join(comments) + "\n" + _yaml(_capitals(data))


def _capitals(data: dict[str, Any]) -> dict[str, Any]:
    """Enum values in capitals (a Deployment's, and its DeploymentDefaults')."""
    for path in ENUMS:
        parent = _get(data, path[:-1])
        if isinstance(parent, dict) and isinstance(parent.get(path[-1]), str):
            parent[path[-1]] = parent[path[-1]].upper()
    return data


def _field_order(model: type, order: dict[str, int]) -> dict[str, int]:
    """Every field name of `model` and the models it holds, in the order they are declared."""
    for name, info in model.model_fields.items():
        order.setdefault(info.alias or name, len(order))
        for held in _models_in(info.annotation):
            _field_order(held, order)
    return order


def _models_in(annotation: Any) -> list[type]:
    if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
        return [annotation]
    return [m for arg in getattr(annotation, "__args__", ()) for m in _models_in(arg)]


_ORDER = _field_order(Deployment, {})


def _ordered(value: Any) -> Any:
    """Mappings with the spec's fields in the order the model declares them (other keys, e.g.
    Flink options, after them as written)."""
    if isinstance(value, list):
        return [_ordered(v) for v in value]
    if not isinstance(value, dict):
        return value
    return {key: _ordered(value[key])
            for key in sorted(value, key=lambda k: _ORDER.get(k, len(_ORDER)))}


def _yaml(data: dict[str, Any]) -> str:
    return yaml.safe_dump(_ordered(data), sort_keys=False, allow_unicode=True, width=100)


def _inline(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix(
        "\n...").replace("\n", " ")


def _get(data: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        data = data.get(key) if isinstance(data, dict) else None
    return data


def _pop(data: dict[str, Any], path: tuple[str, ...]) -> Any:
    parent = _get(data, path[:-1])
    return parent.pop(path[-1], None) if isinstance(parent, dict) else None
