"""Secret references checked on the agent's machine before anything runs (I/O: the environment
and files, through `secrets`).

A reference (`${VAR}`, `${file:PATH}`) in a value a job is started with — a flinkConfiguration
value, mainArgs, jarUri, additionalDependencies, a SQL script (inline or its file),
initialSavepointPath — or in its
target's url and headers, that cannot be expanded here makes the deployment INVALID at `sync`,
with the file and line of the field and the reference (never a value): no running job is
touched. `plan` only warns (it may run where the agent's secrets are not); `validate` runs
offline on a checkout and does not check them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from agent.load import LoadResult, Located, SpecProblem
from agent.model.references import references
from agent.secrets import unresolved

TEMPLATE = ("spec", "template", "spec")
ReadFile = Callable[[str], bytes | None]   # a spec-repo file's content (None: no such file)


def add_secret_check(loaded: LoadResult, read: ReadFile, required: bool = True) -> LoadResult:
    """`loaded` (the same object) with a problem for each reference that cannot be expanded
    (`read`: a spec-repo file's content, for a `sqlScriptFile`); not `required` (a review, on a
    machine that need not hold the agent's secrets): a warning saying that `sync` there would
    refuse it."""
    for located in loaded.deployments.values():
        target = loaded.targets.get(located.spec.spec.deployment_target_name)
        values = [*job_values(located, read), *_target_values(target)]
        if any(references(text) for _, _, text in values):
            loaded.secret_readers.add(located.spec.name)
        for path, label, text in values:
            found = [SpecProblem(located.file, located.line_of(*path), f"{label}: {why}"
                                 + ("" if required else " (here; the agent's machine must "
                                    "have it)"), "Deployment", located.spec.name)
                     for _, why in unresolved(text)]
            (loaded.problems if required else loaded.warnings).extend(found)
    return loaded


def job_values(located: Located, read: ReadFile) -> Iterator[tuple[tuple, str, str]]:
    """(path of the field, its name, its text) of every value a job is started with, a
    `sqlScriptFile`'s content included."""
    yield from _values(located)
    yield from _script_file(located, read)


def _values(located: Located) -> Iterator[tuple[tuple, str, str]]:
    template = located.spec.spec.template.spec
    for key, value in template.flink_configuration.items():
        yield (*TEMPLATE, "flinkConfiguration", key), f"flinkConfiguration {key}", str(value)
    artifact = template.artifact
    arguments = artifact.main_args
    if isinstance(arguments, list):
        yield from (((*TEMPLATE, "artifact", "mainArgs", i), "mainArgs", argument)
                    for i, argument in enumerate(arguments))
    for field, value in (("mainArgs", arguments if isinstance(arguments, str) else None),
                         ("jarUri", artifact.jar_uri), ("sqlScript", artifact.sql_script)):
        if value:
            yield (*TEMPLATE, "artifact", field), field, value
    for index, uri in enumerate(artifact.dependencies):
        yield ((*TEMPLATE, "artifact", "additionalDependencies", index),
               f"additionalDependencies[{index}]", uri)
    if located.spec.spec.initial_savepoint_path:
        yield (("spec", "initialSavepointPath"), "initialSavepointPath",
               located.spec.spec.initial_savepoint_path)


def _script_file(located: Located, read: ReadFile) -> Iterator[tuple[tuple, str, str]]:
    """A `sqlScriptFile`'s content (a file that cannot be read is artifact_check's problem)."""
    artifact = located.spec.spec.template.spec.artifact
    path = artifact.repo_file() if artifact.sql_script_file else None
    content = read(path) if path else None
    if content is not None:
        yield ((*TEMPLATE, "artifact", "sqlScriptFile"), f"sqlScriptFile {path}",
               content.decode("utf-8", errors="replace"))


def _target_values(target: Located | None) -> Iterator[tuple[tuple, str, str]]:
    """The target's url, headers and artifact-store settings, reported at the deployment's
    deploymentTargetName."""
    if target is None:
        return
    where, name = ("spec", "deploymentTargetName"), f"DeploymentTarget {target.spec.name}"
    flink, stores = target.spec.spec.flink, target.spec.spec.artifact_stores
    if flink is not None:
        yield where, f"{name} url", flink.url
        yield from ((where, f"{name} header {header}", value)
                    for header, value in flink.headers.items())
    settings = [(f"artifactStores.s3.{field}", value) for field, value in
                (stores.s3.model_dump(by_alias=True) if stores.s3 else {}).items()]
    settings += [(f"artifactStores.maven[{i}].{field}", value)
                 for i, repository in enumerate(stores.maven)
                 for field, value in repository.model_dump(by_alias=True).items()]
    yield from ((where, f"{name} {field}", value) for field, value in settings if value)
