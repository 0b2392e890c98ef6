"""What a job would restore, found before it runs (I/O: javac, a JVM, filesystems via fsspec).

`StateInspector.java` (built like the SQL runner, against the installed Flink's jars) builds a
program's job graph the way Flink's client does — the program's `main` runs in a JVM on the
agent's machine and its `execute()` is intercepted, so nothing is submitted — and reads a
savepoint's or checkpoint's `_metadata`. The metadata is copied from wherever the state lives
(any filesystem fsspec reads: a local path, `s3://`, `gs://`, `abfs://`) to a scratch directory
first: it holds the operator ids, their max parallelism and which hold state, and nothing else
is read. `check_state` gives the verdict (`model.compatibility`); what cannot be found out here
raises StateUnchecked with the reason, never a guess.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

import fsspec

from agent.errors import FlinkGitopsError, StateUnchecked
from agent.flink.artifacts import JobProgram
from agent.flink.build import build_jar
from agent.flink.local import JVM_MODULE_FLAGS, flink_classpath, java_executable
from agent.model.compatibility import Compatibility, Operator, SavedState, compatibility

INSPECTOR_SOURCE = Path(__file__).resolve().parent / "state"
INSPECTOR_CLASS = "org.flinkgitops.state.StateInspector"
INSPECTOR_NAME = "flink-gitops-state-inspector"
INSPECT_TIMEOUT_S = 120              # a program's graph built, or a _metadata read
MAX_METADATA_BYTES = 256 * 1024 * 1024   # a _metadata above this is not copied (unchecked)
_PREFIX = "FLINK_GITOPS_STATE "


def check_state(program: JobProgram, parallelism: int, options: dict[str, str],
                location: str, allow_non_restored_state: bool,
                cache_dir: Path) -> Compatibility:
    """Whether the job of `program` (at `parallelism`, with its Flink `options`) can restore the
    savepoint or checkpoint at `location`, operator by operator."""
    return compatibility(job_operators(program, parallelism, options, cache_dir),
                         saved_states(location, cache_dir), location, allow_non_restored_state)


def job_operators(program: JobProgram, parallelism: int, options: dict[str, str],
                  cache_dir: Path) -> list[Operator]:
    """The operators of the program's job graph."""
    command = ["--graph", str(program.jar), "--parallelism", str(parallelism)]
    if program.entry_class:
        command += ["--entry", program.entry_class]
    for key, value in {**program.configuration, **options}.items():
        command += ["--option", f"{key}={value}"]
    found = _inspect([*command, "--", *program.args], cache_dir, "its job graph")
    return [Operator(f["id"], f.get("uidHash"), f.get("uid"), f.get("name") or f["id"],
                     int(f.get("maxParallelism", -1))) for f in found]


def saved_states(location: str, cache_dir: Path) -> list[SavedState]:
    """The operator states the `_metadata` at `location` lists."""
    with tempfile.TemporaryDirectory(prefix="flink-gitops-metadata-") as scratch:
        try:
            fs, path = fsspec.core.url_to_fs(location)
            metadata = f"{path.rstrip('/')}/_metadata"
            size = fs.size(metadata)
            if size is not None and size > MAX_METADATA_BYTES:
                raise StateUnchecked(f"the _metadata of {location} has {size:,} bytes, over the "
                                     f"limit of {MAX_METADATA_BYTES:,}")
            fs.get_file(metadata, str(Path(scratch) / "_metadata"))
        except (ImportError, ValueError, OSError) as error:
            raise StateUnchecked(f"the state at {location} cannot be read from the agent's "
                                 f"machine: {getattr(error, 'strerror', None) or error}") from None
        found = _inspect(["--savepoint", scratch], cache_dir, f"the state at {location}")
    return [SavedState(f["id"], f.get("uid"), f.get("name"), int(f["maxParallelism"]),
                       bool(f["hasState"])) for f in found]


def _inspect(arguments: list[str], cache_dir: Path, what: str) -> list[dict]:
    try:
        jar = build_jar(INSPECTOR_SOURCE, cache_dir, name=INSPECTOR_NAME)
        java = java_executable("java")
        classpath = os.pathsep.join([str(jar), *map(str, flink_classpath())])
    except FlinkGitopsError as error:
        raise StateUnchecked(f"{what} cannot be read here: {error}") from None
    command = [java, "-XX:TieredStopAtLevel=1", *JVM_MODULE_FLAGS, "-Dlog4j2.level=OFF",
               "-classpath", classpath, INSPECTOR_CLASS, *arguments]
    try:
        done = subprocess.run(command, capture_output=True, text=True,
                              timeout=INSPECT_TIMEOUT_S, check=False, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise StateUnchecked(f"{what} could not be read: {error}") from None
    found = [json.loads(line[len(_PREFIX):]) for line in done.stdout.splitlines()
             if line.startswith(_PREFIX)]
    errors = [f["message"] for f in found if f.get("kind") == "error"]
    if errors or done.returncode != 0:
        reason = errors[0] if errors else (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise StateUnchecked(f"{what} could not be read: {reason}")
    return found
