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
"""

from __future__ import annotations

import difflib
import re
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import yaml
from pydantic import ValidationError

from agent.errors import SpecLimitError
from agent.memo import Memo
from agent.model.spec import DNS_1123_LABEL, SPEC_KINDS, Deployment, DeploymentTarget

MAX_FILE_BYTES = 1024 * 1024     # a spec file above this is not read (its deployments are held)
MAX_FILES = 50_000               # spec files under --path; more and no file is read
MAX_DEPTH = 64                   # nesting levels of a document
MAX_NODES = 100_000              # values of a document, every use of an alias counted
_DOCUMENT_SEPARATOR = re.compile(r"^---(\s.*)?$")
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

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


@dataclass(frozen=True)
class Located:
    """A valid spec and where it was written."""

    spec: Deployment | DeploymentTarget
    file: str
    line: int
    lines: dict[tuple, int] = field(default_factory=dict, compare=False, repr=False)

    def line_of(self, *path: str) -> int:
        """The line of a field of this document (the document's own line if not written)."""
        return _line_of(self.lines, path) if self.lines else self.line


@dataclass
class LoadResult:
    deployments: dict[str, Located] = field(default_factory=dict)
    targets: dict[str, Located] = field(default_factory=dict)
    problems: list[SpecProblem] = field(default_factory=list)
    warnings: list[SpecProblem] = field(default_factory=list)
    notes: list[SpecProblem] = field(default_factory=list)
    files: dict[str, ParsedFile] = field(default_factory=dict)   # every spec file, by path

    def unreadable(self) -> dict[str, ParsedFile]:
        """The files that cannot say which deployments they hold."""
        return {path: parsed for path, parsed in self.files.items() if parsed.unreadable}

    def unattributed(self) -> list[SpecProblem]:
        """Problems that concern no readable Deployment: files and documents whose names cannot
        be read, and invalid DeploymentTargets."""
        return [p for p in self.problems if p.kind != "Deployment" or p.name is None]

    def problems_of(self, kind: str, name: str) -> list[SpecProblem]:
        return [p for p in self.problems if p.kind == kind and p.name == name]


@dataclass(frozen=True)
class ParsedFile:
    """What one spec file yields on its own: its valid specs and its documents' problems."""

    specs: tuple[Located, ...] = ()
    problems: tuple[SpecProblem, ...] = ()
    warnings: tuple[SpecProblem, ...] = ()
    notes: tuple[SpecProblem, ...] = ()
    unreadable: tuple[SpecProblem, ...] = ()   # why some document has no readable kind and name
    text: str = ""                             # an unreadable file's text: names it may hold

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
        return ParsedFile(problems=(problem,), unreadable=(problem,), text=text)
    result = LoadResult()
    specs, unreadable = [], []
    for first_line, chunk in _documents(text):
        document = _Document(path, first_line, result)
        spec = document.load(chunk)
        if spec is not None:
            specs.append(spec)
        unreadable += document.unreadable
    return ParsedFile(tuple(specs), tuple(result.problems), tuple(result.warnings),
                      tuple(result.notes), tuple(unreadable), text if unreadable else "")


def _merge(files: dict[str, ParsedFile]) -> LoadResult:
    result = LoadResult(files=files)
    seen: dict[tuple[str, str], list[Located]] = {}
    for path in sorted(files):
        parsed = files[path]
        result.problems += parsed.problems
        result.warnings += parsed.warnings
        result.notes += parsed.notes
        for located in parsed.specs:
            kind = located.spec.kind
            seen.setdefault((kind, located.spec.name), []).append(located)
    for (kind, name), copies in sorted(seen.items()):
        if len(copies) == 1:
            bucket = result.deployments if kind == "Deployment" else result.targets
            bucket[name] = copies[0]
            continue
        places = ", ".join(f"{c.file}:{c.line}" for c in copies)
        for copy in copies:
            result.problems.append(SpecProblem(
                copy.file, copy.line, f"duplicate {kind} name {name!r} (defined at {places})",
                kind, name))
    return result



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
        self.unreadable: list[SpecProblem] = []

    def load(self, chunk: str) -> Located | None:
        try:
            node = _compose(chunk)
        except yaml.YAMLError as error:
            return self._problem(_error_line(error, self.first_line),
                                 f"YAML syntax error: {_yaml_reason(error)}")
        except RecursionError:
            return self._problem(self.first_line, "YAML nested too deeply to read")
        if node is None:
            return None
        self.kind, self.name = _identity(node)
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
        spec = self._validate(data, lines)
        return Located(spec, self.path, lines[()], lines) if spec is not None else None

    def _validate(self, data: Any, lines: dict):
        doc_line = lines[()]
        if not isinstance(data, dict):
            return self._note(doc_line, "not a mapping; ignored")
        kind = data.get("kind")
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
        try:
            spec = SPEC_KINDS[kind].model_validate(data)
        except ValidationError as error:
            for problem in error.errors():
                loc = tuple(problem["loc"])
                where = ".".join(str(p) for p in loc) or "document"
                self._problem(_line_of(lines, loc),
                              f"{kind} {where}: {_pydantic_reason(problem)}")
            return None
        for warning in getattr(spec, "compat_warnings", lambda: [])():
            self.result.warnings.append(SpecProblem(self.path, doc_line, warning, kind,
                                                    self.name))
        return spec

    def _problem(self, line: int, message: str) -> None:
        named = self.kind in SPEC_KINDS and self.name is not None
        problem = SpecProblem(self.path, line, message, self.kind if named else None,
                              self.name if named else None)
        self.result.problems.append(problem)
        if not named or self.kind != "Deployment":   # a target's problem: what did it hold?
            self.unreadable.append(problem)

    def _note(self, line: int, message: str, readable: bool = False) -> None:
        note = SpecProblem(self.path, line, message)
        self.result.notes.append(note)
        if not readable:
            self.unreadable.append(note)


def _identity(node: yaml.Node) -> tuple[str | None, str | None]:
    """A document's `kind` and `metadata.name`, read from its nodes before anything is built:
    a name is readable only as a plain DNS-1123 label, so a bad value later in the document
    still names the deployment it concerns."""
    def scalar(mapping: yaml.Node, key: str) -> yaml.Node | None:
        if not isinstance(mapping, yaml.MappingNode):
            return None
        found = [v for k, v in mapping.value if isinstance(k, yaml.ScalarNode) and k.value == key]
        return found[0] if len(found) == 1 else None    # a duplicated key names nothing

    kind = scalar(node, "kind")
    name = scalar(scalar(node, "metadata"), "name")
    kind_text = kind.value if isinstance(kind, yaml.ScalarNode) and kind.tag == _STR else None
    name_text = name.value if isinstance(name, yaml.ScalarNode) and name.tag == _STR \
        and re.match(DNS_1123_LABEL, name.value) else None
    return kind_text, name_text


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
