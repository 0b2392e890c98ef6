"""Spec files -> specs and per-document problems, each naming file and line (pure).

Every YAML document of every file is loaded on its own: a syntax error, a schema error or a
duplicate name is reported for that document and never hides the others. Documents are split
on `---` before parsing, so that even a syntax error only costs its own document.

`load_blobs` takes files named by their git blob id and parses only those it has not parsed
before (`ParsedFiles`): git says which files changed, so a cycle re-parses only those.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import yaml
from pydantic import ValidationError

from agent.model.spec import SPEC_KINDS, Deployment, DeploymentTarget

SPEC_SUFFIXES = (".yaml", ".yml")
_DOCUMENT_SEPARATOR = re.compile(r"^---(\s.*)?$")
_FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)   # libyaml when PyYAML has it


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

    def problems_of(self, kind: str, name: str) -> list[SpecProblem]:
        return [p for p in self.problems if p.kind == kind and p.name == name]


@dataclass(frozen=True)
class ParsedFile:
    """What one spec file yields on its own: its valid specs and its documents' problems."""

    specs: tuple[Located, ...] = ()
    problems: tuple[SpecProblem, ...] = ()
    warnings: tuple[SpecProblem, ...] = ()
    notes: tuple[SpecProblem, ...] = ()


class ParsedFiles:
    """Parsed spec files by (path, git blob id): a file whose content git did not change is not
    parsed again. Keeps the files of the last two loads (a plan loads head and base). Safe to
    share between threads."""

    def __init__(self) -> None:
        self.parses = 0                      # files parsed (not found here) since creation
        self._files: dict[tuple[str, str], ParsedFile] = {}
        self._loads: list[set[tuple[str, str]]] = []
        self._lock = threading.Lock()

    def get(self, path: str, blob: str) -> ParsedFile | None:
        with self._lock:
            return self._files.get((path, blob))

    def put(self, path: str, blob: str, parsed: ParsedFile) -> None:
        with self._lock:
            self.parses += 1
            self._files[(path, blob)] = parsed

    def loaded(self, keys: set[tuple[str, str]]) -> None:
        """One load used `keys`: files used by neither it nor the load before are dropped."""
        with self._lock:
            self._loads = (self._loads + [keys])[-2:]
            kept = set().union(*self._loads)
            self._files = {key: value for key, value in self._files.items() if key in kept}


PARSED = ParsedFiles()   # the process's parsed files, shared by every cycle


def load(files: dict[str, str]) -> LoadResult:
    """Loads every spec document of `files` (repo-relative path -> text)."""
    return _merge({path: parse_file(path, text) for path, text in files.items()})


def load_blobs(blobs: dict[str, str], read: Callable[[Iterable[str]], dict[str, str]],
               parsed: ParsedFiles = PARSED) -> LoadResult:
    """Loads every spec document of `blobs` (repo-relative path -> git blob id); `read` gives
    the text of blob ids, and is asked only for files `parsed` does not know yet."""
    known = {path: parsed.get(path, blob) for path, blob in blobs.items()}
    missing = {path: blob for path, blob in blobs.items() if known[path] is None}
    texts = read(sorted(set(missing.values()))) if missing else {}
    for path, blob in missing.items():
        known[path] = parse_file(path, texts[blob])
        parsed.put(path, blob, known[path])
    parsed.loaded(set(blobs.items()))
    return _merge(known)


def parse_file(path: str, text: str) -> ParsedFile:
    """The specs and problems of one file, on its own (duplicates across files are found when
    files are merged)."""
    result = LoadResult()
    specs = _load_file(path, text, result)
    return ParsedFile(tuple(specs), tuple(result.problems), tuple(result.warnings),
                      tuple(result.notes))


def _merge(files: dict[str, ParsedFile]) -> LoadResult:
    result = LoadResult()
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


def _load_file(path: str, text: str, result: LoadResult) -> list[Located]:
    loaded = []
    for first_line, chunk in _documents(text):
        try:
            node = _compose(chunk)
        except yaml.YAMLError as error:
            result.problems.append(SpecProblem(path, _error_line(error, first_line),
                                               f"YAML syntax error: {_yaml_reason(error)}"))
            continue
        if node is None:
            continue
        data = yaml.SafeLoader("").construct_document(node)
        lines = _line_map(node, first_line)
        spec = _validate(path, data, lines, result)
        if spec is not None:
            loaded.append(Located(spec, path, lines[()], lines))
    return loaded


def _validate(path: str, data: Any, lines: dict, result: LoadResult):
    doc_line = lines[()]
    if not isinstance(data, dict):
        result.notes.append(SpecProblem(path, doc_line, "not a mapping; ignored"))
        return None
    kind = data.get("kind")
    model = SPEC_KINDS.get(kind) if isinstance(kind, str) else None
    if model is None:
        result.notes.append(SpecProblem(path, doc_line,
                                        f"kind {kind!r} is not a spec kind; ignored"))
        return None
    metadata = data.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    name = name if isinstance(name, str) else None
    try:
        spec = model.model_validate(data)
    except ValidationError as error:
        for problem in error.errors():
            loc = tuple(problem["loc"])
            where = ".".join(str(p) for p in loc) or "document"
            result.problems.append(SpecProblem(
                path, _line_of(lines, loc), f"{kind} {where}: {_pydantic_reason(problem)}",
                kind, name))
        return None
    for warning in getattr(spec, "compat_warnings", lambda: [])():
        result.warnings.append(SpecProblem(path, doc_line, warning, kind, name))
    return spec


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
    """Splits a multi-document YAML text on `---` lines: (1-based first line, text)."""
    documents, start, current = [], 1, []
    for number, line in enumerate(text.splitlines(keepends=True), start=1):
        if _DOCUMENT_SEPARATOR.match(line.rstrip("\r\n")):
            documents.append((start, "".join(current)))
            start, current = number, [line]
        else:
            current.append(line)
    documents.append((start, "".join(current)))
    return documents


def _line_map(node: yaml.Node, first_line: int) -> dict[tuple, int]:
    """Path of keys/indexes -> 1-based line in the file, for every node of a document."""
    lines: dict[tuple, int] = {}

    def walk(n: yaml.Node, path: tuple, line: int) -> None:
        lines[path] = line
        if isinstance(n, yaml.MappingNode):
            for key, value in n.value:
                walk(value, path + (key.value,), first_line + key.start_mark.line)
        elif isinstance(n, yaml.SequenceNode):
            for index, item in enumerate(n.value):
                walk(item, path + (index,), first_line + item.start_mark.line)

    walk(node, (), first_line + node.start_mark.line)
    # a document's own line is where its content starts, not the `---` above it
    return lines


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


def _yaml_reason(error: yaml.YAMLError) -> str:
    problem = getattr(error, "problem", None)
    context = getattr(error, "context", None)
    return " ".join(p for p in (context, problem) if p) or str(error)
