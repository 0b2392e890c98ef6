"""Logging: human-readable or JSON lines, secrets always redacted (I/O: stderr).

Secrets never reach a log (DESIGN §5.6): the header values the agent expands from its
environment are registered here when they are read, and every record is scrubbed of them, of
credentials in URLs and of bearer tokens before it is written.
"""

from __future__ import annotations

import json
import logging
import re
import threading

_URL_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]+@")  # user:password@ or token@
_BEARER = re.compile(r"(?i)(bearer|basic|token)\s+[A-Za-z0-9._~+/=-]{6,}")
_secrets: set[str] = set()
_lock = threading.Lock()

FIELDS = ("deployment", "target", "step", "outcome")


def register_secret(value: str) -> None:
    """A value that must never be logged (a header expanded from the environment)."""
    if len(value) >= 4:
        with _lock:
            _secrets.add(value)


def redact(text: str) -> str:
    with _lock:
        known = sorted(_secrets, key=len, reverse=True)
    for secret in known:
        text = text.replace(secret, "***")
    text = _URL_CREDENTIALS.sub("***@", text)
    return _BEARER.sub(lambda m: f"{m.group(1)} ***", text)


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
        return redact(json.dumps(entry, default=str))


def configure(level: int, json_format: bool) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(_JsonLines() if json_format else _Redacting(
        "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
