"""Python jobs (issue 18, point 1) on a real Flink: PyFlink scripts kept in the spec repo run on
the local target through Flink's own Python driver, with the interpreter of tests/.pyflink/
(FLINK_GITOPS_PYTHON) — a DataStream job with keyed state deployed and upgraded statefully (its
state restored; an upgrade that would drop it caught by the state check), a Table API job with a Python function, a script that breaks at run time rolled
back; a syntax error and a missing module refused at their file:line with no job touched."""

from __future__ import annotations

import time

import pytest
import requests
import yaml

from agent.config import Settings
from agent.flink import local
from agent.load import load
from agent.python_check import add_python_check
from agent.reconcile import review, sync
from conftest import EXAMPLES, Flink, artifact_deployment, free_port
from pyflink_env import pyflink_python

COUNTS = EXAMPLES / "python" / "counts.py"
PAGE_COUNTS = EXAMPLES / "python" / "page_counts.py"


@pytest.fixture(scope="module")
def python_cluster(tmp_path_factory):
    """The agent's work dir and the port of the local target its Python tests share (the agent
    starts the cluster the first time)."""
    workdir, port = tmp_path_factory.mktemp("python-agent"), free_port()
    yield workdir, port
    local.stop(workdir, port=port)


@pytest.fixture
def pyflink(spec_repo, python_cluster, monkeypatch):
    """A spec repo with the shared local target, the agent's settings for it, and the cluster's
    REST API. Its jobs are cancelled one at a time afterwards (Apache Beam's Python workers can
    take their TaskManager down when two of them are cancelled at the same moment)."""
    monkeypatch.setenv("FLINK_GITOPS_PYTHON", str(pyflink_python()))
    workdir, port = python_cluster
    spec_repo.write("targets/local.yaml", yaml.safe_dump({
        "apiVersion": "v1", "kind": "DeploymentTarget", "metadata": {"name": "local"},
        "spec": {"local": {"port": port, "slots": 4}}}))
    rest = Flink(f"http://127.0.0.1:{port}")
    yield Settings(str(spec_repo.remote), workdir=workdir), rest
    for job in [j for j, state in rest.jobs().items() if state not in ("FINISHED", "CANCELED",
                                                                      "FAILED")]:
        requests.patch(f"{rest.url}/jobs/{job}", params={"mode": "cancel"}, timeout=10)
        deadline = time.monotonic() + 30
        while rest.jobs().get(job) not in ("CANCELED", "FAILED", "FINISHED") \
                and time.monotonic() < deadline:
            time.sleep(0.2)


def python_deployment(name: str, script: str, args: str = "--keys 4", extra: str = "") -> str:
    """The YAML of a STATEFUL PYTHON deployment on the local target."""
    return artifact_deployment(name, f"kind: PYTHON\npythonScript: {script}\nmainArgs: {args}\n",
                               target="local", extra=extra)


def test_a_python_datastream_job_is_upgraded_with_its_keyed_state_unless_it_would_drop_it(
        pyflink, spec_repo):
    settings, rest = pyflink
    spec_repo.add_file("python/counts.py", COUNTS)
    spec_repo.write("deployments/py-counts.yaml", python_deployment("py-counts",
                                                                    "python/counts.py"))
    spec_repo.push()
    result = sync(settings)
    status = spec_repo.status_of("py-counts")
    assert result.exit_code == 0, status
    first = status["job"]["id"]
    assert rest.jobs()[first] == "RUNNING" and first == rest.job("py-counts", 1)
    rest.wait_checkpoint(first)

    spec_repo.write("deployments/py-counts.yaml", python_deployment(
        "py-counts", "python/counts.py", "--keys 3"))
    spec_repo.push("three keys")
    [reviewed] = review(settings).reviews   # the state check builds the script's job graph
    assert reviewed.plan.state_check.summary == "compatible"
    assert sync(settings).exit_code == 0
    status = spec_repo.status_of("py-counts")
    assert status["lastAction"]["kind"] == "STATEFUL_UPGRADE"
    assert rest.jobs()[first] == "FINISHED"
    second = status["job"]["id"]
    assert rest.restored_from(second) == status["lastSavepoint"]["location"]

    rest.wait_checkpoint(second)
    spec_repo.write("python/counts.py", COUNTS.read_text().replace('.uid("count")',
                                                                     '.uid("counter")'))
    spec_repo.push("the keyed counting operator gets another uid")
    [reviewed] = review(settings).reviews
    assert reviewed.plan.refused, reviewed.plan.state_check.summary
    assert "dropped: KEYED PROCESS, Filter (uid `count`)" in reviewed.plan.state_check.summary
    assert sync(settings).exit_code == 1
    assert rest.running() == [second]   # never stopped


