"""The status branch people read: the README dashboard, each deployment's page and the SVG
timeline, checked against golden files and rendered as GitHub would (Markdown to HTML, SVG
parsed as XML). Set UPDATE_GOLDEN=1 to write the golden files anew after a deliberate change."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from agent.load import SpecProblem
from agent.model.status import (Action, DeploymentStatus, Event, History, Job, Problem, Savepoint,
                                Status, StatusMetadata)
from agent.report.dashboard import status_files

GOLDEN = Path(__file__).parent / "golden"
COMMIT = "c0ffee" + "0" * 34


def job(generation: int, state: str, flink: str, started: str, ended: str | None = None,
        parallelism: int = 2, restored: str | None = None) -> Job:
    return Job(id=f"{generation:032x}", generation=generation, state=state, flink_status=flink,
               parallelism=parallelism, started_at=started, ended_at=ended,
               restored_from=restored, spec_commit=COMMIT)


def document(name: str, state: str, sync: str, jobs=(), savepoints=(), events=(), **status):
    history = History(jobs=list(jobs), savepoints=list(savepoints),
                      events=[Event(at=at, message=m) for at, m in events])
    return DeploymentStatus(
        metadata=StatusMetadata(name=name, labels={"team": "payments"}),
        status=Status(state=state, sync=sync, target="prod", desired_state="RUNNING",
                      spec_commit=COMMIT, spec_file=f"deployments/{name}.yaml",
                      job=history.jobs[-1] if history.jobs else None,
                      last_savepoint=history.savepoints[-1] if history.savepoints else None,
                      history=history, **status))


def fleet() -> list[DeploymentStatus]:
    """A healthy upgraded deployment, a failed upgrade, a refused spec and a deleted one."""
    savepoint = Savepoint(location="file:/savepoints/savepoint-aa", origin="UPGRADE",
                          created_at="2026-11-21T09:00:00Z", job_id=f"{1:032x}")
    return [
        document("orders", "RUNNING", "SYNCED",
                 jobs=[job(1, "TERMINATED", "FINISHED", "2026-11-21T08:00:00Z",
                           "2026-11-21T09:00:00Z", parallelism=1),
                       job(2, "STARTED", "RUNNING", "2026-11-21T09:00:01Z",
                           restored=savepoint.location)],
                 savepoints=[savepoint],
                 events=[("2026-11-21T08:00:00Z", "START SUCCESS: job 1 running"),
                         ("2026-11-21T09:00:01Z", "STATEFUL_UPGRADE SUCCESS: job 2 restored")],
                 last_action=Action(kind="STATEFUL_UPGRADE", result="SUCCESS",
                                    at="2026-11-21T09:00:01Z")),
        document("payments", "FAILED", "OUT_OF_SYNC",
                 jobs=[job(1, "STARTED", "RUNNING", "2026-11-21T08:30:00Z")],
                 events=[("2026-11-21T10:30:00Z", "STATEFUL_UPGRADE FAILED: savepoint failed")],
                 last_action=Action(kind="STATEFUL_UPGRADE", result="FAILED",
                                    message="savepoint failed | timeout",
                                    at="2026-11-21T10:30:00Z"),
                 errors=[Problem(kind="EXECUTION", message="savepoint failed | timeout")]),
        document("broken", "CANCELLED", "INVALID",
                 errors=[Problem(kind="VALIDATION", message="spec.paralelism: unknown field",
                                 file="deployments/broken.yaml", line=7)]),
        document("archived", "SUSPENDED", "SYNCED", deleted=True),
    ]


def files() -> dict[str, str]:
    unattributed = [SpecProblem("deployments/x.yaml", 1, "no metadata.name", "Deployment")]
    return {path: content.decode()
            for path, content in status_files(fleet(), COMMIT, unattributed).items()}


@pytest.mark.parametrize("path, golden", [("README.md", "dashboard.md"),
                                          ("deployments/orders.md", "deployment.md"),
                                          ("timeline.svg", "timeline.svg")])
def test_the_status_branch_files_match_their_golden_files(path, golden):
    if os.environ.get("UPDATE_GOLDEN"):
        (GOLDEN / golden).write_text(files()[path])
    assert files()[path] == (GOLDEN / golden).read_text()


def test_the_dashboard_renders_to_html_with_a_row_per_deployment_problems_first():
    html = MarkdownIt("commonmark").enable("table").render(files()["README.md"])
    table = html[html.index("<table>"):html.index("</table>")]
    rows = table.split("<tr>")[2:]  # after the header row
    names = [row.split('href="deployments/')[1].split(".md")[0] for row in rows]
    assert names == ["broken", "payments", "archived", "orders"]
    assert '<img src="timeline.svg"' in html
    assert "1h 30m old" in rows[-1]  # the savepoint, counted to the newest event (10:30)
    for link in ("deployments/orders.md", "deployments/payments.md", "timeline.svg"):
        assert link in files()


def test_every_deployment_page_renders_and_links_back():
    rendered = files()
    for name in ("orders", "payments", "broken", "archived"):
        html = MarkdownIt("commonmark").enable("table").render(rendered[f"deployments/{name}.md"])
        assert f"<h1>{name}</h1>" in html and 'href="../README.md"' in html


def test_the_timeline_is_valid_svg_with_a_bar_per_job_and_a_diamond_per_savepoint():
    svg = ElementTree.fromstring(files()["timeline.svg"])
    ns = "{http://www.w3.org/2000/svg}"
    bars = [r for r in svg.iter(f"{ns}rect") if r.find(f"{ns}title") is not None]
    assert len(bars) == 3  # orders: 2 jobs, payments: 1
    assert len(list(svg.iter(f"{ns}path"))) == 1


def test_the_same_documents_render_the_same_bytes_so_a_quiet_cycle_commits_nothing():
    assert files() == files()
    index = json.loads(files()["status.json"])
    assert index["asOf"] == "2026-11-21T10:30:00Z"
