"""A local target in application mode: each deployment runs as its own Flink cluster, sized by its
resources, through the whole cycle on real Flink 2.3 — deployed, upgraded with its state when its
resources change, healed when its job takes its cluster down, finished after an agent is killed
half way through an upgrade, its cluster ended when its bounded job finishes, and refused before
anything stops when it cannot be sized; JAR, SQL and Python jobs alike."""

from __future__ import annotations

import json
import os
import textwrap
import time
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from agent import testpoints
from agent.cli import main
from agent.flink import application, local
from agent.job_ids import generation_of
from agent.reconcile import sync
from conftest import (DEFAULT_STATUS_BRANCH, EXAMPLES, Flink, artifact_deployment,
                      counter_deployment, git)
from pyflink_env import pyflink_python
from test_crash_safety import kill, start_frozen_at
from test_secrets import run
from test_sql_real_flink import BOUNDED

TARGET = """\
apiVersion: v1
kind: DeploymentTarget
metadata: {name: apps}
spec:
  local: {mode: application}
"""


AGGREGATION = """\
CREATE TEMPORARY TABLE orders (id BIGINT, amount DOUBLE) WITH (
  'connector' = 'datagen', 'rows-per-second' = '10', 'fields.id.min' = '1', 'fields.id.max' = '5');
CREATE TEMPORARY TABLE totals (id BIGINT, total DOUBLE) WITH ('connector' = 'blackhole');
INSERT INTO totals SELECT id, SUM(amount) FROM orders GROUP BY id;
"""


def sql_deployment(name: str, template: str = "") -> str:
    """A SQL deployment on `apps` (`template`: more lines under template.spec)."""
    return artifact_deployment(name, "kind: SQLSCRIPT\nsqlScript: |\n"
                               + textwrap.indent(AGGREGATION, "  "), target="apps") \
        + textwrap.indent(textwrap.dedent(template), " " * 6)


def app_deployment(name: str, taskmanager: str = "1024Mi", taskmanagers: int | None = None,
                   restore: str = "LATEST_STATE", **fields) -> str:
    """The counter job on `apps`, sized (`fields`: those of `counter_deployment`)."""
    count = f"numberOfTaskManagers: {taskmanagers}\n" if taskmanagers else ""
    return counter_deployment(name, target="apps", restore=restore, **fields) + textwrap.indent(
        "resources:\n  jobmanager: {memory: 768Mi}\n"
        f"  taskmanager: {{memory: {taskmanager}}}\n{count}"
        'logging:\n  log4jLoggers: {"": WARN, org.apache.flink.runtime.checkpoint: INFO}\n',
        " " * 6)


@pytest.fixture
def apps(spec_repo, counter_jar, settings):
    """A spec repo with the application-mode target `apps` and the counter jar; every cluster
    the test's agent started is ended after it."""
    spec_repo.write("targets/apps.yaml", TARGET)
    spec_repo.add_file("jobs/counter.jar", counter_jar)

    def write(name: str, **fields) -> None:
        spec_repo.write(f"deployments/{name}.yaml", app_deployment(name, **fields))
    yield write
    for cluster in application.clusters(settings.workdir):
        application.stop(settings.workdir, cluster.deployment)


def cluster_of(settings, name: str) -> application.ApplicationCluster:
    cluster = application.find(settings.workdir, name)
    assert cluster is not None, f"no cluster of {name} runs"
    return cluster


def get(cluster, path: str):
    return requests.get(f"{cluster.url}{path}", timeout=10).json()


def restored_from(cluster, job: str) -> str | None:
    """What `job` restored, once the REST API's cached statistics of it show it."""
    return Flink(cluster.url).restored_from(job)


def only_job(cluster) -> dict:
    [job] = get(cluster, "/jobs/overview")["jobs"]
    return job


def wait_until(condition, timeout: float = 90):
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.3)
    return found


def checkpointed(cluster, job: str) -> bool:
    return get(cluster, f"/jobs/{job}/checkpoints")["counts"]["completed"] > 0


def taskmanager_memory(cluster) -> list[int]:
    """Each registered TaskManager's process memory in MiB, as Flink reports it."""
    return sorted(get(cluster, f"/taskmanagers/{tm['id']}")["memoryConfiguration"]
                  ["totalProcessMemory"] // 1024 ** 2
                  for tm in get(cluster, "/taskmanagers")["taskmanagers"])


