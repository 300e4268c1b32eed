"""The cryptographic primitives of APIv3, as small pure functions over ``cryptography`` objects.

Design decisions:

* Signatures are RSASSA-PKCS1-v1_5 over SHA-256 (``SHA256withRSA``), base64 with padding;
  field encryption is RSAES-OAEP with SHA-1 and MGF1-SHA-1 and an empty label (PROTOCOL.md §1, §3).
* Verification answers ``True``/``False`` and never raises on hostile input: a signature that is not
  even base64 (a ``WECHATPAY/SIGNTEST/`` probe, say) is just a signature that does not verify.
* Decryption failures raise ``ValueError`` with a fixed message: the caller decides which typed
  error it becomes, and no ciphertext or key detail leaks through the message.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from engine.secret import reveal

_OAEP = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
_PKCS1 = padding.PKCS1v15()


def rsa_sign(private_key: rsa.RSAPrivateKey, message: bytes) -> str:
    """SHA256withRSA signature of ``message``, base64-encoded."""
    return base64.b64encode(rsa_sign_bytes(private_key, message)).decode("ascii")


def rsa_sign_bytes(private_key: rsa.RSAPrivateKey, message: bytes) -> bytes:
    """SHA256withRSA signature of ``message``, raw (what a key-level signer returns)."""
    return private_key.sign(message, _PKCS1, hashes.SHA256())


def oaep_decrypt_bytes(private_key: rsa.RSAPrivateKey, ciphertext: bytes) -> bytes:
    """RSA-OAEP/SHA-1 decryption of raw ciphertext (``ValueError`` when it does not decrypt)."""
    return private_key.decrypt(ciphertext, _OAEP)


def rsa_verify(public_key: rsa.RSAPublicKey, message: bytes, signature_b64: str) -> bool:
    """True when ``signature_b64`` is a valid SHA256withRSA signature of ``message``."""
    try:
        signature = base64.b64decode(signature_b64, validate=True)
        public_key.verify(signature, message, _PKCS1, hashes.SHA256())
    except (binascii.Error, ValueError, InvalidSignature):
        return False
    return True


def oaep_encrypt(public_key: rsa.RSAPublicKey, plaintext: str) -> str:
    """Encrypt a sensitive field for WeChat Pay (or, in the sandbox, for the merchant)."""
    return base64.b64encode(public_key.encrypt(plaintext.encode("utf-8"), _OAEP)).decode("ascii")


def oaep_decrypt(private_key: rsa.RSAPrivateKey, ciphertext_b64: str) -> str:
    """Decrypt a field encrypted with RSA-OAEP/SHA-1; ``ValueError`` when it cannot be."""
    try:
        data = base64.b64decode(ciphertext_b64, validate=True)
        return private_key.decrypt(data, _OAEP).decode("utf-8")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise ValueError("RSA-OAEP decryption failed") from None


def aead_decrypt(key: Any, nonce: str, associated_data: str, ciphertext_b64: str) -> bytes:
    """AEAD_AES_256_GCM as WeChat Pay uses it for callbacks and certificates (PROTOCOL.md §4).

    ``key`` is the APIv3 key, usually in a ``Secret``: it is opened inline, never bound to a local.
    Any malformed input (not base64, not text, a wrong length) is the same ``ValueError``.
    """
    try:
        data = base64.b64decode(ciphertext_b64, validate=True)
        return AESGCM(reveal(key)).decrypt(nonce.encode("utf-8"), data, associated_data.encode("utf-8"))
    except (binascii.Error, ValueError, TypeError, AttributeError, UnicodeError, InvalidTag):
        raise ValueError("AEAD_AES_256_GCM decryption failed") from None


def aead_encrypt(key: Any, nonce: str, associated_data: str, plaintext: bytes) -> str:
    """The inverse of ``aead_decrypt`` (the sandbox uses it to build callbacks)."""
    sealed = AESGCM(reveal(key)).encrypt(nonce.encode("utf-8"), plaintext, associated_data.encode("utf-8"))
    return base64.b64encode(sealed).decode("ascii")
