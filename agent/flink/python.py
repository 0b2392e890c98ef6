"""Python (PyFlink) jobs as Flink runs them from its REST API (I/O: files).

A PYTHON deployment's job is Flink's own Python driver (`PythonDriver`, in the `flink-python`
jar of the cluster's Flink version) run through `POST /jars/:id/run`: on the JobManager it
starts the Python interpreter named by `python.client.executable` on the script, which builds
the job; the TaskManagers run the job's Python functions with `python.executable`. So the
cluster's machines need Python with PyFlink of the cluster's version (`apache-flink`), and the
JobManager must read the script:

- on the `local` target the cluster runs on the agent's machine: a script kept in the spec repo
  is written to `<workdir>/python/<digest>/<name>.py` and run with `-py`, and both executables
  are `local_python()`: FLINK_GITOPS_PYTHON, else the agent's own Python (which has PyFlink with
  the `python` extra);
- elsewhere `pythonScript` is a URI the JobManager reads through its Flink filesystems (`s3://`,
  `hdfs://`, `file://` on a shared volume): it is shipped as `python.files` and run as a module
  (`-pym`); the executables are the cluster's, or set in `flinkConfiguration`.

Job ids, savepoints and restores are those of any job: the driver honours the run request's
`jobId` and `savepointPath`. A script that fails makes Flink answer only "Python process exits
with code: 1"; its traceback goes to the JobManager's output, which on the local target the agent
reads (`DriverOutput`) to say where the script failed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import posixpath
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

DRIVER_CLASS = "org.apache.flink.client.python.PythonDriver"
CLIENT_EXECUTABLE = "python.client.executable"
WORKER_EXECUTABLE = "python.executable"
PYTHON_FILES = "python.files"
PYTHON_ENV = "FLINK_GITOPS_PYTHON"   # the local target's Python interpreter (with PyFlink)
PROBE_TIMEOUT_S = 30                 # an interpreter asked which modules it has
NO_PYFLINK = ("Python jobs on the local target need PyFlink: pip install "
              "'flink-gitops[local,python]', or name a Python that has it in "
              f"{PYTHON_ENV}")
REPO_SCRIPT_LOCAL_ONLY = ("a script kept in the spec repository runs on the local target only; "
                          "for this target name a URI its JobManager reads (s3://…, hdfs://…, "
                          "file:// on a shared volume)")


@dataclass(frozen=True)
class PythonSite:
    """Where a target runs Python jobs: on this machine (the local target: its scripts are
    written to `staging`, its interpreter is the agent's), or on a cluster of `flink_version`
    elsewhere (its driver jar from Maven)."""

    local: bool
    staging: Path
    flink_version: str | None = None


def local_python() -> str:
    """The Python interpreter the local target runs Python jobs with (it needs PyFlink)."""
    return os.environ.get(PYTHON_ENV) or sys.executable


def pyflink_installed(python: str) -> bool:
    """Whether `python` has PyFlink's Python API (`apache-flink`, the `python` extra), not
    only Flink's jars (`apache-flink-libraries`)."""
    return not missing_modules(python, ("pyflink.datastream",))


_FOUND: dict[str, set[str]] = {}   # interpreter -> modules it was found to have


def missing_modules(python: str, modules: tuple[str, ...]) -> tuple[str, ...]:
    """Those of `modules` that `python` cannot import (found by their finders, no module code
    run but a dotted name's parents'). A module found is remembered; one missing is asked for
    again next time (it may have been installed since)."""
    found = _FOUND.setdefault(python, set())
    unknown = tuple(module for module in modules if module not in found)
    if not unknown:
        return ()
    absent = _absent(python, unknown)
    found.update(module for module in unknown if module not in absent)
    return absent


def _absent(python: str, modules: tuple[str, ...]) -> tuple[str, ...]:
    if python == sys.executable:
        return tuple(m for m in modules if not _findable(m))
    probe = ("import importlib.util, sys\n"
             "def found(m):\n"
             "    try:\n"
             "        return importlib.util.find_spec(m) is not None\n"
             "    except (ImportError, ValueError):\n"
             "        return False\n"
             "print('\\n'.join(m for m in sys.argv[1:] if not found(m)))\n")
    try:
        done = subprocess.run([python, "-c", probe, *modules], capture_output=True, text=True,
                              timeout=PROBE_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return modules
    return modules if done.returncode else tuple(done.stdout.split())


def _findable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def driver_jar_uri(site: PythonSite, local_home: Path | None) -> str:
    """Where the `flink-python` jar of the site's Flink comes from: the local distribution's
    `opt/` on this machine, else Maven (`maven://org.apache.flink:flink-python:VERSION`)."""
    if site.local and local_home is not None:
        found = sorted((local_home / "opt").glob("flink-python*.jar"))
        if found:
            return found[-1].as_uri()
    return f"maven://org.apache.flink:flink-python:{site.flink_version}"


def staged_script(content: bytes, name: str, staging: Path) -> Path:
    """The script written under `staging`, in a folder named by its digest (written once)."""
    folder = staging / hashlib.sha256(content).hexdigest()[:16]
    script = folder / posixpath.basename(name)
    if not script.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f".{script.name}.tmp"
        partial.write_bytes(content)
        partial.replace(script)
    return script


def driver_args(script: str, staged: bool, local: bool,
                args: list[str]) -> tuple[list[str], dict[str, str]]:
    """The driver's program arguments for `script` (a path on this machine when `staged`, else a
    URI the JobManager reads), and the Flink options they need (on a `local` target, the agent's
    own Python as the interpreter)."""
    python = local_python()
    options = {CLIENT_EXECUTABLE: python, WORKER_EXECUTABLE: python} if local else {}
    if staged:
        return ["-py", script, *args], options
    module = posixpath.basename(script).removesuffix(".py")
    return ["-pyfs", script, "-pym", module, *args], options | {PYTHON_FILES: script}


TRACEBACK = "Traceback (most recent call last):"
MAX_OUTPUT_READ = 64 * 1024   # of the JobManager's output, after a failed run request


@dataclass
class DriverOutput:
    """The local JobManager's output file (`jobmanager.out`), where the Python driver's
    traceback lands: `mark` before a run request, `failure` after it failed (a deployment's own
    cluster writes a new one at every start)."""

    path: Path
    offset: int = 0

    def mark(self) -> None:
        try:
            self.offset = self.path.stat().st_size
        except OSError:
            self.offset = 0

    def failure(self) -> str | None:
        """The script's failure written since `mark`: the last frame and the exception, e.g.
        'File "/…/counts.py", line 3, in <module> | RuntimeError: no job today', or None."""
        try:
            size = self.path.stat().st_size
            offset = self.offset if size >= self.offset else 0   # (shorter: written anew, by a
            with self.path.open("rb") as output:                  # cluster started since)
                output.seek(max(offset, size - MAX_OUTPUT_READ))
                text = output.read(MAX_OUTPUT_READ).decode("utf-8", errors="replace")
        except OSError:
            return None
        return last_traceback(text)


def last_traceback(text: str) -> str | None:
    """The last Python traceback of `text` as its last frame and its exception, e.g.
    'File "/…/counts.py", line 3, in <module> | RuntimeError: no job today', or None."""
    at = text.rfind(TRACEBACK)
    if at < 0:
        return None
    lines = [line for line in text[at:].splitlines()[1:] if line.strip()]
    frames = [line.strip() for line in lines if line.startswith("  File ")]
    ending = next((line.strip() for line in lines if not line.startswith(" ")), None)
    return " | ".join(filter(None, (frames[-1] if frames else None, ending))) or None
