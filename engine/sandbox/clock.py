"""The sandbox's test clock: business time that moves when told to, and drives what falls due.

Design decisions:

* Two times, like Stripe's test clocks: the *wire* time (what signatures, ``Wechatpay-Timestamp``
  headers and the 5-minute windows use) and the *business* time (when an unpaid order expires, an
  unconfirmed transfer is cancelled, a certificate retires, a callback is retried). Advancing moves
  business time only, so a client signing with its own clock keeps being accepted after the
  sandbox has jumped two hours ahead. Calling the clock returns wire time, so the same object can
  be handed to an ``Engine`` (``Engine.sandbox(clock=TestClock(...))``); ``now()`` is business
  time: wire time plus every advance.
* ``TestClock()`` runs with the real clock (business time = real time + offset: what ``wechatpay
  sandbox serve`` uses); ``TestClock(start=...)`` is frozen at ``start`` for deterministic tests.
* Advancing walks through every moment something falls due, in order, and lets each subscriber act
  at that moment (``on_time``): a callback retried 15 s, 30 s, 60 s ... after its first attempt is
  attempted at each of those business times, with no real waiting. Subscribers are the sandboxes
  built with this clock; they say when they next need time (``next_due``).
* ``advance`` is the blocking form (it runs the deliveries on a private event loop) and refuses to
  run inside a running loop, where it would block the receiver; there, ``await aadvance(...)``.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Callable, Optional, Protocol

from engine import forksafe
from engine.errors import UsageError

MAX_STEPS = 100_000  # a subscriber that keeps asking for the present is a bug: stop, do not spin
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class Subscriber(Protocol):
    def next_due(self) -> Optional[float]:
        """The business time of the next thing that falls due, or None."""

    async def on_time(self, now: float) -> None:
        """Business time is now ``now``: act on whatever fell due."""


class TestClock:
    """An injectable clock whose business time advances on demand (``__call__`` is wire time)."""

    __test__ = False  # not a pytest test class, whatever its name

    def __init__(self, start: Optional[float] = None, *, base: Callable[[], float] = time.time) -> None:
        self._base: Callable[[], float] = base if start is None else (lambda: float(start))
        self._offset = 0.0
        self._subscribers: list[Subscriber] = []
        self._lock = forksafe.lock()

    def __call__(self) -> float:
        """Wire time: what signatures carry (unaffected by ``advance``)."""
        return self._base()

    def now(self) -> float:
        """Business time: wire time plus every advance."""
        return self._base() + self._offset

    @property
    def offset(self) -> float:
        """Seconds business time runs ahead of wire time."""
        return self._offset

    @offset.setter
    def offset(self, seconds: float) -> None:
        self._offset = float(seconds)

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    def advance(self, seconds: float) -> None:
        """Move business time ``seconds`` ahead, acting on everything due on the way (blocking)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            asyncio.run(self.aadvance(seconds))
            return
        raise UsageError("TestClock.advance() blocks; inside a running event loop use: await clock.aadvance(seconds)")

    async def aadvance(self, seconds: float) -> None:
        """Move business time ``seconds`` ahead, stopping at each due moment on the way."""
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds < 0:
            raise UsageError(f"a test clock only moves forward: seconds must be a number >= 0, got {seconds!r}")
        final = self._offset + seconds  # exactly this much ahead at the end, however long the walk takes
        for _ in range(MAX_STEPS):
            moment = self._next_due(self._base() + final)
            if moment is None:
                break
            self._move_to(moment, final)
            await self._tick()
        else:
            raise UsageError(f"more than {MAX_STEPS} due moments while advancing: a subscriber never settles")
        with self._lock:
            self._offset = max(self._offset, final)
        await self._tick()

    async def tick(self) -> None:
        """Let every subscriber act on what is due now (the served sandbox calls this periodically)."""
        await self._tick()

    def _next_due(self, target: float) -> Optional[float]:
        due = [t for s in self._subscribers if (t := s.next_due()) is not None and t <= target]
        return min(due) if due else None

    def _move_to(self, moment: float, final: float) -> None:
        with self._lock:
            self._offset = min(final, max(self._offset, moment - self._base()))

    async def _tick(self) -> None:
        for subscriber in list(self._subscribers):
            await subscriber.on_time(self.now())

    def __repr__(self) -> str:
        return f"<TestClock offset={self._offset:.0f}s>"


def parse_duration(text: str) -> float:
    """``"90"``, ``"15s"``, ``"2h"``, ``"1.5d"`` -> seconds; a ``UsageError`` naming the text otherwise."""
    match = _DURATION.match(str(text))
    if match is None:
        raise UsageError(f"not a duration: {text!r} (use e.g. 90, 15s, 10m, 2h, 1d)")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def as_test_clock(clock: Callable[[], float]) -> TestClock:
    """The clock itself when it is a ``TestClock``; else a test clock running on it."""
    return clock if isinstance(clock, TestClock) else TestClock(base=clock)
