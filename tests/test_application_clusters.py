"""A Flink cluster per deployment in application mode (agent.flink.application), on real Flink:
its processes owned by pid and command line, and memory refused with Flink's reason. (Its
lifecycle through the agent's cycle: tests/test_deployment_clusters.py.)"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hypothesis import example, given, settings, strategies as st

from agent.errors import LocalClusterError
from agent.flink import application
from agent.flink.application import Application
from agent.flink.local import java_executable

JOB_ID = "00c0ffee00000000000000000000000{}"


def counter(jar, generation: int, options: dict | None = None, **fields) -> Application:
    return Application("app-counter", jar, JOB_ID.format(generation), "com.example.Counter",
                       ("--rate", "20", "--keys", "4"), configuration={
                           "parallelism.default": "1", "execution.checkpointing.interval": "1s",
                           **(options or {})}, **fields)


@pytest.fixture
def ended(tmp_path):
    """The work dir; every deployment cluster left in it is ended after the test."""
    yield tmp_path
    for cluster in application.clusters(tmp_path):
        application.stop(tmp_path, cluster.deployment)


def test_memory_below_flinks_minimum_is_refused_with_flinks_reason_and_starts_nothing(
        ended, counter_jar):
    small = counter(counter_jar, 1, {"jobmanager.memory.process.size": "64m"})
    with pytest.raises(LocalClusterError) as refused:
        application.start(ended, small)
    assert "could not compute the JM memory settings" in str(refused.value)
    assert "exceed configured Total Process Memory (64.000mb" in str(refused.value)   # Flink's
    assert application.find(ended, "app-counter") is None


def test_a_recorded_pid_that_is_no_longer_the_clusters_is_never_signalled(ended, counter_jar):
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        home = application.home(ended, "app-counter")
        home.mkdir(parents=True)
        (home / "cluster.json").write_text(
            '{"deployment": "app-counter", "home": "%s", "rest_port": 1, "rpc_port": 2, '
            '"job_id": "%s", "pids": {"jobmanager": %d}, "started_at": 0}'
            % (home, JOB_ID.format(1), stranger.pid))
        assert application.find(ended, "app-counter") is None
        assert application.stop(ended, "app-counter") is False
        assert stranger.poll() is None   # the sleep was not touched
    finally:
        stranger.kill()
        stranger.wait()


def test_a_cluster_an_agent_started_and_never_recorded_is_found_and_ended(ended, counter_jar):
    """An agent killed between starting its processes and writing cluster.json: the next one
    finds them by their command line, starts no second cluster, and can end them."""
    started = application.start(ended, counter(counter_jar, 1))
    jobmanager = Path(f"/proc/{started.pids['jobmanager']}/cmdline").read_bytes().split(b"\0")
    assert b"--rate" not in jobmanager and b"--job-id" not in jobmanager   # in its @file
    arguments = started.home / "conf" / application.ARGUMENT_FILE
    assert f"@{arguments}".encode() in jobmanager and arguments.stat().st_mode & 0o077 == 0
    (started.home / "cluster.json").unlink()
    found = application.find(ended, "app-counter")
    assert found is not None and sorted(found.alive().values()) == sorted(started.pids.values())
    with pytest.raises(LocalClusterError, match="still runs"):
        application.start(ended, counter(counter_jar, 2))
    assert application.stop(ended, "app-counter")
    assert started.alive() == {} and application.find(ended, "app-counter") is None


ECHO = """public class Echo { public static void main(String[] arguments) throws Exception {
    java.nio.file.Files.writeString(java.nio.file.Path.of(System.getProperty("out")),
        String.join("\\u0000", arguments) + "\\u0000" + arguments.length); } }"""
ARGUMENT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"))


@pytest.fixture(scope="module")
def echo(tmp_path_factory) -> Path:
    """A compiled Java class writing the arguments it was given to the file -Dout names."""
    where = tmp_path_factory.mktemp("echo")
    (where / "Echo.java").write_text(ECHO)
    subprocess.run([java_executable("javac"), "Echo.java"], cwd=where, check=True)
    return where


@settings(max_examples=8, deadline=None)
@given(st.lists(ARGUMENT, max_size=12))
@example(["\r", "\r\n", "a\rb"])
def test_an_argument_file_gives_the_jvm_exactly_the_arguments_it_holds(echo, arguments):
    """Quotes, backslashes, newlines, carriage returns, '#', '@', empty and non-ASCII arguments,
    as java reads them from `@file` (the JobManager's job arguments: a SQL script, mainArgs)."""
    (echo / "args").write_text(application.argument_file(
        ["Echo", *arguments, "a 'quoted' \"SQL\" script;\n-- with a comment\n" * 4000]),
        encoding="utf-8")
    subprocess.run([java_executable(), "-Dfile.encoding=UTF-8", "-Dsun.jnu.encoding=UTF-8",
                    f"-Dout={echo / 'out'}", "-cp", str(echo), f"@{echo / 'args'}"], check=True)
    # read as bytes: read_text's universal newlines would turn a '\r' java wrote into '\n'
    *got, count = (echo / "out").read_bytes().decode("utf-8").split("\0")
    assert int(count) == len(arguments) + 1 and got[:-1] == arguments
    assert len(got[-1]) > 128 * 1024   # beyond one command-line argument's limit on Linux
