"""Callbacks exactly once: claim before the handler, acknowledge after it, success for processed ids."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest

from engine import ConfigurationError, Engine, MemoryStore, Notification, Receiver, StoreError, TransportError
from engine.notifications import IN_FLIGHT_MESSAGE, STORE_DOWN_MESSAGE
from engine.stores import ACKNOWLEDGED, CLAIMED, IN_FLIGHT, Claim
from engine.wire import Headers

HOUR = 3600.0


class Clock:
    """An injectable clock: the engine, the store and the sandbox all read it."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _delivery(engine: Engine, notification: Any = None) -> tuple[dict, bytes]:
    notification = notification or engine.emulator.payment_succeeded("T-1", total=10)
    return dict(notification.headers.items()), notification.body


def _resent(engine: Engine, body: bytes) -> dict:
    """WeChat Pay re-sends the same envelope with a fresh signature, at the (moved) clock's time."""
    return dict(engine.emulator.sign_answer(200, body, Headers({})).headers.items())


async def test_a_duplicate_after_acknowledgement_gets_2xx_and_the_handler_ran_once(engine: Engine) -> None:
    headers, body = _delivery(engine)
    ran: list[str] = []
    first = await engine.handle_notification(headers, body, lambda n: ran.append(n.id))
    again = await engine.handle_notification(headers, body, lambda n: ran.append(n.id))
    assert (first.status, again.status, again.body) == (204, 204, b"") and len(ran) == 1


def test_the_sync_entry_point_has_the_same_semantics(engine: Engine) -> None:
    headers, body = _delivery(engine)
    ran: list[str] = []

    def handler(notification: Notification) -> str:
        ran.append(notification.id)
        return "a value WSGI code might return"  # ignored, never awaited

    assert engine.handle_notification_sync(headers, body, handler).status == 204
    assert engine.handle_notification_sync(headers, body, handler).status == 204
    assert len(ran) == 1


def test_the_sync_entry_point_runs_the_handler_in_the_calling_thread_outside_any_loop(engine: Engine) -> None:
    headers, body = _delivery(engine)
    seen: dict[str, Any] = {}

    def handler(notification: Notification) -> None:
        seen["thread"] = threading.get_ident()
        try:
            asyncio.get_running_loop()
            seen["loop"] = True
        except RuntimeError:
            seen["loop"] = False  # what Django's ORM needs

    assert engine.handle_notification_sync(headers, body, handler).status == 204
    assert seen == {"thread": threading.get_ident(), "loop": False}


async def test_async_handlers_with_return_values_are_awaited_and_the_value_ignored(engine: Engine) -> None:
    headers, body = _delivery(engine)

    async def handler(notification: Notification) -> dict:
        await asyncio.sleep(0)
        return {"ignored": True}

    assert (await engine.handle_notification(headers, body, handler)).status == 204
    # a sync handler returning a value from the async entry point: no "await" of a non-awaitable
    other = _delivery(engine, engine.emulator.payment_succeeded("T-2"))
    assert (await engine.handle_notification(*other, lambda n: 42)).status == 204


def test_an_async_handler_through_the_sync_entry_point(engine: Engine) -> None:
    headers, body = _delivery(engine)
    ran: list[str] = []

    async def handler(notification: Notification) -> None:
        await asyncio.sleep(0)
        ran.append(notification.id)

    assert engine.handle_notification_sync(headers, body, handler).status == 204 and len(ran) == 1


async def test_the_sync_entry_point_from_a_thread_that_runs_a_loop(engine: Engine) -> None:
    headers, body = _delivery(engine)
    ran: list[str] = []
    reply = engine.handle_notification_sync(headers, body, lambda n: ran.append(n.id))  # through the portal
    assert reply.status == 204 and len(ran) == 1