def processes_of(settings, name: str) -> list[int]:
    """Every Java process on this machine whose command line names deployment `name`'s conf
    dir anywhere (its argument file, its log4j configuration, `--configDir`)."""
    conf = str(application.home(settings.workdir, name) / "conf").encode()
    found = []
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0") if entry.name.isdigit() else []
        except OSError:
            continue
        if argv and b"java" in argv[0] and any(conf in argument for argument in argv):
            found.append(int(entry.name))
    return found


def test_two_deployments_run_in_their_own_clusters_and_a_resource_change_upgrades_only_its_own(
        apps, spec_repo, settings):
    """app-a a JAR job, app-b a SQL one (the SQL runner is its cluster's program)."""
    apps("app-a")
    spec_repo.write("deployments/app-b.yaml", sql_deployment("app-b"))
    spec_repo.push()
    result = sync(settings)
    assert result.exit_code == 0
    a, b = cluster_of(settings, "app-a"), cluster_of(settings, "app-b")
    assert a.rest_port != b.rest_port and not set(a.pids.values()) & set(b.pids.values())
    first_a, first_b = only_job(a), only_job(b)
    assert first_a["state"] == first_b["state"] == "RUNNING"
    assert taskmanager_memory(a) == [1024]
    status = spec_repo.status_of("app-a")
    assert status["job"]["id"] == first_a["jid"] and status["state"] == "RUNNING"
    assert not any("resources" in w or "logging" in w for w in status.get("warnings", []))
    log4j = (application.home(settings.workdir, "app-a") / "conf/log4j.properties").read_text()
    assert "rootLogger.level = WARN" in log4j and "org.apache.flink.runtime.checkpoint" in log4j

    wait_until(lambda: checkpointed(a, first_a["jid"]))
    apps("app-a", taskmanager="1152Mi", taskmanagers=2)
    spec_repo.push("app-a: more memory, two TaskManagers")
    planned = CliRunner().invoke(main, ["plan", "--repo", settings.repo, "--workdir",
                                        str(settings.workdir), "--format", "json"])
    [row] = [d for d in json.loads(planned.output)["deployments"]
             if d["name"] == "app-a"]
    assert row["action"] == "STATEFUL_UPGRADE"
    assert any("resources" in change["path"] for change in row["changes"])

    assert sync(settings).exit_code == 0
    upgraded = cluster_of(settings, "app-a")
    job = only_job(upgraded)
    assert job["state"] == "RUNNING" and job["jid"] != first_a["jid"]
    assert taskmanager_memory(upgraded) == [1152, 1152]
    status = spec_repo.status_of("app-a")
    assert restored_from(upgraded, job["jid"]) == status["lastSavepoint"]["location"]
    assert status["lastSavepoint"]["jobId"] == first_a["jid"]
    assert not set(a.pids.values()) & set(upgraded.pids.values())
    assert all(not local.alive(pid) for pid in a.pids.values())   # reaped
    assert cluster_of(settings, "app-b").pids == b.pids   # untouched
    assert only_job(b)["jid"] == first_b["jid"]

    listed = CliRunner().invoke(main, ["local", "status", "--workdir", str(settings.workdir)])
    assert listed.exit_code == 0, listed.output
    for name, cluster in (("app-a", upgraded), ("app-b", b)):
        assert name in listed.output and str(cluster.rest_port) in listed.output
    assert "2 × taskmanager 1152m" in listed.output

    # bad sizes: refused before anything stops, the running job untouched
    spec_repo.write("deployments/app-b.yaml", sql_deployment(
        "app-b", "resources: {taskmanager: {memory: 64Mi}}\n"))
    spec_repo.push("app-b: too little memory")
    assert sync(settings).exit_code != 0
    status = spec_repo.status_of("app-b")
    assert status["sync"] == "INVALID"
    problem = " ".join(p["message"] for p in status["errors"])
    assert "Flink refuses this memory" in problem
    assert "exceed configured Total Process Memory (64.000mb" in problem   # Flink's own words
    spec_repo.write("deployments/app-b.yaml", sql_deployment(
        "app-b", "resources: {taskmanager: {memory: 2Gi}}\nnumberOfTaskManagers: 60\n"))
    spec_repo.push("app-b: more TaskManagers than the machine holds")
    assert sync(settings).exit_code != 0
    problem = " ".join(p["message"] for p in spec_repo.status_of("app-b")["errors"])
    assert "numberOfTaskManagers" in problem and "more than this machine's" in problem
    assert cluster_of(settings, "app-b").pids == b.pids and only_job(b)["state"] == "RUNNING"


