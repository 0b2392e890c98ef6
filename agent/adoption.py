"""Jobs started outside the agent (`flink run`, the web UI) -> deployments that take them as
they run (I/O: a few REST reads; `import_jobs` also reads the spec repo).

`adoption_problem` checks a deployment's `flink-gitops.io/adopt-job-id` before it is planned:
the job is on the deployment's cluster, RUNNING, the deployment runs no job of its own, and the
job's parallelism is the spec's (the plan then ADOPTs it: no Flink call). The agent cannot tell
which jar a job was started from: the annotation is the team's word that it runs this spec.

`starting_specs` is `flink-gitops import`: a starting Deployment for each running job of a
cluster, with what the cluster still knows of it, for the team to complete and commit.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from agent.errors import ConfigError, FlinkError
from agent.flink import target as targets
from agent.flink.rest import FlinkClient
from agent.job_ids import deployment_key
from agent.load import load_blobs
from agent.model.job_states import FlinkJobStatus
from agent.model.observation import Observation
from agent.model.spec import ADOPT_JOB_ANNOTATION, DNS_1123_LABEL, Deployment
from agent.source import SpecRepository


def adoption_problem(job_id: str, desired: Deployment, observation: Observation,
                     client: FlinkClient | None) -> str | None:
    """Why the deployment cannot adopt running job `job_id` now (None: it can, or its cluster
    did not answer, which the plan says on its own)."""
    if client is None or not observation.reachable or observation.assumed:
        return None
    target = desired.spec.deployment_target_name
    seen = next((j for j in observation.jobs if j.id == job_id), None)
    if seen is None:
        return (f"annotation {ADOPT_JOB_ANNOTATION}: job {job_id} is not on the cluster of "
                f"target {target!r} (its jobs: `flink list`, or the web UI)")
    if seen.flink_status != FlinkJobStatus.RUNNING:
        return (f"annotation {ADOPT_JOB_ANNOTATION}: job {job_id} is {seen.flink_status}; only "
                "a RUNNING job can be adopted")
    own = [j.id for j in observation.active_jobs if j.id != job_id]
    if own:
        return (f"annotation {ADOPT_JOB_ANNOTATION}: the deployment already runs job {own[-1]}; "
                "a deployment has one job (remove the annotation, or cancel one of them)")
    try:
        parallelism = client.parallelism(job_id)
    except FlinkError as error:
        return f"annotation {ADOPT_JOB_ANNOTATION}: the parallelism of job {job_id} cannot be " \
               f"read: {error}"
    wanted = desired.spec.template.spec.parallelism
    if parallelism != wanted:
        return (f"annotation {ADOPT_JOB_ANNOTATION}: job {job_id} runs with parallelism "
                f"{parallelism}, the spec says {wanted}: write {parallelism} to adopt it as it "
                "runs, then change it (an upgrade with a savepoint)")
    return None


def import_jobs(source: SpecRepository, branch: str, path: str, target: str,
                workdir: Path) -> list[tuple[str, str]]:
    """`flink-gitops import`: the starting specs of the running jobs of `target`'s cluster
    (named in the spec repo's `branch`) that no deployment of the repo runs or adopts
    (ConfigError: no such target)."""
    source.fetch()
    loaded = load_blobs(source.spec_blobs(source.resolve(branch), path), source.read_blobs)
    located = loaded.targets.get(target)
    if located is None:
        raise ConfigError(f"no DeploymentTarget {target!r} in the spec repo (its targets: "
                          f"{', '.join(sorted(loaded.targets)) or 'none'})")
    client = targets.connect(located.spec, workdir, start_local=False)
    known = {deployment_key(name) for name in loaded.deployments}
    adopted = {d.spec.adopt_job_id for d in loaded.deployments.values()}
    return starting_specs(client, target, lambda job: job[:16] in known or job in adopted,
                          set(loaded.deployments))


def starting_specs(client: FlinkClient, target: str, managed=lambda job: False,
                   names: set[str] | None = None) -> list[tuple[str, str]]:
    """(name, YAML) of a starting Deployment for every running job of the cluster not
    `managed`: its name (from the job's, none of `names`), parallelism, checkpoint interval,
    the adopt annotation, and the jar and entry class when the cluster has exactly one jar
    uploaded (else the ones it has, as a comment: Flink does not record which jar a job came
    from)."""
    jars = client.jars()
    only = jars[0] if len(jars) == 1 else None
    specs, names = [], set(names or ())
    for job in client.jobs():
        if job.state != FlinkJobStatus.RUNNING or managed(job.id):
            continue
        name = _name(job.name, names)
        names.add(name)
        template: dict = {"artifact": {"kind": "JAR", "jarUri": (
            f"jobs/{only.get('name')}" if only else "TODO: the job's jar (a path in this "
                                                   "repository, or a URI)")}}
        entries = [e.get("name") for e in (only or {}).get("entry") or [] if e.get("name")]
        if len(entries) == 1:
            template["artifact"]["entryClass"] = entries[0]
        template["parallelism"] = client.parallelism(job.id)
        interval = client.checkpoint_interval(job.id)
        if interval is not None:
            template["flinkConfiguration"] = {"execution.checkpointing.interval": (
                f"{interval // 1000}s" if interval % 1000 == 0 else f"{interval}ms")}
        document = {"apiVersion": "v1", "kind": "Deployment",
                    "metadata": {"name": name, "annotations": {ADOPT_JOB_ANNOTATION: job.id}},
                    "spec": {"state": "RUNNING", "deploymentTargetName": target,
                             "upgradeStrategy": {"kind": "STATEFUL"},
                             "restoreStrategy": {"kind": "LATEST_SAVEPOINT"},
                             "template": {"spec": template}}}
        header = [f"# job {job.id} ({job.name!r}), running on target {target!r}: the agent "
                  "takes it as it runs once this is committed;",
                  "# complete the artifact (and mainArgs) so that the next upgrade starts the "
                  "same program"]
        if only is None:
            header += [f"# the cluster's uploaded jars: {_jar_list(jars)}"]
        specs.append((name, "\n".join(header) + "\n"
                      + yaml.safe_dump(document, sort_keys=False, width=100)))
    return specs


def _name(job_name: str, taken: set[str]) -> str:
    """A DNS-1123 name made of the job's name, not one of `taken`."""
    base = re.sub(r"[^a-z0-9]+", "-", job_name.lower()).strip("-")[:55] or "job"
    name, count = base, 1
    while name in taken or not re.match(DNS_1123_LABEL, name):
        count += 1
        name = f"{base}-{count}"
    return name


def _jar_list(jars: list[dict]) -> str:
    if not jars:
        return "none"
    def entries(jar: dict) -> str:
        return ", ".join(e.get("name", "?") for e in jar.get("entry") or [])
    return "; ".join(f"{jar.get('name')} ({entries(jar)})" for jar in jars)
