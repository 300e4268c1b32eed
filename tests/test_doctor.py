"""``wechatpay doctor``: one line per check, a summary, exit 0 only when nothing failed."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Iterator

import pytest

from engine.cli import main
from engine.keys import certificate_pem, private_pem
from engine.sandbox import Sandbox, SandboxIdentity, state
from engine.sandbox.identity import self_signed_certificate
from engine.sandbox.server import ServerThread

VARIABLES = {
    "mchid": "WECHATPAY_MCHID",
    "merchant_serial_no": "WECHATPAY_SERIAL_NO",
    "merchant_private_key_path": "WECHATPAY_PRIVATE_KEY",
    "platform_public_key_path": "WECHATPAY_PUBLIC_KEY",
    "platform_public_key_id": "WECHATPAY_PUBLIC_KEY_ID",
    "apiv3_key": "WECHATPAY_APIV3_KEY",
    "base_url": "WECHATPAY_BASE_URL",
}


@pytest.fixture
def served(identity: SandboxIdentity, tmp_path: Path) -> Iterator[Path]:
    with ServerThread(Sandbox(identity)) as server:
        state.save(identity, tmp_path, server.base_url)
        yield tmp_path


@pytest.fixture
def environment(served: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The served sandbox's settings as WECHATPAY_* variables, as a merchant would set them."""
    import json

    manifest = json.loads((served / "sandbox.json").read_text())
    for variable in (*VARIABLES.values(), "WECHATPAY_PLATFORM_CERTIFICATES", "WECHATPAY_MERCHANT_CERTIFICATE"):
        monkeypatch.delenv(variable, raising=False)
    values = {variable: str(manifest[name]) for name, variable in VARIABLES.items()}
    for variable, value in values.items():
        monkeypatch.setenv(variable, value)
    return values


def doctor(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str]]:
    status = main(["doctor", *args])
    return status, capsys.readouterr().out.splitlines()


def failures(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("FAIL")]


def test_doctor_passes_against_the_sandbox(served: Path, capsys) -> None:
    status, lines = doctor(capsys, "--sandbox-state", str(served), "--live")
    assert status == 0, lines
    assert failures(lines) == [] and lines[-1].startswith("doctor: ") and " 0 failed" in lines[-1]
    assert any(line.startswith("ok    signed round trip: POST /v3/security/echo") for line in lines)
    assert any(line.startswith("ok    clock:") for line in lines)


def test_doctor_passes_with_the_variables_call_reads(environment: dict, capsys) -> None:
    status, lines = doctor(capsys, "--live")
    assert status == 0, lines
    assert "ok    private_key: given (WECHATPAY_PRIVATE_KEY)" in lines
    assert environment["WECHATPAY_APIV3_KEY"] not in "\n".join(lines)  # never a secret in a line


def test_a_mismatched_key_pair_is_one_line_naming_the_setting(environment: dict, tmp_path: Path, capsys) -> None:
    stranger = SandboxIdentity.generate()
    certificate = self_signed_certificate(stranger.merchant_key, "merchant", dt.datetime.now(dt.UTC))
    (tmp_path / "apiclient_cert.pem").write_bytes(certificate_pem(certificate))
    serial = f"{certificate.serial_number:X}"
    status, lines = doctor(
        capsys, "--merchant-certificate", str(tmp_path / "apiclient_cert.pem"), "--serial-no", serial
    )
    (line,) = failures(lines)
    assert status == 1
    assert line == (
        "FAIL  merchant key pair: WECHATPAY_PRIVATE_KEY does not match the certificate in --merchant-certificate "
        f"(serial {serial})"
    )


