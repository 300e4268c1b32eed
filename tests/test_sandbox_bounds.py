"""The sandbox stays bounded: finished callbacks are pruned, and ticks touch only what is due."""

from __future__ import annotations

import collections
from typing import Any

import pytest
from test_sandbox_objects import JSAPI, order, query

from engine import Engine
from engine.sandbox.clock import TestClock
from engine.sandbox.objects import ObjectStore, Record
from engine.sandbox.outbox import Outbox
from engine.sandbox.schedule import Schedule
from engine.wire import Headers, RawResponse

START = 1_800_000_000.0


@pytest.fixture
def clock() -> TestClock:
    return TestClock(start=START)


@pytest.fixture
def timed(make_engine: Any, clock: TestClock) -> Engine:
    return make_engine(clock=clock)


class Receiver:
    """An outbox ``post`` that answers every attempt with ``status`` and counts them."""

    def __init__(self, status: int) -> None:
        self.status = status
        self.attempts = 0

    async def __call__(self, url: str, notification: RawResponse) -> tuple[int, str]:
        self.attempts += 1
        return self.status, ""


def _signed(body: bytes) -> RawResponse:
    return RawResponse(200, Headers({}), body)


# -- ticks -------------------------------------------------------------------------------------


class CountingDueAt:
    """Stands in for ``Record.due_at`` (a slot) and counts, per number, how often it is read."""

    def __init__(self, slot: Any) -> None:
        self.slot = slot
        self.reads: collections.Counter[str] = collections.Counter()

    def __get__(self, record: Any, owner: Any = None) -> Any:
        if record is None:
            return self
        self.reads[record.number] += 1
        return self.slot.__get__(record, owner)

    def __set__(self, record: Any, value: Any) -> None:
        self.slot.__set__(record, value)


def test_a_tick_visits_only_what_fell_due(timed: Engine, clock: TestClock, monkeypatch: pytest.MonkeyPatch) -> None:
    world = timed.emulator.world
    world.outbox.post = Receiver(204)
    for n in range(40):
        timed.call(JSAPI, order(f"T-{n}"))
        world.pay(f"T-{n}")  # final; its NOTPAY expiry two hours ahead is now stale
    timed.call(JSAPI, order("LATE"))
    clock.advance(0)  # every callback delivered
    counting = CountingDueAt(Record.__dict__["due_at"])
    monkeypatch.setattr(Record, "due_at", counting)
    iterations = []
    monkeypatch.setattr(ObjectStore, "__iter__", lambda store: iterations.append(store) or iter(()))
    clock.advance(2 * 3600)  # LATE expires; the paid orders' stale expiries fall due at the same moment
    assert set(counting.reads) == {"LATE"} and iterations == []
    assert world.outbox.next_due() is None and world.store.next_due() is None
    monkeypatch.undo()
    assert query(timed, "LATE")["trade_state"] == "CLOSED"


def test_rescheduling_forever_does_not_grow_the_schedule() -> None:
    schedule: Schedule[str] = Schedule()
    for n in range(10_000):
        schedule.set("same", float(n))
        schedule.set(f"gone-{n}", float(n))
        schedule.discard(f"gone-{n}")
    assert len(schedule) == 1 and schedule.entries < 200
    assert schedule.pop_due(5.0) == [] and schedule.pop_due(9_999.0) == ["same"] and schedule.next_at() is None


# -- the outbox --------------------------------------------------------------------------------


async def test_the_outbox_prunes_finished_callbacks_before_pending_ones() -> None:
    receivers = {"https://up.example": Receiver(204), "https://down.example": Receiver(500)}

    async def post(url: str, notification: RawResponse) -> tuple[int, str]:
        return await receivers[url](url, notification)

    outbox = Outbox(_signed, post=post, limit=4)
    for n in range(2):
        outbox.enqueue("https://down.example", b'{"id": "down-%d"}' % n, "E", f"order/D-{n}", START)
    for n in range(10):
        outbox.enqueue("https://up.example", b'{"id": "up-%d"}' % n, "E", f"order/U-{n}", START)
        await outbox.deliver_due(START)
        assert len(outbox.callbacks) <= 4
    assert [c.id for c in outbox.callbacks] == ["down-0", "down-1", "up-8", "up-9"]
    assert outbox.pending("order/D-0") and not outbox.pending("order/U-9")
    for n in range(2, 5):  # only pending ones from here: the oldest is given up to make room
        outbox.enqueue("https://down.example", b'{"id": "down-%d"}' % n, "E", f"order/D-{n}", START)
    assert [c.id for c in outbox.callbacks] == ["down-1", "down-2", "down-3", "down-4"]
    assert not outbox.pending("order/D-0") and outbox.pruned == 11
