"""Spec files -> specs and per-document problems, each naming file and line (pure).

Every YAML document of every file is loaded on its own: a syntax error, a schema error or a
duplicate name is reported for that document and never hides the others. Documents are split
on `---` before parsing, so that even a syntax error only costs its own document. Nothing a file
can contain makes loading raise: too big, not UTF-8, a NUL byte, a tag outside YAML's core
schema, a duplicate key, nesting or alias expansion beyond the limits all end as problems.

A document whose kind and name cannot be read (a syntax error, `name: 123`) makes its file
*unreadable*: the file cannot say which deployments it holds, so the ones it held are held as
they are (see `agent.deletion`), never taken for deleted.

`load_blobs` takes files named by their git blob id and parses only those it has not parsed
before (`ParsedFiles`): git says which files changed, so a cycle re-parses only those.

A Deployment is validated once every file is read (`_merge`): the DeploymentDefaults of its
namespace are merged under it and its `sessionClusterName` resolved (`agent.defaults`), and
the outcome is kept on its draft for as long as those stay the same. A FlinkSessionJob of the
Flink Kubernetes Operator is read as a Deployment (`agent.dialects`). DeploymentDefaults that
cannot be read hold every deployment they may concern: a typo in defaults never changes a job.
"""

from __future__ import annotations

import difflib
import json
import re
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import yaml
from pydantic import ValidationError

from agent.defaults import Effective, on_cluster, with_defaults
from agent.dialects import (OPERATOR_CLUSTER_KIND, SESSION_JOB_KIND, is_operator_document,
                            moved_lines, session_job)
from agent.errors import SpecLimitError
from agent.memo import Memo
from agent.model.spec import (DEFAULT_NAMESPACE, DNS_1123_LABEL, SPEC_KINDS, Deployment,
                              DeploymentDefaults, DeploymentTarget, SessionCluster,
                              SyncWindow)

MAX_FILE_BYTES = 1024 * 1024     # a spec file above this is not read (its deployments are held)
MAX_FILES = 50_000               # spec files under --path; more and no file is read
MAX_DEPTH = 64                   # nesting levels of a document
MAX_NODES = 100_000              # values of a document, every use of an alias counted
_DOCUMENT_SEPARATOR = re.compile(r"^---(\s.*)?$")
# the kinds whose document, unreadable, still holds others back: read even from broken YAML
_HOLDING_KIND = re.compile(r"^kind:\s*[\"']?(DeploymentDefaults|SyncWindow)\b",
                           re.MULTILINE)
_FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)   # libyaml when PyYAML has it
_CORE = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _MERGE = _CORE + "str", _CORE + "int", _CORE + "float", _CORE + "merge"
_TYPED_TAGS = frozenset(_CORE + t for t in ("int", "float", "bool", "null"))
_CORE_TAGS = _TYPED_TAGS | frozenset(_CORE + t for t in ("str", "map", "seq", "timestamp",
                                                         "merge"))


class _SpecLoader(yaml.SafeLoader):
    """YAML's core schema, with timestamps kept as the text they were written as (a spec's
    times are strings: `createdAt: 2024-01-01T00:00:00Z` in a Ververica export)."""


_SpecLoader.add_constructor(_CORE + "timestamp", yaml.SafeLoader.construct_scalar)


@dataclass(frozen=True)
class SpecProblem:
    """Something wrong with one document: where, what, and whose (when the name is readable)."""

    file: str
    line: int
    message: str
    kind: str | None = None
    name: str | None = None

    @property
    def where(self) -> str:
        """Its file and line (line 0: of no file's line, e.g. a branch whose head is refused)."""
        return f"{self.file}:{self.line}" if self.line else self.file

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass(frozen=True)
class Located:
    """A valid spec and where it was written; a Deployment's `origins` say which of its values
    it does not write itself (dotted path -> "DeploymentDefaults prod", see `agent.defaults`)."""

    spec: Deployment | DeploymentTarget | SessionCluster | DeploymentDefaults | SyncWindow
    file: str
    line: int
    lines: dict[tuple, int] = field(default_factory=dict, compare=False, repr=False)
    origins: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def line_of(self, *path: str) -> int:
        """The line of a field of this document (the document's own line if not written)."""
        return _line_of(self.lines, path) if self.lines else self.line


