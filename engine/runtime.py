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
  reopens. A call that raced ``close()`` past the open check is refused the same way once it holds
  its loop, never with asyncio's "Event loop is closed".
* ``close()`` lets calls in flight finish, waiting at most ``CLOSE_WAIT_SECONDS``, then returns;
  a call that outlives the wait releases what it ran on itself when it ends: a thread's private
  loop is closed by that thread, and the portal thread finishes its calls, releases its loop's
  resources and closes the loop before it exits. So a call in flight at ``close()`` finishes (or
  fails typed at its own deadline), and nothing is left open behind it. A portal call is handed over
  under the lock ``close()`` takes, so it is either refused or among the calls ``close()`` waits for.
* An engine collected without ``close()`` winds its portal down as ``close()`` would (a
  ``weakref.finalize`` on the runtime): the portal thread does not outlive its engine.
* A sync call interrupted from outside (Ctrl-C, an exception raised by a signal handler, as
  Celery's soft time limit does) is cancelled and unwound before the exception goes on: left
  pending on the thread's private loop, it would resume at that thread's next sync call and send
  what it had not sent yet (a retry) behind an unrelated call.
* A sync call from code that runs on the portal thread itself (a plugin, hook or transport
  handler inside a sync call made from async code) is a ``UsageError``: handed to the same portal,
  it would wait on itself until its timeout.
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
import concurrent.futures
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
CLOSED = "this engine is closed; build a new Engine"

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
        self._portal_calls: set["concurrent.futures.Future[Any]"] = set()
        # What close() took away, for a thread whose call outlived close()'s wait to release itself.
        self._closing: dict[asyncio.AbstractEventLoop, LoopResources] = {}
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
        running = _running_loop()
        if running is None:  # not inside ``except``: a failure must not chain "no running event loop"
            return self._run_on_thread_loop(make, timeout)
        return self._run_on_portal(make, timeout, running)

    def _run_on_thread_loop(self, make: Callable[[], Coroutine[Any, Any, T]], timeout: float) -> T:
        loop, in_use = self._thread_loop()
        with in_use:
            if loop.is_closed():  # close() released it between our check and this lock
                raise UsageError(CLOSED)
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
                if not task.done():  # interrupted from outside: Ctrl-C, a signal handler's exception
                    _abandon(loop, task)
                if self.closed:  # close() gave up waiting for this call: the loop is this thread's to release
                    self._release_outlived(loop)

    def _release_outlived(self, loop: asyncio.AbstractEventLoop) -> None:
        """Close a private loop whose call outlived ``close()``'s wait (its ``in_use`` lock is held here)."""
        if loop.is_closed():
            return
        try:
            _finish_private(loop, self._closing.get(loop))
        except Exception:  # the call's own outcome is what the caller must see
            logger.warning("releasing a thread's event loop after close failed", exc_info=True)

    def _thread_loop(self) -> tuple[asyncio.AbstractEventLoop, threading.Lock]:
        ident = threading.get_ident()
        entry = self._thread_loops.get(ident)
        if entry is None or entry[0].is_closed():
            with self._lock:
                self.check_open()
                entry = self._thread_loops[ident] = (asyncio.new_event_loop(), threading.Lock())
        return entry

    def _run_on_portal(
        self, make: Callable[[], Coroutine[Any, Any, T]], timeout: float, running: asyncio.AbstractEventLoop
    ) -> T:
        # Handed over under the lock close() takes: a call is either refused or counted among those
        # close() lets finish, never scheduled on a portal that is winding down.
        with self._lock:
            loop = self._portal_loop()
            if running is loop:
                raise UsageError(
                    "a sync engine call from code the engine runs on its portal thread (a plugin, hook or "
                    "transport handler inside a sync call made from async code) would wait on itself; "
                    "use await engine.acall(...) there"
                )
            future = asyncio.run_coroutine_threadsafe(make(), loop)
            self._portal_calls.add(future)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise TransportTimeoutError(f"no result within {timeout:.0f} s; the call was cancelled") from None
        finally:
            if not future.done():  # interrupted from outside, as on a private loop: the call is given up
                future.cancel()
            self._portal_calls.discard(future)

    def _portal_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            self.check_open()
            if self._portal is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=_serve_portal, args=(loop,), name="wechatpay-engine-portal", daemon=True
                )
                thread.start()
                self._portal = (loop, thread)
                # An engine dropped without close(): its portal thread must not outlive it.
                weakref.finalize(self, _abandon_portal, loop, self._pid)
            return self._portal[0]

    # -- lifecycle -------------------------------------------------------------------------

    def check_open(self) -> None:
        if self.closed:
            raise UsageError(CLOSED)
        if os.getpid() != self._pid:  # a fork the at-fork hook did not see
            self.after_fork()

    def after_fork(self) -> None:
        """In a forked child: park everything inherited and start clean."""
        self._lock = threading.RLock()  # the parent's may have been held by another thread at fork
        _PARKED.append((self._loops, self._thread_loops, self._portal))
        self._loops, self._thread_loops, self._portal = {}, {}, None
        self._portal_calls, self._closing = set(), {}
        self._pid = os.getpid()

    def close(self) -> None:
        """Release everything: tasks cancelled, transports closed, private loops and portal stopped."""
        with self._lock:
            if self.closed:
                return
            loops, self._loops = dict(self._loops), {}
            self._closing = loops
            self.closed = True
            thread_loops, self._thread_loops = dict(self._thread_loops), {}
            portal, self._portal = self._portal, None
            portal_calls = list(self._portal_calls)
        current = _running_loop()
        private = {loop for loop, _ in thread_loops.values()}
        for loop, resources in loops.items():
            if loop not in private and (portal is None or loop is not portal[0]):
                _close_foreign(loop, resources, current)
        for loop, in_use in thread_loops.values():
            _close_private(loop, loops.get(loop), in_use)
        if portal is not None:
            _close_portal(*portal, loops.get(portal[0]), portal_calls)

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


