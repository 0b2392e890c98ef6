"""The spec kinds users write in git (pure data): `Deployment`, `DeploymentTarget` and
`SyncWindow`, and Ververica's `SessionCluster` and `DeploymentDefaults`.

Field names follow Ververica Platform's `Deployment` resource (camelCase in YAML, snake_case in
Python). Unknown fields are errors, because they are usually typos; the fields Ververica accepts
that have no effect on a session cluster are accepted with a warning (`compat_warnings`).
A `SessionCluster` names the DeploymentTarget its deployments run on, and `DeploymentDefaults`
are merged under the deployments of their namespace before validation (`agent.defaults`).
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
import shlex
from enum import StrEnum
from typing import Annotated, Any, Callable, Literal
from urllib.parse import urlsplit

from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr,
                      StrictBool, StrictFloat, StrictInt, field_validator, model_validator)
from pydantic.alias_generators import to_camel

from agent.model.schedule import time_zone, trigger

SPEC_SUFFIXES = (".yaml", ".yml")   # the files of the spec repository that hold specs
DNS_1123_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
STOP_WITH_DRAIN_ANNOTATION = "com.dataartisans.appmanager.controller.deployment.stop-with-drain"
# "true": a change of a secret reference's value restarts the job (per its upgrade strategy)
RESTART_ON_SECRET_CHANGE_ANNOTATION = "flink-gitops.io/restart-on-secret-change"
# a Flink job id: that running job, started outside the agent, becomes the deployment's job
ADOPT_JOB_ANNOTATION = "flink-gitops.io/adopt-job-id"
FLINK_JOB_ID = re.compile(r"^[0-9a-f]{32}$")
CHECKPOINT_RETENTION = "execution.checkpointing.externalized-checkpoint-retention"
MAX_PARALLELISM = 32768          # Flink's largest maxParallelism
MAX_ATTEMPTS = 100
DEFAULT_REQUEST_TIMEOUT_S = 10.0  # a read of a Flink REST answer; a whole call: 3 times this
MAX_MAIN_ARGS_CHARS = 64 * 1024  # mainArgs, as written (shell-splitting grows with its square)
MAX_DEPENDENCIES = 50            # additionalDependencies of one artifact
# the template fields that size a deployment's own cluster (in YAML: resources, ...)
SIZE_FIELDS = ("resources", "numberOfTaskManagers", "logging")
# Ververica's spec fields that change nothing here (a warning each; not part of what is applied)
INERT_SPEC_FIELDS = ("deploymentTargetId", "jobFailureExpirationTime")


class DesiredState(StrEnum):
    RUNNING = "RUNNING"
    SUSPENDED = "SUSPENDED"
    CANCELLED = "CANCELLED"


class UpgradeStrategyKind(StrEnum):
    STATEFUL = "STATEFUL"
    STATELESS = "STATELESS"
    NONE = "NONE"


class RestoreStrategyKind(StrEnum):
    LATEST_SAVEPOINT = "LATEST_SAVEPOINT"
    LATEST_STATE = "LATEST_STATE"
    NONE = "NONE"


class ArtifactKind(StrEnum):
    JAR = "JAR"
    SQLSCRIPT = "SQLSCRIPT"
    PYTHON = "PYTHON"


class LocalMode(StrEnum):
    """How a local target runs its deployments: on one shared session cluster, or each as its
    own Flink cluster in application mode (sized by its resources)."""

    SESSION = "session"
    APPLICATION = "application"


class SavepointFormat(StrEnum):
    CANONICAL = "CANONICAL"   # Flink's portable format (the default)
    NATIVE = "NATIVE"         # the state backend's own: faster for large RocksDB state


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d)$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MIN_SAVEPOINT_INTERVAL_S = 10.0   # periodicSavepointInterval: no shorter
MAX_DURATION_S = 3650 * 86400.0   # any duration: ten years at most


def duration_seconds(text: str) -> float:
    """`30s`, `10m`, `6h`, `7d` in seconds (ValueError saying the form) (pure)."""
    found = _DURATION.match(text.strip()) if isinstance(text, str) else None
    if found is None:
        raise ValueError(f"{text!r} is not a duration: a number with s, m, h or d, e.g. 6h")
    seconds = float(found.group(1)) * _UNIT_SECONDS[found.group(2)]
    if seconds > MAX_DURATION_S:
        raise ValueError(f"{text!r} is longer than ten years")
    return seconds


def _duration(text: Any) -> str:
    duration_seconds(text)
    return text


def _savepoint_interval(text: Any) -> str:
    if duration_seconds(text) < MIN_SAVEPOINT_INTERVAL_S:
        raise ValueError(f"{text!r} is shorter than {MIN_SAVEPOINT_INTERVAL_S:g}s")
    return text


Duration = Annotated[str, BeforeValidator(_duration)]
SavepointInterval = Annotated[str, BeforeValidator(_savepoint_interval)]


def _dependency(uri: str) -> str:
    where = repo_path(uri) if uri.strip() else ""
    if where is not None and (not where.strip("/. ") or where == ".." or where.startswith("../")):
        raise ValueError(f"{uri!r} is not a jar: a path in the spec repository (e.g. "
                         "jobs/udf.jar) or a URI")
    return uri


Dependency = Annotated[str, AfterValidator(_dependency)]


def _flink_options(value: Any) -> Any:
    """Flink options are strings on the wire; YAML gives numbers and booleans too."""
    if not isinstance(value, dict):
        return value
    return {str(k): _flink_option_text(v) for k, v in value.items()}


FlinkOptions = Annotated[dict[str, str], BeforeValidator(_flink_options)]


def _any_case(value: Any) -> Any:
    """Ververica exports write enum values in any case (`stateful`, `Running`)."""
    return value.upper() if isinstance(value, str) else value


def any_case(enum: type[StrEnum]) -> Any:
    """`enum`, read from a value written in any case."""
    return Annotated[enum, BeforeValidator(_any_case)]


class SpecModel(BaseModel):
    """Base of every spec model: camelCase aliases, unknown fields refused, values frozen."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


