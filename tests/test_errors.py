"""The exception tree and configuration errors: each says what to fix and leaks no secret."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import COMBINE_PAPAY
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

import engine as package
from engine import (
    ApiError,
    ConfigurationError,
    CredentialError,
    DescriptorError,
    Engine,
    EngineError,
    MalformedResponseError,
    SignatureError,
    TransportError,
    TransportTimeoutError,
    UnknownEndpointError,
    UsageError,
    ValidationError,
)


def test_tree_shape() -> None:
    for usage in (UnknownEndpointError, DescriptorError, ValidationError, ConfigurationError):
        assert issubclass(usage, UsageError)
    assert issubclass(CredentialError, ConfigurationError)
    assert issubclass(TransportTimeoutError, TransportError)
    for root_child in (UsageError, TransportError, ApiError, SignatureError, MalformedResponseError):
        assert root_child.__bases__ == (EngineError,)


def test_every_error_class_is_documented_in_the_tree_drawing() -> None:
    from engine import errors

    for name in dir(errors):
        value = getattr(errors, name)
        if isinstance(value, type) and issubclass(value, EngineError):
            assert name in errors.__doc__, name
            assert value.__doc__, name
            assert hasattr(package, name), f"{name} is not exported from engine"


def _settings(identity, **changes):
    return {**identity.engine_settings(), "load_entry_points": False, **changes}


@pytest.mark.parametrize("missing", ["mchid", "serial_no"])
def test_required_identity_settings(identity, missing: str) -> None:
    with pytest.raises(ConfigurationError, match=f"^{missing} is required"):
        Engine(**_settings(identity, **{missing: " "}))


def test_a_verification_key_is_required(identity) -> None:
    settings = _settings(identity)
    del settings["platform_public_key"], settings["platform_public_key_id"], settings["apiv3_key"]
    with pytest.raises(ConfigurationError, match="no WeChat Pay key to verify answers with"):
        Engine(**settings)
    settings["apiv3_key"] = identity.apiv3_key
    assert Engine(**settings).keys.refreshes  # with the APIv3 key alone: certificate mode, downloaded


def test_public_key_needs_its_id(identity) -> None:
    with pytest.raises(ConfigurationError, match="go together"):
        Engine(**_settings(identity, platform_public_key_id=None))
    with pytest.raises(ConfigurationError, match="must start with PUB_KEY_ID_"):
        Engine(**_settings(identity, platform_public_key_id="12345"))


def test_key_files_are_accepted_as_paths(identity, tmp_path: Path) -> None:
    key_file = tmp_path / "apiclient_key.pem"
    key_file.write_bytes(identity.merchant_private_pem())
    public_file = tmp_path / "pub_key.pem"
    public_file.write_bytes(identity.platform_public_pem())
    engine = Engine.sandbox(
        identity=identity, private_key=str(key_file), platform_public_key=public_file, load_entry_points=False
    )
    with engine:
        assert engine.call("combine_papay.mini_program", COMBINE_PAPAY).status == 200


def _pem(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"private_key": "/nonexistent/apiclient_key.pem"},
            "private_key: not PEM and not a readable file (No such file or directory)",
        ),
        (  # key text without its PEM lines: not a path, and never echoed as one
            {"private_key": "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\nAAAA\n"},
            "private_key: not PEM (no -----BEGIN line) and not the path of a file",
        ),
        ({"private_key": "/etc/\0AAAA"}, "private_key: not PEM (no -----BEGIN line) and not the path of a file"),
        ({"private_key": 12345}, "private_key: expected PEM text, PEM bytes or a file path, got int"),
        ({"private_key": None}, "private_key: required"),
        ({"private_key": ec.generate_private_key(ec.SECP256R1())}, "private_key: expected an RSA key, got"),
        ({"platform_public_key": 3.5}, "platform_public_key: expected PEM text, PEM bytes or a file path, got float"),
        ({"apiv3_key": 32}, "apiv3_key: must be 32 bytes of text or bytes, got int"),
        ({"apiv3_key": "\ud800" * 32}, "apiv3_key: not encodable as UTF-8"),
        (
            {"private_key": b"-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n"},
            "private_key: not an unencrypted PEM private key",
        ),
        (
            {"platform_public_key": b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"},
            "platform_public_key: not a PEM public key",
        ),
        (
            {"platform_certificates": [b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"]},
            "platform_certificates[0]: not a PEM certificate",
        ),
        ({"apiv3_key": "too-short"}, "apiv3_key: must be 32 bytes, got 9"),
    ],
)
def test_bad_key_material(identity, change: dict, message: str) -> None:
    with pytest.raises(CredentialError) as caught:
        Engine(**_settings(identity, **change))
    assert str(caught.value).startswith(message)
    assert "AAAA" not in str(caught.value) and "not base64" not in str(caught.value)  # material is never echoed
    assert "MIIE" not in str(caught.value)


def _inconsistent_pem() -> bytes:
    """A PEM RSA key whose private exponents do not belong to its modulus (a corrupted key file)."""
    numbers = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_numbers()
    broken = rsa.RSAPrivateNumbers(
        p=numbers.p,
        q=numbers.q,
        d=numbers.d + 2,
        dmp1=numbers.dmp1 + 2,
        dmq1=numbers.dmq1 + 2,
        iqmp=numbers.iqmp,
        public_numbers=numbers.public_numbers,
    )
    return _pem(broken.private_key(unsafe_skip_rsa_key_validation=True))


def test_an_inconsistent_private_key_is_refused_when_the_engine_is_built(identity, tmp_path: Path) -> None:
    """Parsed without the slow primality check, a key must still prove it signs what its public half verifies."""
    path = tmp_path / "apiclient_key.pem"
    path.write_bytes(_inconsistent_pem())
    for source in (path, path.read_bytes()):
        with pytest.raises(CredentialError) as caught:
            Engine(**_settings(identity, private_key=source))
        assert str(caught.value) == "private_key: the private key is inconsistent (its signature does not verify)"
    Engine(**_settings(identity, private_key=_pem(identity.merchant_key)))  # the sound key, as PEM: accepted


def test_a_key_pasted_into_the_public_key_id_is_not_echoed(identity) -> None:
    pasted = "0123456789abcdef0123456789ABCDEF"  # an APIv3 key in the wrong setting
    with pytest.raises(ConfigurationError) as caught:
        Engine(**_settings(identity, platform_public_key_id=pasted))
    assert str(caught.value) == "platform_public_key_id: must start with PUB_KEY_ID_ (the value given does not)"


def test_garbage_in_certificates_dir_is_reported_per_file(identity, tmp_path) -> None:
    (tmp_path / "A1.pem").write_text("not a certificate")
    (tmp_path / "B2.pem").write_bytes(b"\xff\xfe")
    with pytest.raises(CredentialError) as caught:
        Engine(**_settings(identity, certificates_dir=tmp_path))
    assert str(caught.value).startswith("certificates_dir: unusable file(s): A1.pem: not a PEM certificate")
    assert "B2.pem: not a PEM certificate" in str(caught.value)


def test_wrong_key_kinds_and_sizes(identity) -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(CredentialError, match="RSA key of 1024 bits; WeChat Pay uses 2048"):
        Engine(**_settings(identity, private_key=_pem(small)))
    with pytest.raises(CredentialError, match="expected an RSA key, got"):
        Engine(**_settings(identity, private_key=_pem(ec.generate_private_key(ec.SECP256R1()))))


def test_private_key_given_as_a_key_object(identity) -> None:
    engine = Engine.sandbox(identity=identity, private_key=identity.merchant_key, load_entry_points=False)
    with engine:
        assert engine.call("combine_papay.mini_program", COMBINE_PAPAY).status == 200


def test_encrypted_fields_need_a_platform_key(identity) -> None:
    engine = Engine.sandbox(identity=identity, load_entry_points=False)
    engine.keyring._keys.clear()
    with engine, pytest.raises(ConfigurationError, match="has encrypted fields but the engine holds no WeChat Pay"):
        engine.call(
            "individual_contracts.real_name.mini_program",
            {
                "appid": "a",
                "out_contract_code": "b",
                "openid": "c",
                "real_name": "d",
                "cred_type": "ID_CARD",
                "cred_id": "e",
            },
        )
    assert engine.emulator.exchanges == []


def test_unknown_wechatpay_serial_header_is_refused(engine: Engine) -> None:
    with pytest.raises(ConfigurationError, match="names a key this engine does not hold"):
        engine.call("combine_papay.mini_program", COMBINE_PAPAY, headers={"Wechatpay-Serial": "PUB_KEY_ID_999"})


def test_authorization_cannot_be_passed_in(engine: Engine) -> None:
    with pytest.raises(UsageError, match="the Authorization header is set by the engine"):
        engine.call("combine_papay.mini_program", COMBINE_PAPAY, headers={"authorization": "x"})
    assert engine.emulator.exchanges == []


def test_api_error_carries_the_answer(engine: Engine) -> None:
    with pytest.raises(ApiError) as caught:
        engine.call("POST /v3/not/served", {"a": 1})
    error = caught.value
    assert (error.status, error.code, error.verified) == (404, "RESOURCE_NOT_EXISTS", True)
    assert error.request_id == engine.emulator.last.response.headers["Request-ID"]
    assert error.message == "no such API: POST /v3/not/served"
    assert str(error) == f"WeChat Pay answered 404 RESOURCE_NOT_EXISTS: {error.message} (Request-ID {error.request_id})"


def test_sandbox_requires_accept_and_user_agent(engine: Engine) -> None:
    from engine import Request

    request = Request("POST", "sandbox://wechatpay", "/v3/x", body=b"{}")
    answer = engine.emulator.handle(request)
    assert answer.status == 400 and b"INVALID_REQUEST" in answer.body


def test_unknown_sandbox_mode(identity) -> None:
    with pytest.raises(ConfigurationError, match="mode must be one of public_key, certificate, both"):
        Engine.sandbox(identity=identity, mode="pgp")


# -- every setting of every constructor, given a value of the wrong kind ------------------------------


class _Opaque:
    """An object of no kind any setting takes, whose repr and str a message must not show."""

    def __repr__(self) -> str:
        return "<opaque-7f3a>"


WRONG_VALUES = [
    b"wrong-bytes",
    40321,
    3.25,
    ["wrong-list"],
    [40321],  # a list whose item is of no kind a list setting takes
    {"wrong-key": "wrong-value"},
    _Opaque(),
    True,
    "wrong\0nul",
    "wrong\ud800surrogate",
    "wrong\r\nline-break",
]
# The documented forms among WRONG_VALUES: numbers for durations and counts, True for flags, any mapping
# for defaults and for from_env's environ. Anything not listed here must be refused.
ACCEPTED_FORMS = {
    **dict.fromkeys(("timeout", "connect_timeout", "notification_ttl", "claim_ttl"), (int, float)),
    **dict.fromkeys(("pool_size", "max_answer_bytes"), (int,)),
    **dict.fromkeys(("trust_env", "load_entry_points"), (bool,)),
    **dict.fromkeys(("defaults", "environ"), (dict,)),
}


def _keywords(constructor) -> list[str]:
    """The keywords ``constructor`` takes, read from its signature (``**options``: ``Engine``'s)."""
    import inspect

    found: list[str] = []
    for name, parameter in inspect.signature(constructor).parameters.items():
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            found += _keywords(Engine.__init__)
        elif name not in ("self", "cls"):
            found.append(name)
    return list(dict.fromkeys(found))


def _accepted(name: str, value: object) -> bool:
    forms = ACCEPTED_FORMS.get(name, ())
    return isinstance(value, forms) and (bool in forms or not isinstance(value, bool))


def _environment(identity) -> dict[str, str]:
    return {
        "WECHATPAY_MCHID": identity.mchid,
        "WECHATPAY_SERIAL_NO": identity.merchant_serial_no,
        "WECHATPAY_PRIVATE_KEY": identity.merchant_private_pem().decode(),
        "WECHATPAY_PUBLIC_KEY": identity.platform_public_pem().decode(),
        "WECHATPAY_PUBLIC_KEY_ID": identity.platform_public_key_id,
        "WECHATPAY_APIV3_KEY": identity.apiv3_key.decode(),
    }


def _build(constructor: str, identity, name: str, value: object) -> Engine:
    """``constructor`` given working settings, ``name=value`` in place of its own."""
    if constructor == "Engine":
        return Engine(**{**_settings(identity), name: value})
    if constructor == "Engine.sandbox":
        return Engine.sandbox(**{"identity": identity, "load_entry_points": False, name: value})
    return Engine.from_env(**{"environ": _environment(identity), "load_entry_points": False, name: value})


CONSTRUCTORS = {"Engine": Engine.__init__, "Engine.sandbox": Engine.sandbox, "Engine.from_env": Engine.from_env}


@pytest.mark.parametrize("value", WRONG_VALUES, ids=lambda value: type(value).__name__)
@pytest.mark.parametrize(
    ("constructor", "name"),
    [(constructor, name) for constructor, signature in CONSTRUCTORS.items() for name in _keywords(signature)],
)
def test_a_setting_of_the_wrong_kind_is_a_configuration_error_naming_it(identity, constructor, name, value) -> None:
    """Each keyword of each constructor (from its signature: a new setting is covered as it is added), given
    each wrong value: a ConfigurationError naming the setting and showing neither repr nor str of the value
    (it may be a key, or a URL with a password), never a raw TypeError, AttributeError or UnicodeError. A
    documented form (``ACCEPTED_FORMS``) builds an engine, or is refused the same way for its value."""
    try:
        built = _build(constructor, identity, name, value)
    except ConfigurationError as refused:
        message = str(refused)
        assert name in message, message
        assert repr(value) not in message and str(value) not in message, message
        return
    built.close()
    assert _accepted(name, value), f"{constructor}({name}={value!r}) was accepted"


def test_every_engine_setting_declares_its_kind() -> None:
    from engine.kinds import ENGINE_KINDS

    assert set(ENGINE_KINDS) == set(_keywords(Engine.__init__))


def test_the_sandbox_chooses_its_own_base_url(identity) -> None:
    with pytest.raises(ConfigurationError) as caught:  # even a well-formed URL: the sandbox serves no other
        Engine.sandbox(identity=identity, base_url="https://api.mch.weixin.qq.com", load_entry_points=False)
    assert str(caught.value).startswith("base_url must be left out: Engine.sandbox chooses its own base URL")


@pytest.mark.parametrize("setting", ["base_url", "hosts"])
def test_a_server_url_with_credentials_is_refused_without_showing_them(identity, setting) -> None:
    """aiohttp refuses user:password@ beside the Authorization header with a bare ValueError at the
    first call; the engine refuses it where it is given. A proxy URL may carry them (proxy auth)."""
    url = "https://gw:hunter2-gateway@api.mch.weixin.qq.com"
    value = url if setting == "base_url" else {"api": url}
    with pytest.raises(ConfigurationError) as caught:
        Engine(**identity.engine_settings(), load_entry_points=False, **{setting: value})
    assert str(caught.value).startswith(f"{setting} must be ") and "user:password@" in str(caught.value)
    assert "hunter2" not in str(caught.value)
    with Engine(**identity.engine_settings(), load_entry_points=False, proxy="http://u:p@127.0.0.1:9") as engine:
        assert engine is not None


@pytest.mark.parametrize("constructor", [Engine, Engine.sandbox, Engine.from_env])
def test_an_unknown_setting_is_named_with_the_closest_one(identity, constructor) -> None:
    with pytest.raises(ConfigurationError, match=r"takes no setting timout \(did you mean timeout\?\)"):
        constructor(**_settings(identity), timout=5)
