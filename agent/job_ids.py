"""Flink job ids chosen by the agent (pure).

A job id is 32 hex digits: 16 of a digest of the deployment's name, 8 of the job's generation
(1 for the first job, +1 for every submission) and 8 of the digest of the spec it runs. So any
job on any cluster tells which deployment it belongs to, how it is ordered among that
deployment's jobs, and which spec it was started with — even to an agent that lost its memory or
crashed half way through an upgrade. A submission is recognised, never repeated blindly.
"""

from __future__ import annotations

import hashlib


def deployment_key(name: str) -> str:
    """The 16 hex digits every job id of deployment `name` starts with."""
    return hashlib.sha256(f"flink-gitops/{name}".encode()).hexdigest()[:16]


def job_id(name: str, generation: int, spec_hash: str) -> str:
    """The id of the `generation`-th job of deployment `name`, running spec `spec_hash`."""
    return f"{deployment_key(name)}{generation:08x}{spec_digest(spec_hash)}"


def spec_digest(spec_hash: str) -> str:
    """The 8 hex digits a job id gives of the digest of the spec it runs."""
    return f"{spec_hash[:8]:0>8}"


def with_generation(job: str, generation: int) -> str:
    """The same deployment and spec, another generation (a further start attempt)."""
    return f"{job[:16]}{generation:08x}{job[24:]}"


def generation_of(job: str) -> int:
    return int(job[16:24], 16)


def spec_digest_of(job: str) -> str:
    """The first 8 hex digits of the job digest of the spec the job was started with."""
    return job[24:32]


def runs_spec(job: str, spec_hash: str | None) -> bool:
    return spec_hash is not None and spec_digest_of(job) == spec_hash[:8]
