"""A jar checked before it is uploaded, and a job's jar with its dependencies (I/O: files).

A file that is no jar, or that lacks the class the job starts from, is refused before any job is
stopped for it, with a message saying which, instead of Flink's error after the old job is gone.

`with_libraries` makes the jar a job with `additionalDependencies` is submitted as: its own jar
with each dependency nested as `lib/<n>-<name>.jar`. Flink's own program loading
(`PackagedProgram`) puts the jars nested under `lib/` on the job's classpath and ships them with
the job to every TaskManager, so this works on any session cluster, through its REST API alone.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import zipfile
from pathlib import Path

MANIFEST = "META-INF/MANIFEST.MF"
MAX_MANIFEST_BYTES = 1 << 20   # a manifest above this is not read (the jar is taken as it is)
_ENTRY_HEADERS = ("main-class", "program-class")   # Flink reads either


def jar_problem(jar: Path, entry_class: str | None) -> str | None:
    """Why `jar` cannot start a job from `entry_class` (None: its manifest's Main-Class or
    Program-Class), or None. A class inside a nested `lib/*.jar` is not looked for: a jar with
    nested jars is given the benefit of the doubt."""
    try:
        with zipfile.ZipFile(jar) as archive:
            names = set(archive.namelist())
            if any(name.startswith("lib/") and name.endswith(".jar") for name in names):
                return None
            if entry_class is not None:
                wanted = entry_class.replace(".", "/") + ".class"
                return None if wanted in names else f"the jar has no class {entry_class} " \
                                                    "(entryClass)"
            if MANIFEST in names and _names_entry(archive.read(MANIFEST)[:MAX_MANIFEST_BYTES]):
                return None
            return "no entryClass is given and the jar's manifest names no Main-Class"
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as error:
        return f"not a jar (zip) file ({' '.join(str(error).split()) or type(error).__name__})"


def _names_entry(manifest: bytes) -> bool:
    for line in manifest.decode("utf-8", errors="replace").splitlines():
        header, _, value = line.partition(":")
        if header.strip().lower() in _ENTRY_HEADERS and value.strip():
            return True
    return False


def with_libraries(jar: Path, libraries: list[Path], cache_dir: Path) -> Path:
    """`jar` with each of `libraries` nested as `lib/<n>-<name>` (made once per content, in
    `cache_dir`); `jar` itself when there are none."""
    if not libraries:
        return jar
    digest = hashlib.sha256()
    for part in (jar, *libraries):
        digest.update(_file_digest(part).encode())
    made = Path(cache_dir) / "with-dependencies" / f"{jar.stem}-{digest.hexdigest()[:12]}.jar"
    if made.exists():
        return made
    made.parent.mkdir(parents=True, exist_ok=True)
    partial = made.with_name(f".{made.name}.{os.getpid()}.tmp")
    with zipfile.ZipFile(jar) as source, zipfile.ZipFile(partial, "w") as target:
        for entry in source.infolist():
            with source.open(entry) as data, target.open(entry, "w") as copy:
                while chunk := data.read(1 << 20):
                    copy.write(chunk)
        for index, library in enumerate(libraries):
            target.write(library, f"lib/{index}-{posixpath.basename(library.name)}",
                         zipfile.ZIP_STORED)
    os.replace(partial, made)
    return made


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
