"""The sandbox served over HTTP: independent clients, faults, certificates, callbacks, the CLI."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

import aiohttp
import pytest
from aiohttp import web
from conftest import COMBINE_PAPAY, PATIENCE, PAY_REDIRECT_SIGN, REAL_NAME, until
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from test_sandbox_objects import CLOSE, JSAPI, MCHID, order

from engine import (
    ApiError,
    Engine,
    MalformedResponseError,
    SignatureError,
    TransportError,
    TransportTimeoutError,
)
from engine.sandbox import Sandbox, SandboxIdentity, state
from engine.sandbox import server as server_module
from engine.sandbox.clock import TestClock
from engine.sandbox.faults import Fault
from engine.sandbox.server import SandboxServer

SEED_PATH = "/v3/ecommerce/combine-papay/contracts/pre-entrust-sign/mini-program"


@pytest.fixture
async def served(identity: SandboxIdentity) -> AsyncIterator[SandboxServer]:
    async with SandboxServer(Sandbox(identity)) as server:
        yield server


@pytest.fixture
async def http_engine(served: SandboxServer, identity: SandboxIdentity) -> AsyncIterator[Engine]:
    # The default timeout (30 s), not a short one: a call on a loaded machine must not time out in
    # a test about something else. The timeout's own test builds an engine with a short one.
    engine = Engine(**identity.engine_settings(), base_url=served.base_url, load_entry_points=False)
    yield engine
    await engine.aclose()


@pytest.mark.parametrize(
    ("host", "url"),
    [("127.0.0.1", "http://127.0.0.1:8080"), ("::1", "http://[::1]:8080"), ("localhost", "http://localhost:8080")],
)
def test_the_base_url_of_a_server_on_an_ipv6_address_brackets_it(
    identity: SandboxIdentity, host: str, url: str
) -> None:
    """--host ::1 served at http://::1:8080, a URL with no readable host or port: the engine refused it
    (base_url must be a URL) and aiohttp before it, so the manifest's base_url reached nothing."""
    server = SandboxServer(Sandbox(identity), host=host, port=8080)
    assert server.base_url == url
    Engine(**identity.engine_settings(), base_url=server.base_url, load_entry_points=False).close()


# -- a client written from PROTOCOL.md alone: plain aiohttp + cryptography, no engine code ----------


class IndependentClient:
    """Signs like the PHP SDK (parameter order mchid, serial_no, timestamp, nonce_str, signature)."""

    def __init__(self, identity: SandboxIdentity, base_url: str) -> None:
        self.identity = identity
        self.base_url = base_url

    def authorization(self, method: str, target: str, body: bytes, timestamp: int) -> str:
        nonce = "n" + os.urandom(8).hex()
        message = f"{method}\n{target}\n{timestamp}\n{nonce}\n".encode() + body + b"\n"
        signature = self.identity.merchant_key.sign(message, padding.PKCS1v15(), hashes.SHA256())
        return (
            f'WECHATPAY2-SHA256-RSA2048 mchid="{self.identity.mchid}",serial_no="{self.identity.merchant_serial_no}",'
            f'timestamp="{timestamp}",nonce_str="{nonce}",signature="{base64.b64encode(signature).decode()}"'
        )

    async def send(self, method: str, target: str, body: bytes = b"", **headers: str) -> tuple[int, dict, bytes]:
        import time

        head = {"Accept": "application/json", "User-Agent": "independent/1.0", "Content-Type": "application/json"}
        head["Authorization"] = self.authorization(method, target, body, int(time.time()))
        head.update(headers)
        async with aiohttp.ClientSession() as session:
            url = aiohttp.client.URL(self.base_url + target, encoded=True)
            async with session.request(method, url, data=body or None, headers=head) as answer:
                return answer.status, dict(answer.headers), await answer.read()

    def answer_is_authentic(self, headers: dict, body: bytes) -> bool:
        message = f"{headers['Wechatpay-Timestamp']}\n{headers['Wechatpay-Nonce']}\n".encode() + body + b"\n"
        try:
            self.identity.platform_key.public_key().verify(
                base64.b64decode(headers["Wechatpay-Signature"]), message, padding.PKCS1v15(), hashes.SHA256()
            )
        except Exception:
            return False
        return True


