"""APIv2 over real sockets: the served sandbox over HTTP and over TLS with the merchant's client certificate,
the client-certificate setting in all its forms, and APIv2 callbacks delivered and answered."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Iterator

import attrs
import pytest
from aiohttp import web
from conftest import COMBINE_PAPAY, MICROPAY, until
from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, pkcs12

from engine import (
    ClientCertificate,
    CredentialError,
    Engine,
    MalformedNotificationError,
    NotificationDecryptionError,
    NotificationSignatureError,
    ReturnCodeError,
    TransportError,
    V2Notification,
)
from engine.keys import private_pem
from engine.sandbox import Sandbox, SandboxIdentity
from engine.sandbox.server import ServerThread
from engine.v2 import signing, xmlcodec
from engine.v2.notifications import SUCCESS_REPLY

REFUND = {
    "appid": "wxd678efh567hg6787",
    "out_trade_no": "T-1001",
    "out_refund_no": "R-1001",
    "total_fee": 1,
    "refund_fee": 1,
}


@pytest.fixture
def trusted_ca(identity: SandboxIdentity, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The default trust store pointed at the sandbox CA, as SSL_CERT_FILE does for any Python program."""
    path = tmp_path / "sandbox-ca.pem"
    path.write_bytes(identity.ca_pem())
    monkeypatch.setenv("SSL_CERT_FILE", str(path))
    return path


@pytest.fixture
def tls_server(identity: SandboxIdentity, trusted_ca: Path) -> Iterator[ServerThread]:
    with ServerThread(Sandbox(identity), tls=True) as server:
        yield server


def _engine(identity: SandboxIdentity, base_url: str, **options) -> Engine:
    return Engine(**{**identity.engine_settings(), **options}, base_url=base_url, load_entry_points=False)


def test_over_http(identity: SandboxIdentity) -> None:
    with ServerThread(Sandbox(identity)) as server, _engine(identity, server.base_url) as engine:
        assert engine.call("v2.micropay", MICROPAY).verified_with == "apiv2:HMAC-SHA256"
        assert engine.call("v2.refund", REFUND).data["out_refund_no"] == "R-1001"  # no TLS, nothing to present


def test_over_tls_with_the_client_certificate(identity: SandboxIdentity, tls_server: ServerThread) -> None:
    assert tls_server.base_url.startswith("https://127.0.0.1:")
    with _engine(identity, tls_server.base_url) as engine:
        assert engine.call("v2.refund", REFUND).verified_with == "apiv2:HMAC-SHA256"
        assert engine.call("v2.micropay", MICROPAY).verified_with == "apiv2:HMAC-SHA256"
        assert engine.call("combine_papay.mini_program", COMBINE_PAPAY).status == 200  # APIv3 on the same server
    assert tls_server.sandbox.exchanges[0].endpoint_id == "v2.secapi.pay.refund.post"


def test_over_tls_the_sandbox_refuses_a_request_without_the_certificate(
    identity: SandboxIdentity, tls_server: ServerThread
) -> None:
    with _engine(identity, tls_server.base_url) as engine:
        careless = attrs.evolve(engine.endpoint("v2.refund"), client_certificate=False)
        engine.register(careless)  # this engine now sends the refund without presenting its certificate
        with pytest.raises(ReturnCodeError, match="请使用商户API证书"):
            engine.call("v2.secapi.pay.refund.post", REFUND)


def test_over_tls_another_merchants_certificate_is_refused(identity: SandboxIdentity, tls_server: ServerThread) -> None:
    stranger = SandboxIdentity.generate(mchid="1900000110")
    foreign = ClientCertificate.from_pem(stranger.merchant_certificate_pem(), stranger.merchant_key)
    with _engine(identity, tls_server.base_url, client_certificate=foreign) as engine, pytest.raises(TransportError):
        engine.call("v2.refund", REFUND)  # issued by another CA: the handshake itself fails


