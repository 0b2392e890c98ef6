"""Seeing a deployment's savepoints: `flink-gitops savepoints`, the deployment's page and
status.json list them newest first, each with the id a spec restores it by
(`initialSavepointPath: savepoint:<id>`) and whether it is KEPT or DISPOSED."""

from __future__ import annotations

import json

from markdown_it import MarkdownIt

from agent.config import DEFAULT_STATUS_BRANCH
from agent.model.status import DeploymentStatus, History, Savepoint, Status, StatusMetadata
from agent.reconcile import sync
from agent.report.dashboard import status_files
from agent.report.savepoints import newest_first, savepoints_json
from agent.source import SpecRepository
from agent.status_store import StatusStore
from test_commands import run

COMMIT = "c0ffee" + "0" * 34
UPGRADED = Savepoint(location="file:/savepoints/savepoint-upgrade", origin="UPGRADE",
                     created_at="2026-11-21T09:00:00Z", job_id=f"{1:032x}",
                     disposed_at="2026-11-22T09:00:00Z", disposed_why="beyond maxCount 2")
REQUESTED = Savepoint(location="file:/savepoints/savepoint-asked", origin="USER_REQUEST",
                      created_at="2026-11-21T10:00:00Z", job_id=f"{2:032x}")
PERIODIC = Savepoint(location="file:/savepoints/savepoint-periodic", origin="PERIODIC",
                     created_at="2026-11-21T11:00:00Z", job_id=f"{2:032x}")


def with_savepoints(name: str, *savepoints: Savepoint) -> DeploymentStatus:
    """A deployment's status document whose history holds `savepoints` (oldest first)."""
    return DeploymentStatus(
        metadata=StatusMetadata(name=name),
        status=Status(state="RUNNING", sync="SYNCED", desired_state="RUNNING",
                      last_savepoint=savepoints[-1] if savepoints else None,
                      history=History(savepoints=list(savepoints))))


def page_rows(document: DeploymentStatus) -> list[list[str]]:
    """The cells of the savepoint table on the deployment's page, rendered as GitHub would."""
    page = status_files([document], COMMIT)[f"deployments/{document.name}.md"].decode()
    html = MarkdownIt("commonmark").enable("table").render(page.split("## Savepoints")[1])
    body = html[html.index("<tbody>"):html.index("</tbody>")]
    return [[cell.split(">", 1)[1].split("</td>")[0] for cell in row.split("<td")[1:]]
            for row in body.split("<tr>")[1:]]


# --- as values ---

def test_the_page_lists_savepoints_newest_first_with_id_and_whether_kept():
    rows = page_rows(with_savepoints("orders", UPGRADED, REQUESTED, PERIODIC))
    assert [row[0] for row in rows] == [f"<code>savepoint:{s.id}</code>"
                                        for s in (PERIODIC, REQUESTED, UPGRADED)]
    assert [row[2] for row in rows] == ["PERIODIC", "USER_REQUEST", "UPGRADE"]
    assert rows[1][1:] == ["2026-11-21T10:00:00Z", "USER_REQUEST", f"<code>{2:032x}</code>",
                           "file:/savepoints/savepoint-asked", "KEPT"]
    assert rows[2][5] == "DISPOSED 2026-11-22T09:00:00Z (beyond maxCount 2)"


def test_the_page_says_how_to_restore_only_when_a_savepoint_is_kept():
    def page(*savepoints):
        return status_files([with_savepoints("orders", *savepoints)],
                            COMMIT)["deployments/orders.md"].decode()
    assert "initialSavepointPath: savepoint:<id>" in page(UPGRADED, REQUESTED)
    assert "initialSavepointPath" not in page(UPGRADED)
    assert "## Savepoints" not in page()


def test_newest_first_goes_by_creation_not_by_when_it_was_recorded():
    """A retained checkpoint found after a lost job is recorded last but was made earlier."""
    found_late = Savepoint(location="file:/checkpoints/chk-7", origin="RETAINED_CHECKPOINT",
                           created_at="2026-11-21T09:30:00Z")
    assert newest_first([UPGRADED, REQUESTED, found_late]) == [REQUESTED, found_late, UPGRADED]
    twins = [REQUESTED, REQUESTED.model_copy(update={"location": "file:/twin"})]
    assert newest_first(twins) == twins[::-1]   # same second: the one recorded last first


def test_status_json_carries_every_savepoint_with_its_id_and_whether_it_is_kept():
    index = json.loads(status_files([with_savepoints("orders", UPGRADED, REQUESTED)],
                                    COMMIT)["status.json"])
    entry = index["deployments"]["orders"]
    assert entry["savepoints"] == [
        {"id": REQUESTED.id, "kept": True, "location": REQUESTED.location,
         "origin": "USER_REQUEST", "createdAt": "2026-11-21T10:00:00Z", "jobId": f"{2:032x}"},
        {"id": UPGRADED.id, "kept": False, "location": UPGRADED.location, "origin": "UPGRADE",
         "createdAt": "2026-11-21T09:00:00Z", "jobId": f"{1:032x}",
         "disposedAt": "2026-11-22T09:00:00Z", "disposedWhy": "beyond maxCount 2"}]
    assert entry["lastSavepoint"]["id"] == REQUESTED.id
    assert "history" not in entry