async def test_independent_client_gets_verified_answers(served: SandboxServer, identity: SandboxIdentity) -> None:
    client = IndependentClient(identity, served.base_url)
    spaced = json.dumps(COMBINE_PAPAY, indent=1).encode()  # spaced JSON with \\u escapes: bytes as sent are signed
    assert b"\\u5fae" in spaced
    status, headers, body = await client.send("POST", SEED_PATH, spaced)
    assert status == 200, body
    assert headers["Wechatpay-Serial"] == identity.platform_public_key_id
    assert headers["Wechatpay-Signature-Type"] == "WECHATPAY2-SHA256-RSA2048" and headers["Request-ID"]
    assert client.answer_is_authentic(headers, body)
    assert json.loads(body)["out_contract_code"] == COMBINE_PAPAY["out_contract_code"]
    tampered = body.replace(b"wxwtdk", b"wxwtdX")
    assert not client.answer_is_authentic(headers, tampered)


SEED_CALLS = [
    (SEED_PATH, COMBINE_PAPAY, ()),
    ("/v3/password-exempt-contract/contracts/ecommerce/pre-entrust-sign/pay-redirect-sign", PAY_REDIRECT_SIGN, ()),
    (
        "/v3/ecommerce/individual-contracts/pre-entrust-sign-with-real-name-identity/mini-program",
        REAL_NAME,
        ("real_name", "cred_id"),
    ),
]


@pytest.mark.parametrize(("path", "payload", "sensitive"), SEED_CALLS)
async def test_independent_client_calls_every_seed(
    served: SandboxServer, identity: SandboxIdentity, path: str, payload: dict, sensitive: tuple
) -> None:
    client = IndependentClient(identity, served.base_url)
    oaep = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
    platform = identity.platform_key.public_key()
    wire = {
        k: base64.b64encode(platform.encrypt(v.encode(), oaep)).decode() if k in sensitive else v
        for k, v in payload.items()
    }
    status, headers, body = await client.send(
        "POST", path, json.dumps(wire).encode(), **{"Wechatpay-Serial": identity.platform_public_key_id}
    )
    assert status == 200, body
    assert client.answer_is_authentic(headers, body)
    assert served.sandbox.last.payload == payload  # what the client encrypted, the sandbox decrypted


async def test_independent_client_downloads_certificates(served: SandboxServer, identity: SandboxIdentity) -> None:
    client = IndependentClient(identity, served.base_url)
    status, headers, body = await client.send("GET", "/v3/certificates?algorithm_type=RSA")
    assert status == 200 and client.answer_is_authentic(headers, body)
    (entry,) = json.loads(body)["data"]
    sealed = entry["encrypt_certificate"]
    assert sealed["associated_data"] == "certificate" and sealed["algorithm"] == "AEAD_AES_256_GCM"
    pem = AESGCM(identity.apiv3_key).decrypt(
        sealed["nonce"].encode(), base64.b64decode(sealed["ciphertext"]), b"certificate"
    )
    assert (
        f"{x509.load_pem_x509_certificate(pem).serial_number:X}"
        == entry["serial_no"]
        == identity.platform_certificate_serial
    )


async def test_answer_signed_with_the_key_the_request_names(served: SandboxServer, identity: SandboxIdentity) -> None:
    client = IndependentClient(identity, served.base_url)
    serial = identity.platform_certificate_serial
    status, headers, _ = await client.send(
        "POST", SEED_PATH, json.dumps(COMBINE_PAPAY).encode(), **{"Wechatpay-Serial": serial}
    )
    assert status == 200 and headers["Wechatpay-Serial"] == serial


@pytest.mark.parametrize("missing", ["Accept", "User-Agent"])
async def test_accept_and_user_agent_are_required(
    served: SandboxServer, identity: SandboxIdentity, missing: str
) -> None:
    client = IndependentClient(identity, served.base_url)
    status, _, body = await client.send("POST", SEED_PATH, b"{}", **{missing: ""})
    assert status == 400 and json.loads(body)["code"] == "INVALID_REQUEST"


