"""SQL deployments (`artifact.kind: SQLSCRIPT`) against the real Flink cluster: the agent's SQL
runner starts a script as one job under the agent's job id, a stateful upgrade restores the
aggregation's savepoint, Flink's parser refuses a broken script before it runs, and a `.sql` file
in the spec repo is part of the job."""

from __future__ import annotations

import textwrap

import pytest

from agent.job_ids import deployment_key
from agent.reconcile import sync
from agent.validate import validate
from conftest import artifact_deployment
from test_drift import wait_for

TWO_SINKS = """\
SET 'execution.checkpointing.interval' = '2s';
-- one source, two sinks: both INSERTs run as one job (a statement set)
CREATE TEMPORARY TABLE orders (id BIGINT, amount DOUBLE) WITH (
  'connector' = 'datagen', 'rows-per-second' = '10');
CREATE TEMPORARY TABLE big (id BIGINT, amount DOUBLE) WITH ('connector' = 'blackhole');
CREATE TEMPORARY TABLE small (id BIGINT, note STRING) WITH ('connector' = 'blackhole');
INSERT INTO big SELECT id, amount FROM orders WHERE amount >= 0;
INSERT INTO small SELECT id, 'a ; in a string' FROM orders WHERE amount < 0;
"""

COUNTS = """\
CREATE TEMPORARY TABLE clicks (page INT, visitor STRING) WITH (
  'connector' = 'datagen', 'rows-per-second' = '{rate}',
  'fields.page.min' = '1', 'fields.page.max' = '8');
CREATE TEMPORARY TABLE clicks_per_page (page INT, clicks BIGINT, PRIMARY KEY (page) NOT ENFORCED)
  WITH ('connector' = 'blackhole');
INSERT INTO clicks_per_page
SELECT page, COUNT(*) FROM clicks GROUP BY page;
"""


BOUNDED = """\
CREATE TEMPORARY TABLE numbers (n BIGINT) WITH (
  'connector' = 'datagen', 'number-of-rows' = '{rows}', 'rows-per-second' = '10');
CREATE TEMPORARY TABLE sink (n BIGINT) WITH ('connector' = 'blackhole');
INSERT INTO sink SELECT n FROM numbers;
"""


def sql_deployment(name: str, script: str | None = None, script_file: str | None = None,
                   parallelism: int = 1) -> str:
    """The YAML of a STATEFUL SQL Deployment, its script inline (a literal block) or in a file."""
    if script is not None:
        artifact = "sqlScript: |\n" + textwrap.indent(script, " " * 2)
    else:
        artifact = f"sqlScriptFile: {script_file}\n"
    return artifact_deployment(name, "kind: SQLSCRIPT\n" + artifact, parallelism=parallelism)


@pytest.fixture
def push_sql(spec_repo, settings, flink):
    """A spec repo with a target for the test cluster; returns a function that writes a SQL
    Deployment (and its .sql file, with `file_script`), pushes it and runs `sync`."""
    spec_repo.write_target("test", flink.url)

    def push(name: str, script: str | None = None, file_script: str | None = None,
             parallelism: int = 1, message: str = "change"):
        script_file = f"sql/{name}.sql" if file_script is not None else None
        if script_file:
            spec_repo.write(script_file, file_script)
        spec_repo.write(f"deployments/{name}.yaml",
                        sql_deployment(name, script, script_file, parallelism))
        spec_repo.push(message)
        return sync(settings)
    return push


def test_a_sql_deployment_runs_its_inserts_as_one_job_under_the_agents_job_id(
        push_sql, spec_repo, rest):
    result = push_sql("orders", TWO_SINKS, message="a SQL deployment")
    assert result.exit_code == 0, result.outcomes
    job = rest.job("orders", 1)
    assert rest.running() == [job]
    details = rest.get(f"/jobs/{job}")
    assert details["name"] == "orders"                       # the runner names the job
    assert {v["name"].split(":")[0] for v in details["vertices"]} >= {"Source"}
    sinks = [v for v in details["vertices"] if "big" in v["name"] or "small" in v["name"]]
    assert sinks, "both INSERTs are part of the one job"
    # SET in the script overrides the spec's flinkConfiguration (1s)
    assert rest.get(f"/jobs/{job}/checkpoints/config")["interval"] == 2000
    status = spec_repo.status_of("orders")
    assert status["job"]["id"] == job and status["sync"] == "SYNCED"
    assert (status["lastAction"]["kind"], status["lastAction"]["result"]) == ("START", "SUCCESS")


def test_a_stateful_upgrade_of_a_sql_aggregation_restores_its_savepoint(push_sql, spec_repo,
                                                                       rest):
    assert push_sql("clicks", COUNTS.format(rate=20)).exit_code == 0
    old = rest.job("clicks", 1)
    rest.wait_checkpoint(old)
    result = push_sql("clicks", COUNTS.format(rate=20), parallelism=2, message="parallelism 2")
    assert result.exit_code == 0, result.outcomes
    new = rest.job("clicks", 2)
    status = spec_repo.status_of("clicks")
    assert status["lastAction"]["kind"] == "STATEFUL_UPGRADE"
    assert rest.jobs()[old] == "FINISHED" and rest.running() == [new]
    savepoint = status["lastSavepoint"]["location"]
    assert rest.restored_from(new) == savepoint               # Flink's own record
    assert rest.parallelism(new) == 2


