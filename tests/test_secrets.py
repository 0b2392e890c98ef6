"""Secrets never reach an output (DESIGN §5.6, §5.9): a canary value expanded into a target's
header, echoed back by a server in its error, is found in no status file of any commit, no
commit message, no log line (text or JSON), no plan and no terminal output."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import yaml

from agent.diff import spec_document
from agent.logs import redact, register_secret
from agent.model.spec import Deployment
from conftest import DEFAULT_STATUS_BRANCH, counter_deployment, git

CANARY = 'c4n4ry-"quoted"-\\back-t0ken'
FORMS = (CANARY, json.dumps(CANARY)[1:-1])


def run(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agent.cli", *args], capture_output=True,
                          text=True, timeout=300, env={**os.environ, **env})


def every_output(settings, flink_proxy, env: dict) -> list[str]:
    """What `sync` (text and JSON logs), `plan` (text and JSON) and `status` print, while the
    cluster's proxy answers every job submission with an error quoting the request."""
    repo = ["--repo", settings.repo, "--workdir", str(settings.workdir)]
    flink_proxy.echo_headers["/run"] = 400
    outputs = []
    for args in (["-v", "sync"], ["-v", "--log-format", "json", "sync"], ["plan"],
                 ["plan", "--format", "json"], ["status"]):
        result = run(*args, *repo, env=env)
        outputs += [result.stdout, result.stderr]
    flink_proxy.echo_headers.clear()
    return outputs


def test_a_canary_echoed_by_a_server_reaches_no_output(deployed, spec_repo, settings,
                                                       flink_proxy):
    deployed("canary")
    spec_repo.write_target("test", flink_proxy.url,
                           headers={"Authorization": "Bearer ${CANARY_TOKEN}"})
    spec_repo.push()
    outputs = every_output(settings, flink_proxy, {"CANARY_TOKEN": CANARY})

    status = spec_repo.status_of("canary")
    assert "request headers" in status["lastAction"]["message"]     # the echo did happen
    assert "Bearer ***" in status["lastAction"]["message"]
    branch = git(spec_repo.remote, "log", "-p", "--format=%B", DEFAULT_STATUS_BRANCH)
    everything = "\n".join(outputs + [branch])
    for form in FORMS:
        assert form not in everything
    assert "c4n4ry" not in everything


def test_redaction_finds_a_secret_as_json_and_yaml_write_it():
    secret = 'p@ss"w\\ord-é'
    register_secret(secret)
    for form in (secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]):
        assert redact(f"x {form} y") == "x *** y"


def test_the_applied_spec_keeps_no_secret_looking_value():
    text = counter_deployment("masked", args="--rate 20 --db-password hunter2 --api-key=k3y "
                              "--keys 4", options="sasl.jaas.config: 'x required;'; "
                              "fs.azure.account.key.acct.dfs.core.windows.net: azkey; "
                              "s3.access.key: AKIA")
    text = text.replace("jobs/counter.jar", "https://user:pw@repo.example.com/job.jar")
    document = spec_document(Deployment.model_validate(yaml.safe_load(text)))
    template = document["spec"]["template"]["spec"]
    assert template["artifact"]["mainArgs"] == (
        "--rate 20 --db-password '***' '--api-key=***' --keys 4")
    assert template["artifact"]["jarUri"] == "https://***@repo.example.com/job.jar"
    options = template["flinkConfiguration"]
    assert options["sasl.jaas.config"] == options["s3.access.key"] == "***"
    assert options["fs.azure.account.key.acct.dfs.core.windows.net"] == "***"


