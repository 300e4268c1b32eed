"""The sandbox stays bounded: finished callbacks are pruned, and ticks touch only what is due."""

from __future__ import annotations

from engine.sandbox.outbox import Outbox
from engine.sandbox.schedule import Schedule
from engine.wire import Headers, RawResponse

START = 1_800_000_000.0


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
