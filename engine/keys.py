"""Loading and holding key material: the merchant's signing key and WeChat Pay's verifying keys.

Design decisions:

* Every key setting takes PEM text, PEM bytes or a file path; each is parsed once, when the engine
  is built, so a bad key fails at start-up with a ``CredentialError`` naming the *setting* and the
  reason, never the key material. A path is read by ``engine.files.read_regular_file``: a FIFO or
  ``/dev/zero`` named by mistake is refused at once, not a read that blocks or never ends.
* A private key read from PEM is the merchant's own, not a peer's: it is parsed without
  cryptography's RSA self-validation (a primality check of about 45 ms, a tenth of a cold start)
  and proved instead by one signature verified with its own public half (under a millisecond),
  which refuses a key whose parts do not fit together, the failure that would otherwise surface as
  WeChat Pay rejecting every signature. Keys from peers (public keys, certificates) are parsed in full.
* Secrets hide from ``repr``: the attrs classes mark key fields ``repr=False``, so an engine, a
  keyring or a credential printed in a log or a traceback shows ids and serials only.
* ``PlatformKeyring`` holds WeChat Pay public keys (``PUB_KEY_ID_…``) and platform certificates side
  by side. An answer's ``Wechatpay-Serial`` picks the key that verifies it; outgoing encryption
  prefers the public key (the mode WeChat Pay is moving merchants to) and falls back to the newest
  valid certificate, as the official SDKs do.
* The APIv3 credentials (``serial_no`` and the signer) come together or not at all. An APIv2-only
  merchant's credentials hold neither, and whatever needs them asks ``require_apiv3``, which
  refuses with one message naming the settings to give (``apiv3_refusal``, which the APIv3
  family's plugin also hands the pipeline): an engine never signs half a request.
* The ``pay_bank`` key (APIv2 企业付款到银行卡) is a WeChat Pay key of its own: the RSA public key
  ``risk/getpublickey`` answers, as PKCS#1 PEM (``-----BEGIN RSA PUBLIC KEY-----``), which merchants
  also keep converted to SPKI (``-----BEGIN PUBLIC KEY-----``); both are read. It only encrypts the
  fields of the descriptors whose ``encryption`` names it, is named by no header and verifies
  nothing, so it stays out of the keyring; its ``key_id`` is a fingerprint, for reprs and logs.
  It must be RSA of exactly 2048 bits (``PAY_BANK_KEY_BITS``), as getpublickey's is: the plaintext
  limit (``engine.validation.MAX_ENCRYPTED_BYTES``) and the descriptor's ciphertext limit (384
  base64 characters) are 2048-bit figures, so a larger key is refused when the engine is built,
  not left to fail every call with a ciphertext-length error that blames the payload.
* Certificate serials compare case-insensitively and without leading zeros, because SDKs disagree
  on whether ``%X`` keeps a leading zero nibble (PROTOCOL.md §2).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import os
import time
from typing import TYPE_CHECKING, Any, Iterable, Optional, Protocol, Union, cast, runtime_checkable

import attrs
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from engine.crypto import oaep_decrypt_bytes, rsa_sign_bytes
from engine.errors import ConfigurationError, CredentialError
from engine.files import Unread, read_regular_file
from engine.secret import Secret, reveal

if TYPE_CHECKING:
    from cryptography import x509

KeySource = Union[str, bytes, os.PathLike[str]]
_PKCS1 = padding.PKCS1v15()


MAX_KEY_FILE_BYTES = 1024 * 1024  # a PEM key or certificate is a few KiB
MAX_PATH_CHARACTERS = 4096


def _read_source(source: Any, setting: str) -> bytes:
    """PEM bytes from text, bytes or a file path, possibly inside a ``Secret``.

    The value is never bound to a local in plain form nor echoed: a failure names the setting and
    what was wrong with it only (key text without its PEM lines must not come back as a "path").
    """
    kind = type(reveal(source))
    if kind in (bytes, bytearray):
        return bytes(reveal(source))
    if kind is str and "-----BEGIN" in reveal(source):
        return cast(str, reveal(source)).encode("ascii", errors="replace")
    if not isinstance(reveal(source), (str, os.PathLike)):
        raise CredentialError(f"{setting}: expected PEM text, PEM bytes or a file path, got {kind.__name__}")
    if not _plausible_path(reveal(source)):
        raise CredentialError(f"{setting}: not PEM (no -----BEGIN line) and not the path of a file")
    # read_regular_file: a FIFO (opened without waiting for a writer) or /dev/zero is refused, not read
    content = read_regular_file(reveal(source), MAX_KEY_FILE_BYTES)
    if isinstance(content, Unread) and content.too_large:
        raise CredentialError(f"{setting}: the file is larger than a key or certificate can be")
    if isinstance(content, Unread):
        raise CredentialError(f"{setting}: not PEM and not a readable file ({content.reason})")
    return content


def _plausible_path(value: Any) -> bool:
    text = os.fspath(value)
    if isinstance(text, bytes):
        return b"\0" not in text and len(text) <= MAX_PATH_CHARACTERS
    return "\0" not in text and "\n" not in text and len(text) <= MAX_PATH_CHARACTERS


def load_private_key(value: Any, setting: str = "private_key") -> rsa.RSAPrivateKey:
    """An RSA private key from PEM (PKCS#8 or PKCS#1) text, bytes, a file path, or a key object.

    ``value`` may be inside a ``Secret`` (``Engine`` passes it so); the PEM is opened inline.
    """
    if hasattr(reveal(value), "private_bytes"):  # a key object: RSA of 2048 bits, or a clear refusal
        return cast(rsa.RSAPrivateKey, _require_rsa(reveal(value), rsa.RSAPrivateKey, setting))
    try:
        key = serialization.load_pem_private_key(
            _read_source(value, setting), password=None, unsafe_skip_rsa_key_validation=True
        )
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise CredentialError(f"{setting}: not an unencrypted PEM private key") from None
    return _self_tested(cast(rsa.RSAPrivateKey, _require_rsa(key, rsa.RSAPrivateKey, setting)), setting)


_SELF_TEST = b"wechatpay-engine: does this key sign what its public half verifies?"


def _self_tested(key: rsa.RSAPrivateKey, setting: str) -> rsa.RSAPrivateKey:
    """``key``, once a signature it makes verifies under its own public key (see the module docstring)."""
    try:
        key.public_key().verify(rsa_sign_bytes(key, _SELF_TEST), _SELF_TEST, _PKCS1, hashes.SHA256())
    except (InvalidSignature, ValueError):
        raise CredentialError(f"{setting}: the private key is inconsistent (its signature does not verify)") from None
    return key


def load_public_key(value: KeySource, setting: str = "platform_public_key") -> rsa.RSAPublicKey:
    """An RSA public key (SPKI PEM) from text, bytes, a file path, or a key object."""
    if hasattr(value, "public_numbers") and not hasattr(value, "private_bytes"):
        return cast(rsa.RSAPublicKey, _require_rsa(value, rsa.RSAPublicKey, setting))
    data = _read_source(value, setting)
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise CredentialError(
            f"{setting}: not a PEM public key (-----BEGIN PUBLIC KEY----- or -----BEGIN RSA PUBLIC KEY-----)"
        ) from None
    return cast(rsa.RSAPublicKey, _require_rsa(key, rsa.RSAPublicKey, setting))


PAY_BANK_SETTING = "pay_bank_public_key"
# risk/getpublickey's key is RSA 2048; the 214-byte plaintext and 384-character ciphertext limits assume it.
PAY_BANK_KEY_BITS = 2048
# What each named encryption key (engine.descriptor.EncryptionKey) is, and the setting that gives it.
ENCRYPTION_KEY_REMEDIES = {
    "pay_bank": f"the pay_bank RSA public key: give Engine({PAY_BANK_SETTING}=...), the PEM that "
    "v2.risk.getpublickey.post answers in pub_key",
}


def pay_bank_key(value: KeySource, setting: str = PAY_BANK_SETTING) -> "PlatformKey":
    """The RSA key APIv2 ``pay_bank`` encrypts with, from PKCS#1 or SPKI PEM (text, bytes, a path) or a key object."""
    public_key = load_public_key(value, setting)
    if public_key.key_size != PAY_BANK_KEY_BITS:  # under 2048 is already refused by load_public_key
        raise CredentialError(
            f"{setting}: RSA key of {public_key.key_size} bits; the pay_bank key is RSA {PAY_BANK_KEY_BITS} "
            "(the key v2.risk.getpublickey.post answers in pub_key)"
        )
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    digest = hashes.Hash(hashes.SHA256())
    digest.update(der)
    return PlatformKey(f"PAY_BANK_{digest.finalize()[:8].hex().upper()}", public_key, kind="pay_bank")


def load_certificate(value: KeySource, setting: str = "platform_certificates") -> x509.Certificate:
    """An X.509 certificate from PEM text, bytes or a file path."""
    from cryptography import x509  # only certificate mode needs it: about a tenth of `import engine`

    data = _read_source(value, setting)
    try:
        cert = x509.load_pem_x509_certificate(data)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise CredentialError(f"{setting}: not a PEM certificate (-----BEGIN CERTIFICATE-----)") from None
    _require_rsa(cert.public_key(), rsa.RSAPublicKey, setting)
    return cert


def _require_rsa(key: object, kind: type, setting: str) -> Any:
    if not isinstance(key, kind):
        raise CredentialError(f"{setting}: expected an RSA key, got {type(key).__name__}")
    size = cast(int, getattr(key, "key_size", 0))
    if size < 2048:
        raise CredentialError(f"{setting}: RSA key of {size} bits; WeChat Pay uses 2048")
    return key


def private_pem(key: rsa.RSAPrivateKey) -> bytes:
    """PKCS#8 PEM, unencrypted (what apiclient_key.pem holds)."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def public_pem(key: Any) -> bytes:
    """SPKI PEM of a public key, or of a private key's public half."""
    public = key.public_key() if hasattr(key, "private_bytes") else key
    return cast(bytes, public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))