async def test_bad_signature_gets_401_and_unknown_path_404(served: SandboxServer, identity: SandboxIdentity) -> None:
    client = IndependentClient(identity, served.base_url)
    status, _, body = await client.send("POST", SEED_PATH, b"{}", Authorization='WECHATPAY2-SHA256-RSA2048 mchid="1"')
    assert status == 401 and json.loads(body)["code"] == "SIGN_ERROR"
    status, _, body = await client.send("GET", "/v3/no/such/api")
    assert status == 404 and json.loads(body)["code"] == "RESOURCE_NOT_EXISTS"


async def test_engine_over_http_for_the_seeds(http_engine: Engine, served: SandboxServer) -> None:
    assert (await http_engine.acall("combine_papay.mini_program", COMBINE_PAPAY)).status == 200
    response = await http_engine.acall("individual_contracts.real_name.mini_program", REAL_NAME)
    assert response.data["pre_entrustweb_id"] and served.sandbox.last.payload == REAL_NAME


# -- faults: every kind, in process and over HTTP ---------------------------------------------

ERROR_STATUSES = [
    (400, "PARAM_ERROR"),
    (401, "SIGN_ERROR"),
    (403, "NO_AUTH"),
    (404, "RESOURCE_NOT_EXISTS"),
    (429, "RATELIMIT_EXCEEDED"),
    (500, "SYSTEM_ERROR"),
    (503, "SERVICE_UNAVAILABLE"),
]
ANSWER_FAULTS = [
    ("not_json", MalformedResponseError, None),
    ("bad_signature", SignatureError, "mismatch"),
    ("stale_signature", SignatureError, "stale"),
    ("unknown_serial", SignatureError, "unknown_serial"),
    ("probe", SignatureError, "probe"),
]
TRANSPORT_FAULTS = [("drop", TransportError), ("truncate", TransportError)]


def _check_error(caught: Any, expected: type, reason: Any) -> None:
    assert isinstance(caught, expected), repr(caught)
    if reason is not None:
        assert caught.reason == reason


@pytest.mark.parametrize(("status", "code"), ERROR_STATUSES)
async def test_error_faults(http_engine: Engine, served: SandboxServer, status: int, code: str) -> None:
    served.sandbox.faults.add(
        Fault.error(status), endpoint="v3.ecommerce.combine_papay.contracts.pre_entrust_sign.mini_program.post"
    )
    with pytest.raises(ApiError) as caught:
        await http_engine.acall("combine_papay.mini_program", COMBINE_PAPAY)
    assert (caught.value.status, caught.value.code, caught.value.verified) == (status, code, True)
    assert caught.value.message and caught.value.request_id
    assert (await http_engine.acall("combine_papay.mini_program", COMBINE_PAPAY)).status == 200  # fired once


@pytest.mark.parametrize(("kind", "expected", "reason"), ANSWER_FAULTS + [(k, e, None) for k, e in TRANSPORT_FAULTS])
async def test_faults_over_http(
    http_engine: Engine, served: SandboxServer, kind: str, expected: type, reason: Any
) -> None:
    served.sandbox.faults.add(Fault(kind))
    with pytest.raises(Exception) as caught:
        await http_engine.acall("combine_papay.mini_program", COMBINE_PAPAY)
    _check_error(caught.value, expected, reason)


@pytest.mark.parametrize(("kind", "expected", "reason"), ANSWER_FAULTS + [(k, e, None) for k, e in TRANSPORT_FAULTS])
def test_faults_in_process(engine: Engine, kind: str, expected: type, reason: Any) -> None:
    engine.emulator.faults.add(Fault(kind))
    with pytest.raises(Exception) as caught:
        engine.call("combine_papay.mini_program", COMBINE_PAPAY)
    _check_error(caught.value, expected, reason)


async def test_latency_within_and_beyond_the_timeout(served: SandboxServer, identity: SandboxIdentity) -> None:
    engine = Engine(**identity.engine_settings(), base_url=served.base_url, load_entry_points=False, timeout=2.0)
    try:
        served.sandbox.faults.add(Fault.latency(0.2))
        assert (await engine.acall("combine_papay.mini_program", COMBINE_PAPAY)).status == 200
        served.sandbox.faults.add(Fault.latency(3.0))
        with pytest.raises(TransportTimeoutError):
            await engine.acall("combine_papay.mini_program", COMBINE_PAPAY)
    finally:
        await engine.aclose()


