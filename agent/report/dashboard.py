"""Status documents -> the status branch's files: the README.md dashboard, status.json,
timeline.svg and each deployment's page and YAML (pure).

The dashboard has a summary line, one row per deployment (problems first), the problems, the
timeline, then recent events. Nothing here reads a clock, so equal documents render to equal
bytes and a quiet cycle commits nothing.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

import yaml

from agent.load import SpecProblem
from agent.memo import Memo
from agent.model.status import DeploymentStatus
from agent.report.cells import cell, job_cell, row_cells, savepoint_cell
from agent.report.history import render_history
from agent.report.savepoints import savepoint_entries, savepoint_entry
from agent.report.timeline import render_timeline

RECENT_EVENTS = 20
def status_files(documents: list[DeploymentStatus], spec_commit: str,
                 unattributed: list[SpecProblem] = (),
                 rendered: Memo | None = None,
                 ui_urls: Mapping[str, str] | None = None) -> dict[str, bytes]:
    """Every file of the status branch: path -> content. `unattributed` are spec problems of
    documents whose deployment name could not be read; `rendered` remembers each document's
    files across cycles when the caller keeps it (see `_rendered`); `ui_urls` (target name ->
    its web UI, `links.ui_bases`) makes each job id a link to its page there."""
    memo = rendered if rendered is not None else Memo("rendered documents", 1_000_000)
    ui_urls = ui_urls or {}
    as_of = report_time(documents)
    files = {}
    for document in documents:
        files_of = _rendered(document, memo, ui_urls.get(document.status.target or ""))
        files[f"deployments/{document.name}.md"] = files_of.page
        files[document_path(document.name)] = files_of.yaml
    memo.retain(id(document) for document in documents)   # this report's documents only
    timeline = render_timeline(ordered(documents), as_of)
    if timeline is not None:
        files["timeline.svg"] = timeline.encode()
    files["status.json"] = status_json(documents, spec_commit, unattributed, memo)
    files["README.md"] = render_dashboard(documents, spec_commit, unattributed,
                                          timeline is not None, ui_urls, memo).encode()
    return files


def document_path(name: str) -> str:
    """Where deployment `name`'s status document lies on the status branch."""
    return f"deployments/{name}.yaml"


def report_time(documents: list[DeploymentStatus]) -> str | None:
    """The time the report stands at: its newest event (not the clock, so that a quiet cycle
    renders the same bytes and commits nothing). Ages on the dashboard count to it."""
    return max((e.at for d in documents for e in d.status.history.events), default=None)


def status_json(documents: list[DeploymentStatus], spec_commit: str,
                unattributed: list[SpecProblem], rendered: Memo) -> bytes:
    """status.json, the machine-readable index of all deployments: its summary fields, then one
    line per deployment (so a change to one deployment is a one-line diff): its status without
    the applied spec and the history, but with its savepoints, newest first, each with its `id`
    and whether it is `kept`."""
    summary = {
        "asOf": report_time(documents),
        "counts": dict(Counter(d.status.state.value for d in documents)),
        "specCommit": spec_commit,
        "specProblems": [{"file": p.file, "line": p.line, "message": p.message}
                         for p in unattributed],
    }
    lines = [f"  {json.dumps(key)}: {json.dumps(value, sort_keys=True)}," for key, value in
             sorted(summary.items())]
    entries = [f"    {json.dumps(d.name)}: {_index_line(d, rendered)}"
               for d in sorted(documents, key=lambda d: d.name)]
    text = "{\n" + "\n".join(lines) + '\n  "deployments": {\n' + ",\n".join(entries) + (
        "\n  }\n}\n" if entries else "  }\n}\n")
    return text.encode()


def _index_entry(document: DeploymentStatus) -> dict:
    status = document.status
    entry = document.model_dump(mode="json", by_alias=True, exclude_none=True)["status"]
    entry.pop("history", None)
    entry.pop("appliedSpec", None)
    entry["savepoints"] = savepoint_entries(document)
    if status.last_savepoint is not None:
        entry["lastSavepoint"] = savepoint_entry(status.last_savepoint)
    entry["labels"] = document.metadata.labels
    entry["problem"] = not document.in_desired_state
    if status.last_action is None:
        entry.pop("lastAction", None)
    return entry


def ordered(documents: list[DeploymentStatus]) -> list[DeploymentStatus]:
    """Problems first, then by name."""
    return sorted(documents, key=lambda d: (d.in_desired_state, d.name))


