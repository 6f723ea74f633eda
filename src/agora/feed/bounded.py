"""A map bounded by age, count and bytes: the one shape of every per-user and per-session
memory the feed keeps (so a worker's memory levels off however many users it serves)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any


class Bounded:
    """A map that holds each entry for ``ttl_seconds`` after it was stored, and at most
    ``max_entries`` entries and ``max_bytes`` bytes (sizes as given to :meth:`put`): the
    oldest-stored go first. Entries stay in the order they were stored, so expired ones are
    always at the front and every bound costs O(1) per entry. Not thread-safe (callers hold
    their lock)."""

    def __init__(
        self,
        ttl_seconds: float,
        max_entries: int,
        max_bytes: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.nbytes = 0
        self._clock = clock
        self._entries: OrderedDict[Hashable, tuple[float, int, Any]] = OrderedDict()

    def __len__(self) -> int:
        self._evict(self._clock())
        return len(self._entries)

    def get(self, key: Hashable, default: Any = None) -> Any:
        """The value for ``key`` if it is held and younger than ``ttl_seconds``, else
        ``default``."""
        self._evict(self._clock())
        held = self._entries.get(key)
        return held[2] if held is not None else default

    def pop(self, key: Hashable) -> Any | None:
        """Remove and return the value for ``key`` (None if absent or expired)."""
        self._evict(self._clock())
        return self._remove(key)

    def put(self, key: Hashable, value: Any, size: int = 0) -> None:
        """Hold ``value`` (replacing an earlier one), then drop what is past the bounds."""
        self._remove(key)
        if self.max_entries <= 0 or (self.max_bytes is not None and size > self.max_bytes):
            return
        self._entries[key] = (self._clock(), size, value)
        self.nbytes += size
        self._evict(self._clock())

    def _remove(self, key: Hashable) -> Any | None:
        held = self._entries.pop(key, None)
        if held is None:
            return None
        self.nbytes -= held[1]
        return held[2]

    def _evict(self, now: float) -> None:
        while self._entries:
            key, (stored, _, _) = next(iter(self._entries.items()))
            over = len(self._entries) > self.max_entries or (
                self.max_bytes is not None and self.nbytes > self.max_bytes
            )
            if not over and now - stored < self.ttl_seconds:
                return
            self._remove(key)
