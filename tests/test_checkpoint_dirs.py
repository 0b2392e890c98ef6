"""Retained checkpoints found in a checkpoint directory (agent.flink.storage), on a real local
filesystem laid out as Flink lays it out."""

from __future__ import annotations

import pytest

from agent.errors import CheckpointDirUnreadable
from agent.flink.storage import checkpoint_dir, newest_checkpoint

JOB = "0123456789abcdef0123456789abcdef"


def test_the_newest_complete_checkpoint_is_found_and_an_unfinished_one_skipped(tmp_path):
    for number, complete in ((3, True), (12, True), (13, False)):
        folder = tmp_path / JOB / f"chk-{number}"
        folder.mkdir(parents=True)
        if complete:
            (folder / "_metadata").write_bytes(b"flink")
    (tmp_path / JOB / "shared").mkdir()
    found = newest_checkpoint(tmp_path.as_uri(), JOB)
    assert found.location == f"{tmp_path.as_uri()}/{JOB}/chk-12"
    assert found.modified is not None


def test_a_job_without_checkpoints_has_none(tmp_path):
    assert newest_checkpoint(tmp_path.as_uri(), JOB) is None
    (tmp_path / JOB / "chk-1").mkdir(parents=True)        # begun, never completed
    assert newest_checkpoint(str(tmp_path), JOB) is None


def test_a_directory_that_cannot_be_read_says_why():
    with pytest.raises(CheckpointDirUnreadable, match="weird://x.*Protocol not known"):
        newest_checkpoint("weird://x", JOB)


def test_the_jobs_own_checkpoint_directory_comes_before_the_clusters():
    job, cluster = {"execution.checkpointing.dir": "s3://job"}, {"state.checkpoints.dir": "/c"}
    assert checkpoint_dir(job, cluster) == "s3://job"
    assert checkpoint_dir({}, cluster) == "/c" and checkpoint_dir({}, {}) is None
