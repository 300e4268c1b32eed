"""Retries that can never double-charge, reconciling unconfirmed creates, and the network settings.

Faults come from the sandbox's fault plan, in process and over HTTP; waits are taken out of the
tests by recording what the send loop asked ``asyncio.sleep`` for, so nothing here is timed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, AsyncIterator

import attrs
import pytest
from conftest import COMBINE_PAPAY

from engine import (
    ApiError,
    CallInfo,
    ConfigurationError,
    ConnectError,
    Engine,
    Idempotency,
    MockTransport,
    RawResponse,
    Request,
    RetryPolicy,
    SignatureError,
    TransportError,
    UnconfirmedError,
    UnconfirmedTimeoutError,
    hookimpl,
)
from engine.protocol import parse_authorization
from engine.sandbox import Sandbox, SandboxIdentity
from engine.sandbox.faults import Fault
from engine.sandbox.server import ServerThread

QUERY = "v3.pay.transactions.out_trade_no._out_trade_no_.get"
JSAPI = "v3.pay.transactions.jsapi.post"
ORDER = {
    "appid": "wxd678efh567hg6787",
    "mchid": "1900000109",
    "description": "Image形象店-深圳腾大-QQ公仔",
    "out_trade_no": "1217752501201407033233368018",
    "notify_url": "https://www.weixin.qq.com/wxpay/pay.php",
    "amount": {"total": 1, "currency": "CNY"},
    "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
}
NO_WAIT = RetryPolicy(base_delay=0.01, max_delay=0.01)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """What the send loop asked to wait for; the waits themselves are skipped."""
    asked: list[float] = []
    real_sleep = asyncio.sleep

    async def record(seconds: float, *args: Any) -> Any:
        asked.append(seconds)
        return await real_sleep(0)

    monkeypatch.setattr("engine.sender._sleep", record)
    return asked


@pytest.fixture(params=["in_process", "http"])
def where(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def wechatpay(identity: SandboxIdentity, where: str) -> Any:
    """``build(**options) -> (engine, sandbox)``: an engine reaching the sandbox in process or over HTTP."""
    engines: list[Engine] = []
    with ServerThread(Sandbox(identity)) as thread:

        def build(**options: Any) -> tuple[Engine, Sandbox]:
            if where == "in_process":
                engine = Engine.sandbox(identity=identity, load_entry_points=False, **options)
                engines.append(engine)
                return engine, engine.emulator
            settings = {**identity.engine_settings(), "base_url": thread.base_url, "load_entry_points": False}
            engines.append(Engine(**{**settings, "timeout": 2.0, **options}))
            return engines[-1], thread.sandbox

        yield build
        for engine in engines:
            engine.close()


def with_orders(engine: Engine, sandbox: Sandbox) -> None:
    """Create the orders the query tests look up (unknown numbers answer 404), then forget those calls."""
    for number in (ORDER["out_trade_no"], "n1"):
        engine.call(JSAPI, {**ORDER, "out_trade_no": number})
    sandbox.exchanges.clear()


def sent(sandbox: Sandbox) -> list[Request]:
    return [exchange.request for exchange in sandbox.exchanges]


def signatures(requests: list[Request]) -> list[str]:
    return [parse_authorization(r.headers["Authorization"])[1]["signature"] for r in requests]


# == what is retried ================================================================================


class Attempts:
    """An observer plugin: the attempt number of every request sent."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    @hookimpl
    def wxpay_before_send(self, call: CallInfo, request: Request) -> None:
        self.seen.append(call.attempt)


def test_a_get_answered_503_503_200_succeeds_after_three_signed_attempts(wechatpay, sleeps) -> None:
    observer = Attempts()
    engine, sandbox = wechatpay(retry=NO_WAIT, plugins=[observer])
    with_orders(engine, sandbox)
    observer.seen.clear()
    sandbox.faults.add(Fault.error(503), endpoint=QUERY, times=2)
    answer = engine.call(QUERY, {"out_trade_no": "1217752501201407033233368018", "mchid": "1900000109"})
    assert answer.status == 200
    assert [e.response.status for e in sandbox.exchanges] == [503, 503, 200]
    assert len(set(signatures(sent(sandbox)))) == 3  # signed afresh each time
    assert len(sleeps) == 2
    assert observer.seen == [1, 2, 3]


