"""One Flink cluster per deployment, in application mode, on this machine (I/O: processes,
files, HTTP).

A deployment's cluster lives in `<workdir>/local/deployments/<name>/` (a deployment's home; the
session clusters of `agent.flink.local` live beside it, by port):

    cluster.json                     what the agent started: ports, pids, job id, when
    conf/config.yaml, conf/log4j.properties
    conf/jobmanager.args             the JobManager's main class and arguments (a `java @file`)
    log/jobmanager.{log,out}, log/taskmanager-<n>.{log,out}
    savepoints/, checkpoints/, artifacts/, tmp/

Its JobManager is Flink's `StandaloneApplicationClusterEntryPoint`, given the job's jar
(`--jars local://…`: used in place), its entry class, a fixed job id, the state to restore and
the job's arguments (after `--`), all read from an argument file (`java @conf/jobmanager.args`,
readable by the agent's user only), so that the job's arguments — a SQL script of any size, a
secret in `mainArgs` — are not on the machine's process list, nor held to Linux's 128 KiB for
one argument; its TaskManagers start as a session cluster's do. Every port
is allocated free and recorded in cluster.json. The JobManager stays up after its job ends
(`execution.shutdown-on-application-finish: false`), so that the agent reads the job's final
state and its savepoint through REST; the agent then ends the cluster itself. It only ever
signals the processes cluster.json records, and only after checking their command line names
this home's conf dir, or its argument file (a pid the system gave to another process is left
alone).
"""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from agent.errors import LocalClusterError
from agent.flink import local, processes

APPLICATION_CLASS = "org.apache.flink.container.entrypoint.StandaloneApplicationClusterEntryPoint"
TASKMANAGER_CLASS = "org.apache.flink.runtime.taskexecutor.TaskManagerRunner"
JOBMANAGER = "jobmanager"
ARGUMENT_FILE = "jobmanager.args"
START_TIMEOUT_S = 120.0   # its JobManager answering and every TaskManager registered, at most
STOP_TIMEOUT_S = 30.0     # SIGTERM, then SIGKILL


@dataclass(frozen=True)
class Application:
    """What a deployment's cluster runs, and how it is sized."""

    deployment: str
    jar: Path                       # the job's jar, a file of this machine
    job_id: str                     # 32 hex digits: the job's id (fixed, `--job-id`)
    entry_class: str | None = None  # None: the jar manifest's Main-Class
    args: tuple[str, ...] = ()
    restore: str | None = None      # a savepoint or retained checkpoint to start from
    allow_non_restored_state: bool = False
    taskmanagers: int = 1
    slots: int = 1                  # per TaskManager
    configuration: dict[str, str] = field(default_factory=dict)   # Flink options, cluster-wide
    log4j: str = local.LOG4J_PROPERTIES
    cache_dir: Path | None = None   # where its processes' memory flags are remembered


@dataclass(frozen=True)
class ApplicationCluster:
    """A deployment's cluster as its cluster.json records it."""

    deployment: str
    home: Path
    rest_port: int
    rpc_port: int
    job_id: str
    pids: dict[str, int]            # role (jobmanager, taskmanager-1, …) -> pid
    started_at: float               # seconds since the epoch

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    def memory(self) -> dict[str, str]:
        """Its JobManager's and each TaskManager's process memory, as its config.yaml sets them
        (role -> size)."""
        try:
            lines = (self.home / "conf" / "config.yaml").read_text().splitlines()
        except OSError:
            return {}
        sizes = {}
        for line in lines:
            key, _, value = line.partition(": ")
            role, _, option = key.partition(".")
            if option == "memory.process.size" and role in ("jobmanager", "taskmanager"):
                sizes[role] = value.strip().strip("'\"")
        return sizes

    def alive(self) -> dict[str, int]:
        """The recorded processes that still run, each checked to be this cluster's."""
        return {role: pid for role, pid in self.pids.items() if local.alive(pid) and (
            local.launched_here(pid) or _runs_here(pid, self.home))}


def home(workdir: Path, deployment: str) -> Path:
    return Path(workdir).resolve() / "local" / "deployments" / deployment


