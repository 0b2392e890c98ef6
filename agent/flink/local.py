"""The embedded local Flink session cluster (I/O: processes, files, HTTP).

Runs a real Apache Flink standalone session cluster — one JobManager and one TaskManager JVM —
from the jars that the `apache-flink-libraries` wheel installs into the `pyflink` package, with
the machine's Java 17. Nothing is imitated: jobs, savepoints and restores are Flink's own.

A cluster lives in `<workdir>/local/<port>/` (its *home*):

    conf/config.yaml, conf/log4j.properties   written by `start`
    log/jobmanager.{log,out}, log/taskmanager.{log,out}
    savepoints/, checkpoints/, uploads/, tmp/
    jobmanager.pid, taskmanager.pid

Both JVMs are detached from the calling process (a new session), so a cluster outlives the
command that started it; `status` finds it again through the pid files and the REST API, and
`stop` ends it. Clusters on different REST ports coexist: every other port is chosen free.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import requests

from agent.errors import JavaMissing, LocalClusterError, MemoryRefused
from agent.flink import class_data, processes

JOBMANAGER = "jobmanager"
TASKMANAGER = "taskmanager"

_JOBMANAGER_CLASS = "org.apache.flink.runtime.entrypoint.StandaloneSessionClusterEntrypoint"
_TASKMANAGER_CLASS = "org.apache.flink.runtime.taskexecutor.TaskManagerRunner"
_BASH_JAVA_UTILS_CLASS = "org.apache.flink.runtime.util.bash.BashJavaUtils"
_BASH_JAVA_UTILS_PREFIX = "BASH_JAVA_UTILS_EXEC_RESULT:"
_MAIN_CLASS = {JOBMANAGER: _JOBMANAGER_CLASS, TASKMANAGER: _TASKMANAGER_CLASS}

# Names another Flink distribution (a `pyflink` dir with lib/flink-dist-*.jar) to use instead.
FLINK_HOME_ENV = "FLINK_GITOPS_FLINK_HOME"

# the options BashJavaUtils sizes a JobManager or TaskManager process from
MEMORY_OPTIONS = ("jobmanager.memory.", "taskmanager.memory.", "taskmanager.cpu.cores",
                  "taskmanager.numberOfTaskSlots")
_HOST = "127.0.0.1"
_JOBMANAGER_HEAP = "-Xmx600m"
JOBMANAGER_PROCESS_MB = 1024
_TASKMANAGER_PROCESS_MB = 1280

# The JVM flags Flink's own scripts give every Flink process on Java 17 (config.yaml's
# env.java.default-opts.all in the binary distribution).
JVM_MODULE_FLAGS: tuple[str, ...] = (
    "--add-exports=java.base/sun.net.util=ALL-UNNAMED",
    "--add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED",
    "--add-exports=java.security.jgss/sun.security.krb5=ALL-UNNAMED",
    "--add-opens=java.base/java.lang=ALL-UNNAMED",
    "--add-opens=java.base/java.net=ALL-UNNAMED",
    "--add-opens=java.base/java.io=ALL-UNNAMED",
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens=java.base/java.lang.reflect=ALL-UNNAMED",
    "--add-opens=java.base/java.text=ALL-UNNAMED",
    "--add-opens=java.base/java.time=ALL-UNNAMED",
    "--add-opens=java.base/java.util=ALL-UNNAMED",
    "--add-opens=java.base/java.util.concurrent=ALL-UNNAMED",
    "--add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED",
    "--add-opens=java.base/java.util.concurrent.locks=ALL-UNNAMED",
)

_INSTALL_FLINK = (
    "install the Flink jars with `pip install 'flink-gitops[local]'` "
    "(or `pip install apache-flink-libraries`)"
)
_INSTALL_JAVA = (
    "install a JDK 17, e.g. apt-get install -y openjdk-17-jdk-headless, or set JAVA_HOME"
)

LOG4J_PROPERTIES = """\
# Written by flink-gitops for the embedded local cluster; Flink's default file logging.
monitorInterval = 30
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = MainAppender

