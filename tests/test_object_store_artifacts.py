"""Jars kept in an object store (issue 15, points 3-4, S3) or on an http server: read through
fsspec/s3fs from a real S3-compatible server (moto's, `tests/s3_server.py`), or over http, by a
real Flink cluster's agent; the jar's identity (version id, ETag, Last-Modified) is part of the
job's digest, so a jar replaced at the same key or URL upgrades its job."""

from __future__ import annotations

import importlib
import os
import time

import pytest

from agent.errors import ArtifactError
from agent.reconcile import review, sync
from agent.validate import validate
from conftest import counter_deployment
from s3_server import another_build, s3, s3_server  # noqa: F401 - fixtures

REPO_JAR = "jarUri: jobs/counter.jar"


def s3_deployment(name: str, jar_uri: str, **fields) -> str:
    """The counter deployment `name`, its jar at `jar_uri`."""
    return counter_deployment(name, **fields).replace(REPO_JAR, f"jarUri: {jar_uri}")


def deploy(spec_repo, name: str, jar_uri: str, **fields) -> None:
    spec_repo.write(f"deployments/{name}.yaml", s3_deployment(name, jar_uri, **fields))


@pytest.fixture
def started_from_s3(s3, spec_repo, settings, flink, counter_jar):
    """Uploads the counter jar to a new bucket, deploys `name` from it and syncs; returns the
    bucket."""
    def start(name: str) -> str:
        bucket = s3.bucket()
        s3.upload(bucket, "counter.jar", counter_jar)
        spec_repo.write_target("test", flink.url)
        deploy(spec_repo, name, f"s3://{bucket}/counter.jar")
        spec_repo.push(f"{name}: a jar in s3")
        assert sync(settings).exit_code == 0
        return bucket
    return start


def test_a_jar_in_s3_starts_its_job(started_from_s3, spec_repo, rest):
    bucket = started_from_s3("s3-start")
    job = rest.job("s3-start", 1)
    assert rest.jobs()[job] == "RUNNING"
    status = spec_repo.status_of("s3-start")
    assert status["sync"] == "SYNCED" and status["lastAction"]["result"] == "SUCCESS"
    assert f"s3://{bucket}/counter.jar" in str(status["appliedSpec"])


def test_a_targets_s3_settings_by_reference_override_the_agents_environment(
        s3, spec_repo, settings, flink, rest, counter_jar, tmp_path, monkeypatch, caplog):
    """`artifactStores.s3` on the target: its endpoint and credentials (a secret file) win over
    an AWS environment that points elsewhere; the secret reaches no status or log line."""
    from conftest import DEFAULT_STATUS_BRANCH, free_port, git
    canary = "s3-c4n4ry-secret"
    (tmp_path / "s3-secret").write_text(canary + "\n")
    bucket = s3.bucket()
    s3.upload(bucket, "counter.jar", counter_jar)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")   # nobody there
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "the-wrong-one")
    monkeypatch.setenv("FG_S3_KEY_ID", "team-key")
    spec_repo.write_target("test", flink.url, stores={"s3": {
        "endpoint": s3.endpoint, "accessKeyId": "${FG_S3_KEY_ID}",
        "secretAccessKey": f"${{file:{tmp_path / 's3-secret'}}}"}})
    deploy(spec_repo, "s3-target-settings", f"s3://{bucket}/counter.jar")
    spec_repo.push()
    assert sync(settings).exit_code == 0
    assert rest.jobs()[rest.job("s3-target-settings", 1)] == "RUNNING"
    branch = git(spec_repo.remote, "log", "-p", DEFAULT_STATUS_BRANCH)
    assert "s3-target-settings" in branch and canary not in branch + caplog.text


def test_a_targets_s3_secret_that_cannot_be_expanded_is_invalid_before_any_request(
        s3, spec_repo, settings, flink, counter_jar):
    bucket = s3.bucket()
    s3.upload(bucket, "counter.jar", counter_jar)
    spec_repo.write_target("test", flink.url, stores={"s3": {
        "endpoint": s3.endpoint, "secretAccessKey": "${FG_S3_NEVER_SET}"}})
    deploy(spec_repo, "s3-target-unset", f"s3://{bucket}/counter.jar")
    spec_repo.push()
    assert sync(settings).exit_code == 1
    status = spec_repo.status_of("s3-target-unset")
    [problem] = status["errors"]
    assert status["sync"] == "INVALID" and problem["line"] == 8   # deploymentTargetName
    assert problem["message"] == (
        "DeploymentTarget test artifactStores.s3.secretAccessKey: ${FG_S3_NEVER_SET}: the "
        "agent's environment has no variable FG_S3_NEVER_SET")


