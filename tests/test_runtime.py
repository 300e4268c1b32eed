"""The runtime architecture under real deployment shapes: fork, many event loops, threads, closing,
the transport seam and the key-level signer."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import threading
from typing import Any, Callable

import pytest
from conftest import COMBINE_PAPAY, PAY_REDIRECT_SIGN, REAL_NAME

from engine import (
    ConfigurationError,
    Engine,
    MockTransport,
    PrivateKeySigner,
    RawResponse,
    Request,
    RetryPolicy,
    TransportTimeoutError,
    UsageError,
)
from engine.crypto import rsa_verify
from engine.examples import example_payload
from engine.sandbox import Sandbox, SandboxIdentity
from engine.sandbox.faults import Fault
from engine.sandbox.server import ServerThread

PAPAY = "combine_papay.mini_program"
SEEDS = [
    (PAPAY, COMBINE_PAPAY),
    ("password_exempt.ecommerce.pay_redirect_sign", PAY_REDIRECT_SIGN),
    ("individual_contracts.real_name.mini_program", REAL_NAME),
]


@pytest.fixture
def served(identity: SandboxIdentity) -> Any:
    with ServerThread(Sandbox(identity, mode="both")) as thread:
        yield thread


def http_engine(identity: SandboxIdentity, served: Any, mode: str = "public_key", **options: Any) -> Engine:
    settings = {**identity.engine_settings(mode), "base_url": served.base_url, "load_entry_points": False}
    return Engine(**{**settings, **options})


# == fork ===========================================================================================


def _in_child(work: Callable[[], Any]) -> Any:
    """Run ``work`` in a forked child; return what it returned (or raise what it raised) in the parent."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        try:
            outcome = {"ok": work()}
        except BaseException as exc:
            outcome = {"error": f"{type(exc).__name__}: {exc}"}
        os.write(write, json.dumps(outcome).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        outcome = json.loads(pipe.read() or '{"error": "the child died without a word"}')
    os.waitpid(pid, 0)
    if "error" in outcome:
        raise AssertionError(f"in the forked child: {outcome['error']}")
    return outcome["ok"]


@pytest.mark.parametrize("where", ["in_process", "http"])
def test_a_fork_after_a_sync_call_leaves_parent_and_child_working(identity, served, where) -> None:
    engine = Engine.sandbox(identity=identity) if where == "in_process" else http_engine(identity, served)
    with engine:
        assert engine.call(PAPAY, COMBINE_PAPAY).status == 200  # the parent has a loop and a pool now

        def child() -> list[int]:
            sync = engine.call(PAPAY, COMBINE_PAPAY).status
            in_loop = asyncio.run(engine.acall(PAPAY, COMBINE_PAPAY)).status
            again = engine.call(PAPAY, COMBINE_PAPAY).status
            return [sync, in_loop, again]

        assert _in_child(child) == [200, 200, 200]
        assert engine.call(PAPAY, COMBINE_PAPAY).status == 200
        assert asyncio.run(engine.acall(PAPAY, COMBINE_PAPAY)).status == 200


def test_a_fork_after_a_call_from_inside_a_running_loop_uses_a_fresh_portal(identity) -> None:
    engine = Engine.sandbox(identity=identity)

    async def sync_call_inside_a_loop() -> int:
        return engine.call(PAPAY, COMBINE_PAPAY).status  # a running loop here: the portal thread serves it

    assert asyncio.run(sync_call_inside_a_loop()) == 200
    assert _in_child(lambda: asyncio.run(sync_call_inside_a_loop())) == 200
    engine.close()


def _held_in_another_thread(lock: Any) -> Callable[[], None]:
    """Take ``lock`` in a thread that keeps it (as a busy thread would at any instant); returns the release."""
    taken, done = threading.Event(), threading.Event()

    def hold() -> None:
        with lock:
            taken.set()
            done.wait(60)

    holder = threading.Thread(target=hold)
    holder.start()
    assert taken.wait(30)

    def release() -> None:
        done.set()
        holder.join(30)

    return release


def _within_a_minute(work: Callable[[], Any]) -> Callable[[], Any]:
    """``work`` for a forked child, killed by SIGALRM (so "died without a word") if it hangs."""
    import signal

    def bounded() -> Any:
        signal.alarm(60)
        return work()

    return bounded


def test_a_fork_while_another_thread_is_inside_the_sandbox_leaves_the_childs_calls_working(identity) -> None:
    """A lock some thread held at fork() stays held for good in the child, where that thread does not
    exist: the child's first call into the in-process sandbox used to wait on it forever."""
    with Engine.sandbox(identity=identity, load_entry_points=False) as engine:
        release = _held_in_another_thread(engine.emulator.world.store.lock)
        try:
            assert _in_child(_within_a_minute(lambda: engine.call(PAPAY, COMBINE_PAPAY).status)) == 200
        finally:
            release()


def test_a_fork_while_another_thread_claims_a_callback_leaves_the_childs_callbacks_working(identity) -> None:
    with Engine.sandbox(identity=identity, load_entry_points=False) as engine:
        callback = engine.emulator.payment_succeeded("T-fork", total=1)
        release = _held_in_another_thread(engine.store._state.guard)  # the memory store's one lock

        def handle() -> int:
            reply = engine.handle_notification_sync(dict(callback.headers.items()), callback.body, lambda _: None)
            return reply.status

        try:
            assert _in_child(_within_a_minute(handle)) == 204  # handled: success, no body
        finally:
            release()


# == many event loops ===============================================================================


def _collect_earlier_garbage() -> None:
    """What earlier tests left for the collector must not be blamed on this one."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gc.collect()


@pytest.mark.filterwarnings("error")
def test_ten_event_loops_with_concurrent_certificate_downloads_and_calls(identity, served) -> None:
    _collect_earlier_garbage()
    engine = http_engine(identity, served, mode="certificate")

    async def one_loop() -> None:
        downloads = [engine.adownload_certificates() for _ in range(3)]
        calls = [engine.acall(PAPAY, COMBINE_PAPAY) for _ in range(3)]
        results = await asyncio.gather(*downloads, *calls)
        assert all(serials for serials in results[:3])
        assert all(answer.status == 200 for answer in results[3:])

    for _ in range(10):
        asyncio.run(one_loop())
    assert engine.runtime._loops == {}  # every loop's resources went with the loop
    for _ in range(2):  # and sync threads afterwards share a lock that is theirs
        threads = [threading.Thread(target=engine.download_certificates) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    engine.close()
    gc.collect()  # an unclosed aiohttp session or connector would warn here, and warnings are errors


@pytest.mark.filterwarnings("error")
def test_twenty_asyncio_runs_leave_no_transport_behind(identity, served) -> None:
    _collect_earlier_garbage()
    engine = http_engine(identity, served)
    for _ in range(20):
        assert asyncio.run(engine.acall(PAPAY, COMBINE_PAPAY)).status == 200
    assert engine.runtime._loops == {}
    engine.close()
    gc.collect()


def test_a_background_refresh_task_ends_with_its_loop(identity, served) -> None:
    engine = http_engine(identity, served, mode="certificate")

    async def start() -> asyncio.Task[None]:
        await engine.adownload_certificates()
        return engine.start_certificate_refresh(interval=3600)

    task = asyncio.run(start())
    assert task.cancelled()
    engine.close()


# == threads and the sync drivers ===================================================================


def test_sync_calls_from_many_threads(identity, served) -> None:
    engine = http_engine(identity, served)
    statuses: list[int] = []

    def work() -> None:
        for _ in range(5):
            statuses.append(engine.call(PAPAY, COMBINE_PAPAY).status)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 30
    engine.close()
    assert engine.runtime._thread_loops == {} and engine.runtime._loops == {}


def _hanging(request: Request) -> Any:
    async def never() -> RawResponse:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    return never()


@pytest.mark.parametrize("where", ["thread", "inside_a_loop"])
def test_a_sync_wait_is_bounded_even_when_the_transport_never_answers(identity, where) -> None:
    engine = Engine(
        **identity.engine_settings(),
        transport=MockTransport(_hanging),
        timeout=0.1,
        connect_timeout=0.1,
        retry=RetryPolicy(max_attempts=1, deadline=0.3),
        load_entry_points=False,
    )

    async def inside() -> None:
        engine.call(PAPAY, COMBINE_PAPAY)

    with pytest.raises(TransportTimeoutError, match="cancelled"):
        if where == "thread":
            engine.call(PAPAY, COMBINE_PAPAY)
        else:
            asyncio.run(inside())
    engine.close()


# == closing ========================================================================================


def test_a_closed_engine_refuses_calls_instead_of_hanging_or_reopening(identity) -> None:
    engine = Engine.sandbox(identity=identity)
    assert engine.call(PAPAY, COMBINE_PAPAY).status == 200
    callback = engine.emulator.payment_succeeded("T-closed", total=1)
    notification = engine.parse_notification(dict(callback.headers.items()), callback.body)
    engine.close()
    engine.close()  # closing twice is fine
    with pytest.raises(UsageError, match="closed"):
        engine.call(PAPAY, COMBINE_PAPAY)
    with pytest.raises(UsageError, match="closed"):
        asyncio.run(engine.acall(PAPAY, COMBINE_PAPAY))
    with pytest.raises(UsageError, match="closed"):
        engine.download_certificates()
    for acknowledge in (  # the async twin refuses as the sync form does (it recorded into the store)
        engine.acknowledge_notification,
        lambda notification: asyncio.run(engine.aacknowledge_notification(notification)),
    ):
        with pytest.raises(UsageError, match="closed"):
            acknowledge(notification)


def test_aclose_inside_the_loop_then_refuses(identity) -> None:
    engine = Engine.sandbox(identity=identity)

    async def run() -> None:
        await engine.acall(PAPAY, COMBINE_PAPAY)
        await engine.aclose()
        with pytest.raises(UsageError):
            await engine.acall(PAPAY, COMBINE_PAPAY)

    asyncio.run(run())


def _private_loop_after_a_sync_call(engine: Engine) -> asyncio.AbstractEventLoop:
    """Make one sync call in this thread; return the private loop it ran on."""
    assert engine.call(PAPAY, COMBINE_PAPAY).status == 200
    return engine.runtime._thread_loops[threading.get_ident()][0]


def _closed_and_nothing_left(engine: Engine, *loops: asyncio.AbstractEventLoop) -> None:
    assert all(loop.is_closed() for loop in loops)
    assert engine.runtime._thread_loops == {} and engine.runtime._loops == {}
    with pytest.raises(UsageError, match="closed"):
        engine.call(PAPAY, COMBINE_PAPAY)
    gc.collect()  # an unclosed session, connector or never-awaited close would warn here: warnings are errors


@pytest.mark.filterwarnings("error")
def test_aclose_in_a_new_loop_after_a_sync_call_closes_that_threads_private_loop(identity, served) -> None:
    _collect_earlier_garbage()
    engine = http_engine(identity, served)
    private = _private_loop_after_a_sync_call(engine)
    asyncio.run(engine.aclose())  # a loop runs in this thread now: the private loop cannot run here
    _closed_and_nothing_left(engine, private)


@pytest.mark.filterwarnings("error")
def test_sync_close_inside_a_coroutine_after_a_sync_call_closes_the_private_loop(identity, served) -> None:
    _collect_earlier_garbage()
    engine = http_engine(identity, served)
    private = _private_loop_after_a_sync_call(engine)

    async def close_from_async_code() -> None:
        engine.close()

    asyncio.run(close_from_async_code())
    _closed_and_nothing_left(engine, private)


@pytest.mark.filterwarnings("error")
def test_aclose_on_the_main_thread_closes_a_worker_threads_private_loop(identity, served) -> None:
    _collect_earlier_garbage()
    engine = http_engine(identity, served)
    private: list[asyncio.AbstractEventLoop] = []
    worker = threading.Thread(target=lambda: private.append(_private_loop_after_a_sync_call(engine)))
    worker.start()
    worker.join()
    assert len(private) == 1
    asyncio.run(engine.aclose())
    _closed_and_nothing_left(engine, *private)


@pytest.mark.filterwarnings("error")
def test_aclose_in_a_new_loop_closes_the_resources_of_an_idle_user_loop(identity, served) -> None:
    _collect_earlier_garbage()
    engine = http_engine(identity, served)
    idle = asyncio.new_event_loop()  # used once, then left open and not running
    try:
        assert idle.run_until_complete(engine.acall(PAPAY, COMBINE_PAPAY)).status == 200
        asyncio.run(engine.aclose())
        assert not idle.is_closed()  # the user's loop stays the user's to close
        _closed_and_nothing_left(engine)
    finally:
        idle.close()


def _wait_for(condition: Callable[[], bool], what: str, deadline: float = 30.0) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after a generous ``deadline``."""
    import time

    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"still waiting, after {deadline:.0f} s, for {what}")
        time.sleep(0.01)