def test_retry_after_is_a_floor_for_the_wait(wechatpay, sleeps, caplog) -> None:
    engine, sandbox = wechatpay(retry=NO_WAIT)
    with_orders(engine, sandbox)
    sandbox.faults.add(Fault.error(429, retry_after=2), endpoint=QUERY)
    with caplog.at_level(logging.INFO, logger="engine.retries"):
        assert engine.call(QUERY, {"out_trade_no": "n1", "mchid": "1900000109"}).status == 200
    assert sleeps == [2.0]  # the jittered backoff alone would be at most 0.01 s
    assert "attempt 1 of 3 failed (HTTP 429); next attempt in 2.00 s" in caplog.text


def test_a_retry_after_beyond_the_deadline_ends_the_call(wechatpay, sleeps) -> None:
    engine, sandbox = wechatpay(retry=RetryPolicy(base_delay=0.01, max_delay=0.01, deadline=1.0))
    sandbox.faults.add(Fault.error(429, retry_after=30), endpoint=QUERY)
    with pytest.raises(ApiError) as caught:
        engine.call(QUERY, {"out_trade_no": "n1", "mchid": "1900000109"})
    assert caught.value.status == 429 and sleeps == []


def test_a_post_without_idempotency_answered_503_is_sent_once(wechatpay, sleeps) -> None:
    engine, sandbox = wechatpay(retry=NO_WAIT)
    assert engine.endpoint("combine_papay.mini_program").idempotency is None
    sandbox.faults.add(Fault.error(503))
    with pytest.raises(ApiError) as caught:
        engine.call("combine_papay.mini_program", COMBINE_PAPAY)
    assert caught.value.status == 503
    assert len(sandbox.exchanges) == 1 and sleeps == []
    assert caught.value.reconcile is not None and caught.value.reconcile.field is None  # outcome unknown


def test_an_idempotent_post_answered_503_then_200_resends_the_same_order(wechatpay, sleeps) -> None:
    engine, sandbox = wechatpay(retry=NO_WAIT)
    trait = engine.endpoint(JSAPI).idempotency
    assert trait == Idempotency(key="out_trade_no", query=QUERY)
    sandbox.faults.add(Fault.error(503), endpoint=JSAPI)
    assert engine.call(JSAPI, ORDER).status == 200
    first, second = sent(sandbox)
    assert first.body == second.body and b'"out_trade_no":"1217752501201407033233368018"' in first.body
    assert len(set(signatures([first, second]))) == 2


def test_an_idempotency_key_is_made_once_per_call_and_resent(wechatpay, sleeps) -> None:
    engine, sandbox = wechatpay(retry=NO_WAIT)
    build = "v3.marketing.partnerships.build.post"
    assert engine.endpoint(build).idempotency == Idempotency(header="Idempotency-Key")
    payload = {
        "partner": {"type": "APPID", "appid": "wx4e1916a585d1f4e9"},
        "authorized_data": {"business_type": "FAVOR_STOCK"},
    }
    sandbox.faults.add(Fault.error(500), endpoint=build)
    engine.call(build, payload)
    keys = [request.headers["Idempotency-Key"] for request in sent(sandbox)]
    assert len(keys) == 2 and keys[0] == keys[1] and len(keys[0]) >= 16
    engine.call(build, payload)
    assert sent(sandbox)[-1].headers["Idempotency-Key"] != keys[0]  # a new call, a new key


