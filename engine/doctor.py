"""``wechatpay doctor``: check a configuration before its first real call, one line per check.

Design decisions:

* The settings are exactly ``wechatpay call``'s (flags or ``WECHATPAY_*`` variables, or
  ``--sandbox-state``), plus an optional merchant certificate (``--merchant-certificate`` or
  ``WECHATPAY_MERCHANT_CERTIFICATE``) to check the key pair against. Each check is a small function
  returning ``Check`` records; a failing check's line names the flag or variable at fault, because
  "signature mismatch" alone sends people looking in the wrong place.
* Offline checks: the required settings are there; the merchant key is an RSA key of 2048 bits or
  more and, when its certificate is given, matches it and its serial is ``serial_no``; the WeChat
  Pay public key and its id (``PUB_KEY_ID_`` + digits) go together and are not the merchant's own
  key; platform certificates are RSA and in their validity period (a warning within 30 days of
  expiry); the APIv3 key is 32 bytes. Then one unsigned request to the base URL: reachable at all
  (any HTTP answer counts), and the clock against the answer's ``Date`` (WeChat Pay refuses
  timestamps more than 5 minutes off).
* ``--live`` adds one signed round trip through ``POST /v3/security/echo``, WeChat Pay's endpoint
  for testing signing, verification and encryption: the request is signed, its
  ``encrypted_echo_message`` encrypted for WeChat Pay, and the verified answer must give both
  messages back (the encrypted one decrypted with the merchant key).
* An APIv2-only configuration (``WECHATPAY_APIV2_KEY`` and no APIv3 merchant setting, as
  ``engine.environment.apiv2_only`` judges it) is checked as one: the merchant id and the APIv2 key
  (32 printable ASCII characters), the APIv3 checks one ``skip`` line, then the base URL and clock.
  ``--live`` is skipped there: the echo endpoint is APIv3's, and APIv2 has no call without effects
  that proves its sign. The APIv2 key is checked whenever it is set.
* The ``pay_bank`` key (``--pay-bank-public-key`` or ``WECHATPAY_PAY_BANK_PUBLIC_KEY``), when set,
  is read by the engine's own reader (PKCS#1 or SPKI PEM, RSA of exactly 2048 bits) and must be
  neither the merchant's own key nor the APIv3 WeChat Pay public key: each is a key people hand
  over by mistake, and encrypting a bank card number for the wrong key fails only at WeChat Pay.
  Its line shows the key's fingerprint (``PAY_BANK_...``), the id the engine logs it by.
* A merchant id or serial is shown only when it has its form (digits; hex digits), and a base URL
  only when it is one (its password masked): text of another form is more likely another setting
  put in the wrong variable (the APIv3 key in ``WECHATPAY_SERIAL_NO``, a PEM in
  ``WECHATPAY_BASE_URL``) than a typo, and is named by its flag or variable, not printed.
* Exit 0 when nothing failed (warnings and skips do not fail), 1 otherwise. No line ever carries
  key material, the APIv3 or APIv2 key or a signature.
"""

from __future__ import annotations

import argparse
import datetime as dt
import email.utils
import http.client
import os
import re
import secrets
import sys
import time
import urllib.error
import urllib.request
from typing import Any, Callable, Iterable, Optional
from urllib.parse import urlsplit

import attrs

from engine.environment import Sourced, apiv2_only, values
from engine.errors import ApiError, CredentialError, EngineError, SignatureError, TransportError
from engine.keys import load_certificate, load_private_key, load_public_key, normalize_serial, public_pem
from engine.kinds import ENGINE_KINDS
from engine.secret import reveal
from engine.stores import redacted
from engine.untyped import Untyped

SKEW_LIMIT_SECONDS = 300
SKEW_WARNING_SECONDS = 60
EXPIRY_WARNING_DAYS = 30
ECHO_ENDPOINT = "v3.security.echo.post"
HINTS = {  # where each setting comes from, for the line that names it
    "mchid": "--mchid or WECHATPAY_MCHID",
    "serial_no": "--serial-no or WECHATPAY_SERIAL_NO",
    "private_key": "--private-key or WECHATPAY_PRIVATE_KEY",
    "platform_public_key": "--public-key or WECHATPAY_PUBLIC_KEY",
    "platform_public_key_id": "--public-key-id or WECHATPAY_PUBLIC_KEY_ID",
    "platform_certificates": "--platform-certificate or WECHATPAY_PLATFORM_CERTIFICATES",
    "apiv3_key": "WECHATPAY_APIV3_KEY",
    "apiv2_key": "WECHATPAY_APIV2_KEY",
    "pay_bank_public_key": "--pay-bank-public-key or WECHATPAY_PAY_BANK_PUBLIC_KEY",
    "base_url": "--base-url or WECHATPAY_BASE_URL",
    "merchant_certificate": "--merchant-certificate or WECHATPAY_MERCHANT_CERTIFICATE",
}
FORMS = {"mchid": r"[0-9]{1,32}", "serial_no": r"[0-9A-Fa-f]{8,40}"}  # the settings a line may show as given
Settings = Sourced  # name -> (value, the flag or variable it came from), as engine.cli reads them