def test_a_review_without_the_stores_credentials_takes_the_applied_jar_as_unchanged(
        started_from_s3, spec_repo, settings, monkeypatch):
    """`plan` in a pull request's CI, which holds no store credentials: the jar's identity is
    the one recorded when it was applied, with a warning at its jarUri, not a refusal."""
    from conftest import free_port
    started_from_s3("s3-no-credentials")
    assert spec_repo.status_of("s3-no-credentials")["appliedInputs"]["artifact"].startswith(
        "etag:")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    reviewed = {r.name: r for r in review(settings).reviews}["s3-no-credentials"]
    assert not reviewed.problems and not reviewed.plan.changes_anything
    [warning] = reviewed.warnings
    assert warning.startswith("deployments/s3-no-credentials.yaml:15: jarUri s3://")
    assert warning.endswith("(here; the plan takes the jar applied last as unchanged)")


def test_s3a_is_read_as_s3(s3, spec_repo, settings, flink, rest, counter_jar):
    bucket = s3.bucket()
    s3.upload(bucket, "jobs/counter.jar", counter_jar)
    spec_repo.write_target("test", flink.url)
    deploy(spec_repo, "s3a-start", f"s3a://{bucket}/jobs/counter.jar")
    spec_repo.push()
    assert sync(settings).exit_code == 0
    assert rest.jobs()[rest.job("s3a-start", 1)] == "RUNNING"


def test_a_jar_replaced_at_the_same_key_upgrades_the_job_with_its_state(
        started_from_s3, s3, spec_repo, settings, rest, counter_jar, tmp_path):
    bucket = started_from_s3("s3-replaced")
    old = rest.job("s3-replaced", 1)
    rest.wait_checkpoint(old)
    unchanged = review(settings)   # the same object: nothing to do
    assert not [r for r in unchanged.reviews if r.plan.changes_anything]

    etag = s3.upload(bucket, "counter.jar", another_build(counter_jar, tmp_path, "build-2"))
    planned = {r.name: r for r in review(settings).reviews}["s3-replaced"]
    assert planned.plan.action.value == "STATEFUL_UPGRADE"
    assert "jarUri (the object)" in planned.plan.reason and f"etag:{etag}" in planned.plan.reason
    assert sync(settings).exit_code == 0
    status = spec_repo.status_of("s3-replaced")
    new = status["job"]["id"]
    assert new == rest.job("s3-replaced", 2)
    assert rest.jobs()[old] == "FINISHED" and rest.jobs()[new] == "RUNNING"
    assert status["lastAction"]["kind"] == "STATEFUL_UPGRADE"
    savepoint = status["lastSavepoint"]["location"]
    assert status["lastSavepoint"]["origin"] == "UPGRADE"
    assert rest.restored_from(new) == savepoint
    assert sync(settings).exit_code == 0     # and then it is in sync: no further upgrade
    assert spec_repo.status_of("s3-replaced")["job"]["id"] == new


def test_a_missing_object_or_bucket_is_invalid_and_touches_no_running_job(
        started_from_s3, spec_repo, settings, rest):
    bucket = started_from_s3("s3-moved")
    running = rest.job("s3-moved", 1)

    deploy(spec_repo, "s3-moved", f"s3://{bucket}-gone/counter.jar", parallelism=2)
    deploy(spec_repo, "s3-never", f"s3://{bucket}/no-such.jar")
    spec_repo.push("a wrong bucket, a missing object")
    assert sync(settings).exit_code == 1
    moved, never = spec_repo.status_of("s3-moved"), spec_repo.status_of("s3-never")
    assert moved["sync"] == "INVALID" and never["sync"] == "INVALID"
    [moved_error] = moved["errors"]
    assert moved_error["file"] == "deployments/s3-moved.yaml" and moved_error["line"] > 1
    assert f"jarUri s3://{bucket}-gone/counter.jar: no such object or bucket" in \
        moved_error["message"]
    assert "bucket does not exist" in moved_error["message"]
    assert f"jarUri s3://{bucket}/no-such.jar: no such object or bucket" in \
        never["errors"][0]["message"]
    assert "Traceback" not in str(moved) + str(never)
    assert rest.jobs()[running] == "RUNNING"
    assert rest.job("s3-moved", 2).endswith("-not-found")
    assert rest.job("s3-never", 1).endswith("-not-found")


