"""Job artifacts: a Deployment's artifact -> the program Flink runs (I/O: files, HTTP, git).

A JAR artifact's `jarUri`: `https://` and `http://` jars are downloaded when a job is started,
`file://` jars are read where they are, and a relative path is read from the spec repository at
the applied commit, so a jar committed next to its spec is versioned with it. A jar in an object
store (`s3://` or `s3a://`, `gs://`, `abfs(s)://`) is read through fsspec with the store's
standard environment (for S3: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN,
AWS_ENDPOINT_URL, AWS_REGION; for Google Cloud Storage: STORAGE_EMULATOR_HOST, else
GOOGLE_APPLICATION_CREDENTIALS, else Application Default Credentials; for Azure:
AZURE_STORAGE_CONNECTION_STRING, else AZURE_STORAGE_ACCOUNT_NAME (or the ACCOUNT of an
`abfs(s)://CONTAINER@ACCOUNT.dfs.core.windows.net/` URI) with AZURE_STORAGE_ACCOUNT_KEY or
AZURE_STORAGE_SAS_TOKEN, else adlfs's own credentials). A
`maven://GROUP:ARTIFACT:VERSION[:CLASSIFIER]` jar is resolved in the target's Maven repositories
(`agent.flink.maven`) and downloaded from the first that has it. A jar in a store, a Maven repository or on an http(s) server has an identity
(`store_identity`: its version id, ETag, published checksum, Last-Modified, or Maven build; a
request or three) that is part of the job's digest, so a jar replaced at the same key or URL,
or a new snapshot build, makes a new job. A SQLSCRIPT artifact
runs as the project's SQL runner jar with the script (inline, or its `sqlScriptFile`
read from the spec repository at the same commit) as program argument.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import time
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable
from urllib.parse import unquote, urlparse, urlsplit, urlunsplit

import requests
from fsspec.exceptions import FSTimeoutError

from agent.artifact_check import OBJECT_STORES, file_jar_allowed, scheme_problem
from agent.errors import ArtifactError, ArtifactUnavailable
from agent.flink import maven
from agent.flink.http import DeadlinePassed, deadline, session
from agent.flink.jars import jar_problem, with_libraries
from agent.flink.local import flink_home
from agent.flink.python import (DRIVER_CLASS, NO_PYFLINK, REPO_SCRIPT_LOCAL_ONLY, PythonSite,
                                driver_args, driver_jar_uri, local_python, pyflink_installed,
                                staged_script)
from agent.flink.runner import RUNNER_CLASS, runner_args, runner_jar
from agent.logs import register_secret
from agent.memo import Memo
from agent.model.maven import MAX_CHECKSUM_BYTES, checksum_in, is_maven
from agent.model.spec import ArtifactKind, ArtifactStores, Deployment, repo_path
from agent.secrets import expand

ReadFromRepo = Callable[[str], bytes | None]
MAX_ARTIFACT_BYTES = 1024 ** 3      # a downloaded jar above this is refused
DOWNLOAD_DEADLINE_S = 600.0         # a download taking longer is given up (tried again later)
STORE_TIMEOUT_S = 30                # an object store's connect and read timeouts (a request)
STORE_ANSWER_S = 30.0               # a gs:// or abfs(s):// metadata request, retries included
STORE_BLOCK_BYTES = 8 << 20         # read from an object store this much at a time
HEAD_TIMEOUT_S = 10                 # an http(s) jar's metadata request (connect, read)
CHECKSUM_FILES = ("sha256", "sha1")  # asked for in this order beside an http(s) jar without ETag
# the stores whose clients retry a request that gets no answer for longer than the agent waits,
# and not configurably through fsspec (gcsfs: 6 tries over about 35 s; adlfs: azure-core's 4 over
# about 85 s): their metadata requests are cut at STORE_ANSWER_S (`_AnswerDeadline`)
ANSWER_DEADLINE_PROTOCOLS = ("gs", "abfs")
AZURE_HOSTS = (".dfs.core.windows.net", ".blob.core.windows.net")  # ACCOUNT + this: an abfs host


@dataclass(frozen=True)
class JobProgram:
    """What a job is submitted as: an uploadable jar, its entry class and program arguments,
    and Flink options it needs (the deployment's flinkConfiguration wins over them)."""

    jar: Path
    entry_class: str | None
    args: list[str]
    configuration: dict[str, str] = field(default_factory=dict)


def job_program(deployment: Deployment, cache_dir: Path, read_from_repo: ReadFromRepo,
                file_roots: Iterable[Path] = (),
                stores: ArtifactStores = ArtifactStores(),
                python: PythonSite | None = None) -> JobProgram:
    """The program of `deployment`'s job: its jar, the SQL runner with its script, or Flink's
    Python driver with its script (run where `python` says), with its additionalDependencies
    nested in it (`jars.with_libraries`); secret references in its arguments, script and jar URL
    expanded (held in memory only); `stores`: its target's settings for object stores and Maven
    repositories."""
    artifact = deployment.spec.template.spec.artifact
    if artifact.kind == ArtifactKind.PYTHON:
        program = _python_program(deployment, cache_dir, read_from_repo, stores, python)
    else:
        program = _main_program(deployment, cache_dir, read_from_repo, file_roots, stores)
    libraries = dependency_jars(deployment, cache_dir, read_from_repo, file_roots, stores)
    return replace(program, jar=with_libraries(program.jar, libraries, cache_dir))


def dependency_jars(deployment: Deployment, cache_dir: Path, read_from_repo: ReadFromRepo,
                    file_roots: Iterable[Path] = (),
                    stores: ArtifactStores = ArtifactStores()) -> list[Path]:
    """Local files holding `deployment`'s additionalDependencies, in order (errors name the
    dependency by its place in the list)."""
    jars = []
    for index, uri in enumerate(deployment.spec.template.spec.artifact.dependencies):
        try:
            jars.append(fetch_jar(uri, cache_dir, read_from_repo, file_roots, stores))
        except (ArtifactError, ArtifactUnavailable) as error:
            raise type(error)(dependency_error(error, index)) from None
    return jars


def dependency_error(error: Exception, index: int) -> str:
    """An artifact error about a jarUri, told of additionalDependencies[index] instead."""
    return str(error).replace("jarUri ", f"additionalDependencies[{index}] ", 1)


def _python_program(deployment: Deployment, cache_dir: Path, read_from_repo: ReadFromRepo,
                    stores: ArtifactStores, site: PythonSite | None) -> JobProgram:
    artifact = deployment.spec.template.spec.artifact
    written = artifact.python_script
    if site is None:
        raise ArtifactError(f"pythonScript {written}: the target runs no Python jobs")
    if site.local and not pyflink_installed(local_python()):
        raise ArtifactError(f"pythonScript {written}: {NO_PYFLINK}")
    path = artifact.repo_file()
    if path is not None:
        if not site.local:
            raise ArtifactError(f"pythonScript {written}: {REPO_SCRIPT_LOCAL_ONLY}")
        content = read_from_repo(path)
        if content is None:
            raise ArtifactError(f"pythonScript {written}: no file {path} in the spec repository")
        script = str(staged_script(content, path, site.staging))   # (as written: code)
    else:
        script = expand(written)
    args, options = driver_args(script, path is not None, site.local,
                                [expand(a) for a in artifact.program_args()])
    home = flink_home() if site.local else None
    driver = fetch_jar(driver_jar_uri(site, home), cache_dir, read_from_repo,
                       [home / "opt"] if home else (), stores)
    return JobProgram(driver, DRIVER_CLASS, args, options)


def _main_program(deployment: Deployment, cache_dir: Path, read_from_repo: ReadFromRepo,
                  file_roots: Iterable[Path], stores: ArtifactStores) -> JobProgram:
    artifact = deployment.spec.template.spec.artifact
    if artifact.kind == ArtifactKind.SQLSCRIPT:
        script = artifact.sql_script
        if script is None:
            path = artifact.repo_file()
            content = read_from_repo(path)
            if content is None:
                raise ArtifactError(f"sqlScriptFile {artifact.sql_script_file}: no file {path} "
                                    "in the spec repository")
            script = content.decode("utf-8")
        return JobProgram(runner_jar(cache_dir), RUNNER_CLASS,
                          runner_args(deployment.name, expand(script)))
    jar = fetch_jar(artifact.jar_uri, cache_dir, read_from_repo, file_roots, stores)
    problem = jar_problem(jar, artifact.entry_class)
    if problem is not None:
        raise ArtifactError(f"jarUri {artifact.jar_uri}: {problem}")
    return JobProgram(jar, artifact.entry_class, [expand(a) for a in artifact.program_args()])


def fetch_jar(jar_uri: str, cache_dir: Path, read_from_repo: ReadFromRepo,
              file_roots: Iterable[Path] = (), stores: ArtifactStores = ArtifactStores()) -> Path:
    """A local file holding the jar `jar_uri` names (a `file://` one only under `file_roots`)."""
    if is_maven(jar_uri):
        found = maven.resolve(jar_uri, stores.maven)
        return _download(found.url(), posixpath.basename(found.path), cache_dir, found.auth(),
                         f"{jar_uri} ({found.shown()})")
    parsed = urlparse(jar_uri)
    if parsed.scheme == "file":
        path = file_jar_allowed(jar_uri, file_roots)
        if path is None:
            raise ArtifactError(f"jarUri {jar_uri}: file:// jars are read only under the "
                                "agent's --file-jar-dir directories")
        if not path.is_file():
            raise ArtifactError(f"jarUri {jar_uri}: no such file on the agent's machine")
        return path
    if parsed.scheme in ("http", "https"):
        return _download(expand(jar_uri), _name_of(parsed.path), cache_dir)
    if parsed.scheme:
        problem = scheme_problem(jar_uri)
        if problem is not None or parsed.scheme.lower() not in OBJECT_STORES:
            raise ArtifactError(f"jarUri {jar_uri}: {problem}")
        return _download_object(jar_uri, _name_of(parsed.path), cache_dir, stores)
    path = repo_path(jar_uri)
    content = read_from_repo(path)
    if content is None:
        raise ArtifactError(f"jarUri {jar_uri}: no file {path} in the spec repository")
    return _keep(content, posixpath.basename(path), cache_dir)


def _download(url: str, name: str, cache_dir: Path, auth: maven.Auth = None,
              shown: str | None = None) -> Path:
    """Streams a jar to the cache (never whole in memory), at most MAX_ARTIFACT_BYTES and
    DOWNLOAD_DEADLINE_S in all, with basic `auth` when given; the same content is stored once.
    Messages name the jar `shown` (default: `url`)."""
    shown = shown or url
    digest = hashlib.sha256()
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=cache_dir, delete=False) as partial:
        try:
            with deadline(DOWNLOAD_DEADLINE_S):
                _stream(url, partial, digest, auth, shown)
        except BaseException as error:
            Path(partial.name).unlink(missing_ok=True)
            if isinstance(error, DeadlinePassed):
                raise ArtifactUnavailable(f"jarUri {shown}: download took over "
                                          f"{DOWNLOAD_DEADLINE_S:g}s (the limit)") from None
            raise
    return _stored(Path(partial.name), digest.hexdigest()[:12], name, cache_dir)


