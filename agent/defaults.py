"""A Deployment document + the DeploymentDefaults of its namespace + its SessionCluster -> the
document to validate, and where each value that it does not write itself came from (pure).

Ververica's rule: what a deployment writes wins over its defaults; mappings are merged key by
key, anything else (a list, a number) is taken whole. Two exceptions keep the merge from making
a spec nobody wrote: a deployment that names its cluster (`deploymentTargetName` or
`sessionClusterName`) takes neither from its defaults, and an artifact of another kind than the
defaults' takes nothing from theirs. `sessionClusterName` is then resolved to the
DeploymentTarget its SessionCluster names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CLUSTER_FIELDS = ("deploymentTargetName", "sessionClusterName")
_ARTIFACT = ("template", "spec", "artifact")


@dataclass(frozen=True)
class Effective:
    """The document to validate, and `origins`: dotted path -> the document whose value it is
    (e.g. "spec.template.spec.parallelism" -> "DeploymentDefaults prod")."""

    data: dict[str, Any]
    origins: dict[str, str] = field(default_factory=dict)

    def origin(self, path: str) -> str | None:
        """Where the value at a dotted path came from (a list item: where its list did)."""
        return self.origins.get(path) or self.origins.get(path.split("[", 1)[0])


def with_defaults(document: dict[str, Any], defaults: dict[str, Any], origin: str) -> Effective:
    """`document` with `defaults` (a DeploymentDefaults' spec) merged under its `spec`."""
    spec = document.get("spec")
    if not isinstance(spec, dict) or not defaults:
        return Effective(document)
    if any(key in spec for key in CLUSTER_FIELDS):
        defaults = {k: v for k, v in defaults.items() if k not in CLUSTER_FIELDS}
    if _artifact_kind(spec) != _artifact_kind(defaults):
        defaults = _without(defaults, _ARTIFACT)
    origins: dict[str, str] = {}
    merged = _merged(defaults, spec, "spec", origin, origins)
    return Effective({**document, "spec": merged}, origins)


def on_cluster(effective: Effective, session_cluster: str, target: str) -> Effective:
    """`effective` whose `sessionClusterName` is `session_cluster`, on that cluster's target."""
    spec = {**effective.data["spec"], "deploymentTargetName": target}
    return Effective({**effective.data, "spec": spec},
                     {**effective.origins,
                      "spec.deploymentTargetName": f"SessionCluster {session_cluster}"})


def _merged(under: dict[str, Any], over: dict[str, Any], path: str, origin: str,
            origins: dict[str, str]) -> dict[str, Any]:
    merged = dict(over)
    for key, value in under.items():
        here = f"{path}.{key}"
        if key not in over:
            merged[key] = value
            for leaf in leaf_values({key: value}, path):
                origins[leaf] = origin
        elif isinstance(value, dict) and isinstance(over[key], dict):
            merged[key] = _merged(value, over[key], here, origin, origins)
    return merged


def leaf_values(document: dict[str, Any], path: str = "") -> dict[str, Any]:
    """Every value of a document that is not a mapping, by dotted path (a list whole)."""
    leaves = {}
    for key, value in document.items():
        here = f"{path}.{key}" if path else str(key)
        if isinstance(value, dict) and value:
            leaves.update(leaf_values(value, here))
        else:
            leaves[here] = value
    return leaves


def _artifact_kind(spec: dict[str, Any]) -> str:
    artifact = spec
    for key in _ARTIFACT:
        artifact = artifact.get(key) if isinstance(artifact, dict) else None
    kind = artifact.get("kind", "JAR") if isinstance(artifact, dict) else "JAR"
    return kind.upper() if isinstance(kind, str) else str(kind)


def _without(mapping: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(mapping.get(path[0]), dict):
        return mapping
    if len(path) == 1:
        return {k: v for k, v in mapping.items() if k != path[0]}
    return {**mapping, path[0]: _without(mapping[path[0]], path[1:])}
