"""No secret in a traceback's frame locals, which is what error trackers record.

For each kind of rejection, the exception is formatted as Sentry-style reporters do,
``traceback.TracebackException(..., capture_locals=True)``, with DEBUG logging on, and the text of
the engine's own frames (``engine/`` and ``plugins/``) is searched for the merchant private key's
PEM lines, the APIv3 key and every Authorization signature sent. Encrypted-field plaintext is
searched for in tests/test_pay_bank.py (the caller's own frames hold it anyway; the engine's must not).
"""

from __future__ import annotations

import concurrent.futures
import logging
import pickle
import traceback
from pathlib import Path
from typing import Any, Callable

import pytest
from conftest import COMBINE_PAPAY

from engine import (
    ConfigurationError,
    Engine,
    EngineError,
    MockTransport,
    PrivateKeySigner,
    RawResponse,
    Request,
    RetryPolicy,
    ValidationError,
)
from engine.examples import example_payload
from engine.hookspecs import hookimpl
from engine.protocol import parse_authorization
from engine.sandbox import Sandbox, SandboxIdentity
from engine.sandbox.faults import Fault
from engine.secret import Secret

ROOT = Path(__file__).resolve().parent.parent
PAPAY = "combine_papay.mini_program"


OWN = (ROOT / "engine", ROOT / "plugins")
PYTEST_PLUGIN = ROOT / "wechatpay_engine_pytest.py"


def engine_frames(error: BaseException, own_code: tuple[Path, ...] = OWN) -> str:
    """The formatted frames (code and locals) of the engine's own modules in ``error``'s traceback."""
    formatted = traceback.TracebackException.from_exception(error, capture_locals=True)
    own = [str(path) for path in own_code]
    frames = [
        frame
        for exc in _chain(formatted)
        for frame in exc.stack
        if any(str(Path(frame.filename).resolve()).startswith(p) for p in own)
    ]
    assert frames, "the traceback should pass through the engine"
    return "\n".join(f"{f.filename}:{f.lineno} {f.name} {f.locals}" for f in frames)


def _chain(formatted: traceback.TracebackException) -> list[traceback.TracebackException]:
    found = [formatted]
    for linked in (formatted.__cause__, formatted.__context__):
        if linked is not None:
            found.extend(_chain(linked))
    return found


def secrets_of(identity: SandboxIdentity, signatures: list[str]) -> list[str]:
    pem = identity.merchant_private_pem().decode()
    lines = [line for line in pem.splitlines() if line and not line.startswith("-----")]
    key = identity.apiv3_key.decode()
    return [*lines, key, repr(identity.apiv3_key), *signatures]


class Recorder:
    """Answers from a sandbox, optionally rewritten, and remembers the signatures it was sent."""

    def __init__(self, sandbox: Sandbox, rewrite: Callable[[RawResponse], RawResponse] = lambda raw: raw) -> None:
        self.sandbox = sandbox
        self.rewrite = rewrite
        self.signatures: list[str] = []

    def __call__(self, request: Request) -> RawResponse:
        self.signatures.append(parse_authorization(request.headers["Authorization"])[1]["signature"])
        return self.rewrite(self.sandbox.handle(request))


def tampered(raw: RawResponse) -> RawResponse:
    return RawResponse(raw.status, raw.headers, raw.body.replace(b"}", b',"x":1}', 1))


REJECTIONS: dict[str, Callable[[Sandbox], Any]] = {
    "signature": lambda sandbox: None,  # answers tampered by the recorder
    "api_error": lambda sandbox: sandbox.faults.add(Fault.error(400, "PARAM_ERROR", "参数错误")),
    "unconfirmed": lambda sandbox: sandbox.faults.add(Fault("drop")),
    "not_json": lambda sandbox: sandbox.faults.add(Fault("not_json")),
}


@pytest.mark.parametrize("kind", sorted(REJECTIONS))
def test_rejected_calls_leave_no_secret_in_frame_locals(identity, kind, caplog) -> None:
    sandbox = Sandbox(identity)
    REJECTIONS[kind](sandbox)
    recorder = Recorder(sandbox, tampered if kind == "signature" else lambda raw: raw)
    engine = Engine(**identity.engine_settings(), transport=MockTransport(recorder), retry=RetryPolicy.never())
    if kind == "unconfirmed":
        engine = Engine.sandbox(identity=identity, retry=RetryPolicy.never())
        engine.emulator.faults.add(Fault("drop"))
    with caplog.at_level(logging.DEBUG), pytest.raises(EngineError) as caught:
        engine.call(PAPAY, COMBINE_PAPAY)
    text = engine_frames(caught.value) + caplog.text
    signatures = recorder.signatures or [
        parse_authorization(e.request.headers["Authorization"])[1]["signature"] for e in engine.emulator.exchanges
    ]
    for secret in secrets_of(identity, signatures):
        assert secret not in text
    engine.close()


