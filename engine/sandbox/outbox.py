"""Callbacks waiting to be delivered, retried on WeChat Pay's schedule in the sandbox's business time.

Design decisions:

* A ``Callback`` keeps the envelope body (its resource already encrypted under the APIv3 key) and
  every attempt: the business time, the receiver's status (0 = no answer) and why no answer came.
  Each attempt is signed afresh with the wire clock, as WeChat Pay re-sends the same notification
  id with a new signature.
* The schedule is WeChat Pay's (15 s, 15 s, 30 s, 3 m, 10 m, 20 m, 30 m, 30 m, 30 m, 60 m, 3 h, 3 h,
  3 h, 6 h, 6 h after each failure: one first attempt and 15 retries, 24 h 4 m in all), counted on
  the business clock: with a running clock the retries happen in real time, with a test clock
  ``advance`` walks through them without waiting. 200 and 204 acknowledge; anything else retries.
* The outbox decides *when*; sending is one injectable coroutine (``post``), aiohttp by default, so
  the only network I/O of a stateful sandbox is this one place.
* Due callbacks are claimed under a lock before they are sent, so a served sandbox's ticker and a
  blocking ``advance`` from another thread never send the same attempt twice.
* Pending callbacks are kept in a ``Schedule`` by their next attempt, so a tick touches the
  callbacks due, never the delivered ones; ``pending(ref)`` tells the object store which objects a
  callback still pins (``engine.sandbox.objects.Pins``), by the object's ``Record.pin``. A callback
  with no pin (a sample of the event catalogue, about no object) is filed under none: it used to
  be filed under its ``ref``, ``event/NAME``, and once done the store noted a freed key naming no
  object, one per event type, kept until some later eviction. A callback saved before pins had a
  scope has none either: its ``ref`` (kind/number) never matched a record's pin (kind/scope/number),
  so filing it under that pinned nothing and, likewise, only left such a key.
* The outbox is bounded by its own ``limit`` (the sandbox's ``callback_limit``, by default twice
  its ``object_limit``: one object can have several callbacks pending at once, a contract's signing
  and termination, a refund's ABNORMAL and then SUCCESS, and triggered samples have no object).
  Past it, callbacks that finished (delivered or given up) are pruned, oldest finished first.
* A pending callback is never dropped to make room: it ends only when acknowledged, when its
  retries run out (WeChat Pay's 24 hours, on the business clock), or when the object it is about is
  evicted (``give_up``). When every callback held is pending, a new one is refused
  (``check_room``, ``enqueue``: ``RefusedError`` 429 ``RATELIMIT_EXCEEDED``, naming the limit) and
  nothing is added; the world asks before it changes anything, so the action that would have sent
  it is refused whole. Memory stays bounded whatever a client does: at most ``limit`` callbacks,
  or after a restart or a lowered limit what was already held, never more.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any, Awaitable, Callable, Optional, Sequence

import aiohttp
import attrs

from engine import forksafe
from engine.sandbox import notify
from engine.sandbox.objects import RefusedError
from engine.sandbox.schedule import Schedule
from engine.wire import RawResponse

Sign = Callable[[bytes], RawResponse]
Post = Callable[[str, RawResponse], Awaitable[tuple[int, str]]]
ACKNOWLEDGED = (200, 204)
DEFAULT_CALLBACK_LIMIT = 20_000  # the sandbox passes its callback_limit (2 x object_limit unless set)


@attrs.define
class Attempt:
    at: float
    status: int
    error: str = ""


@attrs.define
class Callback:
    """One notification on its way to a merchant's notify_url."""

    id: str
    event_type: str
    ref: str  # the object it is about ("order/T1"), or "event/NAME" for a sample of the event catalogue
    url: str = attrs.field(repr=False)
    body: str = attrs.field(repr=False)  # the envelope JSON: the resource inside is AEAD ciphertext
    created_at: float
    next_at: Optional[float]
    attempts: list[Attempt] = attrs.field(factory=list)
    claimed: bool = attrs.field(default=False, repr=False)
    pin: str = attrs.field(default="", repr=False)  # the object's Record.pin (kind/scope/number); "": none

    @property
    def state(self) -> str:
        if self.attempts and self.attempts[-1].status in ACKNOWLEDGED:
            return "delivered"
        return "pending" if self.next_at is not None else "gave_up"


