"""The merchant's TLS client certificate (``apiclient_cert``), for the APIv2 operations that need it.

Design decisions:

* ``Engine(client_certificate=...)`` takes the forms merchants have on disk: a ``(cert, key)`` pair
  of PEM text, PEM bytes or paths (``apiclient_cert.pem``, ``apiclient_key.pem``), a mapping
  ``{"cert": ..., "key": ...}``, or ``{"pkcs12": path_or_bytes, "password": ...}`` for
  ``apiclient_cert.p12`` (whose password WeChat Pay sets to the merchant id), or a
  ``ClientCertificate``. Everything is parsed when the engine is built: a certificate that does not
  parse, a key that does not belong to it or a certificate past its ``notAfter`` fail then, with a
  ``CredentialError`` naming the setting, never a key byte.
* **The trust store is the default one** (``ssl.create_default_context()``), so ``SSL_CERT_FILE``
  and ``SSL_CERT_DIR`` point it elsewhere exactly as for any Python program; WeChat Pay's servers
  carry ordinary public certificates. Nothing here disables verification.
* Python's ``ssl`` loads a certificate chain from files only. The context is built once per
  certificate (memoised, thread-safe) from a private temporary directory (mode 0700) that is removed
  at once, and the key written there is encrypted with a one-time random password: the plaintext
  key never reaches a disk.
* The repr shows the certificate's serial and subject, never the key.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import ssl
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence, cast

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from engine import forksafe
from engine.errors import CredentialError
from engine.files import Unread, read_regular_file
from engine.keys import MAX_KEY_FILE_BYTES, KeySource, certificate_serial, load_certificate, load_private_key
from engine.secret import Secret, hide, reveal

if TYPE_CHECKING:  # x509 is a tenth of `import engine`; only an engine given a certificate needs it
    from cryptography import x509

SETTING = "client_certificate"


class ClientCertificate:
    """A certificate, its private key and any intermediate certificates, ready for a TLS handshake."""

    __slots__ = ("_chain", "_context", "_key", "_lock", "certificate")

    def __init__(
        self, certificate: x509.Certificate, key: rsa.RSAPrivateKey, chain: Sequence[x509.Certificate] = ()
    ) -> None:
        if certificate.public_key().public_numbers() != key.public_key().public_numbers():  # type: ignore[union-attr]
            raise CredentialError(f"{SETTING}: the private key does not belong to the certificate")
        if certificate.not_valid_after_utc < dt.datetime.now(dt.UTC):
            raise CredentialError(f"{SETTING}: the certificate expired on {certificate.not_valid_after_utc:%Y-%m-%d}")
        self.certificate = certificate
        self._key = key
        self._chain = tuple(chain)
        self._lock = forksafe.lock()
        self._context: Optional[ssl.SSLContext] = None

    @classmethod
    def from_pem(cls, certificate: KeySource, key: Any, setting: str = SETTING) -> "ClientCertificate":
        """From ``apiclient_cert.pem`` and ``apiclient_key.pem`` (text, bytes, paths, or a key object)."""
        return cls(load_certificate(certificate, f"{setting} certificate"), load_private_key(key, f"{setting} key"))

    @classmethod
    def from_pkcs12(cls, data: Any, password: Any, setting: str = SETTING) -> "ClientCertificate":
        """From ``apiclient_cert.p12`` (its content or its path) and its password, either one possibly
        in a ``Secret``: both are opened inline, so no frame of a refusal holds them."""
        from cryptography.hazmat.primitives.serialization import pkcs12

        try:
            key, certificate, chain = pkcs12.load_key_and_certificates(
                _pkcs12_content(data, setting), _password_bytes(password)
            )
        except ValueError:
            raise CredentialError(f"{setting}: not a PKCS#12 file, or the password is wrong") from None
        if certificate is None or not isinstance(key, rsa.RSAPrivateKey):
            raise CredentialError(f"{setting}: the PKCS#12 file holds no certificate with an RSA key")
        return cls(certificate, key, chain)

    @property
    def serial(self) -> str:
        return certificate_serial(self.certificate)

    def ssl_context(self) -> ssl.SSLContext:
        """A client context trusting the default store and presenting this certificate (built once)."""
        with self._lock:
            if self._context is None:
                self._context = self._build_context()
            return self._context

    def _build_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        password = secrets.token_hex(32).encode("ascii")
        chain = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (self.certificate, *self._chain))
        key = self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(password),
        )
        with tempfile.TemporaryDirectory(prefix="wechatpay-tls-") as private:  # mode 0700
            cert_path, key_path = Path(private, "cert.pem"), Path(private, "key.pem")
            cert_path.write_bytes(chain)
            key_path.write_bytes(key)
            context.load_cert_chain(cert_path, key_path, password=password)
        return context

    def __repr__(self) -> str:
        return f"<ClientCertificate serial={self.serial} subject={self.certificate.subject.rfc4514_string()!r}>"


def client_certificate(
    value: Any, setting: str = SETTING, merchant_key: Optional[tuple[Any, rsa.RSAPrivateKey]] = None
) -> Optional[ClientCertificate]:
    """The ``client_certificate`` setting, parsed: ``None``, a pair, a mapping, or a ``ClientCertificate``.

    ``merchant_key`` is the merchant ``private_key`` setting (a ``Secret``) and the key parsed from
    it. The TLS key is almost always that same ``apiclient_key.pem``: given as the same source, it is
    not parsed again (each parse of an RSA private key re-validates it, tens of milliseconds).
    """
    # ``value`` may be a ``Secret`` (Engine boxes the setting): it is opened inline and its parts are
    # boxed again, so no frame of a refusal (a key that does not parse, a wrong password) holds them.
    if reveal(value) is None or isinstance(reveal(value), ClientCertificate):
        return cast(Optional[ClientCertificate], reveal(value))
    if isinstance(reveal(value), (tuple, list)) and len(reveal(value)) == 2:
        return _from_pair(hide(reveal(value)[0]), hide(reveal(value)[1]), setting, merchant_key)
    if isinstance(reveal(value), Mapping):
        if "pkcs12" in reveal(value) and set(reveal(value)) <= {"pkcs12", "password"}:
            return ClientCertificate.from_pkcs12(
                hide(reveal(value)["pkcs12"]), hide(reveal(value).get("password")), setting
            )
        if set(reveal(value)) == {"cert", "key"}:
            return _from_pair(hide(reveal(value)["cert"]), hide(reveal(value)["key"]), setting, merchant_key)
    raise CredentialError(
        f"{setting}: give a (cert, key) pair of PEM text or paths, {{'cert': ..., 'key': ...}}, "
        f"{{'pkcs12': path, 'password': ...}} or an engine.ClientCertificate, not {type(reveal(value)).__name__}"
    )


def _from_pair(
    certificate: Secret, key: Secret, setting: str, merchant_key: Optional[tuple[Any, rsa.RSAPrivateKey]]
) -> ClientCertificate:
    return ClientCertificate.from_pem(reveal(certificate), _parsed_if_same(key, merchant_key), setting)


def _parsed_if_same(source: Any, merchant_key: Optional[tuple[Any, rsa.RSAPrivateKey]]) -> Any:
    """The merchant key object when ``source`` names the same file, PEM or object; else ``source``."""
    if merchant_key is None:
        return source
    given, parsed = merchant_key
    return parsed if _same_source(reveal(source), reveal(given)) else source


def _same_source(one: Any, other: Any) -> bool:
    if isinstance(one, (str, bytes, os.PathLike)) and isinstance(other, (str, bytes, os.PathLike)):
        first, second = os.fspath(one), os.fspath(other)
        return type(first) is type(second) and first == second
    return one is other


def default_context() -> ssl.SSLContext:
    """A client context on the default trust store (``SSL_CERT_FILE``/``SSL_CERT_DIR`` apply)."""
    return ssl.create_default_context()


def _pkcs12_content(data: Any, setting: str) -> bytes:
    return cast(bytes, reveal(data)) if isinstance(reveal(data), bytes) else _read(Path(reveal(data)), setting)


def _password_bytes(password: Any) -> Optional[bytes]:
    if isinstance(reveal(password), str):
        return cast(bytes, reveal(password).encode("utf-8"))
    return cast(Optional[bytes], reveal(password))


def _read(path: Path, setting: str) -> bytes:
    content = read_regular_file(path, MAX_KEY_FILE_BYTES)  # a FIFO or /dev/zero is refused, not read
    if isinstance(content, Unread):
        raise CredentialError(f"{setting}: cannot read {str(path)!r} ({content.reason})")
    return content
