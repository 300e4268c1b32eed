"""Client-side payment invocation: the parameters a mini program, JSAPI page or app needs (§1).

Design decisions:

* The signature is the same SHA256withRSA over lines ending in ``\\n`` as API requests, with the
  merchant key: JSAPI/mini-program ``appId\\ntimeStamp\\nnonceStr\\npackage\\n``; APP
  ``appid\\ntimestamp\\nnoncestr\\nprepayid\\n``, made by the merchant's key-level signer like every other
  merchant signature. Parameter names and casing are exactly what
  ``wx.requestPayment`` and the app SDKs expect, so the result can be handed to the client as is.
* Timestamp and nonce come from the engine's injectable clock and nonce factory.
"""

from __future__ import annotations

from typing import Callable

from engine.keys import MerchantCredentials


def _signed(credentials: MerchantCredentials, *lines: str) -> str:
    return credentials.sign("".join(f"{line}\n" for line in lines).encode("utf-8"))


def jsapi_parameters(
    credentials: MerchantCredentials, appid: str, prepay_id: str, clock: Callable[[], float], nonce: Callable[[], str]
) -> dict[str, str]:
    """``wx.requestPayment`` / JSAPI ``WeixinJSBridge`` parameters for a prepay_id."""
    timestamp, nonce_str, package = str(int(clock())), nonce(), f"prepay_id={prepay_id}"
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
    timestamp, nonce_str = str(int(clock())), nonce()
    return {
        "appid": appid,
        "partnerid": credentials.mchid,
        "prepayid": prepay_id,
        "package": "Sign=WXPay",
        "noncestr": nonce_str,
        "timestamp": timestamp,
        "sign": _signed(credentials, appid, timestamp, nonce_str, prepay_id),
    }
