"""Outgoing HTTP deliveries — notifications and commit statuses — sent in the background, so
that no receiver ever slows or fails a cycle (I/O: HTTP, threads).

A cycle only `send`s a `Delivery`: it joins a bounded queue (one past QUEUE_SIZE is dropped, with
a log line) and DELIVERY_WORKERS threads post it, each attempt cut at DELIVERY_TIMEOUT_S. What may
pass (no connection, no answer in time, 429, 5xx) is tried again, DELIVERY_ATTEMPTS in all,
FIRST_RETRY_S later, then twice as long each time (at most LONGEST_RETRY_S); any other answer
is final. Deliveries of one `line` (one receiver; one commit status context) go out one after
another in the order sent, so a `success` never overtakes its `pending`. A process waits at most
EXIT_WAIT_S at its end for deliveries still under way, so a one-shot `sync` delivers too.

A delivery's URL and header values may hold secret references: they are expanded for the
request only, and their values registered as secrets; a log line names a receiver by its scheme
and host as written, never by its path or a value.
"""

from __future__ import annotations

import atexit
import heapq
import itertools
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

import requests

from agent.errors import SecretMissing
from agent.flink.http import DeadlinePassed, deadline, session
from agent.secrets import expand

log = logging.getLogger(__name__)

DELIVERY_ATTEMPTS = 4        # attempts per delivery: the first and 3 retries
DELIVERY_TIMEOUT_S = 5.0     # one attempt, connection to answer, at most this
FIRST_RETRY_S = 0.5          # the first retry after this, each next one after twice as long…
LONGEST_RETRY_S = 30.0       # …at most this
QUEUE_SIZE = 1000            # deliveries held at once (waiting or under way); more are dropped
DELIVERY_WORKERS = 4         # deliveries under way at once
EXIT_WAIT_S = 10.0           # what a process waits at its end for deliveries still held


@dataclass(frozen=True)
class Delivery:
    """One POST of a JSON body. `url` and the header values may hold secret references;
    deliveries of one `line` go out in the order sent; `what` names it in the log."""

    url: str
    body: dict[str, Any]
    what: str
    line: str
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def receiver(self) -> str:
        return receiver_of(self.url)