def test_the_json_listing_has_the_shape_of_status_json():
    documents = [with_savepoints("orders", UPGRADED, REQUESTED), with_savepoints("fresh")]
    index = json.loads(status_files(documents, COMMIT)["status.json"])
    listed = savepoints_json(documents)
    assert list(listed["deployments"]) == ["fresh", "orders"]
    for name, entry in listed["deployments"].items():
        assert entry["savepoints"] == index["deployments"][name]["savepoints"]


# --- the command, on a real git status branch ---

def on_status_branch(spec_repo, tmp_path, documents: list[DeploymentStatus]) -> str:
    """Writes the status branch of `spec_repo` with `documents`, as a cycle does; returns the
    `--repo --workdir` arguments of a command reading it."""
    spec_repo.push()
    source = SpecRepository(str(spec_repo.remote), tmp_path / "writer")
    source.fetch()
    StatusStore(source, DEFAULT_STATUS_BRANCH).write(lambda: status_files(documents, COMMIT),
                                                     "status")
    return ["--repo", str(spec_repo.remote), "--workdir", str(tmp_path / "reader")]


def test_the_command_lists_one_deployment_newest_first_as_table_and_json(spec_repo, tmp_path):
    where = on_status_branch(spec_repo, tmp_path, [
        with_savepoints("orders", UPGRADED, REQUESTED), with_savepoints("refunds", PERIODIC)])

    shown = run("savepoints", *where, "orders")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    requested, upgraded = (next(i for i, line in enumerate(lines) if f"savepoint:{s.id}" in line)
                           for s in (REQUESTED, UPGRADED))
    assert requested < upgraded
    assert "KEPT" in lines[requested] and "USER_REQUEST" in lines[requested]
    assert "DISPOSED" in lines[upgraded] and PERIODIC.id not in shown.stdout

    listed = run("savepoints", *where, "--format", "json", "orders")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == savepoints_json([with_savepoints("orders", UPGRADED,
                                                                          REQUESTED)])


def test_the_command_lists_every_deployment_without_a_name(spec_repo, tmp_path):
    where = on_status_branch(spec_repo, tmp_path, [
        with_savepoints("orders", REQUESTED), with_savepoints("refunds", PERIODIC)])
    shown = run("savepoints", *where)
    assert shown.returncode == 0, shown.stderr
    assert "2 savepoints of 2 deployments" in shown.stdout
    for name, savepoint in (("orders", REQUESTED), ("refunds", PERIODIC)):
        row = next(line for line in shown.stdout.splitlines() if savepoint.id in line)
        assert name in row


def test_bad_input_is_a_clear_error_without_a_traceback(spec_repo, tmp_path):
    where = on_status_branch(spec_repo, tmp_path, [with_savepoints("orders", REQUESTED)])
    unknown = run("savepoints", *where, "ordres")
    assert unknown.returncode == 2
    assert "no deployment 'ordres'" in unknown.stderr and "deployments: orders" in unknown.stderr
    unreachable = run("savepoints", "--repo", str(tmp_path / "nowhere"),
                      "--workdir", str(tmp_path / "reader"))
    assert unreachable.returncode == 1 and "cannot fetch" in unreachable.stderr
    bad_format = run("savepoints", *where, "--format", "yaml")
    assert bad_format.returncode == 2
    for result in (unknown, unreachable, bad_format):
        assert "Traceback" not in result.stderr


# --- end to end, on real Flink ---

def test_a_savepoint_a_user_asked_for_is_listed_with_the_id_to_restore_it_by(
        checkpointed, deployed, spec_repo, settings):
    checkpointed("listed")
    deployed("listed", extra="savepointTriggerNonce: 1")
    spec_repo.push("a savepoint, please")
    assert sync(settings).exit_code == 0
    taken = Savepoint.model_validate(spec_repo.status_of("listed")["lastSavepoint"])

    shown = run("savepoints", "--repo", settings.repo, "--workdir", str(settings.workdir),
                "listed")
    assert shown.returncode == 0, shown.stderr
    [row] = [line for line in shown.stdout.splitlines() if f"savepoint:{taken.id}" in line]
    assert "USER_REQUEST" in row and "KEPT" in row   # (a long job id or location may fold)
    listed = run("savepoints", "--repo", settings.repo, "--workdir", str(settings.workdir),
                 "--format", "json")
    [entry] = json.loads(listed.stdout)["deployments"]["listed"]["savepoints"]
    assert (entry["id"], entry["jobId"], entry["kept"]) == (taken.id, taken.job_id, True)
    page = spec_repo.status_file("deployments/listed.md")
    assert f"`savepoint:{taken.id}`" in page