def test_latency_in_process_honours_the_timeout(make_engine) -> None:
    engine = make_engine(timeout=0.1)
    engine.emulator.faults.add(Fault.latency(5.0))
    with pytest.raises(TransportTimeoutError):
        engine.call("combine_papay.mini_program", COMBINE_PAPAY)


async def test_faults_scripted_through_the_control_api(http_engine: Engine, served: SandboxServer) -> None:
    async with aiohttp.ClientSession() as session:
        spec = {"kind": "error", "status": 429, "times": 2}
        async with session.post(served.base_url + "/sandbox/faults", json=spec) as answer:
            assert answer.status == 201
        async with session.post(served.base_url + "/sandbox/faults", json={"kind": "nonsense"}) as answer:
            assert answer.status == 400
    for _ in range(2):
        with pytest.raises(ApiError, match="RATELIMIT_EXCEEDED"):
            await http_engine.acall("combine_papay.mini_program", COMBINE_PAPAY)
    assert (await http_engine.acall("combine_papay.mini_program", COMBINE_PAPAY)).status == 200


# -- certificates ---------------------------------------------------------------------------


async def test_certificate_rotation_while_running(served: SandboxServer, identity: SandboxIdentity) -> None:
    client = IndependentClient(identity, served.base_url)
    async with (
        aiohttp.ClientSession() as session,
        session.post(served.base_url + "/sandbox/certificates/rotate") as answer,
    ):
        new_serial = (await answer.json())["serial_no"]
    assert len(new_serial) == 40
    status, headers, body = await client.send("GET", "/v3/certificates")
    serials = [entry["serial_no"] for entry in json.loads(body)["data"]]
    assert serials == [identity.platform_certificate_serial, new_serial]
    status, headers, body = await client.send(
        "POST", SEED_PATH, json.dumps(COMBINE_PAPAY).encode(), **{"Wechatpay-Serial": new_serial}
    )
    assert status == 200 and headers["Wechatpay-Serial"] == new_serial
    assert not client.answer_is_authentic(headers, body)  # signed with the new key, not the first one


# -- callbacks ----------------------------------------------------------------------------


class Receiver:
    """A merchant's callback endpoint: verify, decrypt, answer (fails the first ``failures`` times)."""

    def __init__(self, identity: SandboxIdentity, failures: int = 0) -> None:
        self.identity = identity
        self.failures = failures
        self.events: list[tuple[str, dict]] = []

    async def handle(self, request: web.Request) -> web.Response:
        from engine.keys import PlatformKey, PlatformKeyring
        from engine.plugins.verifier import verify_signed
        from engine.wire import Headers

        body = await request.read()
        keyring = PlatformKeyring(
            [PlatformKey(self.identity.platform_public_key_id, self.identity.platform_key.public_key())]
        )
        import time

        verify_signed(Headers(list(request.headers.items())), body, keyring, int(time.time()))
        if self.failures:
            self.failures -= 1
            return web.json_response({"code": "FAIL", "message": "失败"}, status=500)
        envelope = json.loads(body)
        resource = envelope["resource"]
        plaintext = AESGCM(self.identity.apiv3_key).decrypt(
            resource["nonce"].encode(), base64.b64decode(resource["ciphertext"]), resource["associated_data"].encode()
        )
        self.events.append((envelope["event_type"], json.loads(plaintext)))
        return web.Response(status=204)


