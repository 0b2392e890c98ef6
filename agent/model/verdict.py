"""What the policies say of one deployment, as it crosses from the policy stage to the plan
and the report (pure data)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Verdict:
    """What the policies say of one deployment."""

    denials: tuple[str, ...] = ()     # "<file>: <message>"
    warnings: tuple[str, ...] = ()

    @property
    def denied(self) -> bool:
        return bool(self.denials)


@dataclass(frozen=True)
class WindowVerdict:
    """What the sync windows say of one deployment's changes now (`agent.sync_windows`)."""

    windows: tuple[str, ...] = ()   # the SyncWindows that apply to it
    closed_by: str | None = None    # the window that keeps its changes from running now
    kind: str | None = None         # that window's kind: allow (closed) or deny (open)
    until: str | None = None        # when they may run (UTC; None: further than the agent
                                    # looks ahead, `agent.sync_windows`)
    local: str | None = None        # `until` in the closing window's time zone, as people say it
    manual_sync: bool = False       # every window closed now lets `sync --override-window` act
    self_heal: bool = False         # every window closed now lets a job that died start again
    refused: str | None = None      # a SyncWindow that cannot be read: no change runs

    @property
    def open(self) -> bool:
        return self.closed_by is None and self.refused is None

    def message(self) -> str:
        """Why a change waits, as the status and the plan say it."""
        if self.refused is not None:
            return self.refused
        if self.until is None:
            return (f"deferred by window {self.closed_by}: it stays closed further than the "
                    "agent looks ahead (a year, 16 openings and closings)")
        return f"deferred until {self.until} ({self.local}) by window {self.closed_by}"

    def document(self) -> dict:
        """As policies (`input.window`) and `plan --format json` see it."""
        return {"open": self.open, "windows": list(self.windows), "closedBy": self.closed_by,
                "kind": self.kind, "until": self.until, "untilLocal": self.local,
                "manualSync": self.manual_sync, "selfHeal": self.self_heal,
                "refused": self.refused}


@dataclass(frozen=True)
class SignatureVerdict:
    """Whether the spec branch's head may be applied: signed by a trusted key
    (`agent.signatures`), and what is applied when it is not."""

    branch: str                     # the spec branch (or the revision planned)
    head: str
    checked: bool = False           # verification is on (--allowed-signers and/or
                                    # --trusted-gpg-keyring)
    trusted: bool = True            # the head, and with --verify-every-commit each commit since
                                    # the last trusted one, is signed by a trusted key
    signer: str | None = None       # who signed the head, as the trusted signers name them
    why: str | None = None          # what is wrong: "not signed", "signed by an untrusted key …"
    culprit: str | None = None      # the commit that is not trusted (the head, or one before it)
    applied: str | None = None      # the revision applied instead: the last trusted one

    def message(self) -> str:
        """Why the head's changes are not applied, as every deployment they hold says it."""
        kept = (f"the last trusted revision {self.applied[:10]} stays applied" if self.applied
                else "no trusted revision is within reach")
        return (f"commit {(self.culprit or self.head)[:10]} not signed by a trusted key "
                f"({self.why}): {kept}")

    def document(self) -> dict:
        """As `plan --format json` shows it."""
        return {"branch": self.branch, "head": self.head, "checked": self.checked,
                "trusted": self.trusted, "signer": self.signer, "why": self.why,
                "commit": self.culprit, "applied": self.applied}
