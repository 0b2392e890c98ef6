"""Notifications: outgoing webhooks for what needs a person — an action FAILED, an upgrade rolled
back, a job turned UNHEALTHY, a change BLOCKED by policy, drift healed — each sent in the cycle
it happens, not in every cycle the state lasts (I/O: HTTP, through `agent.outbox`, so a slow or
absent receiver never slows a cycle; what to tell is decided by the pure `notices`).

A receiver is `--notify URL[;label=value,...]`: the deployments whose labels hold every pair
given (after the last `;`; none: every deployment). The URL may hold secret references, expanded
for the request only (`Notifier.unresolved` names, when the agent starts, those it cannot
expand). The body is JSON: event, deployment, action, result, message, commit (the spec commit
of the cycle), links (status page, Flink web UI, the job's page; those known) and a
Slack-compatible `text`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from urllib.parse import urlsplit

from agent.assessment import Assessment
from agent.config import Settings
from agent.errors import ConfigError
from agent.logs import redact
from agent.model.outcome import Outcome
from agent.model.status import (ActionKind, ActionResult, DeploymentStatus, ProblemKind, Status,
                                SyncStatus)
from agent.outbox import Delivery, receiver_of, send
from agent.report.links import job_page, ui_base
from agent.secrets import unresolved

MAX_RECEIVERS = 20           # --notify options at most
MAX_MESSAGE_CHARS = 2000     # characters of a notice's message, cut with "…"
_LABEL_TERM = re.compile(r"([A-Za-z0-9][A-Za-z0-9._/-]*)=([A-Za-z0-9._-]*)")


class NoticeKind(StrEnum):
    FAILED = "FAILED"                # an action failed (once per distinct failure)
    ROLLED_BACK = "ROLLED_BACK"      # an upgrade failed and the previous spec runs again
    UNHEALTHY = "UNHEALTHY"          # the job turned unhealthy (Flink restarting it…)
    BLOCKED = "BLOCKED"              # a policy (or the deletion guard) holds the change
    DRIFT_HEALED = "DRIFT_HEALED"    # a job changed outside the agent was restarted as applied


_OF_ACTIONS = {NoticeKind.FAILED, NoticeKind.ROLLED_BACK, NoticeKind.DRIFT_HEALED}
_HEADLINES = {NoticeKind.FAILED: "{action} failed",
              NoticeKind.ROLLED_BACK: "{action} failed; rolled back",
              NoticeKind.UNHEALTHY: "job unhealthy",
              NoticeKind.BLOCKED: "change blocked",
              NoticeKind.DRIFT_HEALED: "drift healed"}


@dataclass(frozen=True)
class Receiver:
    """A webhook and the labels a deployment must have for it (all of them)."""

    url: str                                         # as written: may hold secret references
    selector: tuple[tuple[str, str], ...] = ()

    def wants(self, labels: dict[str, str]) -> bool:
        return all(labels.get(key) == value for key, value in self.selector)


def receiver(written: str) -> Receiver:
    """`URL` or `URL;label=value,...` read; ConfigError says what is wrong, naming the URL by
    its scheme and host only (its path may be a secret)."""
    url, _, selector = written.rpartition(";") if ";" in written else (written, "", "")
    shown = receiver_of(url)
    if not url.startswith("${"):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc or re.search(r"\s", url):
            raise ConfigError(f"--notify {shown}: the receiver must be an http:// or https:// "
                              "URL (or a secret reference to one), then ;label=value,... if any")
    terms = [term.strip() for term in selector.split(",")] if selector.strip() else []
    pairs = []
    for term in terms:
        found = _LABEL_TERM.fullmatch(term)
        if found is None:
            raise ConfigError(f"--notify {shown}: {term!r} is no label=value (a selector is "
                              "label=value pairs separated by commas)")
        pairs.append((found[1], found[2]))
    keys = [key for key, _ in pairs]
    if len(set(keys)) < len(keys):
        raise ConfigError(f"--notify {shown}: a label is given twice in {selector!r}")
    return Receiver(url, tuple(pairs))


def receivers(written: Iterable[str]) -> tuple[Receiver, ...]:
    """Every --notify option read (ConfigError: a malformed one, or over MAX_RECEIVERS)."""
    found = tuple(receiver(text) for text in written)
    if len(found) > MAX_RECEIVERS:
        raise ConfigError(f"--notify: {len(found)} receivers, at most {MAX_RECEIVERS}")
    return found


@dataclass(frozen=True)
class Notice:
    """One thing to tell of one deployment."""

    kind: NoticeKind
    deployment: str
    message: str
    commit: str
    action: ActionKind | None = None
    result: ActionResult | None = None
    links: dict[str, str] = field(default_factory=dict)

    def body(self) -> dict:
        """The JSON a receiver gets."""
        return {"event": self.kind.value, "deployment": self.deployment,
                "action": self.action.value if self.action else None,
                "result": self.result.value if self.result else None,
                "message": self.message, "commit": self.commit, "links": self.links,
                "text": self.text()}

    def text(self) -> str:
        """The notice for a chat (Slack's mrkdwn: *bold*, <address|name>)."""
        headline = _HEADLINES[self.kind].format(
            action=self.action.value if self.action else "action")
        named = {"statusPage": "status page", "flinkUi": "Flink UI", "flinkJob": "Flink job"}
        where = [f"spec commit {self.commit[:10]}"] + [
            f"<{address}|{named[key]}>" for key, address in self.links.items()]
        return (f"*{_chat(self.deployment)}*: {headline}: {_chat(self.message)}\n"
                + " · ".join(where))


def notices(item: Assessment, document: DeploymentStatus, outcome: Outcome | None,
            commit: str, links: dict[str, str]) -> list[Notice]:
    """What this cycle has to tell of one deployment: its assessment, its next status document
    and what its action did (None: none ran), compared with its status before (pure)."""
    before = item.previous.status if item.previous else None
    action = item.plan.action
    told = []
    if outcome is not None:
        told += _action_notices(item, outcome, before)
    unhealthy = _problems(document.status, ProblemKind.UNHEALTHY)
    if unhealthy and not (before and _problems(before, ProblemKind.UNHEALTHY)):
        told.append((NoticeKind.UNHEALTHY, unhealthy[0]))
    if document.status.sync == SyncStatus.BLOCKED and (
            before is None or before.sync != SyncStatus.BLOCKED):
        told.append((NoticeKind.BLOCKED, "; ".join(_problems(document.status, ProblemKind.POLICY))
                     or item.plan.reason))
    return [Notice(kind, item.name, _short(redact(message)), commit,
                   *((action, outcome.result) if kind in _OF_ACTIONS else (None, None)), links)
            for kind, message in told]


def _action_notices(item: Assessment, outcome: Outcome,
                    before: Status | None) -> list[tuple[NoticeKind, str]]:
    if outcome.rolled_back_to is not None:
        return [(NoticeKind.ROLLED_BACK, outcome.message)]
    if outcome.result == ActionResult.FAILED:
        last = before.last_action if before else None
        again = last is not None and (last.kind, last.result, last.message) == (
            item.plan.action, ActionResult.FAILED, outcome.message)
        return [] if again else [(NoticeKind.FAILED, outcome.message)]
    if outcome.result == ActionResult.SUCCESS and item.plan.action == ActionKind.RESTART \
            and item.difference.drift:
        return [(NoticeKind.DRIFT_HEALED, f"{item.difference.drift}; {outcome.message}")]
    return []


def _problems(status: Status, kind: ProblemKind) -> list[str]:
    return [problem.message for problem in status.errors if problem.kind == kind]


def _short(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE_CHARS else text[:MAX_MESSAGE_CHARS - 1] + "…"


def _chat(text: str) -> str:
    """Text as Slack shows it literally (its control characters &, <, > escaped)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@dataclass(frozen=True)
class Notifier:
    """The receivers of a cycle's notices; none: nothing is told."""

    receivers: tuple[Receiver, ...] = ()
    page: Callable[[str], str | None] = lambda deployment: None   # a deployment's status page

    @classmethod
    def of(cls, settings: Settings) -> Notifier:
        """The receivers `settings` name (ConfigError: a malformed --notify)."""
        return cls(receivers(settings.notify), settings.status_page)

    def unresolved(self) -> list[str]:
        """Why a receiver's secret reference cannot be expanded on this machine now, if one
        cannot (checked when the agent starts; a delivery that cannot expand it is logged)."""
        return [f"--notify {receiver_of(wanting.url)}: {why}" for wanting in self.receivers
                for _, why in unresolved(wanting.url)]

    def announce(self, commit: str, assessments: list[Assessment],
                 documents: list[DeploymentStatus], outcomes: dict[str, Outcome]) -> None:
        """Sends what the cycle of `commit` has to tell to the receivers that want it; returns
        at once (delivery is `agent.outbox`'s)."""
        if not self.receivers:
            return
        for item, document in zip(assessments, documents, strict=True):
            told = notices(item, document, outcomes.get(item.name), commit,
                           self.links(item, document))
            for notice in told:
                self._send(notice, document.metadata.labels)

    def links(self, item: Assessment, document: DeploymentStatus) -> dict[str, str]:
        """Where a reader of a notice looks next: the status page, the Flink web UI and the
        job's page there, those known."""
        base = ui_base(item.target) if item.target is not None else None
        job = document.status.job
        found = {"statusPage": self.page(item.name), "flinkUi": base,
                 "flinkJob": job_page(base, job.id) if job is not None else None}
        return {key: redact(address) for key, address in found.items() if address}

    def _send(self, notice: Notice, labels: dict[str, str]) -> None:
        for wanting in self.receivers:
            if wanting.wants(labels):
                send(Delivery(wanting.url, notice.body(),
                              f"notification {notice.kind.value} of {notice.deployment}",
                              wanting.url))
