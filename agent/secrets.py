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

import hashlib
import hmac
import json
import os
import re
import secrets
from pathlib import Path

from agent.errors import SecretMissing
from agent.logs import register_secret
from agent.model.references import REFERENCE, Reference, references

MAX_SECRET_FILE_BYTES = 64 * 1024
# the key of `keyed_digest`: this variable, else a random key kept in the agent's work dir
DIGEST_KEY_VARIABLE = "FLINK_GITOPS_SECRET_DIGEST_KEY"
DIGEST_KEY_FILE = "secret-digest.key"


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


def keyed_digest(texts: list[str], key: bytes) -> str | None:
    """A keyed digest (HMAC-SHA256) of the values the references in `texts` have now, or None
    when they hold none: it changes when a value does, and tells nothing of a value to whoever
    lacks `key`. SecretMissing names a reference that cannot be expanded."""
    found = sorted({str(reference) for text in texts for reference in references(text)})
    if not found:
        return None
    values = [(reference, expand(reference)) for reference in found]
    canonical = json.dumps(values, separators=(",", ":")).encode()
    return hmac.new(key, canonical, hashlib.sha256).hexdigest()[:16]


def digest_key(workdir: Path) -> bytes:
    """The key of `keyed_digest`: DIGEST_KEY_VARIABLE, else the work dir's key file (made, with
    a random key readable by its owner only, when there is none). Agents that share a spec
    repository must share the key (the variable): a digest under another key looks changed."""
    if os.environ.get(DIGEST_KEY_VARIABLE):
        return os.environ[DIGEST_KEY_VARIABLE].encode()
    path = Path(workdir) / DIGEST_KEY_FILE
    if not path.exists():   # written whole under another name, then linked: never half a key
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{DIGEST_KEY_FILE}.{os.getpid()}")
        partial.unlink(missing_ok=True)
        with os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
            out.write(secrets.token_hex(32))
        try:
            os.link(partial, path)
        except FileExistsError:
            pass   # another agent's, made meanwhile
        finally:
            partial.unlink()
    return path.read_bytes().strip()


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
