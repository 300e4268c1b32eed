"""The sandbox stays bounded: settled objects are evicted, finished callbacks pruned, ticks touch what is due."""

from __future__ import annotations

import collections
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import START
from test_sandbox_objects import BY_ID, CLOSE, JSAPI, MCHID, REFUND, order, query, refund, refused

from engine import ConfigurationError, Engine, RetryPolicy
from engine.sandbox import Sandbox, SandboxIdentity
from engine.sandbox.clock import TestClock
from engine.sandbox.objects import DEFAULT_OBJECT_LIMIT, KINDS, ObjectStore, Record, RefusedError
from engine.sandbox.outbox import Outbox
from engine.sandbox.schedule import Schedule
from engine.sandbox.world import AUTOMATIC
from engine.wire import Headers, RawResponse


def settle(engine: Engine, number: str) -> None:
    """A distinct order driven to a final state without a callback: created, then closed."""
    engine.call(JSAPI, order(number))
    engine.call(CLOSE, {"out_trade_no": number, "mchid": MCHID})


def numbers(engine: Engine) -> list[str]:
    return [record.number for record in engine.emulator.world.store]


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


# -- the object store --------------------------------------------------------------------------


def test_the_default_limit_and_a_bad_one(identity: SandboxIdentity) -> None:
    assert Sandbox(identity).object_limit == DEFAULT_OBJECT_LIMIT == 10_000
    with pytest.raises(ConfigurationError, match="object_limit must be a whole number >= 1, got 0"):
        Sandbox(identity, object_limit=0)


def test_settled_orders_are_evicted_oldest_first_within_the_limit(engine: Engine) -> None:
    engine.emulator.object_limit = 10
    for n in range(30):
        settle(engine, f"T-{n}")
        assert len(engine.emulator.world.store) <= 10
    assert numbers(engine) == [f"T-{n}" for n in range(20, 30)]
    assert engine.emulator.world.store.evicted == 20


def test_an_evicted_order_answers_as_an_unknown_one_and_its_number_is_free(engine: Engine) -> None:
    engine.emulator.object_limit = 2
    engine.call(JSAPI, order("T-0"))
    (record,) = engine.emulator.world.store.find(("order",), "T-0")
    transaction_id = record.fields["transaction_id"]
    engine.emulator.world.pay("T-0")
    engine.emulator.world.outbox.give_up(record.pin)  # its callback no longer pins it
    for n in range(1, 4):
        settle(engine, f"T-{n}")
    assert "T-0" not in numbers(engine)
    unknown = refused(lambda: query(engine, "NEVER"))
    evicted = refused(lambda: query(engine, "T-0"))
    assert (evicted.status, evicted.code, evicted.message) == (unknown.status, unknown.code, unknown.message)
    assert (evicted.status, evicted.code) == (404, "ORDER_NOT_EXIST")
    by_id = refused(lambda: engine.call(BY_ID, {"transaction_id": transaction_id, "mchid": MCHID}))
    assert (by_id.status, by_id.code) == (404, "ORDER_NOT_EXIST")
    no_order = refused(lambda: engine.call(REFUND, refund("R-0", "T-0")))
    assert (no_order.status, no_order.code) == (404, "RESOURCE_NOT_EXISTS")
    engine.call(JSAPI, order("T-0", total=7))  # other parameters: accepted as new, not "201 商户订单号重复"
    assert query(engine, "T-0")["amount"]["total"] == 7


def test_objects_in_flight_survive_eviction_pressure_and_a_full_store_refuses(engine: Engine) -> None:
    engine.emulator.object_limit = 3
    engine.call(JSAPI, order("KEEP"))  # NOTPAY: in flight until paid or expired
    for n in range(20):
        settle(engine, f"T-{n}")
    assert query(engine, "KEEP")["trade_state"] == "NOTPAY"
    assert numbers(engine) == ["KEEP", "T-18", "T-19"]
    engine.call(JSAPI, order("MORE-1"))
    engine.call(JSAPI, order("MORE-2"))  # takes the last settled one's place
    error = refused(lambda: engine.call(JSAPI, order("MORE-3"), retry=RetryPolicy.never()))
    assert (error.status, error.code) == (429, "RATELIMIT_EXCEEDED") and "object_limit" in error.message
    assert numbers(engine) == ["KEEP", "MORE-1", "MORE-2"]  # the refused one left nothing behind
    engine.call(CLOSE, {"out_trade_no": "MORE-1", "mchid": MCHID})
    assert engine.call(JSAPI, order("MORE-3")).status == 200  # room again: MORE-1 settled and was evicted


