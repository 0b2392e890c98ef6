"""SQL deployments before they run: the artifact's fields, where a script's lines are in the spec
repo, and how Flink's verdicts become problems and warnings (pure; a fake checker), plus Flink's
own planner checking scripts in one JVM (real Flink jars, no cluster)."""

from __future__ import annotations

import textwrap

import pytest

from agent.errors import SqlCheckUnavailable
from agent.flink.artifacts import job_program
from agent.flink.runner import RUNNER_CLASS, ScriptVerdict, check_scripts
from agent.load import load
from agent.sql import SqlScript, check_sql, inline_script, placed
from agent.validate import validate

DEPLOYMENT = """\
apiVersion: v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  deploymentTargetName: local
  template:
    spec:
      artifact:
        kind: {kind}
{artifact}
"""

TARGET = """\
apiVersion: v1
kind: DeploymentTarget
metadata: {name: local}
spec: {local: {port: 8081}}
"""

SCRIPT = """\
CREATE TEMPORARY TABLE s (k INT) WITH ('connector' = 'datagen');
CREATE TEMPORARY TABLE t (k INT) WITH ('connector' = 'blackhole');
INSERT INTO t SELECT k FROM s;
"""


def deployment(artifact: str, kind: str = "SQLSCRIPT", name: str = "q") -> str:
    return DEPLOYMENT.format(name=name, kind=kind, artifact=textwrap.indent(artifact, " " * 8))


def literal(script: str) -> str:
    return "sqlScript: |\n" + textwrap.indent(script, "  ")


def problems_of(text: str) -> list[str]:
    return [p.message for p in load({"d.yaml": text}).problems]


def test_a_sql_artifact_takes_exactly_one_of_script_and_script_file():
    assert problems_of(deployment(literal(SCRIPT))) == []
    assert problems_of(deployment("sqlScriptFile: sql/q.sql")) == []
    [both] = problems_of(deployment(literal(SCRIPT) + "sqlScriptFile: sql/q.sql"))
    assert "exactly one of sqlScript" in both
    [neither] = problems_of(deployment(""))
    assert "exactly one of sqlScript" in neither


def test_a_sql_artifact_refuses_jar_fields_and_a_jar_artifact_refuses_sql_fields():
    [jar_uri] = problems_of(deployment(literal(SCRIPT) + "jarUri: jobs/x.jar"))
    assert "SQLSCRIPT takes no jarUri" in jar_uri
    [sql] = problems_of(deployment("jarUri: jobs/x.jar\nsqlScript: SELECT 1", kind="JAR"))
    assert "JAR takes no sqlScript" in sql
    [url] = problems_of(deployment("sqlScriptFile: https://example.com/q.sql"))
    assert "a path in the spec repository" in url


def test_a_sql_script_file_in_the_repo_is_part_of_the_job():
    spec = load({"d.yaml": deployment("sqlScriptFile: ./sql/../sql/q.sql")}).deployments["q"].spec
    assert spec.spec.template.spec.artifact.repo_file() == "sql/q.sql"
    assert spec.job_hash("blob-1") != spec.job_hash("blob-2")


def test_a_literal_block_maps_line_for_line_and_keeps_its_indentation():
    yaml_lines = ["artifact:", "  sqlScript: |", "    SELECT 1;", "    INSERT INTO t"]
    script = inline_script("q", "SELECT 1;\nINSERT INTO t\n", "d.yaml", 2, yaml_lines)
    assert (script.first_line, script.indent, script.mapped) == (3, 4, True)
    assert script.place(2, 3) == (4, 7)


def test_a_one_line_script_maps_to_its_key_line_after_the_key():
    line = "  sqlScript: 'INSERT INTO t SELECT 1'"
    script = inline_script("q", "INSERT INTO t SELECT 1", "d.yaml", 5, ["x"] * 4 + [line])
    assert script.place(1, 1) == (5, line.index("INSERT") + 1)


def test_a_folded_script_is_not_mapped_and_keeps_the_scripts_positions():
    yaml_lines = ["  sqlScript: >", "    SELECT 1;"]
    script = inline_script("q", "SELECT 1;\n", "d.yaml", 1, yaml_lines)
    assert not script.mapped
    problem = placed(script, ScriptVerdict(False, 3, 1, "Encountered x at line 2, column 4."))
    assert problem.line == 2   # the script's first line, just below the key
    assert "at line 4, column 4 of the script" in problem.message


