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


def test_a_canary_echoed_by_a_server_reaches_no_output(deployed, spec_repo, settings,
                                                       flink_proxy):
    deployed("canary")
    spec_repo.write_target("test", flink_proxy.url,
                           headers={"Authorization": "Bearer ${CANARY_TOKEN}"})
    spec_repo.push()
    flink_proxy.echo_headers["/run"] = 400     # the job submission's error quotes the headers
    env = {"CANARY_TOKEN": CANARY}
    repo = ["--repo", settings.repo, "--workdir", str(settings.workdir)]
    outputs = []
    for args in (["-v", "sync"], ["-v", "--log-format", "json", "sync"], ["plan"],
                 ["plan", "--format", "json"], ["status"]):
        result = run(*args, *repo, env=env)
        outputs += [result.stdout, result.stderr]
    flink_proxy.echo_headers.clear()

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
