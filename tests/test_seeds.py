"""The three seed endpoints end to end through the real executor, signer, verifier and sandbox."""

from __future__ import annotations

import json

import pytest
from conftest import COMBINE_PAPAY, PAY_REDIRECT_SIGN, REAL_NAME

from engine import Engine, Response
from engine.crypto import oaep_decrypt, rsa_verify
from engine.protocol import parse_authorization, request_message

SEEDS = [
    (
        "combine_papay.mini_program",
        COMBINE_PAPAY,
        "/v3/ecommerce/combine-papay/contracts/pre-entrust-sign/mini-program",
    ),
    (
        "password_exempt.ecommerce.pay_redirect_sign",
        PAY_REDIRECT_SIGN,
        "/v3/password-exempt-contract/contracts/ecommerce/pre-entrust-sign/pay-redirect-sign",
    ),
    (
        "individual_contracts.real_name.mini_program",
        REAL_NAME,
        "/v3/ecommerce/individual-contracts/pre-entrust-sign-with-real-name-identity/mini-program",
    ),
]


def _check_answer(engine: Engine, response: Response, payload: dict, path: str) -> None:
    exchange = engine.emulator.last
    assert response.status == 200
    assert exchange.request.method == "POST" and exchange.request.target == path
    assert response.request_id == exchange.response.headers["Request-ID"] != ""
    assert response.verified_with == engine.emulator.identity.platform_public_key_id
    assert response.data == json.loads(exchange.response.body)
    for echoed in ("out_contract_code", "plan_id", "service_id"):
        if echoed in response.data:
            assert response.data[echoed] == payload[echoed]


@pytest.mark.parametrize(("endpoint", "payload", "path"), SEEDS)
def test_seed_sync(engine: Engine, endpoint: str, payload: dict, path: str) -> None:
    response = engine.call(endpoint, payload)
    _check_answer(engine, response, payload, path)


@pytest.mark.parametrize(("endpoint", "payload", "path"), SEEDS)
async def test_seed_async(engine: Engine, endpoint: str, payload: dict, path: str) -> None:
    response = await engine.acall(endpoint, payload)
    _check_answer(engine, response, payload, path)
    await engine.aclose()


def test_combine_papay_answer_has_generated_id_and_merchant(engine: Engine) -> None:
    first = engine.call("combine_papay.mini_program", COMBINE_PAPAY).data
    second = engine.call("combine_papay.mini_program", COMBINE_PAPAY).data
    assert first["mchid"] == engine.credentials.mchid
    assert first["pre_entrustweb_id"] and first["pre_entrustweb_id"] != second["pre_entrustweb_id"]


def test_real_name_fields_travel_encrypted(engine: Engine) -> None:
    engine.call("individual_contracts.real_name.mini_program", REAL_NAME)
    exchange = engine.emulator.last
    wire = json.loads(exchange.request.body)
    platform_key = engine.emulator.identity.platform_key
    for name in ("real_name", "cred_id"):
        assert wire[name] != REAL_NAME[name]
        assert REAL_NAME[name] not in exchange.request.body.decode()
        assert oaep_decrypt(platform_key, wire[name]) == REAL_NAME[name]
    assert wire["openid"] == REAL_NAME["openid"]  # only fields marked encrypted are
    assert exchange.request.headers["Wechatpay-Serial"] == engine.emulator.identity.platform_public_key_id
    assert exchange.payload == REAL_NAME  # the sandbox decrypted what it received


def test_oaep_is_randomized_per_call(engine: Engine) -> None:
    engine.call("individual_contracts.real_name.mini_program", REAL_NAME)
    first = json.loads(engine.emulator.last.request.body)["cred_id"]
    engine.call("individual_contracts.real_name.mini_program", REAL_NAME)
    assert json.loads(engine.emulator.last.request.body)["cred_id"] != first


def test_authorization_header_verifies_with_merchant_public_key(engine: Engine) -> None:
    engine.call("combine_papay.mini_program", COMBINE_PAPAY)
    request = engine.emulator.last.request
    scheme, params = parse_authorization(request.headers["Authorization"])
    assert scheme == "WECHATPAY2-SHA256-RSA2048"
    assert params["mchid"] == engine.credentials.mchid
    assert params["serial_no"] == engine.credentials.serial_no
    assert len(params["nonce_str"]) == 32 and params["timestamp"].isdigit()
    message = request_message("POST", request.target, params["timestamp"], params["nonce_str"], request.body)
    merchant_public = engine.emulator.identity.merchant_key.public_key()
    assert rsa_verify(merchant_public, message, params["signature"])
    assert not rsa_verify(merchant_public, message + b"x", params["signature"])


def test_body_is_compact_utf8_json_as_signed(engine: Engine) -> None:
    engine.call("combine_papay.mini_program", COMBINE_PAPAY)
    body = engine.emulator.last.request.body
    assert body == json.dumps(COMBINE_PAPAY, ensure_ascii=False, separators=(",", ":")).encode()
    assert "微信代扣用户A".encode() in body


@pytest.mark.parametrize("mode", ["certificate", "both"])
def test_certificate_and_mixed_modes(make_engine, mode: str) -> None:
    engine = make_engine(mode=mode)
    identity = engine.emulator.identity
    response = engine.call("individual_contracts.real_name.mini_program", REAL_NAME)
    # Encryption and the announced serial agree; public-key mode is preferred when both are held.
    expected = identity.platform_public_key_id if mode == "both" else identity.platform_certificate_serial
    assert engine.emulator.last.request.headers["Wechatpay-Serial"] == expected
    assert response.verified_with == expected
    assert engine.emulator.last.payload["cred_id"] == REAL_NAME["cred_id"]


def test_mixed_mode_verifies_answers_signed_with_either_key(make_engine) -> None:
    engine = make_engine(mode="both")
    serial = engine.emulator.identity.platform_certificate_serial
    response = engine.call("combine_papay.mini_program", COMBINE_PAPAY, headers={"Wechatpay-Serial": serial})
    assert response.verified_with == serial