@pytest.fixture
async def receiver_url(identity: SandboxIdentity) -> AsyncIterator[tuple[Receiver, str]]:
    receiver = Receiver(identity, failures=1)
    app = web.Application()
    app.router.add_post("/notify", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield receiver, f"http://127.0.0.1:{port}/notify"
    await runner.cleanup()


async def test_contract_signing_callback_round_trip(http_engine: Engine, served: SandboxServer, receiver_url) -> None:
    receiver, url = receiver_url
    await http_engine.acall("combine_papay.mini_program", {**COMBINE_PAPAY, "notify_url": url})
    async with aiohttp.ClientSession() as session:
        trigger = {"out_contract_code": COMBINE_PAPAY["out_contract_code"]}
        async with session.post(served.base_url + "/sandbox/notify", json=trigger) as answer:
            assert answer.status == 202
    await until(lambda: served.sandbox.deliveries)  # recorded once it is over: a 500, a wait, the retry
    (delivery,) = served.sandbox.deliveries
    assert delivery.statuses == (500, 204) and delivery.delivered  # retried after the failure
    ((event, resource),) = receiver.events
    assert event == "PAPAY.SIGN"
    assert resource["out_contract_code"] == COMBINE_PAPAY["out_contract_code"] and resource["plan_id"] == 12535


async def test_payment_callback_gives_up_after_the_schedule(engine: Engine) -> None:
    engine.emulator.notify_schedule = (0.01, 0.01)
    delivery = await engine.emulator.notify("http://127.0.0.1:9/closed", engine.emulator.payment_succeeded("T1", 100))
    assert delivery.statuses == (0, 0, 0) and not delivery.delivered


# -- the deliveries the admin API starts: bounded in flight, and the server's to stop ----------


@pytest.fixture
def silent_url() -> Iterator[tuple[socket.socket, str]]:
    """A receiver that never answers: a listener nobody accepts on. The kernel completes each
    connection, and the request then waits for an answer; closing the listener resets them all."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(256)
    try:
        yield listener, f"http://127.0.0.1:{listener.getsockname()[1]}/notify"
    finally:
        listener.close()


async def notify(session: aiohttp.ClientSession, server: SandboxServer, n: int, url: str) -> tuple[int, Any]:
    """The nth callback started over the admin API: APIv3 and APIv2 by turns (they share the limit)."""
    path = "/sandbox/notify" if n % 2 == 0 else "/sandbox/v2/notify"
    async with session.post(server.base_url + path, json={"url": url, "out_trade_no": f"T-{n}"}) as answer:
        return answer.status, await answer.json()


async def test_callbacks_from_the_notify_routes_are_bounded_in_flight(
    identity: SandboxIdentity, silent_url: tuple[socket.socket, str]
) -> None:
    """Each POST started a delivery task, with no bound: a client posting in a loop grew tasks, client
    sessions and sockets without limit. Past ``delivery_limit`` in flight it is refused 429, naming it;
    a delivery that ends gives its place back."""
    listener, url = silent_url
    async with SandboxServer(Sandbox(identity)) as server, aiohttp.ClientSession() as session:
        limit = server.tasks.limit
        answers = [await notify(session, server, n, url) for n in range(limit + 4)]
        assert [status for status, _ in answers] == [202] * limit + [429] * 4
        refusal = answers[-1][1]["error"]
        assert refusal["code"] == "RATELIMIT_EXCEEDED" and f"its delivery limit {limit}:" in refusal["message"]
        assert limit == 100 and server.tasks.deliveries == limit
        listener.close()  # the waiting requests are reset and the retries find nobody: every delivery ends
        await until(lambda: server.tasks.deliveries == 0)
        assert server.tasks.deliveries == 0 and len(server.sandbox.deliveries) == limit // 2
        assert (await notify(session, server, 0, url))[0] == 202


async def test_stopping_the_server_cancels_its_deliveries_and_waits_for_them(
    identity: SandboxIdentity, silent_url: tuple[socket.socket, str]
) -> None:
    """``stop`` cancelled the deliveries but returned before they had finished: the loop still held them
    pending, and a loop closed right after (``ServerThread``) destroyed them pending."""
    _, url = silent_url
    server = SandboxServer(Sandbox(identity))
    await server.start()
    async with aiohttp.ClientSession() as session:
        assert [(await notify(session, server, n, url))[0] for n in range(2)] == [202, 202]
    await asyncio.sleep(0.2)  # both are waiting for an answer
    await server.stop()
    left = [task for task in asyncio.all_tasks() if task is not asyncio.current_task() and not task.done()]
    assert left == [] and server.tasks.deliveries == 0


# -- state and the command line -------------------------------------------------------------


def test_state_directory_is_reused(tmp_path: Path) -> None:
    first = state.load_or_create(tmp_path)
    second = state.load_or_create(tmp_path)
    assert (first.merchant_serial_no, first.platform_public_key_id, first.apiv3_key) == (
        second.merchant_serial_no,
        second.platform_public_key_id,
        second.apiv3_key,
    )
    assert oct((tmp_path / "merchant_private_key.pem").stat().st_mode & 0o777) == "0o600"


def _serve(state_dir: Path, *options: str) -> subprocess.Popen[str]:
    """``wechatpay sandbox serve [options]`` in a child process, its output captured."""
    script = Path(sys.executable).with_name("wechatpay")
    command = [str(script), "sandbox", "serve", "--state-dir", str(state_dir), *options]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_cli_serve_runs_and_stops_cleanly(tmp_path: Path) -> None:
    process = _serve(tmp_path)
    try:
        line = process.stdout.readline()  # type: ignore[union-attr]
        assert line.startswith("WeChat Pay sandbox at http://127.0.0.1:")
        manifest = json.loads((tmp_path / "sandbox.json").read_text())
        assert manifest["base_url"] in line and Path(manifest["merchant_private_key_path"]).is_absolute()
        engine = Engine(
            mchid=manifest["mchid"],
            serial_no=manifest["merchant_serial_no"],
            private_key=manifest["merchant_private_key_path"],
            platform_public_key=manifest["platform_public_key_path"],
            platform_public_key_id=manifest["platform_public_key_id"],
            base_url=manifest["base_url"],
            load_entry_points=False,
        )
        with engine:
            assert engine.call("combine_papay.mini_program", COMBINE_PAPAY).status == 200
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=PATIENCE)
    assert process.returncode == 0 and "Traceback" not in err and "sandbox stopped" in err


def test_cli_serve_keeps_its_last_calls_when_terminated(tmp_path: Path) -> None:
    """Calls do not write the state dir (the ticker does): SIGTERM stops like Ctrl-C, writing it."""
    process = _serve(tmp_path)
    try:
        process.stdout.readline()  # type: ignore[union-attr]  # "WeChat Pay sandbox at ..."
        with Engine(**state.engine_settings(tmp_path), load_entry_points=False) as engine:
            engine.call("combine_papay.mini_program", COMBINE_PAPAY)
    finally:
        process.terminate()
        _, err = process.communicate(timeout=PATIENCE)
    assert process.returncode == 0 and "Traceback" not in err
    saved = json.loads((tmp_path / "world.json").read_text(encoding="utf-8"))
    assert [o["number"] for o in saved["objects"]] == [COMBINE_PAPAY["out_contract_code"]]


def test_cli_serve_keeps_at_most_object_limit_objects(tmp_path: Path) -> None:
    process = _serve(tmp_path, "--object-limit", "2")
    try:
        process.stdout.readline()  # type: ignore[union-attr]  # "WeChat Pay sandbox at ..."
        with Engine(**state.engine_settings(tmp_path), load_entry_points=False) as engine:
            for n in range(4):  # distinct orders, each closed: settled, so the oldest are evicted
                engine.call(JSAPI, order(f"T-{n}"))
                engine.call(CLOSE, {"out_trade_no": f"T-{n}", "mchid": MCHID})
            assert engine.call(JSAPI, order("T-0")).status == 200  # evicted: its number is free again
    finally:
        process.terminate()
        _, err = process.communicate(timeout=PATIENCE)
    assert process.returncode == 0 and "Traceback" not in err
    saved = json.loads((tmp_path / "world.json").read_text(encoding="utf-8"))
    assert [(o["number"], o["state"]) for o in saved["objects"]] == [("T-3", "CLOSED"), ("T-0", "NOTPAY")]


async def test_a_stopping_server_writes_what_changed_since_its_last_tick(
    identity: SandboxIdentity, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server_module, "TICK_SECONDS", 3600.0)  # one tick as it starts, then only stop writes
    sandbox = Sandbox(identity, clock=TestClock())
    sandbox.world.attach(tmp_path)
    async with SandboxServer(sandbox) as server:
        engine = Engine(**identity.engine_settings(), base_url=server.base_url, load_entry_points=False)
        await engine.acall("combine_papay.mini_program", COMBINE_PAPAY)
        await engine.aclose()
    saved = json.loads((tmp_path / "world.json").read_text(encoding="utf-8"))
    assert [o["number"] for o in saved["objects"]] == [COMBINE_PAPAY["out_contract_code"]]


def test_cli_serve_bounds_notify_deliveries_by_delivery_limit(tmp_path: Path, silent_url) -> None:
    import urllib.error
    import urllib.request

    _, url = silent_url
    process = _serve(tmp_path, "--delivery-limit", "1")
    try:
        process.stdout.readline()  # type: ignore[union-attr]  # "WeChat Pay sandbox at ..."
        base_url = json.loads((tmp_path / "sandbox.json").read_text())["base_url"]
        statuses, refusal = [], ""
        for n in range(2):
            body = json.dumps({"url": url, "out_trade_no": f"T-{n}"}).encode()
            request = urllib.request.Request(base_url + "/sandbox/notify", data=body, method="POST")
            request.add_header("Content-Type", "application/json")
            try:
                with urllib.request.urlopen(request, timeout=30) as answer:
                    statuses.append(answer.status)
            except urllib.error.HTTPError as refused:
                statuses.append(refused.code)
                refusal = json.loads(refused.read())["error"]["message"]
    finally:
        process.terminate()
        _, err = process.communicate(timeout=PATIENCE)
    assert statuses == [202, 429] and "its delivery limit 1:" in refusal and "--delivery-limit" in refusal
    assert process.returncode == 0 and "Traceback" not in err


def test_state_files_keep_their_modes_and_symlinks_when_rewritten(tmp_path: Path) -> None:
    """Written by rename, yet as a plain write would leave them: a new public file gets the umask's
    mode, a rewritten one keeps its own, a symlink stays a symlink, and a secret is 0600 whatever."""
    from engine.sandbox.state import _write, write_private

    before = os.umask(0o002)
    try:
        _write(tmp_path / "new.pem", b"new")
        (tmp_path / "kept.pem").write_bytes(b"old")
        os.chmod(tmp_path / "kept.pem", 0o640)
        _write(tmp_path / "kept.pem", b"rewritten")
        (tmp_path / "real.pem").write_bytes(b"old")
        (tmp_path / "link.pem").symlink_to(tmp_path / "real.pem")
        _write(tmp_path / "link.pem", b"through the link")
        (tmp_path / "secret.pem").write_bytes(b"old")
        os.chmod(tmp_path / "secret.pem", 0o644)
        write_private(tmp_path / "secret.pem", b"key")
    finally:
        os.umask(before)

    def mode(name: str) -> str:
        return oct((tmp_path / name).stat().st_mode & 0o777)

    assert (mode("new.pem"), mode("kept.pem"), mode("secret.pem")) == ("0o664", "0o640", "0o600")
    assert (tmp_path / "link.pem").is_symlink() and (tmp_path / "real.pem").read_bytes() == b"through the link"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def _fsyncs(monkeypatch: pytest.MonkeyPatch, refuse_directories: bool = False) -> list[str]:
    """Record each fsync (of a "file" or a "directory") and each os.replace, in order."""
    import stat

    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(descriptor: int) -> None:
        kind = "directory" if stat.S_ISDIR(os.fstat(descriptor).st_mode) else "file"
        events.append(f"fsync {kind}")
        if kind == "directory" and refuse_directories:
            raise OSError(22, "Invalid argument")  # as some file systems answer a directory's fsync
        real_fsync(descriptor)

    def replace(source: Any, target: Any) -> None:
        events.append("replace")
        real_replace(source, target)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return events


def test_a_state_file_is_synced_before_its_rename_and_its_directory_after(tmp_path: Path, monkeypatch) -> None:
    """A rename of a file not yet on disk can leave it empty after a power cut; an unsynced directory, the old name."""
    from engine.sandbox.state import write_private

    events = _fsyncs(monkeypatch)
    write_private(tmp_path / "world.json", b"{}")
    assert events == ["fsync file", "replace", "fsync directory"]
    assert (tmp_path / "world.json").read_bytes() == b"{}"


def test_world_saves_rename_without_syncing(identity, tmp_path: Path, monkeypatch) -> None:
    """world.json is saved many times a second, on the served sandbox's loop among others: a sync per
    save stalled its answers. Its saves keep the one rename (a crash leaves a whole file), no fsync."""
    world = Sandbox(identity).world
    world.attach(tmp_path)
    events = _fsyncs(monkeypatch)
    world.trigger("TRANSACTION.SUCCESS", None, "http://127.0.0.1:9/dead")
    world.save(wait=True)
    assert events == ["replace"] and json.loads((tmp_path / "world.json").read_bytes())["callbacks"]


def test_a_directory_that_cannot_be_synced_does_not_fail_the_write_but_a_file_that_cannot_does(
    tmp_path: Path, monkeypatch
) -> None:
    from engine.sandbox.state import write_private

    events = _fsyncs(monkeypatch, refuse_directories=True)
    write_private(tmp_path / "world.json", b"new")
    assert events == ["fsync file", "replace", "fsync directory"] and (tmp_path / "world.json").read_bytes() == b"new"

    def refused(descriptor: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", refused)
    with pytest.raises(OSError):
        write_private(tmp_path / "world.json", b"never renamed")
    assert (tmp_path / "world.json").read_bytes() == b"new"  # not replaced by a file that may not be on disk
    assert [p.name for p in tmp_path.iterdir()] == ["world.json"]  # and its temporary file is gone


def _dead_pid() -> int:
    """The pid of a process that has exited and been reaped (pids are not reused so soon)."""
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True)
    pid = int(child.stdout)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    return pid


def test_temporary_files_of_dead_writers_are_removed_when_the_state_dir_is_taken_up_live_ones_kept(
    identity: SandboxIdentity, tmp_path: Path
) -> None:
    from engine.sandbox.state import load_or_create, save

    save(identity, tmp_path, "http://127.0.0.1:9")
    dead, alive = _dead_pid(), os.getpid()
    for taking_up in (lambda: load_or_create(tmp_path), lambda: Sandbox(identity).world.attach(tmp_path)):
        planted = {
            f".world.json.tmp-{dead}-0123456789ab": False,  # its writer died mid-write: removed
            f".sandbox.json.tmp-{dead}-ba9876543210": False,
            f".world.json.tmp-{alive}-0123456789ab": True,  # this process may be writing it now: kept
            ".world.json.tmp-1-0123456789ab": True,  # pid 1 is alive
            f".notes.tmp-{dead}": True,  # not named as the engine names its temporary files
            ".world.json.0123456789ab": True,  # named before pids were: nothing says its writer died
        }
        for name in planted:
            (tmp_path / name).write_bytes(b"half a world")
        taking_up()
        assert {name: (tmp_path / name).exists() for name in planted} == planted
        for name in planted:
            (tmp_path / name).unlink(missing_ok=True)
    assert load_or_create(tmp_path).mchid == identity.mchid  # the state itself untouched


def test_a_temporary_name_whose_pid_no_process_can_have_is_kept_not_a_crash(
    identity: SandboxIdentity, tmp_path: Path
) -> None:
    """os.kill raises OverflowError, not an OSError, for a pid beyond a C int: a file so named in the state
    dir (copied in, or another system's) made load_or_create and World.attach fail with that raw error."""
    from engine.sandbox.state import load_or_create

    made = load_or_create(tmp_path)
    planted = [tmp_path / f".world.json.tmp-{pid}-0123456789ab" for pid in (2**31, 2**64, 10**30)]
    for path in planted:
        path.write_bytes(b"half a world")
    assert load_or_create(tmp_path).mchid == made.mchid
    Sandbox(identity).world.attach(tmp_path)
    assert all(path.exists() for path in planted)  # nothing says a writer died: left alone


def test_a_temporary_file_is_named_with_its_writers_pid(tmp_path: Path, monkeypatch) -> None:
    from engine.sandbox.state import TEMPORARY, write_private

    opened: list[str] = []
    real_open = os.open

    def recording_open(path: Any, *args: Any) -> int:
        opened.append(Path(path).name)
        return real_open(path, *args)

    monkeypatch.setattr(os, "open", recording_open)
    write_private(tmp_path / "world.json", b"{}")
    found = TEMPORARY.match(opened[0])
    assert found is not None and int(found["pid"]) == os.getpid() and opened[0].startswith(".world.json.tmp-")
