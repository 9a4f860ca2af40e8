"""A server-side store bounded in count, bytes and age, for values a web session must hand from one event to the next.

A web framework that keeps per-session values (Gradio keeps up to 10,000 sessions) turns a few MB per request into
gigabytes on a public server. Keeping only a short random token in the session and the value here bounds memory
however many sessions arrive: the oldest values are dropped first, and none outlives `max_age_s`.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class BoundedStore(Generic[T]):
    """Values under random tokens; at most `max_items` values and `max_bytes` (by `size_of`), each for `max_age_s`."""

    def __init__(self, max_items: int, max_bytes: int, max_age_s: float, size_of: Callable[[T], int],
                 clock: Callable[[], float] = time.monotonic):
        if max_items < 1 or max_bytes < 1 or max_age_s <= 0:
            raise ValueError("BoundedStore needs max_items >= 1, max_bytes >= 1 and max_age_s > 0")
        self.max_items, self.max_bytes, self.max_age_s = max_items, max_bytes, max_age_s
        self._size_of, self._clock = size_of, clock
        self._items: OrderedDict[str, tuple[T, int, float]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def put(self, value: T) -> str:
        """Keep `value` (evicting the oldest values as needed) and return its token; a value over `max_bytes` on its
        own is not kept, and its token finds nothing."""
        token = secrets.token_urlsafe(12)
        size = self._size_of(value)
        with self._lock:
            self._expire()
            if size <= self.max_bytes:
                self._items[token] = (value, size, self._clock())
                self._bytes += size
                while len(self._items) > self.max_items or self._bytes > self.max_bytes:
                    self._pop(next(iter(self._items)))
        return token

    def take(self, token: str | None) -> T | None:
        """The value under `token`, removed from the store; None when absent, evicted or expired."""
        with self._lock:
            self._expire()
            return self._pop(token) if token in self._items else None

    def discard(self, token: str | None) -> None:
        """Forget `token` (e.g. when the session holding it ends)."""
        self.take(token)

    def __len__(self) -> int:
        with self._lock:
            self._expire()
            return len(self._items)

    @property
    def nbytes(self) -> int:
        with self._lock:
            self._expire()
            return self._bytes

    def _expire(self) -> None:
        limit = self._clock() - self.max_age_s
        while self._items and next(iter(self._items.values()))[2] < limit:
            self._pop(next(iter(self._items)))

    def _pop(self, token: str) -> T:
        value, size, _ = self._items.pop(token)
        self._bytes -= size
        return value
