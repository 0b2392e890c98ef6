"""The `flink-gitops` command as a user runs it: real processes, real Flink, real git."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from agent.errors import JavaMissing
from agent.flink import application, local
from conftest import free_port

COMMAND = [sys.executable, "-m", "agent.cli"]


def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*COMMAND, *args], capture_output=True, text=True, timeout=timeout)


def test_demo_deploys_then_upgrades_statefully_and_stops_what_it_started(tmp_path):
    port = free_port()
    result = run("demo", "--port", str(port), "--workdir", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    out = " ".join(result.stdout.split())
    assert "START SUCCESS" in out
    assert "STATEFUL_UPGRADE SUCCESS" in out
    assert "restored from: file:" in out
    assert "| ✅ | [counter](deployments/counter.md) | RUNNING | SYNCED |" in result.stdout
    assert "| ✅ | [order-totals](deployments/order-totals.md) | RUNNING | SYNCED |" \
        in result.stdout   # in its own cluster (application mode)
    assert "order-totals: its own cluster at http://127.0.0.1:" in out
    assert not local.status(tmp_path / "demo" / "agent", port).running
    assert application.find(tmp_path / "demo" / "agent", "order-totals") is None


def test_local_start_reuses_a_running_cluster_and_stop_ends_it(tmp_path):
    port = str(free_port())
    try:
        started = run("local", "start", "--port", port, "--slots", "2", "--workdir", str(tmp_path))
        assert started.returncode == 0, started.stderr
        assert f"http://127.0.0.1:{port}" in started.stdout
        pids = local.status(tmp_path, int(port)).pids
        again = run("local", "start", "--port", port, "--workdir", str(tmp_path))
        assert again.returncode == 0 and local.status(tmp_path, int(port)).pids == pids
        shown = run("local", "status", "--port", port, "--workdir", str(tmp_path))
        assert shown.returncode == 0 and "2/2 slots free" in shown.stdout
    finally:
        stopped = run("local", "stop", "--port", port, "--workdir", str(tmp_path))
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    after = run("local", "status", "--port", port, "--workdir", str(tmp_path))
    assert after.returncode == 1 and "not running" in after.stdout


def test_a_pid_file_naming_another_process_is_no_cluster_and_that_process_is_untouched(
        tmp_path):
    """A pid recycled by another program after the machine restarted: `local status` and
    `local stop` see no cluster, and never signal that program."""
    port = free_port()
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        home = local.home(tmp_path, port)
        home.mkdir(parents=True)
        for role in (local.JOBMANAGER, local.TASKMANAGER):
            (home / f"{role}.pid").write_text(str(stranger.pid))
        assert local.status(tmp_path, port).pids == {}
        run("local", "stop", "--port", str(port), "--workdir", str(tmp_path))
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


def test_a_missing_java_is_a_clear_error_naming_the_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(JavaMissing, match="apt-get install -y openjdk-17-jdk-headless"):
        local.java_executable("java")


def test_sync_of_an_unreachable_repo_exits_1_with_the_reason(tmp_path):
    result = run("sync", "--repo", str(tmp_path / "nowhere.git"), "--workdir", str(tmp_path / "w"))
    assert result.returncode == 1
    assert "cannot fetch" in result.stderr


def test_sync_without_a_repo_is_a_usage_error():
    assert run("sync").returncode == 2


def test_sync_exit_code_is_1_when_a_spec_is_invalid(spec_repo, tmp_path):
    spec_repo.write("deployments/broken.yaml", """\
        apiVersion: v1
        kind: Deployment
        metadata: {name: broken}
        spec:
          deploymentTargetName: nowhere
          template: {spec: {artifact: {jarUri: a.jar}}}
        """)
    spec_repo.push()
    result = run("sync", "--repo", str(spec_repo.remote), "--workdir", str(tmp_path / "w"))
    assert result.returncode == 1
    assert "deployments/broken.yaml:5" in result.stderr
    assert "no DeploymentTarget 'nowhere'" in result.stderr
    assert spec_repo.status_of("broken")["sync"] == "INVALID"


def test_json_logs_name_each_action_and_never_carry_secrets(deployed, spec_repo, flink,
                                                            tmp_path):
    token = "flink-t0ken-value-42"
    spec_repo.write_target("test", flink.url, headers={"Authorization": "Bearer ${TEST_TOKEN}"})
    deployed("logged")
    spec_repo.push()
    result = subprocess.run(
        [*COMMAND, "-v", "--log-format", "json", "sync", "--repo",
         f"file://user:hunter2@localhost{spec_repo.remote}".replace("localhost", ""),
         "--workdir", str(tmp_path / "w")],
        capture_output=True, text=True, timeout=300, env={**os.environ, "TEST_TOKEN": token})
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert lines, result.stderr
    actions = [line for line in lines if line.get("deployment") == "logged"]
    assert {a["step"] for a in actions} == {"START"} and actions[-1]["outcome"] == "SUCCESS"
    assert actions[-1]["target"] == "test"
    everything = result.stdout + result.stderr
    assert token not in everything and "hunter2" not in everything


def test_redaction_covers_registered_secrets_url_credentials_and_bearer_tokens():
    from agent.logs import redact, register_secret
    register_secret("s3cr3t-value")
    assert redact("x s3cr3t-value y") == "x *** y"
    assert redact("https://user:pw@host/repo.git") == "https://***@host/repo.git"
    assert redact("Authorization: Bearer abcdef123456") == "Authorization: Bearer ***"
    assert redact("Authorization: Baſic abcdef123456") == "Authorization: Baſic ***"   # (?i)


@pytest.mark.parametrize("flags", [
    ("--listen", "127.0.0.1:abc"), ("--listen", "127.0.0.1:99999"), ("--listen", "8080"),
    ("--listen", "127.0.0.1:0"), ("--interval", "nans"), ("--interval", "infs"),
    ("--interval", "0s"), ("--interval", "-5s"), ("--drift-interval", "10"),
], ids=" ".join)
def test_a_bad_daemon_flag_is_a_usage_error_not_a_traceback(flags, tmp_path):
    result = run("run", "--repo", str(tmp_path), "--workdir", str(tmp_path / "w"), *flags,
                 timeout=60)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and flags[0] in result.stderr


def test_a_listen_address_in_use_is_a_usage_error(tmp_path):
    import socket
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = run("run", "--repo", str(tmp_path), "--workdir", str(tmp_path / "w"),
                     "--listen", f"127.0.0.1:{port}", timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


def test_messages_that_look_like_markup_are_printed_as_they_are(spec_repo, tmp_path):
    spec_repo.write_target("closed", f"http://127.0.0.1:{free_port()}")
    spec_repo.write("deployments/marked.yaml", """\
        apiVersion: v1
        kind: Deployment
        metadata: {name: marked}
        spec:
          deploymentTargetName: closed
          template: {spec: {artifact: {jarUri: a.jar}}}
        """)
    spec_repo.write("a.jar", "never read")
    spec_repo.write("policies/markup.rego",
                    'package main\nimport rego.v1\n\ndeny contains "[/x] [bold]nope" if true\n')
    spec_repo.push()
    result = run("sync", "--repo", str(spec_repo.remote), "--workdir", str(tmp_path / "w"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "policies/markup.rego: [/x] [bold]nope" in result.stderr
    planned = run("plan", "--repo", str(spec_repo.remote), "--workdir", str(tmp_path / "w"))
    assert planned.returncode == 1 and "[/x] [bold]nope" in planned.stdout
