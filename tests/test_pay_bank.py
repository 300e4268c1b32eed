"""APIv2 pay_bank (企业付款到银行卡): the engine encrypts the bank card number and name with the
``pay_bank`` RSA key (risk/getpublickey's), as the descriptor's ``encryption`` trait says."""

from __future__ import annotations

import base64
import json
import logging
import traceback
from pathlib import Path
from typing import Any

import pytest
from conftest import COMBINE_PAPAY
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from test_secret_locals import OWN, engine_frames

from engine import ConfigurationError, CredentialError, Engine, EngineError, ResultCodeError, ValidationError
from engine.descriptor import Encryption
from engine.environment import read_environment
from engine.errors import DescriptorError
from engine.hookspecs import hookimpl
from engine.loader import structure_descriptor
from engine.registry import builtin_registry
from engine.sandbox import SandboxIdentity, state
from engine.testing import StubAssertionError, Stubber

PAY_BANK = "v2.mmpaysptrans.pay_bank.post"
BANK_NO = "6225768803214567890"
NAME = "张小三"
PAYOUT = {
    "partner_trade_no": "1212121221227",
    "enc_bank_no": BANK_NO,
    "enc_true_name": NAME,
    "bank_code": "1001",
    "amount": 100000,
    "desc": "理财",
}
OAEP = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None)


@pytest.fixture(scope="module")
def bank_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pkcs1(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)