def test_resend_six_hours_later_does_not_run_the_handler_again_and_one_after_26_hours_does(make_engine) -> None:
    clock = Clock()
    engine = make_engine(clock=clock)
    headers, body = _delivery(engine)
    ran: list[float] = []
    handler = lambda n: ran.append(clock.now)  # noqa: E731
    assert engine.handle_notification_sync(headers, body, handler).status == 204
    clock.now += 6 * HOUR
    stale = engine.handle_notification_sync(headers, body, handler)  # the old signature: outside the window
    assert stale.status == 400 and json.loads(stale.body)["message"] == "时间戳超出允许范围"
    assert engine.handle_notification_sync(_resent(engine, body), body, handler).status == 204
    assert len(ran) == 1  # remembered across the 5-minute signature window
    clock.now += 20 * HOUR  # 26 h after the first delivery: beyond the 25 h memory
    assert engine.handle_notification_sync(_resent(engine, body), body, handler).status == 204
    assert len(ran) == 2


def test_the_acknowledgement_memory_is_configurable(make_engine) -> None:
    clock = Clock()
    engine = make_engine(clock=clock, notification_ttl=2 * HOUR)
    headers, body = _delivery(engine)
    ran: list[str] = []
    engine.handle_notification_sync(headers, body, lambda n: ran.append(n.id))
    clock.now += 3 * HOUR
    engine.handle_notification_sync(_resent(engine, body), body, lambda n: ran.append(n.id))
    assert len(ran) == 2
    with pytest.raises(ConfigurationError, match="notification_ttl must be a positive number"):
        make_engine(notification_ttl=0)


async def test_two_concurrent_deliveries_of_one_id_run_the_handler_once(engine: Engine) -> None:
    headers, body = _delivery(engine)
    entered, release = asyncio.Event(), asyncio.Event()
    ran: list[str] = []

    async def slow(notification: Notification) -> None:
        ran.append(notification.id)
        entered.set()
        await release.wait()

    first = asyncio.ensure_future(engine.handle_notification(headers, body, slow))
    await entered.wait()
    duplicate = await engine.handle_notification(headers, body, slow)  # arrives while the first is handled
    assert duplicate.status == 503 and json.loads(duplicate.body) == {"code": "FAIL", "message": IN_FLIGHT_MESSAGE}
    release.set()
    assert (await first).status == 204
    assert (await engine.handle_notification(headers, body, slow)).status == 204  # the re-send: success
    assert len(ran) == 1


def test_concurrent_deliveries_from_many_threads_run_the_handler_once(engine: Engine) -> None:
    headers, body = _delivery(engine)
    ran: list[str] = []
    gate = threading.Barrier(8)
    statuses: list[int] = []

    def handler(notification: Notification) -> None:
        ran.append(notification.id)
        threading.Event().wait(0.05)

    def deliver() -> None:
        gate.wait()
        statuses.append(engine.handle_notification_sync(headers, body, handler).status)

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(ran) == 1 and sorted(set(statuses)) in ([204], [204, 503]) and statuses.count(204) >= 1


async def test_a_failing_handler_releases_the_claim_so_the_next_delivery_runs_it(engine: Engine) -> None:
    headers, body = _delivery(engine)
    calls: list[int] = []

    def handler(notification: Notification) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("database down")

    assert (await engine.handle_notification(headers, body, handler)).status == 500
    assert (await engine.handle_notification(headers, body, handler)).status == 204
    assert (await engine.handle_notification(headers, body, handler)).status == 204
    assert len(calls) == 2


async def test_a_cancelled_handler_gives_the_id_back(engine: Engine) -> None:
    headers, body = _delivery(engine)
    started = asyncio.Event()

    async def hangs(notification: Notification) -> None:
        started.set()
        await asyncio.sleep(3600)

    task = asyncio.ensure_future(engine.handle_notification(headers, body, hangs))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    ran: list[str] = []
    assert (await engine.handle_notification(headers, body, lambda n: ran.append(n.id))).status == 204
    assert ran


def test_a_claim_left_by_a_dead_worker_expires(make_engine) -> None:
    clock = Clock()
    engine = make_engine(clock=clock, claim_ttl=60)
    headers, body = _delivery(engine)
    notification = engine.parse_notification(headers, body)
    claim = engine.runtime.run_sync(lambda: engine.notifications.claim(notification), 5)
    assert claim.status == CLAIMED  # ... and the worker holding it dies
    assert engine.handle_notification_sync(headers, body, lambda n: None).status == 503
    clock.now += 61
    ran: list[str] = []
    assert engine.handle_notification_sync(_resent(engine, body), body, lambda n: ran.append(n.id)).status == 204
    assert ran


