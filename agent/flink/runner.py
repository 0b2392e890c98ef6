"""The SQL runner: the project's Java program that runs a SQL script as one Flink job, and checks
scripts with Flink's own parser and planner (I/O: javac, a JVM, files).

`runner_jar` builds `agent/flink/sql/SqlRunner.java` against the Flink jars (cached by content,
like every job jar; the Docker image builds it at image build time). A SQLSCRIPT deployment's job
is that jar, submitted with `runner_args`: the script travels as one program argument of the run
request (`programArgsList`, a JSON list, so no shell quoting; Flink's REST body limit,
`rest.server.max-content-length`, is 100 MiB).

`check_scripts` plans any number of scripts in one JVM (`SqlRunner --check`, an EXPLAIN of each
script's statement set) and caches each verdict by the script's digest, so an unchanged script is
never checked twice. Extra jars the check needs (connectors, UDFs the cluster has in its lib/) can
be named in FLINK_GITOPS_SQL_CLASSPATH (paths separated by the OS path separator).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from agent.errors import FlinkGitopsError, SqlCheckUnavailable
from agent.flink.build import build_jar
from agent.flink.tool import run_tool

RUNNER_SOURCE = Path(__file__).resolve().parent / "sql"
RUNNER_CLASS = "org.flinkgitops.sql.SqlRunner"
RUNNER_NAME = "flink-gitops-sql-runner"
EXTRA_CLASSPATH_ENV = "FLINK_GITOPS_SQL_CLASSPATH"
CHECK_TIMEOUT_S = 300
_RESULT_PREFIX = "FLINK_GITOPS_SQL "


@dataclass(frozen=True)
class ScriptVerdict:
    """Flink's answer to one script: accepted, or refused at the statement starting at
    `line`/`column` of the script (0/0: when the statement set as a whole was planned) with
    Flink's `message`, whose positions are relative to that statement."""

    ok: bool
    line: int = 0
    column: int = 0
    message: str = ""


def runner_jar(cache_dir: Path) -> Path:
    """The runner's jar, built from its source against the installed Flink jars once."""
    return build_jar(RUNNER_SOURCE, cache_dir, name=RUNNER_NAME)


def runner_args(name: str, script: str) -> list[str]:
    """The program arguments that run `script` as the job named `name` (unless the script or
    flinkConfiguration sets pipeline.name)."""
    return ["--name", name, "--script", script]


def check_scripts(scripts: list[str], cache_dir: Path,
                  libraries: list[list[Path]] | None = None) -> list[ScriptVerdict]:
    """Flink's verdict on each script, in order, each with its `libraries` (its deployment's
    additionalDependencies) on the classpath; scripts not seen before are planned together in
    one JVM per set of libraries. Raises SqlCheckUnavailable when the check cannot run here (no
    Java, no Flink jars, a JVM that fails), saying why."""
    try:
        jar = runner_jar(cache_dir)
    except FlinkGitopsError as error:
        raise SqlCheckUnavailable(str(error)) from None
    extra = [p for p in os.environ.get(EXTRA_CLASSPATH_ENV, "").split(os.pathsep) if p]
    libraries = [[str(path) for path in own] for own in libraries or [[] for _ in scripts]]
    keys = [hashlib.sha256("\0".join([jar.name, *extra, *own, script]).encode())
            .hexdigest()[:24] for own, script in zip(libraries, scripts, strict=True)]
    verdicts_dir = Path(cache_dir) / "sql-checks"
    known = {key: _cached(verdicts_dir / f"{key}.json") for key in set(keys)}
    groups: dict[tuple[str, ...], dict[str, str]] = {}
    for key, own, script in zip(keys, libraries, scripts, strict=True):
        if known[key] is None:
            groups.setdefault(tuple(own), {})[key] = script
    for own, group in sorted(groups.items()):
        todo = sorted(group.items())
        fresh = _run_check(extra + list(own), [script for _, script in todo])
        verdicts_dir.mkdir(parents=True, exist_ok=True)
        for (key, _), verdict in zip(todo, fresh, strict=True):
            known[key] = verdict
            if not missing_class(verdict):   # a missing jar may be added: check again then
                partial = verdicts_dir / f".{key}.{os.getpid()}.tmp"
                partial.write_text(json.dumps(asdict(verdict)))
                os.replace(partial, verdicts_dir / f"{key}.json")
    return [known[key] for key in keys]


def missing_class(verdict: ScriptVerdict) -> bool:
    """Whether Flink refused the script only because a connector or class is not on this
    machine's classpath (the cluster's may well have it): not a verdict on the script."""
    return not verdict.ok and ("Could not find any factory for identifier" in verdict.message
                               or "ClassNotFoundException" in verdict.message)


def _cached(path: Path) -> ScriptVerdict | None:
    try:
        return ScriptVerdict(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _run_check(libraries: list[str], scripts: list[str]) -> list[ScriptVerdict]:
    with tempfile.TemporaryDirectory(prefix="flink-gitops-sql-") as scratch:
        files = []
        for index, script in enumerate(scripts):
            file = Path(scratch) / f"{index}.sql"
            file.write_text(script, encoding="utf-8")
            files.append(str(file))
        try:
            done = run_tool(RUNNER_SOURCE, RUNNER_NAME, RUNNER_CLASS, ["--check", *files],
                            extra_classpath=libraries,
                            capture_output=True, text=True, timeout=CHECK_TIMEOUT_S)
        except FlinkGitopsError as error:
            raise SqlCheckUnavailable(str(error)) from None
        except (OSError, subprocess.TimeoutExpired) as error:
            raise SqlCheckUnavailable(f"the SQL check's JVM did not run: {error}") from None
    found: dict[int, ScriptVerdict] = {}
    for line in done.stdout.splitlines():
        if line.startswith(_RESULT_PREFIX):
            answer = json.loads(line[len(_RESULT_PREFIX):])
            index = answer.pop("index")
            found[index] = ScriptVerdict(**answer)
    if len(found) != len(scripts):
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
        raise SqlCheckUnavailable(f"the SQL check's JVM ended (exit {done.returncode}) before "
                                  f"it checked every script: {tail}")
    return [found[index] for index in range(len(scripts))]