def spki(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def apiv2_engine(identity: SandboxIdentity, **options: Any) -> Engine:
    settings = {**identity.apiv2_settings(), "load_entry_points": False, **options}
    return Engine(**{k: v for k, v in settings.items() if v is not None})


def decrypt(key: rsa.RSAPrivateKey, ciphertext: str) -> str:
    return key.decrypt(base64.b64decode(ciphertext, validate=True), OAEP).decode("utf-8")


# -- the trait ---------------------------------------------------------------------------------------


def test_the_pay_bank_descriptor_names_its_key_and_scheme() -> None:
    registry = builtin_registry()
    pay_bank = registry.get(PAY_BANK)
    assert pay_bank.encryption == Encryption(key="pay_bank", scheme="RSA-OAEP-SHA1")
    assert [n for n, f in pay_bank.request.body.items() if f.encrypted] == ["enc_bank_no", "enc_true_name"]
    # every other descriptor keeps the default: the keyring's WeChat Pay key
    others = {registry.get(i).encryption.key for i in registry.ids() if i != PAY_BANK}
    assert others == {"platform"}


@pytest.mark.parametrize(
    ("encryption", "problem"),
    [
        ({"key": "bank"}, "must be one of platform, pay_bank @ $.encryption.key"),
        ({"key": "pay_bank", "scheme": "RSA-PKCS1"}, "must be one of RSA-OAEP-SHA1 @ $.encryption.scheme"),
        ({"key": "pay_bank", "padding": "OAEP"}, "unknown key(s) padding @ $.encryption"),
    ],
)
def test_a_bad_encryption_trait_fails_at_load(encryption: dict[str, str], problem: str) -> None:
    raw = {"method": "POST", "path": "/x", "request": {"body": {"a": {"encrypted": True}}}, "encryption": encryption}
    with pytest.raises(DescriptorError) as caught:
        structure_descriptor(raw, "py.x.post", "x.yaml")
    assert problem in caught.value.problems


def test_an_encryption_trait_with_nothing_to_encrypt_fails_at_load() -> None:
    raw = {"method": "POST", "path": "/x", "request": {"body": {"a": {}}}, "encryption": {"key": "pay_bank"}}
    with pytest.raises(DescriptorError) as caught:
        structure_descriptor(raw, "py.x.post", "x.yaml")
    assert caught.value.problems == ("encryption is stated, but no request field is marked encrypted @ $.encryption",)


# -- encrypting ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["pkcs1", "spki", "pkcs1_text", "spki_path", "key_object"])
def test_the_engine_encrypts_with_the_pay_bank_key_in_any_form(
    identity: SandboxIdentity, bank_key: rsa.RSAPrivateKey, form: str, tmp_path: Path
) -> None:
    path = tmp_path / "pay_bank_public_key.pem"
    path.write_bytes(spki(bank_key))
    given = {
        "pkcs1": pkcs1(bank_key),
        "spki": spki(bank_key),
        "pkcs1_text": pkcs1(bank_key).decode("ascii"),
        "spki_path": str(path),
        "key_object": bank_key.public_key(),
    }[form]
    engine = apiv2_engine(identity, pay_bank_public_key=given)
    key = engine.pipeline.encryption_keys["pay_bank"]
    assert key.kind == "pay_bank" and key.key_id.startswith("PAY_BANK_") and str(BANK_NO) not in repr(key)
    fields = engine.pipeline.prepare(PAY_BANK, PAYOUT).request.fields or {}
    assert decrypt(bank_key, fields["enc_bank_no"]) == BANK_NO
    assert decrypt(bank_key, fields["enc_true_name"]) == NAME
    assert len(fields["enc_bank_no"]) == 344  # 256 bytes of RSA-2048 ciphertext, base64
    assert fields["bank_code"] == "1001"  # the other fields travel as they are
    engine.close()


def test_encryption_is_randomised_and_the_same_key_id_for_both_forms(
    identity: SandboxIdentity, bank_key: rsa.RSAPrivateKey
) -> None:
    one = apiv2_engine(identity, pay_bank_public_key=pkcs1(bank_key))
    two = apiv2_engine(identity, pay_bank_public_key=spki(bank_key))
    first = one.pipeline.prepare(PAY_BANK, PAYOUT).request.fields or {}
    second = one.pipeline.prepare(PAY_BANK, PAYOUT).request.fields or {}
    assert first["enc_bank_no"] != second["enc_bank_no"]  # OAEP is randomised
    assert one.pipeline.encryption_keys["pay_bank"].key_id == two.pipeline.encryption_keys["pay_bank"].key_id
    one.close()
    two.close()


def _ec_pem() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _short_pem() -> bytes:
    return pkcs1(rsa.generate_private_key(public_exponent=65537, key_size=1024))


BAD_KEYS = {
    "not_pem": ("MIIBCgKCAQEA-not-a-key", "not PEM and not a readable file"),
    "garbled_pem": ("-----BEGIN RSA PUBLIC KEY-----\nAAAA\n-----END RSA PUBLIC KEY-----\n", "not a PEM public key"),
    "ec": (_ec_pem, "expected an RSA key, got"),
    "short": (_short_pem, "RSA key of 1024 bits; WeChat Pay uses 2048"),
    "wrong_type": (12345, "expected PEM text, PEM bytes or a file path, got int"),
}


@pytest.mark.parametrize("kind", sorted(BAD_KEYS))
def test_a_bad_pay_bank_key_is_a_credential_error_naming_the_setting(identity: SandboxIdentity, kind: str) -> None:
    value, reason = BAD_KEYS[kind]
    given = value() if callable(value) else value
    with pytest.raises(CredentialError) as caught:
        apiv2_engine(identity, pay_bank_public_key=given)
    message = str(caught.value)
    assert message.startswith("pay_bank_public_key: ") and reason in message
    text = given.decode() if isinstance(given, bytes) else str(given)
    body = [line for line in text.splitlines() if line and not line.startswith("-----")]
    assert all(line not in message for line in body)  # the value is never echoed


def test_without_the_key_a_pay_bank_call_is_refused_before_anything_is_sent(identity: SandboxIdentity) -> None:
    engine = Engine.sandbox(identity=identity, mode="apiv2", load_entry_points=False, pay_bank_public_key=None)
    with pytest.raises(ConfigurationError) as caught:
        engine.call(PAY_BANK, PAYOUT)
    assert str(caught.value) == (
        f"{PAY_BANK} has fields encrypted with the pay_bank RSA public key: give Engine(pay_bank_public_key=...), "
        "the PEM that v2.risk.getpublickey.post answers in pub_key"
    )
    assert engine.emulator.exchanges == []  # never signed, never sent
    assert engine.call("v2.risk.getpublickey.post", {}).data["pub_key"]  # other APIv2 calls are unaffected
    engine.close()


def test_a_too_long_plaintext_is_a_validation_error_before_sending(make_engine: Any) -> None:
    engine = make_engine(mode="apiv2")
    longest = "卡" * 71 + "1"  # 214 UTF-8 bytes: what OAEP/SHA-1 fits in a 2048-bit key
    assert engine.call(PAY_BANK, {**PAYOUT, "enc_true_name": longest}).data["result_code"] == "SUCCESS"
    sent = len(engine.emulator.exchanges)
    with pytest.raises(ValidationError) as caught:
        engine.call(PAY_BANK, {**PAYOUT, "enc_bank_no": "6" * 215, "enc_true_name": longest + "x"})
    assert caught.value.errors == (
        "encoded size 215 is over the maximum 214 @ $.enc_bank_no",
        "encoded size 215 is over the maximum 214 @ $.enc_true_name",
    )
    assert len(engine.emulator.exchanges) == sent


@pytest.mark.parametrize("name", ["enc_bank_no", "enc_true_name"])
def test_an_empty_bank_card_number_or_name_is_refused_not_sent_unencrypted(make_engine: Any, name: str) -> None:
    engine = make_engine(mode="apiv2")
    with pytest.raises(ValidationError) as caught:
        engine.call(PAY_BANK, {**PAYOUT, name: ""})
    assert caught.value.errors == (f"must not be empty (a required encrypted field) @ $.{name}",)
    assert engine.emulator.exchanges == []


def test_the_sandbox_refuses_an_empty_encrypted_field_sent_past_the_engine(identity: SandboxIdentity) -> None:
    from engine.v2 import signing, xmlcodec
    from engine.wire import Headers, Request

    sandbox_engine = Engine.sandbox(identity=identity, mode="apiv2", load_entry_points=False)
    fields = {
        "mch_id": identity.mchid, "partner_trade_no": "T-1", "nonce_str": "N" * 16, "bank_code": "1001",
        "amount": "1", "enc_bank_no": "", "enc_true_name": "",
    }  # fmt: skip
    fields["sign"] = signing.sign(fields, identity.apiv2_key, signing.MD5)
    request = Request("POST", "sandbox://", "/mmpaysptrans/pay_bank", Headers({}), xmlcodec.encode(fields))
    answer = xmlcodec.parse(sandbox_engine.emulator.handle(request).body)
    assert (answer["result_code"], answer["err_code"]) == ("FAIL", "PARAM_ERROR")
    assert answer["err_code_des"] == "参数错误: must not be empty (a required encrypted field) @ $.enc_bank_no"
    sandbox_engine.close()


@pytest.fixture(scope="module")
def big_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=3072)