def _callback(engine: Engine, change: Callable[[dict[str, str], bytes], tuple[dict[str, str], bytes]]) -> Any:
    notification = engine.emulator.payment_succeeded("T-1", total=1)
    headers, body = change(dict(notification.headers.items()), notification.body)
    return headers, body


CALLBACKS: dict[str, Callable[[dict[str, str], bytes], tuple[dict[str, str], bytes]]] = {
    "forged": lambda h, b: (h, b.replace(b'"id"', b'"iD"', 1) + b" "),
    "stale": lambda h, b: ({**h, "Wechatpay-Timestamp": "1000000000"}, b),
    "probe": lambda h, b: ({**h, "Wechatpay-Signature": "WECHATPAY/SIGNTEST/abc"}, b),
    "malformed": lambda h, b: ({**h, "Wechatpay-Nonce": "\x00"}, b),
}


@pytest.mark.parametrize("kind", sorted(CALLBACKS))
def test_rejected_callbacks_leave_no_apiv3_key_in_frame_locals(make_engine, identity, kind, caplog) -> None:
    engine = make_engine()
    headers, body = _callback(engine, CALLBACKS[kind])
    with caplog.at_level(logging.DEBUG), pytest.raises(EngineError) as caught:
        engine.parse_notification(headers, body)
    text = engine_frames(caught.value) + caplog.text
    for secret in secrets_of(identity, []):
        assert secret not in text


def test_an_undecryptable_callback_leaves_no_apiv3_key_in_frame_locals(make_engine, identity) -> None:
    sender = make_engine()
    other = SandboxIdentity.generate()
    receiver = make_engine(apiv3_key=other.apiv3_key)  # the resource was sealed with another key
    notification = sender.emulator.payment_succeeded("T-2")
    with pytest.raises(EngineError) as caught:
        receiver.parse_notification(dict(notification.headers.items()), notification.body)
    text = engine_frames(caught.value)
    for secret in [*secrets_of(identity, []), other.apiv3_key.decode()]:
        assert secret not in text


def test_a_rejected_setting_leaves_no_key_material_in_frame_locals(identity) -> None:
    pem = identity.merchant_private_pem().decode()
    with pytest.raises(EngineError) as caught:  # the private key is fine; the APIv3 key is not
        Engine(**{**identity.engine_settings(), "private_key": pem, "apiv3_key": "x" * 31})
    text = engine_frames(caught.value)
    for secret in [*secrets_of(identity, []), "x" * 31]:
        assert secret not in text


def test_a_secret_shows_nothing_and_does_not_pickle() -> None:
    secret = Secret(b"0123456789abcdef0123456789abcdef")
    assert repr(secret) == str(secret) == f"{secret}" == "Secret(<hidden>)"
    with pytest.raises(TypeError, match="does not pickle"):
        pickle.dumps(secret)
    with pytest.raises(AttributeError):
        secret._value = b"changed"  # type: ignore[misc]


# -- APIv2: the APIv2 key and the refund key derived from it ---------------------------------------


def apiv2_secrets(key: bytes) -> list[str]:
    from engine.v2 import signing

    return [key.decode(), repr(key), signing.refund_key(key).decode()]


def test_refused_apiv2_answers_and_callbacks_leave_no_apiv2_key_in_frame_locals(make_engine, identity) -> None:
    """Anyone can post a forged callback: its refusal must not carry the key into an error tracker."""
    from conftest import MICROPAY

    from engine.v2 import xmlcodec

    engine = make_engine()
    engine.emulator.v2.tamper_next("sign")
    failures: list[BaseException] = []
    with pytest.raises(EngineError) as caught:
        engine.call("v2.micropay", MICROPAY)  # an answer whose sign does not verify
    failures.append(caught.value)
    fields = xmlcodec.parse(engine.emulator.v2.payment_notification("T-1", 1).body)
    refund = engine.emulator.v2.refund_notification("R-1", "T-1").body
    other = make_engine(apiv2_key="0" * 32)
    for refused_by, body in [
        (engine, xmlcodec.encode({**fields, "total_fee": "100"})),  # a forged payment callback
        (other, refund),  # a refund callback that does not decrypt under this key
    ]:
        with pytest.raises(EngineError) as caught:
            refused_by.parse_v2_notification(body)
        failures.append(caught.value)
    for failure in failures:
        text = engine_frames(failure)
        for secret in [*apiv2_secrets(identity.apiv2_key), *apiv2_secrets(b"0" * 32)]:
            assert secret not in text, type(failure).__name__