def test_a_python_table_job_with_a_python_function_runs(pyflink, spec_repo):
    settings, rest = pyflink
    spec_repo.add_file("python/page_counts.py", PAGE_COUNTS)
    spec_repo.write("deployments/py-pages.yaml", python_deployment(
        "py-pages", "python/page_counts.py", "[]"))
    spec_repo.push()
    assert sync(settings).exit_code == 0, spec_repo.status_of("py-pages")
    job = spec_repo.status_of("py-pages")["job"]["id"]
    rest.wait_checkpoint(job)
    assert rest.jobs()[job] == "RUNNING"


def test_a_script_that_fails_at_its_start_is_rolled_back_to_the_running_spec(pyflink,
                                                                             spec_repo):
    settings, rest = pyflink
    spec_repo.add_file("python/counts.py", COUNTS)
    spec_repo.write("deployments/py-rollback.yaml", python_deployment(
        "py-rollback", "python/counts.py"))
    good = spec_repo.push()
    assert sync(settings).exit_code == 0
    rest.wait_checkpoint(rest.job("py-rollback", 1))
    broken = COUNTS.read_text().replace("    main()", "    raise RuntimeError('no job today')")
    spec_repo.write("python/counts.py", broken)
    spec_repo.write("deployments/py-rollback.yaml", python_deployment(
        "py-rollback", "python/counts.py", extra="maxJobCreationAttempts: 1"))
    spec_repo.push("a script that exits before it builds a job")
    [reviewed] = review(settings).reviews   # its graph cannot be built: the check cannot judge
    assert reviewed.plan.state_check.summary.startswith("unchecked (the new job's graph could "
                                                        "not be built here: ")
    assert "the Python script: File " in reviewed.plan.state_check.summary
    assert "RuntimeError: no job today" in reviewed.plan.state_check.summary
    assert sync(settings).exit_code == 1
    status = spec_repo.status_of("py-rollback")
    message = status["lastAction"]["message"]
    assert status["lastAction"]["result"] == "FAILED" and "rolled back" in message
    assert 'the Python script: File "' in message and "counts.py\", line " in message
    assert "RuntimeError: no job today" in message   # (Flink's answer says only "exits")
    assert status["job"]["specCommit"] == good
    assert rest.running() == [status["job"]["id"]]
    assert rest.restored_from(status["job"]["id"]) == status["lastSavepoint"]["location"]


def test_a_broken_script_is_refused_at_its_line_and_the_running_job_stays(pyflink, spec_repo):
    settings, rest = pyflink
    spec_repo.add_file("python/counts.py", COUNTS)
    spec_repo.write("deployments/py-kept.yaml", python_deployment("py-kept", "python/counts.py"))
    spec_repo.push()
    assert sync(settings).exit_code == 0
    running = rest.running()
    for script, line, said in (
            ("import os\n\ndef main(:\n    pass\n", 3, "SyntaxError: "),
            ("import os\nimport no_such_module_here\n", 2,
             "ModuleNotFoundError: no module named 'no_such_module_here'")):
        spec_repo.write("python/counts.py", script)
        spec_repo.push("a broken script")
        assert sync(settings).exit_code == 1
        status = spec_repo.status_of("py-kept")
        [problem] = status["errors"]
        assert status["sync"] == "INVALID"
        assert (problem["file"], problem["line"]) == ("python/counts.py", line)
        assert problem["message"].startswith(f"pythonScript python/counts.py: {said}")
        assert rest.running() == running


def test_plan_and_validate_warn_of_a_module_the_reviewers_python_lacks(monkeypatch, tmp_path):
    monkeypatch.setenv("FLINK_GITOPS_PYTHON", str(pyflink_python()))
    text = python_deployment("checked", "python/job.py")
    loaded = load({"deployments/checked.yaml": text.encode()})
    scripts = {"python/job.py": b"import pyflink.datastream\nimport nope_nothing\n"}
    add_python_check(loaded, scripts.get, required=False)
    assert loaded.problems == []
    [warning] = loaded.warnings
    assert (warning.file, warning.line) == ("python/job.py", 2)
    assert warning.message.endswith("no module named 'nope_nothing' (here; the cluster's Python "
                                    "must have it)")


def test_only_a_traceback_written_after_the_run_request_is_quoted(tmp_path):
    from agent.flink.python import DriverOutput
    out = tmp_path / "jobmanager.out"
    out.write_text('Traceback (most recent call last):\n  File "/old.py", line 1, in <module>\n'
                   "    boom()\nNameError: name 'boom' is not defined\n")
    driver = DriverOutput(out)
    driver.mark()
    assert driver.failure() is None   # an earlier failure is not this one's
    with out.open("a") as more:
        more.write('Traceback (most recent call last):\n  File "/a/job.py", line 7, in main\n'
                   "    raise ValueError('bad')\nValueError: bad\nsome later JVM line\n")
    assert driver.failure() == 'File "/a/job.py", line 7, in main | ValueError: bad'
    assert DriverOutput(tmp_path / "missing.out").failure() is None
