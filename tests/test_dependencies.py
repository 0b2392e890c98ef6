"""additionalDependencies (issue 18, point 2): jars a job needs beyond its main artifact, from
any artifact source, nested in the submitted jar under `lib/` (Flink puts them on the job's
classpath) — a SQL job calling a UDF from one, on a real Flink; a JAR job whose dependency
changes is upgraded with its state; a dependency that is not there is a problem at its line and
touches no job."""

from __future__ import annotations

import shutil
import textwrap
import time
import zipfile

import pytest

from agent.flink.build import build_jar
from agent.flink.jars import with_libraries
from agent.reconcile import review, sync
from conftest import ROOT, artifact_deployment
from test_object_store_artifacts import jar_site  # noqa: F401 - the fixture: a real http site

UDF_SOURCE = ROOT / "tests" / "jobs" / "udf" / "src"
SHOUTING = """\
    CREATE TEMPORARY FUNCTION shout AS 'com.example.udf.Shout';
    CREATE TABLE words (word STRING) WITH ('connector' = 'datagen', 'rows-per-second' = '5',
      'fields.word.length' = '4');
    CREATE TABLE loud (word STRING) WITH ('connector' = 'blackhole');
    INSERT INTO loud SELECT shout(word) FROM words;
    """


@pytest.fixture(scope="module")
def udf_jar(tmp_path_factory):
    return build_jar(UDF_SOURCE, tmp_path_factory.mktemp("udf"), name="udf")


def udf_build(tmp_path, mark: str):
    """The UDF jar built again with another MARK: a new version of the dependency."""
    source = tmp_path / f"udf-{ord(mark)}"
    shutil.copytree(UDF_SOURCE, source)
    java = source / "com" / "example" / "udf" / "Shout.java"
    java.write_text(java.read_text().replace('MARK = "!"', f'MARK = "{mark}"'))
    return build_jar(source, tmp_path / "built", name="udf")


def with_dependencies(name: str, artifact: str, dependencies: list[str]) -> str:
    """The YAML of a STATEFUL deployment of `artifact` (YAML lines under `artifact:`) with
    `dependencies`."""
    listed = "".join(f"\n  - {uri}" for uri in dependencies)
    return artifact_deployment(name, f"{artifact.rstrip()}\nadditionalDependencies:{listed}\n")


def sql_artifact(script: str) -> str:
    return "kind: SQLSCRIPT\nsqlScript: |\n" + textwrap.indent(textwrap.dedent(script), "  ")


def counter_artifact() -> str:
    return "jarUri: jobs/counter.jar\nmainArgs: --rate 20 --keys 4"


def test_a_nested_jar_holds_the_job_and_each_dependency_under_lib(udf_jar, counter_jar,
                                                                  tmp_path):
    made = with_libraries(counter_jar, [udf_jar, udf_jar], tmp_path)
    with zipfile.ZipFile(made) as jar, zipfile.ZipFile(counter_jar) as own:
        names = jar.namelist()
        assert set(own.namelist()) <= set(names)
        assert [n for n in names if n.startswith("lib/")] == [
            f"lib/0-{udf_jar.name}", f"lib/1-{udf_jar.name}"]
    assert with_libraries(counter_jar, [udf_jar, udf_jar], tmp_path) == made   # made once
    assert with_libraries(counter_jar, [], tmp_path) == counter_jar


def test_a_sql_job_calls_a_function_of_its_dependency_jar(spec_repo, settings, flink, rest,
                                                          udf_jar):
    spec_repo.write_target("test", flink.url)
    spec_repo.add_file("jobs/udf.jar", udf_jar)
    spec_repo.write("deployments/shouting.yaml",
                    with_dependencies("shouting", sql_artifact(SHOUTING), ["jobs/udf.jar"]))
    spec_repo.push()
    result = sync(settings)
    status = spec_repo.status_of("shouting")
    assert result.exit_code == 0, status
    assert not status.get("warnings")   # the SQL check saw the function: checked in full
    job = status["job"]["id"]
    time.sleep(3)   # the function runs in the TaskManager: no failure
    assert rest.jobs()[job] == "RUNNING"
    assert not rest.get(f"/jobs/{job}/exceptions").get("exceptionHistory", {}).get("entries")


def test_a_jar_job_whose_dependency_changes_is_upgraded_with_its_state(
        spec_repo, settings, flink, rest, counter_jar, udf_jar, tmp_path):
    spec_repo.write_target("test", flink.url)
    spec_repo.add_file("jobs/counter.jar", counter_jar)
    spec_repo.add_file("jobs/udf.jar", udf_jar)
    spec_repo.write("deployments/depending.yaml",
                    with_dependencies("depending", counter_artifact(), ["jobs/udf.jar"]))
    spec_repo.push()
    assert sync(settings).exit_code == 0
    first = spec_repo.status_of("depending")["job"]["id"]
    rest.wait_checkpoint(first)
    assert sync(settings).outcomes == {}   # the same dependency: nothing to do

    spec_repo.add_file("jobs/udf.jar", udf_build(tmp_path, "?"))
    spec_repo.push("a new build of the dependency")
    assert [r.plan.action_name for r in review(settings).reviews] == ["STATEFUL_UPGRADE"]
    assert sync(settings).exit_code == 0
    status = spec_repo.status_of("depending")
    assert status["lastAction"]["kind"] == "STATEFUL_UPGRADE" and status["job"]["id"] != first
    assert rest.restored_from(status["job"]["id"]) == status["lastSavepoint"]["location"]


def test_a_dependency_that_is_not_there_is_a_problem_at_its_line_and_touches_no_job(
        spec_repo, settings, flink, rest, counter_jar, jar_site):
    _, site = jar_site
    spec_repo.write_target("test", flink.url)
    spec_repo.add_file("jobs/counter.jar", counter_jar)
    spec_repo.write("deployments/lacking.yaml",
                    with_dependencies("lacking", counter_artifact(), ["jobs/udf.jar"]))
    spec_repo.write("deployments/lacking-http.yaml", with_dependencies(
        "lacking-http", counter_artifact(), [f"{site}/udf.jar"]))
    spec_repo.push()
    assert sync(settings).exit_code == 1
    for name, said in (("lacking", "additionalDependencies[0] jobs/udf.jar: no file jobs/udf.jar "
                                   "in the spec repository"),
                       ("lacking-http", f"additionalDependencies[0] {site}/udf.jar: the server "
                                        "answered HTTP 404")):
        status = spec_repo.status_of(name)
        [problem] = status["errors"]
        assert (status["sync"], problem["message"]) == ("INVALID", said)
        assert (problem["file"], problem["line"]) == (f"deployments/{name}.yaml", 18)   # the entry
    assert rest.running() == []


@pytest.mark.parametrize("dependency, said", [
    ("../udf.jar", "additionalDependencies.0: '../udf.jar' is not a jar: a path in the spec "
                   "repository (e.g. jobs/udf.jar) or a URI"),
    ("ftp://host/udf.jar", "additionalDependencies[0] ftp://host/udf.jar: "),
])
def test_a_dependency_the_agent_cannot_read_is_refused_before_anything_runs(dependency, said):
    from agent.artifact_check import add_artifact_check
    from agent.load import load
    text = with_dependencies("refused", counter_artifact(), [dependency])
    loaded = add_artifact_check(load({"deployments/refused.yaml": text.encode()}),
                                lambda path: True)
    [problem] = loaded.problems
    assert said in problem.message and problem.line == 18   # the entry's line