def test_a_rejected_setting_leaves_no_apiv2_key_in_frame_locals(identity) -> None:
    key = "K" * 31 + "!"
    with pytest.raises(EngineError) as caught:  # the APIv2 key is fine; the timeout is not
        Engine(mchid="1900000109", apiv2_key=key, timeout=-1)
    assert key not in engine_frames(caught.value)


def test_settings_from_the_environment_leave_no_key_material_in_frame_locals(identity, monkeypatch) -> None:
    """Variables often hold the PEM or the key itself; Engine.from_env's frames must not show them
    (read from the process environment, as a service does: a dict passed as ``environ`` is the caller's)."""
    pem = identity.merchant_private_pem().decode()
    environ = {
        "WECHATPAY_MCHID": identity.mchid,
        "WECHATPAY_SERIAL_NO": identity.merchant_serial_no,
        "WECHATPAY_PRIVATE_KEY": pem,
        "WECHATPAY_APIV2_KEY": identity.apiv2_key.decode(),
        "WECHATPAY_APIV3_KEY": "x" * 31,  # refused: the failure whose traceback is read
    }
    for variable, value in environ.items():
        monkeypatch.setenv(variable, value)
    with pytest.raises(EngineError) as caught:
        Engine.from_env(load_entry_points=False)
    text = engine_frames(caught.value)
    for secret in [*secrets_of(identity, []), "x" * 31, *apiv2_secrets(identity.apiv2_key)]:
        assert secret not in text


@pytest.mark.parametrize("setting", ["store", "notification_store"])  # notification_store: the former name
def test_a_store_url_with_a_password_stays_out_of_frame_locals_and_a_bad_one_is_a_setting_error(
    identity, setting: str
) -> None:
    from engine import ConfigurationError

    settings = {**identity.engine_settings(), "load_entry_points": False}
    pytest.importorskip("redis")
    with pytest.raises(EngineError) as caught:  # nothing listens on port 9: the construction check fails
        Engine(**settings, **{setting: "redis://:hunter2-store-password@127.0.0.1:9/0"})
    assert "hunter2-store-password" not in engine_frames(caught.value) + str(caught.value)
    with pytest.raises(ConfigurationError, match="unparseable store URL") as refused:
        Engine(**settings, **{setting: "redis://:hunter2-store-password@127.0.0.1:notaport/0"})
    assert "hunter2-store-password" not in engine_frames(refused.value) + str(refused.value)
    with pytest.raises(ConfigurationError, match="by name"):
        Engine("1900000109")  # type: ignore[misc]


def test_a_rejected_client_certificate_leaves_no_key_or_password_in_frame_locals(identity, tmp_path) -> None:
    """The TLS client certificate's key is an APIv2-only merchant's only private key."""
    from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, pkcs12

    from engine.keys import load_certificate

    pem = identity.merchant_private_pem().decode()
    certificate = load_certificate(identity.merchant_certificate_pem())
    bundle = pkcs12.serialize_key_and_certificates(
        b"x", identity.merchant_key, certificate, None, BestAvailableEncryption(b"p12-password-never-shown")
    )
    refused = [
        ("not a certificate", pem),  # the key parses; the certificate does not
        {"pkcs12": bundle, "password": "a-wrong-p12-password"},
    ]
    for setting in refused:
        with pytest.raises(EngineError) as caught:
            Engine(mchid="1900000109", apiv2_key="K" * 32, client_certificate=setting)
        text = engine_frames(caught.value)
        for secret in [*secrets_of(identity, []), "a-wrong-p12-password", "K" * 32]:
            assert secret not in text


# -- the other constructors: Engine.sandbox and Engine.from_env hold their keywords in their frames --


STORE_PASSWORD = "hunter2-sandbox-store-password"