def receiver_of(url: str) -> str:
    """A receiver as a log line or an error may name it: the scheme and host of its URL as
    written (never its path, nor the value of a reference) (pure)."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]   # (credentials are a secret too)
    return f"{parts.scheme}://{host}" if host else "a URL given by reference"


class Answer(StrEnum):
    """What one attempt came to."""

    DELIVERED = "DELIVERED"
    PASSING = "PASSING"      # may succeed when tried again
    FINAL = "FINAL"          # will not: refused, or not to be sent at all


@dataclass
class _Held:
    delivery: Delivery
    attempts: int = 0


class Outbox:
    """The queue and its workers (started with the first delivery)."""

    def __init__(self, capacity: int = QUEUE_SIZE, workers: int = DELIVERY_WORKERS):
        self.capacity = capacity
        self.workers = workers
        self._changed = threading.Condition()
        self._lines: dict[str, deque[_Held]] = {}
        self._due: list[tuple[float, int, str]] = []   # (when, order, line): a line's next try
        self._order = itertools.count()
        self._held = 0
        self._started = 0

    @property
    def held(self) -> int:
        """Deliveries waiting or under way."""
        with self._changed:
            return self._held

    def send(self, delivery: Delivery) -> bool:
        """Queues `delivery` (False, and a log line, when the queue is full); returns at once."""
        with self._changed:
            if self._held >= self.capacity:
                log.warning("%s to %s dropped: %d deliveries wait already (at most %d)",
                            delivery.what, delivery.receiver, self._held, self.capacity)
                return False
            self._held += 1
            line = self._lines.setdefault(delivery.line, deque())
            line.append(_Held(delivery))
            if len(line) == 1:
                self._try_in(delivery.line, 0.0)
            self._start_workers()
        return True

    def wait(self, timeout_s: float) -> bool:
        """Waits until every delivery is done with (delivered or given up), at most
        `timeout_s`; False when some are still held."""
        with self._changed:
            return self._changed.wait_for(lambda: self._held == 0, timeout_s)

    def _try_in(self, line: str, seconds: float) -> None:
        heapq.heappush(self._due, (time.monotonic() + seconds, next(self._order), line))
        self._changed.notify_all()

    def _start_workers(self) -> None:
        while self._started < self.workers:
            self._started += 1
            threading.Thread(target=self._work, name=f"outbox-{self._started}",
                             daemon=True).start()

    def _work(self) -> None:
        posting = session()
        while True:
            line, held = self._next()
            try:
                answer, why = attempt(posting, held.delivery)
            except Exception as error:  # noqa: BLE001 - a bug ends this delivery, not the worker
                log.exception("%s: sending failed", held.delivery.what)
                answer, why = Answer.FINAL, type(error).__name__
            with self._changed:
                self._settle(line, held, answer, why)

    def _next(self) -> tuple[str, _Held]:
        """The line whose next try is due, and its first delivery (waits for one)."""
        with self._changed:
            while True:
                now = time.monotonic()
                if self._due and self._due[0][0] <= now:
                    line = heapq.heappop(self._due)[2]
                    return line, self._lines[line][0]
                self._changed.wait(self._due[0][0] - now if self._due else None)

    def _settle(self, line: str, held: _Held, answer: Answer, why: str) -> None:
        held.attempts += 1
        delivery = held.delivery
        if answer == Answer.PASSING and held.attempts < DELIVERY_ATTEMPTS:
            wait_s = retry_wait(held.attempts)
            log.info("%s to %s: attempt %d of %d failed (%s); again in %gs", delivery.what,
                     delivery.receiver, held.attempts, DELIVERY_ATTEMPTS, why, wait_s)
            self._try_in(line, wait_s)
            return
        if answer == Answer.PASSING:
            log.warning("%s to %s not delivered after %d attempts: %s", delivery.what,
                        delivery.receiver, held.attempts, why)
        self._lines[line].popleft()
        self._held -= 1
        if self._lines[line]:
            self._try_in(line, 0.0)
        else:
            del self._lines[line]
        self._changed.notify_all()


def retry_wait(attempts: int) -> float:
    """Seconds before the next attempt, after `attempts` failed ones (pure)."""
    return min(FIRST_RETRY_S * 2 ** (attempts - 1), LONGEST_RETRY_S)


def attempt(posting: requests.Session, delivery: Delivery) -> tuple[Answer, str]:
    """One POST of `delivery` (its references expanded here), and why it failed when it did."""
    try:
        url = expand(delivery.url)
        headers = {name: expand(value) for name, value in delivery.headers}
    except SecretMissing as error:
        log.warning("%s to %s not sent: %s", delivery.what, delivery.receiver, error)
        return Answer.FINAL, str(error)
    try:
        with deadline(DELIVERY_TIMEOUT_S):
            answer = posting.post(url, json=delivery.body, headers=headers,
                                  timeout=DELIVERY_TIMEOUT_S, allow_redirects=False,
                                  stream=True)
            answer.close()
    except (DeadlinePassed, requests.Timeout):
        return Answer.PASSING, f"no answer in {DELIVERY_TIMEOUT_S:g}s"
    except requests.ConnectionError:
        return Answer.PASSING, "no connection"
    except requests.RequestException as error:   # a URL requests cannot use, after expansion
        log.warning("%s to %s not sent: not a usable URL (%s)", delivery.what,
                    delivery.receiver, type(error).__name__)
        return Answer.FINAL, type(error).__name__
    if 200 <= answer.status_code < 300:
        log.info("%s delivered to %s", delivery.what, delivery.receiver)
        return Answer.DELIVERED, ""
    if answer.status_code == 429 or answer.status_code >= 500:
        return Answer.PASSING, f"HTTP {answer.status_code}"
    log.warning("%s to %s refused: HTTP %d", delivery.what, delivery.receiver,
                answer.status_code)
    return Answer.FINAL, f"HTTP {answer.status_code}"


OUTBOX = Outbox()   # the process's: every cycle of a daemon sends through it


def send(delivery: Delivery) -> bool:
    """Queues `delivery` in the process's outbox; returns at once."""
    return OUTBOX.send(delivery)


def wait(timeout_s: float) -> bool:
    """Waits at most `timeout_s` for the process's deliveries to be done with."""
    return OUTBOX.wait(timeout_s)


def _at_exit() -> None:
    if not OUTBOX.wait(EXIT_WAIT_S):
        log.warning("%d notifications or commit statuses not delivered: the process ended "
                    "(after waiting %gs for them)", OUTBOX.held, EXIT_WAIT_S)


atexit.register(_at_exit)
