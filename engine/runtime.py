"""The one owner of an engine's event-loop-bound state, for asyncio, threads and ``fork()``.

Design decisions:

* Sessions, locks and background tasks are bound to the event loop that made them (aiohttp and
  asyncio refuse to be used from another loop). So all of them live in a ``LoopResources`` per
  event loop, made on first use by ``Runtime.resources()`` and nowhere else. Nothing loop-bound is
  created in ``__init__`` of any other object.
* A loop's resources are released when that loop shuts down: the first use on a loop starts a tiny
  async generator, and ``asyncio.run`` (like any runner calling ``loop.shutdown_asyncgens()``)
  finalises it, which closes the loop's transport and cancels its tasks. Twenty ``asyncio.run``
  calls therefore leave nothing open. ``close()``/``aclose()`` release everything still alive. A
  loop closed without that (``loop.close()`` alone) never runs the hook: the next new loop's first
  use drops such loops' resources, so they are finalised instead of piling up for the process's life.
* Sync calls run the same coroutine as async ones. A thread with no running loop drives it on a
  private loop of its own with ``run_until_complete`` (no thread hop: this is the fast path of
  ``Engine.call``); a thread that already runs a loop cannot block that loop's thread on itself, so
  it hands the coroutine to a shared portal thread. Either way the wait is bounded by the caller's
  ``timeout`` (the call's own deadline plus a margin), never forever.
* After ``fork()`` a child inherits loops whose selector and sockets belong to the parent, and no
  portal thread at all. ``os.register_at_fork`` tells every live runtime to forget all of that in
  the child (the objects are parked, never closed, so the child neither touches the parent's
  connections nor warns about them); the next call makes fresh ones. A pid check backs it up.
* A closed runtime refuses work with ``UsageError``: a closed engine neither hangs nor silently
  reopens.
* ``close()`` drives a loop that is not running (a thread's private loop, an idle user loop) to
  release its resources. asyncio refuses to run a loop in a thread that already runs one, so when
  ``close()`` or ``aclose()`` is called from async code that work goes to a short-lived helper
  thread, joined within ``CLOSE_WAIT_SECONDS``: close never runs a loop inside a running loop, and
  still leaves nothing open.
* Other components keep their own loop-bound objects here too (a Redis asyncio client, whose
  connection pool belongs to the loop that made it): ``LoopResources.get_or_create(name, factory,
  aclose)`` makes one per loop on first use and awaits ``aclose(obj)`` when the loop's resources are
  released, like the transport. The component stays free of loop bookkeeping.
* What every engine of the process may share on a loop (the keep-alive pool: WeChat Pay
  authenticates each request by its signature, not by the connection) lives in one process-wide
  ``Runtime`` that is never closed, through ``shared(name, factory, aclose)``: the same per-loop
  bookkeeping, the same release at loop shutdown, the same reset after ``fork()``. Keys, stores and
  clocks are never shared.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import weakref
from typing import Any, AsyncGenerator, Callable, Coroutine, Optional, TypeVar, cast

from engine.errors import TransportTimeoutError, UsageError
from engine.transport import Transport

T = TypeVar("T")
logger = logging.getLogger("engine.runtime")
CLOSE_WAIT_SECONDS = 10.0

_RUNTIMES: "weakref.WeakSet[Runtime]" = weakref.WeakSet()
# Loop state that must be neither used nor finalised: inherited across fork(), or left on a closed loop.
_PARKED: list[Any] = []


class LoopResources:
    """Everything one event loop owns for one engine: its transport, named locks and tasks."""

    def __init__(self, loop: asyncio.AbstractEventLoop, make_transport: Callable[[], Transport]) -> None:
        self.loop = loop
        self._make_transport = make_transport
        self._transport: Optional[Transport] = None
        self._retired: list[Transport] = []
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: set["asyncio.Task[Any]"] = set()
        self._named: dict[str, tuple[Any, Callable[[Any], Any]]] = {}
        self._guard: Optional[AsyncGenerator[None, None]] = None

    def transport(self) -> Transport:
        if self._transport is None:
            self._transport = self._make_transport()
        return self._transport

    def retire_transport(self) -> None:
        """Stop using the current transport (it is closed with the rest, not dropped)."""
        if self._transport is not None:
            self._retired.append(self._transport)
            self._transport = None

    def lock(self, name: str) -> asyncio.Lock:
        lock = self._locks.get(name)
        if lock is None:
            lock = self._locks[name] = asyncio.Lock()
        return lock

    def get_or_create(self, name: str, factory: Callable[[], T], aclose: Callable[[T], Any]) -> T:
        """This loop's object called ``name``, made by ``factory()`` on first use.

        ``aclose(obj)`` (a coroutine function, or a plain one) releases it when this loop's resources
        are released: at the loop's shutdown, or when the engine closes.
        """
        found = self._named.get(name)
        if found is None:
            found = self._named[name] = (factory(), aclose)
        return cast(T, found[0])

    def spawn(self, coroutine: Coroutine[Any, Any, Any], name: str) -> "asyncio.Task[Any]":
        task = self.loop.create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def aclose(self) -> None:
        tasks, self._tasks = list(self._tasks), set()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        named, self._named = list(self._named.values()), {}
        for obj, release in named:
            try:
                outcome = release(obj)
                if asyncio.iscoroutine(outcome):
                    await outcome
            except Exception:  # one failing close must not keep the others open
                logger.warning("closing %s failed", type(obj).__name__, exc_info=True)
        transports, self._retired = [*self._retired, *([self._transport] if self._transport else [])], []
        self._transport = None
        for transport in transports:
            try:
                await transport.aclose()
            except Exception:  # one failing close must not keep the others open
                logger.warning("closing transport %r failed", transport, exc_info=True)


class Runtime:
    """Per-loop resources, the sync drivers and their lifecycle for one engine."""

    def __init__(self, make_transport: Callable[[], Transport]) -> None:
        self._make_transport = make_transport
        self._lock = threading.RLock()
        self._pid = os.getpid()
        self._loops: dict[asyncio.AbstractEventLoop, LoopResources] = {}
        self._thread_loops: dict[int, tuple[asyncio.AbstractEventLoop, threading.Lock]] = {}
        self._portal: Optional[tuple[asyncio.AbstractEventLoop, threading.Thread]] = None
        self.closed = False
        _RUNTIMES.add(self)

    # -- per-loop resources ----------------------------------------------------------------

    def resources(self) -> LoopResources:
        """The running loop's resources, made (and tied to the loop's shutdown) on first use."""
        self.check_open()
        loop = asyncio.get_running_loop()
        found = self._loops.get(loop)
        if found is not None:
            return found
        with self._lock:
            found = self._loops.get(loop)
            if found is None:
                self._forget_closed_loops()
                found = self._loops[loop] = LoopResources(loop, self._make_transport)
                found._guard = self._start_guard(loop, found)
        return found

    def _forget_closed_loops(self) -> None:
        """Drop the resources of loops closed without ``shutdown_asyncgens`` (``loop.close()`` alone,
        not ``asyncio.run``), whose shutdown hook never ran: nothing can await their release on a
        closed loop, but holding them would keep every such loop's sessions and sockets for the life of
        the process. Dropped, they are finalised with their objects."""
        for closed in [loop for loop in self._loops if loop.is_closed()]:
            del self._loops[closed]

    def transport(self) -> Transport:
        return self.resources().transport()

    def _start_guard(self, loop: asyncio.AbstractEventLoop, resources: LoopResources) -> AsyncGenerator[None, None]:
        guard = self._until_loop_shutdown(loop, resources)
        with contextlib.suppress(StopIteration):
            guard.asend(None).send(None)  # runs to its ``yield`` at once: nothing in between awaits
        return guard

    async def _until_loop_shutdown(
        self, loop: asyncio.AbstractEventLoop, resources: LoopResources
    ) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            with self._lock:
                if self._loops.get(loop) is resources:
                    del self._loops[loop]
            await resources.aclose()

    def retire_transports(self) -> None:
        """Every loop asks for a new transport at its next call (the old ones close with the loop)."""
        with self._lock:
            for resources in self._loops.values():
                resources.retire_transport()

    # -- sync drivers ----------------------------------------------------------------------

    def run_sync(self, make: Callable[[], Coroutine[Any, Any, T]], timeout: float) -> T:
        """Run ``make()`` to completion for a synchronous caller, waiting at most ``timeout`` s."""
        self.check_open()
        if _running_loop() is None:  # not inside ``except``: a failure must not chain "no running event loop"
            return self._run_on_thread_loop(make, timeout)
        return self._run_on_portal(make(), timeout)

    def _run_on_thread_loop(self, make: Callable[[], Coroutine[Any, Any, T]], timeout: float) -> T:
        loop, in_use = self._thread_loop()
        with in_use:
            # The bound is one timer that cancels the call's task. asyncio.wait_for would add a task
            # of its own to every call, asyncio.timeout a context manager: more than the rest of the
            # driver together costs (bench/overhead_http.py, sync case).
            task = loop.create_task(make())
            expiry = _Expiry(task)
            timer = loop.call_later(timeout, expiry)
            try:
                return loop.run_until_complete(task)
            except asyncio.CancelledError:
                if not expiry.fired:
                    raise
                raise TransportTimeoutError(f"no result within {timeout:.0f} s; the call was cancelled") from None
            finally:
                timer.cancel()

    def _thread_loop(self) -> tuple[asyncio.AbstractEventLoop, threading.Lock]:
        ident = threading.get_ident()
        entry = self._thread_loops.get(ident)
        if entry is None or entry[0].is_closed():
            with self._lock:
                self.check_open()
                entry = self._thread_loops[ident] = (asyncio.new_event_loop(), threading.Lock())
        return entry

    def _run_on_portal(self, coroutine: Coroutine[Any, Any, T], timeout: float) -> T:
        future = asyncio.run_coroutine_threadsafe(coroutine, self._portal_loop())
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise TransportTimeoutError(f"no result within {timeout:.0f} s; the call was cancelled") from None

    def _portal_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            self.check_open()
            if self._portal is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="wechatpay-engine-portal", daemon=True)
                thread.start()
                self._portal = (loop, thread)
            return self._portal[0]

    # -- lifecycle -------------------------------------------------------------------------

    def check_open(self) -> None:
        if self.closed:
            raise UsageError("this engine is closed; build a new Engine")
        if os.getpid() != self._pid:  # a fork the at-fork hook did not see
            self.after_fork()

    def after_fork(self) -> None:
        """In a forked child: park everything inherited and start clean."""
        self._lock = threading.RLock()  # the parent's may have been held by another thread at fork
        _PARKED.append((self._loops, self._thread_loops, self._portal))
        self._loops, self._thread_loops, self._portal = {}, {}, None
        self._pid = os.getpid()

    def close(self) -> None:
        """Release everything: tasks cancelled, transports closed, private loops and portal stopped."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            loops, self._loops = dict(self._loops), {}
            thread_loops, self._thread_loops = dict(self._thread_loops), {}
            portal, self._portal = self._portal, None
        current = _running_loop()
        private = {loop for loop, _ in thread_loops.values()}
        for loop, resources in loops.items():
            if loop not in private and (portal is None or loop is not portal[0]):
                _close_foreign(loop, resources, current)
        for loop, in_use in thread_loops.values():
            _close_private(loop, loops.get(loop), in_use)
        if portal is not None:
            _close_portal(*portal, loops.get(portal[0]))

    async def aclose(self) -> None:
        """``close()`` for async code: the running loop's resources are awaited, not scheduled."""
        loop = asyncio.get_running_loop()
        with self._lock:
            mine = self._loops.pop(loop, None)
        if mine is not None:
            await mine.aclose()
        self.close()