@pytest.mark.parametrize("fault", [Fault.error(400), Fault.error(404), Fault("bad_signature")])
def test_business_errors_and_unverifiable_answers_are_never_retried(wechatpay, sleeps, fault) -> None:
    engine, sandbox = wechatpay(retry=NO_WAIT)
    with_orders(engine, sandbox)
    sandbox.faults.add(fault, endpoint=QUERY, times=3)
    with pytest.raises(ApiError if fault.kind == "error" else SignatureError):
        engine.call(QUERY, {"out_trade_no": "n1", "mchid": "1900000109"})
    assert len(sandbox.exchanges) == 1 and sleeps == []


def test_a_per_call_policy_replaces_the_engines(wechatpay, sleeps) -> None:
    engine, sandbox = wechatpay(retry=NO_WAIT)
    sandbox.faults.add(Fault.error(503), endpoint=QUERY)
    with pytest.raises(ApiError):
        engine.call(QUERY, {"out_trade_no": "n1", "mchid": "1900000109"}, retry=RetryPolicy.never())
    assert len(sandbox.exchanges) == 1


def test_a_descriptor_can_declare_or_clear_idempotency(wechatpay, sleeps) -> None:
    engine, sandbox = wechatpay(retry=NO_WAIT)
    cleared = attrs.evolve(engine.endpoint(JSAPI), idempotency=None)
    engine.register(cleared)
    sandbox.faults.add(Fault.error(503), endpoint=JSAPI)
    with pytest.raises(ApiError):
        engine.call(JSAPI, ORDER)
    assert len(sandbox.exchanges) == 1


# == transport failures =============================================================================


def test_a_refused_connection_is_retried_even_for_a_post(identity, sleeps) -> None:
    emulator = Sandbox(identity)
    refused: list[Request] = []

    def answer(request: Request) -> RawResponse:
        if len(refused) < 2:
            refused.append(request)
            raise ConnectError("connection refused (simulated): nothing was sent")
        return emulator.handle(request)

    transport = MockTransport(answer)
    with Engine(**identity.engine_settings(), transport=transport, retry=NO_WAIT, load_entry_points=False) as engine:
        assert engine.call("combine_papay.mini_program", COMBINE_PAPAY).status == 200
    assert len(transport.requests) == 3 and len(emulator.exchanges) == 1
    assert len(set(signatures(transport.requests))) == 3


def test_a_reset_after_sending_a_post_is_unconfirmed_and_not_resent(make_engine, sleeps) -> None:
    engine = make_engine(retry=NO_WAIT)
    engine.emulator.faults.add(Fault("drop"))
    with pytest.raises(UnconfirmedError) as caught:
        engine.call("combine_papay.mini_program", COMBINE_PAPAY)
    assert isinstance(caught.value.__cause__, TransportError)
    assert len(engine.emulator.exchanges) == 1 and sleeps == []
    assert "may have reached WeChat Pay" in str(caught.value)


def test_an_idempotent_create_that_runs_out_of_time_tells_how_to_reconcile(make_engine) -> None:
    engine = make_engine(timeout=0.05, retry=RetryPolicy(base_delay=0.01, max_delay=0.01, deadline=0.5))
    engine.emulator.faults.add(Fault.latency(5.0), endpoint=JSAPI, times=10)
    with pytest.raises(UnconfirmedTimeoutError) as caught:
        engine.call(JSAPI, ORDER)
    reconcile = caught.value.reconcile
    assert (reconcile.endpoint_id, reconcile.field, reconcile.value, reconcile.query) == (
        JSAPI,
        "out_trade_no",
        ORDER["out_trade_no"],
        QUERY,
    )
    found = engine.call(reconcile.query, {reconcile.field: reconcile.value, "mchid": ORDER["mchid"]})
    assert found.status == 200  # the application looks the order up instead of guessing


@pytest.mark.parametrize(
    "options",
    [
        {"max_attempts": 0},
        {"max_attempts": -1},
        {"base_delay": -0.5},
        {"base_delay": 2.0, "max_delay": 1.0},
        {"deadline": 0},
        {"max_attempts": True},
    ],
)
def test_retry_settings_out_of_range_are_refused(options) -> None:
    with pytest.raises(ConfigurationError, match=r"^retry\."):
        RetryPolicy(**options)