def test_without_trusting_the_sandbox_ca_tls_fails(identity: SandboxIdentity, tmp_path: Path, monkeypatch) -> None:
    empty = tmp_path / "empty.pem"
    empty.write_text("")
    monkeypatch.setenv("SSL_CERT_FILE", str(empty))
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path))
    with (
        ServerThread(Sandbox(identity), tls=True) as server,
        _engine(identity, server.base_url) as engine,
        pytest.raises(TransportError),
    ):
        engine.call("v2.micropay", MICROPAY)


def test_a_pkcs12_client_certificate(identity: SandboxIdentity, tls_server: ServerThread, tmp_path: Path) -> None:
    cert = identity.merchant_certificate
    p12 = tmp_path / "apiclient_cert.p12"
    p12.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"x", identity.merchant_key, cert, None, BestAvailableEncryption(b"1900000109")
        )
    )
    setting = {"pkcs12": p12, "password": identity.mchid}  # WeChat Pay sets the .p12 password to the merchant id
    with _engine(identity, tls_server.base_url, client_certificate=setting) as engine:
        assert engine.call("v2.refund", REFUND).verified_with
    with pytest.raises(CredentialError, match="not a PKCS#12 file, or the password is wrong"):
        ClientCertificate.from_pkcs12(p12, "wrong")


def test_client_certificate_forms_and_refusals(identity: SandboxIdentity, tmp_path: Path) -> None:
    cert_path, key_path = tmp_path / "apiclient_cert.pem", tmp_path / "apiclient_key.pem"
    cert_path.write_bytes(identity.merchant_certificate_pem())
    key_path.write_bytes(private_pem(identity.merchant_key))
    for form in ((cert_path, key_path), (str(cert_path), str(key_path)), {"cert": cert_path, "key": key_path}):
        engine = _engine(identity, "sandbox://wechatpay", client_certificate=form)
        assert (
            engine.pipeline.settings.client_certificate.serial == ClientCertificate.from_pem(cert_path, key_path).serial
        )
        assert "PRIVATE" not in repr(engine.pipeline.settings.client_certificate)
    with pytest.raises(CredentialError, match="the private key does not belong to the certificate"):
        ClientCertificate.from_pem(cert_path, identity.platform_key)
    with pytest.raises(CredentialError, match="give a \\(cert, key\\) pair"):
        _engine(identity, "sandbox://wechatpay", client_certificate="apiclient_cert.pem")
    with pytest.raises(CredentialError, match="client_certificate certificate: not PEM and not a readable file"):
        _engine(identity, "sandbox://wechatpay", client_certificate=(tmp_path / "missing.pem", key_path))


