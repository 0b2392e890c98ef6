"""Runs one of the agent's own Java tools — the SQL runner's check, the state inspector — in a JVM
on the agent's machine, against the installed Flink jars (I/O: processes, files).

A tool is compiled once per machine and Flink version, into the user's cache (`tools_dir`), not
into each work dir: its sources are the agent's own. Such a JVM spends most of its life loading
Flink's classes. After a tool's first run they are kept in a class-data archive (CDS:
`-XX:ArchiveClassesAtExit`, then `-XX:SharedArchiveFile`) beside the tool's jar, named by a
digest of the Java and the classpath, which about halves each later start (benchmarks/RESULTS.md,
State check). The archive is made by a run with nothing on the classpath beyond the tool and
Flink (the classpath an archive was made with must begin every later one); an archive the JVM
cannot use, it ignores; classes a tool loads from a user's jar are never archived.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import uuid
from pathlib import Path

from agent.flink.build import build_jar
from agent.flink.local import JVM_MODULE_FLAGS, flink_classpath, java_executable

TOOLS_DIR_ENV = "FLINK_GITOPS_TOOLS_DIR"


def tools_dir() -> Path:
    """Where the agent's tools and their archives are kept: FLINK_GITOPS_TOOLS_DIR, else the
    user's cache (`$XDG_CACHE_HOME/flink-gitops/tools`, `~/.cache/…`)."""
    if os.environ.get(TOOLS_DIR_ENV):
        return Path(os.environ[TOOLS_DIR_ENV])
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "flink-gitops" / "tools"


def run_tool(source: Path, name: str, main_class: str, arguments: list[str],
             extra_classpath: list[str] = (), flags: list[str] = (), use: str = "",
             **run: object) -> subprocess.CompletedProcess:
    """Runs `main_class` of the tool built from `source` (into `tools_dir`) with `arguments`,
    Flink's jars and `extra_classpath` on its classpath and `flags` for its JVM; `run` are
    `subprocess.run`'s keywords. Runs of another `use` (which load other classes: a SQL job's
    graph, a DataStream job's) keep an archive of their own. Raises what building it
    (ArtifactError, JavaMissing, a missing Flink) and running it (OSError, TimeoutExpired)
    raise."""
    jar = build_jar(source, tools_dir(), name=name)
    java = java_executable("java")
    classpath = os.pathsep.join([str(jar), *map(str, flink_classpath())])
    digest = hashlib.sha256(f"{java}\0{classpath}".encode()).hexdigest()[:12]
    archive = jar.with_name(f"{jar.stem}-{use}{'-' if use else ''}{digest}.jsa")
    fresh = archive.with_name(f"{archive.name}.{uuid.uuid4().hex}")
    sharing = [f"-XX:SharedArchiveFile={archive}"] if archive.is_file() \
        else [] if extra_classpath else [f"-XX:ArchiveClassesAtExit={fresh}"]
    command = [java, *sharing, "-XX:TieredStopAtLevel=1", *flags, *JVM_MODULE_FLAGS,
               "-Dlog4j2.level=OFF", "-classpath", os.pathsep.join([classpath, *extra_classpath]),
               main_class, *arguments]
    try:
        done = subprocess.run(command, check=False, **run)
        if fresh.is_file() and done.returncode in (0, 1):   # (it ran to its end)
            os.replace(fresh, archive)
        return done
    finally:
        fresh.unlink(missing_ok=True)
