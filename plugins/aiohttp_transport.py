"""Built-in HTTP(S) transport on aiohttp.

Design decisions:

* It serves ``http://`` and ``https://`` base URLs and declines anything else, so other transports
  (the sandbox, a user's) claim their own schemes without any ordering games.
* One ``ClientSession`` per transport; ``engine.runtime`` makes one transport per event loop and
  closes it with that loop, because aiohttp sessions are bound to the loop that made them. The
  session borrows the loop's keep-alive pool from ``engine.pools``, shared by every engine (every
  merchant) on that loop and closed with the loop, not with any one engine.
* The target is sent byte-for-byte as signed (``encoded=True``): aiohttp must not re-quote it.
  Redirects are not followed: a redirected answer is not the answer that was asked for.
* aiohttp's own retry of idempotent requests on a dropped keep-alive connection is switched off:
  only the engine decides what is retried, and every attempt it makes is signed afresh.
* aiohttp and asyncio exceptions are mapped to ``TransportError``/``TransportTimeoutError`` here,
  in one place, raised ``from`` the cause.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Iterator, Optional

import aiohttp
from yarl import URL

from engine.errors import TransportError, TransportTimeoutError
from engine.hookspecs import hookimpl
from engine.pools import aiohttp_connector
from engine.transport import BaseTransport, TransportConfig, Write
from engine.wire import Headers, RawResponse, Request


class AiohttpTransport(BaseTransport):
    """Sends ``Request`` records over HTTP with a pooled aiohttp session."""

    def __init__(self, config: TransportConfig) -> None:
        self._timeout = aiohttp.ClientTimeout(total=config.timeout, connect=config.connect_timeout)
        self._session: Optional[aiohttp.ClientSession] = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            session = aiohttp.ClientSession(
                timeout=self._timeout, auto_decompress=True, connector=aiohttp_connector(), connector_owner=False
            )
            # aiohttp silently re-sends GET/PUT/DELETE once when a kept-alive connection drops, with
            # the same Authorization (same nonce: a replay) and behind the engine's retry policy.
            # There is no public switch; the hang-up test in tests/test_security.py guards this.
            session._retry_connection = False
            self._session = session
        return self._session

    async def send(self, request: Request, config: TransportConfig) -> RawResponse:
        with _mapped_errors(request, config):
            async with self._open(request) as answer:
                return RawResponse(answer.status, _headers(answer), await answer.read())

    async def stream(self, request: Request, config: TransportConfig, write: Write) -> RawResponse:
        """Stream a 2xx body to ``write`` in chunks instead of holding it (bill downloads)."""
        with _mapped_errors(request, config):
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


@contextlib.contextmanager
def _mapped_errors(request: Request, config: TransportConfig) -> Iterator[None]:
    """aiohttp and asyncio failures become the engine's transport errors, here and only here."""
    try:
        yield
    except asyncio.TimeoutError as exc:
        raise TransportTimeoutError(f"no answer from {request.base_url} within {config.timeout} s") from exc
    except aiohttp.ClientResponseError as exc:
        # Not chained: these carry request_info, whose repr holds the Authorization header, and error
        # reporters record causes and their locals.
        raise TransportError(f"{request.method} {request.base_url}: {type(exc).__name__}: {exc}") from None
    except aiohttp.ClientError as exc:
        raise TransportError(f"{request.method} {request.base_url}: {type(exc).__name__}: {exc}") from exc


@hookimpl(trylast=True)
def wxpay_transport(config: TransportConfig) -> Optional[AiohttpTransport]:
    if config.base_url.startswith(("http://", "https://")):
        return AiohttpTransport(config)
    return None
