"""Documents of other tools' dialects -> Deployment documents in the agent's own (pure).

The Flink Kubernetes Operator's `FlinkSessionJob` (apiVersion `flink.apache.org/v1beta1`) is
read as a Deployment: every field it has is either mapped (`SESSION_JOB_FIELDS`, the table the
README shows) or named in a warning, never dropped in silence. Where each mapped value came from
is kept (`Translated.moves`), so that a problem names the line of the manifest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

OPERATOR_API_GROUP = "flink.apache.org/"
SESSION_JOB_KIND = "FlinkSessionJob"
OPERATOR_CLUSTER_KIND = "FlinkDeployment"

# the operator's path -> the Deployment's path
SESSION_JOB_FIELDS: dict[tuple[str, ...], tuple[str, ...]] = {
    ("metadata", "name"): ("metadata", "name"),
    ("metadata", "namespace"): ("metadata", "namespace"),
    ("metadata", "labels"): ("metadata", "labels"),
    ("metadata", "annotations"): ("metadata", "annotations"),
    ("spec", "deploymentName"): ("spec", "deploymentTargetName"),
    ("spec", "restartNonce"): ("spec", "restartNonce"),
    ("spec", "flinkConfiguration"): ("spec", "template", "spec", "flinkConfiguration"),
    ("spec", "job", "jarURI"): ("spec", "template", "spec", "artifact", "jarUri"),
    ("spec", "job", "entryClass"): ("spec", "template", "spec", "artifact", "entryClass"),
    ("spec", "job", "args"): ("spec", "template", "spec", "artifact", "mainArgs"),
    ("spec", "job", "parallelism"): ("spec", "template", "spec", "parallelism"),
    ("spec", "job", "state"): ("spec", "state"),
    ("spec", "job", "savepointTriggerNonce"): ("spec", "savepointTriggerNonce"),
    ("spec", "job", "savepointRedeployNonce"): ("spec", "savepointRedeployNonce"),
    ("spec", "job", "initialSavepointPath"): ("spec", "initialSavepointPath"),
    ("spec", "job", "allowNonRestoredState"): ("spec", "restoreStrategy",
                                               "allowNonRestoredState"),
    ("spec", "job", "upgradeMode"): ("spec", "upgradeStrategy", "kind"),
}

# the operator's upgradeMode -> (upgradeStrategy, restoreStrategy); its default is stateless
UPGRADE_MODES = {
    "savepoint": ("STATEFUL", "LATEST_SAVEPOINT"),
    "last-state": ("STATEFUL", "LATEST_STATE"),
    "stateless": ("STATELESS", "NONE"),
}
DEFAULT_UPGRADE_MODE = "stateless"
_UPGRADE_MODE = ("spec", "job", "upgradeMode")
# `local://` names a file in the operator's Flink image; the agent reads jars itself
_IMAGE_FILE = "local://"


@dataclass(frozen=True)
class Translated:
    """A Deployment document, where its values came from ((its path, the manifest's path)), and
    warnings for what it could not take."""

    data: dict[str, Any]
    moves: tuple[tuple[tuple, tuple], ...] = ()
    warnings: tuple[tuple[tuple, str], ...] = ()   # (the manifest's path, message)


def is_operator_document(data: dict[str, Any]) -> bool:
    api = data.get("apiVersion")
    return isinstance(api, str) and api.startswith(OPERATOR_API_GROUP)


def session_job(manifest: dict[str, Any]) -> Translated:
    """A FlinkSessionJob manifest as a Deployment document."""
    data: dict[str, Any] = {"apiVersion": "v1", "kind": "Deployment"}
    moves, warnings = [], []
    for source, value in _leaves_of(manifest, SESSION_JOB_FIELDS):
        if source == _UPGRADE_MODE:
            continue   # both strategies are set from it below (it has a default)
        if source in SESSION_JOB_FIELDS:
            target = SESSION_JOB_FIELDS[source]
            value, warning = _value(source, value)
            if warning:
                warnings.append((source, warning))
            _put(data, target, value)
            moves.append((target, source))
        elif source == ("status",):
            warnings.append((source, "status is written by the operator; ignored"))
        elif source[:1] not in (("apiVersion",), ("kind",)):
            warnings.append((source, f"{'.'.join(source)} is not honoured by the agent "
                                     "(no mapping for a FlinkSessionJob field); ignored"))
    mode = _job(manifest).get("upgradeMode", DEFAULT_UPGRADE_MODE)
    upgrade, restore = UPGRADE_MODES.get(str(mode).lower(), (mode, None))   # (an unknown mode:
    _put(data, ("spec", "upgradeStrategy", "kind"), upgrade)   # the strategy's validation says)
    moves.append((("spec", "upgradeStrategy", "kind"), _UPGRADE_MODE))
    if restore is not None:
        _put(data, ("spec", "restoreStrategy", "kind"), restore)
        moves.append((("spec", "restoreStrategy", "kind"), _UPGRADE_MODE))
    if str(mode).lower() == "last-state":
        warnings.append((_UPGRADE_MODE, "upgradeMode last-state is read as STATEFUL with "
                                        "restoreStrategy LATEST_STATE: the agent also takes a "
                                        "savepoint when it stops the job"))
    _put(data, ("spec", "template", "spec", "artifact", "kind"), "JAR")
    return Translated(data, tuple(moves), tuple(warnings))


def moved_lines(lines: dict[tuple, int], moves: tuple[tuple[tuple, tuple], ...]) -> dict:
    """The manifest's lines (path -> line) as lines of the translated document."""
    moved = {(): lines[()]}
    for target, source in moves:
        for path, line in lines.items():
            if path[:len(source)] == source:
                moved.setdefault(target + path[len(source):], line)
    return moved


def _value(source: tuple, value: Any) -> tuple[Any, str | None]:
    """A manifest's value as the Deployment takes it, and a warning when it is read otherwise."""
    if source[-1] == "jarURI" and isinstance(value, str) and value.startswith(_IMAGE_FILE):
        return "file://" + value[len(_IMAGE_FILE):], (
            f"jarURI {value} names a file of the operator's Flink image: the agent reads it as "
            "file:// on its own machine (allowed under --file-roots)")
    return value, None


def _leaves_of(manifest: dict[str, Any], known: dict[tuple, tuple]) -> list[tuple[tuple, Any]]:
    """The manifest's values, as deep as `known` names paths: (path, value)."""
    prefixes = {path[:end] for path in known for end in range(1, len(path))}
    found = []

    def walk(value: Any, path: tuple) -> None:
        if path in prefixes and isinstance(value, dict):
            for key, item in value.items():
                walk(item, path + (str(key),))
        else:
            found.append((path, value))
    for key, value in manifest.items():
        walk(value, (str(key),))
    return found


def _job(manifest: dict[str, Any]) -> dict[str, Any]:
    spec = manifest.get("spec")
    job = spec.get("job") if isinstance(spec, dict) else None
    return job if isinstance(job, dict) else {}


def _put(data: dict[str, Any], path: tuple, value: Any) -> None:
    for key in path[:-1]:
        data = data.setdefault(key, {})
    data[path[-1]] = value
