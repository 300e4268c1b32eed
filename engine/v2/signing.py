"""APIv2 signatures and the refund-notification cipher (PROTOCOL.md §11), as pure functions.

Design decisions:

* **The sign string** (official 安全规范): every field except ``sign`` whose value is not empty,
  sorted by name in byte order (case-sensitive: ``REMARK`` < ``RE_OPENID`` < ``re_openid``), joined
  ``k=v`` with ``&``, then ``&key=<APIv2 key>`` appended. ``MD5`` is the upper-case hex MD5 of that
  string; ``HMAC-SHA256`` the upper-case hex HMAC-SHA256 of the *same* string (the ``&key=`` suffix
  included) keyed with the APIv2 key. The vectors of PROTOCOL.md §13 pin both.
* **One algorithm per exchange.** ``sign_type_for`` decides which algorithm a request uses, from the
  operation's own facts: the caller's ``sign_type`` when given; else the engine's preferred type
  when the operation's ``sign_type`` field allows it; an operation without a ``sign_type`` field
  signs MD5 (the protocol's default). The verifier asks the same function, so an answer is checked
  with exactly the algorithm its request used, never "whichever verifies".
* Comparisons are constant-time (``hmac.compare_digest``); nothing here logs or formats a key.
  Keys arrive boxed (``engine.secret.Secret``; raw bytes are accepted too, for the sandbox and the
  vectors) and are opened inline in the cryptographic call, so no frame of a traceback, not even
  one of a forged callback's refusal, holds the APIv2 key or the refund key derived from it.
* **Refund notifications** carry ``req_info``: base64 of AES-256-ECB/PKCS#7 ciphertext whose key is
  the lower-case hex MD5 of the APIv2 key (32 ASCII bytes). ECB is WeChat Pay's choice, not ours: it
  hides the content but does not authenticate it, so a decrypted ``req_info`` is still checked to be
  a well-formed document naming this merchant before anyone acts on it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Mapping, Optional, Union

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from engine.descriptor import Descriptor
from engine.secret import Secret, reveal

MD5 = "MD5"
HMAC_SHA256 = "HMAC-SHA256"
SIGN_TYPES = (MD5, HMAC_SHA256)
SIGN_FIELD = "sign"
SIGN_TYPE_FIELD = "sign_type"


def sign_string(fields: Mapping[str, Optional[str]]) -> str:
    """``stringA``: non-empty fields but ``sign``, sorted by name (byte order), joined ``k=v&``."""
    return "&".join(f"{name}={fields[name]}" for name in sorted(fields) if name != SIGN_FIELD and fields[name])


Key = Union[bytes, Secret]


def sign(fields: Mapping[str, Optional[str]], key: Key, sign_type: str) -> str:
    """The ``sign`` value of ``fields`` under ``sign_type`` with the APIv2 ``key``."""
    if sign_type not in SIGN_TYPES:  # before the message, which holds the key, exists
        raise ValueError(f"unknown APIv2 sign type {sign_type!r}")
    message = (sign_string(fields) + "&key=").encode("utf-8") + reveal(key)
    if sign_type == MD5:
        return hashlib.md5(message).hexdigest().upper()
    return hmac.new(reveal(key), message, hashlib.sha256).hexdigest().upper()


def verifies(fields: Mapping[str, Optional[str]], key: Key, sign_type: str) -> bool:
    """Whether ``fields['sign']`` is the sign of the other fields under exactly ``sign_type``."""
    given = fields.get(SIGN_FIELD) or ""
    if not given.isascii():
        return False
    return hmac.compare_digest(sign(fields, key, sign_type), given.upper())


def other(sign_type: str) -> str:
    return HMAC_SHA256 if sign_type == MD5 else MD5


def allowed_sign_types(descriptor: Descriptor) -> tuple[str, ...]:
    """The algorithms an operation accepts: its ``sign_type`` enum, both without one, MD5 with no field."""
    field = descriptor.request.body.get(SIGN_TYPE_FIELD) or descriptor.request.query.get(SIGN_TYPE_FIELD)
    if field is None:
        return (MD5,)
    return tuple(t for t in (field.enum or SIGN_TYPES) if t in SIGN_TYPES) or (MD5,)


def sign_type_for(descriptor: Descriptor, fields: Mapping[str, str], preferred: str) -> str:
    """The algorithm a request uses: the caller's choice, else ``preferred`` where allowed, else the first allowed."""
    chosen = fields.get(SIGN_TYPE_FIELD)
    if chosen:
        return chosen
    allowed = allowed_sign_types(descriptor)
    return preferred if preferred in allowed else allowed[0]


# -- refund notifications ------------------------------------------------------------------------


def refund_key(apiv2_key: Key) -> bytes:
    """The AES-256 key of ``req_info``: the lower-case hex MD5 of the APIv2 key, as 32 ASCII bytes."""
    return hashlib.md5(reveal(apiv2_key)).hexdigest().encode("ascii")


def refund_plaintext(apiv2_key: Key, req_info: str) -> bytes:
    """``req_info`` opened with the refund key of ``apiv2_key`` (``ValueError`` as ``ecb_decrypt``)."""
    return ecb_decrypt(Secret(refund_key(apiv2_key)), req_info)


def ecb_decrypt(key: Key, ciphertext_b64: str) -> bytes:
    """AES-256-ECB/PKCS#7 of base64 text; ``ValueError`` with a fixed message when it does not decrypt."""
    try:
        data = base64.b64decode(ciphertext_b64, validate=True)
        decryptor = Cipher(algorithms.AES(reveal(key)), modes.ECB()).decryptor()
        padded = decryptor.update(data) + decryptor.finalize()
        unpadder = padding.PKCS7(128).unpadder()
        return unpadder.update(padded) + unpadder.finalize()
    except (binascii.Error, ValueError):
        raise ValueError("AES-256-ECB decryption failed") from None


def ecb_encrypt(key: Key, plaintext: bytes) -> str:
    """The inverse of ``ecb_decrypt`` (the sandbox builds refund notifications with it)."""
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = Cipher(algorithms.AES(reveal(key)), modes.ECB()).encryptor()
    return base64.b64encode(encryptor.update(padded) + encryptor.finalize()).decode("ascii")
