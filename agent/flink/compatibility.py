"""What a job would restore, found before it runs (I/O: javac, a JVM, filesystems via fsspec).

`StateInspector.java` (built like the SQL runner, against the installed Flink's jars) builds a
program's job graph the way Flink's client does — the program's `main` runs in a JVM on the
agent's machine and its `execute()` is intercepted, so nothing is submitted; a Python job's
through Flink's Python driver, which runs its script with the local interpreter — and reads a
savepoint's or checkpoint's `_metadata`. The metadata is copied from wherever the state lives
(any filesystem fsspec reads: a local path, `s3://`, `gs://`, `abfs://`) to a scratch directory
first: it holds the operator ids, their max parallelism and which hold state, and nothing else
is read. One JVM does both. `check_state` gives the verdict (`model.compatibility`); what cannot
be found out here raises StateUnchecked with the reason, never a guess.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import fsspec

from agent.errors import FlinkGitopsError, StateGone, StateUnchecked
from agent.flink.artifacts import JobProgram
from agent.flink.local import flink_home
from agent.flink.python import DRIVER_CLASS, last_traceback
from agent.flink.runner import RUNNER_CLASS
from agent.flink.tool import run_tool
from agent.logs import redact
from agent.model.compatibility import Compatibility, Operator, SavedState, compatibility

INSPECTOR_SOURCE = Path(__file__).resolve().parent / "state"
INSPECTOR_CLASS = "org.flinkgitops.state.StateInspector"
INSPECTOR_NAME = "flink-gitops-state-inspector"
INSPECT_TIMEOUT_S = 120              # a program's graph built and a _metadata read
INSPECT_HEAP = "1g"                  # the inspector JVM's heap (-Xmx)
MAX_METADATA_BYTES = 256 * 1024 * 1024   # a _metadata above this is not copied (unchecked)
_PREFIX = "FLINK_GITOPS_STATE "
_USES = {RUNNER_CLASS: "sql", DRIVER_CLASS: "python"}   # programs loading other classes


def check_state(program: JobProgram, parallelism: int, options: dict[str, str],
                location: str, allow_non_restored_state: bool) -> Compatibility:
    """Whether the job of `program` (at `parallelism`, with its Flink `options`) can restore the
    savepoint or checkpoint at `location`, operator by operator (one JVM reads both)."""
    with _metadata_copy(location) as scratch:
        found = _inspect(["--savepoint", scratch, *_graph(program, parallelism, options)],
                         location, _USES.get(program.entry_class, "jar"))
    operators = [Operator(f["id"], f.get("uidHash"), f.get("uid"), f.get("name") or f["id"],
                          int(f.get("maxParallelism", -1)))
                 for f in found if f["kind"] == "operator"]
    states = [SavedState(f["id"], f.get("uid"), f.get("name"), int(f["maxParallelism"]),
                         bool(f["hasState"])) for f in found if f["kind"] == "state"]
    return compatibility(operators, states, location, allow_non_restored_state)


def _graph(program: JobProgram, parallelism: int, options: dict[str, str]) -> list[str]:
    command = ["--graph", str(program.jar), "--parallelism", str(parallelism)]
    if program.entry_class:
        command += ["--entry", program.entry_class]
    for key, value in {**program.configuration, **options}.items():
        command += ["--option", f"{key}={value}"]
    return [*command, "--", *program.args]


@contextmanager
def _metadata_copy(location: str) -> Iterator[str]:
    """A scratch directory holding a copy of the `_metadata` at `location`."""
    with tempfile.TemporaryDirectory(prefix="flink-gitops-metadata-") as scratch:
        try:
            fs, path = fsspec.core.url_to_fs(location)
            metadata = f"{path.rstrip('/')}/_metadata"
            size = fs.size(metadata)
            if size is not None and size > MAX_METADATA_BYTES:
                raise StateUnchecked(f"the _metadata of {location} has {size:,} bytes, over the "
                                     f"limit of {MAX_METADATA_BYTES:,}")
            fs.get_file(metadata, str(Path(scratch) / "_metadata"))
        except FileNotFoundError:
            raise StateGone(f"the state at {location} is not there (no _metadata)") from None
        except (ImportError, ValueError, OSError) as error:
            raise StateUnchecked(f"the state at {location} cannot be read from the agent's "
                                 f"machine: {getattr(error, 'strerror', None) or error}") from None
        yield scratch


def _inspect(arguments: list[str], location: str, use: str) -> list[dict]:
    """The inspector's result lines. The program's `main` runs with nothing of the agent's
    environment (no variable of it but where Flink's Python driver is, a scratch home, working
    and temporary directory), at most INSPECT_HEAP of heap and INSPECT_TIMEOUT_S; what it says
    is redacted."""
    with tempfile.TemporaryDirectory(prefix="flink-gitops-inspect-") as home:
        try:
            environment = {"PATH": os.environ.get("PATH", ""), "HOME": home, "LANG": "C.UTF-8",
                           "FLINK_OPT_DIR": str(flink_home() / "opt")}   # (PythonDriver's)
            done = run_tool(INSPECTOR_SOURCE, INSPECTOR_NAME, INSPECTOR_CLASS, arguments, flags=[f"-Xmx{INSPECT_HEAP}", f"-Djava.io.tmpdir={home}"],
                            use=use, capture_output=True, text=True, cwd=home,
                            env=environment, timeout=INSPECT_TIMEOUT_S, stdin=subprocess.DEVNULL)
        except FlinkGitopsError as error:
            raise StateUnchecked(f"the state inspector cannot run here: {error}") from None
        except subprocess.TimeoutExpired:
            raise StateUnchecked(f"the new job's graph was not built in {INSPECT_TIMEOUT_S} s "
                                 "(its main did not call execute?)") from None
        except OSError as error:
            raise StateUnchecked(f"the state inspector did not run: {error}") from None
    found = [json.loads(line[len(_PREFIX):]) for line in done.stdout.splitlines()
             if line.startswith(_PREFIX)]
    errors = [f for f in found if f.get("kind") == "error"]
    if errors or done.returncode != 0:
        error = errors[0] if errors else {
            "stage": "graph", "message": (done.stderr.strip().splitlines() or ["no output"])[-1]}
        what = (f"the state at {location} could not be read" if error["stage"] == "state"
                else "the new job's graph could not be built here")
        script = last_traceback(done.stdout)   # (a Python job's, which Flink does not quote)
        raise StateUnchecked(redact(f"{what}: {_first_lines(error['message'])}"
                                    + (f"; the Python script: {script}" if script else "")))
    return found


def _first_lines(message: str, lines: int = 3) -> str:
    """An exception chain's first lines (the program's own error is the first)."""
    kept = message.splitlines()
    return "; ".join(kept[:lines]) + (" …" if len(kept) > lines else "")