class _Expiry:
    """The timer callback bounding a sync call: cancels its task and remembers that it did."""

    __slots__ = ("fired", "task")

    def __init__(self, task: "asyncio.Task[Any]") -> None:
        self.task = task
        self.fired = False

    def __call__(self) -> None:
        self.fired = True
        self.task.cancel()


def _running_loop() -> Optional[asyncio.AbstractEventLoop]:
    """The running loop of this thread, or ``None``: asyncio's own non-raising lookup (every sync call
    asks, and raising and catching ``RuntimeError`` there cost more than the rest of the driver)."""
    return asyncio._get_running_loop()


def _close_foreign(
    loop: asyncio.AbstractEventLoop, resources: LoopResources, current: Optional[asyncio.AbstractEventLoop]
) -> None:
    """Close a user loop's resources from wherever ``close()`` was called."""
    if loop.is_closed():
        _PARKED.append(resources)  # nothing can run on it any more; keep it from finalising
    elif loop is current:
        resources.spawn(resources.aclose(), "wechatpay-engine-close")  # sync close() inside async code
    elif loop.is_running():
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(resources.aclose(), loop).result(CLOSE_WAIT_SECONDS)
    else:
        _drive_idle_loop(lambda: loop.run_until_complete(resources.aclose()))


def _close_private(loop: asyncio.AbstractEventLoop, resources: Optional[LoopResources], in_use: threading.Lock) -> None:
    if not in_use.acquire(timeout=CLOSE_WAIT_SECONDS):
        return  # a call is still running on it in its thread; that thread's loop ends with it
    try:
        _drive_idle_loop(lambda: _finish_private(loop, resources))
    finally:
        in_use.release()