def test_parse_is_the_low_level_step_and_acknowledge_the_public_one(engine: Engine) -> None:
    headers, body = _delivery(engine)
    notification = engine.parse_notification(headers, body)
    assert engine.parse_notification(headers, body).id == notification.id  # parsing remembers nothing
    engine.acknowledge_notification(notification)
    ran: list[str] = []
    assert engine.handle_notification_sync(headers, body, lambda n: ran.append(n.id)).status == 204
    assert ran == []  # acknowledged by hand: the receiver answers success without running it


async def test_aacknowledge(engine: Engine) -> None:
    headers, body = _delivery(engine)
    notification = await engine.aparse_notification(headers, body)
    await engine.aacknowledge_notification(notification)
    assert (await engine.notifications.claim(notification)).status == ACKNOWLEDGED


class BrokenStore(MemoryStore):
    """A store that fails on one operation, as a lost Redis would."""

    def __init__(self, failing: str) -> None:
        super().__init__()
        self.failing = failing

    def bind(self, namespace, runtime, clock):  # type: ignore[no-untyped-def]
        view = BrokenStore(self.failing)
        view.namespace, view.clock, view._state = namespace, clock, self._state
        return view

    async def claim(self, notification_id: str, ttl: float) -> Claim:
        if self.failing == "claim":
            raise StoreError("store redis://127.0.0.1:1/0: claim failed on it (ConnectionError)")
        return await super().claim(notification_id, ttl)

    async def acknowledge(self, claim: Claim, ttl: float) -> None:
        if self.failing == "acknowledge":
            raise StoreError("store redis://127.0.0.1:1/0: acknowledgement failed on it (ConnectionError)")
        await super().acknowledge(claim, ttl)


@pytest.mark.parametrize("failing", ["claim", "acknowledge"])
async def test_a_store_lost_mid_way_means_a_failure_reply_never_a_success(make_engine, failing: str) -> None:
    engine = make_engine(store=BrokenStore(failing))
    headers, body = _delivery(engine)
    ran: list[str] = []
    reply = await engine.handle_notification(headers, body, lambda n: ran.append(n.id))
    assert reply.status == 503 and json.loads(reply.body) == {"code": "FAIL", "message": STORE_DOWN_MESSAGE}
    assert ran == ([] if failing == "claim" else [ran[0]])  # the handler never runs without a claim


def test_an_unknown_store_scheme_is_a_configuration_error(make_engine) -> None:
    with pytest.raises(ConfigurationError, match=r"store: unknown scheme 'mongodb'.*memory://, redis://"):
        make_engine(store="mongodb://u:secret@127.0.0.1/x")
    with pytest.raises(ConfigurationError) as caught:
        make_engine(store="mongodb://u:secret@127.0.0.1/x")
    assert "secret" not in str(caught.value)


def test_an_unreachable_redis_at_startup_names_the_store_without_its_password(make_engine) -> None:
    from conftest import free_port

    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    with pytest.raises(StoreError) as caught:
        make_engine(store=url)
    assert isinstance(caught.value, TransportError)
    message = str(caught.value)
    assert "cannot reach" in message and "127.0.0.1" in message and "hunter2" not in message


def test_the_store_comes_from_the_environment(make_engine, monkeypatch) -> None:
    monkeypatch.setenv("WECHATPAY_STORE", "memory://")
    assert make_engine().store.description == "memory://"
    monkeypatch.setenv("WECHATPAY_STORE", "bogus://x")
    with pytest.raises(ConfigurationError, match="unknown scheme 'bogus'"):
        make_engine()


def test_one_memory_store_shared_by_two_merchants_keeps_them_apart(identity) -> None:
    shared = MemoryStore()
    first = Engine.sandbox(identity=identity, store=shared, load_entry_points=False)
    second = Engine.sandbox(identity=identity, store=shared, mchid="1900000110", load_entry_points=False)
    notification = first.parse_notification(*_delivery(first))
    first.acknowledge_notification(notification)
    claim = second.runtime.run_sync(lambda: second.notifications.claim(notification), 5)
    assert claim.status == CLAIMED  # the same id for another merchant is another notification
    assert first.runtime.run_sync(lambda: first.notifications.claim(notification), 5).status == ACKNOWLEDGED
    first.close()
    second.close()