@pytest.mark.parametrize("form", ["pkcs1", "spki", "key_object"])
def test_a_pay_bank_key_of_more_than_2048_bits_is_refused_at_construction(
    identity: SandboxIdentity, big_key: rsa.RSAPrivateKey, form: str
) -> None:
    """Its 512-character ciphertext would break every call, blamed on the payload (the 384 limit)."""
    given = {"pkcs1": pkcs1(big_key), "spki": spki(big_key), "key_object": big_key.public_key()}[form]
    with pytest.raises(CredentialError) as caught:
        apiv2_engine(identity, pay_bank_public_key=given)
    assert str(caught.value) == (
        "pay_bank_public_key: RSA key of 3072 bits; the pay_bank key is RSA 2048 "
        "(the key v2.risk.getpublickey.post answers in pub_key)"
    )


class _WideCipher:
    """A cipher whose ciphertext is longer than the descriptor documents (a 3072-bit key's 512 characters)."""

    @hookimpl(tryfirst=True)
    def wxpay_encrypt_field(self, plaintext: str, key: Any, scheme: str) -> str:
        return "A" * 512


def test_max_length_bounds_the_ciphertext_not_the_plaintext(identity: SandboxIdentity) -> None:
    """384 characters is pay_bank's ciphertext: a longer one does not fit, whatever the plaintext."""
    engine = apiv2_engine(identity, pay_bank_public_key=identity.pay_bank_public_pem(), plugins=[_WideCipher()])
    with pytest.raises(ValidationError) as caught:
        engine.pipeline.prepare(PAY_BANK, PAYOUT)
    assert caught.value.errors == (
        "ciphertext length 512 is over the maximum 384 @ $.enc_bank_no",
        "ciphertext length 512 is over the maximum 384 @ $.enc_true_name",
    )
    engine.close()


