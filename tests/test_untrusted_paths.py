"""What a spec author may make the agent read: a `file://` jar only under the agent's allowed
directories, repository files that are files (no symbolic links, nothing outside the
repository), and downloads bounded in size — each refused at `validate`/`plan` time with file
and line, before any job is touched."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agent.errors import ArtifactError
from agent.flink import artifacts
from agent.reconcile import review, sync
from agent.validate import validate
from conftest import git


def test_a_file_jar_outside_the_allowed_directories_is_invalid_and_never_read(
        deployed, spec_repo, settings, flink_proxy, rest, counter_jar, tmp_path):
    spec_repo.write_target("test", flink_proxy.url)
    deployed("local-jar", extra="")
    spec = spec_repo.checkout / "deployments/local-jar.yaml"
    allowed = tmp_path / "jars"
    allowed.mkdir()
    shutil.copy(counter_jar, allowed / "counter.jar")
    spec.write_text(spec.read_text().replace("jobs/counter.jar", "file:///etc/passwd"))
    spec_repo.push("a jar from the agent's disk")

    assert review(settings).exit_code == 1
    assert sync(settings).exit_code == 1
    [problem] = spec_repo.status_of("local-jar")["errors"]
    assert problem["line"] == 15 and "file:// jars are read only under" in problem["message"]
    assert not [path for _, path in flink_proxy.paths() if path.startswith("/jars")]

    spec.write_text(spec.read_text().replace("file:///etc/passwd",
                                             f"file://{allowed}/counter.jar"))
    spec_repo.push("a jar from an allowed directory")
    trusting = dataclasses.replace(settings, file_jar_dirs=(allowed,))
    assert sync(trusting).exit_code == 0
    rest.wait_state(rest.job("local-jar", 1), "RUNNING")


def test_a_symbolic_link_in_git_is_no_artifact(deployed, spec_repo, settings, rest):
    deployed("linked")
    spec_repo.push()
    assert sync(settings).exit_code == 0
    job = rest.job("linked", 1)
    os.symlink("/etc/passwd", spec_repo.checkout / "jobs" / "linked.jar")
    spec = spec_repo.checkout / "deployments/linked.yaml"
    spec.write_text(spec.read_text().replace("jobs/counter.jar", "jobs/linked.jar"))
    spec_repo.push("a jar that is a link")

    reviewed = review(settings)
    assert reviewed.exit_code == 1
    [problem] = reviewed.reviews[0].problems
    assert "jobs/linked.jar is a symbolic link in the spec repository" in problem
    assert sync(settings).exit_code == 1
    assert rest.running() == [job]
    assert spec_repo.status_of("linked")["sync"] == "INVALID"


def test_validate_follows_no_link_out_of_the_checkout(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.rego").write_text(
        'package main\nimport rego.v1\n\ndeny contains "outside-policy-was-read" if true\n')
    (outside / "secret.yaml").write_text("kind: Deployment\nmetadata: {name: outside}\n")
    checkout = tmp_path / "checkout"
    (checkout / "policies").mkdir(parents=True)
    os.symlink(outside / "secret.rego", checkout / "policies" / "linked.rego")
    os.symlink(outside / "secret.yaml", checkout / "linked.yaml")
    os.symlink(outside, checkout / "linked-folder")
    result = validate(checkout)
    everything = " ".join(map(str, result.problems + result.denials + result.warnings))
    assert "outside-policy-was-read" not in everything and "outside" not in everything
    shown = subprocess.run([sys.executable, "-m", "agent.cli", "validate", str(checkout)],
                           capture_output=True, text=True, timeout=120)
    assert "outside-policy-was-read" not in shown.stdout + shown.stderr


class _Jars(BaseHTTPRequestHandler):
    size = 0

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(self.size))
        self.end_headers()
        chunk = b"\0" * (1 << 16)
        for _ in range(self.size // len(chunk)):
            self.wfile.write(chunk)

    def log_message(self, *args):
        pass


@pytest.fixture
def jar_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Jars)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


def test_a_download_over_the_size_limit_is_refused_and_leaves_nothing(jar_server, tmp_path,
                                                                       monkeypatch):
    monkeypatch.setattr(artifacts, "MAX_ARTIFACT_BYTES", 4 << 20)
    url = f"http://127.0.0.1:{jar_server.server_address[1]}/big.jar"
    _Jars.size = 8 << 20
    with pytest.raises(ArtifactError, match="larger than the limit of 4,194,304 bytes"):
        artifacts.fetch_jar(url, tmp_path / "cache", lambda path: None)
    assert list((tmp_path / "cache").iterdir()) == []
    _Jars.size = 2 << 20
    jar = artifacts.fetch_jar(url, tmp_path / "cache", lambda path: None)
    assert jar.stat().st_size == 2 << 20 and jar.name.startswith("big-")


def test_a_path_that_leaves_the_repository_is_refused_where_it_is_written(spec_repo):
    spec_repo.write("deployments/escape.yaml", """\
        apiVersion: v1
        kind: Deployment
        metadata: {name: escape}
        spec:
          deploymentTargetName: t
          template: {spec: {artifact: {kind: SQLSCRIPT, sqlScriptFile: ../../etc/shadow}}}
        """)
    [problem] = [p for p in validate(spec_repo.checkout).problems if p.name == "escape"]
    assert problem.line == 6 and "sqlScriptFile ../../etc/shadow leaves the spec repository" \
        in problem.message
    git(spec_repo.checkout, "status")
