"""Forged answers: every 2xx answer is verified or the call fails, and its data is never returned.

A user transport plugin lets the real sandbox answer each request and then rewrites the answer the
way an attacker (or a broken proxy) could: tampered body, swapped headers, foreign keys, probes.
Each case runs through the sync ``Engine.call`` and the async ``Engine.acall``.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any, Callable, Optional

import attrs
import pytest
from conftest import COMBINE_PAPAY
from cryptography.hazmat.primitives.asymmetric import rsa

from engine import (
    ApiError,
    Engine,
    Headers,
    MalformedResponseError,
    MockTransport,
    RawResponse,
    Response,
    SignatureError,
    hookimpl,
)
from engine.crypto import rsa_sign
from engine.protocol import response_message
from engine.sandbox import SandboxIdentity

PAPAY = "combine_papay.mini_program"
UNKNOWN_SERIAL = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
SM2 = "WECHATPAY2-SM2-WITH-SM3"
SIGNATURE_HEADERS = ("Wechatpay-Timestamp", "Wechatpay-Nonce", "Wechatpay-Signature", "Wechatpay-Serial")


# -- building forged answers --------------------------------------------------------------------


@attrs.frozen
class Keys:
    """The keys a forgery may use: WeChat Pay's own (the sandbox's) and an attacker's."""

    platform: rsa.RSAPrivateKey
    foreign: rsa.RSAPrivateKey


Forge = Callable[[RawResponse, Keys], RawResponse]


def with_headers(raw: RawResponse, **changes: Optional[str]) -> RawResponse:
    """``raw`` with headers replaced (``Wechatpay_Nonce="x"``) or removed (``=None``)."""
    wanted = {name.replace("_", "-").lower(): value for name, value in changes.items()}
    kept = [(k, v) for k, v in raw.headers.items() if k.lower() not in wanted]
    added = [(name, value) for name, value in wanted.items() if value is not None]
    return attrs.evolve(raw, headers=Headers(kept + added))


def resign(
    raw: RawResponse,
    key: rsa.RSAPrivateKey,
    *,
    body: Optional[bytes] = None,
    status: Optional[int] = None,
    timestamp: Optional[str] = None,
    serial: Optional[str] = None,
) -> RawResponse:
    """``raw`` with a new body/status/timestamp/serial, validly signed by ``key``."""
    body = raw.body if body is None else body
    timestamp = raw.headers["Wechatpay-Timestamp"] if timestamp is None else timestamp
    nonce = raw.headers["Wechatpay-Nonce"]
    signature = rsa_sign(key, response_message(timestamp, nonce, body))
    signed = with_headers(
        raw,
        Wechatpay_Timestamp=timestamp,
        Wechatpay_Signature=signature,
        Wechatpay_Serial=serial or raw.headers["Wechatpay-Serial"],
    )
    return attrs.evolve(signed, body=body, status=raw.status if status is None else status)


def flip_one_byte(body: bytes) -> bytes:
    """Change the case of the first letter: one byte differs, the JSON stays JSON."""
    index = next(i for i, byte in enumerate(body) if chr(byte).isalpha())
    return body[:index] + bytes([body[index] ^ 0x20]) + body[index + 1 :]


def now_plus(seconds: int) -> str:
    return str(int(time.time()) + seconds)


def fullwidth(digits: str) -> str:
    return digits.translate({ord(d): 0xFF10 + int(d) for d in "0123456789"})


@pytest.fixture(scope="session")
def keys(identity: SandboxIdentity) -> Keys:
    foreign = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return Keys(identity.platform_key, foreign)


@pytest.fixture
def forged(make_engine: Callable[..., Engine], keys: Keys) -> Callable[..., Engine]:
    """``forged(forge, plugins=[...])``: a sandbox engine whose answers pass through ``forge``."""

    def build(forge: Forge, plugins: tuple = (), **options: Any) -> Engine:
        made: list[Engine] = []
        transport = MockTransport(lambda request: forge(made[0].emulator.handle(request), keys))
        made.append(make_engine(plugins=plugins, transport=transport, **options))
        return made[0]

    return build


