"""APIv2-only merchants: an engine from the merchant id and the APIv2 key alone (and the client certificate).

It makes APIv2 calls, in process and over real sockets; it refuses every APIv3 use, a call, a certificate
download, a callback, a payment-invocation signature, with a ``ConfigurationError`` naming what is missing,
before anything is signed or sent; and the environment, ``wechatpay call`` and ``wechatpay doctor`` take an
APIv2-only set of variables. No message carries the APIv2 key.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import traceback
from pathlib import Path
from typing import Any, Iterator

import pytest
from conftest import COMBINE_PAPAY, MICROPAY, REAL_NAME
from test_stubber_v2 import MICROPAY_ANSWER

from engine import ConfigurationError, CredentialError, Engine, RawResponse, hookimpl
from engine.cli import main
from engine.environment import CLIENT_KEY, ENVIRONMENT, missing
from engine.sandbox import Sandbox, SandboxIdentity
from engine.sandbox.server import ServerThread
from engine.testing import MockTransport, Stubber
from engine.tls import ClientCertificate
from engine.wire import Headers

REFUND = {
    "appid": "wxd678efh567hg6787",
    "out_trade_no": MICROPAY["out_trade_no"],
    "out_refund_no": "R-V2-ONLY-1",
    "total_fee": MICROPAY["total_fee"],
    "refund_fee": 1,
}
APIV3_SETTINGS = ("serial_no=", "private_key=", "signer=", "platform_public_key", "apiv3_key")


def _apiv2(identity: SandboxIdentity, **options: Any) -> dict[str, Any]:
    """An APIv2-only merchant's settings: the merchant id and the APIv2 key, nothing of APIv3."""
    return {"mchid": identity.mchid, "apiv2_key": identity.apiv2_key, "load_entry_points": False, **options}


@pytest.fixture
def files(identity: SandboxIdentity, tmp_path: Path) -> tuple[Path, Path]:
    """``apiclient_cert.pem`` and ``apiclient_key.pem``, as the merchant platform hands them out."""
    cert, key = tmp_path / "apiclient_cert.pem", tmp_path / "apiclient_key.pem"
    cert.write_bytes(identity.merchant_certificate_pem())
    key.write_bytes(identity.merchant_private_pem())
    return cert, key


@pytest.fixture
def recorded() -> MockTransport:
    """A transport that records what reaches it (and answers like nothing real would)."""
    return MockTransport(lambda request: RawResponse(500, Headers({}), b""))


@pytest.fixture
def v2_only(identity: SandboxIdentity, recorded: MockTransport) -> Iterator[Engine]:
    with Engine(**_apiv2(identity), transport=recorded) as engine:
        yield engine


def _refused(identity: SandboxIdentity, error: BaseException) -> str:
    """The message of a refusal, checked to name the APIv3 settings and never the APIv2 key."""
    message = str(error)
    assert isinstance(error, ConfigurationError), message
    assert "this engine is APIv2-only" in message
    assert all(setting in message for setting in APIV3_SETTINGS), message
    assert identity.apiv2_key.decode() not in message
    return message


# -- construction ------------------------------------------------------------------------------------


def test_the_merchant_id_and_the_apiv2_key_make_an_engine(identity: SandboxIdentity, files) -> None:
    cert, key = files
    engine = Engine(**_apiv2(identity, appid="wxd678efh567hg6787", client_certificate=(cert, key)))
    with engine:
        assert engine.credentials.apiv3 is False
        assert (engine.credentials.serial_no, engine.credentials.signer) == (None, None)
        assert engine.keyring.ids() == [] and not engine.keys.refreshes
        # the TLS key comes from the certificate setting itself: there is no private_key to take it from
        assert engine.pipeline.settings.client_certificate.serial == ClientCertificate.from_pem(cert, key).serial
        shown = repr(engine)
        assert shown.startswith(f"<Engine mchid={identity.mchid} APIv2 only base_url=")
        assert identity.apiv2_key.decode() not in shown + repr(engine.credentials)