def _stream(url: str, partial, digest, auth: maven.Auth, shown: str) -> None:
    try:
        with session().get(url, stream=True, timeout=60, auth=auth) as response:
            if response.status_code >= 500:
                raise ArtifactUnavailable(f"jarUri {shown}: download answered HTTP "
                                          f"{response.status_code}")
            if response.status_code != 200:
                raise ArtifactError(f"jarUri {shown}: download answered HTTP "
                                    f"{response.status_code}")
            size = 0
            for chunk in response.iter_content(1 << 20):
                size += len(chunk)
                if size > MAX_ARTIFACT_BYTES:
                    raise ArtifactError(f"jarUri {shown}: larger than the limit of "
                                        f"{MAX_ARTIFACT_BYTES:,} bytes")
                digest.update(chunk)
                partial.write(chunk)
    except (requests.RequestException, OSError) as error:
        raise ArtifactUnavailable(
            f"jarUri {shown}: download failed ({type(error).__name__})") from None


def store_identity(jar_uri: str | None, stores: ArtifactStores = ArtifactStores(),
                   known: Memo | None = None) -> str | None:
    """The identity of the jar `jar_uri` names as it is now: in an object store its version id
    when the store keeps versions, else its ETag (one metadata request); on an http(s) server
    its ETag, else the checksum it publishes beside it, else its Last-Modified and size (a HEAD,
    and two small GETs the first time a Last-Modified is seen); in Maven repositories its
    version and checksum, or a -SNAPSHOT's timestamped build (`agent.flink.maven`). `known`
    remembers what does not change: a Maven release, the identity of an http jar by its
    validator. None for a jar kept elsewhere, or a server that offers none of these. ArtifactError when the store, server or repository says
    it is not there or may not be read, ArtifactUnavailable when it did not answer."""
    if is_maven(jar_uri):
        return maven.identity(jar_uri, stores.maven, known)
    scheme = urlparse(jar_uri).scheme.lower() if jar_uri else ""
    if scheme in ("http", "https"):
        return _http_identity(jar_uri, known)
    if scheme not in OBJECT_STORES or scheme_problem(jar_uri) is not None:
        return None
    info = _store_call(jar_uri, stores, lambda fs, path: _fresh_info(fs, path))
    return _identity_of(info)