def certificate_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def certificate_serial(cert: x509.Certificate) -> str:
    """The serial as WeChat Pay writes it: upper-case hex."""
    return f"{cert.serial_number:X}"


def normalize_serial(serial: str) -> str:
    return serial.strip().upper().lstrip("0") or "0"


@runtime_checkable
class MerchantSigner(Protocol):
    """The merchant key, wherever it lives (process memory, a KMS, an HSM).

    ``sign(data)`` returns the RSASSA-PKCS1-v1_5/SHA-256 signature of ``data`` (raw bytes, not
    base64). An optional ``decrypt(ciphertext)`` undoes RSA-OAEP/SHA-1 for answer fields WeChat Pay
    encrypted for the merchant; an optional ``public_key()`` lets test tools encrypt for it.
    """

    def sign(self, data: bytes) -> bytes: ...


class PrivateKeySigner:
    """The built-in signer: an RSA private key held in this process (``Engine(private_key=...)``)."""

    __slots__ = ("_key",)

    def __init__(self, private_key: rsa.RSAPrivateKey) -> None:
        self._key = private_key

    def sign(self, data: bytes) -> bytes:
        return rsa_sign_bytes(self._key, data)

    def decrypt(self, ciphertext: bytes) -> bytes:
        return oaep_decrypt_bytes(self._key, ciphertext)

    def public_key(self) -> rsa.RSAPublicKey:
        return self._key.public_key()

    def __repr__(self) -> str:
        return "<PrivateKeySigner>"


