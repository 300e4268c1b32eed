"""When each sandbox object or callback next needs the clock: due times in a heap.

Design decisions:

* A ``Schedule`` maps a key (an object's key, a callback's id) to its one due time. ``pop_due(now)``
  removes and returns the keys due at ``now`` or before, earliest first; ``next_at`` peeks. A clock
  tick therefore costs what fell due, not a pass over everything the sandbox holds: an order paid
  long ago, or a callback delivered, is never looked at again.
* Changing or clearing a key's time leaves its old heap entry behind (lazy deletion: an entry
  counts only while it carries the key's current sequence number), so ``set`` and ``discard`` are
  O(log n) and O(1). Each stale entry is dropped once, when it reaches the top; and the heap is
  rebuilt from the live times whenever stale entries outnumber them, so a peer who reschedules the
  same key forever cannot grow it.
* Not thread-safe on its own: its owner (``ObjectStore``, ``Outbox``) calls it under its lock.
"""

from __future__ import annotations

import heapq
import itertools
from typing import Generic, Hashable, Optional, TypeVar

K = TypeVar("K", bound=Hashable)
SLACK = 64  # stale entries tolerated beyond the live ones before a rebuild: no rebuild churn when tiny


class Schedule(Generic[K]):
    """Keys and the business time each is next due at."""

    def __init__(self) -> None:
        self._at: dict[K, tuple[float, int]] = {}  # key -> (due time, sequence number of its live entry)
        self._heap: list[tuple[float, int, K]] = []
        self._sequence = itertools.count()

    def set(self, key: K, at: Optional[float]) -> None:
        """Make ``key`` due at ``at`` (None: not due at all)."""
        if at is None:
            self.discard(key)
            return
        entry = (at, next(self._sequence))
        self._at[key] = entry
        heapq.heappush(self._heap, (*entry, key))
        if len(self._heap) > 2 * len(self._at) + SLACK:
            self._rebuild()

    def discard(self, key: K) -> None:
        self._at.pop(key, None)

    def next_at(self) -> Optional[float]:
        """The earliest due time, or None when nothing is scheduled."""
        self._drop_stale()
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float) -> list[K]:
        """Remove and return every key due at ``now`` or before, earliest first."""
        due: list[K] = []
        while self._drop_stale() and self._heap[0][0] <= now:
            _, _, key = heapq.heappop(self._heap)
            del self._at[key]
            due.append(key)
        return due

    def clear(self) -> None:
        self._at.clear()
        self._heap.clear()

    def __len__(self) -> int:
        return len(self._at)

    def __contains__(self, key: object) -> bool:
        return key in self._at

    @property
    def entries(self) -> int:
        """Heap entries held, stale ones included: what the schedule costs, whatever was rescheduled."""
        return len(self._heap)

    def _drop_stale(self) -> bool:
        """Discard stale entries at the top; whether a live one is left there."""
        while self._heap:
            at, sequence, key = self._heap[0]
            if self._at.get(key) == (at, sequence):
                return True
            heapq.heappop(self._heap)
        return False

    def _rebuild(self) -> None:
        self._heap = [(at, sequence, key) for key, (at, sequence) in self._at.items()]
        heapq.heapify(self._heap)