logger.pekko.name = org.apache.pekko
logger.pekko.level = INFO
logger.hadoop.name = org.apache.hadoop
logger.hadoop.level = WARN
logger.zookeeper.name = org.apache.zookeeper
logger.zookeeper.level = WARN
logger.shaded_zookeeper.name = org.apache.flink.shaded.zookeeper3
logger.shaded_zookeeper.level = WARN
logger.netty.name = org.jboss.netty.channel.DefaultChannelPipeline
logger.netty.level = OFF

appender.main.name = MainAppender
appender.main.type = RollingFile
appender.main.append = true
appender.main.fileName = ${sys:log.file}
appender.main.filePattern = ${sys:log.file}.%i
appender.main.layout.type = PatternLayout
appender.main.layout.pattern = %d{yyyy-MM-dd HH:mm:ss,SSS} %-5p %-60c %x - %m%n
appender.main.policies.type = Policies
appender.main.policies.size.type = SizeBasedTriggeringPolicy
appender.main.policies.size.size = 100MB
appender.main.policies.startup.type = OnStartupTriggeringPolicy
appender.main.strategy.type = DefaultRolloverStrategy
appender.main.strategy.max = 5
"""

# Popen handles of the JVMs this Python process launched, kept so they are reaped, not zombies.
_launched: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class LocalCluster:
    """A local session cluster: where it lives and where its REST API answers."""

    home: Path  # <workdir>/local/<port>
    port: int
    slots: int

    @property
    def url(self) -> str:
        return f"http://{_HOST}:{self.port}"

    @property
    def conf_dir(self) -> Path:
        return self.home / "conf"

    @property
    def savepoint_dir(self) -> Path:
        return self.home / "savepoints"

    @property
    def checkpoint_dir(self) -> Path:
        return self.home / "checkpoints"

    @property
    def log_dir(self) -> Path:
        return self.home / "log"


@dataclass(frozen=True)
class LocalClusterStatus:
    """What runs of a local cluster right now, as seen from its pid files and REST API."""

    running: bool
    url: str
    home: Path
    pids: dict[str, int]  # {"jobmanager": pid, "taskmanager": pid} of live processes
    flink_version: str | None
    slots_total: int | None
    slots_available: int | None


# --- the Flink distribution and Java ------------------------------------------------------------


def flink_home() -> Path:
    """The `pyflink` directory holding Flink's `lib/` jars (from `apache-flink-libraries`).

    `FLINK_GITOPS_FLINK_HOME`, when set, names another such directory — e.g. the `pyflink` of
    `pip install --no-deps --target DIR apache-flink-libraries==1.20.5` — so that clusters start
    and jobs build with that Flink version instead of the installed one.
    """
    override = os.environ.get(FLINK_HOME_ENV)
    if override:
        home = Path(override).expanduser()
        if any((home / "lib").glob("flink-dist*.jar")):
            return home
        raise LocalClusterError(
            f"{FLINK_HOME_ENV}={override} holds no Flink distribution (no lib/flink-dist-*.jar); "
            "point it at the `pyflink` directory of an apache-flink-libraries install"
        )
    spec = importlib.util.find_spec("pyflink")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        home = Path(location)
        if any((home / "lib").glob("flink-dist*.jar")):
            return home
    raise LocalClusterError(
        f"no Flink distribution found (pyflink/lib/flink-dist-*.jar); {_INSTALL_FLINK}"
    )


def flink_classpath() -> list[Path]:
    """Every jar of Flink's `lib/`, sorted: the classpath of Flink's processes and of job builds."""
    return sorted((flink_home() / "lib").glob("*.jar"))


def flink_version() -> str:
    """The version of the installed Flink distribution, read from its flink-dist jar's name."""
    dist = sorted((flink_home() / "lib").glob("flink-dist*.jar"))
    name = dist[0].stem  # flink-dist-2.3.0 (or flink-dist_2.12-1.20.1)
    return name.rsplit("-", 1)[-1]