def _http_identity(jar_uri: str, known: Memo | None) -> str | None:
    try:
        with deadline(HEAD_TIMEOUT_S * 2):
            answer = session().head(expand(jar_uri), timeout=HEAD_TIMEOUT_S,
                                    allow_redirects=True)
    except (requests.RequestException, DeadlinePassed, OSError) as error:
        raise ArtifactUnavailable(f"jarUri {jar_uri}: the server did not answer "
                                  f"({type(error).__name__})") from None
    if answer.status_code >= 500:
        raise ArtifactUnavailable(f"jarUri {jar_uri}: the server answered HTTP "
                                  f"{answer.status_code}")
    if answer.status_code in (404, 410, 401, 403):
        raise ArtifactError(f"jarUri {jar_uri}: the server answered HTTP {answer.status_code}")
    headers = answer.headers if answer.status_code == 200 else {}
    if headers.get("ETag"):
        return f"etag:{headers['ETag'].strip(chr(34))}"
    modified = headers.get("Last-Modified")
    validator = f"modified:{modified}|{headers.get('Content-Length', '?')}" if modified else None
    if validator is None or known is None:   # (neither: the jar's URL alone names it)
        return _published_checksum(jar_uri) or validator
    return known.get_or(("http", jar_uri, validator),
                        lambda: _published_checksum(jar_uri) or validator)