def test_a_job_whose_main_exits_takes_down_only_its_cluster_is_healed_and_then_suspended(
        apps, spec_repo, settings, tmp_path):
    marker = tmp_path / "exit-now"
    apps("app-exits", args=f"--rate 20 --keys 4 --exit-when {marker}")
    apps("app-stays")
    spec_repo.push()
    assert sync(settings).exit_code == 0
    exits, stays = cluster_of(settings, "app-exits"), cluster_of(settings, "app-stays")
    first = only_job(exits)["jid"]
    wait_until(lambda: checkpointed(exits, first))

    marker.touch()   # its main calls System.exit: the JobManager's JVM ends
    wait_until(lambda: not local.alive(exits.pids["jobmanager"]), timeout=30)
    marker.unlink()
    assert cluster_of(settings, "app-stays").pids == stays.pids
    assert only_job(stays)["state"] == "RUNNING"

    assert sync(settings).exit_code == 0
    healed = cluster_of(settings, "app-exits")
    job = only_job(healed)
    assert job["state"] == "RUNNING" and job["jid"] != first
    assert f"/{first}/chk-" in restored_from(healed, job["jid"])   # its newest retained checkpoint
    assert sorted(processes_of(settings, "app-exits")) == sorted(healed.pids.values())
    events = " ".join(e["message"] for e in spec_repo.status_of("app-exits")["history"]["events"])
    assert f"job {first} is lost" in events and "drift" in events
    assert cluster_of(settings, "app-stays").pids == stays.pids

    # suspended: its cluster ends once its job stopped with a savepoint, which stays
    wait_until(lambda: checkpointed(healed, job["jid"]))
    apps("app-exits", args=f"--rate 20 --keys 4 --exit-when {marker}", state="SUSPENDED")
    spec_repo.push("suspend")
    assert sync(settings).exit_code == 0
    assert application.find(settings.workdir, "app-exits") is None
    assert processes_of(settings, "app-exits") == []
    status = spec_repo.status_of("app-exits")
    assert status["state"] == "SUSPENDED" and status["lastSavepoint"]["jobId"] == job["jid"]
    assert os.path.isdir(status["lastSavepoint"]["location"].removeprefix("file:"))
    assert sync(settings).exit_code == 0   # nothing more to do: nothing starts
    assert application.find(settings.workdir, "app-exits") is None


def test_an_agent_killed_during_an_upgrade_leaves_one_cluster_per_deployment_after_sync(
        apps, spec_repo, settings, tmp_path):
    """Killed once with the old cluster ended and no new one (its job's last record on disk),
    once with the new cluster up and its job submitted."""
    apps("app-crash")
    spec_repo.push()
    assert sync(settings).exit_code == 0
    previous = only_job(cluster_of(settings, "app-crash"))["jid"]
    for memory, point in ((1152, testpoints.OLD_JOB_STOPPED),
                          (1216, testpoints.NEW_JOB_SUBMITTED)):
        wait_until(lambda: checkpointed(cluster_of(settings, "app-crash"), previous))
        apps("app-crash", taskmanager=f"{memory}Mi")
        spec_repo.push(f"{memory}Mi")

        kill(start_frozen_at(point, settings, tmp_path))
        for _ in range(5):   # (as the daemon's next cycles: a job the killed agent submitted
            if sync(settings).exit_code == 0:   # may still be initializing at the first)
                break
            time.sleep(1)
        else:
            raise AssertionError(f"not in sync after the kill at {point}")

        cluster = cluster_of(settings, "app-crash")
        assert sorted(processes_of(settings, "app-crash")) == sorted(cluster.alive().values())
        assert len(cluster.alive()) == 2   # one JobManager, one TaskManager
        job = only_job(cluster)
        assert job["state"] == "RUNNING" and taskmanager_memory(cluster) == [memory]
        assert generation_of(job["jid"]) == generation_of(previous) + 1   # none started twice
        status = spec_repo.status_of("app-crash")
        assert status["job"]["id"] == job["jid"] and status["sync"] == "SYNCED"
        assert restored_from(cluster, job["jid"]) == status["lastSavepoint"]["location"]
        assert status["lastSavepoint"]["jobId"] == previous
        previous = job["jid"]


