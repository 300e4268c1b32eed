"""Hostile answers over real HTTP: oversized bodies, compression bombs, malformed signature headers.

A small aiohttp server on 127.0.0.1 plays a compromised upstream (or a proxy, or a MITM in a test
network). No key is needed to send any of this, so the engine must refuse it before trusting it,
with a typed error, in bounded memory. Memory is measured with ``tracemalloc`` peaks (allocation
sizes, not timings): the body of a refused answer is never held whole.
"""

from __future__ import annotations

import asyncio
import gzip
import threading
import tracemalloc
import zlib
from typing import Any, AsyncIterator, Callable

import pytest
from aiohttp import web
from conftest import COMBINE_PAPAY, PATIENCE
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import (
    AnswerTooLargeError,
    Engine,
    EngineError,
    MalformedResponseError,
    RetryPolicy,
    SignatureError,
    UnconfirmedError,
)
from engine.sandbox import SandboxIdentity

PAPAY = "combine_papay.mini_program"
GET = "GET /v3/certificates"
MiB = 1024 * 1024
SIGNED = {
    "Wechatpay-Timestamp": "1700000000",
    "Wechatpay-Nonce": "593BEC0C930BF1AFEB40B4A08C8FB242",
    "Wechatpay-Signature": "c2lnbmF0dXJl",
    "Wechatpay-Serial": "PUB_KEY_ID_0000000000000000000000000000",
}


class Hostile:
    """Answers every request with whatever ``answer`` builds."""

    def __init__(self) -> None:
        self.answer: Callable[[web.Request], Any] = lambda request: web.Response(status=200)
        self.base_url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        result = self.answer(request)
        return await result if hasattr(result, "__await__") else result


@pytest.fixture
async def hostile() -> AsyncIterator[Hostile]:
    server = Hostile()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.base_url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    yield server
    await runner.cleanup()


@pytest.fixture
def engine_for(identity: SandboxIdentity) -> Callable[[Hostile], Engine]:
    def build(server: Hostile, **options: Any) -> Engine:
        settings = {**identity.engine_settings(), "base_url": server.base_url, "load_entry_points": False}
        return Engine(**{**settings, "retry": RetryPolicy.never(), "timeout": PATIENCE, **options})

    return build


async def failure(engine: Engine, error: type = EngineError, ref: str = PAPAY) -> BaseException:
    try:
        with pytest.raises(error) as caught:
            await engine.acall(ref, COMBINE_PAPAY if ref == PAPAY else {"algorithm_type": "RSA"})
    finally:
        await engine.aclose()
    return caught.value


def streamed(total: int, chunk: bytes, headers: dict[str, str], status: int = 200) -> Callable[..., Any]:
    async def answer(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=status, headers=headers)
        await response.prepare(request)
        sent = 0
        try:
            while sent < total:
                await response.write(chunk)
                sent += len(chunk)
        except (ConnectionError, RuntimeError):  # the engine hung up: that is the point
            pass
        return response

    return answer


def peak_mib(during: Callable[[], Any]) -> Any:
    async def measured() -> float:
        tracemalloc.start()
        try:
            await during()
            return tracemalloc.get_traced_memory()[1] / MiB
        finally:
            tracemalloc.stop()

    return measured()


# == size ===========================================================================================


@pytest.mark.parametrize("status", [200, 400])
async def test_a_200_mib_answer_is_refused_in_bounded_memory(hostile, engine_for, status) -> None:
    hostile.answer = streamed(200 * MiB, b"x" * MiB, {**SIGNED, "Content-Type": "application/json"}, status)
    engine = engine_for(hostile)
    caught: list[BaseException] = []

    async def call() -> None:
        caught.append(await failure(engine, AnswerTooLargeError, ref=GET))

    peak = await peak_mib(call)
    assert "larger than 4194304 bytes" in str(caught[0])
    assert peak < 40, f"peak {peak:.1f} MiB: the body was held"


async def test_an_oversize_answer_to_a_post_is_unconfirmed(hostile, engine_for) -> None:
    """The request was taken and answered: its outcome is unknown, so it is reconciled, not resent."""
    hostile.answer = streamed(20 * MiB, b"x" * MiB, {**SIGNED, "Content-Type": "application/json"})
    error = await failure(engine_for(hostile), UnconfirmedError)
    assert isinstance(error.__cause__, AnswerTooLargeError) and error.reconcile is not None


async def test_an_oversize_answer_to_a_get_is_not_asked_for_again(hostile, engine_for) -> None:
    """A GET may be resent, but an answer over the bound is the server's answer to it: retrying would
    read the bound's worth again, for the same refusal."""
    asked: list[str] = []
    oversize = streamed(8 * MiB, b"x" * MiB, {**SIGNED, "Content-Type": "application/json"})

    def answer(request: web.Request) -> Any:
        asked.append(request.path)
        return oversize(request)

    hostile.answer = answer
    engine = engine_for(hostile, retry=RetryPolicy(base_delay=0.01, max_delay=0.01))
    await failure(engine, AnswerTooLargeError, ref=GET)
    assert asked == ["/v3/certificates"]


