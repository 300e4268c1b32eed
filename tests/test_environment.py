"""Engine.from_env and the CLI read the WECHATPAY_* variables through one reader (engine.environment)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from engine import ConfigurationError, Engine
from engine.cli import main
from engine.environment import ENVIRONMENT, missing, read_environment, read_sources, values
from engine.sandbox import SandboxIdentity, state
from engine.secret import Secret, reveal


@pytest.fixture
def environ(identity: SandboxIdentity, tmp_path: Path) -> dict[str, str]:
    """Every variable, as files on disk would give them (a served sandbox's state)."""
    state.save(identity, tmp_path, "http://127.0.0.1:1")  # the key files, as a served sandbox keeps them
    settings = state.engine_settings(tmp_path)
    return {
        "WECHATPAY_MCHID": settings["mchid"],
        "WECHATPAY_SERIAL_NO": settings["serial_no"],
        "WECHATPAY_PRIVATE_KEY": str(settings["private_key"]),
        "WECHATPAY_PUBLIC_KEY": str(settings["platform_public_key"]),
        "WECHATPAY_PUBLIC_KEY_ID": settings["platform_public_key_id"],
        "WECHATPAY_PLATFORM_CERTIFICATES": os.pathsep.join(map(str, settings["platform_certificates"])),
        "WECHATPAY_APIV3_KEY": settings["apiv3_key"],
        "WECHATPAY_BASE_URL": "https://proxy.example/",
    }


def opened(settings: dict[str, Any]) -> dict[str, Any]:
    """Settings with the boxed keys opened (a ``Secret`` equals only itself)."""
    return {name: reveal(value) for name, value in settings.items()}


def test_every_variable_becomes_its_setting(environ: dict[str, str]) -> None:
    settings = read_environment(environ)
    assert set(settings) == {name for name, variable in ENVIRONMENT.items() if variable in environ}
    for name in ("private_key", "apiv3_key"):  # key material is boxed as it is read
        assert isinstance(settings[name], Secret) and reveal(settings[name]) == environ[ENVIRONMENT[name]]
    assert isinstance(settings["platform_certificates"], list) and settings["platform_certificates"]
    assert read_environment({**environ, "WECHATPAY_BASE_URL": ""}).get("base_url") is None  # empty = unset


def test_from_env_builds_an_engine(environ: dict[str, str]) -> None:
    with Engine.from_env(environ=environ, load_entry_points=False) as engine:
        assert engine.credentials.mchid == environ["WECHATPAY_MCHID"]
        assert environ["WECHATPAY_PUBLIC_KEY_ID"] in engine.keyring.ids()
        assert engine.pipeline.settings.base_url == "https://proxy.example"


def test_options_win_over_the_environment(environ: dict[str, str]) -> None:
    with Engine.from_env(environ=environ, base_url="https://other.example", load_entry_points=False) as engine:
        assert engine.pipeline.settings.base_url == "https://other.example"


def test_from_env_reads_os_environ_by_default(environ: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    for variable, value in environ.items():
        monkeypatch.setenv(variable, value)
    with Engine.from_env(load_entry_points=False) as engine:
        assert engine.credentials.serial_no == environ["WECHATPAY_SERIAL_NO"]


def test_a_missing_variable_is_named(environ: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError, match="set WECHATPAY_SERIAL_NO in the environment"):
        Engine.from_env(environ={k: v for k, v in environ.items() if k != "WECHATPAY_SERIAL_NO"})
    assert missing({"mchid": "1", "serial_no": "2", "signer": object()}) == []


def test_the_cli_uses_the_same_reader(environ: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    for variable in ENVIRONMENT.values():
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("WECHATPAY_MCHID", environ["WECHATPAY_MCHID"])
    assert main(["call", "combine_papay.mini_program", "--data", "{}"]) == 2
    assert capsys.readouterr().err == (
        "error: missing credentials: set WECHATPAY_SERIAL_NO, WECHATPAY_PRIVATE_KEY (or the matching flags), "
        "or use --sandbox\n"
    )


def test_each_setting_keeps_the_variable_it_came_from(environ: dict[str, str]) -> None:
    sourced = read_sources(environ)
    assert opened(values(sourced)) == opened(read_environment(environ))
    assert {name: source for name, (_, source) in sourced.items()} == {
        name: variable for name, variable in ENVIRONMENT.items() if variable in environ
    }


def test_doctor_reads_the_same_settings_as_call(environ: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.cli import _raw_settings, build_parser

    for variable in ENVIRONMENT.values():
        monkeypatch.delenv(variable, raising=False)
    for variable, value in environ.items():
        monkeypatch.setenv(variable, value)
    settings = _raw_settings(build_parser().parse_args(["doctor", "--mchid", "1900000109", "--base-url", "http://x"]))
    assert settings["mchid"] == ("1900000109", "--mchid")  # a flag wins, and is named as the source
    assert settings["base_url"] == ("http://x", "--base-url")
    assert settings["platform_certificates"][1] == "WECHATPAY_PLATFORM_CERTIFICATES"
    assert opened(values(settings)) == opened({**read_environment(), "mchid": "1900000109", "base_url": "http://x"})


# -- empty values: an empty variable is unset; an empty keyword or flag is a mistake ------------------


def test_an_empty_variable_counts_as_unset(environ: dict[str, str], identity: SandboxIdentity, tmp_path: Path) -> None:
    from engine.environment import CLIENT_KEY

    for name, variable in ENVIRONMENT.items():
        assert set(read_sources({**environ, variable: ""})) == set(read_sources(environ)) - {name}
    cert = tmp_path / "apiclient_cert.pem"
    cert.write_bytes(identity.merchant_certificate_pem())
    apiv2 = {"WECHATPAY_MCHID": identity.mchid, "WECHATPAY_APIV2_KEY": identity.apiv2_key.decode()}
    with pytest.raises(ConfigurationError) as caught:  # as if WECHATPAY_CLIENT_KEY were not set at all
        Engine.from_env(environ={**apiv2, "WECHATPAY_CLIENT_CERTIFICATE": str(cert), CLIENT_KEY: ""})
    assert str(caught.value) == f"WECHATPAY_CLIENT_CERTIFICATE needs its key: set {CLIENT_KEY} (apiclient_key.pem)"
    with Engine.from_env(  # an empty WECHATPAY_CLIENT_KEY falls back to the private key, as an unset one does
        environ={**environ, "WECHATPAY_CLIENT_CERTIFICATE": str(cert), CLIENT_KEY: ""}, load_entry_points=False
    ) as engine:
        assert engine.pipeline.settings.client_certificate is not None


EMPTY_KEYWORDS: dict[str, list[Any]] = {
    **{name: [""] for name in ENVIRONMENT},
    "platform_certificates": [[""]],
    "client_certificate": ["", ("", "")],
    **{name: ["", b""] for name in ("private_key", "apiv3_key", "apiv2_key")},
}


@pytest.mark.parametrize("name", sorted(ENVIRONMENT))
def test_an_empty_keyword_of_from_env_is_a_mistake_named_before_anything_else(environ, name: str) -> None:
    """Given explicitly, an empty value is not "unset": it would override the variable with nothing."""
    for value in EMPTY_KEYWORDS[name]:
        for source in (environ, {}):  # with the variable set and without it: the same mistake, named the same way
            with pytest.raises(ConfigurationError) as caught:
                Engine.from_env(environ=source, load_entry_points=False, **{name: value})
            assert str(caught.value) == (
                f"empty settings: {name} (give each a value, or leave it out to use {ENVIRONMENT[name]})"
            )


def test_every_empty_keyword_is_named_at_once(environ: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Engine.from_env(environ=environ, apiv2_key="", base_url="", client_certificate="")
    assert str(caught.value) == (
        "empty settings: apiv2_key, client_certificate, base_url (give each a value, or leave it out to use "
        "WECHATPAY_APIV2_KEY, WECHATPAY_CLIENT_CERTIFICATE, WECHATPAY_BASE_URL)"
    )
    assert environ["WECHATPAY_BASE_URL"] not in str(caught.value)


CONSTRUCTOR_EMPTY: dict[str, list[Any]] = {
    **EMPTY_KEYWORDS,
    **{name: ["", b""] for name in ("private_key", "apiv3_key", "apiv2_key", "base_url", "mchid", "serial_no")},
    **{name: ["", b""] for name in ("appid", "store", "notification_store", "proxy", "platform_public_key_id")},
}


@pytest.mark.parametrize("name", sorted(CONSTRUCTOR_EMPTY))
def test_an_empty_setting_of_the_constructor_is_refused_by_the_same_check(identity, name: str) -> None:
    """Engine(private_key="") was judged as a path ("Is a directory"), Engine(base_url="") and
    Engine(store="") were accepted; each is now the one refusal from_env and the CLI give, naming no variable."""
    from engine.environment import EMPTY_REFUSED

    assert name in EMPTY_REFUSED  # one list: what the constructor refuses is what from_env and the CLI refuse
    settings = identity.engine_settings("both")
    for value in CONSTRUCTOR_EMPTY[name]:
        with pytest.raises(ConfigurationError) as caught:
            Engine(**{**settings, name: value}, load_entry_points=False)
        assert str(caught.value) == f"empty settings: {name} (give each a value, or leave out the optional ones)"
        shown = str(caught.value) + repr(caught.value)
        for secret in (settings["apiv3_key"], settings["apiv2_key"], settings["serial_no"]):  # nothing else echoed
            assert str(reveal(secret)) not in shown
    if name == "base_url":  # Engine.sandbox sets base_url itself
        return
    with pytest.raises(ConfigurationError) as caught:  # Engine.sandbox's options reach the same check
        Engine.sandbox(load_entry_points=False, **{name: CONSTRUCTOR_EMPTY[name][0]})
    assert str(caught.value).startswith(f"empty settings: {name} (")


def test_every_empty_setting_of_the_constructor_is_named_at_once(identity) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Engine(**{**identity.engine_settings(), "private_key": "", "base_url": b"", "store": ""})
    assert str(caught.value) == (
        "empty settings: private_key, base_url, store (give each a value, or leave out the optional ones)"
    )


def test_from_env_refuses_an_empty_constructor_only_setting_without_naming_a_variable(environ) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Engine.from_env(environ=environ, store="", load_entry_points=False)
    assert str(caught.value) == "empty settings: store (give each a value, or leave out the optional ones)"


FLAG_VARIABLES = {
    "--mchid": "WECHATPAY_MCHID",
    "--serial-no": "WECHATPAY_SERIAL_NO",
    "--private-key": "WECHATPAY_PRIVATE_KEY",
    "--public-key": "WECHATPAY_PUBLIC_KEY",
    "--platform-certificate": "WECHATPAY_PLATFORM_CERTIFICATES",
    "--base-url": "WECHATPAY_BASE_URL",
}


@pytest.mark.parametrize("flag", sorted(FLAG_VARIABLES))
def test_an_empty_flag_is_a_mistake_not_a_fall_back_to_the_environment(environ, flag: str, monkeypatch, capsys) -> None:
    for variable, value in environ.items():
        monkeypatch.setenv(variable, value)
    assert main(["call", "combine_papay.mini_program", "--data", "{}", flag, ""]) == 2
    assert capsys.readouterr().err == (
        f"error: empty flags: {flag} (give each a value, or leave it out to use {FLAG_VARIABLES[flag]})\n"
    )
