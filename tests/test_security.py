"""Security properties of the engine, tested the way an attacker or a careless caller would probe them.

* Path parameters can never change the path: every byte outside the unreserved set is
  percent-encoded, and dot-segments or empty values are refused before anything is sent.
* Secrets (merchant private key, APIv3 key, the Authorization signature, plaintexts of encrypted
  fields) never reach logs, exception messages or reprs, even with every logger at DEBUG.
* A POST (or any non-GET) is never sent twice behind the caller's back; a GET is retried once, and
  each attempt is signed afresh. Timeouts and refused connections become ``TransportError``s.

Network tests only ever use 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import logging
import socket
import time
import traceback
from typing import Any, AsyncIterator, Callable, Iterator, Optional

import attrs
import pytest
from aiohttp import web
from conftest import COMBINE_PAPAY, PATIENCE, REAL_NAME
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from engine import (
    ApiError,
    ConfigurationError,
    Descriptor,
    Engine,
    Field,
    MockTransport,
    RawResponse,
    RequestSpec,
    RetryPolicy,
    TransportError,
    TransportTimeoutError,
    UnconfirmedError,
    UsageError,
    ValidationError,
    hookimpl,
)
from engine.protocol import parse_authorization, request_message
from engine.sandbox import SandboxIdentity
from engine.wire import Request

LOCALHOST = "127.0.0.1"
PAPAY = "combine_papay.mini_program"
REAL_NAME_ID = "individual_contracts.real_name.mini_program"
REAL_NAME_CANONICAL = "v3.ecommerce.individual_contracts.pre_entrust_sign_with_real_name_identity.mini_program.post"
REAL_NAME_PATH = "/v3/ecommerce/individual-contracts/pre-entrust-sign-with-real-name-identity/mini-program"
PLAINTEXTS = {"real_name": REAL_NAME["real_name"], "cred_id": REAL_NAME["cred_id"]}


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


async def invoke(engine: Engine, mode: str, ref: str, payload: Any = None) -> Any:
    """One call through ``Engine.call`` or ``Engine.acall``; async transports are released after."""
    if mode == "sync":
        return engine.call(ref, payload)
    try:
        return await engine.acall(ref, payload)
    finally:
        await engine.aclose()


async def failure(engine: Engine, mode: str, ref: str, payload: Any, error: type) -> Any:
    with pytest.raises(error) as caught:
        await invoke(engine, mode, ref, payload)
    return caught.value


# == path parameters ===============================================================================

TX = Descriptor(
    id="t.get",
    method="GET",
    path="/v3/pay/transactions/id/{transaction_id}",
    request=RequestSpec(path={"transaction_id": Field(required=True)}, query={"mchid": Field(required=True)}),
    response={"transaction_id": Field()},
)
TX_PREFIX = "/v3/pay/transactions/id/"
UNRESERVED = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
DOT_SEGMENT_ERROR = "path parameter must not be empty, '.' or '..' @ $.transaction_id"


def percent_encoded(value: str) -> str:
    """RFC 3986 encoding of one path segment: every UTF-8 byte outside the unreserved set as %XX."""
    return "".join(chr(b) if chr(b) in UNRESERVED else f"%{b:02X}" for b in value.encode("utf-8"))


@pytest.fixture
def tx_engine(make_engine: Callable[..., Engine]) -> Engine:
    engine = make_engine()
    engine.register(TX)
    return engine


HOSTILE_PATH_VALUES = [
    "4200000001/../../../v3/certificates",
    "a/b",
    "a?mchid=1&x=y",
    "a#fragment",
    "100%",
    "%2F",
    "%2e%2e",
    "..%2F..",
    "../",
    "/",
    "...",
    " . ",
    "with space",
    "tab\tand\nnewline",
    "plus+and&amp=eq",
    "back\\slash",
    "{transaction_id}",
    "交易单号-4200000001",
    "emoji-😀",
    "\u00e9\u0301",
]


@pytest.mark.parametrize("value", HOSTILE_PATH_VALUES)
def test_path_parameter_is_one_fully_encoded_segment(tx_engine: Engine, identity: SandboxIdentity, value: str) -> None:
    response = tx_engine.call("t.get", {"transaction_id": value, "mchid": identity.mchid})
    exchange = tx_engine.emulator.last
    path, _, query = exchange.request.target.partition("?")
    assert path == TX_PREFIX + percent_encoded(value)
    assert path.count("/") == TX_PREFIX.count("/")
    assert "#" not in exchange.request.target and query == f"mchid={identity.mchid}"
    assert exchange.endpoint_id == "t.get"
    assert exchange.payload == {"transaction_id": value, "mchid": identity.mchid}
    assert response.data == {"transaction_id": value}


@pytest.mark.parametrize("value", ["a&mchid=evil", "x=y", "#", "%26", "1 2+3"])
def test_query_values_cannot_add_parameters(tx_engine: Engine, identity: SandboxIdentity, value: str) -> None:
    tx_engine.call("t.get", {"transaction_id": "42", "mchid": value})
    exchange = tx_engine.emulator.last
    assert exchange.request.target == f"{TX_PREFIX}42?mchid={percent_encoded(value)}"
    assert exchange.payload == {"transaction_id": "42", "mchid": value}


@pytest.mark.parametrize("value", [".", "..", ""], ids=["dot", "dotdot", "empty"])
async def test_dot_segments_and_empty_values_are_refused(tx_engine: Engine, identity, mode: str, value: str) -> None:
    payload = {"transaction_id": value, "mchid": identity.mchid}
    error = await failure(tx_engine, mode, "t.get", payload, ValidationError)
    assert error.errors == (DOT_SEGMENT_ERROR,)
    assert DOT_SEGMENT_ERROR in str(error)
    assert tx_engine.emulator.exchanges == []


async def test_omitted_path_parameter_never_leaves_a_template_in_the_path(make_engine, identity, mode: str) -> None:
    """An optional path parameter is a descriptor bug; it must not send ``/{transaction_id}`` literally."""
    engine = make_engine()
    with pytest.raises(UsageError):
        engine.register(attrs.evolve(TX, request=RequestSpec(path={"transaction_id": Field()}, query=TX.request.query)))
        await invoke(engine, mode, "t.get", {"mchid": identity.mchid})
    assert engine.emulator.exchanges == []


# == secrets never reach logs, errors or reprs =====================================================


class CaptureHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
        self.records: list[tuple[int, str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.levelno, record.name, self.format(record)))

    def lines(self, level: Optional[int] = None) -> list[str]:
        return [text for levelno, _, text in self.records if level is None or levelno == level]


@pytest.fixture
def debug_log() -> Iterator[CaptureHandler]:
    """Every logger at DEBUG, everything captured with its arguments formatted in."""
    handler = CaptureHandler()
    root = logging.getLogger()
    loggers = [root, *(lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger))]
    saved = [(lg, lg.level, lg.disabled) for lg in loggers]
    logging.disable(logging.NOTSET)
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
        lg.disabled = False
        if lg is root or not lg.propagate:
            lg.addHandler(handler)
    try:
        yield handler
    finally:
        for lg, level, disabled in saved:
            lg.setLevel(level)
            lg.disabled = disabled
            lg.removeHandler(handler)


def described(obj: Any) -> list[str]:
    """Everything a log line or a traceback could show about ``obj``."""
    texts = [str(obj), repr(obj)]
    if isinstance(obj, BaseException):
        texts.append("".join(traceback.format_exception(obj)))
        texts.append(repr(vars(obj)))
    return texts


def signature_sent(engine: Engine) -> str:
    return parse_authorization(engine.emulator.last.request.headers["Authorization"])[1]["signature"]


def secrets_of(identity: SandboxIdentity, signatures: list[str]) -> dict[str, str]:
    pem = identity.merchant_private_pem().decode("ascii")
    body = [line for line in pem.splitlines() if line and not line.startswith("-----")]
    found = {f"private key PEM line {i}": line for i, line in enumerate(body) if len(line) >= 16}
    found["private key PEM body"] = "".join(body)
    found["APIv3 key"] = identity.apiv3_key.decode("ascii")
    found.update({f"Authorization signature {i}": sig for i, sig in enumerate(signatures)})
    found.update({f"plaintext {name}": value for name, value in PLAINTEXTS.items()})
    return found


def assert_no_secrets(texts: list[str], secrets: dict[str, str]) -> None:
    leaks = [(what, text[:200]) for text in texts for what, secret in secrets.items() if secret in text]
    assert leaks == []


def everything_visible(engine: Engine, identity: SandboxIdentity, log: CaptureHandler, *objects: Any) -> list[str]:
    texts = log.lines()
    for obj in (engine, engine.credentials, engine.keyring, identity, *engine.emulator.exchanges, *objects):
        texts.extend(described(obj))
    return texts


async def test_successful_calls_keep_secrets_out(make_engine, identity: SandboxIdentity, debug_log) -> None:
    engine = make_engine()
    sync_response = engine.call(REAL_NAME_ID, REAL_NAME)
    sync_signature = signature_sent(engine)
    async_response = await engine.acall(REAL_NAME_ID, REAL_NAME)
    await engine.aclose()
    signatures = [sync_signature, signature_sent(engine)]

    assert [e.payload["cred_id"] for e in engine.emulator.exchanges] == [REAL_NAME["cred_id"]] * 2
    texts = everything_visible(engine, identity, debug_log, sync_response, async_response)
    assert_no_secrets(texts, secrets_of(identity, signatures))

    # The capture really saw DEBUG detail and the INFO summary, so the absence above means something.
    assert any("<encrypted>" in line for line in debug_log.lines(logging.DEBUG))
    for response in (sync_response, async_response):
        wanted = (REAL_NAME_CANONICAL, "POST", REAL_NAME_PATH, "200", response.request_id)
        assert any(all(w in line for w in wanted) for line in debug_log.lines(logging.INFO)), wanted


async def test_api_errors_keep_secrets_out(make_engine, identity: SandboxIdentity, debug_log) -> None:
    engine = make_engine(mchid="1900000999")  # the sandbox answers 401 SIGN_ERROR for a foreign merchant
    errors, signatures = [], []
    for mode in ("sync", "async"):
        errors.append(await failure(engine, mode, REAL_NAME_ID, REAL_NAME, ApiError))
        signatures.append(signature_sent(engine))

    assert [(e.status, e.code, e.verified) for e in errors] == [(401, "SIGN_ERROR", True)] * 2
    assert_no_secrets(everything_visible(engine, identity, debug_log, *errors), secrets_of(identity, signatures))
    assert any(all(w in line for w in ("401", errors[0].request_id)) for line in debug_log.lines(logging.INFO))


LONG_CRED_ID = REAL_NAME["cred_id"] * 12  # 216 bytes: over the 214 an RSA-2048 OAEP block holds
LONG_NAME = REAL_NAME["real_name"] * 24  # 72 characters, 216 UTF-8 bytes


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"cred_id": LONG_CRED_ID}, ["encoded size 216 is over the maximum 214 @ $.cred_id"]),
        (
            {"real_name": LONG_NAME, "cred_id": LONG_CRED_ID},
            [
                "encoded size 216 is over the maximum 214 @ $.real_name",
                "encoded size 216 is over the maximum 214 @ $.cred_id",
            ],
        ),
        ({"cred_type": "PASSPORT"}, ["must be one of ID_CARD, got 'PASSPORT' @ $.cred_type"]),
        ({"real_name": 3.14}, ["expected string, got number @ $.real_name"]),
    ],
    ids=["cred_id_too_long", "both_too_long", "cred_type_wrong", "real_name_wrong_type"],
)
async def test_validation_errors_keep_secrets_out(make_engine, identity, debug_log, changes, expected) -> None:
    engine = make_engine()
    engine.call(REAL_NAME_ID, REAL_NAME)  # a real signature, to prove it appears nowhere afterwards
    signatures = [signature_sent(engine)]
    payload = {**REAL_NAME, **changes}
    errors = [await failure(engine, mode, REAL_NAME_ID, payload, ValidationError) for mode in ("sync", "async")]

    assert [list(e.errors) for e in errors] == [expected, expected]
    assert len(engine.emulator.exchanges) == 1, "a refused payload must not be sent"
    assert_no_secrets(everything_visible(engine, identity, debug_log, *errors), secrets_of(identity, signatures))


# == retries, timeouts, refused connections ========================================================


def failing_transport(error: type = TransportError) -> MockTransport:
    """A transport that records every request and fails it like a dropped connection."""

    def fail(request: Request) -> RawResponse:
        raise error("connection reset by peer (simulated)")

    return MockTransport(fail)


def authorizations(transport: MockTransport) -> list[dict[str, str]]:
    return [parse_authorization(r.headers["Authorization"])[1] for r in transport.requests]


def stepping_clock(step: float = 1.0) -> Callable[[], float]:
    """A clock that moves forward ``step`` seconds at every reading."""
    ticks = itertools.count()
    start = time.time()
    return lambda: start + step * next(ticks)


def assert_validly_signed(identity: SandboxIdentity, request: Request) -> None:
    params = parse_authorization(request.headers["Authorization"])[1]
    message = request_message(request.method, request.target, params["timestamp"], params["nonce_str"], request.body)
    signature = base64.b64decode(params["signature"])
    identity.merchant_key.public_key().verify(signature, message, padding.PKCS1v15(), hashes.SHA256())


NON_GET_CALLS = [
    ("POST", PAPAY, COMBINE_PAPAY),
    ("POST", "POST /v3/anything", {"a": 1}),
    ("PUT", "PUT /v3/anything", {"a": 1}),
    ("PATCH", "PATCH /v3/anything", {"a": 1}),
    ("DELETE", "DELETE /v3/anything/1", None),
]


@pytest.mark.parametrize("error", [TransportError, TransportTimeoutError])
@pytest.mark.parametrize(("method", "ref", "payload"), NON_GET_CALLS, ids=[r for _, r, _ in NON_GET_CALLS])
async def test_non_get_is_never_retried(make_engine, mode, error, method, ref, payload) -> None:
    transport = failing_transport(error)
    engine = make_engine(transport=transport, retry=RetryPolicy(max_attempts=6, base_delay=0, max_delay=0))
    raised = await failure(engine, mode, ref, payload, UnconfirmedError)
    assert type(raised.__cause__) is error  # it may have reached WeChat Pay: reconcile, do not resend
    assert [r.method for r in transport.requests] == [method]


QUICK = RetryPolicy(base_delay=0, max_delay=0)  # the default three attempts, without the waits


async def test_get_is_retried_and_signed_afresh(make_engine, identity, mode) -> None:
    transport = failing_transport()
    engine = make_engine(transport=transport, clock=stepping_clock(), retry=QUICK)
    await failure(engine, mode, "GET /v3/certificates", None, TransportError)
    assert len(transport.requests) == 3
    auths = authorizations(transport)
    assert len({a["nonce_str"] for a in auths}) == 3
    assert len({a["timestamp"] for a in auths}) == 3
    assert len({a["signature"] for a in auths}) == 3
    for request in transport.requests:
        assert request.target == "/v3/certificates"
        assert_validly_signed(identity, request)


async def test_get_retries_have_distinct_nonces_within_one_second(make_engine, mode) -> None:
    transport = failing_transport()
    policy = RetryPolicy(max_attempts=4, base_delay=0, max_delay=0)
    engine = make_engine(transport=transport, clock=lambda: 1_700_000_000.0, retry=policy)
    await failure(engine, mode, "GET /v3/certificates", None, TransportError)
    nonces = [a["nonce_str"] for a in authorizations(transport)]
    assert len(nonces) == 4 and len(set(nonces)) == 4


@pytest.mark.parametrize("attempts", [1, 3, 5])
def test_max_attempts_is_honoured(make_engine, attempts: int) -> None:
    transport = failing_transport()
    engine = make_engine(transport=transport, retry=RetryPolicy(max_attempts=attempts, base_delay=0, max_delay=0))
    with pytest.raises(TransportError):
        engine.call("GET /v3/certificates")
    assert len(transport.requests) == attempts


def test_zero_attempts_is_a_configuration_error(identity: SandboxIdentity) -> None:
    """``max_attempts=0`` would leave no attempt at all."""
    with pytest.raises(ConfigurationError, match=r"retry\.max_attempts"):
        Engine.sandbox(identity=identity, load_entry_points=False, retry=RetryPolicy(max_attempts=0))


async def test_get_answered_with_an_error_is_not_retried(make_engine, mode) -> None:
    engine = make_engine()
    error = await failure(engine, mode, "GET /v3/no/such/api", None, ApiError)
    assert error.status == 404
    assert len(engine.emulator.exchanges) == 1


# -- the aiohttp transport against real sockets on 127.0.0.1 ----------------------------------------


@attrs.define
class SlowServer:
    base_url: str
    hits: int = 0
    release: asyncio.Event = attrs.field(factory=asyncio.Event)


@pytest.fixture
async def slow_server() -> AsyncIterator[SlowServer]:
    """An HTTP server on 127.0.0.1 whose handler answers only when the test ends (or after PATIENCE)."""
    state = SlowServer(base_url="")

    async def handler(request: web.Request) -> web.Response:
        state.hits += 1
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(state.release.wait(), timeout=PATIENCE)
        return web.json_response({})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, LOCALHOST, 0)
    await site.start()
    state.base_url = f"http://{LOCALHOST}:{runner.addresses[0][1]}"
    try:
        yield state
    finally:
        state.release.set()
        await runner.cleanup()


def http_engine(identity: SandboxIdentity, base_url: str, **options: Any) -> Engine:
    return Engine(**identity.engine_settings(), base_url=base_url, load_entry_points=False, **options)


# For the tests where a timeout is not the point (a refusal, a hang-up, a 500 with a cookie): generous,
# so that a loaded machine cannot turn the answer under test into a TransportTimeoutError.
UNHURRIED = {"timeout": PATIENCE, "connect_timeout": PATIENCE}


@pytest.mark.parametrize(("ref", "payload", "hits"), [(PAPAY, COMBINE_PAPAY, 1), ("GET /v3/certificates", None, 3)])
async def test_aiohttp_timeout_is_transport_timeout_error(identity, slow_server, ref, payload, hits) -> None:
    # 1 s, not less: the timeout also covers connecting and sending, and an attempt cut short by a
    # stalled loop before its request was written would not be counted in ``hits``.
    engine = http_engine(identity, slow_server.base_url, timeout=1.0)
    try:
        # The server holds every request until the test ends: without the timeout the call would succeed.
        with pytest.raises(TransportTimeoutError):
            await engine.acall(ref, payload)
    finally:
        await engine.aclose()
    assert slow_server.hits == hits


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCALHOST, 0))
        return sock.getsockname()[1]


async def test_aiohttp_connection_refused_is_transport_error(identity: SandboxIdentity, mode: str) -> None:
    engine = http_engine(identity, f"http://{LOCALHOST}:{closed_port()}", **UNHURRIED)
    try:
        error = await failure(engine, mode, PAPAY, COMBINE_PAPAY, TransportError)
    finally:
        engine.close()
    assert not isinstance(error, TransportTimeoutError)
    assert isinstance(error.__cause__, Exception)


@attrs.define
class HangUpServer:
    """A raw TCP server on 127.0.0.1 that reads each request, records it, and hangs up unanswered."""

    base_url: str = ""
    requests: list[tuple[str, dict[str, str]]] = attrs.field(factory=list)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
            headers = {k.lower(): v for k, v in headers.items()}
            await reader.readexactly(int(headers.get("content-length", "0")))
            self.requests.append((lines[0].split(" ")[0], headers))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def nonces(self) -> list[str]:
        return [parse_authorization(h["authorization"])[1]["nonce_str"] for _, h in self.requests]


@pytest.fixture
async def hang_up_server() -> AsyncIterator[HangUpServer]:
    state = HangUpServer()
    server = await asyncio.start_server(state.serve, LOCALHOST, 0)
    state.base_url = f"http://{LOCALHOST}:{server.sockets[0].getsockname()[1]}"
    try:
        yield state
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(
    ("ref", "payload", "sends"),
    [
        (PAPAY, COMBINE_PAPAY, 1),
        ("PUT /v3/anything", {"a": 1}, 1),
        ("DELETE /v3/anything/1", None, 1),
        ("GET /v3/certificates", None, 3),
    ],
    ids=["POST", "PUT", "DELETE", "GET"],
)
async def test_aiohttp_sends_each_signed_request_once(identity, hang_up_server, ref, payload, sends) -> None:
    """The HTTP library must not resend behind the engine: one send per attempt, a fresh nonce each."""
    engine = http_engine(identity, hang_up_server.base_url, **UNHURRIED)
    try:
        with pytest.raises(TransportError):
            await engine.acall(ref, payload)
    finally:
        await engine.aclose()
    assert len(hang_up_server.requests) == sends
    assert len(set(hang_up_server.nonces())) == sends, "every request on the wire must carry its own nonce"


# == the sandbox refuses forged request signatures without crashing ================================


class StrangeTimestampSigner:
    """A user signer plugin whose Authorization carries a timestamp that str.isdigit() accepts."""

    @hookimpl
    def wxpay_sign_request(self, request: Request, signing: Any) -> str:
        stamp = str(signing.timestamp)[:-1] + "\u00b2"
        return (
            f'WECHATPAY2-SHA256-RSA2048 mchid="{signing.credentials.mchid}",nonce_str="{signing.nonce}",'
            f'timestamp="{stamp}",serial_no="{signing.credentials.serial_no}",signature="AAAA"'
        )


async def test_sandbox_answers_401_to_a_malformed_request_timestamp(make_engine, mode: str) -> None:
    engine = make_engine(plugins=[StrangeTimestampSigner()])
    error = await failure(engine, mode, PAPAY, COMBINE_PAPAY, ApiError)
    assert (error.status, error.code) == (401, "SIGN_ERROR")


def test_a_request_signed_afresh_keeps_every_other_part_of_the_request() -> None:
    """``Request.with_headers`` (the per-attempt copy) must carry every field ``attrs.evolve`` would."""
    import attrs

    from engine.wire import Headers, Request

    every_field = {a.name: f"<{a.name}>" for a in attrs.fields(Request)}
    every_field.update(headers=Headers({"A": "1"}), body=b"body", signed_body=b"meta", fields={"k": "v"})
    request = Request(**every_field)
    headers = Headers({"Authorization": "x"})
    assert request.with_headers(headers) == attrs.evolve(request, headers=headers)


# == answers cannot leave state behind: no cookies ==================================================


@attrs.define
class CookieServer:
    """An HTTP server on the loopback that sets a cookie on every answer and records what comes back."""

    base_url: str = ""
    cookies_sent: list[Optional[str]] = attrs.field(factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.cookies_sent.append(request.headers.get("Cookie"))
        answer = web.json_response({"code": "SYSTEM_ERROR", "message": "busy"}, status=500)
        answer.set_cookie(f"tracker{len(self.cookies_sent)}", "x" * 64, domain=None, path="/")
        return answer


@pytest.fixture
async def cookie_server() -> AsyncIterator[CookieServer]:
    state = CookieServer()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", state.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, LOCALHOST, 0)
    await site.start()
    # By name, not address: aiohttp's default cookie jar keeps no cookies for an IP address, so a
    # test on 127.0.0.1 could not tell a jar that keeps them from one that does not.
    state.base_url = f"http://localhost:{runner.addresses[0][1]}"
    try:
        yield state
    finally:
        await runner.cleanup()


async def test_answers_set_no_cookies_on_later_requests(identity: SandboxIdentity, cookie_server) -> None:
    """A peer's Set-Cookie is not kept: no state a peer chose rides on later signed requests, and a
    peer setting a new cookie on every answer cannot grow the engine's memory."""
    engine = http_engine(identity, cookie_server.base_url, **UNHURRIED, retry=RetryPolicy.never())
    try:
        for _ in range(3):
            with pytest.raises(ApiError):
                await engine.acall(PAPAY, COMBINE_PAPAY)
    finally:
        await engine.aclose()
    assert cookie_server.cookies_sent == [None, None, None]


def test_ad_hoc_calls_leave_nothing_behind_per_path(make_engine) -> None:
    """Each "METHOD /path" call with no descriptor behind it gets a descriptor of its own: the plans the
    pipeline keeps per descriptor grew by one per distinct path (an id in the path: one per call)."""
    engine = make_engine()
    engine.call(PAPAY, COMBINE_PAPAY)
    kept = len(engine.pipeline._plans)
    for number in range(200):
        with pytest.raises(ApiError):
            engine.call(f"GET /v3/no-such-resource/{number}")
    assert len(engine.pipeline._plans) == kept