def test_a_bounded_query_that_finished_is_finished_and_never_run_again(push_sql, spec_repo,
                                                                       settings, rest):
    """A job that ends FINISHED by itself (no savepoint of the agent's stopped it) is done: the
    cycles that see it record it FINISHED and start nothing (a batch job is not run again)."""
    assert push_sql("nightly", BOUNDED.format(rows=20), message="a bounded query").exit_code == 0
    job = rest.job("nightly", 1)
    wait_for(lambda: rest.jobs()[job] == "FINISHED")
    for _ in range(2):
        assert sync(settings).exit_code == 0
        status = spec_repo.status_of("nightly")
        assert (status["state"], status["sync"]) == ("FINISHED", "SYNCED")
        assert (status["job"]["id"], status["job"]["state"]) == (job, "FINISHED")
        assert status["lastAction"]["kind"] == "START"
        assert [j for j in rest.jobs() if j.startswith(deployment_key("nightly"))] == [job]


def test_a_sql_syntax_error_is_refused_with_flinks_message_and_line_and_the_job_runs_on(
        push_sql, spec_repo, settings, rest):
    assert push_sql("typo", COUNTS.format(rate=5)).exit_code == 0
    running = rest.job("typo", 1)
    broken = COUNTS.format(rate=5).replace("FROM clicks GROUP", "FORM clicks GROUP")
    spec_repo.write("deployments/typo.yaml", sql_deployment("typo", broken, parallelism=2))

    [problem] = validate(spec_repo.checkout, cache_dir=settings.artifact_cache).problems
    yaml_lines = (spec_repo.checkout / "deployments/typo.yaml").read_text().splitlines()
    assert problem.file == "deployments/typo.yaml"
    assert "FORM clicks" in yaml_lines[problem.line - 1]
    column = yaml_lines[problem.line - 1].index("clicks GROUP") + 1
    assert problem.message.startswith(
        f'sqlScript: SQL parse failed. Encountered "clicks" at line {problem.line}, '
        f"column {column}.")

    spec_repo.push("a typo in the SQL")
    result = sync(settings)
    assert result.exit_code == 1, (result.outcomes, [d.status for d in result.documents])
    assert rest.running() == [running]                         # untouched
    status = spec_repo.status_of("typo")
    assert status["sync"] == "INVALID" and status["state"] == "RUNNING"
    [error] = status["errors"]
    assert (error["file"], error["line"]) == ("deployments/typo.yaml", problem.line)
    assert "SQL parse failed" in error["message"]


def test_editing_only_the_sql_file_upgrades_the_job(push_sql, spec_repo, settings, rest):
    assert push_sql("clicks-file", file_script=COUNTS.format(rate=5)).exit_code == 0
    old = rest.job("clicks-file", 1)
    rest.wait_checkpoint(old)
    assert sync(settings).outcomes == {}                       # nothing changed, nothing done

    spec_repo.write("sql/clicks-file.sql", COUNTS.format(rate=50))
    spec_repo.push("only the SQL file")
    result = sync(settings)
    assert result.exit_code == 0, result.outcomes
    new = rest.job("clicks-file", 2)
    assert rest.running() == [new] and rest.jobs()[old] == "FINISHED"
    status = spec_repo.status_of("clicks-file")
    assert status["lastAction"]["kind"] == "STATEFUL_UPGRADE"
    assert rest.restored_from(new) == status["lastSavepoint"]["location"]


def test_a_broken_sql_file_is_reported_at_its_own_line(spec_repo, settings, tmp_path):
    spec_repo.write_target("test", "http://127.0.0.1:9")
    spec_repo.write("deployments/broken-file.yaml",
                    sql_deployment("broken-file", script_file="sql/clicks.sql"))
    spec_repo.write("sql/clicks.sql", COUNTS.format(rate=5).replace("COUNT(*)", "COUNT(*),"))
    [problem] = validate(spec_repo.checkout, cache_dir=settings.artifact_cache).problems
    assert (problem.file, problem.line) == ("sql/clicks.sql", 7)
    assert problem.message.startswith("sqlScriptFile: SQL parse failed. Incorrect syntax near "
                                      "the keyword 'FROM' at line 7, column 24.")


def test_a_query_change_the_state_check_could_not_judge_that_flink_cannot_map_is_rolled_back(
        push_sql, spec_repo, rest, monkeypatch):
    """(The state check finds such a change before anything stops, test_state_compatibility;
    here its JVM is given no time, so it is unchecked and Flink finds it.)"""
    monkeypatch.setattr("agent.flink.compatibility.INSPECT_TIMEOUT_S", 0.01)
    assert push_sql("reshaped", COUNTS.format(rate=5)).exit_code == 0
    rest.wait_checkpoint(rest.job("reshaped", 1))
    reshaped = COUNTS.format(rate=5).replace(
        "FROM clicks GROUP BY page",
        "FROM (SELECT DISTINCT page, visitor FROM clicks) GROUP BY page")  # one operator more
    result = push_sql("reshaped", reshaped, message="DISTINCT: one operator more")
    assert result.exit_code == 1
    outcome = result.outcomes["reshaped"]
    assert "rolled back" in outcome.message, outcome.message
    assert "Cannot map checkpoint/savepoint state for operator" in outcome.message, outcome.message
    status = spec_repo.status_of("reshaped")
    assert status["lastAction"]["result"] == "FAILED"
    [running] = rest.running()
    assert rest.restored_from(running) == status["lastSavepoint"]["location"]
