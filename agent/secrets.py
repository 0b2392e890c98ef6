"""Secret references in spec values expanded (I/O: the environment, files).

A value may name a secret instead of holding it (`model.references`): `${VAR}` is the agent's
environment variable VAR, `${file:PATH}` the content of a file on the agent's machine (a mounted
Kubernetes secret; one trailing newline trimmed, at most MAX_SECRET_FILE_BYTES). `$${` writes a
literal `${`.

The spec, its digest, the plan and the status keep the reference; a value is expanded only where
it leaves for Flink (or an artifact store), and every value expanded is registered with
`logs.register_secret`, so that no log line, error or status text can carry it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from agent.errors import SecretMissing
from agent.logs import register_secret
from agent.model.references import REFERENCE, Reference, references

MAX_SECRET_FILE_BYTES = 64 * 1024


def unresolved(text: str) -> list[tuple[Reference, str]]:
    """The references of `text` that cannot be expanded on this machine now, each with why
    (never with a value)."""
    missing = []
    for reference in references(text):
        try:
            _value(reference)
        except SecretMissing as error:
            missing.append((reference, str(error)))
    return missing


def expand(text: str) -> str:
    """`text` with every reference replaced by its value and `$${` by `${`; SecretMissing names
    the first reference that cannot be expanded. Each value is registered as a secret."""
    def replace(found: re.Match) -> str:
        if found.group(1):
            return found.group(0)[1:]
        value = _value(Reference(found.group(3), found.group(2)))
        register_secret(value)
        return value
    return REFERENCE.sub(replace, text)


def _value(reference: Reference) -> str:
    if reference.variable is not None:
        if reference.variable not in os.environ:
            raise SecretMissing(f"{reference}: the agent's environment has no variable "
                                f"{reference.variable}")
        return os.environ[reference.variable]
    path = Path(reference.file).expanduser()
    try:
        with path.open("rb") as opened:
            data = opened.read(MAX_SECRET_FILE_BYTES + 1)
    except OSError as error:
        raise SecretMissing(f"{reference}: {error.strerror or 'cannot be read'} on the agent's "
                            "machine") from None
    if len(data) > MAX_SECRET_FILE_BYTES:
        raise SecretMissing(f"{reference}: over {MAX_SECRET_FILE_BYTES:,} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SecretMissing(f"{reference}: not UTF-8 text") from None
    return text.removesuffix("\n").removesuffix("\r") if text.endswith("\n") else text
