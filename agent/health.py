"""Running jobs against their deployment's health policy (I/O: Flink's REST API, for the jobs of
deployments that have a policy; `breach` itself is pure).

A policy (`healthPolicy`, else its target's) says when a running job is unhealthy: more than
`maxRestarts` failures within `window` (Flink keeps the newest `web.exception-history-size`
failures, 16 by default, so a larger maxRestarts is not seen), or, for a job that checkpoints,
no completed checkpoint for `checkpointProgressTimeout` since the newest one (or since the job
started). A breach is reported as UNHEALTHY with Flink's last exception; with `action: RESTART`
the planner restarts the job from its newest state, at most once a window.

An upgrade's new job in its `upgradeStabilityWindow` is read the same way each cycle, and
`settling` (pure) says whether it is stable, unstable, or still watched.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from agent.clock import parse
from agent.errors import FlinkError
from agent.flink.rest import FlinkClient, condense_trace, failures
from agent.logs import redact
from agent.model.job_states import FlinkJobStatus
from agent.model.observation import JobHealth, Observation, ObservedJob, Settling
from agent.model.spec import (Deployment, DeploymentTarget, HealthAction, HealthPolicy,
                              duration_seconds)
from agent.model.status import StabilityWatch

READERS = 8   # jobs whose health is read at once


def policy_of(desired: Deployment, target: DeploymentTarget | None) -> HealthPolicy | None:
    """The health policy that applies to `desired`: its own, else its target's."""
    return desired.spec.health_policy or (target.spec.health_policy if target else None)


def read_all(jobs: dict[str, tuple[FlinkClient, ObservedJob]]) -> dict[str, JobHealth]:
    """The health of each deployment's running job, READERS at a time; a job whose health Flink
    could not tell is left out (nothing is concluded from silence)."""
    def one(name: str) -> JobHealth | None:
        client, job = jobs[name]
        try:
            return read_health(client, job.id)
        except (FlinkError, LookupError, TypeError, ValueError, AttributeError):
            return None
    if not jobs:
        return {}
    with ThreadPoolExecutor(max_workers=min(READERS, len(jobs))) as pool:
        read = dict(zip(jobs, pool.map(one, jobs), strict=True))
    return {name: health for name, health in read.items() if health is not None}


def read_health(client: FlinkClient, job_id: str) -> JobHealth:
    exceptions = client.exceptions(job_id)
    failed = failures(exceptions)
    checkpointing, last_checkpoint = client.checkpointing(job_id)
    newest = condense_trace(failed[0].get("stacktrace") or "").splitlines()[:2] \
        if failed else []
    return JobHealth(tuple(int(f["timestamp"]) for f in failed if f.get("timestamp")),
                     redact(" | ".join(newest)) or None, checkpointing, last_checkpoint,
                     client.restarts(job_id, exceptions))


def breach(policy: HealthPolicy, health: JobHealth, started_at: str, now: str) -> str | None:
    """Why the job breaks `policy` at `now` (it started at `started_at`), or None (pure)."""
    now_ms = parse(now).timestamp() * 1000
    window_ms = duration_seconds(policy.window) * 1000
    recent = [t for t in health.restart_times if now_ms - t <= window_ms]
    if policy.max_restarts is not None and len(recent) > policy.max_restarts:
        return (f"{len(recent)} restarts within {policy.window} (healthPolicy maxRestarts "
                f"{policy.max_restarts}); last exception: {health.last_exception or 'unknown'}")
    if policy.checkpoint_progress_timeout is None or not health.checkpointing:
        return None
    since = health.last_checkpoint or parse(started_at).timestamp() * 1000
    if now_ms - since > duration_seconds(policy.checkpoint_progress_timeout) * 1000:
        return (f"no checkpoint completed for over {policy.checkpoint_progress_timeout} "
                "(healthPolicy checkpointProgressTimeout)")
    return None


def restart_allowed(policy: HealthPolicy, restarted_at: str | None, now: str) -> bool:
    """At most one health restart a window (pure)."""
    return restarted_at is None or (parse(now) - parse(restarted_at)).total_seconds() \
        > duration_seconds(policy.window)


def restart_for(policy: HealthPolicy | None, unhealthy: str | None, restarted_at: str | None,
                now: str) -> str | None:
    """`unhealthy` when the policy restarts the job for it now (`action: RESTART`, once a
    window; the last health restart was at `restarted_at`), else None (pure)."""
    if policy is None or unhealthy is None or policy.action != HealthAction.RESTART:
        return None
    return unhealthy if restart_allowed(policy, restarted_at, now) else None


def settling(watch: StabilityWatch, observation: Observation, health: JobHealth | None,
             now: str) -> Settling:
    """Whether the job `watch` watches is stable at `now` (pure): stable once it FINISHED by
    itself (a bounded job); unstable once it is not RUNNING or has failed at all (Flink
    restarted it); stable once it has run its window and, when it checkpoints, completed a
    checkpoint; unstable when by `give_up_at` it completed none. A job whose health Flink did
    not tell this cycle is watched on (nothing is concluded from silence)."""
    job = {j.id: j for j in observation.jobs}.get(watch.job_id)
    within = f"within upgradeStabilityWindow {watch.window}"
    if job is not None and job.flink_status == FlinkJobStatus.FINISHED:
        return Settling(stable=True)   # a bounded job that ran to its end: nothing to roll back
    if job is None or job.flink_status != FlinkJobStatus.RUNNING:
        return Settling(unstable=f"job {watch.job_id} is {job.flink_status if job else 'gone'}, "
                                 f"{within}")
    if health is not None and health.restart_times:
        return Settling(unstable=f"job {watch.job_id} failed {within}: "
                                 f"{health.last_exception or 'no exception known'}")
    if now < watch.until or health is None:
        return Settling()
    if not health.checkpointing or (health.last_checkpoint or 0) >= \
            parse(watch.started_at).timestamp() * 1000:
        return Settling(stable=True)
    if now >= watch.give_up_at:
        return Settling(unstable=f"job {watch.job_id} completed no checkpoint by "
                                 f"{watch.give_up_at}, {within} and as long again")
    return Settling()