@attrs.frozen
class Check:
    name: str
    status: str  # ok | warn | skip | FAIL
    detail: str

    @property
    def line(self) -> str:
        return f"{self.status:<5} {self.name}: {self.detail}"


def add_parser(commands: Any, add_credential_flags: Callable[[argparse.ArgumentParser], None]) -> None:
    doctor = commands.add_parser("doctor", help="check a configuration (keys, serials, clock, base URL)")
    doctor.add_argument("--live", action="store_true", help="also make one signed round trip (POST /v3/security/echo)")
    doctor.add_argument("--merchant-certificate", dest="merchant_certificate", help="apiclient_cert.pem, to check")
    add_credential_flags(doctor)


def run(args: argparse.Namespace, settings: Settings) -> int:
    certificate = args.merchant_certificate or os.environ.get("WECHATPAY_MERCHANT_CERTIFICATE")
    if certificate:
        source = "--merchant-certificate" if args.merchant_certificate else "WECHATPAY_MERCHANT_CERTIFICATE"
        settings = {**settings, "merchant_certificate": (certificate, source)}
    checks = diagnose(settings, live=args.live, timeout=args.timeout, endpoint_dirs=args.endpoint_dir)
    for check in checks:
        print(check.line, flush=True)
    failed = sum(c.status == "FAIL" for c in checks)
    counts = {s: sum(c.status == s for c in checks) for s in ("ok", "warn", "skip")}
    print(
        f"doctor: {len(checks)} checks: {counts['ok'] + counts['warn']} passed ({counts['warn']} with warnings), "
        f"{failed} failed, {counts['skip']} skipped"
    )
    return 1 if failed else 0


def diagnose(
    settings: Settings,
    *,
    live: bool = False,
    timeout: float = 10.0,
    endpoint_dirs: Iterable[str] = (),
    now: Callable[[], float] = time.time,
) -> list[Check]:
    """Every check, in order; a check whose inputs failed is skipped rather than repeated."""
    v2_only = apiv2_only(values(settings))
    checks = _apiv2_only(settings) if v2_only else _apiv3_checks(settings, now())
    checks += [*_apiv2(settings), *_pay_bank(settings), *_base_url(settings, timeout, now)]
    if live and v2_only:
        checks.append(Check("signed round trip", "skip", "APIv2-only: POST /v3/security/echo is an APIv3 call"))
    elif live:
        checks.append(_live(settings, timeout, list(endpoint_dirs), failed=any(c.status == "FAIL" for c in checks)))
    return checks


def _apiv3_checks(settings: Settings, now: float) -> list[Check]:
    return [*_required(settings), *_merchant_key(settings), *_platform_keys(settings, now), *_apiv3(settings)]


def _apiv2_only(settings: Settings) -> list[Check]:
    detail = "not configured (APIv2-only: no serial_no, private key or WeChat Pay key): APIv3 calls are refused"
    return [*_required(settings, ("mchid",)), Check("APIv3", "skip", detail)]


def _apiv2(settings: Settings) -> list[Check]:
    from engine.configuration import parse_apiv2_key  # the engine's own rule, so the two cannot disagree

    if "apiv2_key" not in settings:
        return []
    value, where = settings["apiv2_key"]
    try:
        parse_apiv2_key(value)
    except CredentialError:
        size = len(str(reveal(value)).encode("utf-8", errors="replace"))
        return [Check("APIv2 key", "FAIL", f"{where} is {size} bytes; it must be 32 printable ASCII characters")]
    return [Check("APIv2 key", "ok", f"32 characters ({where})")]