def render_dashboard(documents: list[DeploymentStatus], spec_commit: str,
                     unattributed: list[SpecProblem] = (), timeline: bool = False,
                     ui_urls: Mapping[str, str] | None = None,
                     rendered: Memo | None = None) -> str:
    """README.md; `ui_urls` (target name -> its web UI) links each job to its page there;
    `rendered`: each document's rendering (see `status_files`)."""
    ui_urls = ui_urls or {}
    memo = rendered if rendered is not None else Memo("rendered documents", 1_000_000)
    counts = Counter(d.status.state.value for d in documents)
    summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "none"
    problems = [d for d in documents if not d.in_desired_state]
    as_of = report_time(documents)
    lines = [
        "# Flink deployments",
        "",
        f"**{len(documents)} deployment{'' if len(documents) == 1 else 's'}**: {summary}. "
        f"{len(problems)} need attention. Spec commit `{spec_commit[:10]}`"
        + (f"; as of {as_of} (the last change; ages count to it)." if as_of else "."),
        "",
        "| | Deployment | State | Sync | Flink job | Parallelism | Restarts | Last savepoint "
        "| Last action | Spec commit |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [_row(d, as_of, _rendered(d, memo, ui_urls.get(d.status.target or "")))
              for d in ordered(documents)]
    if problems or unattributed:
        lines += ["", "## Problems", ""]
        lines += [f"- `{p.where}`: {cell(p.message)}" for p in unattributed]
        for document in ordered(problems):
            for problem in document.status.errors:
                where = f" (`{problem.file}:{problem.line}`)" if problem.file else ""
                lines.append(f"- **{document.name}** {problem.kind.value}{where}: "
                             f"{cell(problem.message)}")
            if not document.status.errors:
                lines.append(f"- **{document.name}**: {document.status.state.value}, "
                             f"{document.status.sync.value}" + (
                                 f": {cell(document.status.deferred)}"
                                 if document.status.deferred else ""))
    if timeline:
        lines += ["", "## Timeline", "", "![Jobs and savepoints over time](timeline.svg)"]
    events = sorted(((e.at, d.name, e.message) for d in documents
                     for e in d.status.history.events), reverse=True)[:RECENT_EVENTS]
    if events:
        lines += ["", "## Recent events", ""]
        lines += [f"- `{at}` **{name}** {cell(message)}" for at, name, message in events]
    lines += ["", "Written by flink-gitops. Each deployment's history: `deployments/<name>.md`; "
              "for tools: `status.json` and `deployments/<name>.yaml`.", ""]
    return "\n".join(lines)


def _row(document: DeploymentStatus, as_of: str | None, rendered: Rendered) -> str:
    """The document's dashboard row: its rendered cells around its savepoint's, whose age
    counts to the report's time `as_of`."""
    head, tail = rendered.row
    return head + savepoint_cell(document.status.last_savepoint, as_of) + tail


def _row_around_savepoint(document: DeploymentStatus, ui_base: str | None) -> tuple[str, str]:
    status, cells = document.status, row_cells(document, None)
    name = f"[{document.name}](deployments/{document.name}.md)" + (
        " (deleted)" if status.deleted else "")
    return (f"| {cells['mark']} | {name} | {cells['state']} | {cells['sync']} | "
            f"{job_cell(status.job, ui_base)} | {cells['parallelism']} | {cells['restarts']} | ",
            f" | {cells['action']} | `{(status.spec_commit or '—')[:10]}` |")


@dataclass(frozen=True)
class Rendered:
    """What the status branch holds of one deployment."""

    page: bytes         # deployments/<name>.md
    yaml: bytes         # deployments/<name>.yaml
    index_entry: str    # its entry in status.json (JSON on one line)
    row: tuple[str, str]   # its dashboard row, before and after its savepoint's cell


def _index_line(document: DeploymentStatus, memo: Memo) -> str:
    """The document's entry in status.json, as rendered with its files (rendered now when
    `status_json` is called on its own)."""
    cached = memo.get(id(document))
    if cached is not None and cached[0] is document:
        return cached[2].index_entry
    return _rendered(document, memo, None).index_entry


def _rendered(document: DeploymentStatus, memo: Memo, ui_base: str | None) -> Rendered:
    """The document's files, rendered once per document object and web UI address of its
    target: an unchanged deployment keeps its previous document object from cycle to cycle
    (`next_status`, `StatusStore.read`), so in most cycles most deployments cost a lookup here.
    The memo maps the id of a document to the document (kept alive, so the id is not reused),
    the web UI address its page links to and its files."""
    cached = memo.get(id(document))
    if cached is not None and cached[0] is document and cached[1] == ui_base:
        return cached[2]
    data = document.document()
    rendered = Rendered(
        render_history(document, ui_base).encode(),
        # libyaml's emitter (when PyYAML has it) writes the same bytes five times faster
        yaml.dump(data, Dumper=_DUMPER, sort_keys=False, allow_unicode=True,
                  width=100).encode(),
        json.dumps(_index_entry(document), sort_keys=True, ensure_ascii=False),
        _row_around_savepoint(document, ui_base))
    memo.put(id(document), (document, ui_base, rendered))
    return rendered


_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
