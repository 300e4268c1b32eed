"""Running the async pipeline for synchronous callers.

Design decisions:

* The sync API does not have its own pipeline: ``Engine.call`` submits the very coroutine
  ``Engine.acall`` runs to one private event loop living in a daemon thread (a "portal").
* One loop for all sync calls means one keep-alive pool for all of them, and it works from any
  thread, including threads that already run an event loop of their own.
* The loop thread starts on first use and stops on ``close()``.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Coroutine, Optional, TypeVar

T = TypeVar("T")


class Portal:
    def __init__(self) -> None:
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the portal loop and wait for its result (or exception)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._ensure_loop()).result()

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="wechatpay-engine-sync", daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    @property
    def started(self) -> bool:
        return self._loop is not None

    def close(self) -> None:
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