@dataclass(frozen=True)
class Draft:
    """A Deployment document read but not validated yet: that needs the DeploymentDefaults and
    SessionClusters of every file. Its outcome is kept per context (`outcome`), so an unchanged
    file's deployment is the same object from cycle to cycle."""

    file: str
    line: int
    name: str
    data: dict[str, Any]
    lines: dict[tuple, int] = field(compare=False, repr=False)
    warnings: tuple[SpecProblem, ...] = ()   # of its dialect (a FlinkSessionJob's fields)
    dialect: str = "Deployment"              # the kind it was written as
    _outcomes: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def namespace(self) -> str:
        metadata = self.data.get("metadata")
        written = metadata.get("namespace") if isinstance(metadata, dict) else None
        return written if isinstance(written, str) and written else DEFAULT_NAMESPACE

    def outcome(self, context: tuple, validate: Callable[[], ParsedFile]) -> ParsedFile:
        """The validation's outcome in `context` (the last two contexts are kept)."""
        if context not in self._outcomes:
            while len(self._outcomes) >= 2:
                self._outcomes.pop(next(iter(self._outcomes)))
            self._outcomes[context] = validate()
        return self._outcomes[context]


@dataclass
class LoadResult:
    deployments: dict[str, Located] = field(default_factory=dict)
    targets: dict[str, Located] = field(default_factory=dict)
    session_clusters: dict[str, Located] = field(default_factory=dict)
    defaults: dict[str, Located] = field(default_factory=dict)   # by the namespace they serve
    windows: dict[str, Located] = field(default_factory=dict)    # SyncWindows
    problems: list[SpecProblem] = field(default_factory=list)
    warnings: list[SpecProblem] = field(default_factory=list)
    notes: list[SpecProblem] = field(default_factory=list)
    files: dict[str, ParsedFile] = field(default_factory=dict)   # every spec file, by path
    # DeploymentDefaults that cannot be read: (their namespace, None if unknown, and why)
    unread_defaults: list[tuple[str | None, SpecProblem]] = field(default_factory=list)
    # SyncWindows that cannot be read (or are written twice): every change is held
    unread_windows: list[SpecProblem] = field(default_factory=list)
    # the deployments whose values name secrets of the agent's machine (`secret_check`)
    secret_readers: set[str] = field(default_factory=set)

    def unreadable(self) -> dict[str, ParsedFile]:
        """The files that cannot say which deployments they hold."""
        return {path: parsed for path, parsed in self.files.items() if parsed.unreadable}

    def unattributed(self) -> list[SpecProblem]:
        """Problems that concern no readable Deployment: files and documents whose names cannot
        be read, and invalid DeploymentTargets."""
        return [p for p in self.problems if p.kind != "Deployment" or p.name is None]

    def problems_of(self, kind: str, name: str) -> list[SpecProblem]:
        return [p for p in self.problems if p.kind == kind and p.name == name]


def by_name(problems: Iterable[SpecProblem]) -> dict[str | None, tuple[SpecProblem, ...]]:
    """Problems (or warnings) grouped by the name of the document they concern, in order."""
    grouped: dict[str | None, list[SpecProblem]] = {}
    for problem in problems:
        grouped.setdefault(problem.name, []).append(problem)
    return {name: tuple(found) for name, found in grouped.items()}


@dataclass(frozen=True)
class ParsedFile:
    """What one spec file yields on its own: its valid specs and its documents' problems."""

    specs: tuple[Located, ...] = ()
    problems: tuple[SpecProblem, ...] = ()
    warnings: tuple[SpecProblem, ...] = ()
    notes: tuple[SpecProblem, ...] = ()
    unreadable: tuple[SpecProblem, ...] = ()   # why some document has no readable kind and name
    text: str = ""                             # an unreadable file's text: names it may hold
    drafts: tuple[Draft, ...] = ()             # its Deployments, validated by `_merge`
    unread_defaults: tuple[tuple[str | None, SpecProblem], ...] = ()
    unread_windows: tuple[SpecProblem, ...] = ()

    def may_hold(self, name: str) -> bool:
        """Whether an unreadable file may hold the deployment `name` (its text names it)."""
        return re.search(rf"(?<![-a-z0-9]){re.escape(name)}(?![-a-z0-9])", self.text) is not None


