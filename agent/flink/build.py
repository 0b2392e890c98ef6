"""Builds a job jar from Java sources with `javac` against Flink's jars (I/O: processes, files).

Example and test jobs of this project are plain Java sources; `build_jar` compiles them against
the jars of the installed Flink distribution (see `agent.flink.local`) and packs the classes into
a jar that `POST /jars/upload` accepts. Jars are cached by content: the cache key is a hash of the
sources and the Flink version, so an unchanged job is never compiled twice and the same sources
always give the same jar (entries are sorted and carry a fixed timestamp).
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import tempfile
import zipfile
from pathlib import Path

from agent.errors import ArtifactError
from agent.flink.local import flink_classpath, flink_version, java_executable

JAVA_RELEASE = "17"
_FIXED_TIMESTAMP = (1980, 1, 1, 0, 0, 0)
_PACKAGE = re.compile(r"^\s*package\s+([\w.]+)\s*;", re.MULTILINE)
_MAIN_METHOD = re.compile(
    r"public\s+static\s+void\s+main\s*\(\s*(final\s+)?String\s*(\[\]\s*\w+|\.\.\.\s*\w+|\w+\s*\[\])"
)
_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def build_jar(source_dir: Path, cache_dir: Path, name: str | None = None) -> Path:
    """Compile every `.java` under `source_dir` into `cache_dir/<name>-<sha12>.jar`, or reuse it.

    `name` defaults to the source directory's name (its parent's when it is called `src`). The
    jar's manifest names the `Main-Class` when exactly one source declares a `main` method.
    Raises ArtifactError (with javac's own output) when the sources do not compile, JavaMissing
    when there is no `javac`.
    """
    source_dir = Path(source_dir).resolve()
    if not source_dir.is_dir():
        raise ArtifactError(f"cannot build a jar: source directory {source_dir} does not exist")
    sources = sorted(path for path in source_dir.rglob("*.java") if path.is_file())
    if not sources:
        raise ArtifactError(f"cannot build a jar: no .java files under {source_dir}")
    version = flink_version()
    jar_name = _jar_name(name, source_dir)
    jar = Path(cache_dir) / f"{jar_name}-{_source_digest(source_dir, sources, version)}.jar"
    if jar.is_file():
        return jar

    javac = java_executable("javac")
    jar.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"{jar_name}-build-") as build:
        classes = Path(build) / "classes"
        classes.mkdir()
        argfile = Path(build) / "sources.txt"
        argfile.write_text("\n".join(_quote_arg(str(path)) for path in sources) + "\n")
        command = [
            javac,
            "--release",
            JAVA_RELEASE,
            "-encoding",
            "UTF-8",
            "-nowarn",
            "-classpath",
            os.pathsep.join(str(path) for path in flink_classpath()),
            "-d",
            str(classes),
            f"@{argfile}",
        ]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ArtifactError(f"cannot build {jar.name}: javac did not run: {exc}") from exc
        if done.returncode != 0:
            output = (done.stdout + done.stderr).strip()
            raise ArtifactError(
                f"javac could not compile {source_dir} (exit {done.returncode}):\n{output}"
            )
        partial = jar.with_name(f".{jar.name}.{os.getpid()}.tmp")
        try:
            _write_jar(partial, classes, _main_class(sources))
            os.replace(partial, jar)
        finally:
            partial.unlink(missing_ok=True)
    return jar


def _jar_name(name: str | None, source_dir: Path) -> str:
    if not name:
        name = source_dir.parent.name if source_dir.name == "src" else source_dir.name
    cleaned = _NAME.sub("-", name).strip("-.")
    if not cleaned:
        raise ArtifactError(f"cannot build a jar: {name!r} is not usable as a jar name")
    return cleaned


def _source_digest(source_dir: Path, sources: list[Path], version: str) -> str:
    digest = hashlib.sha256()
    digest.update(f"flink {version}\njava --release {JAVA_RELEASE}\n".encode())
    for path in sources:
        digest.update(path.relative_to(source_dir).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def _main_class(sources: list[Path]) -> str | None:
    """The one class with a `main` method, if there is exactly one (source file name = class)."""
    mains = []
    for path in sources:
        text = path.read_text(encoding="utf-8", errors="replace")
        if _MAIN_METHOD.search(text):
            package = _PACKAGE.search(text)
            prefix = f"{package.group(1)}." if package else ""
            mains.append(prefix + path.stem)
    return mains[0] if len(mains) == 1 else None


def _quote_arg(arg: str) -> str:
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _write_jar(jar: Path, classes: Path, main_class: str | None) -> None:
    manifest = "Manifest-Version: 1.0\r\nCreated-By: flink-gitops\r\n"
    if main_class:
        manifest += f"Main-Class: {main_class}\r\n"
    manifest += "\r\n"
    with zipfile.ZipFile(jar, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        _add(archive, "META-INF/", None)
        _add(archive, "META-INF/MANIFEST.MF", manifest.encode())
        for path in sorted(classes.rglob("*")):
            entry = path.relative_to(classes).as_posix()
            if path.is_dir():
                _add(archive, f"{entry}/", None)
            else:
                _add(archive, entry, path.read_bytes())


def _add(archive: zipfile.ZipFile, entry: str, data: bytes | None) -> None:
    info = zipfile.ZipInfo(entry, date_time=_FIXED_TIMESTAMP)
    if data is None:
        info.external_attr = (0o40755 << 16) | 0x10
        archive.writestr(info, b"")
    else:
        info.external_attr = 0o644 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(info, data)
