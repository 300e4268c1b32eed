"""The exact strings of the APIv3 signing protocol (PROTOCOL.md §1 and §2), shared by both sides.

Design decisions:

* These functions are the single definition of each message and header format; the client signer,
  the verifier, the sandbox and the golden tests all call them, so the two ends of a conversation
  cannot drift apart.
* Messages are bytes built from the *raw* request target and the *raw* body: nothing is re-encoded
  or re-serialized between signing and sending (or receiving and verifying).
* ``parse_authorization`` accepts the five parameters in any order, as WeChat Pay does.
"""

from __future__ import annotations

import re
import secrets

SCHEME_RSA = "WECHATPAY2-SHA256-RSA2048"
PROBE_PREFIX = "WECHATPAY/SIGNTEST/"
CLOCK_WINDOW_SECONDS = 300
AUTH_PARAMS = ("mchid", "nonce_str", "timestamp", "serial_no", "signature")

H_TIMESTAMP = "Wechatpay-Timestamp"
H_NONCE = "Wechatpay-Nonce"
H_SIGNATURE = "Wechatpay-Signature"
H_SERIAL = "Wechatpay-Serial"
H_SIGNATURE_TYPE = "Wechatpay-Signature-Type"
H_REQUEST_ID = "Request-ID"

_AUTH_PAIR = re.compile(r'\s*([a-z_]+)="([^"]*)"\s*(?:,|$)')


def new_nonce() -> str:
    """32 random upper-case hex characters (16 bytes), the form of the official signing example.

    One ``urandom`` call: drawing 32 characters one by one cost more than the rest of the pipeline.
    """
    return secrets.token_hex(16).upper()


def request_message(method: str, target: str, timestamp: int | str, nonce: str, body: bytes) -> bytes:
    """``METHOD\\nTARGET\\nTIMESTAMP\\nNONCE\\nBODY\\n``: what the merchant signs."""
    head = f"{method}\n{target}\n{timestamp}\n{nonce}\n".encode()
    return head + body + b"\n"


def response_message(timestamp: int | str, nonce: str, body: bytes) -> bytes:
    """``TIMESTAMP\\nNONCE\\nBODY\\n``: what WeChat Pay signs in answers and callbacks."""
    return f"{timestamp}\n{nonce}\n".encode() + body + b"\n"


def format_authorization(scheme: str, params: dict[str, str]) -> str:
    """The Authorization value, parameters in the official SDKs' order."""
    pairs = ",".join([f'{name}="{params[name]}"' for name in AUTH_PARAMS])
    return f"{scheme} {pairs}"


def parse_authorization(value: str) -> tuple[str, dict[str, str]]:
    """Split an Authorization value into its scheme and parameters (any order).

    Raises ``ValueError`` when the value is not ``SCHEME k="v",...`` with all five parameters.
    """
    scheme, _, rest = value.strip().partition(" ")
    params: dict[str, str] = {}
    position = 0
    while position < len(rest):
        match = _AUTH_PAIR.match(rest, position)
        if match is None:
            raise ValueError("malformed Authorization parameters")
        params[match.group(1)] = match.group(2)
        position = match.end()
    missing = [name for name in AUTH_PARAMS if name not in params]
    if not scheme or missing:
        raise ValueError(f"Authorization lacks {', '.join(missing) or 'a scheme'}")
    return scheme, params