class ParsedFiles:
    """Parsed spec files by (path, git blob id): a file whose content git did not change is not
    parsed again. Keeps the files of the last two loads (a plan loads head and base). Safe to
    share between threads."""

    def __init__(self) -> None:
        self.parses = 0                      # files parsed (not found here) since creation
        self._files: Memo[tuple[str, str], ParsedFile] = Memo("parsed spec files",
                                                              2 * MAX_FILES)
        self._loads: list[set[tuple[str, str]]] = []
        self._lock = threading.Lock()

    def get(self, path: str, blob: str) -> ParsedFile | None:
        return self._files.get((path, blob))

    def put(self, path: str, blob: str, parsed: ParsedFile) -> None:
        with self._lock:
            self.parses += 1
        self._files.put((path, blob), parsed)

    def loaded(self, keys: set[tuple[str, str]]) -> None:
        """One load used `keys`: files used by neither it nor the load before are dropped."""
        with self._lock:
            self._loads = (self._loads + [keys])[-2:]
            kept = set().union(*self._loads)
        self._files.retain(kept)


def target_problems(located: Located, loaded: LoadResult) -> list[SpecProblem]:
    """A deployment's reference to its DeploymentTarget, checked: the target is in the spec
    repo and valid (an invalid one is named with its own problem)."""
    name = located.spec.spec.deployment_target_name
    if name in loaded.targets:
        return []
    line = located.line_of("spec", "deploymentTargetName")
    reasons = loaded.problems_of("DeploymentTarget", name)
    why = (f"DeploymentTarget {name!r} is invalid ({reasons[0]})" if reasons
           else f"no DeploymentTarget {name!r} in the spec repo")
    return [SpecProblem(located.file, line, f"deploymentTargetName {name!r}: {why}",
                        "Deployment", located.spec.name)]


def load(files: dict[str, str | bytes]) -> LoadResult:
    """Loads every spec document of `files` (repo-relative path -> content)."""
    return _merge({path: parse_file(path, data) for path, data in files.items()})


def load_blobs(blobs: dict[str, str], read: Callable[[Iterable[str]], dict[str, bytes]],
               parsed: ParsedFiles | None = None) -> LoadResult:
    """Loads every spec document of `blobs` (repo-relative path -> git blob id); `read` gives
    the content of blob ids, and is asked only for files `parsed` does not know yet. More than
    MAX_FILES files is a SpecLimitError: nothing is read (a wrong `--path`?), nothing changes."""
    if len(blobs) > MAX_FILES:
        raise SpecLimitError(f"the spec path holds {len(blobs):,} YAML files, over the limit of "
                             f"{MAX_FILES:,}; nothing was read (is --path right?)")
    parsed = parsed if parsed is not None else ParsedFiles()
    known = {path: parsed.get(path, blob) for path, blob in blobs.items()}
    missing = {path: blob for path, blob in blobs.items() if known[path] is None}
    contents = read(sorted(set(missing.values()))) if missing else {}
    for path, blob in missing.items():
        known[path] = parse_file(path, contents[blob])
        parsed.put(path, blob, known[path])
    parsed.loaded(set(blobs.items()))
    return _merge(known)


def parse_file(path: str, data: str | bytes) -> ParsedFile:
    """The specs and problems of one file, on its own (duplicates across files are found when
    files are merged). Never raises: whatever the content, it ends as problems."""
    text, refused = _decode(data)
    if refused is not None:
        problem = SpecProblem(path, 1, refused)
        window = (problem,) if "SyncWindow" in _HOLDING_KIND.findall(text) else ()
        return ParsedFile(problems=(problem,), unreadable=(problem,), text=text,
                          unread_windows=window)
    result = LoadResult()
    specs, drafts, unreadable = [], [], []
    for first_line, chunk in _documents(text):
        document = _Document(path, first_line, result)
        spec = document.load(chunk)
        if isinstance(spec, Draft):
            drafts.append(spec)
        elif spec is not None:
            specs.append(spec)
        unreadable += document.unreadable
    return ParsedFile(tuple(specs), tuple(result.problems), tuple(result.warnings),
                      tuple(result.notes), tuple(unreadable), text if unreadable else "",
                      tuple(drafts), tuple(result.unread_defaults), tuple(result.unread_windows))


