"""SQL deployments (`artifact.kind: SQLSCRIPT`) against the real Flink cluster: the agent's SQL
runner starts a script as one job under the agent's job id, a stateful upgrade restores the
aggregation's savepoint, Flink's parser refuses a broken script before it runs, and a `.sql` file
in the spec repo is part of the job."""

from __future__ import annotations

import textwrap

from agent.reconcile import sync
from agent.validate import validate

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


def sql_deployment(name: str, script: str | None = None, script_file: str | None = None,
                   parallelism: int = 1) -> str:
    """The YAML of a STATEFUL SQL Deployment, its script inline (a literal block) or in a file."""
    if script is not None:
        artifact = "sqlScript: |\n" + textwrap.indent(script, " " * 10)
    else:
        artifact = f"sqlScriptFile: {script_file}\n"
    return textwrap.dedent(f"""\
        apiVersion: v1
        kind: Deployment
        metadata:
          name: {name}
        spec:
          deploymentTargetName: test
          upgradeStrategy: {{kind: STATEFUL}}
          restoreStrategy: {{kind: LATEST_SAVEPOINT}}
          template:
            spec:
              parallelism: {parallelism}
              flinkConfiguration:
                execution.checkpointing.interval: 1s
              artifact:
                kind: SQLSCRIPT
        """) + " " * 8 + artifact


def test_a_sql_deployment_runs_its_inserts_as_one_job_under_the_agents_job_id(
        spec_repo, settings, flink, rest):
    spec_repo.write_target("test", flink.url)
    spec_repo.write("deployments/orders.yaml", sql_deployment("orders", TWO_SINKS))
    spec_repo.push("a SQL deployment")
    result = sync(settings)
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


def test_a_stateful_upgrade_of_a_sql_aggregation_restores_its_savepoint(spec_repo, settings,
                                                                       flink, rest):
    spec_repo.write_target("test", flink.url)
    spec_repo.write("deployments/clicks.yaml",
                    sql_deployment("clicks", COUNTS.format(rate=20), parallelism=1))
    spec_repo.push()
    assert sync(settings).exit_code == 0
    old = rest.job("clicks", 1)
    rest.wait_checkpoint(old)
    spec_repo.write("deployments/clicks.yaml",
                    sql_deployment("clicks", COUNTS.format(rate=20), parallelism=2))
    spec_repo.push("parallelism 2")
    result = sync(settings)
    assert result.exit_code == 0, result.outcomes
    new = rest.job("clicks", 2)
    status = spec_repo.status_of("clicks")
    assert status["lastAction"]["kind"] == "STATEFUL_UPGRADE"
    assert rest.jobs()[old] == "FINISHED" and rest.running() == [new]
    savepoint = status["lastSavepoint"]["location"]
    assert rest.restored_from(new) == savepoint               # Flink's own record
    assert rest.parallelism(new) == 2


def test_a_sql_syntax_error_is_refused_with_flinks_message_and_line_and_the_job_runs_on(
        spec_repo, settings, flink, rest):
    spec_repo.write_target("test", flink.url)
    spec_repo.write("deployments/typo.yaml", sql_deployment("typo", COUNTS.format(rate=5)))
    spec_repo.push()
    assert sync(settings).exit_code == 0
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


def test_editing_only_the_sql_file_upgrades_the_job(spec_repo, settings, flink, rest):
    spec_repo.write_target("test", flink.url)
    spec_repo.write("deployments/clicks-file.yaml",
                    sql_deployment("clicks-file", script_file="sql/clicks.sql"))
    spec_repo.write("sql/clicks.sql", COUNTS.format(rate=5))
    spec_repo.push()
    assert sync(settings).exit_code == 0
    old = rest.job("clicks-file", 1)
    rest.wait_checkpoint(old)
    assert sync(settings).outcomes == {}                       # nothing changed, nothing done

    spec_repo.write("sql/clicks.sql", COUNTS.format(rate=50))
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
