"""Callbacks: verified, fresh, not replayed, well-formed, decrypted; and the replies WeChat Pay expects."""

from __future__ import annotations

import asyncio
import json
from typing import AsyncIterator, Optional

import attrs
import pytest
from aiohttp import web
from conftest import COMBINE_PAPAY

from engine import (
    Engine,
    MalformedNotificationError,
    Notification,
    NotificationDecryptionError,
    NotificationSignatureError,
    SignatureError,
    StaleNotificationError,
)
from engine.keys import PlatformKey, PlatformKeyring, load_certificate
from engine.notifications import failure_reply, parse_notification, success_reply
from engine.plugins.verifier import verify_signed
from engine.protocol import H_SIGNATURE
from engine.sandbox.server import SandboxServer


def _vector_parse(vector: dict, now: int, headers: dict | None = None, body: str | None = None) -> Notification:
    keyring = PlatformKeyring([PlatformKey.from_certificate(load_certificate(vector["platform_certificate_pem"]))])
    return parse_notification(
        headers or vector["headers"],
        vector["body"] if body is None else body,
        verify=lambda raw: verify_signed(raw.headers, raw.body, keyring, now),
        apiv3_key=vector["apiv3_key"].encode(),
    )


def test_go_notification_vector(vectors) -> None:
    vector = vectors["go-notify-full-callback"]
    notification = _vector_parse(vector, vector["now_unix"])
    expected = vector["expected_envelope"]
    assert (notification.id, notification.event_type, notification.summary) == (
        expected["id"],
        expected["event_type"],
        expected["summary"],
    )
    assert notification.original_type == "payscore" and notification.verified_with == "D7CE59D1F522D701"
    assert notification.resource == json.loads(vector["expected_resource_plaintext"])
    assert "out_contract_code" not in repr(notification)  # the decrypted resource stays out of reprs


def test_go_vector_probe_and_stale(vectors) -> None:
    vector = vectors["go-notify-full-callback"]
    probe = vectors["probe-signtest-signature-must-fail"]["headers_override"]
    with pytest.raises(NotificationSignatureError) as caught:
        _vector_parse(vector, vector["now_unix"], headers={**vector["headers"], **probe})
    assert caught.value.reason == "probe" and isinstance(caught.value, SignatureError)
    with pytest.raises(StaleNotificationError, match="callback timestamp is 301 s away"):
        _vector_parse(vector, vector["now_unix"] + 301)


def _sandbox_callback(engine: Engine) -> tuple[dict, bytes]:
    notification = engine.emulator.payment_succeeded("T-1001", total=88)
    return dict(notification.headers.items()), notification.body


def test_sandbox_payment_callback_parses(engine: Engine) -> None:
    headers, body = _sandbox_callback(engine)
    notification = engine.parse_notification(headers, body)
    assert notification.event_type == "TRANSACTION.SUCCESS" and notification.resource_type == "encrypt-resource"
    assert notification.resource["out_trade_no"] == "T-1001" and notification.resource["amount"]["total"] == 88
    assert notification.verified_with == engine.emulator.identity.platform_public_key_id


@pytest.mark.parametrize(
    ("spoil", "error", "text"),
    [
        (
            lambda h, b: (h, b.replace(b"TRANSACTION.SUCCESS", b"TRANSACTION.CLOSED")),
            NotificationSignatureError,
            "does not",
        ),
        (lambda h, b: ({**h, H_SIGNATURE: "WECHATPAY/SIGNTEST/abc"}, b), NotificationSignatureError, "probe"),
        (lambda h, b: ({k: v for k, v in h.items() if k != "Wechatpay-Nonce"}, b), NotificationSignatureError, "lacks"),
        (lambda h, b: ({**h, "Wechatpay-Serial": "PUB_KEY_ID_1"}, b), NotificationSignatureError, "unknown key"),
    ],
)
def test_forged_callbacks_are_rejected(engine: Engine, spoil, error: type, text: str) -> None:
    headers, body = spoil(*_sandbox_callback(engine))
    with pytest.raises(error, match=text):
        engine.parse_notification(headers, body)


def _signed(engine: Engine, body: bytes) -> tuple[dict, bytes]:
    answer = engine.emulator.sign_answer(
        200, body, engine.emulator.last.request.headers if engine.emulator.exchanges else {}
    )
    return dict(answer.headers.items()), body


@pytest.mark.parametrize(
    ("body", "text"),
    [
        (b"not json", "not JSON"),
        (b"[1]", "not a JSON object"),
        (b'{"id": "x"}', "lacks create_time, event_type, resource_type, resource"),
        (
            b'{"id":"x","create_time":"t","event_type":"E","resource_type":"r","resource":"s"}',
            r"resource \(an object\)",
        ),
        (
            b'{"id":"x","create_time":"t","event_type":"E","resource_type":"r","resource":{"algorithm":"A"}}',
            "resource.ciphertext, resource.nonce",
        ),
    ],
)
def test_malformed_callbacks_are_rejected(engine: Engine, body: bytes, text: str) -> None:
    from engine.wire import Headers

    answer = engine.emulator.sign_answer(200, body, Headers({}))
    with pytest.raises(MalformedNotificationError, match=text):
        engine.parse_notification(dict(answer.headers.items()), body)


