"""Jars kept in a Maven repository (`jarUri: maven://GROUP:ARTIFACT:VERSION[:CLASSIFIER]`),
served from a folder in the repository layout by a real http server (Python's own, one that
requires basic auth too), deployed by the agent to the real Flink cluster; and an http(s) jar's
published checksum (`<jar>.sha256`) as its identity."""

from __future__ import annotations

import base64
import functools
import hashlib
import threading
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from agent.caches import Caches
from agent.errors import ArtifactError, ArtifactUnavailable
from agent.flink import maven
from agent.flink.artifacts import store_identity
from agent.model.maven import (CENTRAL, MAX_METADATA_BYTES, Coordinate, CoordinateInvalid,
                               MetadataInvalid, checksum_in, parse_coordinate, snapshot_build)
from agent.model.spec import ArtifactStores, MavenRepository
from agent.reconcile import review, sync
from agent.validate import validate
from conftest import DEFAULT_STATUS_BRANCH, counter_deployment, free_port, git
from s3_server import another_build

REPO_JAR = "jarUri: jobs/counter.jar"
RELEASE = "maven://org.example:counter:1.0"
SNAPSHOT = "maven://org.example:counter:1.1-SNAPSHOT"


@dataclass
class MavenSite:
    """A folder in the Maven repository layout and the address that serves it; `asked`: every
    request, as (method, path, Authorization header)."""

    folder: Path
    url: str
    asked: list = field(default_factory=list)

    def put(self, path: str, content: bytes) -> None:
        (self.folder / path).parent.mkdir(parents=True, exist_ok=True)
        (self.folder / path).write_bytes(content)

    def release(self, coordinate: str, jar: Path, checksum: bool = True) -> None:
        """Deploys `jar` as a release, with its `.sha1` as Maven writes it."""
        path = parse_coordinate(coordinate).jar_path()
        self.put(path, jar.read_bytes())
        if checksum:
            self.put(f"{path}.sha1", hashlib.sha1(jar.read_bytes()).hexdigest().encode())

    def snapshot(self, coordinate: str, jar: Path, timestamp: str, number: int) -> str:
        """Deploys `jar` as the newest build of a -SNAPSHOT, as `mvn deploy` does (the build's
        jar and the version's maven-metadata.xml); returns the build's version."""
        parsed = parse_coordinate(coordinate)
        build = f"{parsed.version.removesuffix('-SNAPSHOT')}-{timestamp}-{number}"
        self.put(parsed.jar_path(build), jar.read_bytes())
        self.put(parsed.metadata_path(), snapshot_metadata(parsed, build, timestamp, number))
        return build

    def paths(self) -> list[str]:
        return [f"{method} {path}" for method, path, _ in self.asked]


def snapshot_metadata(coordinate: Coordinate, build: str, timestamp: str, number: int,
                      namespace: str = "") -> bytes:
    """A -SNAPSHOT version's maven-metadata.xml as Maven 3 writes it: its pom, its jar and a
    sources jar of the build."""
    updated = timestamp.replace(".", "")
    entries = "".join(
        f"<snapshotVersion>{f'<classifier>{c}</classifier>' if c else ''}"
        f"<extension>{e}</extension><value>{build}</value><updated>{updated}</updated>"
        "</snapshotVersion>" for c, e in (("sources", "jar"), (None, "pom"), (None, "jar")))
    xmlns = f' xmlns="{namespace}"' if namespace else ""
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<metadata modelVersion="1.1.0"{xmlns}>'
            f"<groupId>{coordinate.group}</groupId><artifactId>{coordinate.artifact}"
            f"</artifactId><version>{coordinate.version}</version><versioning><snapshot>"
            f"<timestamp>{timestamp}</timestamp><buildNumber>{number}</buildNumber></snapshot>"
            f"<lastUpdated>{updated}</lastUpdated><snapshotVersions>{entries}"
            "</snapshotVersions></versioning></metadata>").encode()


