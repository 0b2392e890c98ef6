"""Memos saved in the work dir, for a fresh process (cron's `sync`, a daemon restarted) to start
from what the last one knew (I/O: files under `<workdir>/cache`).

A snapshot is one JSON file: its kind, a format version, the entries and a checksum of them. It
is written whole or not at all (a temporary file renamed over it), and read only when all of it
checks: a file that is missing, of another version, truncated, corrupt or edited is taken as
empty, and the memo it would have filled is rebuilt the slow way. A snapshot is never the source
of truth: its entries are answers that only depend on their key (a policy set's verdict on an
input), so a stale one cannot exist; git and Flink stay the truth for everything else.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
MAX_SNAPSHOT_BYTES = 256 * 1024 * 1024   # a larger file is not read (and not written)


def load_snapshot(path: Path, kind: str, version: int) -> dict[str, Any]:
    """The entries of the snapshot at `path`, or {} when it cannot be trusted whole."""
    try:
        if path.stat().st_size > MAX_SNAPSHOT_BYTES:
            raise ValueError(f"over {MAX_SNAPSHOT_BYTES:,} bytes")
        document = json.loads(path.read_bytes())
        entries = document["entries"]
        if (document.get("kind"), document.get("version")) != (kind, version) \
                or document.get("checksum") != _checksum(entries):
            raise ValueError("another kind or version, or a checksum that does not match")
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError) as error:
        log.info("snapshot %s is not used (it is rebuilt): %s", path, error)
        return {}
    return entries if isinstance(entries, dict) else {}


def save_snapshot(path: Path, kind: str, version: int, entries: dict[str, Any]) -> None:
    """Writes the snapshot whole (best effort: a work dir that cannot take it is a log line)."""
    document = {"kind": kind, "version": version, "checksum": _checksum(entries),
                "entries": entries}
    text = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    if len(text) > MAX_SNAPSHOT_BYTES:
        return
    scratch = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        scratch.write_bytes(text)
        os.replace(scratch, path)
    except OSError as error:
        log.warning("snapshot %s could not be written: %s", path, error)
        scratch.unlink(missing_ok=True)


def _checksum(entries: Any) -> str:
    canonical = json.dumps(entries, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(canonical).hexdigest()


def prune_snapshots(directory: Path, pattern: str, keep: int) -> None:
    """Deletes all but the `keep` newest snapshots of `directory` matching `pattern`."""
    try:
        found = sorted(directory.glob(pattern), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in found[keep:]:
            old.unlink(missing_ok=True)
    except OSError as error:
        log.info("old snapshots in %s could not be deleted: %s", directory, error)
