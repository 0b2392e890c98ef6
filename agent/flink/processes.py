"""This machine's processes, as /proc shows their command lines (I/O: /proc reads)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

PROC = Path("/proc")


def command_line(pid: int) -> list[bytes] | None:
    """The process's arguments (None when it is gone or cannot be read)."""
    try:
        return (PROC / str(pid) / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return None


def command_lines() -> Iterator[tuple[int, list[bytes]]]:
    """Every readable process's pid and arguments (none where there is no /proc)."""
    for entry in PROC.iterdir() if PROC.is_dir() else ():
        if entry.name.isdigit() and (arguments := command_line(int(entry.name))) is not None:
            yield int(entry.name), arguments
