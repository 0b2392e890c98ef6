"""The state a cluster keeps on its filesystems, read through fsspec (I/O: file systems).

Flink writes each job's checkpoints to `<checkpoint dir>/<job id>/chk-<n>/` and marks a complete
one by its `_metadata` file. A retained checkpoint outlives its JobManager: when a JobManager
without high availability dies, its REST API forgets the job, but the checkpoint is still there.
This module finds it, for the one moment the agent needs it (a job the cluster forgot), and the
newest state of a job Flink knows (asked through its REST API).

The checkpoint directory is a Flink option (`execution.checkpointing.dir`, or
`state.checkpoints.dir` before Flink 2); a job's own flinkConfiguration overrides the cluster's.
Any filesystem fsspec has an implementation for can be read: `file://` (and bare paths) always;
`s3://`, `gs://`, `abfs://` once its package is installed. The agent must see the directory as
the cluster does (the same machine, a shared volume, or the object store).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import fsspec

from agent.errors import CheckpointDirUnreadable, FlinkRequestError
from agent.flink.rest import FlinkClient

CHECKPOINT_DIR_KEYS = ("execution.checkpointing.dir", "state.checkpoints.dir")
_CHECKPOINT = re.compile(r"chk-(\d+)")


@dataclass(frozen=True)
class RetainedCheckpoint:
    location: str                 # the chk-<n> directory, as Flink restores from it
    modified: float | None        # when its _metadata was written (epoch seconds), if known


def checkpoint_dir(*configurations: Mapping[str, str]) -> str | None:
    """The checkpoint directory the first of `configurations` that names one names (pure)."""
    for configuration in configurations:
        for key in CHECKPOINT_DIR_KEYS:
            if configuration.get(key):
                return str(configuration[key])
    return None


def newest_checkpoint(directory: str, job_id: str) -> RetainedCheckpoint | None:
    """The job's newest complete checkpoint under `directory`, or None when it left none there.
    Raises CheckpointDirUnreadable when the directory cannot be read (no fsspec implementation
    for its scheme, no access, an I/O error)."""
    try:
        fs, root = fsspec.core.url_to_fs(directory)
        try:
            entries = fs.ls(f"{root.rstrip('/')}/{job_id}", detail=False)
        except FileNotFoundError:
            return None
        numbered = sorted(((int(found.group(1)), path) for path in entries
                           if (found := _CHECKPOINT.fullmatch(path.rstrip("/").rsplit("/")[-1]))),
                          reverse=True)
        for number, path in numbered:
            if fs.exists(f"{path}/_metadata"):
                return RetainedCheckpoint(f"{directory.rstrip('/')}/{job_id}/chk-{number}",
                                          _modified(fs, f"{path}/_metadata"))
    except (ImportError, ValueError, OSError) as error:
        raise CheckpointDirUnreadable(
            f"the checkpoint directory {directory} could not be read: "
            f"{getattr(error, 'strerror', None) or error}") from None
    return None


def _modified(fs: fsspec.AbstractFileSystem, path: str) -> float | None:
    try:
        return fs.modified(path).timestamp()
    except (NotImplementedError, OSError, AttributeError):
        return None


def newest_state(client: FlinkClient, job_id: str,
                 savepoints: bool) -> tuple[str, int] | None:
    """The location and time (ms) of the job's newest completed checkpoint that is still there;
    with `savepoints`, its newest savepoint first (checkpoints are subsumed, savepoints stay).
    Flink's statistics lag: a checkpoint they name that is gone is looked for again in its
    directory, for a newer one. None when there is none, or Flink does not know the job."""
    try:
        latest = client.checkpoints(job_id).get("latest") or {}
    except FlinkRequestError:
        return None
    for kind in ("savepoint", "completed") if savepoints else ("completed",):
        found = latest.get(kind) or {}
        location = found.get("external_path")
        if not location or location.startswith("<"):
            continue
        if not found.get("discarded") and not state_absent(location):   # (Flink may name it
            return location, int(found.get("latest_ack_timestamp", 0))  # once it deleted it)
        root = location.rstrip("/").rsplit(f"/{job_id}/", 1)
        try:
            newer = newest_checkpoint(root[0], job_id) if kind == "completed" \
                and len(root) == 2 else None
        except CheckpointDirUnreadable:
            newer = None
        if newer is not None:
            return newer.location, int((newer.modified or 0) * 1000)
    return None


def state_absent(location: str) -> bool:
    """True when the savepoint or checkpoint `location` is certainly not there: its filesystem
    can be read and holds no `_metadata` at it. Any doubt (no fsspec implementation for the
    scheme, no access, an I/O error) is False: Flink, which may see more, decides."""
    try:
        fs, path = fsspec.core.url_to_fs(location)
        path = path.rstrip("/")
        return not (fs.exists(f"{path}/_metadata")
                    or (path.endswith("/_metadata") and fs.exists(path)))
    except Exception:  # noqa: BLE001 - any trouble reading is doubt, not absence
        return False