def test_the_type_checkers_still_see_mchid_required() -> None:
    parameters = inspect.signature(Engine).parameters
    assert parameters["mchid"].default is inspect.Parameter.empty
    assert parameters["serial_no"].default is None


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({}, r"^mchid is required"),
        ({"apiv2_key": "k" * 32}, r"^mchid is required"),
        ({"mchid": " ", "apiv2_key": "k" * 32}, r"^mchid is required"),
        ({"mchid": "1900000109"}, r"^no credentials: give serial_no with private_key \(or signer\) .* apiv2_key"),
    ],
)
def test_a_missing_merchant_id_or_no_credentials_is_a_configuration_error(settings: dict, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Engine(**settings, load_entry_points=False)


def test_a_refusal_before_the_engine_is_built_leaves_no_key_in_its_frames(identity: SandboxIdentity) -> None:
    """The check for mchid runs in a wrapper around ``__init__``, whose frame an error tracker records too."""
    pem = identity.merchant_private_pem().decode()
    for settings in ({}, {"mchid": identity.mchid}):  # refused by the wrapper, then by __init__ (no serial_no)
        with pytest.raises(ConfigurationError) as caught:
            Engine(**settings, private_key=pem, apiv3_key=identity.apiv3_key, load_entry_points=False)
        stack = traceback.TracebackException.from_exception(caught.value, capture_locals=True).stack
        engine_frames = [frame for frame in stack if f"{os.sep}engine{os.sep}" in frame.filename]
        assert engine_frames, "the traceback should pass through the engine"
        text = "\n".join(str(frame.locals) for frame in engine_frames)
        assert pem.splitlines()[1] not in text and identity.apiv3_key.decode() not in text


def test_half_of_the_apiv3_credentials_is_refused(identity: SandboxIdentity) -> None:
    serial, key = identity.merchant_serial_no, identity.merchant_key
    with pytest.raises(CredentialError, match=r"^private_key: required"):
        Engine(**_apiv2(identity, serial_no=serial))
    for given in ({"private_key": key}, {"signer": _Signer()}):
        with pytest.raises(ConfigurationError, match=r"^serial_no is required with private_key or signer"):
            Engine(**_apiv2(identity, **given))


@pytest.mark.parametrize(
    ("given", "named"),
    [
        ("apiv3_key", "apiv3_key"),
        ("platform_public_key", "platform_public_key"),
        ("platform_certificates", "platform_certificates"),
    ],
)
def test_wechatpay_keys_without_the_merchants_apiv3_credentials_are_refused(
    identity: SandboxIdentity, given: str, named: str
) -> None:
    full = identity.engine_settings("both")
    options = {k: full[k] for k in full if k.startswith(given)}
    with pytest.raises(ConfigurationError) as caught:
        Engine(**_apiv2(identity, **options))
    message = str(caught.value)
    assert message.startswith(f"APIv3 settings given without serial_no and private_key (or signer): {named};")
    assert identity.apiv3_key.decode() not in message and identity.apiv2_key.decode() not in message


def test_apiv3_credentials_still_need_a_wechatpay_key(identity: SandboxIdentity) -> None:
    settings = {"serial_no": identity.merchant_serial_no, "private_key": identity.merchant_key}
    with pytest.raises(ConfigurationError, match="no WeChat Pay key to verify answers with"):
        Engine(**_apiv2(identity, **settings))


def test_a_bad_apiv2_key_is_refused_without_echoing_it(identity: SandboxIdentity) -> None:
    with pytest.raises(CredentialError, match="must be 32 printable ASCII characters, got 11 bytes") as caught:
        Engine(mchid=identity.mchid, apiv2_key="not-the-key")
    assert "not-the-key" not in str(caught.value)


class _Signer:
    def sign(self, data: bytes) -> bytes:
        raise AssertionError("an APIv2-only engine never signs with a merchant RSA key")


# -- APIv2 calls ---------------------------------------------------------------------------------------


def test_apiv2_calls_through_the_in_process_sandbox(identity: SandboxIdentity) -> None:
    with Engine.sandbox(identity=identity, mode="apiv2", appid=MICROPAY["appid"], load_entry_points=False) as engine:
        assert engine.credentials.apiv3 is False
        paid = engine.v2.pay.micropay.post(xml={k: v for k, v in MICROPAY.items() if k != "appid"})
        assert paid.verified_with == "apiv2:HMAC-SHA256" and paid.data["result_code"] == "SUCCESS"
        found = engine.call("v2.orderquery", {"out_trade_no": MICROPAY["out_trade_no"]})
        assert found.verified_with == "apiv2:HMAC-SHA256" and found.data["trade_state"] == "SUCCESS"
        refund = engine.call("v2.refund", REFUND)  # client_certificate: true; the sandbox's is the identity's
        assert refund.data["out_refund_no"] == REFUND["out_refund_no"]
        sent = [exchange.request for exchange in engine.emulator.exchanges]
        assert [exchange.endpoint_id for exchange in engine.emulator.exchanges] == [
            "v2.pay.micropay.post",
            "v2.pay.orderquery.post",
            "v2.secapi.pay.refund.post",
        ]
        assert all("Authorization" not in request.headers for request in sent)
        assert {request.fields["appid"] for request in sent} == {MICROPAY["appid"]}  # filled from the setting


def test_an_operation_needing_the_certificate_refuses_without_it(identity: SandboxIdentity) -> None:
    with Engine.sandbox(identity=identity, mode="apiv2", client_certificate=None, load_entry_points=False) as engine:
        with pytest.raises(ConfigurationError, match="give Engine\\(client_certificate="):
            engine.call("v2.refund", REFUND)
        assert engine.emulator.exchanges == []


@pytest.fixture
def tls_server(identity: SandboxIdentity, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServerThread]:
    """The served sandbox over TLS, trusted through SSL_CERT_FILE as any Python program would trust it."""
    ca = tmp_path / "sandbox-ca.pem"
    ca.write_bytes(identity.ca_pem())
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    with ServerThread(Sandbox(identity), tls=True) as server:
        yield server


def test_over_tls_the_certificate_settings_own_key_is_presented(
    identity: SandboxIdentity, tls_server: ServerThread, files
) -> None:
    settings = _apiv2(identity, client_certificate=files, base_url=tls_server.base_url)
    with Engine(**settings) as engine:
        assert engine.call("v2.micropay", MICROPAY).verified_with == "apiv2:HMAC-SHA256"
        assert engine.call("v2.refund", REFUND).verified_with == "apiv2:HMAC-SHA256"
    sent = [exchange.endpoint_id for exchange in tls_server.sandbox.exchanges]
    assert sent == ["v2.pay.micropay.post", "v2.secapi.pay.refund.post"]


# -- APIv3 refused, nothing signed or sent -------------------------------------------------------------


def test_an_apiv3_call_is_refused_before_anything_reaches_the_transport(
    identity: SandboxIdentity, v2_only: Engine, recorded: MockTransport
) -> None:
    for endpoint, payload in (("combine_papay.mini_program", COMBINE_PAPAY), ("v3.certificates.get", None)):
        with pytest.raises(ConfigurationError) as caught:
            v2_only.call(endpoint, payload)
        message = _refused(identity, caught.value)
        assert message.startswith(f"{v2_only.endpoint(endpoint).id} is an APIv3 operation: it needs")
    with pytest.raises(ConfigurationError) as caught:
        asyncio.run(v2_only.acall("combine_papay.mini_program", COMBINE_PAPAY))
    _refused(identity, caught.value)
    with pytest.raises(ConfigurationError) as caught:
        v2_only.v3.pay.transactions.native.post(json={})
    _refused(identity, caught.value)
    assert recorded.requests == []


def test_the_refusal_comes_before_encryption_and_before_any_signer(identity: SandboxIdentity) -> None:
    """A replacement signer would sign anything, and an encrypted field needs a WeChat Pay key: the
    pipeline refuses first, so neither is reached and the message is the same."""

    class Signing:
        def __init__(self) -> None:
            self.asked: list[str] = []

        @hookimpl
        def wxpay_sign_request(self, request, signing, descriptor) -> str:
            self.asked.append(descriptor.id)
            return "WECHATPAY2-SHA256-RSA2048 forged"

    recorded, signing = MockTransport(lambda request: RawResponse(200, Headers({}), b"{}")), Signing()
    with Engine(**_apiv2(identity), transport=recorded, plugins=[signing]) as engine:
        with pytest.raises(ConfigurationError) as caught:
            engine.call("individual_contracts.real_name.mini_program", REAL_NAME)  # cred_id is encrypted
        _refused(identity, caught.value)
    assert signing.asked == [] and recorded.requests == []


def test_certificate_downloads_are_refused(identity: SandboxIdentity, v2_only: Engine, recorded) -> None:
    with pytest.raises(ConfigurationError) as caught:
        v2_only.download_certificates()
    assert _refused(identity, caught.value).startswith("downloading platform certificates needs")

    async def refresh() -> None:
        v2_only.start_certificate_refresh(60)

    with pytest.raises(ConfigurationError) as caught:
        asyncio.run(refresh())
    _refused(identity, caught.value)
    assert recorded.requests == []


def test_apiv3_callbacks_are_refused_and_point_to_the_apiv2_ones(identity: SandboxIdentity, v2_only: Engine) -> None:
    headers = {"Wechatpay-Serial": "PUB_KEY_ID_0", "Wechatpay-Signature": "x", "Wechatpay-Timestamp": "1"}
    attempts = [
        lambda: v2_only.parse_notification(headers, b"{}"),
        lambda: v2_only.handle_notification_sync(headers, b"{}", lambda n: None),
        lambda: asyncio.run(v2_only.handle_notification(headers, b"{}", lambda n: None)),
        lambda: v2_only.notification_handler(lambda n: None),
    ]
    for attempt in attempts:
        with pytest.raises(ConfigurationError) as caught:
            attempt()
        message = _refused(identity, caught.value)
        assert message.startswith("receiving APIv3 callbacks needs") and "parse_v2_notification" in message


def test_apiv2_callbacks_are_received(identity: SandboxIdentity) -> None:
    with Engine.sandbox(identity=identity, mode="apiv2", load_entry_points=False) as engine:
        callback = engine.emulator.v2.refund_notification("R-1", "T-1", refund_fee=1, total_fee=1)
        notification = engine.parse_v2_notification(callback.body)
        assert (notification.kind, notification.data["out_refund_no"]) == ("refund", "R-1")


def test_the_stubber_serves_apiv2_calls_and_queues_no_apiv3_answer(identity: SandboxIdentity) -> None:
    """Code of an APIv2-only merchant is tested offline like any other; an APIv3 answer could never be
    taken (the call is refused before signing), so queuing one is refused as plainly."""
    answer = {**MICROPAY_ANSWER, "appid": MICROPAY["appid"], "mch_id": identity.mchid, "transaction_id": "4200000001"}
    with Engine(**_apiv2(identity)) as engine, Stubber(engine) as stub:
        stub.add_response("v2.micropay", answer, expected_payload=MICROPAY)
        paid = engine.call("v2.micropay", MICROPAY)
        assert paid.verified_with == "apiv2:HMAC-SHA256" and paid.data["transaction_id"] == "4200000001"
        stub.assert_no_pending_responses()
        papay = {"pre_entrustweb_id": "p", "mchid": identity.mchid, "plan_id": 1, "out_contract_code": "c"}
        queuing = [
            lambda: stub.add_response("combine_papay.mini_program", papay),
            lambda: stub.add_error("combine_papay.mini_program", status=400, code="PARAM_ERROR", message="x"),
        ]
        for queue in queuing:
            with pytest.raises(ConfigurationError) as caught:
                queue()
            assert _refused(identity, caught.value).startswith("queuing an answer for v3.ecommerce.combine_papay")
        with pytest.raises(ConfigurationError) as caught:
            engine.call("combine_papay.mini_program", COMBINE_PAPAY)
        _refused(identity, caught.value)
        stub.assert_no_pending_responses()


def test_payment_invocation_signatures_are_refused(identity: SandboxIdentity, v2_only: Engine) -> None:
    for sign in (v2_only.jsapi_payment, v2_only.app_payment):
        with pytest.raises(ConfigurationError) as caught:
            sign("wxd678efh567hg6787", "wx201410272009395522657a690389285100")
        _refused(identity, caught.value)


# -- the environment, wechatpay call and wechatpay doctor -------------------------------------------------


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for variable in (*ENVIRONMENT.values(), CLIENT_KEY, "WECHATPAY_MERCHANT_CERTIFICATE"):
        monkeypatch.delenv(variable, raising=False)
    return monkeypatch


def test_from_env_builds_an_apiv2_only_engine(identity: SandboxIdentity, files) -> None:
    cert, key = files
    environ = {"WECHATPAY_MCHID": identity.mchid, "WECHATPAY_APIV2_KEY": identity.apiv2_key.decode()}
    with Engine.from_env(environ=environ, load_entry_points=False) as engine:
        assert engine.credentials.apiv2_key.reveal() == identity.apiv2_key and not engine.credentials.apiv3
    environ = {**environ, "WECHATPAY_CLIENT_CERTIFICATE": str(cert), CLIENT_KEY: str(key)}
    with Engine.from_env(environ=environ, load_entry_points=False) as engine:
        assert engine.pipeline.settings.client_certificate.serial == ClientCertificate.from_pem(cert, key).serial


def test_from_env_names_what_is_missing(identity: SandboxIdentity, files) -> None:
    cert, _ = files
    environ = {"WECHATPAY_MCHID": identity.mchid, "WECHATPAY_APIV2_KEY": identity.apiv2_key.decode()}
    with pytest.raises(ConfigurationError) as caught:
        Engine.from_env(environ={**environ, "WECHATPAY_CLIENT_CERTIFICATE": str(cert)})
    assert str(caught.value) == f"WECHATPAY_CLIENT_CERTIFICATE needs its key: set {CLIENT_KEY} (apiclient_key.pem)"
    with pytest.raises(ConfigurationError) as caught:
        Engine.from_env(environ={"WECHATPAY_MCHID": identity.mchid})
    assert str(caught.value) == (
        "missing settings: set WECHATPAY_SERIAL_NO, WECHATPAY_PRIVATE_KEY in the environment "
        "(or WECHATPAY_APIV2_KEY instead, for an APIv2-only engine)"
    )
    with pytest.raises(ConfigurationError, match=r"^missing settings: set WECHATPAY_MCHID in the environment$"):
        Engine.from_env(environ={"WECHATPAY_APIV2_KEY": identity.apiv2_key.decode()})
    assert missing({"mchid": "1", "apiv2_key": "k"}) == []
    assert missing({"mchid": "1", "apiv2_key": "k", "serial_no": "S"}) == ["WECHATPAY_PRIVATE_KEY"]  # half of APIv3


def _environment(identity: SandboxIdentity, monkeypatch: pytest.MonkeyPatch, base_url: str, **extra: str) -> None:
    monkeypatch.setenv("WECHATPAY_MCHID", identity.mchid)
    monkeypatch.setenv("WECHATPAY_APIV2_KEY", identity.apiv2_key.decode())
    monkeypatch.setenv("WECHATPAY_BASE_URL", base_url)
    for variable, value in extra.items():
        monkeypatch.setenv(variable, value)


def test_wechatpay_call_with_apiv2_only_variables(
    identity: SandboxIdentity, tls_server: ServerThread, files, clean_environment: pytest.MonkeyPatch, capsys
) -> None:
    cert, key = files
    variables = {"WECHATPAY_CLIENT_CERTIFICATE": str(cert), CLIENT_KEY: str(key)}
    _environment(identity, clean_environment, tls_server.base_url, **variables)
    assert main(["call", "v2.micropay", "--data", json.dumps(MICROPAY)]) == 0
    assert main(["call", "v2.refund", "--data", json.dumps(REFUND)]) == 0  # over TLS, with the certificate
    out, err = capsys.readouterr()
    assert err == "" and out.count('"verified_with": "apiv2:HMAC-SHA256"') == 2
    assert main(["call", "combine_papay.mini_program", "--data", json.dumps(COMBINE_PAPAY)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("error: v3.ecommerce.combine_papay") and "this engine is APIv2-only" in err
    assert identity.apiv2_key.decode() not in err
    assert len(tls_server.sandbox.exchanges) == 2  # the APIv3 call never left


def test_wechatpay_doctor_with_apiv2_only_variables(
    identity: SandboxIdentity, clean_environment: pytest.MonkeyPatch, capsys
) -> None:
    with ServerThread(Sandbox(identity)) as server:
        _environment(identity, clean_environment, server.base_url)
        status = main(["doctor", "--live"])
        lines = capsys.readouterr().out.splitlines()
        assert status == 0, lines
        assert f"ok    mchid: {identity.mchid} (WECHATPAY_MCHID)" in lines
        assert "ok    APIv2 key: 32 characters (WECHATPAY_APIV2_KEY)" in lines
        assert any(line.startswith("skip  APIv3: not configured (APIv2-only") for line in lines)
        assert "skip  signed round trip: APIv2-only: POST /v3/security/echo is an APIv3 call" in lines
        assert not any(line.startswith("FAIL") for line in lines)
        clean_environment.setenv("WECHATPAY_APIV2_KEY", "too-short-a-key")
        status = main(["doctor"])
        text = capsys.readouterr().out
    assert status == 1
    assert "FAIL  APIv2 key: WECHATPAY_APIV2_KEY is 15 bytes; it must be 32 printable ASCII characters" in text
    assert identity.apiv2_key.decode() not in text and "too-short-a-key" not in text