def test_wrong_apiv3_key_cannot_decrypt(make_engine, engine: Engine) -> None:
    headers, body = _sandbox_callback(engine)
    other = make_engine(apiv3_key=b"0" * 32)
    with pytest.raises(NotificationDecryptionError, match="does not decrypt under the APIv3 key"):
        other.parse_notification(headers, body)


async def test_a_failed_handler_runs_again_and_an_acknowledged_duplicate_gets_success(engine: Engine) -> None:
    headers, body = _sandbox_callback(engine)
    attempts: list[str] = []

    async def flaky(notification: Notification) -> None:
        attempts.append(notification.id)
        if len(attempts) == 1:
            raise RuntimeError("database unavailable")

    first = await engine.handle_notification(headers, body, flaky)
    assert first.status == 500 and json.loads(first.body) == {"code": "FAIL", "message": "处理失败，请稍后重试"}
    second = await engine.handle_notification(headers, body, flaky)  # WeChat Pay's retry: processed
    assert (second.status, second.body) == (204, b"")
    third = await engine.handle_notification(headers, body, flaky)  # already processed: success, not run
    assert (third.status, third.body) == (204, b"")
    assert len(attempts) == 2
    assert engine.parse_notification(headers, body).id == attempts[0]  # the low-level step remembers nothing


def test_replies() -> None:
    assert attrs.astuple(success_reply()) == (204, b"", {})
    forged = failure_reply(NotificationSignatureError("mismatch", "signature does not verify"))
    assert forged.status == 401 and json.loads(forged.body)["code"] == "FAIL"
    assert failure_reply(MalformedNotificationError("x")).status == 400
    assert failure_reply(RuntimeError("secret detail")).body == '{"code": "FAIL", "message": "处理失败"}'.encode()


@pytest.fixture
async def receiving_app(engine: Engine) -> AsyncIterator[tuple[list, str]]:
    received: list[Notification] = []
    app = web.Application()
    app.router.add_post("/wechatpay/notify", engine.notification_handler(received.append))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield received, f"http://127.0.0.1:{runner.addresses[0][1]}/wechatpay/notify"
    await runner.cleanup()


async def test_sandbox_callbacks_round_trip_over_http(engine: Engine, receiving_app) -> None:
    received, url = receiving_app
    await engine.acall("combine_papay.mini_program", {**COMBINE_PAPAY, "notify_url": url})
    notify_url, notification = engine.emulator.contract_signed(COMBINE_PAPAY["out_contract_code"])
    delivery = await engine.emulator.notify(notify_url, notification)
    assert delivery.statuses == (204,)
    (event,) = received
    assert (
        event.event_type == "PAPAY.SIGN" and event.resource["out_contract_code"] == COMBINE_PAPAY["out_contract_code"]
    )
    forged = attrs.evolve(notification, body=notification.body.replace(b"PAPAY.SIGN", b"PAPAY.SIGX"))
    delivery = await engine.emulator.notify(url, forged)
    assert set(delivery.statuses) == {401} and len(received) == 1  # rejected every time, never handled
    await engine.aclose()


async def test_served_sandbox_delivers_to_the_engine_handler(identity, receiving_app) -> None:
    received, url = receiving_app
    async with SandboxServer(__import__("engine.sandbox", fromlist=["Sandbox"]).Sandbox(identity)) as server:
        server.sandbox.notify_schedule = (0.01,)
        delivery = await server.sandbox.notify(url, server.sandbox.payment_succeeded("T-9", 5))
    assert delivery.delivered and received[0].resource["out_trade_no"] == "T-9"
    await asyncio.sleep(0)


async def test_rejection_replies_do_not_reveal_our_keys(engine: Engine) -> None:
    headers, body = _sandbox_callback(engine)
    reply = await engine.handle_notification({**headers, "Wechatpay-Serial": "PUB_KEY_ID_1"}, body, lambda n: None)
    assert reply.status == 401 and json.loads(reply.body) == {"code": "FAIL", "message": "签名验证失败"}
    assert engine.emulator.identity.platform_public_key_id.encode() not in reply.body
    await engine.aclose()


async def test_sandbox_deliveries_send_back_no_cookie_a_receiver_set(engine: Engine) -> None:
    """WeChat Pay keeps no cookies from a merchant's answers: a retry of a callback (and every callback
    of the outbox's one session) carries none, however many the receiver sets."""
    from engine.sandbox import notify

    cookies: list[Optional[str]] = []

    async def refuse_with_a_cookie(request: web.Request) -> web.Response:
        cookies.append(request.headers.get("Cookie"))
        answer = web.json_response({"code": "FAIL", "message": "busy"}, status=500)
        answer.set_cookie(f"session{len(cookies)}", "x" * 32)
        return answer

    app = web.Application()
    app.router.add_post("/notify", refuse_with_a_cookie)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    # By name: aiohttp's default jar keeps no cookie for an IP address, so 127.0.0.1 could not tell.
    url = f"http://localhost:{runner.addresses[0][1]}/notify"
    try:
        notification = engine.emulator.payment_succeeded("T-9", 5)
        delivery = await notify.deliver(url, notification, schedule=(0.01, 0.01))
    finally:
        await runner.cleanup()
        await engine.aclose()
    assert delivery.statuses == (500, 500, 500) and cookies == [None, None, None]
