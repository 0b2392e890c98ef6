"""What the commands print on a terminal (I/O: stdout and stderr).

Every text that comes from outside — a spec's file name or message, Flink's answer, a policy's
denial — is printed as plain text, never read as Rich markup (`[/x]` in a message stays `[/x]`),
and redacted of every secret the agent knows.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from agent.logs import redact

console = Console(soft_wrap=True)
errors = Console(stderr=True, soft_wrap=True)


def say(label: str, style: str, message: object, to: Console = errors) -> None:
    """`label: message`, the label styled, the message as it is (redacted of secrets)."""
    to.print(Text.assemble((label, style), ": ", redact(str(message))), highlight=False)


def plain(message: object, to: Console = console) -> None:
    to.print(redact(str(message)), markup=False, highlight=False)


def table(title: str, columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> Table:
    """A table whose cells are plain text."""
    shown = Table(title=Text(title))
    for column in columns:
        shown.add_column(column)
    for row in rows:
        shown.add_row(*(Text(redact(cell)) for cell in row))
    return shown


def print_sync(result) -> None:
    """A `sync` result: a row per deployment, then every problem, then the status commit."""
    rows = []
    for document in result.documents:
        status = document.status
        outcome = result.outcomes.get(document.name)
        action = f"{status.last_action.kind.value} {outcome.result.value}" if outcome else "—"
        job = f"{status.job.id} {status.job.flink_status}" if status.job else "—"
        rows.append((document.name, status.state.value, status.sync.value, job, action))
    console.print(table(f"spec commit {result.commit[:10]}",
                        ("deployment", "state", "sync", "job", "action"), rows))
    for document in result.documents:
        for problem in document.status.errors:
            where = f"{problem.file}:{problem.line}: " if problem.file else ""
            say(document.name, "yellow", f"{where}{problem.message}")
    for problem in result.unattributed:
        say("spec", "yellow", problem)
    committed = result.status_commit[:10] if result.status_commit else "nothing changed"
    plain(f"status branch: {committed}")
