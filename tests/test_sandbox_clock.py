"""The test clock: business time moves on demand and drives expiry, cancellation, certificates and retries."""

from __future__ import annotations

import time
from typing import Any, AsyncIterator

import pytest
from aiohttp import web
from conftest import START
from test_sandbox_objects import JSAPI, TRANSFER, TRANSFER_BILL, order, query, refund

from engine import Engine, Notification, UsageError
from engine.sandbox import notify
from engine.sandbox.clock import TestClock, parse_duration


def test_an_unpaid_order_expires_to_closed_after_two_hours(timed: Engine, clock: TestClock) -> None:
    timed.call(JSAPI, order("T-1"))
    clock.advance(2 * 3600 - 1)
    assert query(timed, "T-1")["trade_state"] == "NOTPAY"
    clock.advance(1)
    answer = query(timed, "T-1")
    assert answer["trade_state"] == "CLOSED" and answer["trade_state_desc"] == "订单已关闭"
    (record,) = timed.emulator.world.store.find(("order",), "T-1")
    assert record.history == [(START, "NOTPAY"), (START + 7200, "CLOSED")]


def test_an_order_expires_at_its_own_time_expire_and_a_paid_one_never(timed: Engine, clock: TestClock) -> None:
    timed.call(JSAPI, order("T-2", time_expire="2027-01-15T16:10:00+08:00"))  # START + 600 s
    timed.call(JSAPI, order("T-3"))
    timed.emulator.world.pay("T-3")
    clock.advance(600)
    assert query(timed, "T-2")["trade_state"] == "CLOSED"
    clock.advance(86400)
    assert query(timed, "T-3")["trade_state"] == "SUCCESS"


def test_advancing_moves_business_time_not_wire_time(timed: Engine, clock: TestClock) -> None:
    clock.advance(3 * 86400)
    assert (clock(), clock.now(), clock.offset) == (START, START + 3 * 86400, 3 * 86400)
    assert timed.call(JSAPI, order("T-4")).status == 200  # signatures still carry the wire time


def test_an_unconfirmed_transfer_is_cancelled_after_a_day(timed: Engine, clock: TestClock) -> None:
    timed.call(TRANSFER, TRANSFER_BILL)
    clock.advance(24 * 3600)
    (record,) = timed.emulator.world.store.find(("transfer",), "B-1")
    assert record.state == "CANCELLED"
    (callback,) = timed.emulator.world.outbox.callbacks
    assert callback.event_type == "MCHTRANSFER.BILL.FINISHED" and callback.created_at == START + 86400


def test_a_refund_succeeds_after_the_refund_delay(timed: Engine, clock: TestClock) -> None:
    timed.call(JSAPI, order("T-5"))
    timed.emulator.world.pay("T-5")
    timed.call("v3.refund.domestic.refunds.post", refund("R-5", "T-5"))
    clock.advance(timed.emulator.world.refund_delay)
    assert timed.call("v3.refund.domestic.refunds._out_refund_no_.get", {"out_refund_no": "R-5"}).data["status"] == (
        "SUCCESS"
    )


def test_platform_certificates_rotate_with_an_overlap_and_then_expire(make_engine: Any) -> None:
    # Frozen at the present, not at START: the session identity's certificate was made by the wall
    # clock (valid from a day before it was made), so a clock frozen at START (2027-01-15) would
    # find it not yet valid, and this test would fail on every day after 2027-01-16.
    clock = TestClock(start=time.time())
    engine = make_engine(clock=clock, mode="certificate", platform_certificates=[])
    engine.call(JSAPI, order("T-6"))  # downloads the certificate it verifies with
    sandbox = engine.emulator
    (first,) = sandbox.certificates()
    expiry = first.not_valid_after_utc.timestamp()
    overlap = sandbox.world.certificate_overlap
    clock.advance(expiry - overlap - clock.now() - 1)
    assert len(sandbox.certificates()) == 1
    clock.advance(1)
    old, new = sandbox.certificates()  # WeChat Pay lists both during the overlap
    assert old is first and sorted(engine.download_certificates()) == sorted(
        [f"{c.serial_number:X}" for c in (old, new)]
    )
    clock.advance(overlap)
    assert sandbox.certificates() == [new]
    answer = engine.call(JSAPI, order("T-7"))
    assert answer.verified_with == f"{new.serial_number:X}"