def test_a_refused_sandbox_engine_leaves_no_key_or_store_password_in_frame_locals(identity) -> None:
    """``Engine.sandbox(**options)`` held the options and the identity's keys in its own frame."""
    key = "K" * 31 + "!"
    with pytest.raises(EngineError) as caught:  # the keys and the store URL are fine; the timeout is not
        Engine.sandbox(
            identity=identity,
            load_entry_points=False,
            apiv2_key=key,
            store=f"redis://:{STORE_PASSWORD}@127.0.0.1:9/0",
            timeout=-1,
        )
    text = engine_frames(caught.value)
    assert " sandbox {" in text, "the traceback should pass through Engine.sandbox"
    for secret in [*secrets_of(identity, []), *apiv2_secrets(identity.apiv2_key), key, STORE_PASSWORD]:
        assert secret not in text


def test_keywords_of_a_refused_from_env_leave_no_key_or_store_password_in_frame_locals(identity, tmp_path) -> None:
    """Keywords win over the environment; a refusal (here: no merchant id) must not show them either,
    and a certificate path given as a keyword, boxed with the rest, is still paired with its key."""
    from engine import ClientCertificate

    pem = identity.merchant_private_pem().decode()
    with pytest.raises(EngineError, match="WECHATPAY_MCHID") as caught:
        Engine.from_env(
            environ={},
            private_key=pem,
            apiv3_key=identity.apiv3_key,
            apiv2_key=identity.apiv2_key,
            store=f"redis://:{STORE_PASSWORD}@127.0.0.1:9/0",
        )
    text = engine_frames(caught.value)
    for secret in [*secrets_of(identity, []), *apiv2_secrets(identity.apiv2_key), STORE_PASSWORD]:
        assert secret not in text
    cert, key = tmp_path / "apiclient_cert.pem", tmp_path / "apiclient_key.pem"
    cert.write_bytes(identity.merchant_certificate_pem())
    key.write_bytes(identity.merchant_private_pem())
    environ = {
        "WECHATPAY_MCHID": identity.mchid,
        "WECHATPAY_APIV2_KEY": identity.apiv2_key.decode(),
        "WECHATPAY_CLIENT_KEY": str(key),
    }
    with Engine.from_env(environ=environ, client_certificate=str(cert), load_entry_points=False) as engine:
        assert engine.pipeline.settings.client_certificate.serial == ClientCertificate.from_pem(cert, key).serial


def test_a_refused_engine_of_the_served_sandbox_fixture_leaves_no_key_in_frame_locals(wechatpay_sandbox_server) -> None:
    """``RunningSandbox.engine(**options)`` held the identity's keys and the options in its own frame."""
    served = wechatpay_sandbox_server
    pem = served.identity.merchant_private_pem().decode()
    key = "K" * 31 + "!"
    with pytest.raises(EngineError) as caught:  # the keys are fine; the timeout is not
        served.engine(private_key=pem, apiv2_key=key, load_entry_points=False, timeout=-1)
    text = engine_frames(caught.value, (*OWN, PYTEST_PLUGIN))
    assert " engine {" in text, "the traceback should pass through RunningSandbox.engine"
    for secret in [*secrets_of(served.identity, []), key]:
        assert secret not in text
    with served.engine(private_key=pem, load_entry_points=False) as engine:  # boxed, and still a working engine
        assert engine.call(PAPAY, COMBINE_PAPAY).status == 200


# -- what leaves prepare and interpret: the frames they called are emptied, no others -----------------


PAY_BANK = "v2.mmpaysptrans.pay_bank.post"
CARD = "6225768803214567890"
PAYOUT = {
    "partner_trade_no": "1212121221227",
    "enc_bank_no": CARD,
    "enc_true_name": "张三",
    "bank_code": "1001",
    "amount": 100000,
    "desc": "理财",
}


def _paused_in_except(held: dict[str, BaseException]) -> Any:
    """A generator paused inside its ``except`` block: the exception it caught holds its frame."""
    while True:
        try:
            raise KeyError("refresh failed")
        except KeyError as exc:
            held["last"] = exc
            yield


class _CauseFromAPausedGenerator:
    """A cipher plugin whose refusal's cause was caught in a generator still paused (a refresher)."""

    def __init__(self) -> None:
        self.held: dict[str, BaseException] = {}
        self.refresher = _paused_in_except(self.held)
        next(self.refresher)

    @hookimpl(tryfirst=True)
    def wxpay_encrypt_field(self, plaintext: str, key: Any, scheme: str) -> str:
        raise ConfigurationError("the KMS refresher failed") from self.held["last"]


def _encrypt_in_a_group(plaintext: str) -> str:
    raise RuntimeError("one of the KMS replicas failed")