def parsed_private_key(signer: Optional[MerchantSigner]) -> Optional[rsa.RSAPrivateKey]:
    """The key object of the built-in signer (``None`` for any other signer): parsed once, reused."""
    return signer._key if isinstance(signer, PrivateKeySigner) else None


def merchant_signer(private_key: Any, signer: Any) -> MerchantSigner:
    """The signer an engine uses: ``signer`` itself, or one holding ``private_key``; exactly one of the two."""
    if signer is not None and reveal(private_key) is not None:
        raise ConfigurationError("give either private_key or signer, not both")
    if signer is None:
        if reveal(private_key) is None:
            raise CredentialError("private_key: required (or give signer=, an object with sign(data) -> bytes)")
        return PrivateKeySigner(load_private_key(private_key))
    if not callable(getattr(signer, "sign", None)):
        raise ConfigurationError(f"signer: {type(signer).__name__} has no sign(data: bytes) -> bytes method")
    decrypt = getattr(signer, "decrypt", None)
    if decrypt is not None and not callable(decrypt):
        raise ConfigurationError("signer: its decrypt attribute is not callable")
    return signer  # type: ignore[no-any-return]


APIV3_REMEDY = (
    "give Engine(serial_no=..., private_key=... or signer=...) to sign, and a WeChat Pay key to verify "
    "answers with (platform_public_key with platform_public_key_id, platform_certificates, or apiv3_key)"
)