class _RefusingCipher:
    """A cipher whose key cannot hold the plaintext: it raises ValueError, as cryptography does."""

    @hookimpl(tryfirst=True)
    def wxpay_encrypt_field(self, plaintext: str, key: Any, scheme: str) -> str:
        raise ValueError("Encryption failed")


def test_a_cipher_refusing_a_plaintext_is_a_validation_error_at_its_path(identity: SandboxIdentity) -> None:
    engine = apiv2_engine(identity, pay_bank_public_key=identity.pay_bank_public_pem(), plugins=[_RefusingCipher()])
    with pytest.raises(ValidationError) as caught:
        engine.pipeline.prepare(PAY_BANK, PAYOUT)
    key_id = engine.pipeline.encryption_keys["pay_bank"].key_id
    assert caught.value.errors == tuple(
        f"the field cipher refused this value (RSA-OAEP-SHA1 under {key_id}) @ $.{name}"
        for name in ("enc_bank_no", "enc_true_name")
    )
    assert caught.value.__context__ is None  # the ValueError's frames (holding the plaintext) do not travel
    engine.close()


class _Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    @hookimpl(wrapper=True)
    def wxpay_encrypt_field(self, key: Any, scheme: str) -> Any:
        ciphertext = yield
        self.seen.append((key.kind, scheme))
        return ciphertext


def test_the_cipher_hook_is_told_the_key_and_scheme(make_engine: Any) -> None:
    recorder = _Recorder()
    engine = make_engine(mode="apiv2", plugins=[recorder])
    engine.call(PAY_BANK, PAYOUT)
    assert recorder.seen == [("pay_bank", "RSA-OAEP-SHA1")] * 2


# -- the plaintext stays out of logs, messages, reprs and tracebacks --------------------------------


def _leaks(engine: Engine, error: BaseException, caplog: Any) -> list[str]:
    text = "\n".join([engine_frames(error), str(error), repr(error), caplog.text, repr(engine)])
    return [secret for secret in (BANK_NO, NAME) if secret in text]


def test_a_failed_pay_bank_call_shows_no_plaintext(make_engine: Any, caplog: Any) -> None:
    engine = make_engine(mode="apiv2")
    engine.emulator.v2.fail_next("NOTENOUGH", "余额不足", endpoint=PAY_BANK)
    with caplog.at_level(logging.DEBUG), pytest.raises(ResultCodeError) as caught:
        engine.call(PAY_BANK, PAYOUT)
    assert caught.value.err_code == "NOTENOUGH"
    assert "sending" in caplog.text  # the DEBUG line was written, without the body's plaintext
    assert _leaks(engine, caught.value, caplog) == []


def test_a_refused_pay_bank_payload_shows_no_plaintext(make_engine: Any, caplog: Any) -> None:
    engine = make_engine(mode="apiv2")
    with caplog.at_level(logging.DEBUG), pytest.raises(ValidationError) as caught:
        engine.call(PAY_BANK, {**PAYOUT, "amount": "lots"})  # a bad field beside the encrypted ones
    assert _leaks(engine, caught.value, caplog) == []
    chained = engine.v2.mmpaysptrans.pay_bank.post
    with caplog.at_level(logging.DEBUG), pytest.raises(ValidationError) as caught:
        chained(xml={**PAYOUT, "enc_true_name": NAME * 30})
    assert _leaks(engine, caught.value, caplog) == []


def test_a_call_without_the_key_shows_no_plaintext(identity: SandboxIdentity, caplog: Any) -> None:
    engine = Engine.sandbox(identity=identity, mode="apiv2", load_entry_points=False, pay_bank_public_key=None)
    with caplog.at_level(logging.DEBUG), pytest.raises(EngineError) as caught:
        engine.call(PAY_BANK, PAYOUT)
    assert _leaks(engine, caught.value, caplog) == []
    engine.close()