@pytest.fixture(params=["sync", "async"])
def call(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """``await call(engine)``: one call of ``combine_papay`` through ``Engine.call`` or ``Engine.acall``."""

    async def run(engine: Engine, ref: str = PAPAY, payload: Any = COMBINE_PAPAY) -> Response:
        if request.param == "sync":
            return engine.call(ref, payload)
        try:
            return await engine.acall(ref, payload)
        finally:
            await engine.aclose()

    return run


async def rejected(engine: Engine, call: Callable[..., Any], error: type = SignatureError) -> Any:
    """Run the call, expect ``error``, and check the sandbox did answer and no answer data leaked."""
    with pytest.raises(error) as caught:
        await call(engine)
    assert len(engine.emulator.exchanges) == 1, "the request must have reached the sandbox"
    answer = engine.emulator.last.answer
    if isinstance(answer, dict) and "pre_entrustweb_id" in answer:
        assert answer["pre_entrustweb_id"] not in str(caught.value)
    return caught.value


# -- every forgery of a 2xx answer fails with its own reason ------------------------------------

FORGERIES: list[tuple[str, Forge, str]] = [
    ("tampered_body", lambda raw, k: attrs.evolve(raw, body=flip_one_byte(raw.body)), "mismatch"),
    ("swapped_nonce", lambda raw, k: with_headers(raw, Wechatpay_Nonce=secrets.token_hex(16)), "mismatch"),
    ("stale_timestamp_past", lambda raw, k: resign(raw, k.platform, timestamp=now_plus(-400)), "stale"),
    ("stale_timestamp_future", lambda raw, k: resign(raw, k.platform, timestamp=now_plus(400)), "stale"),
    ("foreign_key_right_serial", lambda raw, k: resign(raw, k.foreign), "mismatch"),
    ("foreign_key_unknown_serial", lambda raw, k: resign(raw, k.foreign, serial=UNKNOWN_SERIAL), "unknown_serial"),
    (
        "foreign_key_unknown_public_key_id",
        lambda raw, k: resign(raw, k.foreign, serial="PUB_KEY_ID_0000000000000000000000000000000001"),
        "unknown_serial",
    ),
    (
        "probe_not_base64",
        lambda raw, k: with_headers(raw, Wechatpay_Signature="WECHATPAY/SIGNTEST/%%not*base64!!"),
        "probe",
    ),
    (
        "probe_prefix_on_valid_signature",
        lambda raw, k: with_headers(
            raw, Wechatpay_Signature="WECHATPAY/SIGNTEST/" + raw.headers["Wechatpay-Signature"]
        ),
        "probe",
    ),
    ("probe_prefix_only", lambda raw, k: with_headers(raw, Wechatpay_Signature="WECHATPAY/SIGNTEST/"), "probe"),
    *[
        (f"missing_{name}", lambda raw, k, name=name: with_headers(raw, **{name: None}), "missing_header")
        for name in SIGNATURE_HEADERS
    ],
    *[
        (f"empty_{name}", lambda raw, k, name=name: with_headers(raw, **{name: ""}), "missing_header")
        for name in SIGNATURE_HEADERS
    ],
    (
        "no_signature_headers_at_all",
        lambda raw, k: with_headers(raw, **dict.fromkeys(SIGNATURE_HEADERS)),
        "missing_header",
    ),
    (
        "unsupported_signature_type_sm2",
        lambda raw, k: with_headers(raw, Wechatpay_Signature_Type=SM2),
        "unsupported_type",
    ),
    (
        "unsupported_signature_type_brand",
        lambda raw, k: with_headers(raw, Wechatpay_Signature_Type="WECHATPAY-BRAND-SHA256-RSA2048"),
        "unsupported_type",
    ),
]

BAD_TIMESTAMPS: list[tuple[str, Callable[[str], str]]] = [
    ("letters", lambda ts: "abc"),
    ("negative", lambda ts: "-" + ts),
    ("plus_sign", lambda ts: "+" + ts),
    ("leading_space", lambda ts: " " + ts),
    ("decimal", lambda ts: ts + ".0"),
    ("milliseconds_with_unit", lambda ts: ts + "ms"),
    ("superscript_digit", lambda ts: ts[:-1] + "\u00b2"),
    ("fullwidth_digits", fullwidth),
]


@pytest.mark.parametrize(("forge", "reason"), [(f, r) for _, f, r in FORGERIES], ids=[n for n, _, _ in FORGERIES])
async def test_forged_2xx_answer_fails_with_reason(forged, call, forge: Forge, reason: str) -> None:
    error = await rejected(forged(forge), call)
    assert error.reason == reason


@pytest.mark.parametrize("make_timestamp", [f for _, f in BAD_TIMESTAMPS], ids=[n for n, _ in BAD_TIMESTAMPS])
async def test_malformed_timestamp_is_bad_timestamp(forged, call, make_timestamp: Callable[[str], str]) -> None:
    def forge(raw: RawResponse, k: Keys) -> RawResponse:
        return resign(raw, k.platform, timestamp=make_timestamp(raw.headers["Wechatpay-Timestamp"]))

    error = await rejected(forged(forge), call)
    assert error.reason == "bad_timestamp"


async def test_untouched_answer_passes_the_same_harness(forged, call, identity: SandboxIdentity) -> None:
    """Control: the forging transport itself does not break verification."""
    engine = forged(lambda raw, k: raw)
    response = await call(engine)
    assert response.data["out_contract_code"] == COMBINE_PAPAY["out_contract_code"]
    assert response.verified_with == identity.platform_public_key_id


async def test_answer_resigned_with_the_real_key_passes(forged, call) -> None:
    """Control for ``resign``: re-signing with WeChat Pay's key and a fresh timestamp is accepted."""
    engine = forged(lambda raw, k: resign(raw, k.platform, timestamp=now_plus(-5)))
    response = await call(engine)
    assert response.data["plan_id"] == COMBINE_PAPAY["plan_id"]


async def test_signature_error_message_does_not_quote_the_signature(forged, call) -> None:
    seen: list[str] = []

    def forge(raw: RawResponse, k: Keys) -> RawResponse:
        forgery = resign(raw, k.foreign)
        seen.append(forgery.headers["Wechatpay-Signature"])
        return forgery

    error = await rejected(forged(forge), call)
    assert error.reason == "mismatch"
    assert seen[0] not in str(error) and seen[0] not in repr(error)


# -- verified answers that still cannot be returned ------------------------------------------------


@pytest.mark.parametrize(
    ("body", "kind"),
    [(b"<html>502 Bad Gateway</html>", "text/html"), (b"\xff\xfe\xfa not utf-8", "application/octet-stream")],
    ids=["html", "binary"],
)
async def test_signed_200_that_is_not_json_is_malformed(forged, call, body: bytes, kind: str) -> None:
    def forge(raw: RawResponse, k: Keys) -> RawResponse:
        return with_headers(resign(raw, k.platform, body=body), Content_Type=kind)

    error = await rejected(forged(forge), call, MalformedResponseError)
    assert not isinstance(error, SignatureError)


async def test_signed_empty_204_returns_no_data(forged, call) -> None:
    engine = forged(lambda raw, k: resign(raw, k.platform, status=204, body=b""))
    response = await call(engine)
    assert (response.status, response.data) == (204, None)


async def test_unsigned_empty_204_is_rejected(forged, call) -> None:
    def forge(raw: RawResponse, k: Keys) -> RawResponse:
        bare = with_headers(raw, **dict.fromkeys(SIGNATURE_HEADERS))
        return attrs.evolve(bare, status=204, body=b"")

    error = await rejected(forged(forge), call)
    assert error.reason == "missing_header"


# -- non-2xx answers become ApiError, signed or not -----------------------------------------------

ERROR_BODY = {
    "code": "PARAM_ERROR",
    "message": "参数错误",
    "detail": {"field": "/appid", "value": "wx", "issue": "appid is invalid", "location": "body"},
}
REQUEST_ID = "08F78BB5AF0610C7B50A9DB801-0"


def error_answer(raw: RawResponse, k: Keys, status: int = 400, body: Optional[bytes] = None) -> RawResponse:
    body = json.dumps(ERROR_BODY, ensure_ascii=False).encode() if body is None else body
    return with_headers(resign(raw, k.platform, status=status, body=body), Request_ID=REQUEST_ID)


def assert_error_fields(error: ApiError, verified: bool) -> None:
    assert (error.status, error.code, error.message) == (400, "PARAM_ERROR", "参数错误")
    assert error.detail == ERROR_BODY["detail"]
    assert error.request_id == REQUEST_ID
    assert error.verified is verified
    assert REQUEST_ID in str(error)


async def test_signed_error_answer_is_verified_api_error(forged, call) -> None:
    error = await rejected(forged(error_answer), call, ApiError)
    assert_error_fields(error, verified=True)
    assert str(error).startswith("WeChat Pay answered 400 PARAM_ERROR")


@pytest.mark.parametrize(
    "spoil",
    [
        lambda raw: with_headers(raw, Wechatpay_Nonce=secrets.token_hex(16)),
        lambda raw: attrs.evolve(raw, body=raw.body.replace(b"appid is invalid", b"appid is INVALID")),
        lambda raw: with_headers(raw, **dict.fromkeys(SIGNATURE_HEADERS)),
        lambda raw: with_headers(raw, Wechatpay_Signature="WECHATPAY/SIGNTEST/!!"),
        lambda raw: with_headers(raw, Wechatpay_Timestamp="abc"),
        lambda raw: with_headers(raw, Wechatpay_Timestamp="17\u00b2"),
    ],
    ids=["swapped_nonce", "tampered_body", "unsigned", "probe", "letters_timestamp", "superscript_timestamp"],
)
async def test_error_answer_with_bad_signature_is_unverified_api_error(forged, call, spoil) -> None:
    error = await rejected(forged(lambda raw, k: spoil(error_answer(raw, k))), call, ApiError)
    assert (error.status, error.code, error.message) == (400, "PARAM_ERROR", "参数错误")
    assert error.request_id == REQUEST_ID
    assert error.detail["field"] == "/appid"
    assert error.verified is False
    # its text is the server's claim, and the message says so rather than presenting it as WeChat Pay's
    assert str(error).startswith("an unverified answer (not WeChat Pay's word) claims 400 PARAM_ERROR")


async def test_error_answer_that_is_not_json_keeps_status_and_request_id(forged, call) -> None:
    engine = forged(lambda raw, k: error_answer(raw, k, status=502, body=b"<html>Bad Gateway</html>"))
    error = await rejected(engine, call, ApiError)
    assert (error.status, error.code, error.request_id, error.verified) == (502, "HTTP_502", REQUEST_ID, True)
    assert error.message and error.detail is None


async def test_real_sandbox_refusal_is_a_verified_api_error(make_engine, call) -> None:
    engine = make_engine(mchid="1900000999")  # the sandbox only knows the identity's merchant
    with pytest.raises(ApiError) as caught:
        await call(engine)
    error, answer = caught.value, engine.emulator.last.response
    assert (error.status, error.code, error.verified) == (401, "SIGN_ERROR", True)
    assert error.message == json.loads(answer.body)["message"]
    assert error.request_id == answer.headers["Request-ID"] != ""


# -- user verifier plugins cannot weaken verification ----------------------------------------------


class DeferringVerifier:
    """Looks at every answer and defers to the next verifier."""

    def __init__(self) -> None:
        self.seen = 0

    @hookimpl
    def wxpay_verify_response(self, response: RawResponse, keyring: Any, now: int) -> None:
        self.seen += 1
        return None


class ConstantVerifier:
    """Answers every verification with a fixed value (``""`` or ``False`` must not count as verified)."""

    def __init__(self, result: Any) -> None:
        self.result = result

    @hookimpl
    def wxpay_verify_response(self, response: RawResponse, keyring: Any, now: int) -> Any:
        return self.result


class RejectingVerifier:
    """A stricter policy than the built-in: refuses every answer."""

    @hookimpl
    def wxpay_verify_response(self, response: RawResponse, keyring: Any, now: int) -> str:
        raise SignatureError("mismatch", "refused by the user's verifier")


async def test_deferring_user_verifier_leaves_the_builtin_in_charge(forged, call, identity) -> None:
    deferring = DeferringVerifier()
    response = await call(forged(lambda raw, k: raw, plugins=(deferring,)))
    assert response.verified_with == identity.platform_public_key_id
    assert deferring.seen == 1


async def test_deferring_user_verifier_does_not_let_a_tampered_answer_through(forged, call) -> None:
    deferring = DeferringVerifier()
    tamper: Forge = lambda raw, k: attrs.evolve(raw, body=flip_one_byte(raw.body))  # noqa: E731
    error = await rejected(forged(tamper, plugins=(deferring,)), call)
    assert error.reason == "mismatch" and deferring.seen == 1


async def test_rejecting_user_verifier_fails_a_valid_answer(forged, call) -> None:
    error = await rejected(forged(lambda raw, k: raw, plugins=(RejectingVerifier(),)), call)
    assert error.reason == "mismatch" and "user's verifier" in str(error)


@pytest.mark.parametrize("result", ["", False, 0], ids=["empty_string", "false", "zero"])
async def test_falsy_verifier_result_is_not_a_verification(forged, call, result: Any) -> None:
    error = await rejected(forged(lambda raw, k: raw, plugins=(ConstantVerifier(result),)), call)
    assert error.reason == "unverified"
