"""Flink job ids chosen by the agent (pure).

A job id is 32 hex digits: the first 16 are a digest of the deployment's name, the last 16 its
generation (1 for the first job, +1 for every submission). So any job on any cluster can be
traced to its deployment and ordered, even by an agent that lost its memory, and a submission
that may or may not have reached Flink before a crash is recognised instead of repeated.
"""

from __future__ import annotations

import hashlib


def deployment_key(name: str) -> str:
    """The 16 hex digits every job id of deployment `name` starts with."""
    return hashlib.sha256(f"flink-gitops/{name}".encode()).hexdigest()[:16]


def job_id(name: str, generation: int) -> str:
    """The id of the `generation`-th job of deployment `name`."""
    return f"{deployment_key(name)}{generation:016x}"


def generation_of(job: str) -> int:
    """The generation a job id carries (only meaningful for ids made by `job_id`)."""
    return int(job[16:], 16)
