"""Payload validation: every problem reported at once, with its path, and nothing sent."""

from __future__ import annotations

import json
import time

import pytest
from conftest import COMBINE_PAPAY, REAL_NAME

from engine import Descriptor, Engine, Field, RequestSpec, ValidationError

NESTED = Descriptor(
    id="test.nested.post",
    method="POST",
    path="/v3/test/nested",
    request=RequestSpec(
        body={
            "amount": Field(
                type="object",
                required=True,
                fields={
                    "total": Field(type="integer", required=True, minimum=1, maximum=100000),
                    "currency": Field(enum=("CNY",)),
                },
            ),
            "detail": Field(
                type="array",
                min_items=1,
                max_items=2,
                items=Field(type="object", fields={"name": Field(required=True, max_length=4)}),
            ),
            "code": Field(pattern=r"^[0-9]{6}$"),
            "ratio": Field(type="number"),
            "flag": Field(type="boolean"),
            "secret": Field(encrypted=True, enum=("A",)),
        }
    ),
)


def _errors(engine: Engine, endpoint: str, payload) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        engine.call(endpoint, payload)
    assert engine.emulator.exchanges == [], "nothing may be sent when validation fails"
    return list(caught.value.errors)


def test_every_problem_is_reported_with_its_path(engine: Engine) -> None:
    payload = {**COMBINE_PAPAY, "plan_id": "12535", "notify_url": None, "extra": 1}
    del payload["appid"]
    assert _errors(engine, "combine_papay.mini_program", payload) == [
        "expected integer, got string @ $.plan_id",
        "must not be null @ $.notify_url",
        "unknown field @ $.extra",
        "missing required field @ $.appid",
    ]


def test_payload_must_be_an_object(engine: Engine) -> None:
    assert _errors(engine, "combine_papay.mini_program", ["appid"]) == ["payload must be an object, got array @ $"]
    assert _errors(engine, "combine_papay.mini_program", "x") == ["payload must be an object, got string @ $"]


def test_none_payload_means_empty_object(engine: Engine) -> None:
    assert len(_errors(engine, "combine_papay.mini_program", None)) == 5


def test_bool_is_not_an_integer(engine: Engine) -> None:
    errors = _errors(engine, "combine_papay.mini_program", {**COMBINE_PAPAY, "plan_id": True})
    assert errors == ["expected integer, got boolean @ $.plan_id"]


def test_enum_on_an_encrypted_field_never_echoes_the_value(engine: Engine) -> None:
    engine.register(NESTED)
    errors = _errors(engine, "test.nested.post", {"amount": {"total": 1}, "secret": "张三丰"})
    assert errors == ["must be one of A @ $.secret"]
    assert "张三丰" not in str(errors)


def test_enum_on_a_plain_field_shows_the_value(engine: Engine) -> None:
    errors = _errors(engine, "individual_contracts.real_name.mini_program", {**REAL_NAME, "cred_type": "PASSPORT"})
    assert errors == ["must be one of ID_CARD, got 'PASSPORT' @ $.cred_type"]


def test_nested_objects_arrays_limits_and_patterns(engine: Engine) -> None:
    engine.register(NESTED)
    payload = {
        "amount": {"total": 0, "currency": "USD", "tip": 1},
        "detail": [{"name": "toolong"}, {}, {"name": 3}],
        "code": "12a456",
        "ratio": "0.5",
        "flag": 1,
    }
    assert _errors(engine, "test.nested.post", payload) == [
        "value 0 is under the minimum 1 @ $.amount.total",
        "must be one of CNY, got 'USD' @ $.amount.currency",
        "unknown field @ $.amount.tip",
        "item count 3 is over the maximum 2 @ $.detail",
        "length 7 is over the maximum 4 @ $.detail[0].name",
        "missing required field @ $.detail[1].name",
        "expected string, got integer @ $.detail[2].name",
        "does not match pattern ^[0-9]{6}$ @ $.code",
        "expected number, got string @ $.ratio",
        "expected boolean, got integer @ $.flag",
    ]


def test_valid_nested_payload_passes_and_is_answered(engine: Engine) -> None:
    engine.register(NESTED)
    payload = {"amount": {"total": 100, "currency": "CNY"}, "detail": [{"name": "ab"}], "code": "123456", "ratio": 1}
    assert engine.call("test.nested.post", payload).status == 204  # no response fields: 204 No Content