def test_a_key_wechatpay_refuses_fails_the_round_trip_naming_the_key(environment: dict, tmp_path, monkeypatch, capsys):
    (tmp_path / "other_key.pem").write_bytes(private_pem(SandboxIdentity.generate().merchant_key))
    monkeypatch.setenv("WECHATPAY_PRIVATE_KEY", str(tmp_path / "other_key.pem"))
    status, lines = doctor(capsys, "--live")
    (line,) = failures(lines)
    assert status == 1 and line.startswith("FAIL  signed round trip: WeChat Pay answered 401 SIGN_ERROR")
    assert "WECHATPAY_PRIVATE_KEY is not the key of WECHATPAY_SERIAL_NO for WECHATPAY_MCHID" in line


def test_missing_and_wrong_settings_each_name_their_variable(environment: dict, monkeypatch, capsys) -> None:
    monkeypatch.delenv("WECHATPAY_MCHID")
    monkeypatch.setenv("WECHATPAY_PUBLIC_KEY_ID", "PUB_KEY_ID_abc")
    monkeypatch.setenv("WECHATPAY_APIV3_KEY", "too-short")
    monkeypatch.setenv("WECHATPAY_PUBLIC_KEY", environment["WECHATPAY_PRIVATE_KEY"].replace("private", "public"))
    monkeypatch.setenv("WECHATPAY_BASE_URL", "http://127.0.0.1:9")
    status, lines = doctor(capsys, "--live")
    assert status == 1
    assert failures(lines) == [
        "FAIL  mchid: missing: set --mchid or WECHATPAY_MCHID",
        "FAIL  public key id: WECHATPAY_PUBLIC_KEY_ID: expected PUB_KEY_ID_ followed by digits",
        "FAIL  WeChat Pay public key: WECHATPAY_PUBLIC_KEY is the merchant's own public key, not WeChat Pay's "
        "(download it from the merchant platform)",
        "FAIL  APIv3 key: WECHATPAY_APIV3_KEY is 9 bytes; it must be 32",
        failures(lines)[4],
    ]
    assert failures(lines)[4].startswith("FAIL  base URL: http://127.0.0.1:9 (WECHATPAY_BASE_URL) is not reachable")
    assert "skip  signed round trip: not attempted: fix the failures above first" in lines


def test_the_pay_bank_key_is_checked_when_set(served: Path, capsys) -> None:
    status, lines = doctor(capsys, "--sandbox-state", str(served))
    (line,) = [line for line in lines if "pay_bank key" in line]
    assert status == 0 and line.startswith("ok    pay_bank key: RSA 2048-bit, PAY_BANK_")
    assert line.endswith(f"(--sandbox-state {served})")


@pytest.mark.parametrize(
    ("key_of", "expected"),
    [
        ("platform_public_key_path", "is the APIv3 WeChat Pay public key, not the key risk/getpublickey answers"),
        ("merchant_private_key_path", "is the merchant's own public key, not the key risk/getpublickey answers"),
        ("small", "RSA key of 1024 bits"),
        ("big", "RSA key of 3072 bits; the pay_bank key is RSA 2048"),
        ("junk", "not a PEM public key"),
    ],
)
def test_a_mistaken_pay_bank_key_is_one_line_naming_the_variable(
    environment: dict, served: Path, tmp_path: Path, monkeypatch, capsys, key_of: str, expected: str
) -> None:
    import json

    from cryptography.hazmat.primitives.asymmetric import rsa

    from engine.keys import public_pem

    manifest = json.loads((served / "sandbox.json").read_text())
    if key_of in ("small", "big"):
        path = tmp_path / f"{key_of}.pem"
        size = 1024 if key_of == "small" else 3072
        path.write_bytes(public_pem(rsa.generate_private_key(public_exponent=65537, key_size=size)))
    elif key_of == "junk":
        path = tmp_path / "junk.pem"
        path.write_text("-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n")
    elif key_of == "merchant_private_key_path":
        path = tmp_path / "merchant_public.pem"
        path.write_bytes(public_pem(state.load(served).merchant_key))
    else:
        path = Path(manifest[key_of])
    monkeypatch.setenv("WECHATPAY_PAY_BANK_PUBLIC_KEY", str(path))
    status, lines = doctor(capsys)
    (line,) = failures(lines)
    assert status == 1 and line.startswith("FAIL  pay_bank key: ")
    assert "WECHATPAY_PAY_BANK_PUBLIC_KEY" in line and expected in line


