"""Secret references, read and expanded (agent.secrets): the forms, the literal, the file, and
what a missing one says (its name, never a value)."""

from __future__ import annotations

import pytest

from agent.errors import SecretMissing
from agent.logs import redact
from agent.model.references import Reference, references
from agent.secrets import MAX_SECRET_FILE_BYTES, expand, unresolved


def test_references_are_read_and_a_doubled_dollar_is_a_literal(tmp_path):
    text = "a ${USER_A} b ${file:/run/secrets/x} c $${NOT_ONE} d ${file:rel path} ${1bad}"
    assert references(text) == [Reference("USER_A"), Reference(file="/run/secrets/x"),
                                Reference(file="rel path")]
    assert [str(r) for r in references(text)] == ["${USER_A}", "${file:/run/secrets/x}",
                                                  "${file:rel path}"]


def test_expansion_reads_the_environment_and_files_and_registers_the_values(
        tmp_path, monkeypatch):
    monkeypatch.setenv("FG_TEST_VALUE", "env-s3cret")
    (tmp_path / "token").write_text("file-s3cret\n")
    text = f"x=${{FG_TEST_VALUE}} y=${{file:{tmp_path}/token}} z=$${{FG_TEST_VALUE}}"
    assert expand(text) == "x=env-s3cret y=file-s3cret z=${FG_TEST_VALUE}"
    assert redact("env-s3cret and file-s3cret") == "*** and ***"


def test_what_cannot_be_expanded_is_named_never_shown(tmp_path, monkeypatch):
    monkeypatch.delenv("FG_ABSENT", raising=False)
    (tmp_path / "big").write_bytes(b"x" * (MAX_SECRET_FILE_BYTES + 1))
    (tmp_path / "binary").write_bytes(b"\xff\xfe")
    text = (f"${{FG_ABSENT}} ${{file:{tmp_path}/none}} ${{file:{tmp_path}/big}} "
            f"${{file:{tmp_path}/binary}}")
    reasons = [why for _, why in unresolved(text)]
    assert reasons == [
        "${FG_ABSENT}: the agent's environment has no variable FG_ABSENT",
        f"${{file:{tmp_path}/none}}: No such file or directory on the agent's machine",
        f"${{file:{tmp_path}/big}}: over 65,536 bytes",
        f"${{file:{tmp_path}/binary}}: not UTF-8 text"]
    with pytest.raises(SecretMissing, match="FG_ABSENT"):
        expand(text)


def test_a_reference_a_sql_script_file_cannot_expand_is_a_problem_at_its_field(monkeypatch):
    from agent.load import load
    from agent.secret_check import add_secret_check
    monkeypatch.delenv("FG_SQL_PASSWORD", raising=False)
    spec = ("apiVersion: v1\nkind: Deployment\nmetadata: {name: sql}\nspec:\n"
            "  deploymentTargetName: t\n  template:\n    spec:\n      artifact:\n"
            "        kind: SQLSCRIPT\n        sqlScriptFile: sql/job.sql\n")
    files = {"sql/job.sql": b"CREATE TABLE t (a INT) WITH ('password' = '${FG_SQL_PASSWORD}');"}
    loaded = add_secret_check(load({"deployments/sql.yaml": spec}), files.get)
    [problem] = loaded.problems_of("Deployment", "sql")
    assert (problem.file, problem.line) == ("deployments/sql.yaml", 10)
    assert problem.message == ("sqlScriptFile sql/job.sql: ${FG_SQL_PASSWORD}: the agent's "
                               "environment has no variable FG_SQL_PASSWORD")
    reviewed = add_secret_check(load({"deployments/sql.yaml": spec}), files.get, required=False)
    assert not reviewed.problems_of("Deployment", "sql") and len(reviewed.warnings) == 1


def test_the_keyed_digest_follows_the_values_and_needs_the_key(monkeypatch, tmp_path):
    from agent.secrets import DIGEST_KEY_VARIABLE, digest_key, keyed_digest
    monkeypatch.delenv(DIGEST_KEY_VARIABLE, raising=False)
    key = digest_key(tmp_path)
    assert digest_key(tmp_path) == key and len(key) == 64
    assert (tmp_path / "secret-digest.key").stat().st_mode & 0o777 == 0o600
    monkeypatch.setenv("FG_DIGESTED", "v1-s3cret")
    texts = ["a ${FG_DIGESTED}", "b ${FG_DIGESTED}"]
    first = keyed_digest(texts, key)
    assert keyed_digest(list(reversed(texts)), key) == first
    assert keyed_digest(texts, b"another key") != first
    assert "v1-s3cret" not in first and keyed_digest(["no reference"], key) is None
    monkeypatch.setenv("FG_DIGESTED", "v2-s3cret")
    assert keyed_digest(texts, key) != first
    monkeypatch.setenv(DIGEST_KEY_VARIABLE, "shared by the agents")
    assert digest_key(tmp_path) == b"shared by the agents"
