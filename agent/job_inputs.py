"""What each job is made of beyond its spec's text, read where it lives (I/O: object stores,
http servers and Maven repositories through `flink.artifacts`; the agent's secrets).

`job_inputs` gives a deployment's `JobInputs`: the identity of its jar in a store or on a server
and, when the deployment opts in with the annotation RESTART_ON_SECRET_CHANGE_ANNOTATION, a keyed
digest of the values its secret references have now. Both go into the job's digest, so a jar
replaced at its URL, or a rotated secret of an opted-in deployment, makes a new job, upgraded
per its strategy. Without the annotation a rotated secret restarts nothing: the digest holds the
reference, and the next start of the job takes the new value.

A review (`plan`, offline) may run where neither the store's credentials nor the secrets are:
what it cannot read there it takes from the inputs recorded with the applied spec, and says so
in a warning.

The inputs of a cycle's deployments are read READERS at a time (`read_all`): a request to a store
costs its round trip, and a thousand of them in a row would cost a thousand.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from agent.artifact_check import OBJECT_STORES
from agent.errors import ArtifactError, ArtifactUnavailable, SecretMissing
from agent.flink.artifacts import dependency_error, store_identity
from agent.load import Located, SpecProblem
from agent.memo import Memo
from agent.model.spec import RESTART_ON_SECRET_CHANGE_ANNOTATION, ArtifactStores, Deployment
from agent.model.status import JobInputs
from agent.secret_check import ReadFile, job_values
from agent.secrets import digest_key, keyed_digest

ARTIFACT = ("spec", "template", "spec", "artifact", "jarUri")
DEPENDENCIES = ("spec", "template", "spec", "artifact", "additionalDependencies")
READERS = 16                    # deployments whose inputs are read at once
ARTIFACT_MEMO_SIZE = 10_000     # identities that do not change: Maven releases, http jars by
ARTIFACT_MEMO_TTL_S = 3600.0    # validator; each kept at most an hour
Read = tuple[JobInputs, list[SpecProblem]] | Exception   # a deployment's inputs, or why not
ANNOTATION = ("metadata", "annotations", RESTART_ON_SECRET_CHANGE_ANNOTATION)
READ_SCHEMES = {"http", "https", "maven", *OBJECT_STORES}   # jars whose identity is read


def read_all(deployments: dict[str, tuple[Located, ArtifactStores, JobInputs | None]],
             read: ReadFile, workdir: Path, offline: bool, known: Memo) -> dict[str, Read]:
    """The inputs of each deployment (its spec, its target's stores, the inputs recorded with
    its applied spec), READERS at a time; what failed is kept as its exception, to be raised
    where that deployment is assessed. A deployment whose job is made only of the spec repo's
    files has nothing to read."""
    def one(name: str) -> Read:
        located, stores, recorded = deployments[name]
        try:
            return job_inputs(located, stores, read, workdir, recorded, offline, known)
        except Exception as error:  # noqa: BLE001 - one deployment's, raised at its assessment
            return error
    reading = [name for name, (located, _, _) in deployments.items()
               if _reads_anything(located.spec)]
    found: dict[str, Read] = {name: (JobInputs(), []) for name in deployments}
    if len(reading) <= 1:
        return found | {name: one(name) for name in reading}
    with ThreadPoolExecutor(max_workers=min(READERS, len(reading))) as pool:
        return found | dict(zip(reading, pool.map(one, reading), strict=True))


def _reads_anything(deployment: Deployment) -> bool:
    """The deployment's job has an input beyond the spec repo: a jar or dependency in a store,
    on a server or in a Maven repository, or secrets it restarts on."""
    artifact = deployment.spec.template.spec.artifact
    return deployment.restarts_on_secret_change or any(
        uri.partition("://")[0].lower() in READ_SCHEMES
        for uri in (artifact.jar_uri, *artifact.dependencies) if uri)


def job_inputs(located: Located, stores: ArtifactStores, read: ReadFile, workdir: Path,
               recorded: JobInputs | None, offline: bool,
               known: Memo | None = None) -> tuple[JobInputs, list[SpecProblem]]:
    """`located`'s inputs now, and the warnings of a review that could not read some of them
    (`recorded`: the applied spec's; `known`: identities that do not change). At `sync` (not
    `offline`) ArtifactError (the store refuses) and ArtifactUnavailable (it does not answer)
    are raised."""
    deployment, warnings = located.spec, []
    recorded = recorded or JobInputs()
    def identity(read_now: Callable[[], str | None], applied: str | None, path: tuple,
                 what: str) -> str | None:
        """Read now; in a review that cannot read it here, the one recorded, with a warning."""
        try:
            return read_now()
        except (ArtifactError, ArtifactUnavailable) as error:
            if not offline:
                raise
            warnings.append(_warning(located, path, f"{error} (here; the plan takes {what} "
                                                    "applied last as unchanged)"))
            return applied
    artifact = identity(lambda: store_identity(deployment.spec.template.spec.artifact.jar_uri,
                                               stores, known), recorded.artifact, ARTIFACT,
                        "the jar")
    dependencies = identity(lambda: _dependencies(deployment, stores, known),
                            recorded.dependencies, DEPENDENCIES, "the dependencies")
    secrets = None
    if deployment.restarts_on_secret_change:
        texts = [text for _, _, text in job_values(located, read)]
        try:
            secrets = keyed_digest(texts, digest_key(workdir))
        except SecretMissing as error:
            if not offline:
                raise
            secrets = recorded.secrets
            warnings.append(_warning(located, ANNOTATION, f"the secrets' values cannot be read "
                                     f"here ({error}); the plan takes them as unchanged"))
    return JobInputs(artifact=artifact, secrets=secrets, dependencies=dependencies), warnings


def _dependencies(deployment: Deployment, stores: ArtifactStores,
                  known: Memo | None) -> str | None:
    """A digest of the identities of the deployment's additionalDependencies kept in stores,
    on servers and in Maven repositories (None: it has none such; those in the spec repo are
    told by their git blobs)."""
    identities = []
    for index, uri in enumerate(deployment.spec.template.spec.artifact.dependencies):
        try:
            identity = store_identity(uri, stores, known)
        except (ArtifactError, ArtifactUnavailable) as error:
            raise type(error)(dependency_error(error, index)) from None
        if identity is not None:
            identities.append(f"{index}:{identity}")
    if not identities:
        return None
    return hashlib.sha256("\n".join(identities).encode()).hexdigest()[:16]


def _warning(located: Located, path: tuple, message: str) -> SpecProblem:
    return SpecProblem(located.file, located.line_of(*path), message, "Deployment",
                       located.spec.name)