DEFAULT_NAMESPACE = "default"   # a spec without metadata.namespace is in it, as in Ververica


class Resource(SpecModel):
    """A document of a spec kind: its `metadata` name it."""

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def namespace(self) -> str:
        """Ververica's namespace: DeploymentDefaults serve the deployments of theirs."""
        return self.metadata.namespace or DEFAULT_NAMESPACE


class Metadata(SpecModel):
    name: str = Field(pattern=DNS_1123_LABEL)
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    display_name: str | None = None   # Ververica's; the dashboard shows `name` (a warning)
    # server-side fields of a Ververica export, accepted so that exports load; ignored
    id: str | None = None
    resource_version: int | None = None
    created_at: str | None = None
    modified_at: str | None = None

    @field_validator("annotations")
    @classmethod
    def _adopts_a_job_id(cls, annotations: dict[str, str]) -> dict[str, str]:
        written = annotations.get(ADOPT_JOB_ANNOTATION)
        if written is not None and not FLINK_JOB_ID.match(written.strip().lower()):
            raise ValueError(f"{ADOPT_JOB_ANNOTATION} is {written!r}, not a Flink job id (32 "
                             "hex digits, as `flink list` and the web UI show it)")
        return annotations


class UpgradeStrategy(SpecModel):
    kind: any_case(UpgradeStrategyKind) = UpgradeStrategyKind.STATEFUL


class RestoreStrategy(SpecModel):
    kind: any_case(RestoreStrategyKind) = RestoreStrategyKind.LATEST_SAVEPOINT
    allow_non_restored_state: StrictBool = False