class _GroupRaisingCipher:
    """A cipher plugin that gathers its replicas' failures in an exception group."""

    @hookimpl(tryfirst=True)
    def wxpay_encrypt_field(self, plaintext: str, key: Any, scheme: str) -> str:
        failures = []
        try:
            _encrypt_in_a_group(plaintext)
        except RuntimeError as exc:
            failures.append(exc)
        raise ExceptionGroup("every KMS replica failed", failures)


class _PoolCipher:
    """A cipher plugin that runs its KMS client in a worker thread (its failure re-raised here)."""

    @hookimpl(tryfirst=True)
    def wxpay_encrypt_field(self, plaintext: str, key: Any, scheme: str) -> str:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(_encrypt_in_a_group, plaintext).result()


class _GeneratorCipher:
    """A cipher plugin that encrypts through a generator expression (its frames chain to no caller)."""

    @hookimpl(tryfirst=True)
    def wxpay_encrypt_field(self, plaintext: str, key: Any, scheme: str) -> str:
        return "".join(_encrypt_in_a_group(value) for value in [plaintext])


@pytest.mark.parametrize("plugin", [_PoolCipher, _GeneratorCipher])
def test_frames_run_for_prepare_in_a_worker_thread_or_a_generator_are_cleared(
    identity: SandboxIdentity, plugin: Any
) -> None:
    engine = _pay_bank_engine(identity, plugin())
    with pytest.raises(RuntimeError) as caught:
        engine.call(PAY_BANK, PAYOUT)
    engine.close()
    chain = [caught.value, caught.value.__cause__, caught.value.__context__]
    held = [
        frame.f_code.co_name
        for error in chain
        if error is not None
        for frame, _ in traceback.walk_tb(error.__traceback__)
        if CARD in repr(frame.f_locals)
    ]
    assert held == []


def _pay_bank_engine(identity: SandboxIdentity, plugin: Any) -> Engine:
    return Engine.sandbox(identity=identity, mode="apiv2", load_entry_points=False, plugins=[plugin])


def test_the_callers_own_frames_keep_their_locals(identity: SandboxIdentity) -> None:
    """An engine call made while the caller handles its own exception (a Django or Celery handler) makes
    that exception the context of the engine's error: its frames are the caller's, and keep their locals."""
    engine = Engine.sandbox(identity=identity, mode="apiv2", load_entry_points=False)

    def user_step() -> None:
        order_number = "T-1234"  # noqa: F841  # a local the caller's error tracker should still see
        raise LookupError("no such order")

    try:
        user_step()
    except LookupError as handled:
        user_error = handled
        with pytest.raises(ValidationError) as caught:
            engine.call(PAY_BANK, {**PAYOUT, "amount": "lots"})
    engine.close()
    assert caught.value.__context__ is user_error
    tb = user_error.__traceback__
    frames = {frame.f_code.co_name: frame.f_locals for frame, _ in traceback.walk_tb(tb)}
    assert frames["user_step"] == {"order_number": "T-1234"}


def test_a_paused_generator_in_an_errors_chain_is_not_closed(identity: SandboxIdentity) -> None:
    plugin = _CauseFromAPausedGenerator()
    engine = _pay_bank_engine(identity, plugin)
    with pytest.raises(ConfigurationError) as caught:
        engine.call(PAY_BANK, PAYOUT)
    engine.close()
    assert caught.value.__cause__ is plugin.held["last"]
    next(plugin.refresher)  # still running: frame.clear() would have closed it (StopIteration)
    assert CARD not in engine_frames(caught.value, (*OWN, Path(__file__).resolve()))


def test_members_of_an_exception_group_leave_no_plaintext(identity: SandboxIdentity) -> None:
    engine = _pay_bank_engine(identity, _GroupRaisingCipher())
    with pytest.raises(ExceptionGroup) as caught:
        engine.call(PAY_BANK, PAYOUT)
    engine.close()
    (member,) = caught.value.exceptions
    locals_ = [frame.f_locals for frame, _ in traceback.walk_tb(member.__traceback__)]
    assert locals_ and all(CARD not in repr(found) for found in locals_)


