"""Throwaway credentials for the sandbox: both sides of a WeChat Pay merchant relationship.

Design decisions:

* Keys are generated per sandbox with ``cryptography`` (RSA-2048), never committed; a test suite can
  generate one identity and share it between engines to keep key generation out of every test.
* The platform side has both a public key id (``PUB_KEY_ID_…``) and a self-signed certificate over
  the *same* key, so the sandbox can answer in public-key mode, certificate mode, or both.
* Secrets are hidden from ``repr``.
"""

from __future__ import annotations

import datetime as dt
import secrets

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from engine.keys import certificate_pem, certificate_serial, private_pem, public_pem

KEY_MODES = ("public_key", "certificate", "both")
_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def _new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def self_signed_certificate(key: rsa.RSAPrivateKey, common_name: str, now: dt.datetime) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(secrets.randbits(156) | 1 << 156)  # 40 hex digits, like WeChat Pay's serials
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365 * 5))
        .sign(key, hashes.SHA256())
    )


@attrs.frozen
class SandboxIdentity:
    """A merchant and its WeChat Pay counterpart, as the sandbox and an engine both need them."""

    mchid: str
    merchant_serial_no: str
    merchant_key: rsa.RSAPrivateKey = attrs.field(repr=False)
    platform_key: rsa.RSAPrivateKey = attrs.field(repr=False)
    platform_public_key_id: str
    platform_certificate: x509.Certificate = attrs.field(repr=False)
    apiv3_key: bytes = attrs.field(repr=False)

    @classmethod
    def generate(cls, mchid: str = "1900000109") -> "SandboxIdentity":
        now = dt.datetime.now(dt.UTC)
        platform_key = _new_rsa_key()
        return cls(
            mchid=mchid,
            merchant_serial_no=secrets.token_hex(20).upper(),
            merchant_key=_new_rsa_key(),
            platform_key=platform_key,
            platform_public_key_id="PUB_KEY_ID_" + "".join(secrets.choice("0123456789") for _ in range(34)),
            platform_certificate=self_signed_certificate(platform_key, "WeChat Pay Sandbox Platform", now),
            apiv3_key="".join(secrets.choice(_ALNUM) for _ in range(32)).encode("ascii"),
        )

    @property
    def platform_certificate_serial(self) -> str:
        return certificate_serial(self.platform_certificate)

    def merchant_private_pem(self) -> bytes:
        return private_pem(self.merchant_key)

    def platform_public_pem(self) -> bytes:
        return public_pem(self.platform_key)

    def platform_certificate_pem(self) -> bytes:
        return certificate_pem(self.platform_certificate)

    def engine_settings(self, mode: str = "public_key") -> dict[str, object]:
        """Keyword arguments for ``Engine`` in ``public_key``, ``certificate`` or ``both`` modes."""
        if mode not in KEY_MODES:
            raise ValueError(f"mode must be one of {', '.join(KEY_MODES)}, got {mode!r}")
        settings: dict[str, object] = {
            "mchid": self.mchid,
            "serial_no": self.merchant_serial_no,
            "private_key": self.merchant_key,  # the object: parsing PEM again would re-validate the key
            "apiv3_key": self.apiv3_key,
        }
        if mode in ("public_key", "both"):
            settings["platform_public_key"] = self.platform_public_pem()
            settings["platform_public_key_id"] = self.platform_public_key_id
        if mode in ("certificate", "both"):
            settings["platform_certificates"] = [self.platform_certificate_pem()]
        return settings