def test_a_base_url_with_a_password_or_a_bad_port_is_one_line_without_the_password(capsys) -> None:
    """A gateway's credentials in the base URL are masked; a port that is not a number is a FAIL line,
    not http.client's traceback."""
    from engine.doctor import _base_url

    settings = {"base_url": ("http://gw:hunter2-gateway@127.0.0.1:9", "--base-url")}
    (check,) = _base_url(settings, 2.0, time.time)
    assert check.status == "FAIL" and check.detail.startswith("'http://gw:***@127.0.0.1:9' (--base-url): ")
    assert "user:password@" in check.detail and "hunter2" not in check.detail
    (check,) = _base_url({"base_url": ("http://127.0.0.1:abc", "--base-url")}, 2.0, time.time)
    assert (check.status, check.detail) == ("FAIL", "'<unparseable URL>' (--base-url): not a URL")
    (check,) = _base_url({"base_url": ("http://127.0.0.1:9", "--base-url")}, 2.0, time.time)  # nothing listens
    assert check.status == "FAIL" and "is not reachable" in check.detail


def test_settings_put_in_the_wrong_variable_are_named_not_printed(environment: dict, monkeypatch, capsys) -> None:
    """The doctor printed mchid and serial_no as given, and a base URL refused as not a URL: the APIv3
    key swapped into WECHATPAY_SERIAL_NO, or a PEM pasted into WECHATPAY_BASE_URL, went to the terminal."""
    apiv3_key = environment["WECHATPAY_APIV3_KEY"]
    pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0B\n-----END PRIVATE KEY-----"
    monkeypatch.setenv("WECHATPAY_SERIAL_NO", apiv3_key)
    monkeypatch.setenv("WECHATPAY_MCHID", "http://gw:hunter2@127.0.0.1:9")
    monkeypatch.setenv("WECHATPAY_BASE_URL", pem)
    status, lines = doctor(capsys)
    text = "\n".join(lines)
    assert status == 1
    for secret in (apiv3_key, "hunter2", "MIIEvQIBADANBgkqhkiG9w0B"):
        assert secret not in text
    assert "ok    mchid: given (WECHATPAY_MCHID)" in lines and "ok    serial_no: given (WECHATPAY_SERIAL_NO)" in lines
    assert "FAIL  mchid format: not a merchant id (digits): WECHATPAY_MCHID" in lines
    assert "FAIL  serial_no format: not a certificate serial (hex digits): WECHATPAY_SERIAL_NO" in lines
    assert any(line.startswith("FAIL  base URL: '<not a URL, not shown>' (WECHATPAY_BASE_URL): ") for line in lines)
    monkeypatch.setenv("WECHATPAY_MCHID", "1900000109")
    _, lines = doctor(capsys)
    assert "ok    mchid: 1900000109 (WECHATPAY_MCHID)" in lines  # a merchant id of its own form is shown


def test_an_apiv3_key_that_is_not_utf8_is_a_fail_line(environment: dict, monkeypatch, capsys) -> None:
    """A variable holding a byte that is not UTF-8 reaches os.environ as a lone surrogate ('\\udcff'),
    and the doctor's size check encoded it unguarded: a UnicodeEncodeError traceback, not a FAIL line."""
    monkeypatch.setenv("WECHATPAY_APIV3_KEY", "\udcff" + "a" * 31)
    status, lines = doctor(capsys)
    assert status == 1
    assert (
        "FAIL  APIv3 key: WECHATPAY_APIV3_KEY is not UTF-8 text (a byte that is not UTF-8); it must be 32 bytes"
        in lines
    )