def test_the_merchant_key_given_twice_is_parsed_once(
    identity: SandboxIdentity, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """apiclient_key.pem signs APIv3 requests and presents the TLS certificate: one parse serves both."""
    import engine.keys

    cert_path, key_path = tmp_path / "apiclient_cert.pem", tmp_path / "apiclient_key.pem"
    cert_path.write_bytes(identity.merchant_certificate_pem())
    key_path.write_bytes(private_pem(identity.merchant_key))
    serial = ClientCertificate.from_pem(cert_path, key_path).serial
    parsed: list[int] = []
    real_load = engine.keys.serialization.load_pem_private_key

    def counting_load(data, password, **options):
        parsed.append(len(data))
        return real_load(data, password, **options)

    monkeypatch.setattr(engine.keys.serialization, "load_pem_private_key", counting_load)
    forms = {"same path": (key_path, key_path), "same text": (key_path.read_text(), key_path.read_text())}
    for name, (merchant, tls_key) in forms.items():
        parsed.clear()
        built = _engine(identity, "sandbox://wechatpay", private_key=merchant, client_certificate=(cert_path, tls_key))
        assert len(parsed) == 1, name
        assert built.pipeline.settings.client_certificate.serial == serial
    parsed.clear()
    other_copy = tmp_path / "copy_of_apiclient_key.pem"
    other_copy.write_bytes(key_path.read_bytes())
    _engine(identity, "sandbox://wechatpay", private_key=key_path, client_certificate=(cert_path, other_copy))
    assert len(parsed) == 2  # another file is parsed (and checked against the certificate) on its own


# -- callbacks -----------------------------------------------------------------------------------------


def test_a_refund_callback_is_decrypted_and_answered(engine: Engine) -> None:
    callback = engine.emulator.v2.refund_notification("R-1001", "T-1001", refund_fee=50, total_fee=100)
    assert b"R-1001" not in callback.body  # the details travel only inside req_info
    notification = engine.parse_v2_notification(callback.body)
    assert (notification.kind, notification.verified_with) == ("refund", "apiv2:req_info")
    assert notification.data["out_refund_no"] == "R-1001" and notification.data["refund_fee"] == "50"
    assert "req_info" not in notification.envelope and notification.envelope["mch_id"] == engine.credentials.mchid
    seen: list[V2Notification] = []
    reply = asyncio.run(engine.handle_v2_notification(callback.body, seen.append))
    assert (reply.status, reply.body, reply.headers["Content-Type"]) == (200, SUCCESS_REPLY, "text/xml; charset=utf-8")
    assert reply.body == (
        b"<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>"
    )
    assert seen[0].data["refund_status"] == "SUCCESS"


def test_a_refund_callback_under_another_key_does_not_decrypt(make_engine, engine: Engine) -> None:
    """Under a wrong key a ciphertext usually fails its padding and sometimes (1 in 256) unpads into
    noise: both are the same refusal, whatever this session's random keys."""
    callback = engine.emulator.v2.refund_notification("R-1", "T-1")
    with pytest.raises(NotificationDecryptionError, match="does not decrypt"):
        make_engine(apiv2_key="0" * 32).parse_v2_notification(callback.body)
    fields = xmlcodec.parse(callback.body)
    forged = signing.ecb_encrypt(signing.refund_key(engine.credentials.apiv2_key), b"not a document")
    body = xmlcodec.encode({**fields, "req_info": forged})
    with pytest.raises(NotificationDecryptionError, match="does not decrypt under the APIv2 key to a refund document"):
        engine.parse_v2_notification(body)
    reply = asyncio.run(engine.handle_v2_notification(body, lambda n: None))
    assert reply.status == 400 and xmlcodec.parse(reply.body) == {"return_code": "FAIL", "return_msg": "解密失败"}


@pytest.mark.parametrize("sign_type", ["MD5", "HMAC-SHA256"])
def test_a_payment_callback_is_verified_under_its_sign_type(engine: Engine, sign_type: str) -> None:
    callback = engine.emulator.v2.payment_notification("T-2001", 88, sign_type=sign_type)
    notification = engine.parse_v2_notification(callback.body)
    assert (notification.kind, notification.verified_with) == ("payment", f"apiv2:{sign_type}")
    assert notification.data["out_trade_no"] == "T-2001" and notification.data["total_fee"] == "88"


def test_tampered_payment_callbacks_are_refused(engine: Engine) -> None:
    fields = xmlcodec.parse(engine.emulator.v2.payment_notification("T-1", 1).body)
    claims_hmac = {**fields, "sign_type": "HMAC-SHA256"}
    claims_hmac["sign"] = signing.sign(claims_hmac, engine.credentials.apiv2_key, "MD5")  # ...and signs MD5
    cases = {
        "mismatch": {**fields, "total_fee": "100"},
        "wrong_sign_type": claims_hmac,
        "missing_sign": {k: v for k, v in fields.items() if k != "sign"},
        "unsupported_type": {**fields, "sign_type": "SHA1"},
    }
    for reason, tampered in cases.items():
        with pytest.raises(NotificationSignatureError) as caught:
            engine.parse_v2_notification(xmlcodec.encode(tampered))
        assert caught.value.reason == reason
    reply = asyncio.run(engine.handle_v2_notification(xmlcodec.encode(cases["mismatch"]), lambda n: None))
    assert reply.status == 401 and xmlcodec.parse(reply.body)["return_code"] == "FAIL"


def test_malformed_callbacks_are_refused(engine: Engine) -> None:
    fields = xmlcodec.parse(engine.emulator.v2.payment_notification("T-1", 1).body)
    bodies = [
        b'<!DOCTYPE xml [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><a>&e;</a></xml>',
        xmlcodec.encode({**fields, "mch_id": "1230000109"}),
        xmlcodec.encode({"return_code": "FAIL", "return_msg": "x"}),
        b"{}",
    ]
    for body in bodies:
        with pytest.raises(MalformedNotificationError):
            engine.parse_v2_notification(body)


def test_a_handler_failure_asks_for_the_callback_again(engine: Engine) -> None:
    callback = engine.emulator.v2.payment_notification("T-1", 1)

    def broken(notification: V2Notification) -> None:
        raise RuntimeError("database down")

    reply = asyncio.run(engine.handle_v2_notification(callback.body, broken))
    assert reply.status == 500 and xmlcodec.parse(reply.body)["return_code"] == "FAIL"


async def _receiver(engine: Engine, received: list[V2Notification]) -> tuple[web.AppRunner, str]:
    """A merchant's APIv2 callback endpoint on loopback: the runner (to clean up) and its URL."""
    app = web.Application()
    app.router.add_post("/wechatpay/v2/notify", engine.v2_notification_handler(received.append))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/wechatpay/v2/notify"


def test_the_sandbox_delivers_v2_callbacks_until_acknowledged(engine: Engine) -> None:
    received: list[V2Notification] = []

    async def main() -> bool:
        runner, url = await _receiver(engine, received)
        try:
            refund = engine.emulator.v2.refund_notification("R-9", "T-9")
            payment = engine.emulator.v2.payment_notification("T-9", 1, sign_type="HMAC-SHA256")
            return await engine.emulator.v2.deliver(url, refund) and await engine.emulator.v2.deliver(url, payment)
        finally:
            await runner.cleanup()

    assert asyncio.run(main())
    assert [n.kind for n in received] == ["refund", "payment"]
    assert [statuses for _, statuses in engine.emulator.v2.deliveries] == [(200,), (200,)]


def test_what_became_of_v2_callbacks_is_kept_for_the_newest_record_limit(identity: SandboxIdentity) -> None:
    """``v2.deliveries`` was a list, one more entry per callback for as long as the sandbox ran."""
    sandbox = Sandbox(identity, record_limit=2)
    nobody = [f"http://127.0.0.1:9/notify/{n}" for n in range(3)]  # nothing listens on port 9

    async def deliver_all() -> None:
        for url in nobody:
            await sandbox.v2.deliver(url, sandbox.v2.payment_notification("T-1", 1), schedule=())

    asyncio.run(deliver_all())
    assert [(url, statuses) for url, statuses in sandbox.v2.deliveries] == [(nobody[1], (0,)), (nobody[2], (0,))]
    sandbox.record_limit = 1
    assert [url for url, _ in sandbox.v2.deliveries] == [nobody[2]] and sandbox.v2.deliveries.maxlen == 1


def test_the_served_sandbox_sends_v2_callbacks_on_request(identity: SandboxIdentity) -> None:
    import json
    import urllib.request

    received: list[V2Notification] = []
    with ServerThread(Sandbox(identity)) as server, _engine(identity, server.base_url) as engine:

        async def main() -> None:
            runner, url = await _receiver(engine, received)
            spec = {"url": url, "kind": "refund", "out_refund_no": "R-7", "out_trade_no": "T-7"}
            control = urllib.request.Request(
                f"{server.base_url}/sandbox/v2/notify", json.dumps(spec).encode(), method="POST"
            )
            status = await asyncio.to_thread(lambda: urllib.request.urlopen(control).status)
            assert status == 202
            await until(lambda: received)
            await runner.cleanup()

        asyncio.run(main())
    assert received and received[0].data["out_refund_no"] == "R-7"