async def test_an_announced_oversize_is_refused_before_reading(hostile, engine_for) -> None:
    hostile.answer = lambda request: web.Response(body=b"x" * (2 * MiB), headers=SIGNED)
    error = await failure(engine_for(hostile, max_answer_bytes=MiB), AnswerTooLargeError, ref=GET)
    assert "announces 2097152 bytes" in str(error)


async def test_a_gzip_bomb_is_refused_in_bounded_memory(hostile, engine_for) -> None:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(MiB)
    bomb = b"".join(compressor.compress(zeros) for _ in range(256)) + compressor.flush()  # 256 MiB inflated
    assert len(bomb) < 512 * 1024
    hostile.answer = lambda request: web.Response(body=bomb, headers={**SIGNED, "Content-Encoding": "gzip"})
    engine = engine_for(hostile)
    caught: list[BaseException] = []

    async def call() -> None:
        caught.append(await failure(engine, AnswerTooLargeError, ref=GET))

    peak = await peak_mib(call)
    assert "larger than" in str(caught[0]) and peak < 40


async def test_a_small_gzip_answer_is_still_read(hostile, engine_for, identity) -> None:
    """Bounded decompression still decompresses: a gzip answer within the limit reaches the verifier."""
    hostile.answer = lambda request: web.Response(
        body=gzip.compress(b'{"pre_entrustweb_id": "x"}'), headers={**SIGNED, "Content-Encoding": "gzip"}
    )
    error = await failure(engine_for(hostile), SignatureError)
    assert error.reason in ("stale", "unknown_serial", "mismatch")  # it got as far as verification


async def test_a_corrupt_gzip_body_is_malformed(hostile, engine_for) -> None:
    headers = {**SIGNED, "Content-Encoding": "gzip"}
    hostile.answer = lambda request: web.Response(body=b"\x1f\x8bnot gzip", headers=headers)
    error = await failure(engine_for(hostile), MalformedResponseError)
    assert "compressed body is corrupt" in str(error)


async def test_an_unasked_content_encoding_is_refused(hostile, engine_for) -> None:
    hostile.answer = lambda request: web.Response(body=b"???", headers={**SIGNED, "Content-Encoding": "br"})
    error = await failure(engine_for(hostile), MalformedResponseError)
    assert "unsupported Content-Encoding 'br'" in str(error)


# == headers judged before the body is read =========================================================


@pytest.mark.parametrize(
    ("header", "value", "reason"),
    [
        ("Wechatpay-Timestamp", "9" * 5000, "bad_timestamp"),  # int() of it would raise ValueError
        ("Wechatpay-Timestamp", "１７００００００００", "bad_timestamp"),
        ("Wechatpay-Nonce", "n" * 500, "malformed_header"),
        ("Wechatpay-Serial", "S" * 4096, "malformed_header"),
        ("Wechatpay-Signature", "s" * 2049, "malformed_header"),
    ],
)
async def test_malformed_signature_headers_are_signature_errors(hostile, engine_for, header, value, reason) -> None:
    hostile.answer = lambda request: web.Response(body=b"{}", headers={**SIGNED, header: value})
    error = await failure(engine_for(hostile), SignatureError)
    assert error.reason == reason
    assert value not in str(error)


async def test_a_non_utf8_nonce_is_a_signature_error(hostile, engine_for) -> None:
    async def raw_bytes(request: web.Request) -> web.StreamResponse:
        response = web.Response(body=b"{}", headers={**SIGNED})
        response.headers["Wechatpay-Nonce"] = b"\xff\xfe".decode("latin-1")  # sent as bytes 0xff 0xfe
        return response

    hostile.answer = raw_bytes
    error = await failure(engine_for(hostile), SignatureError)
    assert error.reason == "malformed_header"


async def test_a_2xx_without_signature_headers_is_refused_unread(hostile, engine_for) -> None:
    hostile.answer = streamed(200 * MiB, b"y" * MiB, {"Content-Type": "application/json"})
    error = await failure(engine_for(hostile), SignatureError)
    assert error.reason == "missing_header"


# == certificate mode: nothing parsed before it verifies ============================================


@pytest.mark.parametrize(
    "body",
    [b'{"data": "not a list"}', b'{"data": [1, 2]}', b'{"data": [{"encrypt_certificate": []}]}', b"[]", b"\xff"],
)
async def test_a_malformed_certificate_download_is_a_typed_error(hostile, identity, body) -> None:
    hostile.answer = lambda request: web.Response(body=body, headers=SIGNED)
    settings = {**identity.engine_settings("certificate"), "platform_certificates": []}
    engine = Engine(**settings, base_url=hostile.base_url, retry=RetryPolicy.never(), load_entry_points=False)
    error = await failure(engine, MalformedResponseError)
    assert "certificate download is not what WeChat Pay sends" in str(error)