def _finish_private(loop: asyncio.AbstractEventLoop, resources: Optional[LoopResources]) -> None:
    if resources is not None:
        loop.run_until_complete(resources.aclose())
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()


def _drive_idle_loop(work: Callable[[], None]) -> None:
    """Run ``work``, which runs a loop that is not running, where asyncio allows it.

    That is this thread, unless a loop already runs here (``close()`` from async code): then a
    short-lived helper thread, waited for at most ``CLOSE_WAIT_SECONDS``. What ``work`` raises is
    raised here either way.
    """
    if _running_loop() is None:
        work()
        return
    failures: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # handed to the caller, not to threading.excepthook
            failures.append(exc)

    helper = threading.Thread(target=run, name="wechatpay-engine-close", daemon=True)
    helper.start()
    helper.join(CLOSE_WAIT_SECONDS)
    if helper.is_alive():
        logger.warning("closing an event loop's resources took over %.0f s; left to finish", CLOSE_WAIT_SECONDS)
    elif failures:
        raise failures[0]


def _close_portal(
    loop: asyncio.AbstractEventLoop, thread: threading.Thread, resources: Optional[LoopResources]
) -> None:
    if resources is not None:
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(resources.aclose(), loop).result(CLOSE_WAIT_SECONDS)
    with contextlib.suppress(Exception):
        asyncio.run_coroutine_threadsafe(loop.shutdown_asyncgens(), loop).result(CLOSE_WAIT_SECONDS)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(CLOSE_WAIT_SECONDS)
    if not thread.is_alive():
        loop.close()


def _after_fork_in_child() -> None:
    for runtime in list(_RUNTIMES):
        runtime.after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


_PROCESS: Optional[Runtime] = None


def shared(name: str, factory: Callable[[], T], aclose: Callable[[T], Any]) -> T:
    """The running loop's object ``name`` for every engine of the process, made on first use."""
    global _PROCESS
    if _PROCESS is None:
        _PROCESS = Runtime(_no_transport)
    return _PROCESS.resources().get_or_create(name, factory, aclose)


def _no_transport() -> Transport:
    raise AssertionError("the process-wide runtime holds shared objects, not transports")