def test_a_pending_callback_keeps_its_object_until_delivered(engine: Engine) -> None:
    world = engine.emulator.world
    world.outbox.post = Receiver(204)
    engine.emulator.object_limit = 3
    engine.call(JSAPI, order("PAID"))
    world.pay("PAID")  # TRANSACTION.SUCCESS queued, not yet attempted
    for n in range(6):
        settle(engine, f"T-{n}")
    assert numbers(engine) == ["PAID", "T-4", "T-5"]  # the newer settled orders went first
    engine.emulator.time.advance(0)  # delivered
    settle(engine, "T-6")
    assert "PAID" not in numbers(engine)


def test_when_every_settled_object_is_pinned_the_oldest_goes_and_its_callback_is_given_up(engine: Engine) -> None:
    world = engine.emulator.world
    engine.emulator.object_limit = 2
    sent = {}
    for number in ("P-1", "P-2", "P-3"):
        engine.call(JSAPI, order(number))
        sent[number] = world.pay(number)  # each pinned by a callback nobody has attempted yet
    assert numbers(engine) == ["P-2", "P-3"]
    assert sent["P-1"] is not None and sent["P-1"].state == "gave_up" and sent["P-1"].attempts == []
    states = [(c.ref, c.state) for c in world.outbox.callbacks]  # within the callback limit (4): none pruned yet
    assert states == [("order/P-1", "gave_up"), ("order/P-2", "pending"), ("order/P-3", "pending")]


def test_a_kept_order_keeps_every_refund_and_they_leave_together(engine: Engine) -> None:
    world = engine.emulator.world
    world.outbox.post = Receiver(204)
    engine.emulator.object_limit = 4
    engine.call(JSAPI, order("O", total=100))
    world.pay("O")
    engine.call(REFUND, refund("R-1", "O", amount=60, total=100))
    world.settle_refund("R-1")
    engine.call(REFUND, refund("R-2", "O", amount=40, total=100))  # the order settles again after R-1
    world.settle_refund("R-2")
    engine.emulator.time.advance(0)  # every callback delivered: nothing pins them
    family = {"O", "R-1", "R-2"}
    for n in range(6):
        held = family & set(numbers(engine))
        assert held in (family, set()), f"after {n} fillers only {held} of the order and its refunds are held"
        if held:
            error = refused(lambda: engine.call(REFUND, refund("R-x", "O", amount=1, total=100)))
            assert "可退0分" in error.message  # what remains refundable still counts both refunds
        settle(engine, f"T-{n}")
    assert not family & set(numbers(engine))
    assert len(world.store) <= 4


def test_final_states_are_states_of_their_kind_and_never_time_out() -> None:
    for kind, spec in KINDS.items():
        assert spec.final and spec.final <= spec.states(), kind
        assert spec.initial not in spec.final, kind
        assert not {state for k, state in AUTOMATIC if k == kind} & spec.final, kind
        assert spec.parent is None or spec.parent[0] in KINDS, kind


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