def _published_checksum(jar_uri: str) -> str | None:
    """`sha256:HEX` (or `sha1:HEX`) from the checksum file a server keeps beside the jar
    (`<jar>.sha256`, else `<jar>.sha1`; at most MAX_CHECKSUM_BYTES each), or None when it keeps
    neither (a 404, or an answer that is no checksum). A server that does not answer is
    ArtifactUnavailable: an identity that falls back now and then would restart the job."""
    for algorithm in CHECKSUM_FILES:
        try:
            answer = maven.ask("GET", _beside(expand(jar_uri), f".{algorithm}"),
                               MAX_CHECKSUM_BYTES)
        except maven.NoAnswer as error:
            raise ArtifactUnavailable(f"jarUri {jar_uri}: the server did not answer for its "
                                      f".{algorithm} ({error})") from None
        if answer.transient:
            raise ArtifactUnavailable(f"jarUri {jar_uri}: the server answered HTTP "
                                      f"{answer.status} for its .{algorithm}")
        digest = checksum_in(answer.body, algorithm) if answer.body else None
        if digest is not None:
            return f"{algorithm}:{digest}"
    return None


def _beside(url: str, suffix: str) -> str:
    """The address of the file named `url`'s file plus `suffix` (its query kept) (pure)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=parts.path + suffix))


def _identity_of(info: dict) -> str:
    """The most specific identity an object store's metadata offers (pure)."""
    version = info.get("VersionId") or info.get("generation") or info.get("version_id")
    if version:
        return f"version:{version}"
    etag = info.get("ETag") or info.get("etag") or info.get("md5Hash")
    if etag:
        return f"etag:{str(etag).strip(chr(34))}"
    fields = {k: str(v) for k, v in info.items() if k in ("size", "LastModified", "mtime",
                                                             "last_modified", "updated")}
    return "info:" + hashlib.sha256(repr(sorted(fields.items())).encode()).hexdigest()[:16]