def _abandon(loop: asyncio.AbstractEventLoop, task: "asyncio.Task[Any]") -> None:
    """Cancel a call its caller gave up on, and let it unwind now (its ``finally`` blocks, its
    connection). Left pending, the thread's next sync call would run it on: an abandoned call would
    send its retry then. A second interruption here leaves it cancelled, so it only unwinds later."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):  # its outcome is nobody's now
        loop.run_until_complete(task)


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
        closing = resources.aclose()
        try:
            future = asyncio.run_coroutine_threadsafe(closing, loop)
        except RuntimeError:  # it closed meanwhile (its asyncio.run ended): its shutdown released them
            closing.close()
            return
        with contextlib.suppress(Exception):
            future.result(CLOSE_WAIT_SECONDS)
    else:
        _drive_idle_loop(lambda: loop.run_until_complete(resources.aclose()))


def _close_private(loop: asyncio.AbstractEventLoop, resources: Optional[LoopResources], in_use: threading.Lock) -> None:
    if not in_use.acquire(timeout=CLOSE_WAIT_SECONDS):
        return  # a call is still running on it in its thread; that thread releases the loop when it ends
    try:
        if not loop.is_closed():  # else that thread released it already
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


def _serve_portal(loop: asyncio.AbstractEventLoop) -> None:
    """The portal thread: run the loop until ``_wind_down_portal`` stops it, then close it, here, where
    no call can be scheduled on it any more."""
    try:
        loop.run_forever()
    finally:
        loop.close()


def _close_portal(
    loop: asyncio.AbstractEventLoop,
    thread: threading.Thread,
    resources: Optional[LoopResources],
    calls: list["concurrent.futures.Future[Any]"],
) -> None:
    """Wind the portal down: its calls in flight finish first, as a thread's private loop's do.

    Waited for at most ``CLOSE_WAIT_SECONDS``; past that the portal thread finishes the calls (each
    bounded by its caller, who cancels it at its deadline), then releases everything and exits.
    """
    _hand_over(_wind_down_portal(resources, calls), loop)
    if thread is not threading.current_thread():  # close() from a call on the portal itself cannot wait on it
        thread.join(CLOSE_WAIT_SECONDS)


def _abandon_portal(loop: asyncio.AbstractEventLoop, pid: int) -> None:
    """The portal's runtime was collected unclosed: wind the portal down (no calls can be left: each
    holds its engine). Never in a forked child, whose inherited portal has no thread."""
    if os.getpid() == pid:
        _hand_over(_wind_down_portal(None, []), loop)


def _hand_over(coroutine: Coroutine[Any, Any, None], loop: asyncio.AbstractEventLoop) -> None:
    """Schedule ``coroutine`` on ``loop`` from another thread; on a closed loop (nothing left to release)
    it is discarded unstarted, without a "never awaited" warning."""
    try:
        asyncio.run_coroutine_threadsafe(coroutine, loop)
    except RuntimeError:
        coroutine.close()


async def _wind_down_portal(resources: Optional[LoopResources], calls: list["concurrent.futures.Future[Any]"]) -> None:
    loop = asyncio.get_running_loop()
    try:
        waiting = [asyncio.wrap_future(call, loop=loop) for call in calls]
        if waiting:
            await asyncio.wait(waiting)
        for seen in waiting:  # each caller reads its own outcome; these copies must not warn nobody did
            if not seen.cancelled():
                seen.exception()
        if resources is not None:
            await resources.aclose()
        await loop.shutdown_asyncgens()
        await asyncio.sleep(0)  # a release queued with this one (a collected engine's) starts first
        others = asyncio.all_tasks() - {asyncio.current_task()}
        if others:
            await asyncio.wait(others, timeout=CLOSE_WAIT_SECONDS)
    finally:
        loop.stop()


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