def test_encrypted_field_longer_than_oaep_can_hold(engine: Engine) -> None:
    errors = _errors(engine, "individual_contracts.real_name.mini_program", {**REAL_NAME, "cred_id": "9" * 215})
    assert errors == ["encoded size 215 is over the maximum 214 @ $.cred_id"]


ENCRYPTED = Descriptor(
    id="test.encrypted.post",
    method="POST",
    path="/v3/test/encrypted",
    request=RequestSpec(
        body={
            "name": Field(required=True, encrypted=True),
            "nickname": Field(encrypted=True),
            "holder": Field(
                type="object",
                fields={"id_number": Field(required=True, encrypted=True), "address": Field(encrypted=True)},
            ),
            "payees": Field(
                type="array", items=Field(type="object", fields={"user_name": Field(required=True, encrypted=True)})
            ),
        }
    ),
)
EMPTY_REQUIRED = "must not be empty (a required encrypted field)"


def test_a_required_encrypted_field_given_empty_is_refused_at_any_depth(engine: Engine) -> None:
    """An empty value is never encrypted (as WeChat Pay and its SDKs do), so a required one went out as ""."""
    engine.register(ENCRYPTED)
    payload = {
        "name": "",
        "nickname": "",
        "holder": {"id_number": "", "address": ""},
        "payees": [{"user_name": "张三丰"}, {"user_name": ""}],
    }
    assert _errors(engine, "test.encrypted.post", payload) == [
        f"{EMPTY_REQUIRED} @ $.name",
        f"{EMPTY_REQUIRED} @ $.holder.id_number",
        f"{EMPTY_REQUIRED} @ $.payees[1].user_name",
    ]
    assert _errors(engine, "individual_contracts.real_name.mini_program", {**REAL_NAME, "real_name": ""}) == [
        f"{EMPTY_REQUIRED} @ $.real_name"
    ]
    # an empty optional one still travels as it is, unencrypted
    payload = {"name": "张三丰", "nickname": "", "holder": {"id_number": "110101199003074477", "address": ""}}
    assert engine.call("test.encrypted.post", payload).status == 204
    sent = json.loads(engine.emulator.last.request.body)
    assert (sent["nickname"], sent["holder"]["address"]) == ("", "")
    assert sent["name"] != "张三丰" and engine.emulator.last.payload == payload  # encrypted, and decrypted back


def test_the_sandbox_refuses_an_empty_required_encrypted_field_too(engine: Engine) -> None:
    """The sandbox validates with the engine's validator: a request that skipped the engine is refused alike."""
    from engine.hookspecs import SigningContext
    from engine.wire import Request

    descriptor = engine.endpoint("individual_contracts.real_name.mini_program")
    prepared = engine.pipeline.prepare(descriptor.id, REAL_NAME).request  # cred_id encrypted, Wechatpay-Serial set
    body = json.dumps({**json.loads(prepared.body), "real_name": ""}).encode()
    unsigned = Request("POST", prepared.base_url, prepared.target, prepared.headers, body)
    signing = SigningContext(engine.credentials, int(time.time()), "n" * 32)
    authorization = engine.plugin_manager.hook.wxpay_sign_request(
        request=unsigned, signing=signing, descriptor=descriptor
    )
    headers = prepared.headers.merged({"Authorization": authorization})
    answer = engine.emulator.handle(Request("POST", prepared.base_url, prepared.target, headers, body))
    assert answer.status == 400
    assert json.loads(answer.body)["detail"] == {"field": "/real_name", "location": "body", "issue": EMPTY_REQUIRED}


def test_required_header_is_checked(engine: Engine) -> None:
    descriptor = Descriptor(
        id="test.idempotent.post",
        method="POST",
        path="/v3/test/idempotent",
        request=RequestSpec(header={"Idempotency-Key": Field(required=True)}, body={"a": Field()}),
    )
    engine.register(descriptor)
    assert _errors(engine, "test.idempotent.post", {"a": "x"}) == ["missing required header @ $headers.Idempotency-Key"]
    assert engine.call("test.idempotent.post", {"a": "x"}, headers={"idempotency-key": "k1"}).status == 204
    assert engine.emulator.last.request.headers["Idempotency-Key"] == "k1"


def test_validation_error_message_lists_every_problem(engine: Engine) -> None:
    with pytest.raises(ValidationError) as caught:
        engine.call("combine_papay.mini_program", {})
    text = str(caught.value)
    assert text.startswith("5 problems in the payload for v3.ecommerce.combine_papay")
    assert "missing required field @ $.notify_url" in text