def start(workdir: Path, application: Application,
          timeout: float = START_TIMEOUT_S) -> ApplicationCluster:
    """Starts the deployment's cluster and returns once its TaskManagers are registered.
    LocalClusterError when a cluster of the deployment still runs (the agent never starts a
    second one), or when it does not come up (its logs' errors and last lines said), in which
    case whatever of it started is ended."""
    where = home(workdir, application.deployment)
    running = find(workdir, application.deployment)
    if running is not None:
        raise LocalClusterError(
            f"the cluster of deployment {application.deployment} still runs (pids "
            f"{sorted(running.alive().values())}, {running.url}): it is stopped first")
    conf, logs = where / "conf", where / "log"
    where.mkdir(parents=True, exist_ok=True)
    where.chmod(0o700)   # its config may hold the job's secrets (flinkConfiguration)
    for folder in (conf, logs, where / "savepoints", where / "checkpoints", where / "artifacts",
                   where / "tmp" / "web"):
        folder.mkdir(parents=True, exist_ok=True)
    rest_port, rpc_port = local.free_port(), local.free_port()
    options = _write_config(where, application, rest_port, rpc_port)
    cluster = ApplicationCluster(application.deployment, where, rest_port, rpc_port,
                                 application.job_id, {}, time.time())
    try:
        pids = {JOBMANAGER: local.launch(where, conf, logs / f"{JOBMANAGER}.out", JOBMANAGER,
                                         _jobmanager_command(where, application, options))}
        cluster = _record(cluster, pids)
        memory, properties = local.memory_flags(options, "TM", application.cache_dir)
        for n in range(1, application.taskmanagers + 1):
            role = f"taskmanager-{n}"
            command = local.java_command(conf, logs / f"{role}.log", TASKMANAGER_CLASS, memory)
            pids[role] = local.launch(where, conf, logs / f"{role}.out", role,
                                      command + properties)
            cluster = _record(cluster, pids)
        _await_registered(cluster, application.taskmanagers, timeout)
    except BaseException:
        _end(cluster, STOP_TIMEOUT_S)
        raise
    return cluster


def stop(workdir: Path, deployment: str, timeout: float = STOP_TIMEOUT_S) -> bool:
    """Ends the deployment's cluster (its TaskManagers, then its JobManager: SIGTERM, SIGKILL
    after `timeout`); True when a process of it ran."""
    cluster = find(workdir, deployment)
    return cluster is not None and _end(cluster, timeout)


def recorded(workdir: Path, deployment: str) -> ApplicationCluster | None:
    """The deployment's cluster as cluster.json records it (its processes may have ended), or
    None when there is none, or the record cannot be read."""
    try:
        data = json.loads((home(workdir, deployment) / "cluster.json").read_text())
        return ApplicationCluster(data["deployment"], Path(data["home"]), int(data["rest_port"]),
                                  int(data["rpc_port"]), str(data["job_id"]),
                                  {str(k): int(v) for k, v in data["pids"].items()},
                                  float(data["started_at"]))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def find(workdir: Path, deployment: str) -> ApplicationCluster | None:
    """The deployment's cluster when a process of it still runs: those cluster.json records,
    and any other Flink process whose command line names its conf dir (an agent killed after
    it started a process and before it recorded it leaves such a one)."""
    where = home(workdir, deployment)
    cluster = recorded(workdir, deployment) or ApplicationCluster(deployment, where, 0, 0, "", {},
                                                                  0.0)
    known = set(cluster.pids.values())
    strays = {f"unrecorded-{pid}": pid for pid in _processes_naming(where / "conf")
              if pid not in known}
    if strays:
        cluster = replace(cluster, pids={**cluster.pids, **strays})
    return cluster if cluster.alive() else None


def clusters(workdir: Path) -> list[ApplicationCluster]:
    """Every deployment's cluster recorded in the work dir, by deployment name."""
    root = Path(workdir).resolve() / "local" / "deployments"
    found = [recorded(workdir, path.name) for path in sorted(root.iterdir())] \
        if root.is_dir() else []
    return [cluster for cluster in found if cluster is not None]


def _record(cluster: ApplicationCluster, pids: dict[str, int]) -> ApplicationCluster:
    """cluster.json written (next to it, then moved: never half written) with `pids`."""
    cluster = replace(cluster, pids=dict(pids))
    record = cluster.home / "cluster.json"
    fresh = record.with_name("cluster.json.new")
    fresh.write_text(json.dumps({**asdict(cluster), "home": str(cluster.home)}, indent=2))
    os.replace(fresh, record)
    return cluster


def _end(cluster: ApplicationCluster, timeout: float) -> bool:
    alive = cluster.alive()
    for role in sorted(alive, key=lambda r: r == JOBMANAGER):   # TaskManagers (and processes
                                                                # not recorded) first
        local.signal_process(alive[role], signal.SIGTERM)
    for pid in alive.values():
        local.terminate(pid, timeout)
    return bool(alive)


