"""The exact strings of the APIv3 signing protocol (PROTOCOL.md §1 and §2), shared by both sides.

Design decisions:

* These functions are the single definition of each message and header format; the client signer,
  the verifier, the sandbox and the golden tests all call them, so the two ends of a conversation
  cannot drift apart.
* Messages are bytes built from the *raw* request target and the *raw* body: nothing is re-encoded
  or re-serialized between signing and sending (or receiving and verifying).
* ``parse_authorization`` accepts the five parameters in any order, as WeChat Pay does.
* ``check_signature_headers`` is the one judge of whether a peer's signature headers are even
  well-formed (present, printable ASCII, bounded length, a digit timestamp), so nothing downstream
  ever parses or echoes an unbounded or undecodable header value.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from engine.errors import SignatureError
from engine.wire import Headers

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


SIGNATURE_HEADERS = (H_TIMESTAMP, H_NONCE, H_SIGNATURE, H_SERIAL)
# Generous bounds on what a peer may put in each signature header (a real one is 10, 32, 344 and
# 40 characters long): past them, a value is refused before it is parsed, decoded or echoed.
# In this order: the four of SIGNATURE_HEADERS, then the type (check_signature_headers reads by position).
HEADER_LIMITS = {H_TIMESTAMP: 12, H_NONCE: 128, H_SIGNATURE: 2048, H_SERIAL: 128, H_SIGNATURE_TYPE: 64}


def check_signature_headers(headers: Any) -> tuple[str, str, str, str]:
    """Refuse missing or malformed signature headers with a ``SignatureError``, before anything is parsed.

    Each must be text of printable ASCII within ``HEADER_LIMITS``; the timestamp must be digits. This
    runs on the headers alone (the transports call it before reading a 2xx body) and again in the
    built-in verifier, for answers and callbacks alike. Returns the timestamp, nonce, signature and
    serial it checked, so the verifier reads each once. The check of an ``engine.wire.Headers`` is
    kept with it (``Headers.derived``): the verifier does not repeat the transport's.
    """
    if isinstance(headers, Headers):
        return headers.derived(_checked_signature_headers)
    return _checked_signature_headers(headers)


def _checked_signature_headers(headers: Any) -> tuple[str, str, str, str]:
    values = _header_values(headers)
    if not all(values[:4]):  # the names are worked out only for the message
        missing = [name for name, value in zip(SIGNATURE_HEADERS, values, strict=False) if not value]
        raise SignatureError("missing_header", f"answer lacks signature header(s): {', '.join(missing)}")
    timestamp = values[0]
    if not (_printable(timestamp, HEADER_LIMITS[H_TIMESTAMP]) and timestamp.isdigit()):
        raise SignatureError("bad_timestamp", f"{H_TIMESTAMP} is not a Unix time in seconds")
    for (name, limit), value in zip(HEADER_LIMITS.items(), values, strict=True):
        # _printable, inlined: this loop runs for every answer. isalnum first: for ASCII text it
        # is a table lookup, where isprintable consults the Unicode database for every character
        if value is not None and not (
            isinstance(value, str)
            and len(value) <= limit
            and value.isascii()
            and (value.isalnum() or value.isprintable())
        ):
            raise SignatureError("malformed_header", f"{name} is not printable ASCII of at most {limit} characters")
    signature_type = values[4] or SCHEME_RSA
    if signature_type != SCHEME_RSA:
        raise SignatureError("unsupported_type", f"unsupported {H_SIGNATURE_TYPE} {signature_type!r}")
    return values[0], values[1], values[2], values[3]


def screen_answer(status: int, headers: Any) -> None:
    """The transports' pre-read check: a 2xx must carry well-formed signature headers."""
    if 200 <= status < 300:
        check_signature_headers(headers)


_LOWERED = tuple(name.lower() for name in HEADER_LIMITS)


def _header_values(headers: Any) -> list[Any]:
    """The values of ``HEADER_LIMITS``'s headers, in its order (``None`` when absent, all of them
    from something that is not a mapping)."""
    if isinstance(headers, Headers):
        return headers.values_of(_LOWERED)
    try:
        return [headers.get(name) for name in HEADER_LIMITS]
    except (AttributeError, TypeError):
        return [None] * len(HEADER_LIMITS)


def _printable(value: Any, limit: int) -> bool:
    return isinstance(value, str) and len(value) <= limit and value.isascii() and value.isprintable()