def _pay_bank(settings: Settings) -> list[Check]:
    from engine.keys import pay_bank_key  # the engine's own reader, so the two cannot disagree

    if "pay_bank_public_key" not in settings:
        return []
    where = _source(settings, "pay_bank_public_key")
    try:
        key = pay_bank_key(settings["pay_bank_public_key"][0], where)
    except CredentialError as exc:
        return [Check("pay_bank key", "FAIL", str(exc))]
    mistaken = _mistaken_for(settings, key.public_key)
    if mistaken:
        return [Check("pay_bank key", "FAIL", f"{where} is {mistaken}, not the key risk/getpublickey answers")]
    return [Check("pay_bank key", "ok", f"RSA {key.public_key.key_size}-bit, {key.key_id} ({where})")]


def _mistaken_for(settings: Settings, key: Any) -> str:
    """What else ``key`` is (the merchant's key, the APIv3 WeChat Pay public key), or ``""``."""
    if "private_key" in settings and _is_merchant_key(settings, key):
        return "the merchant's own public key"
    if "platform_public_key" in settings:
        try:
            platform = load_public_key(settings["platform_public_key"][0])
        except CredentialError:
            return ""
        if public_pem(platform) == public_pem(key):
            return "the APIv3 WeChat Pay public key"
    return ""


def _source(settings: Settings, name: str) -> str:
    return settings[name][1] if name in settings else HINTS[name]


def _required(settings: Settings, names: Iterable[str] = ("mchid", "serial_no", "private_key")) -> list[Check]:
    checks = []
    for name in names:
        if name in settings:
            checks.append(Check(name, "ok", f"{_shown(name, settings[name][0])} ({settings[name][1]})"))
        else:
            checks.append(Check(name, "FAIL", f"missing: set {HINTS[name]}"))
    for name, what in (("mchid", "merchant id (digits)"), ("serial_no", "certificate serial (hex digits)")):
        if name in settings and settings[name][0] and _shown(name, settings[name][0]) == "given":
            checks.append(Check(f"{name} format", "FAIL", f"not a {what}: {_source(settings, name)}"))
    return checks


def _shown(name: str, value: Any) -> str:
    """A merchant id or serial as given when it has its form; else ``"given"``: text of another form
    may be another setting put in the wrong variable (the APIv3 key in WECHATPAY_SERIAL_NO)."""
    pattern = FORMS.get(name)
    return str(value) if pattern is not None and re.fullmatch(pattern, str(value)) else "given"


def _merchant_key(settings: Settings) -> list[Check]:
    if "private_key" not in settings:
        return []
    try:
        key = load_private_key(settings["private_key"][0], _source(settings, "private_key"))
    except CredentialError as exc:
        return [Check("merchant private key", "FAIL", str(exc))]
    checks = [Check("merchant private key", "ok", f"RSA {key.key_size}-bit ({_source(settings, 'private_key')})")]
    if "merchant_certificate" not in settings:
        hint = HINTS["merchant_certificate"]
        return [*checks, Check("merchant key pair", "skip", f"no merchant certificate to check it against ({hint})")]
    return [*checks, *_key_pair(settings, key)]


def _key_pair(settings: Settings, key: Any) -> list[Check]:
    where = _source(settings, "merchant_certificate")
    try:
        certificate = load_certificate(settings["merchant_certificate"][0], where)
    except CredentialError as exc:
        return [Check("merchant key pair", "FAIL", str(exc))]
    serial = f"{certificate.serial_number:X}"
    key_source = _source(settings, "private_key")
    if public_pem(certificate.public_key()) != public_pem(key):
        return [
            Check(
                "merchant key pair", "FAIL", f"{key_source} does not match the certificate in {where} (serial {serial})"
            )
        ]
    checks = [Check("merchant key pair", "ok", f"{key_source} matches the certificate in {where}")]
    given = str(settings.get("serial_no", ("", ""))[0])
    if given and normalize_serial(given) != normalize_serial(serial):
        detail = f"{_source(settings, 'serial_no')} is {given}, but the certificate in {where} has serial {serial}"
        checks.append(Check("merchant serial", "FAIL", detail))
    elif given:
        checks.append(Check("merchant serial", "ok", f"{given} is the certificate's serial"))
    return [*checks, _validity("merchant certificate", certificate, where, time.time())]


