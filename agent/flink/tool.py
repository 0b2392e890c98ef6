"""Runs one of the agent's own Java tools — the SQL runner's check, the state inspector — in a JVM
on the agent's machine, against the installed Flink jars (I/O: processes, files).

A tool is compiled once per machine and Flink version, into the machine's tools dir
(`class_data.tools_dir`), not into each work dir: its sources are the agent's own. Such a JVM
spends most of its life loading Flink's classes, so it runs with a class-data archive of each
use (`class_data`), which about halves each later start (benchmarks/RESULTS.md, State check).
The archive is written by a run with nothing on the classpath beyond the tool and Flink;
classes a tool loads from a user's jar are never archived.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from agent.flink.build import build_jar
from agent.flink.class_data import sharing_flags, tools_dir
from agent.flink.local import JVM_MODULE_FLAGS, flink_classpath, java_executable


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
    classpath = [jar, *flink_classpath()]
    sharing = sharing_flags(java, classpath, f"{jar.stem}-{use}" if use else jar.stem,
                            write=not extra_classpath)
    command = [java, *sharing, "-XX:TieredStopAtLevel=1", *flags, *JVM_MODULE_FLAGS,
               "-Dlog4j2.level=OFF", "-classpath",
               os.pathsep.join([*map(str, classpath), *extra_classpath]), main_class, *arguments]
    return subprocess.run(command, check=False, **run)