class _KmsError(Exception):
    pass


def _kms_encrypt(plaintext: str) -> str:
    raise _KmsError("the KMS is down")


class _KmsCipher:
    """A cipher plugin in front of a KMS: it fails, wrapping the KMS's error (its frames hold the plaintext)."""

    @hookimpl(tryfirst=True)
    def wxpay_encrypt_field(self, plaintext: str, key: Any, scheme: str) -> str:
        try:
            return _kms_encrypt(plaintext)
        except _KmsError as exc:
            raise ConfigurationError("the KMS could not encrypt a field") from exc


class _BuggyCipher:
    """A cipher plugin with a bug: a raw AttributeError from inside the walk of the payload."""

    @hookimpl(tryfirst=True)
    def wxpay_encrypt_field(self, plaintext: str, key: Any, scheme: str) -> str:
        return plaintext.encrypt()  # type: ignore[attr-defined,no-any-return]


@pytest.mark.parametrize(("plugin", "raised"), [(_KmsCipher, ConfigurationError), (_BuggyCipher, AttributeError)])
def test_a_failing_cipher_plugin_leaves_no_plaintext_in_any_frame_and_the_whole_traceback(
    identity: SandboxIdentity, plugin: Any, raised: type
) -> None:
    """Neither a typed error with a cause nor a plugin's own bug may carry the plaintext in a frame's
    locals, the plugin's frames included; the traceback still names the plugin's frame and line."""
    engine = apiv2_engine(identity, pay_bank_public_key=identity.pay_bank_public_pem(), plugins=[plugin()])
    with pytest.raises(raised) as caught:
        engine.call(PAY_BANK, PAYOUT)
    frames = engine_frames(caught.value, (*OWN, Path(__file__).resolve()))
    assert BANK_NO not in frames and NAME not in frames
    chain = [caught.value, caught.value.__cause__]
    names = [f.name for error in chain if error is not None for f in traceback.extract_tb(error.__traceback__)]
    assert "wxpay_encrypt_field" in names and "_prepare" in names
    engine.close()


def test_the_old_frames_did_hold_the_plaintext(make_engine: Any) -> None:
    """The frames searched above are the engine's own: without the box they do show the payload."""
    engine = make_engine(mode="apiv2")
    with pytest.raises(ValidationError) as caught:
        engine.pipeline._prepare(PAY_BANK, {**PAYOUT, "amount": "lots"}, None)
    assert BANK_NO in engine_frames(caught.value)


# -- the sandbox ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["apiv2", "public_key", "certificate", "both"])
def test_a_sandbox_pay_bank_call_works_end_to_end(identity: SandboxIdentity, mode: str) -> None:
    with Engine.sandbox(identity=identity, mode=mode, load_entry_points=False) as engine:
        paid = engine.call(PAY_BANK, PAYOUT)
        assert paid.data["result_code"] == "SUCCESS" and paid.data["payment_no"]
        assert paid.data["partner_trade_no"] == PAYOUT["partner_trade_no"]
        sent = engine.emulator.last.request.fields
        assert identity.pay_bank_key is not None
        assert decrypt(identity.pay_bank_key, sent["enc_bank_no"]) == BANK_NO
        assert BANK_NO not in repr(engine.emulator.last)


def test_getpublickey_serves_the_sandbox_key_as_pkcs1(make_engine: Any, identity: SandboxIdentity) -> None:
    engine = make_engine(mode="apiv2")
    answer = engine.call("v2.risk.getpublickey.post", {})
    pem = answer.data["pub_key"]
    assert pem.startswith("-----BEGIN RSA PUBLIC KEY-----\n") and pem.encode() == identity.pay_bank_public_pem()
    assert answer.verified_with is None  # getpublickey's answers are unsigned (signed_answer: false)
    fetched = make_engine(mode="apiv2", pay_bank_public_key=pem)  # the key as a merchant would store it
    assert fetched.call(PAY_BANK, PAYOUT).data["result_code"] == "SUCCESS"