def _validity(name: str, certificate: Any, where: str, now: float) -> Check:
    moment = dt.datetime.fromtimestamp(now, dt.UTC)
    start, end = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    if moment < start:
        return Check(name, "FAIL", f"{where}: not valid before {start:%Y-%m-%d}")
    if moment > end:
        return Check(name, "FAIL", f"{where}: expired on {end:%Y-%m-%d}")
    days = (end - moment).days
    status = "warn" if days < EXPIRY_WARNING_DAYS else "ok"
    return Check(name, status, f"{where}: valid until {end:%Y-%m-%d} ({days} days)")


def _platform_keys(settings: Settings, now: float) -> list[Check]:
    checks: list[Check] = []
    has_key, has_id = "platform_public_key" in settings, "platform_public_key_id" in settings
    if has_key != has_id:
        missing = "platform_public_key_id" if has_key else "platform_public_key"
        checks.append(
            Check("WeChat Pay public key", "FAIL", f"the public key and its id go together: set {HINTS[missing]}")
        )
    elif has_key:
        checks += _public_key(settings)
    for index, path in enumerate(_certificates(settings)):
        where = f"{_source(settings, 'platform_certificates')}[{index}]"
        try:
            checks.append(_validity("platform certificate", load_certificate(path, where), where, now))
        except CredentialError as exc:
            checks.append(Check("platform certificate", "FAIL", str(exc)))
    if not has_key and not _certificates(settings) and "apiv3_key" not in settings:
        hint = f"{HINTS['platform_public_key']} with its id, {HINTS['platform_certificates']}, or {HINTS['apiv3_key']}"
        checks.append(Check("WeChat Pay keys", "FAIL", f"nothing to verify answers with: set {hint}"))
    return checks


def _certificates(settings: Settings) -> list[Any]:
    value = settings.get("platform_certificates", ([], ""))[0]
    return [value] if isinstance(value, str) else list(value)


def _public_key(settings: Settings) -> list[Check]:
    key_id = str(settings["platform_public_key_id"][0])
    id_source = _source(settings, "platform_public_key_id")
    checks = []
    if re.fullmatch(r"PUB_KEY_ID_\d{10,40}", key_id):
        checks.append(Check("public key id", "ok", f"{key_id} ({id_source})"))
    else:
        checks.append(Check("public key id", "FAIL", f"{id_source}: expected PUB_KEY_ID_ followed by digits"))
    where = _source(settings, "platform_public_key")
    try:
        key = load_public_key(settings["platform_public_key"][0], where)
    except CredentialError as exc:
        return [*checks, Check("WeChat Pay public key", "FAIL", str(exc))]
    if "private_key" in settings and _is_merchant_key(settings, key):
        detail = f"{where} is the merchant's own public key, not WeChat Pay's (download it from the merchant platform)"
        return [*checks, Check("WeChat Pay public key", "FAIL", detail)]
    return [*checks, Check("WeChat Pay public key", "ok", f"RSA {key.key_size}-bit ({where})")]


def _is_merchant_key(settings: Settings, key: Any) -> bool:
    try:
        merchant = load_private_key(settings["private_key"][0])
    except CredentialError:
        return False
    return public_pem(merchant) == public_pem(key)


def _apiv3(settings: Settings) -> list[Check]:
    if "apiv3_key" not in settings:
        return [Check("APIv3 key", "warn", f"not set ({HINTS['apiv3_key']}): callbacks cannot be decrypted")]
    where = _source(settings, "apiv3_key")
    try:  # text from os.environ may hold a lone surrogate (a byte that is not UTF-8), which encode refuses
        size = len(str(reveal(settings["apiv3_key"][0])).encode("utf-8"))
    except UnicodeEncodeError:
        return [
            Check("APIv3 key", "FAIL", f"{where} is not UTF-8 text (a byte that is not UTF-8); it must be 32 bytes")
        ]
    if size != 32:
        return [Check("APIv3 key", "FAIL", f"{_source(settings, 'apiv3_key')} is {size} bytes; it must be 32")]
    return [Check("APIv3 key", "ok", f"32 bytes ({_source(settings, 'apiv3_key')})")]