def _processes_naming(conf: Path) -> list[int]:
    """The pids of this machine's Flink processes (of ours) whose command line names `conf`."""
    return [pid for pid, arguments in processes.command_lines() if _names(arguments, conf)]


def _names(arguments: list[bytes] | None, conf: Path) -> bool:
    """The command line runs a Flink process of ours (its JobManager or a TaskManager) on
    `conf`."""
    if arguments is None:
        return False
    return f"@{conf / ARGUMENT_FILE}".encode() in arguments or str(conf).encode() in arguments \
        and bool({APPLICATION_CLASS.encode(), TASKMANAGER_CLASS.encode()} & set(arguments))


def _runs_here(pid: int, where: Path) -> bool:
    """The process's command line names this home's conf dir (a recycled pid does not)."""
    return _names(processes.command_line(pid), where / "conf")


def _jobmanager_command(where: Path, application: Application,
                        options: dict[str, object]) -> list[str]:
    """The JobManager's command: the JVM's options, then `@` the argument file holding the
    main class and its arguments (written here)."""
    memory, properties = local.memory_flags(options, "JM", application.cache_dir)
    command = local.java_command(where / "conf", where / "log" / f"{JOBMANAGER}.log",
                                 APPLICATION_CLASS, memory)
    main = command.index(APPLICATION_CLASS)
    arguments = where / "conf" / ARGUMENT_FILE
    arguments.touch(mode=0o600)
    arguments.write_text(argument_file([*command[main:], *_application_arguments(
        application, properties)]), encoding="utf-8")
    return [*command[:main], f"@{arguments}"]


def argument_file(arguments: list[str]) -> str:
    """The text of a `java @file` that gives the JVM exactly `arguments`: each one quoted, with
    the launcher's escapes for backslash, quotes and the whitespace it would split at."""
    escapes = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r",
                             "\t": "\\t", "\f": "\\f"})
    return "".join(f'"{argument.translate(escapes)}"\n' for argument in arguments)


def _application_arguments(application: Application, properties: list[str]) -> list[str]:
    """The JobManager's arguments after its configuration directory: Flink's `-D` properties,
    the job and what it restores, and the job's own arguments."""
    command = [*properties, "--jars",
               Path(application.jar).resolve().as_uri().replace("file:", "local:", 1),
               "--job-id", application.job_id]
    if application.entry_class:
        command += ["--job-classname", application.entry_class]
    if application.restore:
        command += ["--fromSavepoint", application.restore]
        if application.allow_non_restored_state:
            command.append("--allowNonRestoredState")
    return command + ["--", *application.args]


def _write_config(where: Path, application: Application, rest_port: int,
                  rpc_port: int) -> dict[str, object]:
    """The cluster's conf/config.yaml and log4j.properties written; its Flink options."""
    options = {
        **local.cluster_config(where, rest_port, rpc_port, application.slots),
        "user.artifacts.base-dir": str(where / "artifacts"),
        "execution.shutdown-on-application-finish": "false",
        # its TaskManagers start beside its JobManager: one that asks before the JobManager
        # answers tries again in half a second, not Flink's default ten
        "cluster.registration.error-delay": "500",
        **application.configuration,
    }
    lines = ["# Written by flink-gitops for the cluster of deployment "
             f"{application.deployment}; rewritten on every start."]
    lines += [f"{key}: {local.yaml_scalar(value)}" for key, value in options.items()]
    (where / "conf" / "config.yaml").write_text("\n".join(lines) + "\n")
    (where / "conf" / "log4j.properties").write_text(application.log4j)
    return options


def _await_registered(cluster: ApplicationCluster, taskmanagers: int, timeout: float) -> None:
    """Waits until `taskmanagers` TaskManagers are registered at its JobManager; fails early
    when a process of it ends."""
    deadline = time.monotonic() + timeout
    roles = tuple(cluster.pids)
    while True:
        if len(local.registered_slots(cluster.url) or {}) >= taskmanagers:
            return
        ended = sorted(set(cluster.pids) - set(cluster.alive()))
        if ended:
            raise LocalClusterError(
                f"the cluster of deployment {cluster.deployment}: its {', '.join(ended)} "
                f"exited while starting{local.log_tails(cluster.home / 'log', roles)}")
        if time.monotonic() >= deadline:
            raise LocalClusterError(
                f"the cluster of deployment {cluster.deployment} was not up after {timeout:g}s "
                f"({taskmanagers} TaskManager(s) registered at {cluster.url}/taskmanagers)"
                f"{local.log_tails(cluster.home / 'log', roles)}")
        time.sleep(0.5)
