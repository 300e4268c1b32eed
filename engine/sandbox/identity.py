"""Throwaway credentials for the sandbox: both sides of a WeChat Pay merchant relationship.

Design decisions:

* Keys are generated per sandbox with ``cryptography`` (RSA-2048), never committed; a test suite can
  generate one identity and share it between engines to keep key generation out of every test.
* The platform side has both a public key id (``PUB_KEY_ID_…``) and a self-signed certificate over
  the *same* key, so the sandbox can answer in public-key mode, certificate mode, or both.
* Secrets are hidden from ``repr``.
* APIv2 adds a shared secret (``apiv2_key``) and TLS: a sandbox CA (over the platform key, so no
  extra key is generated) issues the merchant's API certificate (``apiclient_cert``, over the
  merchant key, as WeChat Pay's CA does) and the served sandbox's TLS certificate (127.0.0.1 and
  localhost). A client trusts the sandbox by trusting that CA (``SSL_CERT_FILE``), and the served
  sandbox asks for client certificates issued by it. Identities made before these existed get them
  on load (``with_apiv2``). ``engine_settings("apiv2")`` are an APIv2-only merchant's settings: the
  merchant id, the APIv2 key and the client certificate, nothing of APIv3.
* APIv2 ``pay_bank`` (企业付款到银行卡) encrypts its bank card number and name with an RSA key of its
  own, which ``risk/getpublickey`` hands out as PKCS#1 PEM: the identity holds that key pair
  (``pay_bank_key``, generated with the other APIv2 parts), every mode's settings give the engine
  its public half as ``pay_bank_public_key`` in that very PEM, and the sandbox decrypts with it.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import secrets
import ssl
import tempfile
from pathlib import Path
from typing import Optional

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from engine.keys import certificate_pem, certificate_serial, private_pem, public_pem

TLS_HOSTS = ("127.0.0.1", "localhost")

KEY_MODES = ("public_key", "certificate", "both", "apiv2")  # apiv2: an APIv2-only merchant, no WeChat Pay key
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


def issued_certificate(
    issuer_key: rsa.RSAPrivateKey,
    issuer: x509.Certificate,
    subject_key: rsa.RSAPublicKey,
    common_name: str,
    now: dt.datetime,
    server_names: tuple[str, ...] = (),
) -> x509.Certificate:
    """A certificate for ``subject_key`` signed by ``issuer``: a TLS server one when ``server_names`` are given."""
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server_names else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(issuer.subject)
        .public_key(subject_key)
        .serial_number(secrets.randbits(156) | 1 << 156)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365 * 5))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if server_names:
        names = [_general_name(name) for name in server_names]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def certificate_authority(key: rsa.RSAPrivateKey, now: dt.datetime) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "WeChat Pay Sandbox CA")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(secrets.randbits(156) | 1 << 156)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365 * 5))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
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
    apiv2_key: bytes = attrs.field(default=b"", repr=False)
    ca_certificate: Optional[x509.Certificate] = attrs.field(default=None, repr=False)
    merchant_certificate: Optional[x509.Certificate] = attrs.field(default=None, repr=False)  # apiclient_cert
    server_certificate: Optional[x509.Certificate] = attrs.field(default=None, repr=False)
    pay_bank_key: Optional[rsa.RSAPrivateKey] = attrs.field(default=None, repr=False)  # risk/getpublickey's

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
            apiv3_key=_secret(),
        ).with_apiv2()

    def with_apiv2(self) -> "SandboxIdentity":
        """This identity with an APIv2 key, a CA, the merchant's API certificate and a TLS certificate."""
        parts = (self.apiv2_key, self.ca_certificate, self.merchant_certificate, self.server_certificate)
        if all(parts) and self.pay_bank_key is not None:
            return self
        now = dt.datetime.now(dt.UTC)
        ca = self.ca_certificate or certificate_authority(self.platform_key, now)
        merchant = self.merchant_certificate or issued_certificate(
            self.platform_key, ca, self.merchant_key.public_key(), f"{self.mchid} API certificate", now
        )
        server = self.server_certificate or issued_certificate(
            self.platform_key, ca, self.platform_key.public_key(), "WeChat Pay Sandbox", now, TLS_HOSTS
        )
        return attrs.evolve(
            self,
            apiv2_key=self.apiv2_key or _secret(),
            ca_certificate=ca,
            merchant_certificate=merchant,
            server_certificate=server,
            pay_bank_key=self.pay_bank_key or _new_rsa_key(),
        )

    def ca_pem(self) -> bytes:
        """The sandbox CA, to trust (``SSL_CERT_FILE``) when talking to the sandbox over TLS."""
        assert self.ca_certificate is not None
        return certificate_pem(self.ca_certificate)

    def merchant_certificate_pem(self) -> bytes:
        """``apiclient_cert.pem``: the merchant's TLS client certificate (its key is ``merchant_key``)."""
        assert self.merchant_certificate is not None
        return certificate_pem(self.merchant_certificate)

    def tls_server_context(self) -> ssl.SSLContext:
        """The served sandbox's TLS context: its certificate, and client certificates asked for (not required:
        only operations that need one refuse a handshake without it) and checked against the CA."""
        assert self.server_certificate is not None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.verify_mode = ssl.CERT_OPTIONAL
        context.load_verify_locations(cadata=self.ca_pem().decode("ascii"))
        with tempfile.TemporaryDirectory(prefix="wechatpay-sandbox-tls-") as private:  # mode 0700
            cert, key = Path(private, "cert.pem"), Path(private, "key.pem")
            cert.write_bytes(certificate_pem(self.server_certificate) + self.ca_pem())
            key.write_bytes(private_pem(self.platform_key))
            context.load_cert_chain(cert, key)
        return context

    @property
    def platform_certificate_serial(self) -> str:
        return certificate_serial(self.platform_certificate)

    def merchant_private_pem(self) -> bytes:
        return private_pem(self.merchant_key)

    def platform_public_pem(self) -> bytes:
        return public_pem(self.platform_key)

    def platform_certificate_pem(self) -> bytes:
        return certificate_pem(self.platform_certificate)

    def pay_bank_public_pem(self) -> bytes:
        """The ``pay_bank`` key as ``risk/getpublickey`` answers it: PKCS#1 PEM (``-----BEGIN RSA PUBLIC KEY-----``)."""
        assert self.pay_bank_key is not None
        return self.pay_bank_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)

    def engine_settings(self, mode: str = "public_key") -> dict[str, object]:
        """Keyword arguments for ``Engine`` in ``public_key``, ``certificate``, ``both`` or ``apiv2`` modes."""
        if mode not in KEY_MODES:
            raise ValueError(f"mode must be one of {', '.join(KEY_MODES)}, got {mode!r}")
        if mode == "apiv2":
            return self.apiv2_settings()
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
        if self.apiv2_key:
            settings["apiv2_key"] = self.apiv2_key
        if self.merchant_certificate is not None:
            settings["client_certificate"] = (self.merchant_certificate_pem(), self.merchant_key)
        if self.pay_bank_key is not None:
            settings["pay_bank_public_key"] = self.pay_bank_public_pem()
        return settings

    def apiv2_settings(self) -> dict[str, object]:
        """Keyword arguments for an APIv2-only ``Engine``: the merchant id, the APIv2 key and the client
        certificate with its own key (there is no ``private_key`` setting for the engine to take it from)."""
        complete = self.with_apiv2()
        certificate = (complete.merchant_certificate_pem(), complete.merchant_key)  # the object: no second parse
        return {
            "mchid": complete.mchid,
            "apiv2_key": complete.apiv2_key,
            "client_certificate": certificate,
            "pay_bank_public_key": complete.pay_bank_public_pem(),
        }


def _secret() -> bytes:
    return "".join(secrets.choice(_ALNUM) for _ in range(32)).encode("ascii")