@attrs.frozen
class MerchantCredentials:
    """Who signs the requests: merchant id, API certificate serial and the key-level signer.

    ``serial_no`` and ``signer`` are the APIv3 credentials, given together or not at all: both are
    ``None`` for an APIv2-only merchant, whose engine refuses APIv3 work (``require_apiv3``).
    ``apiv2_key`` is the merchant's APIv2 key (the shared secret of APIv2 signatures and of refund
    notifications), ``None`` when the merchant does not use APIv2; ``apiv2_sign_type`` the algorithm
    APIv2 requests use where the operation lets the merchant choose.
    """

    mchid: str
    serial_no: Optional[str] = None
    signer: Optional[MerchantSigner] = attrs.field(default=None, repr=False)
    apiv2_key: Optional[Secret] = attrs.field(default=None, repr=False)
    apiv2_sign_type: str = "HMAC-SHA256"

    @property
    def apiv3(self) -> bool:
        """True when these credentials sign APIv3 requests; False for an APIv2-only merchant."""
        return self.serial_no is not None and self.signer is not None

    def apiv3_refusal(self, subject: str, hint: str = "") -> Optional[str]:
        """Why ``subject`` cannot be done with these credentials (then ``hint``), or ``None`` when they are APIv3's."""
        if self.serial_no is None or self.signer is None:
            return f"{subject} needs the APIv3 credentials, and this engine is APIv2-only: {APIV3_REMEDY}{hint}"
        return None

    def require_apiv3(self, subject: str, hint: str = "") -> tuple[str, MerchantSigner]:
        """The serial and signer, or a ``ConfigurationError`` saying that ``subject`` needs them (then ``hint``)."""
        if self.serial_no is None or self.signer is None:
            raise ConfigurationError(str(self.apiv3_refusal(subject, hint)))
        return self.serial_no, self.signer

    def sign(self, message: bytes) -> str:
        """The base64 signature of ``message`` with the merchant key: every merchant signature is made here."""
        _, signer = self.require_apiv3("a signature with the merchant's API key (APIv3 requests, payment invocation)")
        signature = signer.sign(message)
        if not isinstance(signature, (bytes, bytearray)):
            raise ConfigurationError(f"signer.sign returned {type(signature).__name__}, not bytes")
        return base64.b64encode(signature).decode("ascii")

    def decrypt(self, ciphertext_b64: str) -> str:
        """An answer field WeChat Pay encrypted for the merchant; ``ValueError`` when it does not decrypt."""
        _, signer = self.require_apiv3("decrypting an answer field encrypted for the merchant's API key")
        decrypt = getattr(signer, "decrypt", None)
        if decrypt is None:
            raise ConfigurationError("the signer has no decrypt(ciphertext) method, needed for encrypted answer fields")
        try:
            return bytes(decrypt(base64.b64decode(ciphertext_b64, validate=True))).decode("utf-8")
        except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
            raise ValueError("RSA-OAEP decryption failed") from None

    def public_key(self) -> Optional[rsa.RSAPublicKey]:
        """The merchant public key, when the signer can tell it (test tools encrypt answers with it)."""
        public_key = getattr(self.signer, "public_key", None)
        return public_key() if callable(public_key) else None


@attrs.frozen
class PlatformKey:
    """A WeChat Pay verifying/encrypting key, named by a public key id or a certificate serial."""

    key_id: str
    public_key: rsa.RSAPublicKey = attrs.field(repr=False)
    kind: str = "public_key"  # or "certificate"; or "pay_bank" (engine.keys.pay_bank_key), never in a keyring
    not_before: Optional[dt.datetime] = None
    not_after: Optional[dt.datetime] = None

    @classmethod
    def from_certificate(cls, cert: x509.Certificate) -> "PlatformKey":
        return cls(
            key_id=certificate_serial(cert),
            public_key=cert.public_key(),  # type: ignore[arg-type]
            kind="certificate",
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
        )

    def valid_at(self, moment: dt.datetime) -> bool:
        after_start = self.not_before is None or self.not_before <= moment
        return after_start and (self.not_after is None or moment <= self.not_after)


class PlatformKeyring:
    """WeChat Pay's keys this merchant trusts, by public key id and by certificate serial."""

    def __init__(self, keys: Iterable[PlatformKey] = ()) -> None:
        self._keys: dict[str, PlatformKey] = {}
        for key in keys:
            self.add(key)

    def add(self, key: PlatformKey) -> None:
        self._keys[normalize_serial(key.key_id)] = key

    def find(self, key_id: str) -> Optional[PlatformKey]:
        return self._keys.get(normalize_serial(key_id))

    def ids(self) -> list[str]:
        return [key.key_id for key in self._keys.values()]

    def __bool__(self) -> bool:
        return bool(self._keys)

    def __repr__(self) -> str:
        return f"PlatformKeyring({self.ids()!r})"

    def preferred(self, now: Optional[float] = None) -> Optional[PlatformKey]:
        """The key to encrypt with and to name in ``Wechatpay-Serial`` (``now``: Unix seconds)."""
        keys = list(self._keys.values())
        public = [k for k in keys if k.kind == "public_key"]
        if public:
            return public[-1]
        moment = dt.datetime.fromtimestamp(time.time() if now is None else now, dt.UTC)
        epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
        valid = [(k.not_before or epoch, order, k) for order, k in enumerate(keys) if k.valid_at(moment)]
        return max(valid, key=lambda entry: entry[:2])[2] if valid else None  # ties: the one added last