def _merge(files: dict[str, ParsedFile]) -> LoadResult:
    result = LoadResult(files=files)
    seen: dict[tuple[str, str], list[Located | Draft]] = {}
    for path in sorted(files):
        parsed = files[path]
        result.problems += parsed.problems
        result.warnings += parsed.warnings
        result.notes += parsed.notes
        result.unread_defaults += parsed.unread_defaults
        result.unread_windows += parsed.unread_windows
        for located in parsed.specs:
            seen.setdefault((located.spec.kind, located.spec.name), []).append(located)
        for draft in parsed.drafts:
            seen.setdefault(("Deployment", draft.name), []).append(draft)
    drafts = []
    for (kind, name), copies in sorted(seen.items()):
        if len(copies) == 1:
            if kind == "Deployment":
                drafts.append(copies[0])
            else:
                _bucket(result, kind)[name] = copies[0]
            continue
        places = ", ".join(f"{c.file}:{c.line}" for c in copies)
        for copy in copies:
            result.problems.append(SpecProblem(
                copy.file, copy.line, f"duplicate {kind} name {name!r} (defined at {places})",
                kind, name))
            if kind == "SyncWindow":
                result.unread_windows.append(result.problems[-1])
    scopes = _scopes(result)
    clusters = tuple(sorted((name, located.spec.spec.deployment_target_name)
                            for name, located in result.session_clusters.items()))
    for draft in drafts:
        scope = scopes.get(None) or scopes.get(draft.namespace)
        outcome = draft.outcome((scope, clusters), lambda: _resolved(draft, scope, result))
        result.problems += outcome.problems
        result.warnings += draft.warnings + outcome.warnings
        for located in outcome.specs:
            result.deployments[draft.name] = located
    served = {draft.namespace for draft in drafts}
    for namespace, located in sorted(result.defaults.items()):
        if namespace not in served:
            result.warnings.append(SpecProblem(
                located.file, located.line, f"DeploymentDefaults {located.spec.name!r} serve "
                f"namespace {namespace!r}, which no Deployment is in: they change nothing",
                "DeploymentDefaults", located.spec.name))
    return result


def _bucket(result: LoadResult, kind: str) -> dict[str, Located]:
    """Where a kind's documents are kept by name (DeploymentDefaults: by namespace, `_scopes`)."""
    return {"DeploymentTarget": result.targets, "SessionCluster": result.session_clusters,
            "SyncWindow": result.windows}.get(kind, {})


def _scopes(result: LoadResult) -> dict[str | None, tuple]:
    """What each namespace's deployments get from DeploymentDefaults: ("defaults", their name
    as an origin, their spec as JSON), or ("held", why) when the defaults of
    the namespace cannot be read or are written twice. Fills `result.defaults`. The key None:
    defaults that cannot be read and whose namespace is unknown (they hold every deployment)."""
    scopes: dict[str | None, tuple] = {}
    for namespace, problem in result.unread_defaults:
        scopes.setdefault(namespace, ("held", f"the DeploymentDefaults at {problem.file}:"
                                              f"{problem.line} are refused ({problem.message})"))
    by_namespace: dict[str, list[Located]] = {}
    for path in sorted(result.files):
        for located in result.files[path].specs:
            if isinstance(located.spec, DeploymentDefaults):
                by_namespace.setdefault(located.spec.namespace, []).append(located)
    for namespace, copies in by_namespace.items():
        if len(copies) > 1:
            places = ", ".join(f"{c.file}:{c.line}" for c in copies)
            for copy in copies:
                result.problems.append(SpecProblem(
                    copy.file, copy.line, f"DeploymentDefaults for namespace {namespace!r} are "
                    f"written twice ({places}): write them in one document",
                    "DeploymentDefaults", copy.spec.name))
            scopes.setdefault(namespace, ("held", f"the DeploymentDefaults of namespace "
                                                  f"{namespace!r} are written twice ({places})"))
        elif reasons := result.problems_of("DeploymentDefaults", copies[0].spec.name):
            scopes.setdefault(namespace, ("held", f"the DeploymentDefaults at {reasons[0].file}:"
                                                  f"{reasons[0].line} are refused "
                                                  f"({reasons[0].message})"))
        elif namespace not in scopes:
            [located] = copies
            result.defaults[namespace] = located
            scopes[namespace] = ("defaults", f"DeploymentDefaults {located.spec.name}",
                                 json.dumps(located.spec.spec, sort_keys=True, default=str))
    return scopes


