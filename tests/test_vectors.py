"""Golden tests: the engine reproduces the known-answer vectors of shared/vectors (copied to tests/data).

Clock and nonce are injected, so requests are byte-for-byte deterministic.
"""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from engine import (
    ApiError,
    Engine,
    Headers,
    MockTransport,
    RawResponse,
    Request,
    SignatureError,
    SigningContext,
    hookimpl,
)
from engine.crypto import aead_decrypt, aead_encrypt, rsa_sign
from engine.descriptor import adhoc_descriptor
from engine.keys import MerchantCredentials, PrivateKeySigner, load_private_key
from engine.protocol import format_authorization, parse_authorization, request_message, response_message

NO_ANSWER = RawResponse(500, Headers({}), b"")


class FormatOnlySigner:
    """A signer plugin like the Go/Java test signers: scheme and signature are fixed strings."""

    def __init__(self, scheme: str, signature=None) -> None:
        self.scheme = scheme
        self.signature = signature

    @hookimpl
    def wxpay_sign_request(self, request: Request, signing: SigningContext) -> str:
        message = request_message(request.method, request.target, signing.timestamp, signing.nonce, request.body)
        params = {
            "mchid": signing.credentials.mchid,
            "nonce_str": signing.nonce,
            "timestamp": str(signing.timestamp),
            "serial_no": signing.credentials.serial_no,
            "signature": self.signature or "Sign:" + message.decode(),
        }
        return format_authorization(self.scheme, params)


def _vector_engine(
    vector: dict, *, mchid: str, serial_no: str, timestamp: int, nonce: str, plugins=(), transport=None
) -> Engine:
    return Engine(
        mchid=mchid,
        serial_no=serial_no,
        private_key=vector["private_key_pem"],
        platform_certificates=[vector["certificate_pem"]],
        plugins=list(plugins),
        transport=transport,
        clock=lambda: timestamp,
        nonce_factory=lambda: nonce,
        load_entry_points=False,
    )


def test_sha256_rsa_signature_is_reproduced(vectors) -> None:
    vector = vectors["go-sha256withrsa-sign-source"]
    key = load_private_key(vector["private_key_pem"])
    assert rsa_sign(key, vector["message"].encode()) == vector["expected_signature_b64"]


def test_official_request_message_and_real_signature(vectors) -> None:
    keys = vectors["go-sha256withrsa-sign-source"]
    example = vectors["official-request-sign-message-example"]
    canned = MockTransport(lambda request: NO_ANSWER)
    engine = _vector_engine(
        keys,
        mchid="1900009191",
        serial_no="1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C",
        timestamp=example["timestamp"],
        nonce=example["nonce"],
        transport=canned,
    )
    with engine, pytest.raises(ApiError):  # the canned 500 ends the call; the request is what matters
        engine.call("GET /v3/certificates")
    sent = canned.requests[0]
    scheme, params = parse_authorization(sent.headers["Authorization"])
    message = request_message(sent.method, sent.target, params["timestamp"], params["nonce_str"], sent.body)
    assert message.decode() == example["expected_message"]
    key = serialization.load_pem_private_key(keys["private_key_pem"].encode(), None)
    expected = base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()
    assert scheme == "WECHATPAY2-SHA256-RSA2048"
    assert sent.headers["Authorization"] == (
        'WECHATPAY2-SHA256-RSA2048 mchid="1900009191",nonce_str="593BEC0C930BF1AFEB40B4A08C8FB242",'
        f'timestamp="1554208460",serial_no="1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C",signature="{expected}"'
    )


def test_go_authorization_format_through_a_signer_plugin(vectors) -> None:
    keys = vectors["go-sha256withrsa-sign-source"]
    cases = vectors["go-authorization-header-format-mock-signer"]["cases"]
    first = cases[0]
    canned = MockTransport(lambda request: NO_ANSWER)
    engine = _vector_engine(
        keys,
        mchid=first["mchid"],
        serial_no=first["serial_no"],
        timestamp=first["timestamp"],
        nonce=first["nonce"],
        plugins=[FormatOnlySigner("WECHATPAY2-Mock")],
        transport=canned,
    )
    with engine, pytest.raises(ApiError):
        engine.call("GET /v3/certificates")
    assert canned.requests[0].headers["Authorization"] == first["expected_authorization"]
    for case in cases:  # the POST case has a raw body no JSON payload can produce: sign the record directly
        request = Request(case["method"], "https://x", case["canonical_url"], body=case["body"].encode())
        context = SigningContext(engine.credentials, case["timestamp"], case["nonce"])
        descriptor = adhoc_descriptor(case["method"], case["canonical_url"])
        assert (
            engine.plugin_manager.hook.wxpay_sign_request(request=request, signing=context, descriptor=descriptor)
            == (case["expected_authorization"])
        )