def test_the_applied_spec_keeps_no_secret_of_a_sql_script_but_its_references():
    script = ("CREATE TABLE t (a INT) WITH ('connector' = 'jdbc', 'password' = 'hun''ter2', "
              "'sasl.jaas.config'='${file:/run/jaas}', 'url' = 'jdbc:x');")
    document = spec_document(Deployment.model_validate({
        "metadata": {"name": "sql"}, "spec": {"deploymentTargetName": "t", "template": {"spec": {
            "artifact": {"kind": "SQLSCRIPT", "sqlScript": script}}}}}))
    assert document["spec"]["template"]["spec"]["artifact"]["sqlScript"] == (
        "CREATE TABLE t (a INT) WITH ('connector' = 'jdbc', 'password' = '***', "
        "'sasl.jaas.config'='${file:/run/jaas}', 'url' = 'jdbc:x');")


DB_CANARY, FILE_CANARY = "db-c4n4ry-pa55", "file-c4n4ry-t0ken"


def test_secret_references_reach_flink_expanded_and_no_output_as_values(
        deployed, spec_repo, settings, flink_proxy, tmp_path):
    """`${VAR}` and `${file:PATH}` in flinkConfiguration and mainArgs: the run request carries
    the values (a file's trailing newline trimmed), while every output — status branch (every
    commit), logs (text and JSON), plans, the terminal, a Flink error quoting the request —
    carries the references or `***`, never a value."""
    secret_file = tmp_path / "api-token"
    secret_file.write_text(FILE_CANARY + "\n")
    def referenced(extra: str = "") -> None:
        deployed("referenced", args="--rate 20 --keys 4 --password ${FG_DB_PASSWORD}",
                 options=f"db.password: ${{FG_DB_PASSWORD}}; api.token: ${{file:{secret_file}}}; "
                         "literal: $${FG_DB_PASSWORD}", extra=extra)
    referenced()
    spec_repo.write_target("test", flink_proxy.url)
    spec_repo.push()
    env = {"FG_DB_PASSWORD": DB_CANARY}
    outputs = every_output(settings, flink_proxy, env)
    referenced(extra="restartNonce: 1")         # the refused start, tried again
    spec_repo.push("try again")
    result = run("sync", "--repo", settings.repo, "--workdir", str(settings.workdir), env=env)
    outputs += [result.stdout, result.stderr]
    assert result.returncode == 0, result.stderr

    sent = flink_proxy.sent("POST", "/run")[-1]
    assert sent["flinkConfiguration"]["db.password"] == DB_CANARY
    assert sent["flinkConfiguration"]["api.token"] == FILE_CANARY
    assert sent["flinkConfiguration"]["literal"] == "${FG_DB_PASSWORD}"
    assert sent["programArgsList"][-2:] == ["--password", DB_CANARY]
    status = spec_repo.status_of("referenced")
    applied = status["appliedSpec"]["spec"]["template"]["spec"]
    assert applied["artifact"]["mainArgs"].endswith("--password '${FG_DB_PASSWORD}'")
    assert applied["flinkConfiguration"]["db.password"] == "${FG_DB_PASSWORD}"
    branch = git(spec_repo.remote, "log", "-p", "--format=%B", DEFAULT_STATUS_BRANCH)
    everything = "\n".join(outputs + [branch])
    assert "body:" in everything and "c4n4ry" not in everything


def test_a_secret_the_new_jobs_main_quotes_in_the_state_check_reaches_no_output(
        checkpointed, deployed, spec_repo, settings):
    """The state check runs the new job's main with its arguments expanded; the main fails
    quoting one (NumberFormatException: For input string: "…"): `plan` and `sync` say why the
    state is unchecked, never the value."""
    checkpointed("quoted")
    deployed("quoted", args="--rate 20 --keys ${FG_KEYS}")
    spec_repo.push("keys from a secret")
    env, repo = {"FG_KEYS": "k3ys-c4n4ry"}, ["--repo", settings.repo,
                                            "--workdir", str(settings.workdir)]
    outputs = []
    for args in (["plan"], ["plan", "--format", "json"], ["-v", "sync"]):
        result = run(*args, *repo, env=env)
        outputs += [result.stdout, result.stderr]
    assert "State check: unchecked (the new job's graph could not be built here: " in outputs[0]
    assert 'The main method caused an error: For input string: "***"' in outputs[0]
    branch = git(spec_repo.remote, "log", "-p", "--format=%B", DEFAULT_STATUS_BRANCH)
    assert "c4n4ry" not in "\n".join(outputs + [branch])


