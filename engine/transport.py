"""The transport seam: the protocol every transport implements, and the one mock transport.

Design decisions:

* A transport is three coroutines over plain records (``engine.wire``): ``send`` a request and
  return the answer whole, ``stream`` a request's 2xx body to a ``write`` callback instead of holding
  it (bill downloads), and ``aclose``. Streaming is part of the protocol, not a method looked up with
  ``getattr``; ``BaseTransport`` gives any transport a ``stream`` built on ``send`` and a no-op
  ``aclose``, so a minimal transport writes ``send`` only.
* ``MockTransport(handler)`` is the only mock in the project (httpx's idea): ``handler`` receives
  the engine's ``Request`` record and returns, or awaits to, a ``RawResponse``. The Stubber, the
  in-process sandbox, the test helpers and the bench stand-ins are all built on it. It holds no
  event-loop state, so one instance serves every loop and thread.
* Bounded reads: ``TransportConfig.max_answer_bytes`` caps a held body after decompression, and
  ``Inflater`` is the one bounded decoder every transport uses, so neither a huge answer nor a
  compression bomb can exhaust memory before anything is verified. ``screen`` lets the engine refuse
  an answer from its headers alone, before its body is read.
* ``check_transport`` is the one place a transport object is checked against the protocol, so a
  wrong object fails when it is handed over, with a ``ConfigurationError`` naming the setting.
"""

from __future__ import annotations

import inspect
import zlib
from typing import Any, Awaitable, Callable, Iterator, Optional, Protocol, Union, runtime_checkable

import attrs

from engine.errors import AnswerTooLargeError, ConfigurationError, MalformedResponseError
from engine.wire import Headers, RawResponse, Request

CHUNK = 64 * 1024
Write = Callable[[bytes], None]


Screen = Callable[[int, Headers], None]
DEFAULT_MAX_ANSWER_BYTES = 4 * 1024 * 1024
DEFAULT_MAX_DOWNLOAD_BYTES = 1024**3  # a bill file, streamed to disk: far above a large merchant's day


@attrs.frozen
class TransportConfig:
    """What a transport needs to know to be built and to send.

    ``max_answer_bytes`` bounds an answer body held in memory, *after* decompression; ``screen``, when
    set, is called with the status and headers before any byte of the body is read, and raises to
    refuse the answer (the engine checks the signature headers of a 2xx there).
    """

    base_url: str
    timeout: float
    connect_timeout: float
    proxy: Optional[str] = attrs.field(default=None, repr=False)  # may carry proxy credentials
    trust_env: bool = False
    pool_size: int = 100
    max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES
    screen: Optional[Screen] = attrs.field(default=None, eq=False, repr=False)
    # The merchant's TLS client certificate (an ``engine.tls.ClientCertificate``), set only on the
    # configuration of a request whose descriptor needs it (``client_certificate: true``).
    client_certificate: Optional[Any] = None