class _Gate:
    """A transport answering from the sandbox once ``release`` is set; ``entered`` says a call is in it."""

    def __init__(self, identity: SandboxIdentity) -> None:
        self.emulator = Sandbox(identity)
        self.entered = threading.Event()
        self.release = threading.Event()

    async def __call__(self, request: Request) -> RawResponse:
        self.entered.set()
        while not self.release.is_set():
            await asyncio.sleep(0.005)
        return self.emulator.handle(request)


def _run_in_thread(work: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    """Start ``work`` in a thread; its return value or exception lands in the dict."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = work()
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def test_a_call_racing_close_is_refused_with_usage_error_not_a_closed_loop(identity, monkeypatch) -> None:
    """A call that passed the open check just before ``close()`` released its thread's loop used to
    fail with asyncio's ``RuntimeError: Event loop is closed`` (and a never-awaited coroutine)."""
    from engine.runtime import Runtime

    engine = Engine.sandbox(identity=identity, load_entry_points=False)
    assert engine.call(PAPAY, COMBINE_PAPAY).status == 200  # this thread has its private loop now
    found, closed = threading.Event(), threading.Event()
    thread_loop = Runtime._thread_loop

    def paused(runtime: Runtime) -> Any:  # the window between the open check and the loop's lock
        entry = thread_loop(runtime)
        found.set()
        closed.wait(30)
        return entry

    monkeypatch.setattr(Runtime, "_thread_loop", paused)
    closer, _ = _run_in_thread(lambda: (found.wait(30), engine.close(), closed.set()))
    with pytest.raises(UsageError, match="closed"):
        engine.call(PAPAY, COMBINE_PAPAY)
    closer.join(30)


def test_close_lets_a_sync_call_made_inside_a_loop_finish_then_stops_the_portal(identity) -> None:
    """``close()`` stopped the portal under a call in flight: the call then waited out its whole bound
    (three deadlines) and its task was destroyed pending."""
    gate = _Gate(identity)
    engine = Engine(
        **identity.engine_settings(),
        transport=MockTransport(gate),
        retry=RetryPolicy(deadline=60),
        load_entry_points=False,
    )

    async def sync_call_inside_a_loop() -> int:
        return engine.call(PAPAY, COMBINE_PAPAY).status

    caller, outcome = _run_in_thread(lambda: asyncio.run(sync_call_inside_a_loop()))
    assert gate.entered.wait(30)
    assert engine.runtime._portal is not None
    portal_loop, portal_thread = engine.runtime._portal
    closer, _ = _run_in_thread(engine.close)
    _wait_for(lambda: engine.runtime.closed, "close() to start")
    gate.release.set()
    caller.join(30)
    closer.join(30)
    assert not caller.is_alive(), "the call in flight hung after close()"
    assert outcome == {"value": 200}
    _wait_for(lambda: not portal_thread.is_alive(), "the portal thread to end")
    assert portal_loop.is_closed()
    with pytest.raises(UsageError, match="closed"):
        asyncio.run(sync_call_inside_a_loop())


def test_a_sync_call_from_the_portal_itself_is_a_usage_error_not_a_wait_on_itself(identity) -> None:
    """A transport handler (or a plugin) making a sync call inside a sync call made from async code runs
    on the portal thread; handing the inner call to that same portal waited on itself until timeout."""
    emulator = Sandbox(identity)
    inner: list[BaseException] = []

    def answer(request: Request) -> RawResponse:
        if not inner:
            try:
                engine.call(PAPAY, COMBINE_PAPAY)
            except BaseException as exc:
                inner.append(exc)
        return emulator.handle(request)

    engine = Engine(
        **identity.engine_settings(),
        transport=MockTransport(answer),
        retry=RetryPolicy(max_attempts=1, deadline=5),
        load_entry_points=False,
    )

    async def sync_call_inside_a_loop() -> int:
        return engine.call(PAPAY, COMBINE_PAPAY).status

    with engine:
        assert asyncio.run(sync_call_inside_a_loop()) == 200
    assert len(inner) == 1 and type(inner[0]) is UsageError
    assert "use await engine.acall" in str(inner[0])


def test_a_thread_whose_call_outlives_closes_wait_releases_its_loop_itself(identity, monkeypatch) -> None:
    """``close()`` waits ``CLOSE_WAIT_SECONDS`` for a call on a thread's private loop; past that the loop
    was left open for good (an unclosed event loop and its sockets, its transport never closed)."""
    from engine import runtime

    monkeypatch.setattr(runtime, "CLOSE_WAIT_SECONDS", 0.05)
    gate = _Gate(identity)
    engine = Engine(**identity.engine_settings(), transport=MockTransport(gate), load_entry_points=False)
    caller, outcome = _run_in_thread(lambda: engine.call(PAPAY, COMBINE_PAPAY).status)
    assert gate.entered.wait(30)
    (private,) = [loop for loop, _ in engine.runtime._thread_loops.values()]
    engine.close()  # gives up waiting for the call in flight
    assert not private.is_closed()
    gate.release.set()
    caller.join(30)
    assert outcome == {"value": 200}  # the call finished
    assert private.is_closed()  # and its thread released the loop


def test_a_retry_due_after_close_is_not_sent_on_a_reopened_session(identity, served, monkeypatch) -> None:
    """``close()`` closes a running user loop's transport under its calls; a call waiting to retry then
    opened a fresh aiohttp session on the closed transport, sent its attempt, and left the session
    unclosed for good. The attempt is refused instead, as not sent."""
    from engine import ConnectError, sender

    waiting, proceed = threading.Event(), threading.Event()

    async def paused(seconds: float) -> None:  # the backoff wait, held until close() has run
        waiting.set()
        while not proceed.is_set():
            await asyncio.sleep(0.005)

    monkeypatch.setattr(sender, "_sleep", paused)
    engine = http_engine(identity, served)
    served.sandbox.faults.add(Fault.error(503), times=1)
    query = {"out_trade_no": "T-retry-after-close", "mchid": identity.mchid}
    caller, outcome = _run_in_thread(
        lambda: asyncio.run(engine.acall("v3.pay.transactions.out_trade_no._out_trade_no_.get", query))
    )
    assert waiting.wait(30)
    (resources,) = engine.runtime._loops.values()  # the caller's loop, the one being retried on
    transport = resources.transport()
    engine.close()
    proceed.set()
    caller.join(30)
    assert isinstance(outcome.get("error"), ConnectError), outcome
    assert "closed" in str(outcome["error"])
    assert transport._session is not None and transport._session.closed  # no session opened after close


def test_a_sync_call_interrupted_from_outside_does_not_resume_at_the_threads_next_call(identity, monkeypatch) -> None:
    """An exception raised into a sync call from outside it (Ctrl-C, or a signal handler's, as Celery's
    soft time limit raises) left the call's task pending on the thread's private loop, and the thread's
    next sync call ran it on: the abandoned call sent its retry then, behind an unrelated call."""
    from engine import sender

    emulator = Sandbox(identity)
    transport = MockTransport(emulator.handle)

    def interrupt() -> None:
        raise KeyboardInterrupt

    async def interrupted_wait(seconds: float) -> None:  # the backoff: interrupted, then due at once
        asyncio.get_running_loop().call_soon(interrupt)
        await asyncio.sleep(0)

    monkeypatch.setattr(sender, "_sleep", interrupted_wait)
    engine = Engine(**identity.engine_settings(), transport=transport, load_entry_points=False)
    emulator.faults.add(Fault.error(503), times=1)
    query = {"out_trade_no": "T-interrupted", "mchid": identity.mchid}
    with engine:
        with pytest.raises(KeyboardInterrupt):
            engine.call("v3.pay.transactions.out_trade_no._out_trade_no_.get", query)
        assert len(transport.requests) == 1  # the first attempt, answered 503
        assert engine.call(PAPAY, COMBINE_PAPAY).status == 200
    assert [request.method for request in transport.requests] == ["GET", "POST"]  # no GET resumed behind it


class _HeldServer:
    """127.0.0.1 HTTP: the first request is held until ``release`` is set; every answer is an unsigned 200."""

    def __init__(self) -> None:
        import socketserver

        self.first_in, self.release = threading.Event(), threading.Event()
        held = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    head += self.rfile.read(1)
                length = [
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ]
                self.rfile.read(length[0] if length else 0)
                if not held.first_in.is_set():
                    held.first_in.set()
                    held.release.wait(60)
                self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def test_close_under_a_request_still_connecting_ends_it_typed_not_with_aiohttp_internals(identity) -> None:
    """``close()`` closed a running user loop's aiohttp session under its requests; one still waiting for
    a connection then failed with aiohttp's bare ``AttributeError`` (its closed session has no connector)."""
    from engine import EngineError
    from engine.hookspecs import hookimpl

    sent = threading.Semaphore(0)

    class Counting:
        @hookimpl
        def wxpay_before_send(self, call: Any, request: Request) -> None:
            sent.release()

    held = _HeldServer()
    engine = Engine(
        **identity.engine_settings(),
        base_url=held.base_url,
        pool_size=1,  # the second request waits for the first one's connection
        retry=RetryPolicy.never(),
        plugins=[Counting()],
        load_entry_points=False,
    )

    async def two_calls() -> list[Any]:
        calls = [engine.acall(PAPAY, COMBINE_PAPAY) for _ in range(2)]
        return await asyncio.gather(*calls, return_exceptions=True)

    try:
        caller, outcome = _run_in_thread(lambda: asyncio.run(two_calls()))
        assert held.first_in.wait(30) and sent.acquire(timeout=30) and sent.acquire(timeout=30)
        closer, _ = _run_in_thread(engine.close)
        _wait_for(lambda: engine.runtime.closed, "close() to start")
        held.release.set()
        caller.join(30)
        closer.join(30)
    finally:
        held.stop()
    assert "value" in outcome, outcome
    assert all(isinstance(result, EngineError) for result in outcome["value"]), outcome["value"]


def test_an_engine_dropped_without_close_does_not_leave_its_portal_thread_running(identity) -> None:
    """The portal thread ran its loop forever: each engine dropped unclosed after a sync call from async
    code (one made per request, per merchant) left a thread behind for the life of the process."""
    engine = Engine.sandbox(identity=identity, load_entry_points=False)

    async def sync_call_inside_a_loop(engine: Engine) -> int:
        return engine.call(PAPAY, COMBINE_PAPAY).status

    assert asyncio.run(sync_call_inside_a_loop(engine)) == 200
    assert engine.runtime._portal is not None
    portal_loop, portal_thread = engine.runtime._portal
    del engine
    _collect_earlier_garbage()
    _wait_for(lambda: not portal_thread.is_alive(), "the dropped engine's portal thread to end")
    assert portal_loop.is_closed()


# == the transport seam =============================================================================


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_engine_transport_takes_a_mock_transport(identity, kind) -> None:
    emulator = Sandbox(identity)

    def answer(request: Request) -> RawResponse:
        return emulator.handle(request)

    async def answer_later(request: Request) -> RawResponse:
        await asyncio.sleep(0)
        return emulator.handle(request)

    transport = MockTransport(answer if kind == "sync" else answer_later)
    with Engine(**identity.engine_settings(), transport=transport, load_entry_points=False) as engine:
        assert engine.call(PAPAY, COMBINE_PAPAY).data["plan_id"] == COMBINE_PAPAY["plan_id"]
        assert asyncio.run(engine.acall(PAPAY, COMBINE_PAPAY)).status == 200
    assert [r.method for r in transport.requests] == ["POST", "POST"]


def test_a_transport_that_is_not_one_is_refused_by_name(identity) -> None:
    class HalfTransport:
        async def send(self, request: Request, config: Any) -> RawResponse:
            raise AssertionError("never called")

    with pytest.raises(ConfigurationError, match=r"^transport: HalfTransport is not a transport \(no stream, aclose\)"):
        Engine(**identity.engine_settings(), transport=HalfTransport(), load_entry_points=False)


def test_a_mock_handler_returning_something_else_is_a_configuration_error(identity) -> None:
    transport = MockTransport(lambda request: {"status": 200})  # type: ignore[arg-type, return-value]
    engine = Engine(**identity.engine_settings(), transport=transport, load_entry_points=False)
    with engine, pytest.raises(ConfigurationError, match="not a RawResponse"):
        engine.call(PAPAY, COMBINE_PAPAY)


# == the key-level signer ===========================================================================


class KmsSigner:
    """What a KMS client looks like to the engine: it signs bytes it is handed, and keeps a log."""

    def __init__(self, identity: SandboxIdentity) -> None:
        self._remote = PrivateKeySigner(identity.merchant_key)  # "the HSM"
        self.signed: list[bytes] = []

    def sign(self, data: bytes) -> bytes:
        self.signed.append(data)
        return self._remote.sign(data)


def test_a_kms_signer_makes_every_merchant_signature(identity) -> None:
    signer = KmsSigner(identity)
    engine = Engine.sandbox(identity=identity, private_key=None, signer=signer)
    for endpoint, payload in SEEDS:
        assert engine.call(endpoint, payload).status == 200
    assert [exchange.response.status for exchange in engine.emulator.exchanges] == [200, 200, 200]  # it verified them
    parameters = engine.jsapi_payment("wxd678efh567hg6787", "wx201410272009395522657a690389285100")
    message = "".join(f"{parameters[k]}\n" for k in ("appId", "timeStamp", "nonceStr", "package")).encode()
    assert rsa_verify(identity.merchant_key.public_key(), message, parameters["paySign"])
    assert len(signer.signed) == 4 and signer.signed[-1] == message
    engine.close()


def test_a_signer_without_decrypt_cannot_open_encrypted_answer_fields(identity) -> None:
    engine = Engine.sandbox(identity=identity, private_key=None, signer=KmsSigner(identity))
    descriptor = engine.endpoint("v3.aggracct_bc.wb_channel.account.mch_archives.get")
    with pytest.raises(ConfigurationError, match="no decrypt"):
        engine.call(descriptor.id, example_payload(descriptor))
    engine.close()


def test_a_signer_with_decrypt_opens_them(identity) -> None:
    engine = Engine.sandbox(identity=identity, private_key=None, signer=PrivateKeySigner(identity.merchant_key))
    descriptor = engine.endpoint("v3.aggracct_bc.wb_channel.account.mch_archives.get")
    assert engine.call(descriptor.id, example_payload(descriptor)).status == 200
    engine.close()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"signer": object()}, r"^signer: object has no sign\(data: bytes\) -> bytes method$"),
        ({"signer": "not-a-signer"}, r"^signer: str has no sign"),
        ({"signer": PrivateKeySigner.__new__(PrivateKeySigner), "private_key": "x"}, "either private_key or signer"),
        ({"private_key": None}, r"^private_key: required"),
    ],
)
def test_bad_signer_settings_name_the_setting(identity, options, message) -> None:
    settings = {**identity.engine_settings(), "private_key": None, **options}
    with pytest.raises(ConfigurationError, match=message):
        Engine(**settings, load_entry_points=False)


def test_a_signer_returning_text_is_a_configuration_error(identity) -> None:
    class TextSigner:
        def sign(self, data: bytes) -> str:
            return "c2lnbmF0dXJl"

    engine = Engine.sandbox(identity=identity, private_key=None, signer=TextSigner())
    with pytest.raises(ConfigurationError, match="not bytes"):
        engine.call(PAPAY, COMBINE_PAPAY)
    assert engine.emulator.exchanges == []
    engine.close()


def test_loops_closed_without_shutdown_do_not_pile_up_their_resources(make_engine) -> None:
    """``loop.close()`` without ``shutdown_asyncgens`` never runs the loop's release hook; the next
    loop's first call drops what such loops held instead of keeping it for the life of the process."""
    engine = make_engine()
    for _ in range(5):
        loop = asyncio.new_event_loop()
        assert loop.run_until_complete(engine.acall(PAPAY, COMBINE_PAPAY)).status == 200
        loop.close()  # no shutdown_asyncgens, as hand-written loop code often does
    held = list(engine.runtime._loops)
    assert len(held) <= 1 and all(loop.is_closed() for loop in held)
    engine.close()
