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
"""

from __future__ import annotations

from pathlib import Path

from agent.errors import ArtifactError, ArtifactUnavailable, SecretMissing
from agent.flink.artifacts import store_identity
from agent.load import Located, SpecProblem
from agent.model.spec import RESTART_ON_SECRET_CHANGE_ANNOTATION, ArtifactStores
from agent.model.status import JobInputs
from agent.secret_check import ReadFile, job_values
from agent.secrets import digest_key, keyed_digest

ARTIFACT = ("spec", "template", "spec", "artifact", "jarUri")
ANNOTATION = ("metadata", "annotations", RESTART_ON_SECRET_CHANGE_ANNOTATION)


def job_inputs(located: Located, stores: ArtifactStores, read: ReadFile, workdir: Path,
               recorded: JobInputs | None, offline: bool) -> tuple[JobInputs, list[SpecProblem]]:
    """`located`'s inputs now, and the warnings of a review that could not read some of them
    (`recorded`: the applied spec's). At `sync` (not `offline`) ArtifactError (the store refuses)
    and ArtifactUnavailable (it does not answer) are raised."""
    deployment, warnings = located.spec, []
    recorded = recorded or JobInputs()
    try:
        artifact = store_identity(deployment.spec.template.spec.artifact.jar_uri, stores)
    except (ArtifactError, ArtifactUnavailable) as error:
        if not offline:
            raise
        artifact = recorded.artifact
        warnings.append(_warning(located, ARTIFACT, f"{error} (here; the plan takes the jar "
                                                    "applied last as unchanged)"))
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
    return JobInputs(artifact=artifact, secrets=secrets), warnings


def _warning(located: Located, path: tuple, message: str) -> SpecProblem:
    return SpecProblem(located.file, located.line_of(*path), message, "Deployment",
                       located.spec.name)
