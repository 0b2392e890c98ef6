"""HTTP calls with a total deadline and a bounded answer (I/O: sockets).

requests and urllib3 time out each read of a socket, not the call: a server that trickles a
byte every few seconds holds a call forever. A `session()` here records, per thread, the socket
each call uses; `deadline(seconds)` shuts that socket down when the call's time is up, so the
call fails at once (and the caller reports a timeout), whatever the server does. `read_limited`
reads an answer up to a size, so a huge answer costs no more memory than the limit.
"""

from __future__ import annotations

import socket
import threading
from contextlib import contextmanager
from typing import Iterator

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

_CALL = threading.local()


class AnswerTooLarge(Exception):
    """An answer passed the size it may have."""


class DeadlinePassed(Exception):
    """A `deadline` block's time ran out: whatever its calls raised or returned is cut short."""


def _watch(sock: socket.socket | None) -> None:
    sockets = getattr(_CALL, "sockets", None)
    if sockets is not None and sock is not None:
        sockets.append(sock)


class _Watching:
    """A connection that tells the call under way which socket it uses."""

    def connect(self) -> None:
        super().connect()
        _watch(self.sock)

    def request(self, *args, **kwargs) -> None:
        _watch(self.sock)
        super().request(*args, **kwargs)


class _WatchedHTTP(_Watching, HTTPConnection):
    pass


class _WatchedHTTPS(_Watching, HTTPSConnection):
    pass


class _Pool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTP


class _TLSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPS


class _Adapter(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _Pool, "https": _TLSPool}


def session() -> requests.Session:
    """A requests session whose calls `deadline` can end."""
    made = requests.Session()
    for prefix in ("http://", "https://"):
        made.mount(prefix, _Adapter())
    return made


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Ends the calls made in this block on this thread once `seconds` have passed: their
    sockets are shut down, and the block raises DeadlinePassed (in place of what the cut
    call raised, or after it returned what it had read so far)."""
    sockets: list[socket.socket] = []
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        for sock in list(sockets):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    _CALL.sockets = sockets
    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    try:
        yield
    except Exception:
        if expired.is_set():
            raise DeadlinePassed(f"over {seconds:g}s") from None
        raise
    finally:
        timer.cancel()
        _CALL.sockets = None
    if expired.is_set():
        raise DeadlinePassed(f"over {seconds:g}s")


def read_limited(response: requests.Response, limit: int, chunk: int = 1 << 16) -> bytes:
    """A streamed answer's body, at most `limit` bytes (AnswerTooLarge past it)."""
    parts, size = [], 0
    for part in response.iter_content(chunk):
        size += len(part)
        if size > limit:
            raise AnswerTooLarge(f"over {limit:,} bytes")
        parts.append(part)
    return b"".join(parts)
