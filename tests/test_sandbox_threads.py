"""The sandbox's records are read while other threads write them: the exchanges and the inspector's entries.

Threads here are made to take turns every microsecond instead of every 5 ms (``eager_switching``),
so a race a few bytecodes wide shows within a few hundred rounds instead of once in a long while.
"""

from __future__ import annotations

import collections
import contextlib
import json
import sys
import threading
import time
import urllib.error
import urllib.request
from typing import Any, Iterator

import pytest
from conftest import PATIENCE, wait_until

from engine.sandbox import Sandbox, SandboxIdentity
from engine.sandbox.clock import TestClock
from engine.sandbox.inspector import Inspector
from engine.sandbox.server import ServerThread
from engine.wire import Headers, Request


@pytest.fixture
def eager_switching() -> Iterator[None]:
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def unsigned(target: str) -> Request:
    """A request the sandbox refuses (no Accept header) and records, at no signing cost to the test."""
    return Request(method="GET", base_url="http://127.0.0.1", target=target, headers=Headers({}), body=b"")


@contextlib.contextmanager
def serving_in(sandbox: Sandbox, threads: int) -> Iterator[list[int]]:
    """``threads`` threads serve requests in-process (as an engine on the same sandbox would) until the
    block ends; yields how many each served, filled in when they have stopped."""
    stop, served = threading.Event(), [0] * threads

    def serve(n: int) -> None:
        while not stop.is_set():
            sandbox.respond(unsigned(f"/v3/thread-{n}/{served[n]}"))
            served[n] += 1

    workers = [threading.Thread(target=serve, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    try:
        yield served
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=60)


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read()


def test_the_exchanges_listing_is_whole_while_another_thread_records(
    identity: SandboxIdentity, eager_switching: None
) -> None:
    """``GET /sandbox/exchanges`` walked the live deque: an exchange recorded by another thread meanwhile
    made it a 500 ("deque mutated during iteration"). Every listing is now one moment of the full ring."""
    sandbox = Sandbox(identity, clock=TestClock())
    for n in range(sandbox.record_limit):
        sandbox.respond(unsigned(f"/v3/before/{n}"))
    with ServerThread(sandbox) as server, serving_in(sandbox, 1) as served:
        answers = [get(server.base_url + "/sandbox/exchanges") for _ in range(200)]
    assert served[0] > 0
    assert [status for status, _ in answers] == [200] * 200, [body[:200] for status, body in answers if status != 200]
    assert {len(json.loads(body)) for _, body in answers} == {sandbox.record_limit}


def test_walking_the_record_while_threads_append_sees_one_moment(identity: SandboxIdentity, eager_switching) -> None:
    """Every way of walking the record (``for``, ``list``, ``reversed``, as ``contract_signed`` does)
    copes with appends from other threads, and sees each exchange once, in order."""
    sandbox = Sandbox(identity, clock=TestClock(), record_limit=200)
    deadline = time.monotonic() + PATIENCE  # a serving thread that died must fail the test, not hang it
    with serving_in(sandbox, 2) as served:
        while sum(served) < 600 and time.monotonic() < deadline:
            walked = [exchange.request.target for exchange in sandbox.exchanges]
            backwards = [exchange.request.target for exchange in reversed(sandbox.exchanges)]
            assert len(set(walked)) == len(walked) and len(set(backwards)) == len(backwards)
            for thread in ("thread-0", "thread-1"):  # each thread's exchanges in the order it sent them
                numbers = [int(t.rsplit("/", 1)[1]) for t in walked if thread in t]
                assert numbers == sorted(numbers)
    assert sum(served) >= 600


def test_a_resize_while_another_thread_records_loses_nothing(identity: SandboxIdentity, eager_switching) -> None:
    """``record_limit`` used to swap in a copy: an exchange recorded between the copy and the swap went
    into the old record and was lost. The ring is resized in place."""
    sandbox = Sandbox(identity, clock=TestClock(), record_limit=100_000)
    deadline = time.monotonic() + PATIENCE  # a serving thread that died must fail the test, not hang it
    with serving_in(sandbox, 1) as served:
        while served[0] < 600 and time.monotonic() < deadline:
            sandbox.record_limit = 100_000 + served[0] % 2  # never below what is held: none dropped for room
    assert served[0] >= 600 and len(sandbox.exchanges) == served[0]


def test_the_inspector_records_each_exchange_once_with_its_own_number(
    identity: SandboxIdentity, eager_switching
) -> None:
    """Observers were handed "the newest exchange" after the append, and the inspector counted with
    ``seen += 1``: with two threads serving, one exchange could be shown twice and another never, or
    two share a number. Each is now shown once, numbered 1, 2, 3 ... in the order of the ring."""
    sandbox = Sandbox(identity, clock=TestClock(), record_limit=100_000)
    inspector = Inspector(sandbox, size=100_000)
    with serving_in(sandbox, 2) as served:
        wait_until(lambda: sum(served) >= 1500)
    assert sum(served) >= 1500
    shown = inspector.snapshot()["exchanges"]
    recorded = collections.Counter(exchange.request.target for exchange in sandbox.exchanges)
    assert len(shown) == inspector.seen == sum(served)
    assert [entry["seq"] for entry in shown] == list(range(1, len(shown) + 1))
    assert collections.Counter(entry["target"] for entry in shown) == recorded


# -- world.json: written whole, newest last -------------------------------------------------------------


def test_world_json_is_always_whole_while_threads_save(identity: SandboxIdentity, tmp_path, eager_switching) -> None:
    """Saves from several threads (the ticker, a blocking advance, actions) against a reader of the file,
    as a restart after a crash would read it: the reader only ever finds a whole JSON document."""
    sandbox = Sandbox(identity, clock=TestClock())
    world = sandbox.world
    world.attach(tmp_path)
    for n in range(40):  # a file of some size, so that a write takes more than one switch
        world.trigger("TRANSACTION.SUCCESS", None, f"http://127.0.0.1:9/dead/{n}")
    world.save()
    path = tmp_path / "world.json"
    stop, torn, reads, saves = threading.Event(), [], [0], [0]

    def save() -> None:
        while not stop.is_set():
            with world.store.lock:
                sandbox.time.offset += 1.0  # a change to save (the clock's offset is saved)
            world.save()
            saves[0] += 1

    def read() -> None:
        while not stop.is_set():
            try:
                json.loads(path.read_bytes())
            except ValueError as exc:
                torn.append(repr(exc)[:80])
            reads[0] += 1

    workers = [threading.Thread(target=save) for _ in range(2)] + [threading.Thread(target=read)]
    for worker in workers:
        worker.start()
    # Run until enough saves and reads have overlapped, not for a fixed time: a loaded CI machine managed
    # only 46 saves in one second. The deadline only bounds a machine that cannot get there at all.
    deadline = time.monotonic() + 60.0
    while (saves[0] <= 50 or reads[0] <= 50) and time.monotonic() < deadline:
        threading.Event().wait(0.05)
    stop.set()
    for worker in workers:
        worker.join(timeout=60)
    assert reads[0] > 50 and saves[0] > 50 and torn == []
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporary file left


def test_an_older_dump_is_never_written_over_a_newer_one(
    identity: SandboxIdentity, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One save dumps the world and is slow to write it; another dumps the world as changed since and
    writes it first: the file keeps the newer world, and the slow save writes nothing."""
    import types

    from engine.sandbox import world as world_module

    sandbox = Sandbox(identity, clock=TestClock())
    sandbox.world.attach(tmp_path)
    newer_written, serialised = threading.Event(), []

    def slow_first_dumps(data: object, **options: object) -> str:
        serialised.append(data)
        if len(serialised) == 1:  # the first save, slow between its dump and its write
            newer_written.wait(PATIENCE)
        return json.dumps(data, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(world_module, "json", types.SimpleNamespace(dumps=slow_first_dumps, loads=json.loads))
    sandbox.time.offset = 5.0
    slow = threading.Thread(target=sandbox.world.save)
    slow.start()
    assert wait_until(lambda: serialised, pause=0.001)  # the slow save has taken its dump
    sandbox.time.offset = 99.0
    sandbox.world.save()
    newer_written.set()
    slow.join(timeout=PATIENCE)
    assert [d["clock_offset"] for d in serialised] == [5.0, 99.0]  # type: ignore[index]
    assert json.loads((tmp_path / "world.json").read_text())["clock_offset"] == 99.0


def test_a_fault_queued_for_n_calls_fires_n_times_across_threads(eager_switching) -> None:
    """In-process engines in several threads on one sandbox take faults from one plan: a fault queued for
    three calls fires on exactly three, and one queued after it is not lost or taken in its place."""
    from engine.sandbox.faults import Fault, FaultPlan

    class Resolved:  # what the registry's lookup gives for the short name: its descriptor
        id = "v3.any"

    plan = FaultPlan(resolve=lambda ref: Resolved())  # a short name is resolved as the fault is queued
    for _ in range(300):
        first, second = Fault.error(500), Fault.error(503)
        plan.add(first, endpoint="short-name", times=3)  # queued by a short name, as users do
        plan.add(second, endpoint="short-name", times=1)
        taken: list[object] = []
        start = threading.Barrier(6)

        def take(start: threading.Barrier, taken: list[object]) -> None:
            start.wait()
            taken.append(plan.take("v3.any"))

        workers = [threading.Thread(target=take, args=(start, taken)) for _ in range(6)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=30)
        assert sorted(f.status for f in taken if f is not None) == [500, 500, 500, 503]  # type: ignore[attr-defined]
        assert len(plan) == 0


def test_a_save_holding_the_store_lock_never_waits_for_another_threads_write(
    identity: SandboxIdentity, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An action saves holding the store's lock; while the ticker's write is slow, it hands its newer
    dump to the writing thread and returns, so served requests are not held up by file I/O. The newer
    dump is then written by that thread, and a waiting save (the server's on stop) waits for it."""
    from engine.sandbox import state as state_module

    sandbox = Sandbox(identity, clock=TestClock())
    sandbox.world.attach(tmp_path)
    real_write, writing, release = state_module.write_private, threading.Event(), threading.Event()

    def slow_first_write(path: object, data: bytes, **options: Any) -> None:
        if not writing.is_set():
            writing.set()
            release.wait(3 * PATIENCE)  # longer than the action is given: a save that waited would show
        real_write(path, data, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(state_module, "write_private", slow_first_write)
    sandbox.time.offset = 5.0
    ticker = threading.Thread(target=sandbox.world.save)
    ticker.start()
    assert writing.wait(PATIENCE)

    def act_and_save() -> None:
        with sandbox.world.store.lock:
            sandbox.time.offset = 99.0
            sandbox.world.save()

    action = threading.Thread(target=act_and_save)
    action.start()
    action.join(PATIENCE)  # returns at once unless the save waits for the ticker's write
    returned_while_the_ticker_wrote = not action.is_alive()
    release.set()
    ticker.join(PATIENCE)
    action.join(PATIENCE)
    assert returned_while_the_ticker_wrote
    assert json.loads((tmp_path / "world.json").read_text())["clock_offset"] == 99.0
    sandbox.time.offset = 150.0
    sandbox.world.save(wait=True)
    assert json.loads((tmp_path / "world.json").read_text())["clock_offset"] == 150.0


class _SteppedLock:
    """The world's ``NewestWriter`` lock with a hook run on the writing thread after its n-th release."""

    def __init__(self, inner: threading.Condition, writer: str, at: int, hook: Any) -> None:
        self.inner, self.writer, self.at, self.hook, self.releases = inner, writer, at, hook, 0

    def __enter__(self) -> Any:
        return self.inner.__enter__()

    def __exit__(self, *exc: Any) -> None:
        self.inner.__exit__(*exc)
        if threading.current_thread().name == self.writer:
            self.releases += 1
            if self.releases == self.at:
                self.hook()

    def wait_for(self, *args: Any) -> Any:
        return self.inner.wait_for(*args)

    def notify_all(self) -> None:
        self.inner.notify_all()


def test_a_dump_handed_over_as_the_writer_finishes_is_written(identity: SandboxIdentity, tmp_path) -> None:
    """The writer found nothing newer and was about to stop being the writer when another thread handed
    its dump over: that dump was dropped (the file kept the older world until some later save)."""
    sandbox = Sandbox(identity, clock=TestClock())
    world = sandbox.world
    world.attach(tmp_path)

    def hand_over_now() -> None:  # on the writer, right after it found nothing newer to write
        sandbox.time.offset = 99.0
        saver = threading.Thread(target=world.save)
        saver.start()
        saver.join(PATIENCE)

    # the writer's releases: becoming the writer, taking the dump, recording it written, finding none newer
    world._saver._lock = _SteppedLock(world._saver._lock, "writer", 4, hand_over_now)  # type: ignore[assignment]
    sandbox.time.offset = 5.0
    writer = threading.Thread(target=world.save, name="writer")
    writer.start()
    writer.join(PATIENCE)
    assert json.loads((tmp_path / "world.json").read_text())["clock_offset"] == 99.0