def test_a_job_whose_main_fails_ends_its_cluster_and_tells_flinks_reason_never_a_secret(
        apps, spec_repo, settings):
    """Its main throws in the JobManager, quoting an argument a secret reference gave it
    (NumberFormatException: For input string: "…"): Flink records a failed job with the
    exception; the status, the logs (text and JSON), `plan`, `status` and `local status` say
    why, with `***` for the value."""
    text = app_deployment("app-broken", args="--rate 20 --keys ${FG_APP_KEYS}")
    spec_repo.write("deployments/app-broken.yaml", text.replace(
        "  upgradeStrategy:", "  maxJobCreationAttempts: 1\n  upgradeStrategy:"))
    spec_repo.push("keys from a secret the job refuses")
    env, repo = {"FG_APP_KEYS": "app-c4n4ry"}, ["--repo", settings.repo,
                                                "--workdir", str(settings.workdir)]
    outputs = []
    for args in (["-v", "sync"], ["-v", "--log-format", "json", "sync"], ["plan"],
                 ["plan", "--format", "json"], ["status"],
                 ["local", "status", "--workdir", str(settings.workdir)]):
        result = run(*args, *(repo if args[0] != "local" else []), env=env)
        outputs += [result.stdout, result.stderr]
    status = spec_repo.status_of("app-broken")
    assert status["lastAction"]["result"] == "FAILED"
    assert 'For input string: "***"' in status["lastAction"]["message"]   # its main's
    assert application.find(settings.workdir, "app-broken") is None   # nothing left running
    assert processes_of(settings, "app-broken") == []
    branch = git(spec_repo.remote, "log", "-p", "--format=%B", DEFAULT_STATUS_BRANCH)
    assert "c4n4ry" not in "\n".join(outputs + [branch])


def test_a_bounded_job_that_finished_has_its_cluster_ended_by_the_next_cycle(
        apps, spec_repo, settings):
    """A cycle with nothing to do ends the cluster of a job that finished by itself (its
    processes and memory freed); the deployment stays FINISHED, seen from its last record."""
    spec_repo.write("deployments/app-batch.yaml", artifact_deployment(
        "app-batch", "kind: SQLSCRIPT\nsqlScript: |\n"
        + textwrap.indent(BOUNDED.format(rows=40), "  "), target="apps"))
    spec_repo.push("a bounded job")
    assert sync(settings).exit_code == 0, spec_repo.status_of("app-batch")
    cluster = cluster_of(settings, "app-batch")
    job = wait_until(lambda: (found := only_job(cluster))["state"] == "FINISHED" and found)
    assert sync(settings).exit_code == 0
    status = spec_repo.status_of("app-batch")
    assert (status["state"], status["job"]["id"]) == ("FINISHED", job["jid"]), status["history"]
    assert status["lastAction"]["kind"] == "START"   # nothing else was done
    assert application.find(settings.workdir, "app-batch") is None
    assert processes_of(settings, "app-batch") == []
    assert sync(settings).exit_code == 0 and spec_repo.status_of("app-batch")["state"] == \
        "FINISHED"


def test_a_python_job_runs_in_a_cluster_of_its_own(apps, spec_repo, settings, monkeypatch):
    """Flink's Python driver is its cluster's program (the interpreter of tests/.pyflink/)."""
    monkeypatch.setenv("FLINK_GITOPS_PYTHON", str(pyflink_python()))
    spec_repo.add_file("python/counts.py", EXAMPLES / "python" / "counts.py")
    spec_repo.write("deployments/app-py.yaml", artifact_deployment(
        "app-py", "kind: PYTHON\npythonScript: python/counts.py\nmainArgs: --keys 4\n",
        target="apps"))
    spec_repo.push("a Python job")
    assert sync(settings).exit_code == 0, spec_repo.status_of("app-py")
    cluster = cluster_of(settings, "app-py")
    job = only_job(cluster)
    assert job["state"] == "RUNNING" and spec_repo.status_of("app-py")["job"]["id"] == job["jid"]
