"""The background tasks of one served sandbox: its ticker, and the callbacks its admin API sends.

Design decisions:

* One owner per server (``SandboxServer.tasks``), on the server's loop: every task the server or
  its admin API starts goes through ``start`` or ``start_delivery``, and ``close`` (the server's
  ``stop``) cancels every one and waits until each has finished. A stopped server leaves nothing
  pending on its loop: a delivery's client session is closed by its own ``async with``, and no task
  is destroyed pending when the loop closes (``ServerThread`` closes it right after ``stop``).
* Deliveries are counted against ``limit`` (``DEFAULT_DELIVERY_LIMIT``); the ticker is not, there
  is one. ``check_room`` refuses one more with the sandbox's 429 ``RATELIMIT_EXCEEDED``
  (``RefusedError``), naming the limit, and ``start_delivery`` asks it too, so nothing can start
  past the limit; the admin API asks before it builds a notification, so a refusal costs nothing
  but reading the body and the answer. Why the admin API bounds them here and not in the outbox: see
  ``engine.sandbox.admin``.
* A task leaves the count when it finishes, however it finishes, so the limit bounds deliveries in
  flight, not deliveries ever made.
"""

from __future__ import annotations

import asyncio
from typing import Any, Coroutine

from engine.sandbox.objects import RefusedError, checked_limit

DEFAULT_DELIVERY_LIMIT = 100  # each holds a client session (and a socket while it waits for an answer)
Work = Coroutine[Any, Any, Any]


class Tasks:
    """The tasks one server runs in the background; at most ``limit`` of them deliveries."""

    def __init__(self, limit: int = DEFAULT_DELIVERY_LIMIT) -> None:
        self.limit = checked_limit("delivery_limit", limit)
        self._running: set[asyncio.Task[Any]] = set()
        self._deliveries: set[asyncio.Task[Any]] = set()

    @property
    def deliveries(self) -> int:
        """How many deliveries are in flight."""
        return len(self._deliveries)

    def check_room(self) -> None:
        """``RefusedError`` 429 when one more delivery would pass the limit; None when it fits."""
        if len(self._deliveries) >= self.limit:
            raise RefusedError(
                429,
                "RATELIMIT_EXCEEDED",
                f"the sandbox has {len(self._deliveries)} callbacks from /sandbox/notify and /sandbox/v2/notify "
                f"in flight, its delivery limit {self.limit}: wait until they are acknowledged or run out of "
                "retries, or raise the limit (SandboxServer(delivery_limit=...), "
                "wechatpay sandbox serve --delivery-limit)",
            )

    def start(self, work: Work) -> None:
        """Run ``work`` until it ends or ``close`` (uncounted: the server's own, such as its ticker)."""
        self._track(work)

    def start_delivery(self, work: Work) -> None:
        """Run a delivery, counted against the limit (``RefusedError`` 429 when it is reached)."""
        try:
            self.check_room()
        except RefusedError:
            work.close()  # never started: closed, so it is not reported as never awaited
            raise
        self._deliveries.add(self._track(work))

    def _track(self, work: Work) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(work)
        self._running.add(task)
        task.add_done_callback(self._forget)
        return task

    def _forget(self, task: asyncio.Task[Any]) -> None:
        self._running.discard(task)
        self._deliveries.discard(task)

    async def close(self) -> None:
        """Cancel every task and wait until each has finished."""
        running = list(self._running)
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