class Repository(SimpleHTTPRequestHandler):
    """Serves the folder; when the server has `credentials`, only to requests bearing them."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self._allowed():
            super().do_GET()

    def do_HEAD(self):
        if self._allowed():
            super().do_HEAD()

    def _allowed(self) -> bool:
        sent = self.headers.get("Authorization")
        self.server.asked.append((self.command, self.path, sent))
        if self.server.credentials is None or sent == self.server.credentials:
            return True
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="maven"')
        self.send_header("Content-Length", "0")
        self.end_headers()
        return False


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def maven_repository(tmp_path):
    """Starts Maven repositories: `maven_repository(credentials=None)` -> a MavenSite; with
    (user, password), requests without them are answered 401."""
    servers = []

    def start(credentials: tuple[str, str] | None = None) -> MavenSite:
        folder = tmp_path / f"maven-{len(servers)}"
        folder.mkdir()
        server = ThreadingHTTPServer(("127.0.0.1", 0),
                                     functools.partial(Repository, directory=folder))
        server.credentials = basic(*credentials) if credentials else None
        server.asked = []
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return MavenSite(folder, f"http://127.0.0.1:{server.server_address[1]}", server.asked)
    yield start
    for server in servers:
        server.shutdown()


def deploy(spec_repo, name: str, jar_uri: str, **fields) -> str:
    text = counter_deployment(name, **fields).replace(REPO_JAR, f"jarUri: {jar_uri}")
    spec_repo.write(f"deployments/{name}.yaml", text)
    return text


def stores(*sites: MavenSite, **settings) -> ArtifactStores:
    return ArtifactStores(maven=[MavenRepository(url=s.url, **settings) for s in sites])


# --- the coordinate, the layout and the metadata (pure) ---

def test_a_coordinate_names_its_place_in_the_repository():
    release = parse_coordinate("maven://org.example.jobs:orders:1.4.2")
    assert release.jar_path() == "org/example/jobs/orders/1.4.2/orders-1.4.2.jar"
    assert not release.snapshot and str(release) == "org.example.jobs:orders:1.4.2"
    fat = parse_coordinate("MAVEN://org.example:orders:1.4.2:all")
    assert fat.jar_path() == "org/example/orders/1.4.2/orders-1.4.2-all.jar"
    snapshot = parse_coordinate("maven://org.example:orders:2.0-SNAPSHOT:all")
    assert snapshot.snapshot
    assert snapshot.metadata_path() == "org/example/orders/2.0-SNAPSHOT/maven-metadata.xml"
    assert snapshot.jar_path("2.0-20261129.101010-3") == \
        "org/example/orders/2.0-SNAPSHOT/orders-2.0-20261129.101010-3-all.jar"


@pytest.mark.parametrize("jar_uri, why", [
    ("maven://org.example:orders", "its version is missing"),
    ("maven://org.example", "its artifactId is missing"),
    ("maven://:orders:1.0", "its groupId is missing"),
    ("maven://org.example:orders:1.0:", "its classifier is empty"),
    ("maven://org.example:orders:1.0:all:x", "has 5 parts, at most 4"),
    ("maven://org..example:orders:1.0", "its groupId 'org..example' is not names of"),
    ("maven://org.example:../../etc:1.0", "its artifactId '../../etc' is not of A-Z"),
    ("maven://org.example:orders:1.0/x", "its version '1.0/x' is not of A-Z"),
    ("maven://org.example:orders:" + "1" * 201, "over the limit of 200"),
])
def test_a_malformed_coordinate_says_which_part(jar_uri, why):
    with pytest.raises(CoordinateInvalid, match=why.replace(".", r"\.")):
        parse_coordinate(jar_uri)


def test_snapshot_metadata_names_the_jar_build_of_the_coordinates_classifier():
    plain = parse_coordinate(SNAPSHOT)
    metadata = snapshot_metadata(plain, "1.1-20261129.101010-3", "20261129.101010", 3,
                                 namespace="http://maven.apache.org/METADATA/1.1.0")
    assert snapshot_build(metadata, plain) == "1.1-20261129.101010-3"
    sources_older = metadata.replace(
        b"<classifier>sources</classifier><extension>jar</extension>"
        b"<value>1.1-20261129.101010-3</value>",
        b"<classifier>sources</classifier><extension>jar</extension>"
        b"<value>1.1-20261128.080000-2</value>")
    assert snapshot_build(sources_older, parse_coordinate(SNAPSHOT + ":sources")) == \
        "1.1-20261128.080000-2"
    assert snapshot_build(sources_older, plain) == "1.1-20261129.101010-3"
    with pytest.raises(MetadataInvalid, match="names no build of .*:all"):
        snapshot_build(metadata, parse_coordinate(SNAPSHOT + ":all"))


def test_snapshot_metadata_without_its_builds_listed_gives_the_latest_timestamp():
    older = (b"<metadata><versioning><snapshot><timestamp>20261129.101010</timestamp>"
             b"<buildNumber>7</buildNumber></snapshot></versioning></metadata>")
    assert snapshot_build(older, parse_coordinate(SNAPSHOT)) == "1.1-20261129.101010-7"


@pytest.mark.parametrize("metadata, why", [
    (b'<?xml version="1.0"?><!DOCTYPE lol [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>'
     b"<metadata>&lol2;</metadata>", "declares a DOCTYPE or entities"),
    (b"<metadata>&undeclared;</metadata>", "not well-formed XML"),
    (b"<metadata>" + b" " * MAX_METADATA_BYTES + b"</metadata>", "over 1,048,576 bytes"),
    (b"\xff\xfe<\x00m\x00", "not UTF-8"),
    (b"<metadata><versioning><snapshotVersions><snapshotVersion><extension>jar</extension>"
     b"<value>../../../etc/passwd</value></snapshotVersion></snapshotVersions></versioning>"
     b"</metadata>", "names '../../../etc/passwd', not a build of"),
])
def test_hostile_snapshot_metadata_is_refused(metadata, why):
    with pytest.raises(MetadataInvalid, match=why):
        snapshot_build(metadata, parse_coordinate(SNAPSHOT))


def test_a_checksum_file_is_read_to_its_first_token():
    digest = hashlib.sha1(b"jar").hexdigest()
    assert checksum_in(f"{digest.upper()}  counter-1.0.jar\n".encode(), "sha1") == digest
    assert checksum_in(b"<html>not found</html>", "sha1") is None
    assert checksum_in(digest.encode(), "sha256") is None


def test_a_target_without_repositories_asks_maven_central():
    assert CENTRAL == "https://repo.maven.apache.org/maven2"
    assert maven.repositories([]) == [MavenRepository(url=CENTRAL)]


# --- resolving against real repositories (http, no Flink) ---

def test_a_release_comes_from_the_first_repository_that_has_it_and_is_remembered(
        maven_repository, counter_jar):
    from agent.memo import Memo
    empty, holding, known = maven_repository(), maven_repository(), Memo("known", 10)
    holding.release(RELEASE, counter_jar)
    sha1 = hashlib.sha1(counter_jar.read_bytes()).hexdigest()
    assert store_identity(RELEASE, stores(empty, holding), known) == f"maven:1.0|sha1:{sha1}"
    jar = "/org/example/counter/1.0/counter-1.0.jar"
    assert empty.paths() == [f"GET {jar}.sha1", f"HEAD {jar}"]
    assert holding.paths() == [f"GET {jar}.sha1"]
    assert store_identity(RELEASE, stores(empty, holding), known) == f"maven:1.0|sha1:{sha1}"
    assert len(empty.asked) + len(holding.asked) == 3     # a release is immutable: not again


def test_a_release_served_without_a_checksum_is_identified_by_its_version(
        maven_repository, counter_jar):
    site = maven_repository()
    site.release(RELEASE, counter_jar, checksum=False)
    assert store_identity(RELEASE, stores(site)) == "maven:1.0"


def test_a_repository_refusing_access_is_named_as_written_never_its_secrets(
        maven_repository, counter_jar, monkeypatch):
    site = maven_repository(credentials=("deployer", "the-right-one"))
    site.release(RELEASE, counter_jar)
    monkeypatch.setenv("FG_MAVEN_PASSWORD", "w4rong-s3cret")
    monkeypatch.setenv("FG_MAVEN_URL", site.url)
    written = ArtifactStores(maven=[MavenRepository(url="${FG_MAVEN_URL}", username="deployer",
                                                    password="${FG_MAVEN_PASSWORD}")])
    with pytest.raises(ArtifactError) as refused:
        store_identity(RELEASE, written)
    assert str(refused.value) == (
        f"jarUri {RELEASE}: the Maven repository ${{FG_MAVEN_URL}} refused access (HTTP 401; "
        "check the target's artifactStores.maven username and password)")
    assert site.asked[0][2] == basic("deployer", "w4rong-s3cret")


def test_a_repository_that_does_not_answer_decides_nothing(tmp_path):
    nobody = ArtifactStores(maven=[MavenRepository(url=f"http://127.0.0.1:{free_port()}")])
    with pytest.raises(ArtifactUnavailable, match="did not answer"):
        store_identity(RELEASE, nobody)


def test_an_http_jar_with_a_published_checksum_is_identified_by_it(maven_repository,
                                                                   counter_jar):
    site = maven_repository()
    content = counter_jar.read_bytes()
    site.put("x.jar", content)
    site.put("x.jar.sha256", f"{hashlib.sha256(content).hexdigest()}  x.jar\n".encode())
    site.put("y.jar", content)
    site.put("y.jar.sha1", hashlib.sha1(content).hexdigest().encode())
    assert store_identity(f"{site.url}/x.jar") == f"sha256:{hashlib.sha256(content).hexdigest()}"
    assert site.paths() == ["HEAD /x.jar", "GET /x.jar.sha256"]
    assert store_identity(f"{site.url}/y.jar") == f"sha1:{hashlib.sha1(content).hexdigest()}"
    site.put("z.jar", content)   # no checksum: its Last-Modified and size, as before
    assert store_identity(f"{site.url}/z.jar").startswith("modified:")
    assert len(site.asked) == 2 + 3 + 3


def test_an_http_jar_costs_one_request_a_cycle_once_its_validator_is_known(maven_repository,
                                                                           counter_jar):
    """What a Last-Modified names is remembered: the checksum files are asked for once."""
    from agent.memo import Memo
    site, known = maven_repository(), Memo("known", 10)
    content = counter_jar.read_bytes()
    site.put("x.jar", content)
    site.put("x.jar.sha256", hashlib.sha256(content).hexdigest().encode())
    site.put("z.jar", content)
    for _ in range(3):
        assert store_identity(f"{site.url}/x.jar", known=known).startswith("sha256:")
        assert store_identity(f"{site.url}/z.jar", known=known).startswith("modified:")
    assert site.paths() == ["HEAD /x.jar", "GET /x.jar.sha256", "HEAD /z.jar",
                            "GET /z.jar.sha256", "GET /z.jar.sha1"] + ["HEAD /x.jar",
                                                                       "HEAD /z.jar"] * 2


# --- deployments of maven:// jars on the real Flink cluster ---

def test_a_release_from_a_maven_repository_starts_its_job(maven_repository, spec_repo,
                                                          settings, flink, rest, counter_jar):
    site = maven_repository()
    site.release(RELEASE, counter_jar)
    spec_repo.write_target("test", flink.url, stores={"maven": [{"url": site.url}]})
    deploy(spec_repo, "maven-release", RELEASE)
    spec_repo.push()
    assert sync(settings).exit_code == 0
    assert rest.jobs()[rest.job("maven-release", 1)] == "RUNNING"
    status = spec_repo.status_of("maven-release")
    assert status["sync"] == "SYNCED" and status["lastAction"]["result"] == "SUCCESS"
    assert "GET /org/example/counter/1.0/counter-1.0.jar" in site.paths()
    caches = Caches()   # as the daemon keeps them from cycle to cycle
    assert sync(settings, caches=caches).outcomes == {}
    asked = len(site.asked)
    assert sync(settings, caches=caches).outcomes == {} and len(site.asked) == asked


def test_a_new_snapshot_build_upgrades_the_job_with_its_state(
        maven_repository, spec_repo, settings, flink, rest, counter_jar, tmp_path):
    site = maven_repository()
    site.snapshot(SNAPSHOT, counter_jar, "20261129.101010", 1)
    spec_repo.write_target("test", flink.url, stores={"maven": [{"url": site.url}]})
    deploy(spec_repo, "maven-snapshot", SNAPSHOT)
    spec_repo.push()
    assert sync(settings).exit_code == 0
    old = rest.job("maven-snapshot", 1)
    rest.wait_checkpoint(old)
    assert not [r for r in review(settings).reviews if r.plan.changes_anything]

    rebuilt = another_build(counter_jar, tmp_path, "build-2")
    build = site.snapshot(SNAPSHOT, rebuilt, "20261130.090000", 2)
    planned = {r.name: r for r in review(settings).reviews}["maven-snapshot"]
    assert planned.plan.action.value == "STATEFUL_UPGRADE"
    assert "jarUri (the object)" in planned.plan.reason
    assert f"maven:{build}" in planned.plan.reason and build == "1.1-20261130.090000-2"
    assert sync(settings).exit_code == 0
    status = spec_repo.status_of("maven-snapshot")
    new = status["job"]["id"]
    assert new == rest.job("maven-snapshot", 2) and rest.jobs()[new] == "RUNNING"
    assert status["lastAction"]["kind"] == "STATEFUL_UPGRADE"
    assert rest.restored_from(new) == status["lastSavepoint"]["location"]
    assert f"GET /org/example/counter/1.1-SNAPSHOT/counter-{build}.jar" in site.paths()
    assert sync(settings).outcomes == {}   # and then it is in sync


def test_repository_credentials_by_reference_reach_it_as_basic_auth_and_nowhere_else(
        maven_repository, spec_repo, settings, flink, rest, counter_jar, tmp_path,
        monkeypatch, caplog):
    canary = "m4ven-c4n4ry-secret"
    site = maven_repository(credentials=("deployer", canary))
    site.release(RELEASE, counter_jar)
    (tmp_path / "maven-password").write_text(canary + "\n")
    monkeypatch.setenv("FG_MAVEN_USER", "deployer")
    spec_repo.write_target("test", flink.url, stores={"maven": [{
        "url": site.url, "username": "${FG_MAVEN_USER}",
        "password": f"${{file:{tmp_path / 'maven-password'}}}"}]})
    deploy(spec_repo, "maven-private", RELEASE)
    spec_repo.push()
    assert sync(settings).exit_code == 0
    assert rest.jobs()[rest.job("maven-private", 1)] == "RUNNING"
    assert {sent for _, _, sent in site.asked} == {basic("deployer", canary)}
    branch = git(spec_repo.remote, "log", "-p", DEFAULT_STATUS_BRANCH)
    assert "maven-private" in branch and canary not in branch + caplog.text


def test_a_coordinate_without_its_version_is_invalid_at_its_line(spec_repo, tmp_path):
    spec_repo.write_target("test", "http://flink.example:8081")
    text = deploy(spec_repo, "maven-no-version", "maven://org.example:counter")
    line = text.splitlines().index("        jarUri: maven://org.example:counter") + 1
    checked = validate(spec_repo.checkout, cache_dir=tmp_path / "cache")
    [problem] = checked.problems
    assert (problem.file, problem.line) == ("deployments/maven-no-version.yaml", line)
    assert problem.message.startswith("jarUri maven://org.example:counter: its version is "
                                      "missing (write maven://GROUP:ARTIFACT:VERSION")


def test_an_artifact_in_no_repository_is_invalid_and_the_running_job_untouched(
        maven_repository, spec_repo, settings, flink, rest, counter_jar):
    empty, holding = maven_repository(), maven_repository()
    holding.release(RELEASE, counter_jar)
    spec_repo.write_target("test", flink.url, stores={"maven": [{"url": empty.url},
                                                                {"url": holding.url}]})
    deploy(spec_repo, "maven-moved", RELEASE)
    spec_repo.push()
    assert sync(settings).exit_code == 0
    running = rest.job("maven-moved", 1)

    deploy(spec_repo, "maven-moved", "maven://org.example:counter:9.9", parallelism=2)
    spec_repo.push("a version never released")
    assert sync(settings).exit_code == 1
    status = spec_repo.status_of("maven-moved")
    [error] = status["errors"]
    assert status["sync"] == "INVALID" and error["file"] == "deployments/maven-moved.yaml"
    assert error["message"] == (
        f"jarUri maven://org.example:counter:9.9: not found in the Maven repositories "
        f"{empty.url}, {holding.url} (no org/example/counter/9.9/counter-9.9.jar)")
    assert rest.jobs()[running] == "RUNNING"
    assert rest.job("maven-moved", 2).endswith("-not-found")
