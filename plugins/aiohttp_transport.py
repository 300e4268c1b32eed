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
* No cookies (``DummyCookieJar``). WeChat Pay's APIs are signed requests, not sessions: a cookie a
  peer (or a proxy on the way) sets would ride, unsigned, on every later request of that session,
  and aiohttp's default jar keeps every new one, so a peer setting a fresh cookie on each answer
  would grow the engine's memory without bound.
* aiohttp's own retry of idempotent requests on a dropped keep-alive connection is switched off:
  only the engine decides what is retried, and every attempt it makes is signed afresh.
* aiohttp and asyncio exceptions are mapped to the engine's transport errors here, in one place:
  ``ConnectError`` (and ``ConnectTimeoutError``) when no connection was made, so nothing was sent
  and any operation may be retried; ``TransportTimeoutError``/``TransportError`` when the request
  may have been written. A failing proxy is named by scheme, host and port, never its credentials.
* Reads are bounded: a held body stops at ``max_answer_bytes`` after decompression (the engine's
  bounded ``Inflater``; aiohttp's own decompression is off), and ``screen`` refuses a 2xx whose
  signature headers are missing or malformed before one byte of its body is read. Leaving the
  ``async with`` early releases (closes) the connection.
* A closed transport stays closed: an attempt after ``aclose()`` (a call in flight when its engine
  closed, retrying) is a ``ConnectError`` (nothing was sent), never a fresh session that would send
  after ``close()`` and itself never be closed. ``aclose()`` waits for the requests in flight (each
  bounded by its timeout) before closing the session: aiohttp drops a closed session's connector
  under a request still connecting, which then fails with a bare ``AttributeError``.
* Timeouts, the proxy, ``trust_env`` (environment proxies, off unless asked) and the pool size
  come from ``TransportConfig``; the timeout is per request, so the retry deadline can cut it.
* **TLS.** ``https://`` requests use a context on the default trust store made by this transport
  (so ``SSL_CERT_FILE`` set before the engine's first call applies), and a request whose config
  carries the merchant's client certificate (APIv2 operations with ``client_certificate: true``)
  uses that certificate's own context. aiohttp pools connections per context, so a connection
  opened with the certificate is never reused for a request without it, or the other way round.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any, Optional
from urllib.parse import urlsplit

import aiohttp
from yarl import URL

from engine import tls
from engine.errors import AnswerTooLargeError, ConnectError, ConnectTimeoutError, TransportError, TransportTimeoutError
from engine.hookspecs import hookimpl
from engine.runtime import shared
from engine.transport import CHUNK, BaseTransport, Inflater, TransportConfig, Write
from engine.wire import Headers, RawResponse, Request


class AiohttpTransport(BaseTransport):
    """Sends ``Request`` records over HTTP with a pooled aiohttp session."""

    def __init__(self, config: TransportConfig) -> None:
        self._config = config
        self._session: Optional[aiohttp.ClientSession] = None
        self._default_tls: Optional[Any] = None
        self._closed = False
        self._in_flight = 0
        self._idle: Optional[asyncio.Event] = None  # made by aclose() when requests are in flight

    def _tls(self, request: Request, config: TransportConfig) -> Any:
        """The SSL context of one request: the client certificate's, the default one, or none (http)."""
        if config.client_certificate is not None:
            return config.client_certificate.ssl_context()
        if not request.base_url.startswith("https://"):
            return True  # aiohttp's default (unused for http://)
        if self._default_tls is None:
            self._default_tls = tls.default_context()
        return self._default_tls

    def _client(self) -> aiohttp.ClientSession:
        if self._closed:
            # A call in flight when its engine closed this loop's transport (a retry after the wait):
            # a new session here would send after close() and never be closed itself.
            raise ConnectError("the engine was closed while this call waited; the request was not sent")
        if self._session is None or self._session.closed:
            # Decompression is the engine's (engine.transport.Inflater), bounded; aiohttp's is not. The
            # connection pool is shared by every engine on this loop (many merchants, one pool).
            connector = shared_aiohttp_connector(self._config.pool_size)
            trust_env = self._config.trust_env
            session = aiohttp.ClientSession(
                connector=connector,
                connector_owner=False,
                auto_decompress=False,
                trust_env=trust_env,
                cookie_jar=aiohttp.DummyCookieJar(),
            )
            # aiohttp silently re-sends GET/PUT/DELETE once when a kept-alive connection drops, with
            # the same Authorization (same nonce: a replay) and behind the engine's retry policy.
            # There is no public switch; the hang-up test in tests/test_security.py guards this.
            session._retry_connection = False
            self._session = session
        return self._session

    async def send(self, request: Request, config: TransportConfig) -> RawResponse:
        self._in_flight += 1
        try:
            async with self._open(request, config) as answer:
                headers = _headers(answer)
                if config.screen is not None:
                    config.screen(answer.status, headers)  # refuse on headers alone, body unread
                return RawResponse(answer.status, headers, await _read_bounded(answer, config.max_answer_bytes))
        except (aiohttp.ClientError, TimeoutError) as exc:
            _raise_mapped(exc, request, config)
            raise
        finally:
            self._landed()

    async def stream(self, request: Request, config: TransportConfig, write: Write) -> RawResponse:
        """Stream a 2xx body to ``write`` in chunks instead of holding it (bill downloads)."""
        self._in_flight += 1
        try:
            async with self._open(request, config) as answer:
                headers = _headers(answer)
                if not 200 <= answer.status < 300:
                    return RawResponse(answer.status, headers, await _read_bounded(answer, config.max_answer_bytes))
                inflater = Inflater(answer.headers.get("Content-Encoding", ""), None)
                async for chunk in answer.content.iter_chunked(CHUNK):
                    for piece in inflater.pieces(chunk):
                        write(piece)
                tail = inflater.finish()
                if tail:
                    write(tail)
                return RawResponse(answer.status, headers, b"")
        except (aiohttp.ClientError, TimeoutError) as exc:
            _raise_mapped(exc, request, config)
            raise
        finally:
            self._landed()

    def _landed(self) -> None:
        self._in_flight -= 1
        if not self._in_flight and self._idle is not None:
            self._idle.set()

    def _open(self, request: Request, config: TransportConfig) -> Any:
        return self._client().request(
            request.method,
            URL(request.url, encoded=True),
            data=request.body or None,
            headers=dict(request.headers.items()),
            allow_redirects=False,
            timeout=_timeout(config.timeout, config.connect_timeout),
            proxy=config.proxy,
            ssl=self._tls(request, config),
        )

    async def aclose(self) -> None:
        self._closed = True
        if self._in_flight:  # each is bounded by its own timeout; closing under one breaks aiohttp mid-request
            self._idle = asyncio.Event()
            await self._idle.wait()
        if self._session is not None:
            await self._session.close()


async def _read_bounded(answer: aiohttp.ClientResponse, limit: int) -> bytes:
    """The whole body, decoded, or ``AnswerTooLargeError`` as soon as it passes ``limit`` bytes."""
    declared = answer.content_length
    encoding = answer.headers.get("Content-Encoding", "")
    plain = encoding.strip().lower() in ("", "identity")
    if declared is not None and plain:
        if declared > limit:
            raise AnswerTooLargeError(f"the answer announces {declared} bytes, more than {limit}")
        # aiohttp's parser stops at Content-Length, so reading it whole stays within the limit (the
        # common case, and cheaper than the chunk loop below).
        return await answer.read()
    inflater = Inflater(encoding, limit)
    body = bytearray()
    async for chunk in answer.content.iter_chunked(CHUNK):
        for piece in inflater.pieces(chunk):
            body += piece
    body += inflater.finish()
    return bytes(body)


@functools.lru_cache(maxsize=16)
def _timeout(total: float, connect: float) -> aiohttp.ClientTimeout:
    """One immutable timeout record per distinct setting (only a deadline-cut attempt makes a new one)."""
    return aiohttp.ClientTimeout(total=total, connect=connect)


def _headers(answer: aiohttp.ClientResponse) -> Headers:
    return Headers(list(answer.headers.items()))


def _raise_mapped(failure: BaseException, request: Request, config: TransportConfig) -> None:
    """Raise the engine's transport error for an aiohttp or asyncio failure: here and only here.

    A plain ``try`` in the senders, not a context manager: this sits on every call's path.
    """
    try:
        raise failure
    except aiohttp.ClientProxyConnectionError as exc:
        raise ConnectError(f"cannot reach the proxy {_proxy_name(config.proxy)}: {exc.os_error}") from None
    except aiohttp.ClientHttpProxyError as exc:
        raise ConnectError(f"the proxy {_proxy_name(config.proxy)} refused the request ({exc.status})") from None
    except _CONNECT_TIMEOUTS as exc:
        raise ConnectTimeoutError(f"no connection to {request.base_url} within {config.connect_timeout} s") from exc
    except TimeoutError as exc:
        raise TransportTimeoutError(f"no answer from {request.base_url} within {config.timeout} s") from exc
    except aiohttp.ClientConnectorError as exc:  # refused, unreachable, name not found: nothing was sent
        raise ConnectError(f"{request.method} {request.base_url}: cannot connect ({exc.os_error})") from exc
    except aiohttp.ClientResponseError as exc:
        # Not chained: these carry request_info, whose repr holds the Authorization header, and error
        # reporters record causes and their locals.
        raise TransportError(f"{request.method} {request.base_url}: {type(exc).__name__}: {exc}") from None
    except aiohttp.ClientError as exc:
        raise TransportError(f"{request.method} {request.base_url}: {type(exc).__name__}: {exc}") from exc


# aiohttp >= 3.10 tells a connect timeout apart from a read timeout; older ones do not.
_CONNECT_TIMEOUTS: tuple[type[BaseException], ...] = tuple(
    kind for kind in (getattr(aiohttp, "ConnectionTimeoutError", None),) if kind is not None
)


def shared_aiohttp_connector(limit: int) -> aiohttp.TCPConnector:
    """The running loop's keep-alive pool of ``limit`` connections, shared by every engine using that size."""

    async def close(connector: aiohttp.TCPConnector) -> None:
        await connector.close()

    return shared(f"aiohttp-connector:{limit}", lambda: aiohttp.TCPConnector(limit=limit), close)


def _proxy_name(proxy: Optional[str]) -> str:
    """The proxy's scheme, host and port: never its credentials."""
    parts = urlsplit(proxy or "")
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}"


@hookimpl(trylast=True)
def wxpay_transport(config: TransportConfig) -> Optional[AiohttpTransport]:
    if config.base_url.startswith(("http://", "https://")):
        return AiohttpTransport(config)
    return None