def _fresh_info(fs, path: str) -> dict:
    fs.invalidate_cache(path)   # the instance is shared: never an answer of an earlier cycle
    info = fs.info(path)
    if info.get("type") == "directory":
        raise FileNotFoundError(f"{path} is a directory")
    return info


def _download_object(jar_uri: str, name: str, cache_dir: Path, stores: ArtifactStores) -> Path:
    """Streams an object-store jar to the cache, with the limits of `_download`."""
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()

    def copy(fs, path: str) -> Path:
        info = _fresh_info(fs, path)
        if (info.get("size") or 0) > MAX_ARTIFACT_BYTES:
            raise ArtifactError(f"jarUri {jar_uri}: larger than the limit of "
                                f"{MAX_ARTIFACT_BYTES:,} bytes")
        ends = time.monotonic() + DOWNLOAD_DEADLINE_S
        with tempfile.NamedTemporaryFile(dir=cache_dir, delete=False) as partial:
            try:
                size = 0
                with fs.open(path, "rb", block_size=STORE_BLOCK_BYTES) as remote:
                    while chunk := remote.read(1 << 20):
                        size += len(chunk)
                        if size > MAX_ARTIFACT_BYTES:
                            raise ArtifactError(f"jarUri {jar_uri}: larger than the limit of "
                                                f"{MAX_ARTIFACT_BYTES:,} bytes")
                        if time.monotonic() > ends:
                            raise ArtifactUnavailable(
                                f"jarUri {jar_uri}: download took over "
                                f"{DOWNLOAD_DEADLINE_S:g}s (the limit)")
                        digest.update(chunk)
                        partial.write(chunk)
            except BaseException:
                Path(partial.name).unlink(missing_ok=True)
                raise
        return Path(partial.name)

    partial = _store_call(jar_uri, stores, copy)
    return _stored(partial, digest.hexdigest()[:12], name, cache_dir)


def _store_call(jar_uri: str, stores: ArtifactStores, call):
    """`call(filesystem, path)` for the object `jar_uri` names (its secret references, and the
    target's store settings', expanded here only), its failures typed: the store's refusal (no such object or bucket, access
    denied, no credentials) an ArtifactError with the store's reason, no answer (network, 5xx)
    ArtifactUnavailable. Messages name `jar_uri` as written."""
    scheme = urlparse(jar_uri).scheme.lower()
    url = expand(jar_uri)
    protocol, _ = OBJECT_STORES[scheme]
    if scheme == "s3a":
        url = "s3://" + url.split("://", 1)[1]
    try:
        fs = _store_filesystem(protocol, url, stores)
        return call(fs, fs._strip_protocol(url))
    except (ArtifactError, ArtifactUnavailable):
        raise
    except FSTimeoutError:
        raise ArtifactUnavailable(f"jarUri {jar_uri}: the store did not answer within "
                                  f"{STORE_ANSWER_S:g}s") from None
    except FileNotFoundError as error:
        raise ArtifactError(f"jarUri {jar_uri}: no such object or bucket in the store "
                            f"({_reason(error)})") from None
    except PermissionError as error:
        raise ArtifactError(f"jarUri {jar_uri}: the store refused access "
                            f"({_reason(error)})") from None
    except Exception as error:  # noqa: BLE001 - each store's client has its own error tree
        if not _from_store(error):
            raise
        if _refusal(error):
            raise ArtifactError(f"jarUri {jar_uri}: the store refused it "
                                f"({_reason(error)})") from None
        raise ArtifactUnavailable(f"jarUri {jar_uri}: the store did not answer "
                                  f"({_reason(error)})") from None


