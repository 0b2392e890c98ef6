"""`sync` against a real Flink 1.20 cluster: the agent works with 1.20 as well as with 2.x.

The installed Flink is 2.x; this module installs `apache-flink-libraries` 1.20 beside it (once,
into ~/.cache/flink-gitops/flink-1.20, never into the environment), starts a local cluster from
it through `FLINK_GITOPS_FLINK_HOME` and builds the counter job against its jars. The session's
2.x cluster (`flink` in conftest) is not used here and never sees the variable.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.flink import local
from agent.flink.build import build_jar
from agent.reconcile import sync
from conftest import EXAMPLES, Flink, artifact_deployment, counter_deployment, free_port
from faults import kill, recovered, restart

FLINK_1_20 = "1.20.5"
FLINK_1_20_CACHE = Path.home() / ".cache" / "flink-gitops" / "flink-1.20"


def install_flink_1_20() -> Path:
    """The `pyflink` dir of apache-flink-libraries 1.20, installed into the cache when missing."""
    home = FLINK_1_20_CACHE / "pyflink"
    if not (home / "lib" / f"flink-dist-{FLINK_1_20}.jar").is_file():
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--upgrade",
             "--target", str(FLINK_1_20_CACHE), f"apache-flink-libraries=={FLINK_1_20}"],
            check=True)
    return home


@dataclass(frozen=True)
class Flink120:
    cluster: local.LocalCluster
    home: Path                     # the 1.20 distribution
    counter_jar: Path

    @property
    def url(self) -> str:
        return self.cluster.url

    @property
    def jobmanager_log(self) -> Path:
        return self.cluster.log_dir / "jobmanager.log"


@pytest.fixture(scope="module")
def flink_1_20(tmp_path_factory):
    """A real Flink 1.20 session cluster for this module, and the counter jar built against 1.20.

    FLINK_GITOPS_FLINK_HOME is set only while the cluster starts and the jar builds: the running
    JVMs keep their classpath, and `sync` talks to Flink over REST only.
    """
    home = install_flink_1_20()
    workdir = tmp_path_factory.mktemp("flink-1.20")
    port = free_port()
    environment = pytest.MonkeyPatch()
    environment.setenv(local.FLINK_HOME_ENV, str(home))
    try:
        try:
            assert local.flink_version() == FLINK_1_20
            cluster = local.start(workdir, port=port, slots=4)
            jar = build_jar(EXAMPLES / "jobs" / "counter" / "src",
                            tmp_path_factory.mktemp("build-1.20"), name="counter")
        finally:
            environment.undo()
        yield Flink120(cluster, home, jar)
    finally:
        local.stop(workdir, port=port)


@pytest.fixture
def deploy_on_1_20(spec_repo, flink_1_20):
    """A spec repo with a target for the 1.20 cluster and the 1.20 counter jar; returns a function
    writing the Deployment `name` with the given parallelism."""
    spec_repo.write_target("legacy", flink_1_20.url)
    spec_repo.add_file("jobs/counter.jar", flink_1_20.counter_jar)

    def write(name: str, parallelism: int = 1, **fields) -> None:
        spec_repo.write(f"deployments/{name}.yaml",
                        counter_deployment(name, parallelism, target="legacy", **fields))
    return write


@pytest.fixture
def rest_1_20(flink_1_20) -> Flink:
    return Flink(flink_1_20.url)


def test_the_counter_job_builds_against_flink_1_20_jars(flink_1_20, tmp_path):
    assert flink_1_20.counter_jar.is_file()
    built_for_2x = build_jar(EXAMPLES / "jobs" / "counter" / "src", tmp_path, name="counter")
    assert built_for_2x.name != flink_1_20.counter_jar.name  # the cache key holds the version


def test_first_sync_starts_the_job_on_flink_1_20(deploy_on_1_20, spec_repo, settings, rest_1_20):
    assert rest_1_20.get("/config")["flink-version"] == FLINK_1_20
    deploy_on_1_20("first-on-1-20")
    commit = spec_repo.push("first deployment")
    result = sync(settings)
    assert result.exit_code == 0
    job = rest_1_20.job("first-on-1-20", 1)
    assert rest_1_20.jobs()[job] == "RUNNING"
    status = spec_repo.status_of("first-on-1-20")
    assert status["state"] == "RUNNING" and status["sync"] == "SYNCED"
    assert status["specCommit"] == commit
    assert status["job"]["id"] == job and status["job"]["flinkStatus"] == "RUNNING"


def test_stateful_upgrade_on_flink_1_20_restores_the_savepoint_it_took(
        deploy_on_1_20, spec_repo, settings, rest_1_20, flink_1_20):
    deploy_on_1_20("stateful-on-1-20", parallelism=1)
    spec_repo.push()
    assert sync(settings).exit_code == 0
    old = rest_1_20.job("stateful-on-1-20", 1)
    rest_1_20.wait_checkpoint(old)
    deploy_on_1_20("stateful-on-1-20", parallelism=2)
    spec_repo.push("parallelism 2")
    assert sync(settings).exit_code == 0
    status = spec_repo.status_of("stateful-on-1-20")
    new = status["job"]["id"]
    assert new == rest_1_20.job("stateful-on-1-20", 2)
    assert rest_1_20.jobs()[old] == "FINISHED" and rest_1_20.jobs()[new] == "RUNNING"
    savepoint = status["lastSavepoint"]["location"]
    assert status["lastSavepoint"]["origin"] == "UPGRADE"
    assert rest_1_20.restored_from(new) == savepoint
    assert status["job"]["restoredFrom"] == savepoint
    assert rest_1_20.parallelism(new) == 2
    assert status["lastAction"]["kind"] == "STATEFUL_UPGRADE"
    # 1.20 ignores unknown request fields silently, but names the deprecated `restoreMode` in its
    # log: the run request used 1.20's `claimMode`.
    assert "The option 'restoreMode' is deprecated" not in flink_1_20.jobmanager_log.read_text()


def test_the_flink_home_variable_is_gone_after_the_cluster_started(flink_1_20):
    assert local.FLINK_HOME_ENV not in os.environ
    assert local.flink_version() != FLINK_1_20


def test_a_job_lost_with_a_flink_1_20_jobmanager_comes_back_from_its_retained_checkpoint(
        deploy_on_1_20, spec_repo, settings, rest_1_20, flink_1_20, monkeypatch):
    """As on 2.x (test_flink_faults): 1.20 writes retained checkpoints the same way. Last in this
    module: it kills the module's cluster's JobManager (and starts it again)."""
    deploy_on_1_20("lost-on-1-20", restore="LATEST_STATE")
    spec_repo.push()
    assert sync(settings).exit_code == 0
    lost = rest_1_20.job("lost-on-1-20", 1)
    rest_1_20.wait_checkpoint(lost)
    kill(flink_1_20.cluster, local.JOBMANAGER)
    monkeypatch.setenv(local.FLINK_HOME_ENV, str(flink_1_20.home))
    restart(flink_1_20.cluster)
    monkeypatch.undo()
    back = time.monotonic()
    assert sync(settings).exit_code == 0
    recovered("JobManager lost (no HA), Flink 1.20", ["lost-on-1-20"], rest_1_20, spec_repo,
              flink_1_20.cluster.savepoint_dir, back)
    status = spec_repo.status_of("lost-on-1-20")
    assert status["lastSavepoint"]["origin"] == "RETAINED_CHECKPOINT"
    assert status["lastSavepoint"]["jobId"] == lost
    assert rest_1_20.running() == [status["job"]["id"]]
    assert rest_1_20.restored_from(status["job"]["id"]) == \
        status["lastSavepoint"]["location"].replace("file:///", "file:/")


def test_a_dependency_nested_in_the_job_jar_is_on_the_job_classpath_on_flink_1_20(
        spec_repo, settings, flink_1_20, rest_1_20, tmp_path):
    """additionalDependencies on 1.20: the counter refuses to start (--needs) unless the
    dependency's class is on its classpath."""
    from test_dependencies import UDF_SOURCE, counter_artifact, with_dependencies
    spec_repo.write_target("test", flink_1_20.url)
    spec_repo.add_file("jobs/counter.jar", flink_1_20.counter_jar)
    spec_repo.add_file("jobs/udf.jar", build_jar(UDF_SOURCE, tmp_path, name="udf"))
    needing = counter_artifact() + " --needs com.example.udf.Shout"
    spec_repo.write("deployments/needing.yaml", with_dependencies("needing", needing,
                                                                  ["jobs/udf.jar"]))
    spec_repo.write("deployments/lacking.yaml", artifact_deployment(
        "lacking", needing, extra="maxJobCreationAttempts: 1"))   # the same, without it
    spec_repo.push()
    assert sync(settings).exit_code == 1
    assert spec_repo.status_of("needing")["state"] == "RUNNING"
    assert rest_1_20.jobs()[rest_1_20.job("needing", 1)] == "RUNNING"
    lacking = spec_repo.status_of("lacking")
    assert lacking["state"] == "FAILED" and "com.example.udf.Shout" in \
        lacking["lastAction"]["message"]
