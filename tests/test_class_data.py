"""Class-data archives of the JVMs the agent starts (agent/flink/class_data.py), with the real
`java`: a JVM of a kind without an archive writes one at its exit, the next start of that kind
uses it, and a file a killed JVM left unfinished — which would crash a JVM that maps it — is
removed, never used; one that a live JVM is still to write is left to it; archives no start
has used for a month are removed."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.flink import class_data
from agent.flink.local import flink_classpath, java_executable


@pytest.fixture
def tools(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv(class_data.TOOLS_DIR_ENV, str(tmp_path / "tools"))
    return tmp_path / "tools"


def run_java(flags: list[str], classpath: list[Path]) -> subprocess.CompletedProcess:
    return subprocess.run([java_executable(), *flags, "-classpath",
                           os.pathsep.join(map(str, classpath)), "-version"],
                          capture_output=True, text=True, check=False)


def fresh_flag(flags: list[str]) -> Path:
    [flag] = flags
    assert flag.startswith("-XX:ArchiveClassesAtExit=") and flag.endswith(".fresh")
    return Path(flag.split("=", 1)[1])


def test_a_jvm_of_a_kind_without_an_archive_writes_one_that_the_next_start_uses(tools):
    java, classpath = java_executable(), flink_classpath()
    fresh = fresh_flag(class_data.sharing_flags(java, classpath, "Probe"))
    assert run_java([f"-XX:ArchiveClassesAtExit={fresh}"], classpath).returncode == 0
    assert fresh.is_file()

    [flag] = class_data.sharing_flags(java, classpath, "Probe")
    archive = Path(flag.removeprefix("-XX:SharedArchiveFile="))
    assert archive.is_file() and not fresh.exists()
    assert "Mapped dynamic region" in run_java([flag, "-Xshare:on", "-Xlog:cds"],
                                               classpath).stdout
    assert class_data.sharing_flags(java, classpath, "Probe") == [flag]   # the same, from now on
    late = archive.with_name(f"{archive.name}.late.fresh")   # a JVM started before it existed
    late.write_bytes(b"written at its exit")
    assert class_data.sharing_flags(java, classpath, "Probe") == [flag] and not late.exists()
    assert fresh_flag(class_data.sharing_flags(java, classpath, "Other")).name.startswith(
        "Other-")   # each kind its own
    assert class_data.sharing_flags(java, [*classpath[:-1]], "Probe") != [flag]   # and classpath


def test_an_archive_a_killed_jvm_left_unfinished_is_removed_not_used(tools):
    java, classpath = java_executable(), flink_classpath()
    fresh = fresh_flag(class_data.sharing_flags(java, classpath, "Probe"))
    run_java([f"-XX:ArchiveClassesAtExit={fresh}"], classpath)
    fresh.write_bytes(fresh.read_bytes()[:len(fresh.read_bytes()) // 2])   # cut short
    assert run_java([f"-XX:SharedArchiveFile={fresh}", "-XX:ErrorFile=/dev/null"],
                    classpath).returncode != 0   # what using it would do: the JVM crashes

    again = class_data.sharing_flags(java, classpath, "Probe")
    assert not fresh.exists() and fresh_flag(again) != fresh   # a new one is written instead


def test_an_archive_a_live_jvm_is_to_write_is_left_to_it(tools):
    java, classpath = java_executable(), flink_classpath()
    fresh = fresh_flag(class_data.sharing_flags(java, classpath, "Probe"))
    fresh.write_bytes(b"not yet whole")
    writer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)",
                               f"-XX:ArchiveClassesAtExit={fresh}"])
    while str(fresh).encode() not in Path(f"/proc/{writer.pid}/cmdline").read_bytes():
        time.sleep(0.01)   # (until it has started)
    try:
        assert fresh_flag(class_data.sharing_flags(java, classpath, "Probe")) != fresh
        assert fresh.read_bytes() == b"not yet whole"   # untouched while its writer lives
    finally:
        writer.kill()
        writer.wait()
    class_data.sharing_flags(java, classpath, "Probe")
    assert not fresh.exists()   # its writer gone, it is judged: unsound, removed


def test_archives_no_start_has_used_for_a_month_are_removed(tools):
    java, classpath = java_executable(), flink_classpath()
    fresh = fresh_flag(class_data.sharing_flags(java, classpath, "Probe"))
    used, archives = Path(str(fresh).rsplit(".", 2)[0]), fresh.parent   # the kind's archive
    replaced = archives / "Probe-0123456789abcdef.jsa"          # a Flink since upgraded
    recent = archives / "Other-0123456789abcdef.jsa"
    abandoned = archives / "Gone-0123456789abcdef.jsa.0a1b.fresh"   # its JVM killed long ago
    for path in (used, replaced, recent, abandoned):
        path.write_bytes(b"an archive")
    month = time.time() - (class_data.UNUSED_DAYS + 1) * 86400
    for path in (used, replaced, abandoned):
        os.utime(path, (month, month))

    assert class_data.sharing_flags(java, classpath, "Probe") == [
        f"-XX:SharedArchiveFile={used}"]
    assert sorted(archives.iterdir()) == sorted([used, recent])   # the used one kept, renewed
    assert used.stat().st_mtime > month + 86400
