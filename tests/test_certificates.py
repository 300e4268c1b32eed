"""Certificate mode: download, bootstrap, rotation, refresh on unknown serials, stores; and invocation signatures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import COMBINE_PAPAY, REAL_NAME, until

from engine import ApiError, ConfigurationError, Engine, MalformedResponseError, SignatureError, UsageError
from engine.certificates import decrypt_certificates
from engine.crypto import rsa_verify
from engine.keys import load_certificate, load_private_key
from engine.sandbox.faults import Fault


def test_certificate_download_vector(vectors) -> None:
    vector = vectors["go-certificates-download-decrypt"]
    (certificate,) = decrypt_certificates(vector["response_body"].encode(), vector["apiv3_key"].encode())
    entry = json.loads(vector["response_body"])["data"][0]
    assert f"{certificate.serial_number:X}" == entry["serial_no"].lstrip("0")
    with pytest.raises(MalformedResponseError):
        decrypt_certificates(vector["response_body"].encode(), b"wrongAPIv3Key123")


def _certificate_only(make_engine, **options) -> Engine:
    """An engine that knows nothing but its APIv3 key: it must download the certificates itself."""
    return make_engine(mode="certificate", platform_certificates=[], **options)


def test_certificate_mode_bootstraps_by_downloading(make_engine) -> None:
    engine = _certificate_only(make_engine)
    assert not engine.keyring and engine.keys.refreshes
    response = engine.call("individual_contracts.real_name.mini_program", REAL_NAME)
    serial = engine.emulator.identity.platform_certificate_serial
    assert engine.keyring.ids() == [serial] and response.verified_with == serial
    first, second = engine.emulator.exchanges
    assert first.request.target == "/v3/certificates?algorithm_type=RSA"
    assert second.request.headers["Wechatpay-Serial"] == serial and second.payload["cred_id"] == REAL_NAME["cred_id"]


def test_rotation_is_picked_up_without_a_restart(make_engine) -> None:
    engine = _certificate_only(make_engine)
    engine.call("combine_papay.mini_program", COMBINE_PAPAY)
    new_serial = engine.emulator.rotate_certificate()
    assert new_serial in engine.download_certificates()
    response = engine.call("individual_contracts.real_name.mini_program", REAL_NAME)
    assert response.verified_with == new_serial  # the newest certificate is now the one named and used
    assert engine.emulator.last.payload["cred_id"] == REAL_NAME["cred_id"]


def test_unknown_serial_triggers_one_refresh_and_the_same_answer_is_verified(make_engine) -> None:
    engine = _certificate_only(make_engine)
    engine.call("combine_papay.mini_program", COMBINE_PAPAY)
    engine.keys.min_interval = 0
    new_serial = engine.emulator.rotate_certificate()
    engine.emulator.answer_key = new_serial  # WeChat Pay starts answering with the new certificate
    response = engine.call("combine_papay.mini_program", COMBINE_PAPAY)
    assert response.verified_with == new_serial
    targets = [e.request.target.split("?")[0] for e in engine.emulator.exchanges]
    assert targets.count("/v3/ecommerce/combine-papay/contracts/pre-entrust-sign/mini-program") == 2  # not re-sent
    assert targets.count("/v3/certificates") == 2


def test_a_trusted_key_is_never_replaced_by_a_self_signed_download(make_engine) -> None:
    engine = _certificate_only(make_engine)
    engine.call("combine_papay.mini_program", COMBINE_PAPAY)
    trusted = engine.keyring.ids()
    engine.keys.min_interval = 0
    # The old certificate vanishes at once: the new list is signed only by a key the engine never
    # trusted. Accepting it would let anyone holding the APIv3 key slip a certificate in.
    engine.emulator.rotate_certificate(retire_previous=True)
    with pytest.raises(SignatureError) as caught:
        engine.call("combine_papay.mini_program", COMBINE_PAPAY)
    assert caught.value.reason == "unknown_serial" and engine.keyring.ids() == trusted


def test_a_failed_refresh_reports_the_unverifiable_answer(make_engine) -> None:
    engine = _certificate_only(make_engine)
    engine.call("combine_papay.mini_program", COMBINE_PAPAY)
    engine.keys.min_interval = 0
    engine.emulator.answer_key = engine.emulator.rotate_certificate()
    engine.emulator.faults.add(Fault("drop"), endpoint="v3.certificates.get", times=3)  # all attempts
    with pytest.raises(SignatureError) as caught:  # not TransportError: the POST did reach WeChat Pay
        engine.call("combine_papay.mini_program", COMBINE_PAPAY)
    assert caught.value.reason == "unknown_serial" and isinstance(caught.value.__cause__, Exception)


def test_refresh_on_unknown_serial_is_rate_limited(make_engine) -> None:
    engine = _certificate_only(make_engine)
    engine.call("combine_papay.mini_program", COMBINE_PAPAY)  # bootstrap download just happened
    engine.emulator.faults.add(Fault("unknown_serial"))
    with pytest.raises(SignatureError) as caught:
        engine.call("combine_papay.mini_program", COMBINE_PAPAY)
    assert caught.value.reason == "unknown_serial"
    assert [e.request.target for e in engine.emulator.exchanges].count("/v3/certificates?algorithm_type=RSA") == 1


def test_forged_certificate_download_is_refused(make_engine) -> None:
    engine = _certificate_only(make_engine)
    engine.emulator.faults.add(Fault("bad_signature"))
    with pytest.raises(SignatureError):
        engine.download_certificates()
    assert not engine.keyring


def test_merchant_without_certificates_is_pointed_to_public_key_mode(make_engine) -> None:
    engine = _certificate_only(make_engine)
    engine.emulator.faults.add(Fault.error(404, "RESOURCE_NOT_EXISTS", "无可用的平台证书"))
    with pytest.raises(ConfigurationError, match="use public-key mode; give platform_public_key"):
        engine.call("combine_papay.mini_program", COMBINE_PAPAY)
    engine.emulator.faults.add(Fault.error(500), times=3)  # a GET is retried: every attempt fails
    with pytest.raises(ApiError, match="SYSTEM_ERROR"):
        engine.download_certificates()


def test_directory_store_survives_a_restart(make_engine, tmp_path: Path) -> None:
    engine = _certificate_only(make_engine, certificates_dir=tmp_path)
    engine.call("combine_papay.mini_program", COMBINE_PAPAY)
    serial = engine.emulator.identity.platform_certificate_serial
    assert (tmp_path / f"{serial}.pem").exists()
    restarted = _certificate_only(make_engine, certificates_dir=tmp_path)
    assert restarted.keyring.ids() == [serial]  # loaded from disk: no download needed
    restarted.call("combine_papay.mini_program", COMBINE_PAPAY)
    assert [e.request.target for e in restarted.emulator.exchanges if "certificates" in e.request.target] == []


def test_expired_certificates_are_dropped(make_engine, vectors, tmp_path: Path) -> None:
    expired = vectors["java-wechatpay-platform-keypair"]["certificate_pem"]  # valid until 2025-05-09
    (tmp_path / "old.pem").write_text(expired)
    engine = _certificate_only(make_engine, certificates_dir=tmp_path)
    assert not engine.keyring
    assert load_certificate(expired).not_valid_after_utc.year == 2025


async def test_background_refresh_task(make_engine) -> None:
    engine = _certificate_only(make_engine)
    await engine.acall("combine_papay.mini_program", COMBINE_PAPAY)
    new_serial = engine.emulator.rotate_certificate()
    task = engine.start_certificate_refresh(interval=0.01)
    await until(lambda: new_serial in engine.keyring.ids())
    task.cancel()
    assert new_serial in engine.keyring.ids()
    await engine.aclose()


def _verifies(engine: Engine, message: str, signature: str) -> bool:
    public = load_private_key(engine.emulator.identity.merchant_private_pem()).public_key()
    return rsa_verify(public, message.encode(), signature)


def test_jsapi_and_mini_program_payment_parameters(make_engine) -> None:
    engine = make_engine(clock=lambda: 1700000000, nonce_factory=lambda: "5K8264ILTKCH16CQ2502SI8ZNMTM67VS")
    params = engine.jsapi_payment("wxd678efh567hg6787", "wx201410272009395522657a690389285100")
    assert {k: v for k, v in params.items() if k != "paySign"} == {
        "appId": "wxd678efh567hg6787",
        "timeStamp": "1700000000",
        "nonceStr": "5K8264ILTKCH16CQ2502SI8ZNMTM67VS",
        "package": "prepay_id=wx201410272009395522657a690389285100",
        "signType": "RSA",
    }
    lines = [
        "wxd678efh567hg6787",
        "1700000000",
        "5K8264ILTKCH16CQ2502SI8ZNMTM67VS",
        "prepay_id=wx201410272009395522657a690389285100",
    ]
    message = "".join(line + "\n" for line in lines)
    assert _verifies(engine, message, params["paySign"])


def test_app_payment_parameters(make_engine) -> None:
    engine = make_engine(clock=lambda: 1700000000, nonce_factory=lambda: "N0NCE")
    params = engine.app_payment("wxapp", "wx2014")
    assert (params["partnerid"], params["package"], params["prepayid"]) == (
        engine.credentials.mchid,
        "Sign=WXPay",
        "wx2014",
    )
    assert _verifies(engine, "wxapp\n1700000000\nN0NCE\nwx2014\n", params["sign"])


UNFIT = "must be a non-empty string of printable ASCII without whitespace, got"
PREFIXED = "prepay_id must be the id alone, without 'prepay_id=': the engine adds that prefix itself"


@pytest.mark.parametrize(
    ("appid", "prepay_id", "message"),
    [
        (None, "wx2014", f"appid {UNFIT} NoneType"),
        ("", "wx2014", f"appid {UNFIT} an empty string"),
        ("wxapp", "wx2014\n1700000000", f"prepay_id {UNFIT} a line break in it"),
        ("wxapp\r", "wx2014", f"appid {UNFIT} a line break in it"),
        ("wxapp", "prepay_id=wx2014", PREFIXED),  # the package would read prepay_id=prepay_id=wx2014
        ("wxapp ", "wx2014", f"appid {UNFIT} whitespace in it"),
        (" wxapp", "wx2014", f"appid {UNFIT} whitespace in it"),
        ("wxapp", "wx 2014", f"prepay_id {UNFIT} whitespace in it"),
        ("wxapp", "wx2014\t", f"prepay_id {UNFIT} whitespace in it"),
        ("wxapp", "wx2014\u3000", f"prepay_id {UNFIT} whitespace in it"),
        ("wx\x00app", "wx2014", f"appid {UNFIT} a control character in it"),
        ("wxapp", "wx2014\x7f", f"prepay_id {UNFIT} a control character in it"),
        ("wxapp", "wx２０１４", f"prepay_id {UNFIT} a character outside printable ASCII"),
    ],
)
def test_payment_parameters_refuse_what_cannot_be_one_signed_line(
    make_engine, monkeypatch, appid, prepay_id, message
) -> None:
    """The signed message is one value a line: a line break would sign other fields than those handed out,
    and a space, a tab or a NUL would be signed into a value no client or WeChat Pay id holds."""
    from engine.keys import MerchantCredentials

    engine = make_engine()
    signed: list[bytes] = []
    monkeypatch.setattr(MerchantCredentials, "sign", lambda self, data: signed.append(data) or "x")
    for build in (engine.jsapi_payment, engine.app_payment):
        with pytest.raises(UsageError) as caught:
            build(appid, prepay_id)
        assert str(caught.value) == message
    assert signed == []


def test_payment_parameters_take_any_printable_ascii_id_but_not_a_prefixed_one(make_engine) -> None:
    """Whitespace, control characters and the package's own prefix are refused: not the appid's shape,
    nor punctuation, nor an '=' further in."""
    engine = make_engine(clock=lambda: 1700000000, nonce_factory=lambda: "N0NCE")
    params = engine.jsapi_payment("WX_Test-App.1", "up_wx2014=a~b!")
    assert (params["appId"], params["package"]) == ("WX_Test-App.1", "prepay_id=up_wx2014=a~b!")
    assert _verifies(engine, "WX_Test-App.1\n1700000000\nN0NCE\nprepay_id=up_wx2014=a~b!\n", params["paySign"])
    assert engine.app_payment("WX_Test-App.1", "up_wx2014=a~b!")["prepayid"] == "up_wx2014=a~b!"
    with pytest.raises(UsageError, match="without 'prepay_id='"):
        engine.jsapi_payment("WX_Test-App.1", params["package"])  # the package handed back as the id


def test_callbacks_signed_with_a_rotated_certificate_refresh_once(make_engine) -> None:
    engine = _certificate_only(make_engine)
    engine.call("combine_papay.mini_program", COMBINE_PAPAY)
    engine.keys.min_interval = 0
    engine.emulator.answer_key = new_serial = engine.emulator.rotate_certificate()
    callback = engine.emulator.payment_succeeded("T-ROT", 9)
    notification = engine.parse_notification(dict(callback.headers.items()), callback.body)
    assert notification.verified_with == new_serial and notification.resource["out_trade_no"] == "T-ROT"


async def test_async_callback_handler_refreshes_too(make_engine) -> None:
    engine = _certificate_only(make_engine)
    await engine.acall("combine_papay.mini_program", COMBINE_PAPAY)
    engine.keys.min_interval = 0
    engine.emulator.answer_key = engine.emulator.rotate_certificate()
    callback = engine.emulator.payment_succeeded("T-ROT2", 9)
    seen = []
    reply = await engine.handle_notification(dict(callback.headers.items()), callback.body, seen.append)
    assert reply.status == 204 and seen[0].resource["out_trade_no"] == "T-ROT2"
    await engine.aclose()


def test_the_preferred_key_is_the_last_public_key_in_keyring_order_as_keys_come(identity) -> None:
    """preferred() keeps its answer from one add to the next: the last public key in the keyring's
    order (re-adding a key keeps its place), the newest valid certificate when it holds none."""
    from engine.keys import PlatformKey, PlatformKeyring

    public = identity.platform_key.public_key()
    first, second = PlatformKey("PUB_KEY_ID_01", public), PlatformKey("PUB_KEY_ID_02", public)
    keyring = PlatformKeyring()
    assert keyring.preferred() is None
    keyring.add(first)
    assert keyring.preferred() is first
    keyring.add(second)
    assert keyring.preferred() is second
    again = PlatformKey("PUB_KEY_ID_01", public)
    keyring.add(again)  # replaces first in its place: second is still last
    assert keyring.preferred() is second and keyring.find("PUB_KEY_ID_01") is again