def test_a_store_that_does_not_answer_restarts_nothing(started_from_s3, s3, spec_repo,
                                                       settings, rest, monkeypatch):
    bucket = started_from_s3("s3-away")
    running = rest.job("s3-away", 1)

    from conftest import free_port
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # nobody there
    result = sync(settings)
    status = spec_repo.status_of("s3-away")
    assert result.outcomes == {}
    assert status["sync"] == "OUT_OF_SYNC"
    assert any(f"jarUri s3://{bucket}/counter.jar: the store did not answer" in e["message"]
               for e in status["errors"])
    assert rest.running() == [running] or running in rest.running()

    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.endpoint)   # back: still the same job
    assert sync(settings).exit_code == 0
    assert spec_repo.status_of("s3-away")["job"]["id"] == running
    assert rest.jobs()[running] == "RUNNING"


def test_s3_without_its_extra_installed_is_invalid_with_the_install_hint(
        s3, spec_repo, settings, flink, rest, monkeypatch, tmp_path):
    registry = importlib.import_module("fsspec.registry")
    real = registry.get_filesystem_class

    def s3fs_missing(protocol):
        if protocol in ("s3", "s3a"):
            raise ImportError("Install s3fs to access S3")
        return real(protocol)
    monkeypatch.setattr(registry, "get_filesystem_class", s3fs_missing)
    spec_repo.write_target("test", flink.url)
    deploy(spec_repo, "s3-no-extra", "s3://jars/counter.jar")
    spec_repo.push()
    hint = "jarUri s3://jars/counter.jar: needs the s3 extra: pip install 'flink-gitops[s3]'"

    checked = validate(spec_repo.checkout, cache_dir=tmp_path / "cache")
    assert [p.message for p in checked.problems] == [hint]
    assert not [r for r in review(settings).reviews if r.plan.changes_anything]
    assert sync(settings).exit_code == 1
    status = spec_repo.status_of("s3-no-extra")
    assert status["sync"] == "INVALID" and status["errors"][0]["message"] == hint
    assert rest.job("s3-no-extra", 1).endswith("-not-found")


def test_an_unknown_scheme_is_invalid_before_anything_runs(spec_repo, settings, flink, rest):
    spec_repo.write_target("test", flink.url)
    deploy(spec_repo, "ftp-jar", "ftp://example.com/counter.jar")
    spec_repo.push()
    assert sync(settings).exit_code == 1
    status = spec_repo.status_of("ftp-jar")
    assert status["sync"] == "INVALID"
    assert "scheme 'ftp' is not supported" in status["errors"][0]["message"]


def test_a_versioned_bucket_identifies_a_jar_by_its_version_id(s3, counter_jar, tmp_path):
    from agent.flink.artifacts import store_identity
    bucket = s3.bucket()
    s3.client.put_bucket_versioning(Bucket=bucket,
                                    VersioningConfiguration={"Status": "Enabled"})
    first = s3.client.put_object(Bucket=bucket, Key="c.jar", Body=counter_jar.read_bytes())
    assert store_identity(f"s3://{bucket}/c.jar") == f"version:{first['VersionId']}"
    second = s3.client.put_object(Bucket=bucket, Key="c.jar", Body=counter_jar.read_bytes())
    assert store_identity(f"s3://{bucket}/c.jar") == f"version:{second['VersionId']}"


def test_a_secret_reference_in_an_s3_uri_is_expanded_only_to_reach_the_store(
        s3, counter_jar, tmp_path, monkeypatch):
    from agent.flink.artifacts import fetch_jar, store_identity
    bucket = s3.bucket()
    s3.upload(bucket, "c.jar", counter_jar)
    monkeypatch.setenv("JAR_BUCKET", bucket)
    jar = fetch_jar("s3://${JAR_BUCKET}/c.jar", tmp_path, lambda path: None)
    assert jar.read_bytes() == counter_jar.read_bytes()
    assert store_identity("s3://${JAR_BUCKET}/c.jar").startswith("etag:")
    monkeypatch.setenv("JAR_BUCKET", bucket + "-gone")
    with pytest.raises(ArtifactError) as refused:
        store_identity("s3://${JAR_BUCKET}/c.jar")
    assert "jarUri s3://${JAR_BUCKET}/c.jar: no such object or bucket" in str(refused.value)