async def test_the_outbox_prunes_finished_callbacks_and_refuses_rather_than_drop_a_pending_one() -> None:
    receivers = {"https://up.example": Receiver(204), "https://down.example": Receiver(500)}

    async def post(url: str, notification: RawResponse) -> tuple[int, str]:
        return await receivers[url](url, notification)

    outbox = Outbox(_signed, post=post, limit=4)
    for n in range(2):
        body = b'{"id": "down-%d"}' % n
        outbox.enqueue("https://down.example", body, "E", f"order/D-{n}", START, f"order/direct/D-{n}")
    for n in range(10):
        outbox.enqueue("https://up.example", b'{"id": "up-%d"}' % n, "E", f"order/U-{n}", START, f"order/direct/U-{n}")
        await outbox.deliver_due(START)
        assert len(outbox.callbacks) <= 4
    assert [c.id for c in outbox.callbacks] == ["down-0", "down-1", "up-8", "up-9"]
    assert outbox.pending("order/direct/D-0") and not outbox.pending("order/direct/U-9")
    for n in range(2, 4):  # each pending one takes a finished one's place
        outbox.enqueue("https://down.example", b'{"id": "down-%d"}' % n, "E", f"order/D-{n}", START)
    assert [c.id for c in outbox.callbacks] == ["down-0", "down-1", "down-2", "down-3"] and outbox.pruned == 10
    with pytest.raises(RefusedError) as refused:  # every one pending: the new one is refused, none dropped
        outbox.enqueue("https://down.example", b'{"id": "down-4"}', "E", "order/D-4", START)
    assert (refused.value.status, refused.value.code) == (429, "RATELIMIT_EXCEEDED")
    assert "4 callbacks still being retried" in refused.value.message and "callback_limit" in refused.value.message
    assert [c.id for c in outbox.callbacks] == ["down-0", "down-1", "down-2", "down-3"]
    assert all(c.state == "pending" for c in outbox.callbacks) and outbox.pruned == 10


# -- the state dir -----------------------------------------------------------------------------


def test_world_json_holds_what_is_kept_and_a_restart_restores_it(identity: SandboxIdentity, tmp_path: Path) -> None:
    clock = TestClock(start=START)
    first = Engine.sandbox(identity=identity, clock=clock, load_entry_points=False)
    world = first.emulator.world
    world.outbox.post = Receiver(204)
    first.emulator.object_limit = 4
    world.attach(tmp_path)
    with first:
        first.call(JSAPI, order("O", total=5))
        world.pay("O")
        first.call(REFUND, refund("R", "O", amount=2, total=5))  # PROCESSING: in flight for a minute
        first.call(JSAPI, order("LATE"))
        for n in range(5):
            settle(first, f"T-{n}")
        clock.advance(0)
    saved = json.loads((tmp_path / "world.json").read_text(encoding="utf-8"))
    assert [o["number"] for o in saved["objects"]] == ["O", "R", "LATE", "T-4"]
    second = Sandbox(identity, clock=TestClock(start=START), object_limit=3)  # restarted with a lower limit
    second.world.outbox.post = Receiver(204)
    second.world.attach(tmp_path)
    store = second.world.store
    assert [r.number for r in store] == ["O", "R", "LATE"]  # the settled T-4 went; the rest is in flight
    (loaded,) = store.find(("order",), "O")
    assert [r.number for r in store.children(loaded)] == ["R"]  # the refund found its order again
    backwards = ObjectStore()
    backwards.load(list(reversed(saved["objects"])))  # a refund read before its order still finds it
    assert [r.number for r in backwards.children(backwards.find(("order",), "O")[0])] == ["R"]
    second.time.advance(2 * 3600)  # the loaded schedule: the refund settles, LATE expires
    assert {r.number: r.state for r in store} == {"O": "REFUND", "R": "SUCCESS", "LATE": "CLOSED"}
    second.world.save()
    assert [o["number"] for o in json.loads((tmp_path / "world.json").read_text())["objects"]] == ["O", "R", "LATE"]