def _base_url(settings: Settings, timeout: float, now: Callable[[], float]) -> list[Check]:
    from engine.configuration import DEFAULT_BASE_URL

    base_url = str(settings.get("base_url", (DEFAULT_BASE_URL, "the default"))[0]).rstrip("/")
    where = _source(settings, "base_url") if "base_url" in settings else "the default"
    shown = _shown_url(base_url)
    refused = ENGINE_KINDS["base_url"].problem(base_url)  # what Engine(base_url=...) would refuse
    if refused is not None:
        return [Check("base URL", "FAIL", f"{shown!r} ({where}): {refused}")]
    if not base_url.startswith(("http://", "https://")):
        return [Check("base URL", "FAIL", f"{shown!r} ({where}) is not an http(s) URL")]
    date, problem = _probe(base_url + "/v3/certificates", timeout)
    if problem is not None:
        return [Check("base URL", "FAIL", f"{shown} ({where}) is not reachable: {problem}")]
    checks = [Check("base URL", "ok", f"{shown} answers ({where})")]
    if date is None:
        return [*checks, Check("clock", "skip", "the answer carried no Date header")]
    skew = now() - date
    detail = f"{skew:+.0f} s against the answer's Date"
    if abs(skew) > SKEW_LIMIT_SECONDS:
        return [*checks, Check("clock", "FAIL", f"{detail}: this machine's clock is off by more than 5 minutes")]
    return [*checks, Check("clock", "warn" if abs(skew) > SKEW_WARNING_SECONDS else "ok", detail)]


def _shown_url(url: str) -> str:
    """``url`` with a gateway's user:password masked, or a placeholder for text that is no URL at all
    (printable, with a scheme and a host): that may be a key put in the wrong variable."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    return redacted(url) if parts.scheme and parts.netloc and url.isprintable() else "<not a URL, not shown>"


def _probe(url: str, timeout: float) -> tuple[Optional[float], Optional[str]]:
    """The answer's Date (Unix seconds) and no problem, or why nothing answered."""
    request = urllib.request.Request(url, headers={"Accept": "application/json", "User-Agent": "wechatpay-doctor"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            headers = answer.headers
    except urllib.error.HTTPError as answered:  # any HTTP answer means the host is there
        headers = answered.headers
    except (urllib.error.URLError, OSError) as exc:
        return None, str(getattr(exc, "reason", exc))
    except (ValueError, http.client.InvalidURL):  # a port that is not a number, a control character
        return None, "the URL is malformed (its host or port cannot be read)"
    except http.client.HTTPException as exc:  # something answered, not in HTTP (BadStatusLine, ...)
        return None, f"the answer is not HTTP ({type(exc).__name__})"
    date = headers.get("Date")
    parsed = email.utils.parsedate_to_datetime(date) if date else None
    return (parsed.timestamp() if parsed is not None else None), None


def _live(settings: Settings, timeout: float, endpoint_dirs: list[str], failed: bool) -> Check:
    name = "signed round trip"
    if failed:
        return Check(name, "skip", "not attempted: fix the failures above first")
    from engine.client import Engine

    values = {k: v for k, (v, _) in settings.items() if k in HINTS and k != "merchant_certificate"}
    message, secret = f"wechatpay doctor {secrets.token_hex(4)}", secrets.token_hex(8)
    try:
        with Engine(**values, timeout=timeout, endpoint_dirs=endpoint_dirs, load_entry_points=False) as engine:
            answer = engine.call(Untyped(ECHO_ENDPOINT), {"echo_message": message, "encrypted_echo_message": secret})
    except ApiError as exc:
        return Check(name, "FAIL", _refusal(settings, exc))
    except SignatureError as exc:
        keys = f"{_source(settings, 'platform_public_key')} / {_source(settings, 'platform_certificates')}"
        return Check(name, "FAIL", f"the answer did not verify ({exc.reason}) with {keys}: {exc}")
    except TransportError as exc:
        return Check(name, "FAIL", f"no answer from {_source(settings, 'base_url')}: {exc}")
    except EngineError as exc:
        return Check(name, "FAIL", f"{type(exc).__name__}: {exc}")
    data = answer.data or {}
    if data.get("echo_message") != message or data.get("encrypted_echo_message") != secret:
        return Check(name, "FAIL", "POST /v3/security/echo answered, but not with the messages sent")
    return Check(name, "ok", f"POST /v3/security/echo signed, verified ({answer.verified_with}) and decrypted")


def _refusal(settings: Settings, error: ApiError) -> str:
    said = f"WeChat Pay answered {error.status} {error.code}: {error.message}"
    if error.code == "SIGN_ERROR":
        key, serial, mchid = (_source(settings, n) for n in ("private_key", "serial_no", "mchid"))
        return f"{said}: the request signature was refused: {key} is not the key of {serial} for {mchid}"
    return said


if __name__ == "__main__":  # pragma: no cover
    from engine.cli import main

    sys.exit(main(["doctor", *sys.argv[1:]]))