def _resolved(draft: Draft, scope: tuple | None, loaded: LoadResult) -> ParsedFile:
    """The draft validated with its namespace's defaults and its session cluster: a ParsedFile
    of its one Located, or of its problems."""
    def problem(line: int, message: str) -> ParsedFile:
        return ParsedFile(problems=(SpecProblem(draft.file, line, message, "Deployment",
                                                draft.name),))

    effective = Effective(draft.data)
    if scope is not None and scope[0] == "held":
        return problem(draft.line, f"{scope[1]}: this deployment is held as it runs until they "
                                   "can")
    if scope is not None:
        _, origin, spec = scope
        effective = with_defaults(draft.data, json.loads(spec), origin)
    spec = effective.data.get("spec")
    session = spec.get("sessionClusterName") if isinstance(spec, dict) else None
    if isinstance(session, str):
        line = _line_of(draft.lines, ("spec", "sessionClusterName"))
        if "deploymentTargetName" in spec:
            return problem(line, "spec.sessionClusterName: the spec names its cluster by "
                                 "deploymentTargetName too: write one of them")
        cluster = loaded.session_clusters.get(session)
        if cluster is None:
            reasons = loaded.problems_of("SessionCluster", session)
            why = (f"SessionCluster {session!r} is invalid ({reasons[0]})" if reasons
                   else f"no SessionCluster {session!r} in the spec repo")
            return problem(line, f"spec.sessionClusterName {session!r}: {why}")
        effective = on_cluster(effective, session, cluster.spec.spec.deployment_target_name)
    sink = LoadResult()
    deployment = _checked(Deployment, effective.data, draft.lines, draft.file, draft.name, sink,
                          effective)
    located = () if deployment is None else (Located(
        deployment, draft.file, draft.line, draft.lines, effective.origins),)
    return ParsedFile(located, tuple(sink.problems), tuple(sink.warnings))


def _checked(model: type, data: dict[str, Any], lines: dict, file: str, name: str | None,
             sink: LoadResult, effective: Effective | None = None):
    """`data` validated as `model`: the spec, or None with its problems in `sink` (a value that
    came from defaults says so); its compatibility warnings go to `sink` too."""
    kind = data.get("kind")
    try:
        spec = model.model_validate(data)
    except ValidationError as error:
        for problem in error.errors():
            loc = tuple(problem["loc"])
            where = ".".join(str(p) for p in loc) or "document"
            origin = effective.origin(where) if effective is not None else None
            sink.problems.append(SpecProblem(
                file, _line_of(lines, loc), f"{kind} {where}: {_pydantic_reason(problem)}"
                + (f" (the value of {origin})" if origin else ""), kind, name))
        return None
    for warning in getattr(spec, "compat_warnings", lambda: [])():
        sink.warnings.append(SpecProblem(file, lines[()], warning, kind, name))
    return spec


def _defaults_problems(defaults: DeploymentDefaults) -> list[tuple[tuple, str]]:
    """What DeploymentDefaults write that no Deployment could take (a typo, a wrong type),
    found even when they serve no deployment: (path, reason) of each of their own values."""
    skeleton = {"apiVersion": "v1", "kind": "Deployment", "metadata": {"name": "defaults"},
                "spec": {"deploymentTargetName": "defaults",
                         "template": {"spec": {"artifact": {"kind": "JAR",
                                                            "jarUri": "defaults.jar"}}}}}
    effective = with_defaults(skeleton, defaults.spec, "defaults")
    try:
        Deployment.model_validate(effective.data)
    except ValidationError as error:
        return [(tuple(p["loc"]), _pydantic_reason(p)) for p in error.errors()
                if effective.origin(".".join(str(x) for x in p["loc"])) is not None]
    return []