def test_retry_must_be_a_policy(identity) -> None:
    with pytest.raises(ConfigurationError, match=r"retry must be an engine\.RetryPolicy"):
        Engine(**identity.engine_settings(), retry=3, load_entry_points=False)


# == proxy ==========================================================================================


class ForwardProxy:
    """A minimal HTTP forward proxy on 127.0.0.1 (absolute-form requests, one per connection)."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.server: Any = None
        self.url = ""

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ")
        self.seen.append(f"{method} {target}")
        headers = [line for line in lines[1:] if line and not line.lower().startswith(("proxy-", "connection"))]
        length = next((int(h.split(":", 1)[1]) for h in headers if h.lower().startswith("content-length")), 0)
        body = await reader.readexactly(length)
        host_port = target.split("//", 1)[1].split("/", 1)[0]
        path = "/" + target.split("//", 1)[1].split("/", 1)[1]
        host, port = host_port.split(":")
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        request_head = "\r\n".join([f"{method} {path} {version}", *headers, "Connection: close"])
        up_writer.write(request_head.encode() + b"\r\n\r\n" + body)
        await up_writer.drain()
        writer.write(await up_reader.read())
        await writer.drain()
        up_writer.close()
        writer.close()

    async def stop(self) -> None:
        self.server.close()
        await self.server.wait_closed()


@pytest.fixture
async def proxy() -> AsyncIterator[ForwardProxy]:
    running = ForwardProxy()
    await running.start()
    yield running
    await running.stop()


async def test_calls_and_certificate_downloads_go_through_a_loopback_proxy(identity, proxy) -> None:
    with ServerThread(Sandbox(identity, mode="both")) as thread:
        settings = {**identity.engine_settings("certificate"), "base_url": thread.base_url, "load_entry_points": False}
        engine = Engine(**{**settings, "platform_certificates": []}, proxy=proxy.url)  # downloads them first
        answer = await engine.acall("combine_papay.mini_program", COMBINE_PAPAY)
        await engine.aclose()
    assert answer.status == 200
    assert proxy.seen == [
        f"GET {thread.base_url}/v3/certificates?algorithm_type=RSA",
        f"POST {thread.base_url}/v3/ecommerce/combine-papay/contracts/pre-entrust-sign/mini-program",
    ]
    assert len(thread.sandbox.exchanges) == 2


async def test_an_unreachable_proxy_is_named_not_the_wechatpay_host(identity) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    engine = Engine(
        **identity.engine_settings(),
        base_url="http://127.0.0.1:9",
        proxy=f"http://user:s3cret@127.0.0.1:{port}",
        retry=RetryPolicy.never(),
        load_entry_points=False,
    )
    with pytest.raises(ConnectError) as caught:
        await engine.acall("combine_papay.mini_program", COMBINE_PAPAY)
    await engine.aclose()
    assert f"cannot reach the proxy http://127.0.0.1:{port}" in str(caught.value)
    assert "s3cret" not in str(caught.value) and "user" not in str(caught.value)
    assert caught.value.__cause__ is None  # aiohttp's error would carry the proxy credentials


@pytest.mark.parametrize("proxy", ["socks5://127.0.0.1:1080", "127.0.0.1:3128", "http://", 3128, "http://h:port"])
def test_a_proxy_that_is_not_http_is_refused(identity, proxy: Any) -> None:
    with pytest.raises(ConfigurationError, match="proxy"):
        Engine(**identity.engine_settings(), proxy=proxy, load_entry_points=False)


def test_a_pool_size_below_one_is_refused(identity) -> None:
    with pytest.raises(ConfigurationError, match="pool_size"):
        Engine(**identity.engine_settings(), pool_size=0, load_entry_points=False)