def _store_filesystem(protocol: str, url: str, stores: ArtifactStores):
    """The fsspec filesystem that reads `url`, with `_store_options`. Against a GCS emulator it is
    gcsfs's JSON-API filesystem, not its default, which asks each bucket's layout of the gRPC
    Storage Control API (no emulator serves it: a minute lost at every open). A gs or abfs one
    is given STORE_ANSWER_S for an object's metadata (`_AnswerDeadline`)."""
    import fsspec
    options = _store_options(protocol, stores, url)
    if protocol == "gs" and "endpoint_url" in options:
        from gcsfs.core import GCSFileSystem
        fs = GCSFileSystem(**options)
    else:
        fs = fsspec.filesystem(protocol, **options)
    return _AnswerDeadline(fs) if protocol in ANSWER_DEADLINE_PROTOCOLS else fs


class _AnswerDeadline:
    """An async fsspec filesystem whose `info` is given up after STORE_ANSWER_S, its client's
    retries included: fsspec cancels the request and raises FSTimeoutError. All else is the
    filesystem's own."""

    def __init__(self, fs):
        self._fs = fs

    def __getattr__(self, name: str):
        return getattr(self._fs, name)

    def info(self, path: str, **kwargs) -> dict:
        return self._fs.info(path, timeout=STORE_ANSWER_S, **kwargs)