def _decode(data: str | bytes) -> tuple[str, str | None]:
    """The file's text and, when it is refused (too big, not UTF-8 text), why: a refused file's
    text is kept, as far as it can be read, to search for names (not when too big)."""
    size = len(data.encode() if isinstance(data, str) else data)
    if size > MAX_FILE_BYTES:
        return "", (f"file is {size:,} bytes, over the limit of {MAX_FILE_BYTES:,} bytes for a "
                    "spec file; it is not read")
    if isinstance(data, bytes):
        if data.startswith((b"\xff\xfe", b"\xfe\xff")):
            return "", "file is UTF-16; spec files must be UTF-8"
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            return data.decode("utf-8", errors="replace"), (
                f"file is not UTF-8 (byte 0x{data[error.start]:02x} at offset {error.start}); "
                "spec files must be UTF-8")
    if "\0" in data:
        line = data[:data.index("\0")].count("\n") + 1
        return data, f"file holds a NUL byte (line {line}): not a text file"
    return data, None


class _Document:
    """One YAML document of a file, read step by step; every step that fails is a problem of
    the document, attributed to its deployment when its kind and name could be read."""

    def __init__(self, path: str, first_line: int, result: LoadResult):
        self.path, self.first_line, self.result = path, first_line, result
        self.kind: str | None = None
        self.name: str | None = None
        self.namespace: str | None = None
        self.unreadable: list[SpecProblem] = []

    def load(self, chunk: str) -> Located | Draft | None:
        try:
            node = _compose(chunk)
        except yaml.YAMLError as error:
            if holding := _HOLDING_KIND.search(chunk):
                self.kind = holding.group(1)
            return self._problem(_error_line(error, self.first_line),
                                 f"YAML syntax error: {_yaml_reason(error)}")
        except RecursionError:
            return self._problem(self.first_line, "YAML nested too deeply to read")
        if node is None:
            return None
        self.kind, self.name, namespace = _identity(node)
        self.namespace = namespace or DEFAULT_NAMESPACE
        if self.kind == SESSION_JOB_KIND:
            self.kind = "Deployment"   # what it is read as: its problems hold the deployment
        lines: dict[tuple, int] = {}
        trouble = _walk(node, self.first_line, lines)
        if trouble is not None:
            return self._problem(*trouble)
        try:
            data = _SpecLoader("").construct_document(node)
        except (yaml.YAMLError, ValueError, TypeError, RecursionError) as error:
            line = _error_line(error, self.first_line) if isinstance(error, yaml.YAMLError) \
                else lines[()]
            return self._problem(line, f"YAML value cannot be read: {_yaml_reason(error)}")
        return self._validate(data, lines)

    def _validate(self, data: Any, lines: dict) -> Located | Draft | None:
        doc_line = lines[()]
        if not isinstance(data, dict):
            return self._note(doc_line, "not a mapping; ignored")
        kind = data.get("kind")
        if is_operator_document(data) and kind in (SESSION_JOB_KIND, OPERATOR_CLUSTER_KIND):
            if kind == OPERATOR_CLUSTER_KIND:
                return self._note(doc_line, f"kind {kind!r} is a cluster of the Flink Kubernetes "
                                  "Operator, which the agent does not run: its FlinkSessionJobs "
                                  "name it by spec.deploymentName, so write a DeploymentTarget "
                                  "of that name (spec.flink.url); ignored", readable=True)
            translated = session_job(data)
            return self._draft(translated.data, moved_lines(lines, translated.moves),
                               tuple(SpecProblem(self.path, _line_of(lines, path), message,
                                                 "Deployment", self.name)
                                     for path, message in translated.warnings), kind)
        if not isinstance(kind, str) or kind not in SPEC_KINDS:
            meant = _meant_kind(kind)
            if meant is not None:
                self.kind = meant
                return self._problem(lines.get(("kind",), doc_line),
                                     f"kind {kind!r} is not a spec kind: did you mean {meant!r}?")
            if not isinstance(kind, str):
                return self._note(doc_line, "no kind: not a spec; ignored")
            return self._note(doc_line, f"kind {kind!r} is not a spec kind; ignored",
                              readable=True)
        if kind == "Deployment":
            return self._draft(data, lines)
        sink = LoadResult()
        spec = _checked(SPEC_KINDS[kind], data, lines, self.path, self.name, sink)
        if isinstance(spec, DeploymentDefaults):
            for loc, reason in _defaults_problems(spec):
                where = ".".join(str(p) for p in loc)
                sink.problems.append(SpecProblem(self.path, _line_of(lines, loc),
                                                 f"{kind} {where}: {reason}", kind, self.name))
            spec = None if sink.problems else spec
        for problem in sink.problems:
            self._problem(problem.line, problem.message)
        self.result.warnings += sink.warnings
        return Located(spec, self.path, doc_line, lines) if spec is not None else None

    def _draft(self, data: dict, lines: dict, warnings: tuple = (),
               dialect: str = "Deployment") -> Located | Draft | None:
        """A Deployment, validated once every file is read (one whose name cannot be read is
        refused now: that is all it can be)."""
        if self.name is None:
            sink = LoadResult()
            _checked(Deployment, data, lines, self.path, None, sink)
            for problem in sink.problems or [SpecProblem(self.path, lines[()], "Deployment "
                                                         "metadata.name: cannot be read")]:
                self._problem(problem.line, problem.message)
            return None
        return Draft(self.path, lines[()], self.name, data, lines, warnings, dialect)

    def _problem(self, line: int, message: str) -> None:
        named = self.kind in SPEC_KINDS and self.name is not None
        problem = SpecProblem(self.path, line, message, self.kind if named else None,
                              self.name if named else None)
        self.result.problems.append(problem)
        if not named or self.kind != "Deployment":   # a target's problem: what did it hold?
            self.unreadable.append(problem)
        if self.kind == "DeploymentDefaults":   # (namespace None: not even it could be read)
            self.result.unread_defaults.append((self.namespace, problem))
        if self.kind == "SyncWindow":
            self.result.unread_windows.append(problem)

    def _note(self, line: int, message: str, readable: bool = False) -> None:
        note = SpecProblem(self.path, line, message)
        self.result.notes.append(note)
        if not readable:
            self.unreadable.append(note)