class Outbox:
    """Every callback of one sandbox, delivered when due."""

    def __init__(
        self,
        sign: Sign,
        schedule: Sequence[float] = notify.REAL_SCHEDULE,
        post: Optional[Post] = None,
        limit: int = DEFAULT_CALLBACK_LIMIT,
    ):
        self.sign = sign
        self.schedule = tuple(schedule)
        self.post = post
        self._limit = limit
        self.version = 0
        self.pruned = 0  # finished callbacks dropped to stay within the limit
        self._callbacks: dict[str, Callback] = {}  # by id, in the order they were queued
        self._finished: dict[str, None] = {}  # delivered or given up, in the order they finished
        self._due: Schedule[str] = Schedule()  # pending, by next attempt (claimed ones are out of it)
        self._about: dict[str, dict[str, None]] = {}  # ref -> ids of the pending callbacks about it
        # Told when the last pending callback about an object finishes (the store evicts it sooner).
        self.on_unpinned: Optional[Callable[[str], None]] = None
        self._lock = forksafe.lock()

    @property
    def limit(self) -> int:
        """The most callbacks held; setting it prunes finished ones down to the new limit (pending
        ones beyond it stay, and new ones are refused until enough of them finish)."""
        return self._limit

    @limit.setter
    def limit(self, limit: int) -> None:
        with self._lock:
            self._limit = limit
            self._prune()

    @property
    def lock(self) -> threading.Lock:
        """Held by every change (not reentrant; the order is the store's lock, then this one)."""
        return self._lock

    def check_room(self) -> None:
        """``RefusedError`` 429 when one more pending callback would not fit; None when it would."""
        with self._lock:
            self._refuse_if_full(replacing=None)

    def _refuse_if_full(self, replacing: Optional[Callback]) -> None:
        pending = len(self._callbacks) - len(self._finished)
        if replacing is not None and replacing.next_at is not None:
            pending -= 1  # the same notification again takes its own place
        if pending >= self._limit:
            raise RefusedError(429, "RATELIMIT_EXCEEDED", self._full(pending))

    def _full(self, pending: int) -> str:
        return (
            f"the sandbox holds {pending} callbacks still being retried, its callback limit: "
            "acknowledge them, let their retries run out (advance the clock 25h), or raise the limit "
            "(callback_limit, wechatpay sandbox serve --callback-limit)"
        )

    @property
    def callbacks(self) -> list[Callback]:
        """Every callback held, oldest first (a copy)."""
        return list(self._callbacks.values())

    def enqueue(self, url: str, body: bytes, event_type: str, ref: str, now: float, pin: str = "") -> Callback:
        """Queue a callback, due now; ``RefusedError`` 429 (nothing queued) when the outbox is full."""
        callback = Callback(_envelope_id(body), event_type, ref, url, body.decode("utf-8"), now, now, pin=pin)
        with self._lock:
            self._refuse_if_full(replacing=self._callbacks.get(callback.id))
            self._add(callback)
            self._prune()
            self.version += 1
        return callback

    def _add(self, callback: Callback) -> None:
        if callback.id in self._callbacks:  # the same notification again: it takes the old one's place
            self._forget(self._callbacks[callback.id])
        self._callbacks[callback.id] = callback
        if callback.next_at is None:
            self._finished[callback.id] = None
        else:
            self._due.set(callback.id, callback.next_at)
            if callback.pin:  # one that pins no object files no key: the store is told nothing about it
                self._about.setdefault(callback.pin, {})[callback.id] = None

    def _forget(self, callback: Callback) -> None:
        self._unpend(callback)
        self._callbacks.pop(callback.id, None)
        self._finished.pop(callback.id, None)

    def _unpend(self, callback: Callback) -> None:
        self._due.discard(callback.id)
        ids = self._about.get(callback.pin)
        if ids is not None:
            ids.pop(callback.id, None)
            if not ids:
                del self._about[callback.pin]
                if self.on_unpinned is not None:
                    self.on_unpinned(callback.pin)

    def _finish(self, callback: Callback) -> None:
        """Delivered or given up: no further attempt, and it joins the pruning queue."""
        callback.next_at = None
        self._unpend(callback)
        self._finished[callback.id] = None

    def _prune(self) -> None:
        """Forget finished callbacks, oldest first, down to the limit; a pending one is never pruned."""
        while len(self._callbacks) > self._limit and self._finished:
            oldest = next(iter(self._finished))
            self._forget(self._callbacks[oldest])
            self.pruned += 1

    def get(self, callback_id: str) -> Optional[Callback]:
        return self._callbacks.get(callback_id)

    def pending(self, ref: str) -> bool:
        """Whether a callback about ``ref`` is still to be attempted (it pins the object)."""
        return ref in self._about

    def give_up(self, ref: str) -> None:
        """Stop retrying every callback about ``ref`` (its object is being evicted)."""
        with self._lock:
            for callback_id in list(self._about.pop(ref, ())):
                self._finish(self._callbacks[callback_id])
                self.version += 1

    def next_due(self) -> Optional[float]:
        with self._lock:  # peeking drops stale heap entries: a change, like any other
            return self._due.next_at()

    async def deliver_due(self, now: float) -> list[Callback]:
        """Attempt every callback due at business time ``now``; return those attempted."""
        due = self._claim(now)
        if not due:
            return []
        post = self.post or _AiohttpPost()
        attempted = 0
        try:
            for callback in due:
                status, error = await post(callback.url, self.sign(callback.body.encode("utf-8")))
                self._record(callback, Attempt(now, status, error))
                attempted += 1
        finally:
            self._release(due[attempted:])
            if isinstance(post, _AiohttpPost):
                await post.close()
        return due

    def _claim(self, now: float) -> list[Callback]:
        with self._lock:
            due = [self._callbacks[callback_id] for callback_id in self._due.pop_due(now)]
            for callback in due:
                callback.claimed = True
        return due

    def _release(self, unsent: list[Callback]) -> None:
        """Callbacks claimed but not attempted (the batch failed): due again as they were."""
        with self._lock:
            for callback in unsent:
                callback.claimed = False
                if callback.next_at is not None and self._holds(callback):
                    self._due.set(callback.id, callback.next_at)

    def _record(self, callback: Callback, attempt: Attempt) -> None:
        with self._lock:
            callback.attempts.append(attempt)
            callback.claimed = False
            self.version += 1
            if not self._holds(callback) or callback.id in self._finished:
                return  # given up or pruned while this attempt was on its way
            failures = len(callback.attempts)
            if attempt.status in ACKNOWLEDGED or failures > len(self.schedule):
                self._finish(callback)
            else:
                callback.next_at = attempt.at + self.schedule[failures - 1]
                self._due.set(callback.id, callback.next_at)

    def _holds(self, callback: Callback) -> bool:
        return self._callbacks.get(callback.id) is callback

    def clear(self) -> None:
        with self._lock:
            for index in (self._callbacks, self._finished, self._about):
                index.clear()
            self._due.clear()
            self.version += 1

    def dump(self) -> list[dict[str, Any]]:
        return [attrs.asdict(c, filter=lambda a, _: a.name != "claimed") for c in self.callbacks]

    def load(self, rows: list[dict[str, Any]]) -> None:
        with self._lock:
            for row in rows:
                attempts = [Attempt(**a) for a in row.get("attempts", [])]
                self._add(Callback(**{**row, "attempts": attempts}))
            self._prune()
            self.version += 1


class _AiohttpPost:
    """The default sender: one aiohttp session for a batch of attempts."""

    def __init__(self) -> None:
        self._session: Optional[aiohttp.ClientSession] = None

    async def __call__(self, url: str, notification: RawResponse) -> tuple[int, str]:
        if self._session is None:
            self._session = notify.delivery_session()
        return await notify.post_once(self._session, url, notification)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def _envelope_id(body: bytes) -> str:
    import json

    try:
        return str(json.loads(body)["id"])
    except (ValueError, KeyError, TypeError):
        return str(uuid.uuid4())