def test_advancing_refuses_to_go_back_and_to_block_a_running_loop(clock: TestClock) -> None:
    with pytest.raises(UsageError, match="only moves forward"):
        clock.advance(-1)
    with pytest.raises(UsageError, match="only moves forward"):
        clock.advance("1")  # type: ignore[arg-type]
    assert parse_duration("2h") == 7200 and parse_duration("15s") == 15 and parse_duration("90") == 90
    with pytest.raises(UsageError, match="not a duration"):
        parse_duration("two hours")


async def test_advance_inside_a_running_loop_says_to_await(clock: TestClock) -> None:
    with pytest.raises(UsageError, match=r"await clock\.aadvance"):
        clock.advance(1)


# -- callbacks on the retry schedule ------------------------------------------------------------


class Receiver:
    """The merchant's notify_url: the engine's own receiver, failing the first ``failures`` times."""

    def __init__(self, engine: Engine, failures: int) -> None:
        self.engine = engine
        self.failures = failures
        self.verified: list[Notification] = []

    def handle(self, notification: Notification) -> None:
        self.verified.append(notification)
        if self.failures:
            self.failures -= 1
            raise RuntimeError("the merchant's handler is down")


@pytest.fixture
async def receiver(timed: Engine) -> AsyncIterator[tuple[Receiver, str]]:
    receiver = Receiver(timed, failures=0)
    app = web.Application()
    app.router.add_post("/notify", timed.notification_handler(receiver.handle))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield receiver, f"http://127.0.0.1:{port}/notify"
    await runner.cleanup()


def offsets(schedule: tuple[float, ...], count: int) -> list[float]:
    moments = [0.0]
    for wait in schedule[: count - 1]:
        moments.append(moments[-1] + wait)
    return moments


async def test_a_callback_walks_the_whole_retry_schedule_in_seconds(timed: Engine, clock: TestClock, receiver) -> None:
    handler, url = receiver
    handler.failures = 100  # never acknowledged
    await timed.acall(JSAPI, order("T-8", notify_url=url))
    timed.emulator.world.pay("T-8")
    began = time.monotonic()
    await clock.aadvance(25 * 3600)
    (callback,) = timed.emulator.world.outbox.callbacks
    assert [a.at - START for a in callback.attempts] == offsets(notify.REAL_SCHEDULE, 16)
    assert offsets(notify.REAL_SCHEDULE, 16)[-1] == 24 * 3600 + 4 * 60  # 24 h 4 m, as WeChat Pay documents
    assert {a.status for a in callback.attempts} == {500} and callback.state == "gave_up"
    assert len({n.id for n in handler.verified}) == 1 and len(handler.verified) == 16  # one id, verified each time
    assert time.monotonic() - began < 30


async def test_a_callback_stops_once_acknowledged(timed: Engine, clock: TestClock, receiver) -> None:
    handler, url = receiver
    handler.failures = 3
    await timed.acall(JSAPI, order("T-9", notify_url=url))
    timed.emulator.world.pay("T-9")
    await clock.aadvance(3600)
    (callback,) = timed.emulator.world.outbox.callbacks
    assert [a.at - START for a in callback.attempts] == [0, 15, 30, 60]
    assert [a.status for a in callback.attempts] == [500, 500, 500, 204] and callback.state == "delivered"
    resource = handler.verified[-1].resource
    assert handler.verified[-1].event_type == "TRANSACTION.SUCCESS"
    assert (
        resource["out_trade_no"] == "T-9" and resource["trade_state"] == "SUCCESS" and resource["amount"]["total"] == 1
    )


async def test_a_callback_to_nowhere_records_why_no_answer_came(timed: Engine, clock: TestClock) -> None:
    await timed.acall(JSAPI, order("T-10", notify_url="http://127.0.0.1:9/closed"))
    timed.emulator.world.pay("T-10")
    await clock.aadvance(0)
    (callback,) = timed.emulator.world.outbox.callbacks
    (attempt,) = callback.attempts
    assert attempt.status == 0 and "Cannot connect" in attempt.error and callback.next_at == START + 15
