"""A deployment's own cluster, sized as Ververica's Deployment sizes it: `resources`,
`numberOfTaskManagers` and `logging` as Flink options and a log4j configuration (pure).

| Ververica (`template.spec`) | Flink |
|---|---|
| `resources.jobmanager.memory` | `jobmanager.memory.process.size` |
| `resources.taskmanager.memory` | `taskmanager.memory.process.size` |
| `resources.*.cpu` | not enforced on this machine (a note); `taskmanager.cpu.cores` |
| `numberOfTaskManagers` | TaskManager processes (default: parallelism / slots, rounded up) |
| `logging.log4jLoggers` | the root logger's level (key `""`) and each named logger's |

Memory is a Kubernetes quantity (`1G` = 10^9 bytes, `1Gi` = 2^30, a plain number is bytes) or a
Flink size (`1024m`, `1g`, `512mb`: binary units), written to Flink in whole mebibytes.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Mapping

ROLES = ("jobmanager", "taskmanager")
LEVELS = ("ALL", "TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL", "OFF")
MAX_TASKMANAGERS = 64
_QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)\s*(Ki|Mi|Gi|Ti|k|M|G|T|kb|mb|gb|tb|b|m|g|t)?$")
_FACTOR = {None: 1, "b": 1,
           "k": 1000, "M": 1000 ** 2, "G": 1000 ** 3, "T": 1000 ** 4,        # Kubernetes
           "Ki": 1024, "Mi": 1024 ** 2, "Gi": 1024 ** 3, "Ti": 1024 ** 4,
           "kb": 1024, "m": 1024 ** 2, "mb": 1024 ** 2, "g": 1024 ** 3,     # Flink
           "gb": 1024 ** 3, "t": 1024 ** 4, "tb": 1024 ** 4}
_LOGGER = re.compile(r"^[A-Za-z_$][\w$]*(\.[A-Za-z_$][\w$]*)*$")


class SizeError(ValueError):
    """A value that cannot size a cluster: `path` (under `template.spec`) and why."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path


@dataclass(frozen=True)
class ClusterSize:
    """The Flink options, TaskManagers, slots and log levels of a deployment's cluster."""

    options: dict[str, str]
    taskmanagers: int
    slots: int
    levels: dict[str, str]          # logger ("" the root) -> level
    notes: tuple[str, ...] = ()     # what is written and not enforced here

    def log4j(self, base: str) -> str:
        """`base` (a log4j properties file with `rootLogger.level`) with these levels."""
        root = self.levels.get("", None)
        text = re.sub(r"(?m)^rootLogger\.level\s*=.*$", f"rootLogger.level = {root}", base) \
            if root else base
        named = [(name, level) for name, level in sorted(self.levels.items()) if name]
        return text + "".join(f"\nlogger.gitops{i}.name = {name}\nlogger.gitops{i}.level = {level}"
                              for i, (name, level) in enumerate(named)) + ("\n" if named else "")


def mebibytes(value: Any, path: str) -> int:
    """A memory size in whole mebibytes (rounded up)."""
    found = _QUANTITY.match(str(value).strip()) if isinstance(value, (str, int)) \
        and not isinstance(value, bool) else None
    if found is None:
        raise SizeError(path, f"{value!r} is not a memory size (e.g. 2Gi, 2G, 2048m)")
    size = float(found.group(1)) * _FACTOR[found.group(2)]
    return math.ceil(size / 1024 ** 2)


def cluster_size(resources: Mapping[str, Any] | None, taskmanagers: int | None,
                 logging: Mapping[str, Any] | None, parallelism: int,
                 configuration: Mapping[str, str]) -> ClusterSize:
    """The cluster a deployment asks for (SizeError naming the field when it cannot be)."""
    options, notes = {}, []
    for role, wanted in (resources or {}).items():
        if role not in ROLES or not isinstance(wanted, Mapping):
            raise SizeError(f"resources.{role}", "resources are given for jobmanager and "
                                                 "taskmanager, each {cpu, memory}")
        for key, value in wanted.items():
            path = f"resources.{role}.{key}"
            if key == "memory":
                options[f"{role}.memory.process.size"] = f"{mebibytes(value, path)}m"
            elif key == "cpu":
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                    raise SizeError(path, f"{value!r} is not a number of CPUs above 0")
                if role == "taskmanager":
                    options["taskmanager.cpu.cores"] = str(value)
                notes.append(f"{path} {value} is not enforced on this machine (its processes "
                             "share its cores)")
            else:
                raise SizeError(path, "unknown field; a role has cpu and memory")
    slots = _slots(configuration.get("taskmanager.numberOfTaskSlots", "1"))
    count = taskmanagers if taskmanagers is not None else math.ceil(max(1, parallelism) / slots)
    if not 1 <= count <= MAX_TASKMANAGERS:
        raise SizeError("numberOfTaskManagers", f"{count} TaskManagers: at least 1, at most "
                                                f"{MAX_TASKMANAGERS}")
    if count * slots < parallelism:
        raise SizeError("numberOfTaskManagers", f"{count} TaskManager(s) of {slots} slot(s) "
                                                f"cannot run parallelism {parallelism}")
    return ClusterSize(options, count, slots, _levels(logging), tuple(notes))


def _slots(text: str) -> int:
    if not str(text).isdigit() or int(text) < 1:
        raise SizeError("flinkConfiguration.taskmanager.numberOfTaskSlots",
                        f"{text!r} is not a number of slots")
    return int(text)


def _levels(logging: Mapping[str, Any] | None) -> dict[str, str]:
    levels = {}
    for key, value in (logging or {}).items():
        if key != "log4jLoggers":
            raise SizeError(f"logging.{key}", "only log4jLoggers (logger -> level) is read")
        if not isinstance(value, Mapping):
            raise SizeError("logging.log4jLoggers", "a mapping of logger name to level")
        for name, level in value.items():
            path = "logging.log4jLoggers." + (str(name) or '""')
            if name and not _LOGGER.match(str(name)):
                raise SizeError(path, f"{name!r} is not a logger name (e.g. org.apache.kafka)")
            if str(level).upper() not in LEVELS:
                raise SizeError(path, f"{level!r} is not a level ({', '.join(LEVELS)})")
            levels[str(name)] = str(level).upper()
    return levels


def size_of(template: Any) -> ClusterSize:
    """The cluster a Deployment's `template.spec` asks for."""
    return cluster_size(template.resources, template.number_of_task_managers, template.logging,
                        template.parallelism, template.flink_configuration)


def process_mebibytes(options: Mapping[str, str], jobmanager_default: int,
                      taskmanager_default: int) -> tuple[int, int]:
    """The JobManager's and each TaskManager's process memory in MiB, as Flink `options` set
    them (the defaults where they do not)."""
    def of(role: str, default: int) -> int:
        key = f"{role}.memory.process.size"
        return mebibytes(options[key], f"flinkConfiguration.{key}") if key in options \
            else default
    return of("jobmanager", jobmanager_default), of("taskmanager", taskmanager_default)
