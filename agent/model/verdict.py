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
