"""A jar that cannot start its job (no zip, no entry class) is refused before anything is
stopped for it: the running job stays, the status says why (agent.flink.jars)."""

from __future__ import annotations

import zipfile

from agent.flink.jars import jar_problem
from agent.reconcile import sync


def a_jar(path, *names: str, manifest: str | None = None):
    with zipfile.ZipFile(path, "w") as archive:
        for name in names:
            archive.writestr(name, b"")
        if manifest is not None:
            archive.writestr("META-INF/MANIFEST.MF", manifest)
    return path


def test_a_jar_must_hold_its_entry_class_or_name_one_in_its_manifest(tmp_path):
    jar = a_jar(tmp_path / "a.jar", "com/example/Counter.class")
    assert jar_problem(jar, "com.example.Counter") is None
    assert jar_problem(jar, "com.example.Other") == "the jar has no class com.example.Other " \
                                                    "(entryClass)"
    assert jar_problem(jar, None) == ("no entryClass is given and the jar's manifest names no "
                                      "Main-Class")
    named = a_jar(tmp_path / "b.jar", "x/Y.class", manifest="Manifest-Version: 1.0\r\n"
                                                            "Main-Class: x.Y\r\n")
    assert jar_problem(named, None) is None
    nested = a_jar(tmp_path / "c.jar", "lib/dependency.jar")   # not looked into
    assert jar_problem(nested, "com.example.Counter") is None


def test_a_file_that_is_no_jar_says_so(tmp_path):
    garbage = tmp_path / "g.jar"
    garbage.write_bytes(b"<html>404 Not Found</html>")
    assert jar_problem(garbage, "com.example.Counter").startswith("not a jar (zip) file (")


def test_a_corrupt_jar_fails_its_upgrade_before_the_running_job_is_stopped(
        deployed, spec_repo, settings, rest, tmp_path):
    deployed("corrupt-jar")
    spec_repo.push()
    assert sync(settings).exit_code == 0
    job = rest.job("corrupt-jar", 1)
    (spec_repo.checkout / "jobs/counter.jar").write_bytes(b"PK\x03\x04 truncated")
    spec_repo.push("a broken build")
    assert sync(settings).exit_code == 1
    status = spec_repo.status_of("corrupt-jar")
    assert status["lastAction"]["result"] == "FAILED"
    assert status["lastAction"]["message"].startswith(
        "the job could not be prepared, nothing was changed: jarUri jobs/counter.jar: "
        "not a jar (zip) file (")
    assert rest.running() == [job] and status["job"]["id"] == job
    assert "lastSavepoint" not in status   # no savepoint taken for it: nothing was stopped


def test_an_entry_class_the_jar_lacks_fails_the_upgrade_and_keeps_the_job(
        deployed, spec_repo, settings, rest):
    deployed("no-such-class")
    spec_repo.push()
    assert sync(settings).exit_code == 0
    job = rest.job("no-such-class", 1)
    path = spec_repo.checkout / "deployments/no-such-class.yaml"
    path.write_text(path.read_text().replace("com.example.Counter", "com.example.Gone"))
    spec_repo.push("a renamed class")
    assert sync(settings).exit_code == 1
    status = spec_repo.status_of("no-such-class")
    assert status["lastAction"]["message"].endswith(
        "nothing was changed: jarUri jobs/counter.jar: the jar has no class com.example.Gone "
        "(entryClass)")
    assert rest.running() == [job]
