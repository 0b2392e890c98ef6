"""Desired spec vs applied spec vs observed job -> what differs (pure).

The applied spec is the one in the deployment's status document; changes are told field by
field (deepdiff), and sorted into the two kinds that matter: a change to the job itself (needs a
new job) and a change to metadata or strategy only (needs none). Drift is what the agent finds on
the cluster that differs from what it applied.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Any


from agent.job_ids import deployment_key
from agent.model.job_states import FlinkJobStatus
from agent.model.references import SECRET_NAME, references
from agent.model.spec import INERT_SPEC_FIELDS, Deployment, DesiredState
from agent.model.status import DeploymentState, DeploymentStatus, Status
from agent.model.observation import Observation


@dataclass(frozen=True)
class FieldChange:
    path: str
    old: Any
    new: Any

    def __str__(self) -> str:
        return f"{self.path}: {_show(self.old)} → {_show(self.new)}"


_JOB_PATHS = ("spec.template", "spec.stopWithDrain", "spec.restartNonce")


@dataclass(frozen=True)
class Difference:
    name: str
    desired_state: DesiredState | None      # None: the spec was deleted
    applied: bool                           # a spec of this deployment was applied before
    job_changed: bool                       # the job made from the desired spec differs
    fields: tuple[FieldChange, ...] = ()    # applied -> desired, every changed field
    drift: str | None = None                # what the cluster shows that the agent did not do
    desired_hash: str | None = None         # digest of the desired job (see Deployment.job_hash)
    savepoint_requested: bool = False       # savepointTriggerNonce changed since the last one
    redeploy_requested: bool = False        # savepointRedeployNonce changed since the last one
    adopt: str | None = None                # a running job to take as the deployment's own

    @property
    def restart_only(self) -> bool:
        """The job changed only because restartNonce did."""
        job_paths = {f.path for f in self.fields if f.path.startswith(_JOB_PATHS)}
        return self.job_changed and job_paths == {"spec.restartNonce"}

    @property
    def metadata_only(self) -> bool:
        return bool(self.fields) and not self.job_changed


_SECRET_OPTION = re.compile(SECRET_NAME, re.IGNORECASE)
_SECRET_ARG = re.compile(rf"^--?([\w.-]*{SECRET_NAME}[\w.-]*|([\w.-]*[-_.])?key)(?P<sep>=|$)",
                         re.IGNORECASE)
_URL_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]+@")
_SECRET_SQL_OPTION = re.compile(rf"(?P<option>'[^']*{SECRET_NAME}[^']*'\s*=\s*')"
                                rf"(?P<value>(?:[^']|'')*)'",
                                re.IGNORECASE)


def spec_document(deployment: Deployment) -> dict[str, Any]:
    """The parts of a Deployment the status keeps as 'applied' and diffs against; what looks like
    a secret is replaced by '***' (DESIGN §5.6), unless it is a secret reference: values of
    Flink options named like one (`…password`, `sasl.jaas.config`, `fs.azure.account.key.*`,
    `s3.access.key`), such options of an inline SQL script's WITH clause, values of such
    program arguments (`--password x`, `--db-token=x`) and credentials in the jar's and the
    dependencies' URLs. Shared:
    not to be changed."""
    return deployment.derived("spec_document", lambda: _spec_document(deployment))


def _spec_document(deployment: Deployment) -> dict[str, Any]:
    document = deployment.model_dump(mode="json", by_alias=True, exclude_none=True,
                                     include={"metadata", "spec"})
    document["metadata"] = {k: v for k, v in document["metadata"].items()
                            if k in ("name", "labels", "annotations") and v}
    for inert in INERT_SPEC_FIELDS:
        document["spec"].pop(inert, None)
    template = document["spec"]["template"]["spec"]
    options = template.get("flinkConfiguration", {})
    for key, value in options.items():
        if _SECRET_OPTION.search(key) and not references(str(value)):
            options[key] = "***"
    artifact = template["artifact"]
    if "jarUri" in artifact:
        artifact["jarUri"] = _URL_CREDENTIALS.sub("***@", artifact["jarUri"])
    if "additionalDependencies" in artifact:
        artifact["additionalDependencies"] = [_URL_CREDENTIALS.sub("***@", uri)
                                              for uri in artifact["additionalDependencies"]]
    if "sqlScript" in artifact:   # 'password' = '…' of a WITH clause
        artifact["sqlScript"] = _SECRET_SQL_OPTION.sub(
            lambda m: m.group(0) if references(m["value"]) else f"{m['option']}***'",
            artifact["sqlScript"])
    if "mainArgs" in artifact:
        args = artifact["mainArgs"]
        masked = _masked_args(shlex.split(args) if isinstance(args, str) else args)
        artifact["mainArgs"] = shlex.join(masked) if isinstance(args, str) else masked
    return document


def _masked_args(args: list[str]) -> list[str]:
    """Program arguments with the values of secret-looking flags replaced by '***'."""
    masked, hide_next = [], False
    for arg in args:
        flag = _SECRET_ARG.match(arg)
        if hide_next:
            masked.append(arg if references(arg) else "***")
        elif flag and flag["sep"] == "=" and not references(arg):
            masked.append(arg.split("=", 1)[0] + "=***")
        else:
            masked.append(arg)
        hide_next = bool(flag) and flag["sep"] == "" and not hide_next
    return masked


def field_changes(old: dict[str, Any] | None,
                  new: dict[str, Any] | None) -> tuple[FieldChange, ...]:
    """Every changed leaf, as dotted paths, old value first; order of keys never matters."""
    if old is None or new is None or old == new:
        return ()
    from deepdiff import DeepDiff   # (imported when a spec changed: it takes 0.4 s to import)

    diff = DeepDiff(old, new, ignore_order=False, verbose_level=2)
    changes = []
    for change_type, entries in diff.items():
        for path, value in entries.items():
            dotted = _dotted(path)
            if change_type == "values_changed" or change_type == "type_changes":
                changes.append(FieldChange(dotted, value["old_value"], value["new_value"]))
            elif change_type.endswith("_added"):
                changes.append(FieldChange(dotted, None, value))
            elif change_type.endswith("_removed"):
                changes.append(FieldChange(dotted, value, None))
    return tuple(sorted(changes, key=lambda c: c.path))


def difference(name: str, desired: Deployment | None, desired_hash: str | None,
               previous: DeploymentStatus | None, observation: Observation) -> Difference:
    """How the desired spec (whose job digest is `desired_hash`) differs from what was applied
    and what runs."""
    status = previous.status if previous is not None and not previous.status.deleted else None
    applied = status is not None and status.applied_spec_hash is not None
    if desired is None:
        return Difference(name, None, applied, job_changed=False)
    job_changed = applied and status.applied_spec_hash != desired_hash
    fields = field_changes(status.applied_spec if applied else None, spec_document(desired))
    nonce = desired.spec.savepoint_trigger_nonce
    requested = applied and nonce is not None and nonce != status.savepoint_trigger_nonce
    redeploy = desired.spec.savepoint_redeploy_nonce
    return Difference(name, desired.spec.state, applied, job_changed, fields,
                      _drift(status, observation), desired_hash, requested,
                      applied and redeploy is not None
                      and redeploy != status.savepoint_redeploy_nonce, to_adopt(desired, status))


def to_adopt(desired: Deployment | None, status: Status | None) -> str | None:
    """The job the deployment's adopt annotation names, while the deployment has not adopted it
    (once taken, the annotation is satisfied for good: a job is never taken twice)."""
    wanted = desired.adopt_job_id if desired is not None else None
    adopted = status.adopted_job_id if status is not None else None
    return None if wanted is None or wanted == adopted else wanted


def adopted_jobs(name: str, desired: Deployment | None, status: Status | None) -> tuple[str, ...]:
    """The ids of jobs outside deployment `name`'s own ids that are, or are to be, its jobs,
    observed with its own: the adopted job while it is the deployment's job, and the one its
    annotation names."""
    current = status.job.id if status is not None and status.job is not None else None
    taken = (current,) if current and not current.startswith(deployment_key(name)) else ()
    wanted = to_adopt(desired, status)
    return taken + ((wanted,) if wanted and wanted not in taken else ())


def _drift(status, observation: Observation) -> str | None:
    """A job the agent left running that is not running any more, or a second running job."""
    if status is None or not observation.reachable or status.job is None:
        return None
    active = observation.active_jobs
    if len(active) > 1:
        ids = ", ".join(j.id for j in active)
        return f"{len(active)} jobs of this deployment are running ({ids})"
    job = status.job
    if active and active[0].id == job.id and job.tasks and active[0].tasks \
            and active[0].tasks != job.tasks and active[0].flink_status == FlinkJobStatus.RUNNING:
        return (f"job {job.id} runs {active[0].tasks} tasks where it started with {job.tasks}: "
                "its parallelism was changed outside the agent")
    left_running = status.state in (DeploymentState.RUNNING, DeploymentState.TRANSITIONING)
    if not left_running or active:
        return None
    seen = {j.id: j for j in observation.jobs}.get(status.job.id)
    if seen is None:
        return f"job {status.job.id} is missing from the cluster"
    if seen.flink_status == FlinkJobStatus.FINISHED:
        return None  # a bounded job that ended by itself is not drift
    return f"job {status.job.id} is {seen.flink_status} (not by the agent)"


def _dotted(path: str) -> str:
    """deepdiff's root['spec']['template'][0] -> spec.template[0]."""
    text = path.removeprefix("root")
    text = text.replace("']['", ".").replace("['", ".").replace("']", "")
    return text.lstrip(".")


def _show(value: Any) -> str:
    return "(unset)" if value is None else repr(value) if isinstance(value, str) else str(value)
