"""Connection pools shared by every engine on one event loop (many merchants, one pool).

Design decisions:

* WeChat Pay authenticates each request by its signature, not by the connection (no client
  certificate on APIv3), so the keep-alive pool to its hosts can be shared by the engines of every
  merchant in the process. Keys, stores and clocks are never shared; a connection pool is.
* A pool is bound to the event loop that made it (aiohttp's connector), so there is one per loop
  and per key, made on first use. Engines borrow it (their sessions do not own it): closing one
  engine leaves the pool to the others. The pool closes when its loop shuts down (a tiny async
  generator that ``loop.shutdown_asyncgens()`` finalises, as ``engine.runtime`` does), so twenty
  ``asyncio.run`` calls leave nothing open.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from typing import Any, AsyncIterator, Awaitable, Callable

# loop -> (its pools by key, the guard that closes them; held here so it lives as long as the loop)
_POOLS: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[dict[str, Any], Any]]" = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def shared(key: str, factory: Callable[[], Any], aclose: Callable[[Any], Awaitable[None]]) -> Any:
    """The running loop's shared object ``key``, made by ``factory()`` on first use."""
    loop = asyncio.get_running_loop()
    with _LOCK:
        entry = _POOLS.get(loop)
        if entry is None:
            pools: dict[str, Any] = {}
            guard = _until_shutdown(pools, aclose)
            with contextlib.suppress(StopIteration):
                guard.asend(None).send(None)  # runs to its ``yield`` now; finalised at loop shutdown
            entry = _POOLS[loop] = (pools, guard)
        pools = entry[0]
        found = pools.get(key)
        if found is None or getattr(found, "closed", False):
            found = pools[key] = factory()
        return found


async def _until_shutdown(pools: dict[str, Any], aclose: Callable[[Any], Awaitable[None]]) -> AsyncIterator[None]:
    try:
        yield
    finally:
        for pool in list(pools.values()):
            with contextlib.suppress(Exception):
                await aclose(pool)
        pools.clear()


def aiohttp_connector() -> Any:
    """The running loop's shared aiohttp connector (a keep-alive pool of 100 connections)."""
    import aiohttp

    async def close(connector: Any) -> None:
        await connector.close()

    return shared("aiohttp", lambda: aiohttp.TCPConnector(limit=100), close)
