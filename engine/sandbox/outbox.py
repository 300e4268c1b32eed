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
"""

from __future__ import annotations

import threading
import uuid
from typing import Any, Awaitable, Callable, Optional, Sequence

import aiohttp
import attrs

from engine.sandbox import notify
from engine.wire import RawResponse

Sign = Callable[[bytes], RawResponse]
Post = Callable[[str, RawResponse], Awaitable[tuple[int, str]]]
ACKNOWLEDGED = (200, 204)


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
    ref: str  # the object it is about ("order/T1"), or "" for a triggered sample
    url: str = attrs.field(repr=False)
    body: str = attrs.field(repr=False)  # the envelope JSON: the resource inside is AEAD ciphertext
    created_at: float
    next_at: Optional[float]
    attempts: list[Attempt] = attrs.field(factory=list)
    claimed: bool = attrs.field(default=False, repr=False)

    @property
    def state(self) -> str:
        if self.attempts and self.attempts[-1].status in ACKNOWLEDGED:
            return "delivered"
        return "pending" if self.next_at is not None else "gave_up"


class Outbox:
    """Every callback of one sandbox, delivered when due."""

    def __init__(self, sign: Sign, schedule: Sequence[float] = notify.REAL_SCHEDULE, post: Optional[Post] = None):
        self.sign = sign
        self.schedule = tuple(schedule)
        self.post = post
        self.callbacks: list[Callback] = []
        self.version = 0
        self._lock = threading.Lock()

    def enqueue(self, url: str, body: bytes, event_type: str, ref: str, now: float) -> Callback:
        callback = Callback(_envelope_id(body), event_type, ref, url, body.decode("utf-8"), now, now)
        with self._lock:
            self.callbacks.append(callback)
            self.version += 1
        return callback

    def get(self, callback_id: str) -> Optional[Callback]:
        return next((c for c in self.callbacks if c.id == callback_id), None)

    def next_due(self) -> Optional[float]:
        due = [c.next_at for c in self.callbacks if c.next_at is not None and not c.claimed]
        return min(due) if due else None

    async def deliver_due(self, now: float) -> list[Callback]:
        """Attempt every callback due at business time ``now``; return those attempted."""
        due = self._claim(now)
        if not due:
            return []
        post = self.post or _AiohttpPost()
        try:
            for callback in due:
                status, error = await post(callback.url, self.sign(callback.body.encode("utf-8")))
                self._record(callback, Attempt(now, status, error))
        finally:
            if isinstance(post, _AiohttpPost):
                await post.close()
        return due

    def _claim(self, now: float) -> list[Callback]:
        with self._lock:
            due = [c for c in self.callbacks if c.next_at is not None and c.next_at <= now and not c.claimed]
            for callback in due:
                callback.claimed = True
        return sorted(due, key=lambda c: c.next_at or 0.0)

    def _record(self, callback: Callback, attempt: Attempt) -> None:
        with self._lock:
            callback.attempts.append(attempt)
            failures = len(callback.attempts)
            if attempt.status in ACKNOWLEDGED or failures > len(self.schedule):
                callback.next_at = None
            else:
                callback.next_at = attempt.at + self.schedule[failures - 1]
            callback.claimed = False
            self.version += 1

    def dump(self) -> list[dict[str, Any]]:
        return [attrs.asdict(c, filter=lambda a, _: a.name != "claimed") for c in self.callbacks]

    def load(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            attempts = [Attempt(**a) for a in row.get("attempts", [])]
            self.callbacks.append(Callback(**{**row, "attempts": attempts}))
        self.version += 1


class _AiohttpPost:
    """The default sender: one aiohttp session for a batch of attempts."""

    def __init__(self) -> None:
        self._session: Optional[aiohttp.ClientSession] = None

    async def __call__(self, url: str, notification: RawResponse) -> tuple[int, str]:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=notify.ATTEMPT_TIMEOUT))
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