def test_a_reference_that_cannot_be_expanded_makes_the_deployment_invalid_and_stops_nothing(
        deployed, spec_repo, settings, rest):
    """A variable the agent's environment lacks: INVALID at the field's line, naming the
    variable; the running job stays as it is."""
    from agent.reconcile import review, sync
    deployed("unexpanded")
    spec_repo.push()
    assert sync(settings).exit_code == 0
    job = rest.job("unexpanded", 1)
    deployed("unexpanded", parallelism=2, options="db.password: ${FG_NOT_SET_ANYWHERE}")
    spec_repo.push("a password by reference")
    assert sync(settings).exit_code == 1
    status = spec_repo.status_of("unexpanded")
    [problem] = status["errors"]
    assert problem["file"] == "deployments/unexpanded.yaml" and problem["line"] == 21
    assert problem["message"] == ("flinkConfiguration db.password: ${FG_NOT_SET_ANYWHERE}: the "
                                  "agent's environment has no variable FG_NOT_SET_ANYWHERE")
    assert status["sync"] == "INVALID" and rest.running() == [job]
    [reviewed] = review(settings).reviews
    assert not reviewed.problems and "the agent's machine must have it" in reviewed.warnings[0]


ROTATING = "{team: test}\n          annotations: {flink-gitops.io/restart-on-secret-change: 'true'}"


def test_a_rotated_secret_restarts_only_the_deployments_that_opt_in(
        deployed, spec_repo, settings, rest, monkeypatch):
    """Two deployments reference one variable, one opted in (its annotation). Its value rotated:
    the opted-in job is upgraded with a savepoint, the plan naming the secrets, and the other
    keeps running. Opting in later restarts nothing; a review where the variable is not set
    takes the values as unchanged, and says so. No value reaches the status branch."""
    from agent.reconcile import review, sync
    monkeypatch.setenv("FG_ROTATING", "first-c4n4ry")
    deployed("rotating", labels=ROTATING, options="db.password: ${FG_ROTATING}")
    deployed("steady", options="db.password: ${FG_ROTATING}")
    spec_repo.push()
    assert sync(settings).exit_code == 0
    rotating, steady = rest.job("rotating", 1), rest.job("steady", 1)
    assert spec_repo.status_of("rotating")["appliedInputs"]["secrets"]

    monkeypatch.setenv("FG_ROTATING", "second-c4n4ry")
    [planned] = [r for r in review(settings).reviews if r.plan.changes_anything]
    assert planned.name == "rotating" and planned.plan.action.value == "STATEFUL_UPGRADE"
    assert "secret references (their values)" in planned.plan.reason
    rest.wait_checkpoint(rotating)
    result = sync(settings)
    assert result.exit_code == 0 and set(result.outcomes) == {"rotating"}
    status = spec_repo.status_of("rotating")
    assert status["job"]["id"] != rotating and status["lastSavepoint"]["jobId"] == rotating
    assert steady in rest.running()

    deployed("steady", labels=ROTATING, options="db.password: ${FG_ROTATING}")
    spec_repo.push("steady opts in")
    result = sync(settings)
    assert result.exit_code == 0 and result.outcomes == {} and steady in rest.running()

    monkeypatch.delenv("FG_ROTATING")
    reviewed = {r.name: r for r in review(settings).reviews}
    assert not reviewed["rotating"].plan.changes_anything
    assert any("takes them as unchanged" in w for w in reviewed["rotating"].warnings)
    branch = git(spec_repo.remote, "log", "-p", DEFAULT_STATUS_BRANCH)
    assert "c4n4ry" not in branch
