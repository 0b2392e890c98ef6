"""A jar checked before it is uploaded (I/O: reads the file): a file that is no jar, or that
lacks the class the job starts from, is refused before any job is stopped for it, with a
message saying which, instead of Flink's error after the old job is gone."""

from __future__ import annotations

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
