"""The size of each deployment's own cluster (a local target in application mode), checked
before anything runs (I/O: Flink's BashJavaUtils in a JVM, its verdicts cached on disk).

A deployment of such a target is INVALID, at the line of the field, when its `resources`,
`numberOfTaskManagers` or `logging` cannot size a cluster (`agent.model.resources`), when Flink
refuses its memory (Flink's own words: a size below its minimum), or when its cluster needs more
memory than the machine has. Its compatibility warnings for those fields are dropped: they take
effect. Deployments of session targets keep their warnings and are not checked.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from agent.errors import FlinkGitopsError, MemoryRefused
from agent.load import LoadResult, Located, SpecProblem
from agent.model.resources import SizeError, process_mebibytes, size_of
from agent.model.spec import SIZE_FIELDS

TEMPLATE = ("spec", "template", "spec")
_MEMORY_OPTION = ".memory."   # the options BashJavaUtils reads


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
               if _MEMORY_OPTION in key and "${" not in value}
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
    """Flink's reason for refusing these memory options (None: accepted, or Flink is not
    installed here to ask), asked once per set of options."""
    from agent.flink import local

    key = hashlib.sha256(json.dumps([options, slots], sort_keys=True).encode()).hexdigest()[:24]
    verdict = Path(cache_dir) / "size-checks" / f"{key}.json"
    try:
        return json.loads(verdict.read_text())["refused"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    refused = None
    with tempfile.TemporaryDirectory(prefix="flink-gitops-size-") as conf:
        config = {**local.cluster_config(Path(conf), 8081, 6123, slots), **options}
        Path(conf, "config.yaml").write_text("".join(
            f"{k}: {local.yaml_scalar(v)}\n" for k, v in config.items()))
        for process in ("JM", "TM"):
            try:
                local.resource_params(Path(conf), process)
            except MemoryRefused as error:
                refused = error.reason
                break
            except FlinkGitopsError:   # no Java or no Flink here: not checked
                return None
    verdict.parent.mkdir(parents=True, exist_ok=True)
    partial = verdict.with_name(f".{key}.{os.getpid()}.tmp")
    partial.write_text(json.dumps({"refused": refused}))
    os.replace(partial, verdict)
    return refused
