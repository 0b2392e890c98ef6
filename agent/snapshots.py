"""Memos saved in the work dir, for a fresh process (cron's `sync`, a daemon restarted) to start
from what the last one knew (I/O: files under `<workdir>/cache`).

A snapshot is a journal of lines: a JSON header naming its kind and format version, then
batches of entries, each the SHA-256 of its JSON text and that text. A batch is appended with
one write (`append_snapshot`: a cycle that learnt one verdict writes one line, not all it
knows), and the whole file is written again only when it is missing, of another version, or
over its size (`save_snapshot`: to a temporary file renamed over it). A reader takes every batch
that checks and skips the others: a torn last line, a corrupt or edited batch is left out, and
what it held is rebuilt the slow way; a file of another kind or version is not read at all. A
snapshot is never the source of truth: its entries are answers that only depend on their key (a
policy set's verdict on an input), so a stale one cannot exist, or records used only once what
they saw is seen again (a quiet cycle: the spec commit, the status head, each jobs overview);
git and Flink stay the truth.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from agent.logs import redact_bytes

log = logging.getLogger(__name__)
MAX_SNAPSHOT_BYTES = 256 * 1024 * 1024   # a larger file is not read, and is written again whole


def load_snapshot(path: Path, kind: str, version: int) -> dict[str, Any]:
    """The entries of every batch of the snapshot at `path` that checks (later batches win),
    or {} when it is missing, too large, or of another kind or version."""
    try:
        if path.stat().st_size > MAX_SNAPSHOT_BYTES:
            raise ValueError(f"over {MAX_SNAPSHOT_BYTES:,} bytes")
        header, *batches = path.read_bytes().split(b"\n")
        if json.loads(header) != _header(kind, version):
            raise ValueError("another kind or format version")
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        log.info("snapshot %s is not used (it is rebuilt): %s", path, error)
        return {}
    entries, skipped = {}, 0
    for line in filter(None, batches):
        checksum, _, text = line.partition(b" ")
        try:
            if checksum.decode() != hashlib.sha256(text).hexdigest():
                raise ValueError("checksum")
            entries.update(json.loads(text))
        except (ValueError, TypeError):
            skipped += 1
    if skipped:
        log.info("snapshot %s: %d batch(es) that do not check are left out", path, skipped)
    return entries


def save_snapshot(path: Path, kind: str, version: int, entries: dict[str, Any]) -> None:
    """Writes the snapshot whole, `entries` its one batch (best effort: a work dir that cannot
    take it is a log line)."""
    text = _line(_header(kind, version)) + _batch(entries)
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


def append_snapshot(path: Path, kind: str, version: int, entries: dict[str, Any]) -> bool:
    """Appends `entries` as one batch to the snapshot at `path`; False when it must be written
    whole instead (missing, of another kind or version, or it would grow over its size)."""
    batch = _batch(entries)
    try:
        if path.stat().st_size + len(batch) > MAX_SNAPSHOT_BYTES:
            return False
        with path.open("rb") as existing:
            if json.loads(existing.readline()) != _header(kind, version):
                return False
        with path.open("ab") as journal:
            journal.write(batch)   # one write: a concurrent append does not interleave
    except (OSError, ValueError) as error:
        log.info("snapshot %s is written whole: %s", path, error)
        return False
    return True


def _header(kind: str, version: int) -> dict[str, Any]:
    return {"kind": kind, "version": version}


def _batch(entries: dict[str, Any]) -> bytes:
    """One batch line, redacted of the secrets the agent knows, as every writer's output is
    (a batch the redaction left unreadable is skipped by the reader, and rebuilt)."""
    text = redact_bytes(json.dumps(entries, separators=(",", ":")).encode())
    return hashlib.sha256(text).hexdigest().encode() + b" " + text + b"\n"


def _line(document: dict[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode() + b"\n"


def prune_snapshots(directory: Path, pattern: str, keep: int) -> None:
    """Deletes all but the `keep` newest snapshots of `directory` matching `pattern`."""
    try:
        found = sorted(directory.glob(pattern), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in found[keep:]:
            old.unlink(missing_ok=True)
    except OSError as error:
        log.info("old snapshots in %s could not be deleted: %s", directory, error)