def _identity(node: yaml.Node) -> tuple[str | None, str | None, str | None]:
    """A document's `kind`, `metadata.name` and `metadata.namespace`, read from its nodes before
    anything is built: a name is readable only as a plain DNS-1123 label, so a bad value later
    in the document still names the deployment it concerns."""
    def scalar(mapping: yaml.Node, key: str) -> yaml.Node | None:
        if not isinstance(mapping, yaml.MappingNode):
            return None
        found = [v for k, v in mapping.value if isinstance(k, yaml.ScalarNode) and k.value == key]
        return found[0] if len(found) == 1 else None    # a duplicated key names nothing

    def text(value: yaml.Node | None) -> str | None:
        return value.value if isinstance(value, yaml.ScalarNode) and value.tag == _STR else None

    metadata = scalar(node, "metadata")
    name = text(scalar(metadata, "name"))
    return (text(scalar(node, "kind")),
            name if name is not None and re.match(DNS_1123_LABEL, name) else None,
            text(scalar(metadata, "namespace")))


def _walk(node: yaml.Node, first_line: int, lines: dict[tuple, int]) -> tuple[int, str] | None:
    """Fills `lines` (path of keys/indexes -> 1-based line in the file) and checks what YAML
    allows but a spec must not have: duplicate keys, tags other than the core schema's, values
    that do not fit their tag, nesting beyond MAX_DEPTH and more than MAX_NODES nodes (aliases
    count each time they are used). The first one found: (line, message)."""
    visited = 0
    resolver = yaml.resolver.Resolver()

    def walk(n: yaml.Node, path: tuple, line: int) -> tuple[int, str] | None:
        nonlocal visited
        visited += 1
        if visited > MAX_NODES:
            return line, (f"document has more than {MAX_NODES:,} values (counting every use "
                          "of an alias); it is not read")
        if len(path) > MAX_DEPTH:
            return line, f"document is nested deeper than {MAX_DEPTH} levels"
        lines.setdefault(path, line)
        if n.tag not in _CORE_TAGS:
            return line, f"YAML tag {n.tag!r} is not allowed in a spec"
        if isinstance(n, yaml.ScalarNode) and n.tag in _TYPED_TAGS:
            implicit = resolver.resolve(yaml.ScalarNode, n.value, (True, False))
            if implicit != n.tag and not (n.tag == _FLOAT and implicit == _INT):
                return line, f"{n.value!r} is not a valid {n.tag.rsplit(':', 1)[-1]}"
        if isinstance(n, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key, value in n.value:
                key_line = first_line + key.start_mark.line
                if not isinstance(key, yaml.ScalarNode):
                    return key_line, "a mapping key must be a plain value, not a list or mapping"
                if key.tag == _MERGE:
                    trouble = walk(value, path, key_line)
                elif key.value in seen:
                    return key_line, (f"duplicate key {key.value!r} (first at line "
                                      f"{seen[key.value]}); YAML requires unique keys")
                else:
                    seen[key.value] = key_line
                    trouble = walk(value, path + (key.value,), key_line)
                if trouble is not None:
                    return trouble
        elif isinstance(n, yaml.SequenceNode):
            for index, item in enumerate(n.value):
                trouble = walk(item, path + (index,), first_line + item.start_mark.line)
                if trouble is not None:
                    return trouble
        return None

    # a document's own line is where its content starts, not the `---` above it
    return walk(node, (), first_line + node.start_mark.line)


def _meant_kind(kind: Any) -> str | None:
    """The spec kind a misspelt `kind` was meant to be (a typo, or other letter case)."""
    if not isinstance(kind, str):
        return None
    by_lower = {k.lower(): k for k in SPEC_KINDS}
    close = difflib.get_close_matches(kind.lower(), list(by_lower), n=1, cutoff=0.8)
    return by_lower[close[0]] if close else None


def _compose(chunk: str) -> yaml.Node | None:
    """The document's node tree, by libyaml when PyYAML has it; a syntax error is raised by
    PyYAML's own parser, whose messages say more ("found character '\\t'")."""
    if _FAST_LOADER is yaml.SafeLoader:
        return yaml.compose(chunk, Loader=yaml.SafeLoader)
    try:
        return yaml.compose(chunk, Loader=_FAST_LOADER)
    except yaml.YAMLError:
        return yaml.compose(chunk, Loader=yaml.SafeLoader)


def _documents(text: str) -> list[tuple[int, str]]:
    """Splits a multi-document YAML text on `---` lines: (1-based first line, text). Directives
    (`%YAML 1.2`) before a `---` belong to the document it starts."""
    documents, start, current = [], 1, []
    for number, line in enumerate(text.splitlines(keepends=True), start=1):
        if _DOCUMENT_SEPARATOR.match(line.rstrip("\r\n")) and not _only_directives(current):
            documents.append((start, "".join(current)))
            start, current = number, [line]
        else:
            current.append(line)
    documents.append((start, "".join(current)))
    return documents


def _only_directives(lines: list[str]) -> bool:
    content = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    return bool(content) and all(line.startswith("%") for line in content)


def _line_of(lines: dict[tuple, int], loc: tuple) -> int:
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return lines[()]


def _pydantic_reason(problem: dict) -> str:
    if problem["type"] == "extra_forbidden":
        return "unknown field (a typo?)"
    message = problem["msg"]
    return message.removeprefix("Value error, ")


def _error_line(error: yaml.YAMLError, first_line: int) -> int:
    # where the broken construct began, else where the parser gave up
    mark = getattr(error, "context_mark", None) or getattr(error, "problem_mark", None)
    return first_line + mark.line if mark is not None else first_line


def _yaml_reason(error: Exception) -> str:
    problem = getattr(error, "problem", None)
    context = getattr(error, "context", None)
    return " ".join(p for p in (context, problem) if p) or str(error).splitlines()[0]