class Artifact(SpecModel):
    kind: any_case(ArtifactKind) = ArtifactKind.JAR
    jar_uri: str | None = None
    entry_class: str | None = None
    main_args: str | list[str] | None = None
    sql_script: str | None = None          # SQLSCRIPT: the script itself (as Ververica)
    sql_script_file: str | None = None     # SQLSCRIPT: or a path of a .sql file in the spec repo
    python_script: str | None = None       # PYTHON: a .py in the spec repo, or a URI
    # jars the job needs beyond its main artifact (UDFs, connectors): any jarUri form
    additional_dependencies: tuple[Dependency, ...] | None = Field(
        default=None, max_length=MAX_DEPENDENCIES)   # (None, not (): no trace in digests)
    # accepted for Ververica compatibility, no effect on a session cluster
    flink_version: str | None = None
    flink_image_registry: str | None = None
    flink_image_repository: str | None = None
    flink_image_tag: str | None = None

    @model_validator(mode="after")
    def _fields_of_kind(self) -> Artifact:
        jar_fields = [f for f in ("jar_uri", "entry_class", "main_args")
                      if getattr(self, f) is not None]
        sql_fields = [f for f in ("sql_script", "sql_script_file") if getattr(self, f) is not None]
        python_fields = ["python_script"] if self.python_script is not None else []
        if self.kind == ArtifactKind.JAR:
            if not self.jar_uri:
                raise ValueError("artifact of kind JAR needs jarUri")
            if sql_fields or python_fields:
                other = (sql_fields or python_fields)[0]
                raise ValueError(f"artifact of kind JAR takes no {to_camel(other)} (set kind: "
                                 f"{'SQLSCRIPT' if sql_fields else 'PYTHON'})")
        if self.kind == ArtifactKind.PYTHON:
            if not (self.python_script or "").strip():
                raise ValueError("artifact of kind PYTHON needs pythonScript (a .py file in the "
                                 "spec repo, or a URI)")
            if sql_fields or self.jar_uri or self.entry_class:
                other = (sql_fields or [f for f in ("jar_uri", "entry_class")
                                        if getattr(self, f)])[0]
                raise ValueError(f"artifact of kind PYTHON takes no {to_camel(other)} (the "
                                 "agent runs the script with Flink's Python driver)")
        if self.kind == ArtifactKind.SQLSCRIPT:
            if len(sql_fields) != 1:
                raise ValueError("artifact of kind SQLSCRIPT needs exactly one of sqlScript "
                                 "(the script) and sqlScriptFile (a .sql file in the spec repo)")
            if jar_fields or python_fields:
                raise ValueError(f"artifact of kind SQLSCRIPT takes no "
                                 f"{to_camel((jar_fields or python_fields)[0])} (the agent runs "
                                 "the script with its own SQL runner)")
            if self.sql_script is not None and not self.sql_script.strip():
                raise ValueError("sqlScript is empty")
            if self.sql_script_file is not None and ("://" in self.sql_script_file
                                                     or not self.sql_script_file.strip("/. ")):
                raise ValueError("sqlScriptFile is a path in the spec repository, e.g. "
                                 "sql/orders.sql")
        path = self.repo_file()
        if path is not None and (path == ".." or path.startswith("../")):
            raise ValueError(f"{self.file_field} {path} leaves the spec repository (a path in it, "
                             "e.g. jobs/orders.jar)")
        written = self.main_args if isinstance(self.main_args, str) else \
            "".join(self.main_args or ())
        if len(written) > MAX_MAIN_ARGS_CHARS:
            raise ValueError(f"mainArgs has {len(written):,} characters, over the limit of "
                             f"{MAX_MAIN_ARGS_CHARS:,}")
        if isinstance(self.main_args, str):
            try:
                shlex.split(self.main_args)
            except ValueError as error:
                raise ValueError(f"mainArgs cannot be split as a shell would: {error} (quote "
                                 "it differently, or give a list)") from None
        return self

    @property
    def file_field(self) -> str:
        """The field naming the file the job is made of: jarUri, sqlScriptFile, pythonScript."""
        return {ArtifactKind.SQLSCRIPT: "sqlScriptFile",
                ArtifactKind.PYTHON: "pythonScript"}.get(self.kind, "jarUri")

    @property
    def file_uri(self) -> str | None:
        """The value of `file_field`, as written."""
        return {ArtifactKind.SQLSCRIPT: self.sql_script_file,
                ArtifactKind.PYTHON: self.python_script}.get(self.kind, self.jar_uri)

    def repo_file(self) -> str | None:
        """The spec-repo file the job is made of (a jar, SQL or Python script kept in the repo,
        as a normalised repo-relative path), or None: its content is part of the job."""
        return repo_path(self.file_uri) if self.file_uri is not None else None

    def repo_dependencies(self) -> list[str]:
        """The additionalDependencies kept in the spec repo, as repo-relative paths."""
        return [path for path in map(repo_path, self.dependencies) if path]

    @property
    def dependencies(self) -> tuple[str, ...]:
        """additionalDependencies, () when there are none."""
        return self.additional_dependencies or ()

    def program_args(self) -> list[str]:
        """`mainArgs` as an argument list: a string is shell-split, as Ververica does."""
        if self.main_args is None:
            return []
        if isinstance(self.main_args, str):
            return shlex.split(self.main_args)
        return list(self.main_args)