def test_java_canonical_url_with_query(vectors) -> None:
    keys = vectors["go-sha256withrsa-sign-source"]
    vector = vectors["java-credential-canonical-url-with-query"]
    canned = MockTransport(lambda request: NO_ANSWER)
    engine = _vector_engine(
        keys,
        mchid="1234567891",
        serial_no="5F1C72E2A8931B72A2E13AF8DEE92471EB397115",
        timestamp=vector["timestamp"],
        nonce=vector["nonce"],
        plugins=[FormatOnlySigner("WECHATPAY2-fake-algorithm", "fake-sign")],
        transport=canned,
    )
    with engine, pytest.raises(ApiError):
        engine.call("GET /v3/pay/transactions/id/1217752501201407033233368018", {"mchid": "1230000109"})
    sent = canned.requests[0]
    assert sent.url == vector["request_uri"]
    assert sent.headers["Authorization"] == vector["expected_authorization"]
    message = request_message(sent.method, sent.target, vector["timestamp"], vector["nonce"], sent.body)
    assert message.decode() == vector["expected_message"]


def _notify_engine(vector: dict, now: int, respond) -> Engine:
    return Engine(
        mchid="1234567890",
        serial_no="0123456789ABC",
        private_key=vector["platform_private_key_pem"],
        platform_certificates=[vector["platform_certificate_pem"]],
        transport=MockTransport(respond),
        clock=lambda: now,
        load_entry_points=False,
    )


def _signed_vector_answer(vector: dict, **header_overrides: str) -> RawResponse:
    headers = {**vector["headers"], **header_overrides}
    return RawResponse(200, Headers(headers), vector["body"].encode())


def test_signed_answer_vector_verifies(vectors) -> None:
    vector = vectors["go-notify-full-callback"]
    engine = _notify_engine(vector, vector["now_unix"], lambda request: _signed_vector_answer(vector))
    with engine:
        response = engine.call("POST /v3/anything", {})
    assert response.verified_with == "D7CE59D1F522D701"
    assert response.data == json.loads(vector["body"])
    message = response_message(
        vector["headers"]["Wechatpay-Timestamp"], vector["headers"]["Wechatpay-Nonce"], vector["body"].encode()
    )
    assert message.decode() == vector["expected_message_to_verify"]


@pytest.mark.parametrize(
    ("reason", "now_offset", "overrides"),
    [
        ("stale", 301, {}),
        ("stale", -301, {}),
        ("mismatch", 0, {"Wechatpay-Nonce": "EcZ9Cmy4Xyx1i6RlJQzLcCyEqDa26NBy"}),
        ("unknown_serial", 0, {"Wechatpay-Serial": "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"}),
        ("probe", 0, {"Wechatpay-Signature": "WECHATPAY/SIGNTEST/tJHIiIS9eB2hAYstmAmbbD3ZE5LiIm/Ug5tuL4fC"}),
    ],
)
def test_answer_vector_rejections(vectors, reason: str, now_offset: int, overrides: dict) -> None:
    vector = vectors["go-notify-full-callback"]
    engine = _notify_engine(
        vector, vector["now_unix"] + now_offset, lambda r: _signed_vector_answer(vector, **overrides)
    )
    with engine, pytest.raises(SignatureError) as caught:
        engine.call("POST /v3/anything", {})
    assert caught.value.reason == reason


def test_probe_vector_is_the_one_in_the_file(vectors) -> None:
    probe = vectors["probe-signtest-signature-must-fail"]["headers_override"]["Wechatpay-Signature"]
    vector = vectors["go-notify-full-callback"]
    engine = _notify_engine(
        vector, vector["now_unix"], lambda r: _signed_vector_answer(vector, **{"Wechatpay-Signature": probe})
    )
    with engine, pytest.raises(SignatureError, match="probe"):
        engine.call("POST /v3/anything", {})