def test_an_s3_jar_over_the_size_limit_is_refused(s3, counter_jar, tmp_path, monkeypatch):
    from agent.flink import artifacts
    bucket = s3.bucket()
    s3.upload(bucket, "c.jar", counter_jar)
    monkeypatch.setattr(artifacts, "MAX_ARTIFACT_BYTES", 1000)
    with pytest.raises(ArtifactError, match="larger than the limit of 1,000 bytes"):
        artifacts.fetch_jar(f"s3://{bucket}/c.jar", tmp_path / "cache", lambda path: None)
    assert not list((tmp_path / "cache").glob("*"))   # no partial file left


@pytest.fixture
def jar_site(tmp_path):
    """A real http server of a folder of jars (Python's own: Last-Modified, no ETag)."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass
    folder = tmp_path / "site"
    folder.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=folder))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_jar_replaced_at_the_same_http_url_upgrades_the_job_with_its_state(
        jar_site, spec_repo, settings, flink, rest, counter_jar, tmp_path):
    folder, site = jar_site
    (folder / "counter.jar").write_bytes(counter_jar.read_bytes())
    spec_repo.write_target("test", flink.url)
    deploy(spec_repo, "http-replaced", f"{site}/counter.jar")
    spec_repo.push()
    assert sync(settings).exit_code == 0
    old = rest.job("http-replaced", 1)
    rest.wait_checkpoint(old)
    assert sync(settings).outcomes == {}                   # the same jar: nothing to do

    replaced = another_build(counter_jar, tmp_path, "build-2").read_bytes()
    (folder / "counter.jar").write_bytes(replaced)
    os.utime(folder / "counter.jar", (time.time() + 5, time.time() + 5))   # a later Last-Modified
    assert sync(settings).exit_code == 0
    status = spec_repo.status_of("http-replaced")
    assert status["lastAction"]["kind"] == "STATEFUL_UPGRADE"
    assert rest.restored_from(status["job"]["id"]) == status["lastSavepoint"]["location"]


def test_a_job_applied_before_its_jar_had_an_identity_is_not_restarted_for_it(
        jar_site, spec_repo, settings, flink, rest, counter_jar, monkeypatch):
    """An agent before this version digested an http jar by its URL alone: the first cycle of
    this one records the jar's identity and restarts nothing."""
    import agent.job_inputs
    folder, site = jar_site
    (folder / "counter.jar").write_bytes(counter_jar.read_bytes())
    spec_repo.write_target("test", flink.url)
    deploy(spec_repo, "http-before", f"{site}/counter.jar")
    spec_repo.push()
    monkeypatch.setattr(agent.job_inputs, "store_identity", lambda *asked: None)
    assert sync(settings).exit_code == 0
    monkeypatch.undo()
    job, before = rest.job("http-before", 1), spec_repo.status_of("http-before")
    result = sync(settings)
    assert result.exit_code == 0 and result.outcomes == {}
    after = spec_repo.status_of("http-before")
    assert rest.running() == [job] == [after["job"]["id"]]
    assert after["appliedSpecHash"] != before["appliedSpecHash"]
    assert after["specCommit"] == before["specCommit"]


def test_wrong_credentials_are_the_stores_refusal_named_on_the_jar(tmp_path, counter_jar,
                                                                    monkeypatch):
    """A moto server that checks credentials (after the two requests that fill it): a key it
    does not know is refused, an ArtifactError with the store's reason, never the secret."""
    import subprocess
    import sys
    import boto3
    from conftest import free_port
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                               str(port)], env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "2"},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        endpoint = f"http://127.0.0.1:{port}"
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                              aws_access_key_id="setup", aws_secret_access_key="setup")
        for _ in range(100):
            try:
                client.create_bucket(Bucket="guarded")
                break
            except Exception:  # noqa: BLE001 - not up yet
                time.sleep(0.1)
        client.put_object(Bucket="guarded", Key="c.jar", Body=counter_jar.read_bytes())
        for name, value in (("AWS_ENDPOINT_URL", endpoint), ("AWS_ACCESS_KEY_ID", "nobody"),
                            ("AWS_SECRET_ACCESS_KEY", "wr0ng-s3cret"), ("AWS_REGION", "us-east-1")):
            monkeypatch.setenv(name, value)
        from agent.flink.artifacts import store_identity
        with pytest.raises(ArtifactError) as refused:
            store_identity("s3://guarded/c.jar")
        assert str(refused.value).startswith("jarUri s3://guarded/c.jar: the store refused")
        assert "wr0ng-s3cret" not in str(refused.value)
    finally:
        server.terminate()
        server.wait(10)