def test_memory_store_forgets_expired_entries(make_engine) -> None:
    clock = Clock()
    engine = make_engine(clock=clock)
    for index in range(20):
        engine.handle_notification_sync(*_delivery(engine, engine.emulator.payment_succeeded(f"T-{index}")), print)
    assert len(engine.store) == 20
    clock.now += 26 * HOUR
    assert len(engine.store) == 0


async def test_the_receiver_answers_in_flight_duplicates_like_the_engine(engine: Engine) -> None:
    receiver = Receiver(engine)
    entered, release = asyncio.Event(), asyncio.Event()

    @receiver.on("TRANSACTION.SUCCESS")
    async def paid(notification: Notification) -> None:
        entered.set()
        await release.wait()

    headers, body = _delivery(engine)
    first = asyncio.ensure_future(receiver.handle(headers, body))
    await entered.wait()
    assert (await receiver.handle(headers, body)).status == 503
    release.set()
    assert (await first).status == 204
    assert IN_FLIGHT != CLAIMED


def test_store_errors_travel_across_processes() -> None:
    import pickle

    error = StoreError("store redis://:***@127.0.0.1:1/0: claim failed on it (ConnectionError)")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is StoreError and str(copy) == str(error) and isinstance(copy, TransportError)


# -- one flow, two drivers: handle and handle_sync run the same steps around the handler -----------


class Interrupted(BaseException):
    """Stands in for Ctrl-C or a worker's shutdown: not an Exception, so the handler did not "fail"."""


def _raises(exception: BaseException) -> Any:
    def handler(notification: Notification) -> None:
        raise exception

    return handler


async def _async_raises(notification: Notification) -> None:
    await asyncio.sleep(0)
    raise ConnectionError("database down")


HANDLERS: dict[str, Any] = {
    "returns": lambda n: "ignored",
    "async": lambda n: asyncio.sleep(0),
    "raises": _raises(ConnectionError("database down")),
    "async_raises": _async_raises,
    "interrupted": _raises(Interrupted()),
}


def _outcome(engine: Engine, deliver: Any, handler: Any) -> tuple[Any, str]:
    """The reply (or the BaseException that ended the delivery), and what the store holds for the id after."""
    headers, body = _delivery(engine)
    try:
        outcome: Any = deliver(engine, headers, body, handler)
        outcome = (outcome.status, outcome.body)
    except Interrupted:
        outcome = "re-raised"
    notification = engine.parse_notification(headers, body)
    return outcome, engine.runtime.run_sync(lambda: engine.notifications.claim(notification), 5).status


DRIVERS: dict[str, Any] = {
    "handle": lambda engine, h, b, handler: asyncio.run(engine.handle_notification(h, b, handler)),
    "handle_sync": lambda engine, h, b, handler: engine.handle_notification_sync(h, b, handler),
}


@pytest.mark.parametrize("kind", sorted(HANDLERS))
def test_both_entry_points_drive_the_one_flow_with_the_same_outcome(make_engine, kind, monkeypatch) -> None:
    """The claim/handler/acknowledge-or-release steps exist once (``_delivery``); each entry point only
    drives them. Same reply, same state left in the store, for a handler that returns, raises or is
    interrupted (the id is given back and the interruption goes on)."""
    from engine.notifications import NotificationReceiver

    flows: list[str] = []
    delivery = NotificationReceiver._delivery

    def recorded(self: NotificationReceiver, *args: Any) -> Any:
        flows.append(kind)
        return delivery(self, *args)

    monkeypatch.setattr(NotificationReceiver, "_delivery", recorded)
    outcomes = {name: _outcome(make_engine(), drive, HANDLERS[kind]) for name, drive in DRIVERS.items()}
    assert outcomes["handle"] == outcomes["handle_sync"]
    assert flows == [kind, kind]
    expected_state = ACKNOWLEDGED if kind in ("returns", "async") else CLAIMED  # CLAIMED: it was given back
    assert outcomes["handle"][1] == expected_state
