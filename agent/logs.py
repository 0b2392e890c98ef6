"""Logging, and the one redaction of secrets for every output (I/O: stderr).

Secrets never reach a log, the status branch, a plan or the terminal (DESIGN §5.6, §5.9): every
value the agent expands from its environment (header values today) is registered here when it
is read, and `redact` scrubs text of them — as written, and as JSON or YAML would escape them
(quotes, backslashes, non-ASCII) — of credentials in URLs and of bearer tokens. Text that comes
from outside (Flink's and artifact servers' answers, policy messages) is redacted where it
enters; every writer redacts what it writes once more.
"""

from __future__ import annotations

import json
import logging
import re
import threading

from agent.memo import Memo

_URL_CREDENTIALS = re.compile(r"://[^/@\s]+@")  # user:password@ or token@
_BEARER = re.compile(r"(?i)(bearer|basic|token)\s+[A-Za-z0-9._~+/=-]{6,}")
_BEARER_WORDS = ("bearer", "basic", "token")  # (a text without them is not searched: megabytes
                                               # of dashboard take 0.1 s of the pattern)
_secrets: set[str] = set()
_lock = threading.Lock()
# content -> redacted, while the secrets stay the same: it goes with the registry of secrets,
# which is the process's (every expanded value is registered where it is read)
_scrubbed: Memo[bytes, bytes] = Memo("redacted contents", 50_000)
REMEMBERED_BYTES = 64 * 1024   # a larger content is redacted each time it is written

FIELDS = ("deployment", "target", "step", "outcome")


def register_secret(value: str) -> None:
    """A value that must never be written (a header expanded from the environment), in every
    form an encoder may give it."""
    if len(value) < 4:
        return
    forms = {value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1],
             value.replace("'", "''")}   # YAML's single-quoted style
    with _lock:
        if not forms <= _secrets:
            _secrets.update(forms)
            _scrubbed.clear()


def redact(text: str) -> str:
    with _lock:
        known = sorted(_secrets, key=len, reverse=True)
    for secret in known:
        text = text.replace(secret, "***")
    text = _URL_CREDENTIALS.sub("://***@", text)
    folded = text.casefold()   # (as the pattern's (?i) folds: ſ is s, K is k)
    if not any(word in folded for word in _BEARER_WORDS):
        return text
    return _BEARER.sub(lambda m: f"{m.group(1)} ***", text)


def redact_bytes(data: bytes) -> bytes:
    """`redact` of UTF-8 content (what is not UTF-8 is left as it is), each distinct content up
    to REMEMBERED_BYTES redacted once while the known secrets stay the same: the status
    branch's files are mostly the same from cycle to cycle. (Larger ones — a dashboard of
    thousands of rows — change with every commit, and each kept would stay until 50,000
    others.)"""
    def scrubbed() -> bytes:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return data
        redacted = redact(text)
        return data if redacted == text else redacted.encode("utf-8")   # (no second copy)
    return _scrubbed.get_or(data, scrubbed) if len(data) <= REMEMBERED_BYTES else scrubbed()


class _Redacting(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class _JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"), "level": record.levelname,
                 "logger": record.name, "message": record.getMessage()}
        entry |= {f: getattr(record, f) for f in FIELDS if getattr(record, f, None) is not None}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        # redacted before encoding: JSON escapes a secret's quotes, backslashes and non-ASCII
        return json.dumps({k: redact(str(v)) for k, v in entry.items()})


def configure(level: int, json_format: bool) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(_JsonLines() if json_format else _Redacting(
        "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