class _HalfDecryptingSigner:
    """A KMS signer that decrypts the first answer field and then fails: the first field's plaintext is
    in the walker's frames when the failure leaves ``interpret``."""

    def __init__(self, identity: SandboxIdentity) -> None:
        self._remote = PrivateKeySigner(identity.merchant_key)
        self.decrypted: list[str] = []

    def sign(self, data: bytes) -> bytes:
        return self._remote.sign(data)

    def decrypt(self, ciphertext: bytes) -> bytes:
        if self.decrypted:
            raise ValueError("the KMS is down")
        self._remote.decrypt(ciphertext)
        self.decrypted.append("六二二五-opened-by-the-kms")  # a plaintext no other part of the call holds
        return self.decrypted[0].encode()


def test_a_failed_answer_decryption_leaves_no_decrypted_field_in_a_frame(identity: SandboxIdentity) -> None:
    signer = _HalfDecryptingSigner(identity)
    engine = Engine.sandbox(identity=identity, private_key=None, signer=signer, load_entry_points=False)
    # its sandbox answer holds two encrypted fields: the first opens, the second fails
    descriptor = engine.endpoint("v3.aggracct_bc.wb_channel.bank_channel_account.rename._application_id_.get")
    with pytest.raises(EngineError) as caught:
        engine.call(descriptor.id, example_payload(descriptor))
    engine.close()
    frames = engine_frames(caught.value, (*OWN, Path(__file__).resolve()))  # before this frame holds it too
    assert signer.decrypted == ["六二二五-opened-by-the-kms"] and signer.decrypted[0] not in frames


# -- the CLI: `wechatpay call ENDPOINT --data JSON|@file` holds the payload from the command line on --


NAME = PAYOUT["enc_true_name"]


def _cli_plaintext_in_frames(error: BaseException) -> list[str]:
    """Which of the payload's plaintexts the engine's frames (the CLI's included) show for ``error``."""
    text = engine_frames(error)
    assert " _run {" in text, "the traceback should pass through the CLI"
    return [plaintext for plaintext in (CARD, NAME) if plaintext in text]


def _cli_data(tmp_path: Path, payload: dict[str, Any]) -> list[str]:
    """Both forms of --data: JSON text on the command line, and @file."""
    import json

    path = tmp_path / "payout.json"
    path.write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")
    return [json.dumps(payload, ensure_ascii=False), f"@{path}"]


def test_a_refused_cli_call_leaves_no_payload_plaintext_in_frame_locals(tmp_path: Path) -> None:
    """The --data text, the file's content and the parsed payload are boxed until Engine.call has them."""
    from engine.cli import _run, build_parser

    for data in _cli_data(tmp_path, {**PAYOUT, "amount": "lots"}):  # refused by validation, after parsing
        args = build_parser().parse_args(["call", PAY_BANK, "--sandbox", "--data", data])
        assert CARD not in repr(args)
        with pytest.raises(ValidationError) as caught:
            _run(args)
        assert _cli_plaintext_in_frames(caught.value) == []


def test_refused_cli_data_leaves_no_plaintext_in_frame_locals_nor_in_its_context(tmp_path: Path) -> None:
    from engine.cli import CliError, _run, build_parser

    not_json, not_utf8 = tmp_path / "not.json", tmp_path / "not-utf8.json"
    not_json.write_text(f'{{"enc_bank_no": "{CARD}", "enc_true_name": "{NAME}",', encoding="utf-8")
    not_utf8.write_bytes(f'{{"enc_bank_no": "{CARD}", "enc_true_name": "{NAME}"}}'.encode() + b"\xff")
    for data in (f"@{not_json}", f"@{not_utf8}", not_json.read_text(encoding="utf-8")):
        with pytest.raises(CliError) as caught:
            _run(build_parser().parse_args(["call", PAY_BANK, "--sandbox", "--data", data]))
        assert caught.value.__context__ is None  # a JSONDecodeError's doc, a UnicodeDecodeError's object: the text
        assert _cli_plaintext_in_frames(caught.value) == []


def test_a_crash_in_a_cli_call_leaves_no_payload_plaintext_in_main_or_run(tmp_path: Path, monkeypatch) -> None:
    """An unexpected error escapes main (a crash reporter records it): main's and _run's frames hold
    the command line and the payload no longer."""
    from engine import cli

    def crash(args: Any, **extra: Any) -> Engine:
        raise RuntimeError("the engine could not be built")

    monkeypatch.setattr(cli, "_engine", crash)
    for data in _cli_data(tmp_path, PAYOUT):
        with pytest.raises(RuntimeError) as caught:
            cli.main(["call", PAY_BANK, "--sandbox", "--data", data])
        assert " main {" in engine_frames(caught.value)
        assert _cli_plaintext_in_frames(caught.value) == []