def repo_path(uri: str) -> str | None:
    """The normalised spec-repo path a jarUri-like value names, or None for a URI."""
    if "://" in uri:
        return None
    return posixpath.normpath(uri.lstrip("/"))


class TemplateSpec(SpecModel):
    artifact: Artifact
    parallelism: StrictInt = Field(default=1, ge=1, le=MAX_PARALLELISM)
    flink_configuration: FlinkOptions = Field(default_factory=dict)
    # a deployment's own cluster (a local target in application mode); a warning elsewhere
    resources: dict[str, Any] | None = None
    number_of_task_managers: StrictInt | None = None
    logging: dict[str, Any] | None = None
    kubernetes: dict[str, Any] | None = None


class TemplateMetadata(SpecModel):
    annotations: dict[str, str] = Field(default_factory=dict)


class Template(SpecModel):
    metadata: TemplateMetadata | None = None
    spec: TemplateSpec


class SavepointRetention(SpecModel):
    """How many savepoints the agent took of a deployment are kept, and for how long; the ones
    beyond are disposed (see `agent.retention` for those never disposed)."""

    max_count: StrictInt | None = Field(default=None, ge=1, le=100_000)
    max_age: Duration | None = None

    @model_validator(mode="after")
    def _says_something(self) -> SavepointRetention:
        if self.max_count is None and self.max_age is None:
            raise ValueError("savepointRetention needs maxCount, maxAge or both")
        return self


class HealthAction(StrEnum):
    REPORT = "REPORT"     # a breach is reported (UNHEALTHY), nothing else
    RESTART = "RESTART"   # and the job is restarted from its newest state, once a window


class HealthPolicy(SpecModel):
    """When a running job counts as unhealthy: more than `maxRestarts` restarts within `window`,
    or no completed checkpoint for `checkpointProgressTimeout` (a job that checkpoints)."""

    max_restarts: StrictInt | None = Field(default=None, ge=0, le=1000)
    window: Duration = "10m"
    checkpoint_progress_timeout: Duration | None = None
    action: any_case(HealthAction) = HealthAction.REPORT

    @model_validator(mode="after")
    def _says_something(self) -> HealthPolicy:
        if self.max_restarts is None and self.checkpoint_progress_timeout is None:
            raise ValueError("healthPolicy needs maxRestarts, checkpointProgressTimeout or both")
        return self


class DeploymentSpec(SpecModel):
    state: any_case(DesiredState) = DesiredState.RUNNING
    deployment_target_name: str = Field(pattern=DNS_1123_LABEL)   # (or by its session cluster:)
    session_cluster_name: str | None = Field(default=None, pattern=DNS_1123_LABEL)
    upgrade_strategy: UpgradeStrategy = UpgradeStrategy()
    restore_strategy: RestoreStrategy = RestoreStrategy()
    max_savepoint_creation_attempts: StrictInt = Field(default=4, ge=1, le=MAX_ATTEMPTS)
    max_job_creation_attempts: StrictInt = Field(default=4, ge=1, le=MAX_ATTEMPTS)
    stop_with_drain: StrictBool = False
    initial_savepoint_path: str | None = None
    restart_nonce: int | str | None = None             # change it: restart per upgradeStrategy
    savepoint_trigger_nonce: int | str | None = None   # change it: take a savepoint of the job
    savepoint_redeploy_nonce: int | str | None = None  # change it: restart from initialSavepointPath
    periodic_savepoint_interval: SavepointInterval | None = None   # else the target's
    savepoint_retention: SavepointRetention | None = None          # else the target's; none: all
    savepoint_format: any_case(SavepointFormat) = SavepointFormat.CANONICAL
    health_policy: HealthPolicy | None = None                      # else the target's
    upgrade_stability_window: Duration | None = None   # an upgraded job must run this long
    # accepted for Ververica compatibility, no effect here (warnings)
    deployment_target_id: str | None = None
    job_failure_expiration_time: str | int | None = None
    template: Template

    @model_validator(mode="after")
    def _redeploy_needs_a_savepoint(self) -> DeploymentSpec:
        if self.savepoint_redeploy_nonce is not None and not self.initial_savepoint_path:
            raise ValueError("savepointRedeployNonce restarts the job from initialSavepointPath: "
                             "set initialSavepointPath to the savepoint to restore")
        return self

    @model_validator(mode="after")
    def _latest_state_needs_retained_checkpoints(self) -> DeploymentSpec:
        retention = self.template.spec.flink_configuration.get(CHECKPOINT_RETENTION)
        if self.restore_strategy.kind == RestoreStrategyKind.LATEST_STATE \
                and retention not in (None, "RETAIN_ON_CANCELLATION"):
            raise ValueError(
                f"restoreStrategy LATEST_STATE restores retained checkpoints, but "
                f"{CHECKPOINT_RETENTION} is {retention}: set it to RETAIN_ON_CANCELLATION, or "
                "leave it out and the agent sets it")
        return self