def test_flinks_positions_relative_to_the_statement_become_file_positions():
    script = SqlScript("q", SCRIPT, "d.yaml", first_line=10, indent=4)
    first = placed(script, ScriptVerdict(False, 3, 5, 'Encountered "x" at line 1, column 7.'))
    assert (first.file, first.line) == ("d.yaml", 12)
    assert first.message == 'sqlScript: Encountered "x" at line 12, column 15.'  # 5+7-1 + 4
    later = placed(script, ScriptVerdict(
        False, 3, 5, "From line 2, column 3 to line 2, column 6: Column 'n' not found"))
    assert later.message == ("sqlScript: From line 13, column 7 to line 13, column 10: "
                             "Column 'n' not found")
    file_script = SqlScript("q", SCRIPT, "sql/q.sql", 1, origin="sqlScriptFile")
    in_file = placed(file_script, ScriptVerdict(False, 2, 1, "bad at line 1, column 3"))
    assert (in_file.file, in_file.line, in_file.message) == (
        "sql/q.sql", 2, "sqlScriptFile: bad at line 2, column 3")


def _loaded(*documents: str):
    return load({f"d{i}.yaml": text for i, text in enumerate(documents)} | {"t.yaml": TARGET})


def test_without_java_the_sql_check_is_skipped_with_its_reason():
    def no_java(scripts):
        raise SqlCheckUnavailable("no `java` on PATH; install a JDK 17")

    checked = check_sql(_loaded(deployment(literal(SCRIPT))), lambda path: None, no_java)
    assert checked.problems == []
    [warning] = checked.warnings
    assert warning.message == "SQL script not checked: no `java` on PATH; install a JDK 17"


def test_a_missing_sql_file_is_a_problem_at_its_field():
    checked = check_sql(_loaded(deployment("sqlScriptFile: sql/gone.sql")), lambda path: None,
                        lambda scripts: pytest.fail("nothing to check"))
    [problem] = checked.problems
    assert (problem.file, problem.line, problem.name) == ("d0.yaml", 10, "q")
    assert "no file sql/gone.sql in the spec repository" in problem.message


def test_a_connector_missing_on_the_agent_only_warns():
    missing = ScriptVerdict(False, 1, 1, "Could not find any factory for identifier 'kafka'")
    checked = check_sql(_loaded(deployment(literal(SCRIPT))), lambda path: None,
                        lambda scripts: [missing])
    assert checked.problems == []
    assert "checked only in part" in checked.warnings[0].message


def test_validate_without_java_says_the_sql_check_was_skipped(tmp_path, monkeypatch):
    (tmp_path / "t.yaml").write_text(TARGET)
    (tmp_path / "d.yaml").write_text(deployment(literal(SCRIPT)))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    result = validate(tmp_path, cache_dir=tmp_path / "cache")
    assert result.valid
    [warning] = result.warnings
    assert "d.yaml:11: SQL script not checked: " in warning and "`javac`" in warning


def test_a_sql_job_runs_the_runner_with_the_script_read_at_the_commit(tmp_path):
    spec = load({"d.yaml": deployment("sqlScriptFile: sql/q.sql")}).deployments["q"].spec
    program = job_program(spec, tmp_path, {"sql/q.sql": SCRIPT.encode()}.get)
    assert program.entry_class == RUNNER_CLASS
    assert program.args == ["--name", "q", "--script", SCRIPT]
    assert program.jar.is_file()


def test_flink_checks_every_script_in_one_jvm_and_remembers_its_verdicts(tmp_path):
    tricky = ("-- a comment; with a semicolon\n" + SCRIPT.replace(
        "SELECT k FROM s", "SELECT k FROM s WHERE 'a;b' <> '/* no comment */'")
        + "/* trailing; */\n")
    unknown = SCRIPT.replace("SELECT k FROM", "SELECT nope FROM")
    no_insert = SCRIPT.split("INSERT")[0] + "SELECT 1;\n"
    verdicts = check_scripts([tricky, unknown, no_insert], tmp_path)
    assert verdicts[0] == ScriptVerdict(True)
    assert (verdicts[1].ok, verdicts[1].line, verdicts[1].column) == (False, 3, 1)
    assert "Column 'nope' not found" in verdicts[1].message
    assert "a query without INSERT INTO has no sink" in verdicts[2].message
    assert len(list((tmp_path / "sql-checks").glob("*.json"))) == 3
    assert check_scripts([unknown], tmp_path) == [verdicts[1]]


def test_plan_shows_that_a_sql_check_was_skipped_and_why():
    from agent.plan import held
    from agent.report.review import Review, ReviewSet, render_json, render_markdown

    why = "d.yaml:11: SQL script not checked: no `java` on PATH; install a JDK 17"
    reviews = ReviewSet("a" * 40, None, (Review("q", held("q", "unchanged"), warnings=(why,)),))
    assert f"- ⚠️ {why}" in render_markdown(reviews)
    assert why in render_json(reviews)