def test_response_message_vectors(vectors) -> None:
    official = vectors["official-response-verify-message-example"]
    headers = official["headers"]
    message = response_message(headers["Wechatpay-Timestamp"], headers["Wechatpay-Nonce"], official["body"].encode())
    assert message.decode() == official["expected_message"]
    for case in vectors["go-response-validate-message-format"]["cases"]:
        assert response_message("<now>", case["nonce"], case["body"].encode()).decode() == case["expected_message"]


def test_php_parameter_order_parses_like_go_order(vectors) -> None:
    vector = vectors["axios-php-authorization-param-order"]
    scheme, params = parse_authorization(vector["expected_authorization"])
    assert scheme == "WECHATPAY2-SHA256-RSA2048"
    assert params == {"mchid": "1", "serial_no": "5", "timestamp": "4", "nonce_str": "2", "signature": "3"}
    go_order = format_authorization(scheme, params)
    assert go_order == 'WECHATPAY2-SHA256-RSA2048 mchid="1",nonce_str="2",timestamp="4",serial_no="5",signature="3"'
    for case in vector["request_message_cases"]:
        method, target, ts, nonce, *body = case["args"]
        assert (
            request_message(method, target, ts, nonce, (body[0] if body else "").encode()).decode() == case["expected"]
        )


@pytest.mark.parametrize("vector_id", ["go-rsa-oaep-sha1-decrypt", "java-rsa-oaep-sha1-decrypt"])
def test_oaep_decryption_vectors_through_the_decrypt_hook(make_engine, vectors, vector_id: str) -> None:
    vector = vectors[vector_id]
    hook = make_engine().plugin_manager.hook
    credentials = MerchantCredentials("1", "S", PrivateKeySigner(load_private_key(vector["private_key_pem"])))
    assert (
        hook.wxpay_decrypt_field(ciphertext=vector["ciphertext_b64"], credentials=credentials)
        == (vector["expected_plaintext"])
    )
    with pytest.raises(ValueError, match="RSA-OAEP decryption failed"):
        hook.wxpay_decrypt_field(ciphertext="MTIzNA==", credentials=credentials)


@pytest.mark.parametrize("vector_id", ["java-aead-aes-256-gcm-message", "go-aead-gcm-decrypt-hello-world"])
def test_aead_vectors(vectors, vector_id: str) -> None:
    vector = vectors[vector_id]
    key = vector["key"].encode()
    plaintext = vector.get("plaintext", vector.get("expected_plaintext"))
    assert aead_decrypt(key, vector["nonce"], vector["associated_data"], vector["ciphertext_b64"]) == plaintext.encode()
    assert aead_encrypt(key, vector["nonce"], vector["associated_data"], plaintext.encode()) == vector["ciphertext_b64"]
    with pytest.raises(ValueError):
        aead_decrypt(key, vector["nonce"], vector["associated_data"] + "x", vector["ciphertext_b64"])


def test_sandbox_401_has_the_real_sign_error_shape(make_engine, vectors, identity) -> None:
    from engine.sandbox import SandboxIdentity

    stranger = SandboxIdentity.generate()
    engine = make_engine(private_key=stranger.merchant_private_pem())  # signs with a key the sandbox does not know
    with pytest.raises(ApiError) as caught:
        engine.call(
            "combine_papay.mini_program",
            {
                "appid": "a",
                "plan_id": 1,
                "out_contract_code": "c",
                "contract_display_account": "d",
                "notify_url": "https://e",
            },
        )
    real = vectors["server-401-sign-error-body"]["examples"][0]["body"]
    error = caught.value
    assert (error.status, error.code, error.verified) == (401, "SIGN_ERROR", True)
    assert set(error.detail) == set(real["detail"])
    info = error.detail["sign_information"]
    assert set(info) == set(real["detail"]["sign_information"])
    assert info["url"] == "/v3/ecommerce/combine-papay/contracts/pre-entrust-sign/mini-program"
    assert info["truncated_sign_message"].startswith("POST\n/v3/ecommerce/combine-papay/")
    assert info["sign_message_length"] >= len(info["truncated_sign_message"].encode())
