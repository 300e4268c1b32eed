"""Built-in HTTP(S) transport on aiohttp.

Design decisions:

* It serves ``http://`` and ``https://`` base URLs and declines anything else, so other transports
  (the sandbox, a user's) claim their own schemes without any ordering games.
* One ``ClientSession`` (one keep-alive connection pool) per transport; ``engine.runtime`` makes one
  transport per event loop and closes it with that loop, because aiohttp sessions are bound to the
  loop that made them.
* The target is sent byte-for-byte as signed (``encoded=True``): aiohttp must not re-quote it.
  Redirects are not followed: a redirected answer is not the answer that was asked for.
* aiohttp's own retry of idempotent requests on a dropped keep-alive connection is switched off:
  only the engine decides what is retried, and every attempt it makes is signed afresh.
* aiohttp and asyncio exceptions are mapped to ``TransportError``/``TransportTimeoutError`` here,
  in one place, raised ``from`` the cause.
"""

from __future__ import annotations

import asyncio
from typing import Any, Optional

import aiohttp
from yarl import URL

from engine.errors import TransportError, TransportTimeoutError
from engine.hookspecs import hookimpl
from engine.transport import BaseTransport, TransportConfig, Write
from engine.wire import Headers, RawResponse, Request


class AiohttpTransport(BaseTransport):
    """Sends ``Request`` records over HTTP with a pooled aiohttp session."""

    def __init__(self, config: TransportConfig) -> None:
        self._timeout = aiohttp.ClientTimeout(total=config.timeout, connect=config.connect_timeout)
        self._session: Optional[aiohttp.ClientSession] = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            session = aiohttp.ClientSession(timeout=self._timeout, auto_decompress=True)
            # aiohttp silently re-sends GET/PUT/DELETE once when a kept-alive connection drops, with
            # the same Authorization (same nonce: a replay) and behind the engine's retry policy.
            # There is no public switch; the hang-up test in tests/test_security.py guards this.
            session._retry_connection = False
            self._session = session
        return self._session

    async def send(self, request: Request, config: TransportConfig) -> RawResponse:
        with _MappedErrors(request, config):
            async with self._open(request) as answer:
                return RawResponse(answer.status, _headers(answer), await answer.read())

    async def stream(self, request: Request, config: TransportConfig, write: Write) -> RawResponse:
        """Stream a 2xx body to ``write`` in chunks instead of holding it (bill downloads)."""
        with _MappedErrors(request, config):
            async with self._open(request) as answer:
                if not 200 <= answer.status < 300:
                    return RawResponse(answer.status, _headers(answer), await answer.read())
                async for chunk in answer.content.iter_chunked(64 * 1024):
                    write(chunk)
                return RawResponse(answer.status, _headers(answer), b"")

    def _open(self, request: Request) -> Any:
        return self._client().request(
            request.method,
            URL(request.url, encoded=True),
            data=request.body or None,
            headers=dict(request.headers.items()),
            allow_redirects=False,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


def _headers(answer: aiohttp.ClientResponse) -> Headers:
    return Headers(list(answer.headers.items()))


class _MappedErrors:
    """aiohttp and asyncio failures become the engine's transport errors, here and only here.

    A class rather than ``contextlib.contextmanager``: it wraps every send, and a generator-based
    manager costs five more Python calls each time.
    """

    __slots__ = ("config", "request")

    def __init__(self, request: Request, config: TransportConfig) -> None:
        self.request = request
        self.config = config

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Optional[type[BaseException]], exc: Optional[BaseException], tb: object) -> None:
        if exc is None:
            return
        request = self.request
        if isinstance(exc, asyncio.TimeoutError):
            raise TransportTimeoutError(f"no answer from {request.base_url} within {self.config.timeout} s") from exc
        if isinstance(exc, aiohttp.ClientResponseError):
            # Not chained: these carry request_info, whose repr holds the Authorization header, and
            # error reporters record causes and their locals.
            raise TransportError(f"{request.method} {request.base_url}: {type(exc).__name__}: {exc}") from None
        if isinstance(exc, aiohttp.ClientError):
            raise TransportError(f"{request.method} {request.base_url}: {type(exc).__name__}: {exc}") from exc


@hookimpl(trylast=True)
def wxpay_transport(config: TransportConfig) -> Optional[AiohttpTransport]:
    if config.base_url.startswith(("http://", "https://")):
        return AiohttpTransport(config)
    return None