def java_executable(tool: str = "java") -> str:
    """The path of a JDK tool (`java`, `javac`): `$JAVA_HOME/bin` first, then `PATH`."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / tool
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(tool)
    if found:
        return found
    where = f"JAVA_HOME={java_home} has no bin/{tool} and " if java_home else ""
    raise JavaMissing(f"{where}no `{tool}` on PATH; {_INSTALL_JAVA}")


# --- start / stop / status ----------------------------------------------------------------------


def start(workdir: Path, port: int = 8081, slots: int = 4, timeout: float = 90,
          configuration: dict[str, str] | None = None) -> LocalCluster:
    """Start a local session cluster with its REST API on `port`, or reuse the one running there.

    `configuration` adds Flink options to (or overrides those of) the cluster's config.yaml; it
    applies when the cluster starts, not to a running one that is reused.

    Returns once a TaskManager with slots is registered. A cluster already running from this
    home is reused as it is (its `slots` are the ones it was started with); a TaskManager of it
    that died is started again. Raises LocalClusterError when the port belongs to something else,
    or when the cluster is not up within `timeout` seconds or a JVM exits while starting (the
    message carries the errors and last lines of the JobManager's and TaskManager's logs).
    """
    if slots < 1:
        raise LocalClusterError(f"a local cluster needs at least 1 task slot, not {slots}")
    cluster = LocalCluster(home=home(workdir, port), port=port, slots=slots)
    cluster.home.mkdir(parents=True, exist_ok=True)
    with _locked(cluster.home):
        pids = _live_pids(cluster)
        if JOBMANAGER in pids:  # running: reuse it, replacing a TaskManager that died
            cluster = LocalCluster(
                home=cluster.home, port=port, slots=_configured_slots(cluster) or slots
            )
            taskmanager_id = None if TASKMANAGER in pids else _launch_taskmanager(cluster)
            _await_ready(cluster, timeout, taskmanager_id)
            return cluster
        if TASKMANAGER in pids:  # a TaskManager without its JobManager: start both afresh
            terminate(pids[TASKMANAGER], timeout=15)
        _remove_pid_files(cluster)
        _ensure_port_free(cluster)
        _write_config(cluster, configuration or {})
        try:
            _launch_jobmanager(cluster)
            _await_ready(cluster, timeout, _launch_taskmanager(cluster))
        except BaseException:
            _stop_processes(cluster, timeout=15)
            raise
        return cluster


def stop(workdir: Path, port: int = 8081, timeout: float = 30) -> bool:
    """Stop the local cluster on `port` (SIGTERM, then SIGKILL after `timeout`); True if one ran."""
    cluster = LocalCluster(home=home(workdir, port), port=port, slots=0)
    if not cluster.home.is_dir():
        return False
    with _locked(cluster.home):
        return _stop_processes(cluster, timeout)


def status(workdir: Path, port: int = 8081) -> LocalClusterStatus:
    """The state of the local cluster on `port`: live processes and what its REST API reports."""
    cluster = LocalCluster(home=home(workdir, port), port=port, slots=0)
    pids = _live_pids(cluster) if cluster.home.is_dir() else {}
    overview = (rest_overview(cluster.url) if JOBMANAGER in pids else None) or {}
    version, total, available = (
        overview.get("flink-version"),
        overview.get("slots-total"),
        overview.get("slots-available"),
    )
    return LocalClusterStatus(
        running=JOBMANAGER in pids and TASKMANAGER in pids and bool(overview),
        url=cluster.url,
        home=cluster.home,
        pids=pids,
        flink_version=version if isinstance(version, str) else None,
        slots_total=total if isinstance(total, int) else None,
        slots_available=available if isinstance(available, int) else None,
    )


# --- configuration ------------------------------------------------------------------------------


def home(workdir: Path, port: int) -> Path:
    """Where the local cluster of `workdir` on `port` lives (`<workdir>/local/<port>`)."""
    return Path(workdir).resolve() / "local" / str(port)


def taskmanager_process_mb(slots: int) -> int:
    return max(_TASKMANAGER_PROCESS_MB, 1024 + 64 * slots)


def _config(cluster: LocalCluster, rpc_port: int) -> dict[str, object]:
    return {**cluster_config(cluster.home, cluster.port, rpc_port, cluster.slots),
            "web.upload.dir": str(cluster.home / "uploads"), "parallelism.default": 1}


def cluster_config(home: Path, rest_port: int, rpc_port: int, slots: int) -> dict[str, object]:
    """The Flink options of a cluster on this machine living in `home`: every address the
    loopback one, every port but REST's and RPC's chosen by the system, memory sized for a
    shared machine, state under `home`."""
    return {
        "jobmanager.rpc.address": _HOST,
        "jobmanager.rpc.port": rpc_port,
        "jobmanager.bind-host": _HOST,
        "jobmanager.memory.process.size": f"{JOBMANAGER_PROCESS_MB}m",
        "taskmanager.host": _HOST,
        "taskmanager.bind-host": _HOST,
        "taskmanager.rpc.port": "0",
        "taskmanager.data.port": 0,
        "taskmanager.numberOfTaskSlots": slots,
        "taskmanager.memory.process.size": f"{taskmanager_process_mb(slots)}m",
        "taskmanager.memory.managed.fraction": 0.2,
        "blob.server.port": "0",
        "blob.storage.directory": str(home / "tmp" / "blob"),
        "io.tmp.dirs": str(home / "tmp"),
        "rest.port": rest_port,
        "rest.address": _HOST,
        "rest.bind-address": _HOST,
        "web.tmpdir": str(home / "tmp" / "web"),
        "execution.checkpointing.dir": (home / "checkpoints").as_uri(),
        "execution.checkpointing.savepoint-dir": (home / "savepoints").as_uri(),
    }


def yaml_scalar(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def _write_config(cluster: LocalCluster, configuration: dict[str, str]) -> None:
    """Write conf/config.yaml (standard YAML, flat keys) and conf/log4j.properties.

    Flink 2.x reads only config.yaml; Flink 1.19/1.20 read it too (with the standard YAML
    parser) as long as no legacy flink-conf.yaml lies beside it, which is never written here.
    The keys are those of 2.x; 1.20 knows them all (`execution.checkpointing.dir` and
    `execution.checkpointing.savepoint-dir` are its names, `state.*` its deprecated ones).
    """
    for directory in (
        cluster.conf_dir,
        cluster.log_dir,
        cluster.savepoint_dir,
        cluster.checkpoint_dir,
        cluster.home / "uploads",
        cluster.home / "tmp" / "web",
    ):
        directory.mkdir(parents=True, exist_ok=True)
    lines = ["# Written by flink-gitops for the embedded local cluster; rewritten on every start."]
    options = {**_config(cluster, free_port()), **configuration}
    lines += [f"{key}: {yaml_scalar(value)}" for key, value in options.items()]
    (cluster.conf_dir / "config.yaml").write_text("\n".join(lines) + "\n")
    (cluster.conf_dir / "log4j.properties").write_text(LOG4J_PROPERTIES)


def _configured_slots(cluster: LocalCluster) -> int | None:
    try:
        text = (cluster.conf_dir / "config.yaml").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "taskmanager.numberOfTaskSlots" and value.strip().isdigit():
            return int(value.strip())
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_HOST, 0))
        return int(sock.getsockname()[1])


def _ensure_port_free(cluster: LocalCluster) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((_HOST, cluster.port))
            return
        except OSError as exc:
            reason = exc.strerror or str(exc)
    overview = rest_overview(cluster.url)
    what = (
        f"a Flink {overview.get('flink-version', '')} REST API answers there, but no cluster "
        f"started from {cluster.home} runs"
        if overview is not None
        else "by another process"
    )
    raise LocalClusterError(
        f"cannot start a local Flink cluster on port {cluster.port}: the port is taken ({reason}), "
        f"{what}; stop that process or choose another port"
    )


# --- processes ----------------------------------------------------------------------------------


def _java_command(cluster: LocalCluster, role: str, memory_flags: list[str]) -> list[str]:
    return java_command(cluster.conf_dir, cluster.log_dir / f"{role}.log", _MAIN_CLASS[role],
                        memory_flags)


def java_command(conf_dir: Path, log_file: Path, main_class: str,
                 memory_flags: list[str]) -> list[str]:
    """The command of one Flink process: `main_class` with Flink's classpath and JVM flags, its
    configuration from `conf_dir`, logging to `log_file`."""
    log4j = (conf_dir / "log4j.properties").as_uri()
    java, jars = java_executable("java"), flink_classpath()
    return [
        java,
        *class_data.sharing_flags(java, jars, main_class.rsplit(".", 1)[-1]),
        *memory_flags,
        *JVM_MODULE_FLAGS,
        f"-Dlog.file={log_file}",
        f"-Dlog4j.configuration={log4j}",
        f"-Dlog4j.configurationFile={log4j}",
        "-classpath",
        os.pathsep.join(map(str, jars)),
        main_class,
        "--configDir",
        str(conf_dir),
    ]


def _launch_jobmanager(cluster: LocalCluster) -> None:
    _launch(cluster, JOBMANAGER, _java_command(cluster, JOBMANAGER, [_JOBMANAGER_HEAP]))


def _launch_taskmanager(cluster: LocalCluster) -> str:
    """Start the TaskManager; returns the resource id it registers with at the JobManager."""
    memory_flags, dynamic_properties = resource_params(cluster.conf_dir)
    resource_id = f"taskmanager-{cluster.port}-{secrets.token_hex(4)}"
    command = _java_command(cluster, TASKMANAGER, memory_flags) + [
        *dynamic_properties,
        "-D",
        f"taskmanager.resource-id={resource_id}",
    ]
    _launch(cluster, TASKMANAGER, command)
    return resource_id


def resource_params(conf_dir: Path, process: str = "TM") -> tuple[list[str], list[str]]:
    """The TaskManager's (`process` "JM": the JobManager's) JVM memory flags and `-D`
    properties, as BashJavaUtils computes them from the configuration (LocalClusterError with
    Flink's own reason when they cannot be, e.g. a memory size below Flink's minimum)."""
    classpath = [flink_home() / "bin" / "bash-java-utils.jar", *flink_classpath()]
    command = [
        java_executable("java"),
        "-classpath",
        os.pathsep.join(str(jar) for jar in classpath),
        _BASH_JAVA_UTILS_CLASS,
        f"GET_{process}_RESOURCE_PARAMS",
        "--configDir",
        str(conf_dir),
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LocalClusterError(
            f"could not compute the {process} memory settings: {exc}"
        ) from exc
    output = done.stdout + done.stderr
    results = [
        line.split(_BASH_JAVA_UTILS_PREFIX, 1)[1].strip()
        for line in output.splitlines()
        if _BASH_JAVA_UTILS_PREFIX in line
    ]
    if done.returncode != 0 or len(results) != 2:
        output_lines = output.strip().splitlines()
        causes = [line.split(": ", 1)[1] for line in output_lines
                  if line.startswith(("Caused by:", "Exception in thread")) and ": " in line]
        reason = causes[-1].strip() if causes else "see its output below"
        tail = "\n".join(output_lines[-20:])
        raise MemoryRefused(
            f"could not compute the {process} memory settings from {conf_dir}: "
            f"{reason} (BashJavaUtils exited {done.returncode}):\n{tail}", reason)
    return results[0].split(), results[1].split()


def memory_flags(options: Mapping[str, object], process: str,
                 cache_dir: Path | None) -> tuple[list[str], list[str]]:
    """`resource_params` of a cluster with these Flink options — only those that size its
    processes count (MEMORY_OPTIONS) — asked of BashJavaUtils once per such options and Flink
    distribution, and remembered in `cache_dir`/memory-flags/ (None: not remembered), a refusal
    too (MemoryRefused, in Flink's words)."""
    sizing = {key: "true" if value is True else "false" if value is False else str(value)
              for key, value in sorted(options.items()) if key.startswith(MEMORY_OPTIONS)}
    key = hashlib.sha256(json.dumps([process, str(flink_home()), sizing]).encode()) \
        .hexdigest()[:24]
    kept = Path(cache_dir) / "memory-flags" / f"{key}.json" if cache_dir is not None else None
    try:
        known = json.loads(kept.read_text()) if kept is not None else None
    except (OSError, ValueError):
        known = None
    if not isinstance(known, dict):
        with tempfile.TemporaryDirectory(prefix="flink-gitops-memory-") as conf:
            Path(conf, "config.yaml").write_text("".join(
                f"{name}: {yaml_scalar(value)}\n" for name, value in sizing.items()))
            try:
                jvm, properties = resource_params(Path(conf), process)
                known = {"jvm": jvm, "properties": properties}
            except MemoryRefused as error:
                known = {"refused": error.reason, "message": str(error)}
        if kept is not None:
            kept.parent.mkdir(parents=True, exist_ok=True)
            partial = kept.with_name(f".{key}.{os.getpid()}.tmp")
            partial.write_text(json.dumps(known))
            os.replace(partial, kept)
    if "refused" in known:
        raise MemoryRefused(known["message"], known["refused"])
    return list(known["jvm"]), list(known["properties"])


def _launch(cluster: LocalCluster, role: str, command: list[str]) -> None:
    pid = launch(cluster.home, cluster.conf_dir, cluster.log_dir / f"{role}.out", role, command)
    _pid_file(cluster, role).write_text(f"{pid}\n")


def launch(home: Path, conf_dir: Path, out_path: Path, role: str, command: list[str]) -> int:
    """Starts one Flink process in `home`, detached (a new session), its output to `out_path`,
    with the environment Flink's own scripts give it; returns its pid (kept to be reaped)."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    flink = flink_home()
    env = {
        **os.environ,  # what Flink's own scripts export to its processes
        "FLINK_CONF_DIR": str(conf_dir),
        "FLINK_BIN_DIR": str(flink / "bin"),
        "FLINK_LIB_DIR": str(flink / "lib"),
        "FLINK_OPT_DIR": str(flink / "opt"),
        "FLINK_PLUGINS_DIR": str(flink / "plugins"),
        "FLINK_LOG_DIR": str(out_path.parent),
    }
    with open(out_path, "wb") as out:
        try:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=home,
                env=env,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            raise LocalClusterError(f"could not start the local Flink {role}: {exc}") from exc
    _launched[process.pid] = process
    return process.pid


def _pid_file(cluster: LocalCluster, role: str) -> Path:
    return cluster.home / f"{role}.pid"


def _remove_pid_files(cluster: LocalCluster) -> None:
    for role in (JOBMANAGER, TASKMANAGER):
        _pid_file(cluster, role).unlink(missing_ok=True)


def _live_pids(cluster: LocalCluster) -> dict[str, int]:
    """The pids of this home's JobManager and TaskManager that are alive (and really are them)."""
    pids: dict[str, int] = {}
    for role in (JOBMANAGER, TASKMANAGER):
        try:
            pid = int(_pid_file(cluster, role).read_text().strip())
        except (OSError, ValueError):
            continue
        if alive(pid) and _is_role(pid, cluster, role):
            pids[role] = pid
    return pids


def alive(pid: int) -> bool:
    process = _launched.get(pid)
    if process is not None:
        if process.poll() is None:
            return True
        del _launched[pid]
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:
        state = stat.read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def launched_here(pid: int) -> bool:
    """This process started `pid` (its command line may still be Python's while exec runs)."""
    return pid in _launched


def _is_role(pid: int, cluster: LocalCluster, role: str) -> bool:
    """Guards against a recycled pid: the process must run `role`'s class from this home's conf."""
    if pid in _launched:  # launched here; its cmdline may still be empty while exec completes
        return True
    argv = processes.command_line(pid)
    if argv is None:   # no /proc on this OS, or not ours to read: the pid file is trusted
        return True
    args = [arg.decode(errors="replace") for arg in argv]
    return _MAIN_CLASS[role] in args and str(cluster.conf_dir) in args


def terminate(pid: int, timeout: float) -> None:
    """SIGTERM the process (group), then SIGKILL when it is still alive after `timeout` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        signal_process(pid, sig)
        deadline = time.monotonic() + (timeout if sig == signal.SIGTERM else 10)
        while time.monotonic() < deadline:
            if not alive(pid):
                return
            time.sleep(0.2)
    raise LocalClusterError(f"process {pid} survived SIGKILL")


def signal_process(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(pid) == pid:  # started by us as a session leader: signal the whole group
            os.killpg(pid, sig)
            return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _stop_processes(cluster: LocalCluster, timeout: float) -> bool:
    pids = _live_pids(cluster)
    for role in (TASKMANAGER, JOBMANAGER):
        if role in pids:
            signal_process(pids[role], signal.SIGTERM)
    for role in (TASKMANAGER, JOBMANAGER):
        if role in pids:
            terminate(pids[role], timeout)
    _remove_pid_files(cluster)
    return bool(pids)


@contextlib.contextmanager
def _locked(home: Path) -> Iterator[None]:
    """Serialise start/stop of one home across processes."""
    with open(home / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# --- readiness ----------------------------------------------------------------------------------


def rest_overview(url: str) -> dict[str, object] | None:
    try:
        response = requests.get(f"{url}/overview", timeout=2)
    except requests.RequestException:
        return None
    if response.status_code != 200:
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def registered_slots(url: str) -> dict[str, int] | None:
    """Slots per TaskManager id registered at the JobManager, or None when it does not answer."""
    try:
        response = requests.get(f"{url}/taskmanagers", timeout=2)
        taskmanagers = response.json()["taskmanagers"] if response.status_code == 200 else None
    except (requests.RequestException, ValueError, KeyError, TypeError):
        return None
    if not isinstance(taskmanagers, list):
        return None
    return {
        str(tm.get("id")): int(tm.get("slotsNumber", 0))
        for tm in taskmanagers
        if isinstance(tm, dict)
    }


def _await_ready(cluster: LocalCluster, timeout: float, taskmanager_id: str | None = None) -> None:
    """Wait until a TaskManager with slots is registered — the one just launched, when given
    (a dead TaskManager stays registered until its heartbeat times out). A TaskManager found
    running that ends meanwhile (one shutting down after a fatal error, writing its class-data
    archive) is started again; a JVM of this start that dies fails it early.
    """
    deadline = time.monotonic() + timeout
    while True:
        slots = registered_slots(cluster.url) or {}
        if taskmanager_id is not None and slots.get(taskmanager_id, 0) >= 1:
            return
        if taskmanager_id is None and any(count >= 1 for count in slots.values()):
            return
        pids = _live_pids(cluster)
        dead = [role for role in (JOBMANAGER, TASKMANAGER) if role not in pids]
        if dead == [TASKMANAGER] and taskmanager_id is None:   # the one found running ended
            taskmanager_id = _launch_taskmanager(cluster)       # (it was on its way out)
            continue
        if dead:
            raise LocalClusterError(
                f"the local Flink {' and '.join(dead)} on port {cluster.port} exited while starting"
                f"{_log_tails(cluster)}"
            )
        if time.monotonic() >= deadline:
            raise LocalClusterError(
                f"the local Flink cluster on port {cluster.port} was not ready after {timeout:g}s "
                f"(no TaskManager with slots registered at {cluster.url}/taskmanagers)"
                f"{_log_tails(cluster)}"
            )
        time.sleep(0.5)


def _log_tails(cluster: LocalCluster, lines: int = 15) -> str:
    """The errors and the last lines of the JobManager's and TaskManager's logs, for a message."""
    return log_tails(cluster.log_dir, (JOBMANAGER, TASKMANAGER), lines)


def log_tails(log_dir: Path, roles: tuple[str, ...], lines: int = 15) -> str:
    """The errors and the last lines of the logs of `roles` in `log_dir`, for a message."""
    parts = []
    for role in roles:
        for suffix in ("log", "out"):
            path = log_dir / f"{role}.{suffix}"
            try:
                text = path.read_text(errors="replace").rstrip()
            except OSError:
                continue
            if not text:
                continue
            all_lines = text.splitlines()
            errors = [
                line for line in all_lines if " ERROR " in line or line.startswith("Caused by:")
            ]
            if errors:
                parts.append(f"\n--- {path}: errors ---\n" + "\n".join(errors[:12]))
            parts.append(f"\n--- {path}: last {lines} lines ---\n" + "\n".join(all_lines[-lines:]))
    return "".join(parts)
