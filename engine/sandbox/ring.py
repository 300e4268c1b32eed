"""A bounded record that other threads append to while one reads it: the sandbox's exchanges and
deliveries, and the inspector's entries.

Design decisions:

* A ``Ring`` keeps the newest ``maxlen`` items, oldest first, dropping the oldest as new ones arrive
  (a ``deque`` with ``maxlen`` inside), so a sandbox served for days holds what it held after its
  first ``maxlen`` calls.
* The writers (the served loop, an in-process engine on the same sandbox in another thread, a
  blocking ``TestClock.advance``) append while a reader (``GET /sandbox/exchanges``, the inspector,
  a test) walks the record. A bare deque raises "deque mutated during iteration" when an append
  lands between two steps of a reader's Python loop, and a full one has rotated under it. So every
  change takes ``lock``, and every walk (``for``, ``list()``, ``reversed``, ``==``, unpacking) is of
  a copy taken under it (``snapshot``): the record as it was at one moment. A copy is at most
  ``maxlen`` references.
* The lock is a leaf: it is held for an append, a copy or a resize only, in synchronous code, never
  across an ``await`` and never while taking another lock, so it cannot deadlock with the store's
  and the outbox's locks whichever of those a caller holds.
* ``resize`` changes the bound in place, under the lock: the owner never swaps in a new ring that a
  writer which had already looked up the old one would append to, and lose.
* Not a ``deque`` subclass: a deque's other methods walk or change it without the lock. What a ring
  offers is what is safe: ``append``, ``clear``, ``len``, indexing, walking and comparing. It is
  equal to a list holding the same items (``sandbox.exchanges == []`` reads well in tests).
"""

from __future__ import annotations

import collections
from typing import Generic, Iterable, Iterator, Optional, TypeVar

from engine import forksafe

T = TypeVar("T")


class Ring(Generic[T]):
    """The newest ``maxlen`` items, oldest first; safe to walk while other threads append."""

    def __init__(self, items: Iterable[T] = (), maxlen: Optional[int] = None) -> None:
        self.lock = forksafe.lock()
        self._items: collections.deque[T] = collections.deque(items, maxlen)

    @property
    def maxlen(self) -> Optional[int]:
        return self._items.maxlen

    def resize(self, maxlen: int) -> None:
        """Keep at most ``maxlen`` items from now on: the newest that fit stay."""
        with self.lock:
            self._items = collections.deque(self._items, maxlen)

    def append(self, item: T) -> None:
        with self.lock:
            self._items.append(item)

    def clear(self) -> None:
        with self.lock:
            self._items.clear()

    def snapshot(self) -> list[T]:
        """Every item held now, oldest first (a copy: later appends do not show in it)."""
        with self.lock:
            return list(self._items)

    def __iter__(self) -> Iterator[T]:
        return iter(self.snapshot())

    def __reversed__(self) -> Iterator[T]:
        return reversed(self.snapshot())

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: int) -> T:
        with self.lock:
            return self._items[index]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Ring):
            return self.snapshot() == other.snapshot()
        return isinstance(other, list) and self.snapshot() == other

    __hash__ = None  # type: ignore[assignment]  # mutable, like list and deque

    def __repr__(self) -> str:
        return f"Ring({self.snapshot()!r}, maxlen={self.maxlen})"