def test_the_sandbox_refuses_fields_it_cannot_decrypt(make_engine: Any, bank_key: rsa.RSAPrivateKey) -> None:
    engine = make_engine(mode="apiv2", pay_bank_public_key=pkcs1(bank_key))  # not the sandbox's key
    with pytest.raises(ResultCodeError) as caught:
        engine.call(PAY_BANK, PAYOUT)
    assert caught.value.err_code == "PARAM_ERROR"
    assert "解密失败" in caught.value.err_code_des and "$.enc_bank_no" in caught.value.err_code_des


def test_the_sandbox_holds_the_ciphertext_to_its_documented_length(identity: SandboxIdentity) -> None:
    from engine.v2 import signing, xmlcodec
    from engine.wire import Headers, Request

    sandbox_engine = Engine.sandbox(identity=identity, mode="apiv2", load_entry_points=False)
    fields = {
        "mch_id": identity.mchid, "partner_trade_no": "T-1", "nonce_str": "N" * 16, "bank_code": "1001",
        "amount": "1", "enc_bank_no": "A" * 388, "enc_true_name": "B" * 12,
    }  # fmt: skip
    fields["sign"] = signing.sign(fields, identity.apiv2_key, signing.MD5)
    request = Request("POST", "sandbox://", "/mmpaysptrans/pay_bank", Headers({}), xmlcodec.encode(fields))
    answer = xmlcodec.parse(sandbox_engine.emulator.handle(request).body)
    assert (answer["result_code"], answer["err_code"]) == ("FAIL", "PARAM_ERROR")
    assert "ciphertext length 388 is over the maximum 384 @ $.enc_bank_no" in answer["err_code_des"]
    sandbox_engine.close()


def test_a_state_dir_keeps_the_pay_bank_key_and_an_old_one_gets_one(tmp_path: Path) -> None:
    identity = state.load_or_create(tmp_path / "new")
    again = state.load(tmp_path / "new")
    assert again.pay_bank_public_pem() == identity.pay_bank_public_pem()
    settings = state.engine_settings(tmp_path / "new")
    assert Path(settings["pay_bank_public_key"]).read_bytes() == identity.pay_bank_public_pem()
    old = tmp_path / "old"
    state.save(identity, old)
    (old / "pay_bank_private_key.pem").unlink()  # as a state dir written before pay_bank encryption
    completed = state.load(old)
    assert completed.pay_bank_key is not None and (old / "pay_bank_private_key.pem").exists()


def test_the_environment_gives_the_pay_bank_key() -> None:
    settings = read_environment({"WECHATPAY_PAY_BANK_PUBLIC_KEY": "/etc/wechatpay/pay_bank.pem"})
    assert settings == {"pay_bank_public_key": "/etc/wechatpay/pay_bank.pem"}


# -- the Stubber ----------------------------------------------------------------------------------------

PAY_BANK_ANSWER = {
    "mch_id": "1900000109",
    "partner_trade_no": PAYOUT["partner_trade_no"],
    "amount": 100000,
    "payment_no": "10000600500852017030900000020006012",
    "cmms_amt": 0,
}


def test_the_stubber_compares_pay_bank_fields_as_plaintext(make_engine: Any) -> None:
    engine = make_engine(mode="apiv2")
    with Stubber(engine) as stub:
        stub.add_response(PAY_BANK, PAY_BANK_ANSWER, expected_payload=PAYOUT)
        paid = engine.call(PAY_BANK, PAYOUT)
        stub.add_response(PAY_BANK, PAY_BANK_ANSWER, expected_payload={**PAYOUT, "enc_true_name": "李四"})
        with pytest.raises(StubAssertionError) as caught:
            engine.call(PAY_BANK, PAYOUT)
    assert paid.data["payment_no"] == PAY_BANK_ANSWER["payment_no"] and paid.verified_with
    assert "@ $.enc_true_name" in str(caught.value)
    assert NAME not in str(caught.value) and "李四" not in str(caught.value)  # encrypted values are never shown
    assert engine.emulator.exchanges == []


def test_an_engine_built_by_hand_has_no_pay_bank_key_unless_given(identity: SandboxIdentity) -> None:
    engine = apiv2_engine(identity, pay_bank_public_key=None)
    assert engine.pipeline.encryption_keys == {}
    engine.close()


