"""Built-in verifier for answers and callbacks (PROTOCOL.md §2).

Design decisions:

* Checks run cheapest first and each failure has its own ``SignatureError.reason``: missing headers,
  an unsupported signature type, a malformed or stale timestamp (5-minute window), a
  ``WECHATPAY/SIGNTEST/`` probe, an unknown ``Wechatpay-Serial``, and finally the RSA check itself.
* The key is chosen by ``Wechatpay-Serial`` among public keys and platform certificates alike, so an
  engine can run both modes at once during a migration.
* A probe is reported as such but is never special-cased as success: it fails like any bad signature.
* Messages name headers, serials and the clock skew, never the signature value.
* It verifies APIv3 answers, callbacks (no descriptor) and certificate lists, and defers (``None``)
  for a descriptor of another protocol family.
"""

from __future__ import annotations

import datetime as dt
from typing import Optional

from engine.crypto import rsa_verify
from engine.descriptor import Descriptor
from engine.errors import SignatureError
from engine.hookspecs import hookimpl
from engine.keys import PlatformKey, PlatformKeyring
from engine.protocol import (
    CLOCK_WINDOW_SECONDS,
    PROBE_PREFIX,
    check_signature_headers,
    response_message,
)
from engine.wire import Headers, RawResponse


@hookimpl(trylast=True)
def wxpay_verify_response(
    response: RawResponse, keyring: PlatformKeyring, now: int, descriptor: Optional[Descriptor]
) -> Optional[str]:
    if descriptor is not None and descriptor.protocol != "v3":
        return None
    return verify_signed(response.headers, response.body, keyring, now)


def verify_signed(headers: Headers, body: bytes, keyring: PlatformKeyring, now: int) -> str:
    """Verify a signed answer or callback; return the key id, or raise ``SignatureError``."""
    timestamp, nonce, signature, serial = check_signature_headers(headers)
    _check_timestamp(timestamp, now)
    if signature.startswith(PROBE_PREFIX):
        raise SignatureError("probe", "signature is a WECHATPAY/SIGNTEST/ probe; treated as a failed verification")
    key = _find_key(keyring, serial)
    if key.kind == "certificate" and not key.valid_at(dt.datetime.fromtimestamp(now, dt.UTC)):
        raise SignatureError("expired", f"answer signed with certificate {key.key_id}, outside its validity period")
    message = response_message(timestamp, nonce, body)
    if not rsa_verify(key.public_key, message, signature):
        raise SignatureError("mismatch", f"signature does not verify with key {key.key_id}")
    return key.key_id


def _check_timestamp(value: str, now: int) -> None:
    skew = abs(now - int(value))  # check_signature_headers made it at most 12 ASCII digits
    if skew > CLOCK_WINDOW_SECONDS:
        raise SignatureError(
            "stale", f"answer timestamp is {skew} s away from the local clock (window {CLOCK_WINDOW_SECONDS} s)"
        )


def _find_key(keyring: PlatformKeyring, serial: str) -> PlatformKey:
    key = keyring.find(serial)
    if key is None:
        known = ", ".join(keyring.ids()) or "none"
        raise SignatureError("unknown_serial", f"answer signed with unknown key {serial!r}; known keys: {known}")
    return key
