"""Class-data archives (CDS) for the JVMs the agent starts on its machine — Flink's JobManagers and
TaskManagers, and the agent's own Java tools — kept in the machine's tools dir (I/O: files, a
scan of /proc and one short `java -version` run when a new archive is taken into use).

Such a JVM spends seconds loading Flink's classes; with an archive of them a cluster starts about
a third faster (benchmarks/RESULTS.md, Issue 23). A kind of JVM — its main class or tool, its
Java and its classpath, named by a digest of all three, the jars' sizes and times included — has
one archive. While it has none, each JVM of that kind writes the classes it loaded to a fresh
file of its own when it exits (`-XX:ArchiveClassesAtExit`; a few seconds more at its end). The
next start of that kind takes such a file into use once no live process writes it any more and
a JVM maps it with its checksums verified (`-Xshare:on -XX:+VerifySharedSpaces`): a file cut
short by a killed JVM would crash a JVM that maps it (SIGBUS), so it is removed instead, as are
the files of JVMs that ended after the kind had its archive. The JVM ignores an archive it cannot
use (another Java, a changed classpath); classes loaded from a user's jar are never archived.
An archive no start has used for `UNUSED_DAYS` (the kind of a Flink or Java since replaced, an
agent's tool since rebuilt) is removed, as is a fresh file no live JVM writes that old.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import time
import uuid
from pathlib import Path

from agent.flink import processes

TOOLS_DIR_ENV = "FLINK_GITOPS_TOOLS_DIR"
CHECK_TIMEOUT_S = 30   # the `java -version` that checks a fresh archive before it is used
UNUSED_DAYS = 30       # an archive no JVM start has used for this long is removed


def tools_dir() -> Path:
    """The machine's cache of the agent's JVM artefacts — its tools' jars (`tool`) and the
    class-data archives (`archives/`): FLINK_GITOPS_TOOLS_DIR, else the user's cache
    (`$XDG_CACHE_HOME/flink-gitops/tools`, `~/.cache/…`)."""
    if os.environ.get(TOOLS_DIR_ENV):
        return Path(os.environ[TOOLS_DIR_ENV])
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "flink-gitops" / "tools"


def sharing_flags(java: str, classpath: list[Path], kind: str, *, write: bool = True) -> list[str]:
    """The JVM flags of a JVM of `kind` running `java` with `classpath` (which must begin its
    real classpath): the kind's archive when it has one, else (with `write`) a fresh file for
    this JVM to write its classes to at its exit."""
    archive = _archive(java, classpath, kind)
    _settle_fresh(archive, java, classpath)
    with contextlib.suppress(FileNotFoundError):
        os.utime(archive)   # its last use, which keeps it
    _remove_unused(archive.parent)
    if archive.is_file():
        return [f"-XX:SharedArchiveFile={archive}"]
    if not write:
        return []
    archive.parent.mkdir(parents=True, exist_ok=True)
    return [f"-XX:ArchiveClassesAtExit={archive}.{uuid.uuid4().hex}.fresh"]


def _archive(java: str, classpath: list[Path], kind: str) -> Path:
    files = [Path(java).resolve(), *classpath]
    stamps = "\0".join(f"{f}:{_stamp(f)}" for f in files)
    digest = hashlib.sha256(stamps.encode()).hexdigest()[:16]
    return tools_dir() / "archives" / f"{kind}-{digest}.jsa"


def _stamp(path: Path) -> str:
    try:
        found = path.stat()
    except OSError:
        return "-"
    return f"{found.st_size}:{found.st_mtime_ns}"


def _settle_fresh(archive: Path, java: str, classpath: list[Path]) -> None:
    """The fresh files of `archive` whose JVMs have ended: the first sound one becomes the archive
    when there is none yet; the others are removed."""
    fresh = sorted(archive.parent.glob(f"{archive.name}.*.fresh"))
    if not fresh:
        return
    writing = _written_by_live_processes()
    for candidate in fresh:
        if str(candidate) in writing:
            continue
        if not archive.is_file() and _maps(candidate, java, classpath):
            with contextlib.suppress(FileNotFoundError):   # (another start settled it)
                os.replace(candidate, archive)
        else:
            candidate.unlink(missing_ok=True)


def _remove_unused(archives: Path) -> None:
    """The archives no start has used for UNUSED_DAYS, and the fresh files that old no live JVM
    writes, removed (a JVM that maps a removed archive keeps its mapping)."""
    oldest = time.time() - UNUSED_DAYS * 86400
    old = [path for path in archives.glob("*.jsa*") if _modified(path) < oldest]
    writing = _written_by_live_processes() if old else set()
    for path in old:
        if str(path) not in writing:
            path.unlink(missing_ok=True)


def _modified(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return float("inf")   # (gone meanwhile)


def _written_by_live_processes() -> set[str]:
    """The fresh archive files named on a live process's command line (its JVM writes it at its
    exit, or is writing it now)."""
    flag = b"-XX:ArchiveClassesAtExit="
    return {argument[len(flag):].decode(errors="replace")
            for _, arguments in processes.command_lines()
            for argument in arguments if argument.startswith(flag)}


def _maps(candidate: Path, java: str, classpath: list[Path]) -> bool:
    """Whether a JVM maps `candidate` with every region's checksum right (a crash counts as no)."""
    command = [java, "-Xshare:on", "-XX:+VerifySharedSpaces", f"-XX:SharedArchiveFile={candidate}",
               "-XX:ErrorFile=/dev/null", "-XX:-CreateCoredumpOnCrash",
               "-classpath", os.pathsep.join(map(str, classpath)), "-version"]
    try:
        return subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              timeout=CHECK_TIMEOUT_S, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False