async def test_a_certificate_download_with_a_trusted_key_is_verified_before_parsing(hostile, identity) -> None:
    hostile.answer = lambda request: web.Response(body=b'{"data": "not even a list"}', headers=SIGNED)
    settings = {**identity.engine_settings("both"), "base_url": hostile.base_url}
    engine = Engine(**settings, retry=RetryPolicy.never(), load_entry_points=False)
    try:
        with pytest.raises(SignatureError):  # not MalformedResponseError: it was never parsed
            await engine.adownload_certificates()
    finally:
        await engine.aclose()


# == property: whatever a hostile upstream sends, only engine errors, in bounded memory =============

ENCODINGS = st.sampled_from(["", "identity", "gzip", "deflate", "br", "x-gzip", "gzip, gzip"])
HEADER_VALUES = st.one_of(st.sampled_from(list(SIGNED.values())), st.text(max_size=40), st.just("9" * 30))


@pytest.mark.usefixtures("no_local_constants")  # examples independent of the tests run before
@settings(derandomize=True, max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    status=st.sampled_from([200, 204, 299, 400, 429, 500]),
    size=st.integers(min_value=0, max_value=6 * MiB),
    fill=st.binary(min_size=1, max_size=16),
    encoding=ENCODINGS,
    compress=st.booleans(),
    headers=st.dictionaries(st.sampled_from(list(SIGNED)), HEADER_VALUES, max_size=4),
)
def test_hostile_answers_raise_only_engine_errors_in_bounded_memory(
    hostile_thread, identity, status, size, fill, encoding, compress, headers
) -> None:
    body = (fill * (size // len(fill) + 1))[:size]
    if compress:
        body = gzip.compress(body, compresslevel=1)
    encoded = {"Content-Encoding": encoding} if encoding else {}
    hostile_thread.answer = (status, {**SIGNED, **headers, **encoded}, body)
    settings_ = {**identity.engine_settings(), "base_url": hostile_thread.base_url, "load_entry_points": False}
    engine = Engine(**settings_, retry=RetryPolicy.never())
    tracemalloc.start()
    try:
        with pytest.raises(EngineError):
            engine.call(GET, {"algorithm_type": "RSA"})
        peak = tracemalloc.get_traced_memory()[1] / MiB
    finally:
        tracemalloc.stop()
        engine.close()
    assert peak < 24, f"peak {peak:.1f} MiB"  # nothing past the 4 MiB limit is ever held


class _Thread:
    """The hostile server in a thread of its own, so sync calls can reach it from the test."""

    def __init__(self) -> None:
        self.answer: tuple[int, dict[str, str], bytes] = (200, {}, b"")
        self.base_url = ""
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._ready.set()
        self._loop.run_forever()

    async def _start(self) -> None:
        async def handle(request: web.Request) -> web.Response:
            await request.read()
            status, headers, body = self.answer
            return web.Response(status=status, headers=headers, body=body)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.base_url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]

    def __enter__(self) -> "_Thread":
        self._thread.start()
        assert self._ready.wait(PATIENCE), "the hostile server thread did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(PATIENCE)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(PATIENCE)


@pytest.fixture(scope="module")
def hostile_thread() -> Any:
    with _Thread() as server:
        yield server


# == one check of the signature headers per answer ====================================================


def test_the_transports_header_check_is_the_one_the_verifier_uses(
    identity: SandboxIdentity, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over HTTP the headers are checked before the body is read and the verifier asks again: the
    answer's Headers keep the first result, so each answer is checked once; a failed check is not kept."""
    from engine import protocol
    from engine.sandbox import Sandbox
    from engine.sandbox.server import ServerThread
    from engine.wire import Headers

    checked: list[Any] = []
    original = protocol._checked_signature_headers

    def counting(headers: Any) -> tuple[str, str, str, str]:
        checked.append(headers)
        return original(headers)

    monkeypatch.setattr(protocol, "_checked_signature_headers", counting)
    with ServerThread(Sandbox(identity)) as served:
        settings = {**identity.engine_settings(), "base_url": served.base_url, "load_entry_points": False}
        with Engine(**settings) as engine:
            for _ in range(3):
                assert engine.call(PAPAY, COMBINE_PAPAY).verified_with == identity.platform_public_key_id
    assert len(checked) == 3 and len({id(headers) for headers in checked}) == 3  # held: no id is reused
    unsigned = Headers({"Content-Type": "application/json"})
    for _ in range(2):
        with pytest.raises(SignatureError, match="lacks signature header"):
            protocol.check_signature_headers(unsigned)
    assert len(checked) == 5
