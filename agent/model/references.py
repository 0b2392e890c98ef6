"""Secret references as written in spec values (pure): `${VAR}` (an environment variable of the
agent's), `${file:PATH}` (a file on the agent's machine); `$${` is a literal `${`. What they are
expanded to is `agent.secrets`' business, at the edge where a value leaves for Flink."""

from __future__ import annotations

import re
from dataclasses import dataclass

REFERENCE = re.compile(r"\$(\$?)\{(?:file:([^}]+)|([A-Za-z_][A-Za-z0-9_]*))\}")
# what, in the name of a Flink option, a program flag or a SQL WITH option, says that its value
# is a secret; policies/plain_secrets.rego holds the same words (a test keeps them equal)
SECRET_NAME = (r"(password|passwd|secret|token|credential|access[-.]key|account\.key|"
               r"private[-.]key|jaas|keytab|user[-.]info)")


@dataclass(frozen=True)
class Reference:
    """One `${VAR}` (file None) or `${file:PATH}` (variable None)."""

    variable: str | None = None
    file: str | None = None

    def __str__(self) -> str:
        return f"${{{self.variable}}}" if self.variable else f"${{file:{self.file}}}"


def references(text: str) -> list[Reference]:
    """The references a value holds, in order (`$${…}` is a literal, not one)."""
    return [Reference(found.group(3), found.group(2)) for found in REFERENCE.finditer(text)
            if not found.group(1)]