def test_a_slow_save_paces_the_tickers_next_ones_and_the_stop_saves_the_rest(
    identity: SandboxIdentity, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No timing: the clock that paces saves is a counter, so every save 'takes' one second."""
    from engine.sandbox import world as world_module

    ticks = iter(range(0, 10_000))
    monkeypatch.setattr(world_module, "_pace_clock", lambda: float(next(ticks)))
    clock = TestClock(start=START)
    engine = Engine.sandbox(identity=identity, clock=clock, load_entry_points=False)
    world = engine.emulator.world
    world.attach(tmp_path)

    def saved() -> list[str]:
        return [o["number"] for o in json.loads((tmp_path / "world.json").read_text(encoding="utf-8"))["objects"]]

    with engine:
        engine.call(JSAPI, order("FIRST"))
        clock.advance(0)  # the first save (1 s by the counter, over PACED_SAVE_SECONDS): the next waits 10 s
        assert saved() == ["FIRST"]
        engine.call(JSAPI, order("SECOND"))
        clock.advance(0)
        clock.advance(0)
        assert saved() == ["FIRST"]  # the ticker is paced: SECOND is held, not yet written
        for _ in range(10):
            clock.advance(0)  # the counter passes the 10 s
        assert saved() == ["FIRST", "SECOND"]
        engine.call(JSAPI, order("THIRD"))
        world.save()  # what the server's stop and the user's actions do: at once, whatever the pace
        assert saved() == ["FIRST", "SECOND", "THIRD"]


def test_a_restart_keeps_an_object_whose_callback_is_still_pending(identity: SandboxIdentity, tmp_path: Path) -> None:
    """Loading the objects trims to the limit: the callbacks must be loaded first to pin theirs."""
    first = Sandbox(identity, clock=TestClock(start=START))
    world = first.world
    world.attach(tmp_path)
    for number in ("A", "B"):
        record = world.store.create("order", "direct", number, {"transaction_id": f"tx-{number}"}, world.now)
        world.store.move(record, "CLOSED", world.now)
    (a,) = world.store.find(("order",), "A")
    url = "http://127.0.0.1:9/notify"
    world.outbox.enqueue(url, b'{"id":"EV-A"}', "TRANSACTION.CLOSED", a.ref, world.now, pin=a.pin)
    world.store.create("order", "direct", "C", {"transaction_id": "tx-C"}, world.now)  # in flight
    world.save()
    second = Sandbox(identity, clock=TestClock(start=START), object_limit=2)  # restarted with a lower limit
    second.world.attach(tmp_path)
    assert [r.number for r in second.world.store] == ["A", "C"]  # B went; A waits for its callback
    assert second.world.outbox.pending(a.pin)


def test_callbacks_pin_their_own_object_not_another_scope_with_the_same_number() -> None:
    """A direct and a partner order may share a number: one's callback neither pins nor gives up the other."""
    outbox = Outbox(lambda body: _signed(body), limit=10)
    store = ObjectStore(2, pins=outbox)
    direct = store.create("order", "direct", "K1", {"transaction_id": "tx-1"}, START)
    partner = store.create("order", "partner", "K1", {"transaction_id": "tx-2"}, START)
    store.move(partner, "CLOSED", START)
    url = "http://127.0.0.1:9/notify"
    outbox.enqueue(url, b'{"id":"EV-1"}', "TRANSACTION.SUCCESS", direct.ref, START, pin=direct.pin)
    store.create("order", "direct", "NEW", {"transaction_id": "tx-3"}, START)  # full: the settled partner order goes
    assert [(r.scope, r.number) for r in store] == [("direct", "K1"), ("direct", "NEW")]
    assert [c.state for c in outbox.callbacks] == ["pending"]  # the direct order's callback was not given up


def test_an_object_freed_behind_a_pinned_one_goes_before_anything_is_given_up(engine: Engine) -> None:
    """A, B and C all pinned when their turn came; C's callback is delivered later: C goes, not B."""
    world = engine.emulator.world

    class ByUrl:
        async def __call__(self, url: str, notification: RawResponse) -> tuple[int, str]:
            return (204 if url.endswith("/c") else 500), ""

    world.outbox.post = ByUrl()
    engine.emulator.object_limit = 3
    for number in ("A", "B", "C"):
        engine.call(JSAPI, order(number, notify_url=f"https://merchant.example/{number.lower()}"))
        world.pay(number)  # SUCCESS, its callback pending
    engine.call(JSAPI, order("D"))  # every settled one pinned: the oldest, A, is forced out
    assert numbers(engine) == ["B", "C", "D"]
    engine.emulator.time.advance(0)  # C's callback delivered, B's answered 500 (still being retried)
    engine.call(JSAPI, order("E"))
    assert numbers(engine) == ["B", "D", "E"]
    states = {c.ref: c.state for c in world.outbox.callbacks}
    assert states["order/B"] == "pending" and states["order/C"] == "delivered"


def test_a_sample_from_the_event_catalogue_pins_nothing(engine: Engine) -> None:
    """A triggered sample (an event type no modelled object sends) was filed under ``event/NAME``:
    pending, it "pinned" that name; done, the store was told ("event", NAME, "") was freed, a key that
    names no object, kept until some later eviction, one per event type triggered (98 of them)."""
    from engine.events import catalogue
    from engine.sandbox.triggers import event_types

    world = engine.emulator.world
    world.outbox.post = Receiver(204)
    told: list[str] = []
    tell_store = world.outbox.on_unpinned
    assert tell_store is not None
    world.outbox.on_unpinned = lambda pin: (told.append(pin), tell_store(pin))[-1]
    samples = [name for name in catalogue().names() if name not in event_types()][:5]
    for name in samples:
        world.trigger(name, None, "https://merchant.example/events")
    engine.call(JSAPI, order("T-1", notify_url="https://merchant.example/orders"))
    world.pay("T-1")  # a modelled callback, which does pin its order
    assert not any(world.outbox.pending(f"event/{name}") for name in samples)
    assert world.outbox.pending("order/direct/T-1")
    engine.emulator.time.advance(0)  # every callback delivered
    assert {c.state for c in world.outbox.callbacks} == {"delivered"} and len(world.outbox.callbacks) == 6
    assert told == ["order/direct/T-1"]


# -- a refused trigger leaves the store as it was ------------------------------------------------

DEAD_URL = "http://127.0.0.1:9/notify"  # nothing listens: every attempt fails, nothing is delivered


def held(world: Any) -> tuple[Any, ...]:
    """Everything a refused action must leave as it was: the objects, their count, the evictions, the callbacks."""
    callbacks = [(c.id, c.ref, c.state, len(c.attempts)) for c in world.outbox.callbacks]
    return json.dumps(world.store.dump(), sort_keys=True), len(world.store), world.store.evicted, callbacks


def _full_of_in_flight(engine: Engine) -> None:
    engine.emulator.object_limit = 2
    engine.call(JSAPI, order("OPEN-1"))
    engine.call(JSAPI, order("OPEN-2"))


def _room_for_one(engine: Engine) -> None:  # the throwaway order fits; its refund does not
    engine.emulator.object_limit = 2
    engine.call(JSAPI, order("OPEN-1"))


def _one_settled_to_evict(engine: Engine) -> None:  # the order would evict it; the refund then finds no room
    engine.emulator.object_limit = 2
    engine.call(JSAPI, order("OPEN-1"))
    settle(engine, "DONE-1")


def _outbox_full(engine: Engine) -> None:
    engine.emulator.callback_limit = 1
    engine.call(JSAPI, order("PAID", notify_url=DEAD_URL))
    engine.emulator.world.pay("PAID")  # its callback pending: the outbox is full


def _nothing(engine: Engine) -> None:
    pass


@pytest.mark.parametrize(
    ("prepare", "number", "url", "refusal"),
    [
        (_nothing, None, None, (400, "NO_URL")),
        (_full_of_in_flight, None, DEAD_URL, (429, "RATELIMIT_EXCEEDED")),
        (_room_for_one, None, DEAD_URL, (429, "RATELIMIT_EXCEEDED")),
        (_one_settled_to_evict, None, DEAD_URL, (429, "RATELIMIT_EXCEEDED")),
        (_outbox_full, None, DEAD_URL, (429, "RATELIMIT_EXCEEDED")),
        (_nothing, "NO-SUCH-REFUND", DEAD_URL, (404, "RESOURCE_NOT_EXISTS")),
    ],
    ids=["no-url", "full-of-in-flight", "room-for-one", "one-settled-to-evict", "outbox-full", "unknown-refund"],
)
@pytest.mark.parametrize("event", ["REFUND.SUCCESS", "REFUND.ABNORMAL", "REFUND.CLOSED"])
def test_a_refused_refund_trigger_leaves_the_store_as_it_was(
    engine: Engine, event: str, prepare: Any, number: Any, url: Any, refusal: tuple[int, str]
) -> None:
    world = engine.emulator.world
    prepare(engine)
    before = held(world)
    with pytest.raises(RefusedError) as refused:
        world.trigger(event, number, url)
    assert (refused.value.status, refused.value.code) == refusal
    if prepare in (_room_for_one, _one_settled_to_evict):  # one would fit, not the order and its refund
        assert "too few have settled to make room for 2 more" in refused.value.message
    assert held(world) == before


def test_a_refused_trigger_on_an_existing_refund_changes_nothing(engine: Engine) -> None:
    world = engine.emulator.world
    engine.call(JSAPI, order("T-1", total=2, notify_url=DEAD_URL))
    world.pay("T-1")
    engine.call(REFUND, refund("R-1", total=2))
    engine.call(REFUND, refund("R-2", total=2))
    world.settle_refund("R-1", "SUCCESS")
    before = held(world)
    with pytest.raises(RefusedError, match="refund/R-1 is SUCCESS: it cannot become CLOSED"):
        world.trigger("REFUND.CLOSED", "R-1", DEAD_URL)
    assert held(world) == before
    engine.emulator.callback_limit = 2  # the payment's and R-1's callbacks pending: no room for R-2's
    with pytest.raises(RefusedError, match="2 callbacks still being retried"):
        world.trigger("REFUND.CLOSED", "R-2", DEAD_URL)
    assert held(world) == before  # R-2 still PROCESSING, both callbacks still pending


def test_a_refused_refund_trigger_over_http_leaves_the_store_as_it_was(identity: SandboxIdentity) -> None:
    from test_sandbox_admin import post

    from engine.sandbox.server import ServerThread

    with ServerThread(Sandbox(identity, clock=TestClock(), object_limit=2)) as server:  # room for the order only
        world = server.sandbox.world
        world.store.create("order", "direct", "OPEN", {"transaction_id": "tx-open"}, world.now)
        before = held(world)
        status, answer = post(server, "/sandbox/triggers", {"event_type": "REFUND.SUCCESS", "forward_to": DEAD_URL})
        assert (status, answer["error"]["code"]) == (429, "RATELIMIT_EXCEEDED")
        assert "object_limit" in answer["error"]["message"] and held(world) == before


def test_a_refund_refused_for_a_full_store_leaves_its_order_evictable(engine: Engine) -> None:
    """The paid order's turn came while the refused refund was held: it must get its place back."""
    world = engine.emulator.world
    world.outbox.post = Receiver(204)
    engine.emulator.object_limit = 2
    engine.call(JSAPI, order("PAID"))
    world.pay("PAID")
    engine.emulator.time.advance(0)  # its callback delivered: the order is settled and free
    engine.call(JSAPI, order("OPEN"))  # in flight: the store is full
    assert (refused(lambda: engine.call(REFUND, refund("R-1", "PAID"))).status, numbers(engine)) == (
        429,
        ["PAID", "OPEN"],
    )
    assert engine.call(JSAPI, order("NEW")).status == 200  # the paid order was evicted to make room
    assert numbers(engine) == ["OPEN", "NEW"]


# -- the outbox's own limit ------------------------------------------------------------------------

REPROCESS = "v3.refund.domestic.refunds._refund_id_.apply_abnormal_refund.post"


def test_the_callback_limit_follows_the_object_limit_unless_set(identity: SandboxIdentity) -> None:
    sandbox = Sandbox(identity)
    assert sandbox.callback_limit == 2 * DEFAULT_OBJECT_LIMIT == sandbox.world.outbox.limit
    sandbox.object_limit = 5
    assert sandbox.callback_limit == 10 == sandbox.world.outbox.limit
    sandbox.callback_limit = 3
    sandbox.object_limit = 7
    assert sandbox.callback_limit == 3 == sandbox.world.outbox.limit
    sandbox.callback_limit = None  # follows the object limit again
    assert sandbox.callback_limit == 14 == sandbox.world.outbox.limit
    assert Sandbox(identity, object_limit=4, callback_limit=1).world.outbox.limit == 1
    for bad in (0, -1, True, 2.5):
        with pytest.raises(ConfigurationError, match=f"callback_limit must be a whole number >= 1, got {bad!r}"):
            Sandbox(identity, callback_limit=bad)  # type: ignore[arg-type]


def test_many_callbacks_for_few_objects_are_never_dropped_and_a_new_one_is_refused_whole(
    timed: Engine, clock: TestClock
) -> None:
    """Two objects, four callbacks (the derived limit): an order's payment, its refund's two ABNORMALs and a
    sample. The fifth is refused with nothing changed; a refund falling due by itself waits for room."""
    world = timed.emulator.world
    receiver = Receiver(500)
    world.outbox.post = receiver
    timed.emulator.object_limit = 2
    assert world.outbox.limit == 4
    timed.call(JSAPI, order("T-1", notify_url=DEAD_URL))
    world.pay("T-1")
    refund_id = timed.call(REFUND, {**refund("R-1"), "notify_url": DEAD_URL}).data["refund_id"]
    for _ in range(2):
        world.settle_refund("R-1", "ABNORMAL")
        timed.call(REPROCESS, {"refund_id": refund_id, "out_refund_no": "R-1", "type": "USER_BANK_CARD"})
    world.trigger("FAPIAO.ISSUED", None, DEAD_URL)  # a sample: no object behind it
    assert [c.event_type for c in world.outbox.callbacks] == [
        "TRANSACTION.SUCCESS",
        "REFUND.ABNORMAL",
        "REFUND.ABNORMAL",
        "FAPIAO.ISSUED",
    ]
    before = held(world)
    for act in (
        lambda: world.settle_refund("R-1", "SUCCESS"),
        lambda: world.trigger("FAPIAO.ISSUED", None, DEAD_URL),
        lambda: world.trigger("REFUND.SUCCESS", None, DEAD_URL),
        lambda: world.trigger("REFUND.CLOSED", "R-1", DEAD_URL),
    ):
        with pytest.raises(RefusedError, match="4 callbacks still being retried, its callback limit") as error:
            act()
        assert (error.value.status, error.value.code) == (429, "RATELIMIT_EXCEEDED")
        assert held(world) == before  # nothing half-done, and every pending callback is still pending
    assert all(c.state == "pending" for c in world.outbox.callbacks)

    clock.advance(world.refund_delay)  # R-1 falls due to SUCCESS: no room for its callback, so it waits
    (record,) = world.store.find(("refund",), "R-1")
    assert record.state == "PROCESSING" and record.due_at is not None and record.due_at > clock.now() - 1
    assert len(world.outbox.callbacks) == 4 and all(c.state == "pending" for c in world.outbox.callbacks)
    receiver.status = 204  # the merchant's receiver comes back
    clock.advance(3600)
    assert record.state == "SUCCESS"
    events = [(c.event_type, c.state) for c in world.outbox.callbacks]
    assert ("REFUND.SUCCESS", "delivered") in events and len(events) <= 4
    assert all(state == "delivered" for _, state in events)


def test_a_flood_of_triggered_samples_stays_within_the_callback_limit(engine: Engine) -> None:
    world = engine.emulator.world
    engine.emulator.callback_limit = 3
    refusals = 0
    for _ in range(50):
        try:
            world.trigger("FAPIAO.ISSUED", None, DEAD_URL)
        except RefusedError as error:
            refusals += error.status == 429
    assert len(world.outbox.callbacks) == 3 and refusals == 47


def test_a_lowered_callback_limit_prunes_finished_callbacks_only(engine: Engine) -> None:
    world = engine.emulator.world
    for _ in range(4):
        world.trigger("FAPIAO.ISSUED", None, DEAD_URL)
    engine.emulator.callback_limit = 2  # every one is pending: all four stay, new ones are refused
    assert [c.state for c in world.outbox.callbacks] == ["pending"] * 4
    with pytest.raises(RefusedError, match="4 callbacks still being retried"):
        world.trigger("FAPIAO.ISSUED", None, DEAD_URL)