class Inflater:
    """Content-Encoding undone with a bound: no chunk ever inflates past ``limit`` bytes in memory.

    ``identity`` passes bytes through; ``gzip`` and ``deflate`` (zlib-wrapped, or gzip sent as
    deflate) are inflated with ``max_length``, so a small bomb cannot expand into gigabytes before
    the limit is noticed. Other encodings are refused: the engine never asks for them. One
    compressed stream is the whole body: anything after its end (junk, or a second gzip member no
    digest covered) is refused at once, where zlib would park it, unbounded, in ``unused_data``; a
    stream that never reaches its end is refused at ``finish``.
    """

    def __init__(self, encoding: str, limit: Optional[int]) -> None:
        kind = encoding.strip().lower() or "identity"
        if kind not in ("identity", "gzip", "x-gzip", "deflate"):
            raise MalformedResponseError(f"unsupported Content-Encoding {kind[:32]!r} in the answer")
        self._limit = limit
        self._zlib: Optional[Any] = None
        if kind in ("gzip", "x-gzip"):
            self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif kind == "deflate":
            self._zlib = zlib.decompressobj(zlib.MAX_WBITS | 32)  # zlib or gzip header, detected
        self.size = 0
        self._fed = False  # an empty body is empty whatever its declared encoding

    def pieces(self, chunk: bytes) -> Iterator[bytes]:
        """The decoded bytes of ``chunk``, at most 64 KiB at a time; ``AnswerTooLargeError`` past the limit."""
        if self._zlib is None:
            yield self._count(chunk)
            return
        data = chunk
        self._fed = self._fed or bool(chunk)
        while data:
            if self._zlib.eof:
                raise MalformedResponseError("the answer's compressed body is followed by other data")
            try:
                out = self._zlib.decompress(data, CHUNK)
            except zlib.error:
                raise MalformedResponseError("the answer's compressed body is corrupt") from None
            if out:
                yield self._count(out)
            data = self._zlib.unconsumed_tail or self._zlib.unused_data

    def feed(self, chunk: bytes) -> bytes:
        return b"".join(self.pieces(chunk))

    def finish(self) -> bytes:
        """What the decoder still holds at the end of the body; ``MalformedResponseError`` if the
        compressed stream stopped before its end (a truncated body)."""
        if self._zlib is None:
            return b""
        tail = self._count(self._zlib.flush())
        if self._fed and not self._zlib.eof:
            raise MalformedResponseError("the answer's compressed body ends before the end of its stream")
        return tail

    def _count(self, data: bytes) -> bytes:
        self.size += len(data)
        if self._limit is not None and self.size > self._limit:
            raise AnswerTooLargeError(f"the answer is larger than {self._limit} bytes")
        return data


@runtime_checkable
class Transport(Protocol):
    """Send, stream, release: the whole contract between the engine and the network."""

    async def send(self, request: Request, config: TransportConfig) -> RawResponse: ...

    async def stream(self, request: Request, config: TransportConfig, write: Write) -> RawResponse: ...

    async def aclose(self) -> None: ...


class BaseTransport:
    """Defaults for transports that only know how to ``send``."""

    async def send(self, request: Request, config: TransportConfig) -> RawResponse:
        raise NotImplementedError

    async def stream(self, request: Request, config: TransportConfig, write: Write) -> RawResponse:
        """Send, then hand a 2xx body to ``write`` in chunks; the answer returned has no body."""
        answer = await self.send(request, config)
        if not 200 <= answer.status < 300:
            return answer
        for start in range(0, len(answer.body), CHUNK):
            write(answer.body[start : start + CHUNK])
        return RawResponse(answer.status, answer.headers, b"")

    async def aclose(self) -> None:
        return None


Handler = Callable[[Request], Union[RawResponse, Awaitable[RawResponse]]]


class MockTransport(BaseTransport):
    """A transport answering every request with ``handler(request)`` (sync or async).

    ``requests`` keeps the requests sent, in order, unless ``record=False`` (long benchmarks).
    """

    def __init__(self, handler: Handler, *, record: bool = True) -> None:
        if not callable(handler):
            raise ConfigurationError("MockTransport(handler): handler must be callable")
        self.handler = handler
        self.record = record
        self.requests: list[Request] = []

    async def send(self, request: Request, config: TransportConfig) -> RawResponse:
        if self.record:
            self.requests.append(request)
        answer = self.handler(request)
        if inspect.isawaitable(answer):
            answer = await answer
        if not isinstance(answer, RawResponse):
            raise ConfigurationError(f"MockTransport handler returned {type(answer).__name__}, not a RawResponse")
        return answer

    def __repr__(self) -> str:
        return f"<MockTransport {getattr(self.handler, '__qualname__', type(self.handler).__name__)}>"


def check_transport(candidate: Any, setting: str) -> Transport:
    """``candidate`` if it implements the transport protocol, else a ``ConfigurationError``."""
    missing = [name for name in ("send", "stream", "aclose") if not callable(getattr(candidate, name, None))]
    if missing:
        raise ConfigurationError(
            f"{setting}: {type(candidate).__name__} is not a transport (no {', '.join(missing)}); "
            "subclass engine.BaseTransport or use engine.MockTransport"
        )
    return candidate  # type: ignore[no-any-return]
