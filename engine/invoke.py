"""Client-side payment invocation: the parameters a mini program, JSAPI page or app needs (§1).

Design decisions:

* The signature is the same SHA256withRSA over lines ending in ``\\n`` as API requests, with the
  merchant key: JSAPI/mini-program ``appId\\ntimeStamp\\nnonceStr\\npackage\\n``; APP
  ``appid\\ntimestamp\\nnoncestr\\nprepayid\\n``, made by the merchant's key-level signer like every other
  merchant signature. Parameter names and casing are exactly what
  ``wx.requestPayment`` and the app SDKs expect, so the result can be handed to the client as is.
* Timestamp and nonce come from the engine's injectable clock and nonce factory.
* Both forms take their inputs through one step (``_stamped``): ``appid`` and ``prepay_id`` must be
  non-empty printable ASCII without whitespace, or the call is a ``UsageError`` before anything is
  signed. The signed message is lines ending in ``\\n``, so a value with a line break in it would
  sign different fields from the ones handed to the client; a space, tab or NUL (a value pasted
  with its padding, read from a fixed-width column) would be signed as given into an id that no
  WeChat Pay app or order has. Real appids (``wx`` + 16 hex digits) and prepay_ids are printable
  ASCII without spaces; nothing tighter is checked, so an id of a shape not seen yet still works.
* A ``prepay_id`` starting ``prepay_id=`` is refused: it is the JSAPI ``package`` handed back as the
  id, and the engine writes that prefix itself, so the package would read ``prepay_id=prepay_id=...``.
"""

from __future__ import annotations

from typing import Any, Callable

from engine.errors import UsageError
from engine.keys import MerchantCredentials

PACKAGE_PREFIX = "prepay_id="  # what JSAPI's package puts before the id


def _stamped(appid: Any, prepay_id: Any, clock: Callable[[], float], nonce: Callable[[], str]) -> tuple[str, str]:
    """The timestamp and nonce of one invocation, once ``appid`` and ``prepay_id`` are fit to sign."""
    for name, value in (("appid", appid), ("prepay_id", prepay_id)):
        unfit = _unfit(value)
        if unfit:
            raise UsageError(f"{name} must be a non-empty string of printable ASCII without whitespace, got {unfit}")
    if prepay_id.startswith(PACKAGE_PREFIX):
        raise UsageError(
            f"prepay_id must be the id alone, without {PACKAGE_PREFIX!r}: the engine adds that prefix itself"
        )
    return str(int(clock())), nonce()


def _unfit(value: Any) -> str:
    """What is wrong with ``value`` as one signed value (``""`` when nothing is); never the value itself."""
    if not isinstance(value, str):
        return type(value).__name__
    if not value:
        return "an empty string"
    if "\n" in value or "\r" in value:
        return "a line break in it"
    if any(c.isspace() for c in value):  # before control characters: a tab is both, and whitespace to a reader
        return "whitespace in it"
    if any(c < " " or c == "\x7f" for c in value):
        return "a control character in it"
    return "" if value.isascii() else "a character outside printable ASCII"


def _signed(credentials: MerchantCredentials, *lines: str) -> str:
    return credentials.sign("".join(f"{line}\n" for line in lines).encode("utf-8"))


def jsapi_parameters(
    credentials: MerchantCredentials, appid: str, prepay_id: str, clock: Callable[[], float], nonce: Callable[[], str]
) -> dict[str, str]:
    """``wx.requestPayment`` / JSAPI ``WeixinJSBridge`` parameters for a prepay_id."""
    timestamp, nonce_str = _stamped(appid, prepay_id, clock, nonce)
    package = f"prepay_id={prepay_id}"
    return {
        "appId": appid,
        "timeStamp": timestamp,
        "nonceStr": nonce_str,
        "package": package,
        "signType": "RSA",
        "paySign": _signed(credentials, appid, timestamp, nonce_str, package),
    }


def app_parameters(
    credentials: MerchantCredentials, appid: str, prepay_id: str, clock: Callable[[], float], nonce: Callable[[], str]
) -> dict[str, str]:
    """The APP SDK's ``PayReq`` parameters for a prepay_id."""
    timestamp, nonce_str = _stamped(appid, prepay_id, clock, nonce)
    return {
        "appid": appid,
        "partnerid": credentials.mchid,
        "prepayid": prepay_id,
        "package": "Sign=WXPay",
        "noncestr": nonce_str,
        "timestamp": timestamp,
        "sign": _signed(credentials, appid, timestamp, nonce_str, prepay_id),
    }