class Deployment(Resource):
    api_version: Literal["v1"] = "v1"
    kind: Literal["Deployment"] = "Deployment"
    metadata: Metadata
    spec: DeploymentSpec
    status: dict[str, Any] | None = None  # in a Ververica export; the agent keeps its own
    _derived: dict[Any, Any] = PrivateAttr(default_factory=dict)

    def derived(self, key: Any, compute: Callable[[], Any]) -> Any:
        """A value derived from this spec, computed once: a spec is never changed after it is
        loaded, and an unchanged file's specs are the same objects from cycle to cycle, so what
        every cycle derives from them (digests, documents) costs one computation per change.
        The value is shared: callers do not change it."""
        if key not in self._derived:
            self._derived[key] = compute()
        return self._derived[key]

    @property
    def drain_on_stop(self) -> bool:
        """`stopWithDrain`, or Ververica's stop-with-drain annotation set to true."""
        annotation = self.metadata.annotations.get(STOP_WITH_DRAIN_ANNOTATION, "false")
        return self.spec.stop_with_drain or annotation.strip().lower() == "true"

    @property
    def adopt_job_id(self) -> str | None:
        """The running job this deployment takes as its own (its annotation), if any."""
        written = self.metadata.annotations.get(ADOPT_JOB_ANNOTATION)
        return written.strip().lower() if written is not None else None

    @property
    def restarts_on_secret_change(self) -> bool:
        """Opted in (its annotation) to a new job when a referenced secret's value changes."""
        annotation = self.metadata.annotations.get(RESTART_ON_SECRET_CHANGE_ANNOTATION, "false")
        return annotation.strip().lower() == "true"

    def job_fields(self, sized: bool = False) -> dict[str, Any]:
        """What the running job is made of: a change here needs a new job (labels and the desired
        state are not part of it). `sized`: the job runs on a cluster of its own, so its
        cluster's size (SIZE_FIELDS) is part of it too."""
        spec = self.spec.model_dump(mode="json", by_alias=True, exclude_none=True)
        spec.pop("state")
        template = spec["template"]["spec"]
        for compat in ("kubernetes",) if sized else ("kubernetes", *SIZE_FIELDS):
            template.pop(compat, None)
        fields = {"template": spec["template"], "stopWithDrain": self.drain_on_stop}
        if self.spec.restart_nonce is not None:
            fields["restartNonce"] = self.spec.restart_nonce
        return fields

    def job_hash(self, artifact_digest: str | None = None, sized: bool = False) -> str:
        """A short, stable digest of `job_fields` (and of the artifact's content where it is
        known, e.g. a jar in the spec repository): equal hashes mean the same job."""
        def digest() -> str:
            fields = self.job_fields(sized) | {"artifactDigest": artifact_digest}
            canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
            return hashlib.sha256(canonical.encode()).hexdigest()[:16]
        return self.derived(("job_hash", artifact_digest, sized), digest)

    def attempt_key(self, job_hash: str) -> str:
        """A digest of the whole spec and the job's content: a failed action is not tried again
        until this changes (any field, not only the job's: allowNonRestoredState, attempts…)."""
        spec = self.spec.model_dump(mode="json", by_alias=True, exclude_none=True)
        canonical = json.dumps({"spec": spec, "job": job_hash}, sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def compat_warnings(self) -> list[str]:
        """Ververica fields accepted for compatibility that do nothing on a session cluster."""
        template = self.spec.template.spec
        found = [
            f"spec.template.spec.{to_camel(f)}"
            for f in ("resources", "number_of_task_managers", "logging", "kubernetes")
            if getattr(template, f) is not None
        ] + [
            f"spec.template.spec.artifact.{to_camel(f)}"
            for f in ("flink_version", "flink_image_registry", "flink_image_repository",
                      "flink_image_tag")
            if getattr(template.artifact, f) is not None
        ]
        notes = [f"{path} has no effect on a session cluster; ignored" for path in found]
        notes += [note for value, note in (
            (self.spec.deployment_target_id, "spec.deploymentTargetId is Ververica's id of a "
             "target; the agent names it by spec.deploymentTargetName; ignored"),
            (self.spec.job_failure_expiration_time, "spec.jobFailureExpirationTime has no "
             "effect (failed jobs are kept as Flink keeps them); ignored"),
            (self.metadata.display_name, "metadata.displayName has no effect: the status "
             "branch names the deployment by metadata.name; ignored")) if value is not None]
        if self.status is not None:
            notes.append("status is written by the agent on the status branch; ignored here")
        return notes


class Tls(SpecModel):
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    verify: StrictBool = True


class FlinkCluster(SpecModel):
    url: str
    ui_url: str | None = None        # its web UI, for links (default: `url`, which serves it)
    headers: dict[str, str] = Field(default_factory=dict)
    tls: Tls = Tls()
    request_timeout_seconds: StrictFloat = Field(default=DEFAULT_REQUEST_TIMEOUT_S, ge=0.5, le=600)

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        """Checked as written, unless it holds a secret reference: then once expanded."""
        return url if "${" in url else http_url(url)


def http_url(url: str) -> str:
    """`url` if it is the http(s) address of a REST API (ValueError saying why not) (pure)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname \
            or re.search(r"\s", url):
        raise ValueError("url must be the http:// or https:// address of the cluster's REST "
                         "API, e.g. https://flink.example.com:8081")
    try:
        parts.port
    except ValueError:
        raise ValueError("url has a port that is not a number from 0 to 65535") from None
    return url


class LocalClusterSpec(SpecModel):
    mode: LocalMode = LocalMode.SESSION
    port: StrictInt = Field(default=8081, ge=1, le=65535)   # the session cluster's
    slots: StrictInt = Field(default=4, ge=1, le=1024)
    flink_configuration: FlinkOptions = Field(default_factory=dict)  # the cluster's config.yaml


class S3Store(SpecModel):
    """Where and as whom the target's `s3://` jars are read; each value may be a secret
    reference, and overrides the agent's AWS_* environment."""

    endpoint: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None


class MavenRepository(SpecModel):
    """A Maven repository `maven://` jars are resolved against (credentials by reference)."""

    url: str
    username: str | None = None
    password: str | None = None

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if "${" in url:
            return url
        if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
            raise ValueError("url must be the http:// or https:// address of a Maven repository")
        return url


class ArtifactStores(SpecModel):
    """The target's settings for reading its deployments' artifacts."""

    s3: S3Store | None = None
    maven: list[MavenRepository] = Field(default_factory=list, max_length=16)


class DeploymentTargetSpec(SpecModel):
    flink: FlinkCluster | None = None
    local: LocalClusterSpec | None = None
    savepoint_dir: str | None = None
    periodic_savepoint_interval: SavepointInterval | None = None   # its deployments' default
    savepoint_retention: SavepointRetention | None = None          # its deployments' default
    health_policy: HealthPolicy | None = None                      # its deployments' default
    artifact_stores: ArtifactStores = ArtifactStores()

    @property
    def cluster_per_deployment(self) -> bool:
        """Each of its deployments runs as its own Flink cluster (local, application mode)."""
        return self.local is not None and self.local.mode == LocalMode.APPLICATION

    @model_validator(mode="after")
    def _one_cluster(self) -> DeploymentTargetSpec:
        if (self.flink is None) == (self.local is None):
            raise ValueError("a DeploymentTarget needs exactly one of spec.flink and spec.local")
        return self


class DeploymentTarget(Resource):
    api_version: Literal["v1"] = "v1"
    kind: Literal["DeploymentTarget"] = "DeploymentTarget"
    metadata: Metadata
    spec: DeploymentTargetSpec


def _flink_option_text(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, list):
        return ";".join(str(v) for v in value)
    return value


class SessionClusterSpec(SpecModel):
    """Ververica's session cluster: here, a name for the DeploymentTarget whose cluster it is
    (the agent starts no cluster for it; its cluster settings are accepted with a warning)."""

    deployment_target_name: str = Field(pattern=DNS_1123_LABEL)
    state: any_case(DesiredState) = DesiredState.RUNNING
    flink_version: str | None = None
    flink_image_registry: str | None = None
    flink_image_repository: str | None = None
    flink_image_tag: str | None = None
    number_of_task_managers: StrictInt | None = None
    resources: dict[str, Any] | None = None
    flink_configuration: FlinkOptions | None = None
    logging: dict[str, Any] | None = None
    kubernetes: dict[str, Any] | None = None


class SessionCluster(Resource):
    api_version: Literal["v1"] = "v1"
    kind: Literal["SessionCluster"] = "SessionCluster"
    metadata: Metadata
    spec: SessionClusterSpec
    status: dict[str, Any] | None = None

    def compat_warnings(self) -> list[str]:
        """Its cluster settings: the cluster is the one of its DeploymentTarget, as it runs."""
        ignored = [to_camel(f) for f in SessionClusterSpec.model_fields
                   if f not in ("deployment_target_name", "state")
                   and getattr(self.spec, f) is not None]
        notes = [f"spec.{f} has no effect: the agent starts no session cluster (its deployments "
                 f"run on DeploymentTarget {self.spec.deployment_target_name!r}); ignored"
                 for f in ignored]
        if self.spec.state != DesiredState.RUNNING:
            notes.append(f"spec.state {self.spec.state} has no effect: the agent does not stop "
                         "session clusters; ignored")
        return notes


class DeploymentDefaults(Resource):
    """Ververica's defaults for the `spec` of every Deployment of a namespace: what a
    deployment writes itself wins (mappings merged key by key, lists replaced whole)."""

    api_version: Literal["v1"] = "v1"
    kind: Literal["DeploymentDefaults"] = "DeploymentDefaults"
    metadata: Metadata
    spec: dict[str, Any] = Field(default_factory=dict)


class WindowKind(StrEnum):
    ALLOW = "allow"   # changes run only while an allow window is open
    DENY = "deny"     # no change runs while a deny window is open (deny wins over allow)


class WindowDeployments(SpecModel):
    """The deployments a window applies to: all its labels and one of its targets (both
    optional; none written: every deployment)."""

    match_labels: dict[str, str] = Field(default_factory=dict)
    targets: list[str] = Field(default_factory=list, max_length=256)


def _time_zone(name: Any) -> Any:
    if isinstance(name, str):
        time_zone(name)
    return name


def _schedule(text: Any) -> Any:
    if isinstance(text, str):
        trigger(text, "UTC")   # (a time zone changes when it fires, not whether it parses)
    return text


class SyncWindowSpec(SpecModel):
    kind: Annotated[WindowKind, BeforeValidator(lambda v: v.lower() if isinstance(v, str)
                                                else v)]
    schedule: Annotated[str, Field(max_length=256), BeforeValidator(_schedule)]   # crontab
    duration: Duration
    time_zone: Annotated[str, BeforeValidator(_time_zone)] = "UTC"
    deployments: WindowDeployments | None = None
    manual_sync: StrictBool = False   # `sync --override-window` may act inside it
    self_heal: StrictBool = False     # a job that died may be started again inside it


class SyncWindow(Resource):
    """When the deployments it selects may change (`agent.sync_windows`)."""

    api_version: Literal["v1"] = "v1"
    kind: Literal["SyncWindow"] = "SyncWindow"
    metadata: Metadata
    spec: SyncWindowSpec


SPEC_KINDS: dict[str, type[SpecModel]] = {
    "Deployment": Deployment,
    "DeploymentTarget": DeploymentTarget,
    "SessionCluster": SessionCluster,
    "DeploymentDefaults": DeploymentDefaults,
    "SyncWindow": SyncWindow,
}
