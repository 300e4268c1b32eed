"""Hostile callbacks: anyone who can reach the notify URL can send anything.

Every rejection is a ``NotificationError`` subclass with a reason, and over HTTP the documented
failure reply, never a raw ``TypeError``/``UnicodeError`` or aiohttp's generic 500. Property-based
tests (hypothesis, derandomized and bounded) mutate correctly signed callbacks and check that a
mutation either leaves what the signature covers untouched or is refused with a typed error.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import Engine, MalformedNotificationError, NotificationError
from engine.sandbox import SandboxIdentity
from engine.wire import Headers

pytestmark = pytest.mark.usefixtures("no_local_constants")  # examples independent of the tests run before
BOUNDED = settings(
    derandomize=True,
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def receiver() -> Any:
    engine = Engine.sandbox(identity=SandboxIdentity.generate(), load_entry_points=False)
    notification = engine.emulator.payment_succeeded("T-9", total=9)
    yield engine, dict(notification.headers.items()), notification.body
    engine.close()


def resign(engine: Engine, envelope: Any) -> tuple[dict[str, str], bytes]:
    """A correctly signed callback carrying ``envelope`` as its body (a verified but hostile sender)."""
    body = json.dumps(envelope, ensure_ascii=False).encode()
    answer = engine.emulator.sign_answer(200, body, Headers({}))
    return dict(answer.headers.items()), body


@pytest.mark.parametrize(
    ("headers", "body", "why"),
    [
        (None, b"{}", "headers must be a mapping"),
        ({"Wechatpay-Nonce": 12345}, b"{}", "headers must be a mapping of text to text"),
        ({b"Wechatpay-Nonce": "x"}, b"{}", "headers must be a mapping of text to text"),
        ({}, None, "body must be bytes or text, got NoneType"),
        ({}, 42, "body must be bytes or text, got int"),
        ({}, "\ud800{}", "body is not UTF-8 text"),
        ({}, b"x" * (1024 * 1024 + 1), "larger than"),
    ],
)
def test_inputs_a_framework_never_gives_are_malformed(receiver, headers, body, why) -> None:
    engine, _, _ = receiver
    with pytest.raises(MalformedNotificationError, match=why):
        engine.parse_notification(headers, body)


@pytest.mark.parametrize(
    "change",
    [
        {"id": ["a", "list"]},
        {"id": {"an": "object"}},
        {"id": ""},
        {"event_type": ["TRANSACTION.SUCCESS"]},
        {"create_time": 20240101},
        {"summary": {"x": 1}},
        {"resource": "not an object"},
        {"resource": {"algorithm": "AEAD_AES_256_GCM", "ciphertext": 1, "nonce": "n"}},
        {"resource": {"algorithm": "AEAD_AES_256_GCM", "ciphertext": "c", "nonce": "n", "associated_data": 7}},
    ],
)
def test_a_correctly_signed_envelope_of_the_wrong_shape_is_malformed(receiver, change) -> None:
    engine, _, body = receiver
    envelope = {**json.loads(body), **change}
    signed_headers, signed_body = resign(engine, envelope)
    with pytest.raises(MalformedNotificationError):
        engine.parse_notification(signed_headers, signed_body)


@pytest.mark.parametrize(
    "header_change",
    [
        {"Wechatpay-Timestamp": "9" * 4000},
        {"Wechatpay-Nonce": "\ud800"},
        {"Wechatpay-Nonce": "é" * 3},
        {"Wechatpay-Serial": "S" * 5000},
        {"Wechatpay-Signature": ""},
    ],
)
async def test_over_http_every_rejection_gets_the_documented_failure_reply(receiver, header_change) -> None:
    engine, headers, body = receiver
    handled: list[Any] = []
    app = web.Application()
    app.router.add_post("/notify", engine.notification_handler(handled.append))

    async with TestClient(TestServer(app)) as client:
        sent = {**headers, **{k: v.replace("\ud800", "\xff") for k, v in header_change.items()}}
        answer = await client.post("/notify", data=body, headers=sent)
        text = await answer.text()
    assert answer.status in (400, 401) and json.loads(text)["code"] == "FAIL"
    assert handled == []


# == properties =====================================================================================

SIGNED_PARTS = ("Wechatpay-Timestamp", "Wechatpay-Nonce", "Wechatpay-Signature", "Wechatpay-Serial")
mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(min_value=0), st.integers(min_value=1, max_value=255)),
    st.tuples(st.just("insert"), st.integers(min_value=0), st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("cut"), st.integers(min_value=0), st.integers(min_value=1, max_value=64)),
    st.tuples(
        st.just("header"),
        st.sampled_from([*SIGNED_PARTS, "Wechatpay-Signature-Type", "Request-ID"]),
        st.text(max_size=64),
    ),
    st.tuples(st.just("drop"), st.sampled_from(SIGNED_PARTS), st.none()),
)


def mutate(headers: dict[str, str], body: bytes, change: tuple[str, Any, Any]) -> tuple[dict[str, str], bytes]:
    kind, where, what = change
    if kind == "flip":
        index = where % len(body)
        return headers, body[:index] + bytes([body[index] ^ what]) + body[index + 1 :]
    if kind == "insert":
        index = where % (len(body) + 1)
        return headers, body[:index] + what + body[index:]
    if kind == "cut":
        index = where % len(body)
        return headers, body[:index] + body[index + what :]
    if kind == "header":
        return {**headers, where: what}, body
    return {k: v for k, v in headers.items() if k != where}, body


@BOUNDED
@given(changes=st.lists(mutation, min_size=1, max_size=3))
def test_mutated_signed_callbacks_never_parse(receiver, changes) -> None:
    engine, headers, body = receiver
    mutated_headers, mutated_body = headers, body
    for change in changes:
        mutated_headers, mutated_body = mutate(mutated_headers, mutated_body, change)
    names = (*SIGNED_PARTS, "Wechatpay-Signature-Type")
    untouched = mutated_body == body and [mutated_headers.get(n) for n in names] == [headers.get(n) for n in names]
    try:
        notification = engine.parse_notification(mutated_headers, mutated_body)
    except NotificationError:
        return  # refused with its reason: the property
    assert untouched, "a callback whose signed parts changed was accepted"
    assert notification.id == json.loads(body)["id"]


@BOUNDED
@given(
    body=st.one_of(st.binary(max_size=512), st.text(max_size=256)),
    headers=st.dictionaries(
        st.sampled_from([*SIGNED_PARTS, "Request-ID", "X-Other"]), st.text(max_size=80), max_size=6
    ),
)
def test_arbitrary_callbacks_raise_only_notification_errors(receiver, body, headers) -> None:
    engine, _, _ = receiver
    with pytest.raises(NotificationError):
        engine.parse_notification(headers, body)
