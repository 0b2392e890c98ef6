"""The one cache mechanism of the agent: a bounded, thread-safe memo (pure, given a clock).

A memo keeps at most `size` entries (the least recently used go first), each at most `ttl`
seconds when one is given; `retain(keys)` drops every entry but those (a cache that should hold
only what the last cycle used); `on_evict` hears of every value dropped (a policy's worker
process is closed so). Every memo of the agent is owned by one `Caches` object (agent.caches),
so a long-running daemon and the tests see and reset them in one place.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Callable, Generic, Hashable, Iterable, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Memo(Generic[K, V]):
    def __init__(self, name: str, size: int, ttl: float | None = None,
                 on_evict: Callable[[V], None] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.name = name
        self.size = size
        self.ttl = ttl
        self._on_evict = on_evict
        self._clock = clock
        self._entries: OrderedDict[K, tuple[V, float]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if self.ttl is not None and self._clock() - entry[1] > self.ttl:
                self._drop(key)
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def put(self, key: K, value: V) -> V:
        with self._lock:
            if key in self._entries:
                self._drop(key)
            self._entries[key] = (value, self._clock())
            while len(self._entries) > self.size:
                self._drop(next(iter(self._entries)))
            return value

    def get_or(self, key: K, compute: Callable[[], V]) -> V:
        """The value of `key`, computed (outside the lock) and kept when it is not known."""
        found = self.get(key)
        return found if found is not None else self.put(key, compute())

    def forget(self, key: K) -> None:
        with self._lock:
            if key in self._entries:
                self._drop(key)

    def retain(self, keys: Iterable[K]) -> None:
        """Keeps only the entries of `keys`."""
        kept = set(keys)
        with self._lock:
            for key in [k for k in self._entries if k not in kept]:
                self._drop(key)

    def clear(self) -> None:
        self.retain(())

    def items(self) -> list[tuple[K, V]]:
        """Every entry, least recently used first (a snapshot)."""
        with self._lock:
            return [(key, value) for key, (value, _) in self._entries.items()]

    def __len__(self) -> int:
        return len(self._entries)

    def _drop(self, key: K) -> None:
        value, _ = self._entries.pop(key)
        if self._on_evict is not None:
            self._on_evict(value)