def _store_options(protocol: str, stores: ArtifactStores, url: str) -> dict:
    """The fsspec options of `protocol` for `url`: the target's settings (`artifactStores.s3`,
    secret references expanded), else the agent's environment. They are read here, not left to
    the store's client, so that fsspec's instance cache keys on them (and every botocore version
    honours AWS_ENDPOINT_URL)."""
    if protocol == "gs":
        return _gcs_options()
    if protocol == "abfs":
        return _azure_options(url)
    if protocol != "s3":
        return {}
    env, s3 = os.environ, stores.s3

    def setting(field: str, *variables: str) -> str | None:
        written = getattr(s3, field) if s3 is not None else None
        if written is not None:
            return expand(written)
        return next((env[v] for v in variables if env.get(v)), None)

    options: dict = {"config_kwargs": {"connect_timeout": STORE_TIMEOUT_S,
                                       "read_timeout": STORE_TIMEOUT_S,
                                       "retries": {"max_attempts": 3}}}
    endpoint = setting("endpoint", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
    if endpoint:
        options["endpoint_url"] = endpoint
    key = setting("access_key_id", "AWS_ACCESS_KEY_ID")
    secret = setting("secret_access_key", "AWS_SECRET_ACCESS_KEY")
    if key and secret:
        options["key"], options["secret"] = key, secret
        token = setting("session_token", "AWS_SESSION_TOKEN")
        for value in (secret, token):
            if value:
                register_secret(value)
        if token:
            options["token"] = token
    region = setting("region", "AWS_REGION", "AWS_DEFAULT_REGION")
    if region:
        options["client_kwargs"] = {"region_name": region}
    return options


def _gcs_options() -> dict:
    """gcsfs's options from the agent's environment: STORAGE_EMULATOR_HOST (an emulator's
    `host:port` or URL, read anonymously), else GOOGLE_APPLICATION_CREDENTIALS (a credentials
    file google-auth reads: a wrong one is the store's refusal, not an anonymous read), else
    gcsfs's own order (Application Default Credentials: gcloud's, the metadata server's; then
    anonymous). Each request's connect and read timeouts are STORE_TIMEOUT_S."""
    import aiohttp
    options: dict = {"requests_timeout": aiohttp.ClientTimeout(sock_connect=STORE_TIMEOUT_S,
                                                               sock_read=STORE_TIMEOUT_S)}
    emulator = os.environ.get("STORAGE_EMULATOR_HOST", "")
    if emulator and emulator != "default":   # (gcsfs's word for none)
        endpoint = emulator if "://" in emulator else f"http://{emulator}"
        return {**options, "endpoint_url": endpoint, "token": "anon"}
    if os.environ.get("GOOGLE_APPLICATION_CREDENTIALS"):
        options["token"] = "google_default"
    return options


def _azure_options(url: str) -> dict:
    """adlfs's options from the agent's environment: AZURE_STORAGE_CONNECTION_STRING, else the
    account (AZURE_STORAGE_ACCOUNT_NAME, else the one `url` names) with AZURE_STORAGE_ACCOUNT_KEY
    or AZURE_STORAGE_SAS_TOKEN, else adlfs's own credentials (AZURE_STORAGE_CLIENT_ID, _SECRET
    and _TENANT_ID; then azure-identity's default: a managed identity, `az login`). The secrets
    among them are registered."""
    env = os.environ
    connection = env.get("AZURE_STORAGE_CONNECTION_STRING")
    if connection:
        for name, value in _connection_fields(connection).items():
            if name in ("accountkey", "sharedaccesssignature"):
                register_secret(value)
        return {"connection_string": connection}
    options: dict = {}
    account = env.get("AZURE_STORAGE_ACCOUNT_NAME") or _account_in(url)
    if account:
        options["account_name"] = account
    for option, variable in (("account_key", "AZURE_STORAGE_ACCOUNT_KEY"),
                             ("sas_token", "AZURE_STORAGE_SAS_TOKEN")):
        if env.get(variable):
            register_secret(env[variable])
            options[option] = env[variable]
    return options


def _connection_fields(connection: str) -> dict[str, str]:
    """An Azure connection string's `Name=value` fields, names in lower case (pure)."""
    pairs = (part.split("=", 1) for part in connection.split(";") if "=" in part)
    return {name.strip().lower(): value for name, value in pairs}


def _account_in(url: str) -> str | None:
    """The storage account an `abfs(s)://CONTAINER@ACCOUNT.dfs.core.windows.net/...` URI names,
    or None for `abfs(s)://CONTAINER/...` (pure)."""
    host = urlsplit(url).hostname or ""
    return next((host[:-len(suffix)] for suffix in AZURE_HOSTS
                 if host.endswith(suffix) and len(host) > len(suffix)), None)


def _refusal(error: BaseException) -> bool:
    """An object store's answer that will not change by asking again: no credentials, a
    malformed bucket name, a 4xx (pure)."""
    name = type(error).__name__
    if name in ("NoCredentialsError", "PartialCredentialsError", "ParamValidationError",
                "InvalidBucketName", "ValueError", "DefaultCredentialsError"):
        return True
    import errno
    if isinstance(error, OSError) and error.errno in (errno.EINVAL, errno.EPERM, errno.EACCES):
        return True
    if isinstance(error, OSError) and str(error).startswith("Forbidden: "):   # gcsfs's 403
        return True
    code = _status_of(error)
    return code is not None and 400 <= code < 500


def _status_of(error: BaseException) -> int | None:
    """The HTTP status a store client's error carries, if any: botocore's response, azure-core's
    `status_code`, gcsfs's HttpError's `code` (pure)."""
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    elif type(error).__module__.startswith("gcsfs"):
        status = getattr(error, "code", None)
    else:
        status = getattr(error, "status_code", None)
    return status if isinstance(status, int) else None


def _from_store(error: BaseException) -> bool:
    """An error of the store's client or of the network, not a bug of the agent's (pure)."""
    module = type(error).__module__.split(".")[0]
    return isinstance(error, (OSError, TimeoutError, ValueError)) or module in (
        "botocore", "aiobotocore", "aiohttp", "s3fs", "gcsfs", "adlfs", "azure", "google",
        "fsspec", "asyncio")


def _reason(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 300 else text[:300] + "…"


def _keep(content: bytes, name: str, cache_dir: Path) -> Path:
    """Stores content under a name that carries its digest; the same content is stored once."""
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=cache_dir, delete=False) as partial:
        partial.write(content)
    return _stored(Path(partial.name), hashlib.sha256(content).hexdigest()[:12], name, cache_dir)


def _stored(partial: Path, digest: str, name: str, cache_dir: Path) -> Path:
    stem = name[:-4] if name.endswith(".jar") else name
    path = Path(cache_dir) / f"{stem}-{digest}.jar"
    if path.exists():
        partial.unlink()
    else:
        partial.replace(path)
    return path


def _name_of(url_path: str) -> str:
    return posixpath.basename(unquote(url_path)) or "artifact.jar"
