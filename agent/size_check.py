"""The size of each deployment's own cluster (a local target in application mode), checked
before anything runs (I/O: Flink's BashJavaUtils in a JVM, its answers remembered on disk).

A deployment of such a target is INVALID, at the line of the field, when its `resources`,
`numberOfTaskManagers` or `logging` cannot size a cluster (`agent.model.resources`), when Flink
refuses its memory (Flink's own words: a size below its minimum), or when its cluster needs more
memory than the machine has. Its compatibility warnings for those fields are dropped: they take
effect. Deployments of session targets keep their warnings and are not checked.
"""

from __future__ import annotations

import os
from pathlib import Path

from agent.errors import FlinkGitopsError, MemoryRefused
from agent.load import LoadResult, Located, SpecProblem
from agent.model.resources import SizeError, process_mebibytes, size_of
from agent.model.spec import SIZE_FIELDS

TEMPLATE = ("spec", "template", "spec")


def add_size_check(loaded: LoadResult, cache_dir: Path,
                   machine_mib: int | None = None) -> LoadResult:
    """`loaded` (the same object) with the sizing problems of its deployments on
    application-mode targets added; `machine_mib`: the memory of the machine the clusters run
    on (None: not known here, `validate` on another machine, and not checked)."""
    for name, located in sorted(loaded.deployments.items()):
        if not _sized(located, loaded):
            continue
        problem, notes = _size_findings(located, cache_dir, machine_mib)
        if problem is not None:
            path, why = problem
            loaded.problems.append(SpecProblem(located.file, located.line_of(*TEMPLATE, *path),
                                               why, "Deployment", name))
        loaded.warnings += [SpecProblem(located.file, located.line_of(*TEMPLATE, "resources"),
                                        note, "Deployment", name) for note in notes]
    return loaded


def drop_size_warnings(loaded: LoadResult) -> None:
    """The loader's warnings that the size fields do nothing, dropped where they take effect."""
    sized = {name for name, located in loaded.deployments.items() if _sized(located, loaded)}
    if sized:
        loaded.warnings = [w for w in loaded.warnings if not (
            w.name in sized and w.message.startswith(tuple(f"spec.template.spec.{field} "
                                                           for field in SIZE_FIELDS)))]


def _sized(located: Located, loaded: LoadResult) -> bool:
    target = loaded.targets.get(located.spec.spec.deployment_target_name)
    return target is not None and target.spec.spec.cluster_per_deployment


Problem = tuple[tuple[str, ...], str]   # (path under template.spec, why)


def _size_findings(located: Located, cache_dir: Path,
                   machine_mib: int | None) -> tuple[Problem | None, tuple[str, ...]]:
    """What keeps the deployment's cluster from starting, if anything, and the notes of its
    size (what is written and not enforced here)."""
    from agent.flink import local

    template = located.spec.spec.template.spec
    try:
        size = size_of(template)
    except SizeError as error:
        return (tuple(error.path.split(".")), str(error)), ()
    options = {key: value for key, value in {**size.options,   # (as the cluster is started)
                                              **template.flink_configuration}.items()
               if key.startswith(local.MEMORY_OPTIONS) and "${" not in value}
    refused = _flink_refuses(options, size.slots, cache_dir)
    if refused:
        return (("resources",), f"resources: Flink refuses this memory: {refused}"), size.notes
    try:
        jobmanager, taskmanager = process_mebibytes(options, local.JOBMANAGER_PROCESS_MB,
                                                    local.taskmanager_process_mb(size.slots))
    except SizeError:   # a size Flink reads and this does not (Flink accepted it): not judged
        return None, size.notes
    need = jobmanager + size.taskmanagers * taskmanager
    if machine_mib is not None and need > machine_mib:
        field = "numberOfTaskManagers" if template.number_of_task_managers else "resources"
        return ((field,), f"{field}: the cluster needs {need:,} MiB (a JobManager of "
                          f"{jobmanager:,} MiB and {size.taskmanagers} TaskManager(s) of "
                          f"{taskmanager:,} MiB), more than this machine's {machine_mib:,} "
                          "MiB"), size.notes
    return None, size.notes


def machine_mebibytes() -> int:
    """The machine's physical memory in MiB."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 1024 ** 2


def _flink_refuses(options: dict[str, str], slots: int, cache_dir: Path) -> str | None:
    """Flink's reason for refusing these options as its processes' memory (None: accepted, or
    Flink is not installed here to ask), asked once per memory options (`local.memory_flags`,
    whose answer the cluster's start takes again)."""
    from agent.flink import local

    sizing = {**local.cluster_config(Path("/"), 0, 0, slots), **options}   # (as at the start)
    for process in ("JM", "TM"):
        try:
            local.memory_flags(sizing, process, cache_dir)
        except MemoryRefused as error:
            return error.reason
        except FlinkGitopsError:   # no Java or no Flink here: not checked
            return None
    return None