def test_a_pay_bank_request_names_no_keyring_key_it_was_not_encrypted_with(make_engine: Any) -> None:
    """Wechatpay-Serial names the key that encrypted the fields: an engine with APIv3 keys too sends
    none with pay_bank (its fields are under the pay_bank key), and still sends it with APIv3 calls."""
    engine = make_engine(mode="public_key")  # APIv3 and APIv2 settings, the WeChat Pay public key in its keyring
    # the prepared request, which signing plugins are handed (the built-in APIv2 signer sends its own headers)
    assert "Wechatpay-Serial" not in engine.pipeline.prepare(PAY_BANK, PAYOUT).request.headers
    engine.call("combine_papay.mini_program", COMBINE_PAPAY)
    assert engine.emulator.last.request.headers["Wechatpay-Serial"] == engine.emulator.identity.platform_public_key_id


def test_the_inspector_lists_apiv2_calls_with_their_verification_and_no_plaintext(identity: SandboxIdentity) -> None:
    """APIv2 exchanges were recorded but never reported to the observers: the inspector did not list them."""
    from engine.sandbox.inspector import Inspector

    with Engine.sandbox(identity=identity, mode="apiv2", load_entry_points=False) as engine:
        inspector = Inspector(engine.emulator)
        engine.call(PAY_BANK, PAYOUT)
        wrong_key = {**identity.apiv2_settings(), "apiv2_key": "k" * 32, "load_entry_points": False}
        wrong_key["base_url"] = engine.pipeline.settings.base_url  # the same in-process sandbox
        with Engine(**wrong_key, plugins=[*engine.plugin_manager.get_plugins()]) as forger, pytest.raises(EngineError):
            forger.call(PAY_BANK, PAYOUT)
        shown = inspector.snapshot()["exchanges"]
    assert [(entry["endpoint"], entry["verification"]) for entry in shown] == [
        (PAY_BANK, "verified"),
        (PAY_BANK, "not checked: 签名错误"),
    ]
    text = json.dumps(shown, ensure_ascii=False)
    assert BANK_NO not in text and NAME not in text


def test_the_inspector_shows_a_pay_bank_request_field_by_field_with_nothing_secret(identity: SandboxIdentity) -> None:
    """An APIv2 body on the inspector page: its fields one a line, the bank card number and name as the
    head of their ciphertext and the plaintext's length, the sign hidden; not a size alone."""
    from engine.sandbox.inspector import exchange_view

    with Engine.sandbox(identity=identity, mode="apiv2", load_entry_points=False) as engine:
        engine.call(PAY_BANK, PAYOUT)
        exchange = engine.emulator.last
        view = exchange_view(engine.emulator, exchange, "verified")
    sent, answered = view["request_body"], view["answer_body"]
    assert sent.startswith("<xml>\n") and " <partner_trade_no>1212121221227</partner_trade_no>" in sent
    assert " <bank_code>1001</bank_code>" in sent and "characters of ciphertext)</enc_bank_no>" in sent
    assert exchange.request.fields is not None and exchange.request.fields["sign"] not in sent
    assert " <sign>hidden (a signature of 32 characters)</sign>" in sent
    assert BANK_NO not in sent and NAME not in sent and identity.apiv2_key.decode() not in sent
    masked = {entry["path"]: entry["decrypted"] for entry in view["encrypted"]}
    assert masked == {"$.enc_bank_no": "masked (19 characters)", "$.enc_true_name": "masked (3 characters)"}
    assert " <result_code>SUCCESS</result_code>" in answered and "<sign>hidden (a signature of " in answered


def test_the_inspector_shows_an_xml_body_it_cannot_read_by_its_size() -> None:
    from engine.sandbox.inspector import _wire_body

    hostile = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><xml><a>&a;</a></xml>'
    assert _wire_body(hostile, "text/xml", {}) == (f"<{len(hostile)} bytes of text/xml>", [])
    nested = b"<xml><a><b>1</b></a></xml>"
    assert _wire_body(nested, "", {}) == (f"<{len(nested)} bytes of unknown type>", [])
