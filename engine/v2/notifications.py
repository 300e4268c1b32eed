"""APIv2 callbacks: payment results (signed) and refund results (``req_info`` encrypted), and their XML reply.

Design decisions:

* APIv2 callbacks share nothing with APIv3's (no ``Wechatpay-*`` headers, no JSON envelope, no
  timestamp, no notification id, an XML reply), so they have their own entry points
  (``Engine.parse_v2_notification`` / ``handle_v2_notification`` / ``v2_notification_handler``)
  instead of a branch inside the APIv3 receiver. Both raise the same ``NotificationError`` family.
* **Checks, in order.** The body is read by the refusing XML parser (``MalformedNotificationError``
  for a DOCTYPE, entities, nesting, repeats or size); ``return_code`` must be ``SUCCESS`` (a FAIL
  callback carries nothing to act on); ``mch_id`` must be this merchant's. Then:
  - a **refund** callback (it carries ``req_info``) is not signed by WeChat Pay: its ``req_info`` is
    decrypted (AES-256-ECB, key = MD5 of the APIv2 key; ``NotificationDecryptionError`` when it does
    not decrypt) and must be a well-formed ``<root>`` document; being able to decrypt it is the only
    proof of origin the protocol offers, which is why a document that decrypts to anything else is
    refused rather than half-trusted;
  - a **payment** callback must carry a ``sign`` that verifies under the ``sign_type`` it declares
    (MD5 when it declares none), and under that type only (``NotificationSignatureError``,
    ``wrong_sign_type`` when it verifies only under the other).
* No timestamp and no id means no freshness window and no replay store: WeChat Pay resends the same
  callback until it is acknowledged, so handlers must be idempotent (by ``out_trade_no`` /
  ``out_refund_no``); the docs say so too.
* **Replies** (PROTOCOL.md §11): success is HTTP 200 with
  ``<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>``;
  a failure is the same shape with ``FAIL`` and a short public reason (never key or field details),
  sent with 401 for a failed verification, 400 for a malformed callback, 500 when the handler failed,
  so both WeChat Pay and the merchant's monitoring see it as a failure and it is sent again.
"""

from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable, Optional, Union

import attrs

from engine.errors import (
    MalformedNotificationError,
    NotificationDecryptionError,
    NotificationError,
    NotificationSignatureError,
)
from engine.keys import MerchantCredentials
from engine.notifications import Reply
from engine.secret import Secret
from engine.v2 import signing, xmlcodec

logger = logging.getLogger("engine.notifications")
PAYMENT = "payment"
REFUND = "refund"
SUCCESS_REPLY = b"<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>"
XML_HEADERS = {"Content-Type": "text/xml; charset=utf-8"}


@attrs.frozen
class V2Notification:
    """An APIv2 callback, checked and opened.

    ``kind`` is ``payment`` or ``refund``; ``data`` the business fields (for a refund, the decrypted
    ``req_info``); ``envelope`` the outer fields as received (``req_info`` left out); ``verified_with``
    ``apiv2:MD5``/``apiv2:HMAC-SHA256`` for a verified payment callback, ``apiv2:req_info`` for a
    refund callback whose ``req_info`` decrypted.
    """

    kind: str
    data: dict[str, str] = attrs.field(repr=False)
    envelope: dict[str, str] = attrs.field(repr=False)
    verified_with: str


V2Handler = Callable[[V2Notification], Union[Awaitable[None], None]]


def parse_v2_notification(body: Union[bytes, str], credentials: MerchantCredentials) -> V2Notification:
    """Check and open one APIv2 callback; raise a ``NotificationError`` subclass saying what failed."""
    key = credentials.apiv2_key
    if key is None:
        raise NotificationDecryptionError("the engine has no apiv2_key to check APIv2 callbacks with")
    fields = _fields(body.encode("utf-8") if isinstance(body, str) else bytes(body), ("xml",))
    if fields.get("return_code") != "SUCCESS":
        raise MalformedNotificationError("APIv2 callback does not say return_code SUCCESS")
    if fields.get("mch_id", credentials.mchid) != credentials.mchid:
        raise MalformedNotificationError("APIv2 callback is for another merchant")
    if "req_info" in fields:
        return _refund(fields, key, credentials.mchid)
    return _payment(fields, key)


def _fields(body: bytes, roots: tuple[str, ...]) -> dict[str, str]:
    try:
        return xmlcodec.parse(body, roots)
    except xmlcodec.MalformedXmlError as exc:
        raise MalformedNotificationError(f"APIv2 callback refused: {exc}") from None


def _refund(fields: dict[str, str], key: Secret, mchid: str) -> V2Notification:
    try:
        plaintext = signing.refund_plaintext(key, fields["req_info"])
    except ValueError:
        raise NotificationDecryptionError(
            "req_info does not decrypt under the APIv2 key (wrong key or tampered)"
        ) from None
    try:
        data = xmlcodec.parse(plaintext, ("root",))
    except xmlcodec.MalformedXmlError:
        # AES-ECB authenticates nothing: under a wrong key about one ciphertext in 256 still unpads,
        # into noise. Such noise and a forged plaintext look alike, so the message names both.
        raise NotificationDecryptionError(
            "req_info does not decrypt under the APIv2 key to a refund document (wrong key or tampered)"
        ) from None
    envelope = {k: v for k, v in fields.items() if k != "req_info"}
    return V2Notification(REFUND, data, envelope, "apiv2:req_info")


def _payment(fields: dict[str, str], key: Secret) -> V2Notification:
    declared = fields.get(signing.SIGN_TYPE_FIELD) or signing.MD5
    if declared not in signing.SIGN_TYPES:
        raise NotificationSignatureError("unsupported_type", f"APIv2 callback declares sign_type {declared!r}")
    if not fields.get(signing.SIGN_FIELD):
        raise NotificationSignatureError("missing_sign", "APIv2 payment callback carries no sign")
    if not signing.verifies(fields, key, declared):
        if signing.verifies(fields, key, signing.other(declared)):
            reason, message = (
                "wrong_sign_type",
                f"APIv2 callback is signed with {signing.other(declared)}, not {declared}",
            )
        else:
            reason, message = "mismatch", f"APIv2 callback sign ({declared}) does not verify with the APIv2 key"
        raise NotificationSignatureError(reason, message)
    return V2Notification(PAYMENT, dict(fields), dict(fields), f"apiv2:{declared}")


def success_reply() -> Reply:
    """The documented acknowledgement: WeChat Pay stops sending this callback."""
    return Reply(200, SUCCESS_REPLY, XML_HEADERS)


def failure_reply(error: Union[BaseException, str], status: Optional[int] = None) -> Reply:
    """``return_code`` FAIL with a short public reason; WeChat Pay sends the callback again."""
    if status is None:
        status = (
            401
            if isinstance(error, NotificationSignatureError)
            else 400
            if isinstance(error, NotificationError)
            else 500
        )
    reason = error if isinstance(error, str) else _public_reason(error)
    body = xmlcodec.encode_cdata({"return_code": "FAIL", "return_msg": reason})
    return Reply(status, body, XML_HEADERS)


def _public_reason(error: BaseException) -> str:
    for kind, reason in (
        (NotificationSignatureError, "签名失败"),
        (NotificationDecryptionError, "解密失败"),
        (MalformedNotificationError, "报文格式错误"),
    ):
        if isinstance(error, kind):
            return reason
    return "处理失败"


class V2NotificationReceiver:
    """An engine's APIv2 callback side: its merchant id and APIv2 key."""

    def __init__(self, credentials: MerchantCredentials) -> None:
        self.credentials = credentials

    def parse(self, body: Union[bytes, str]) -> V2Notification:
        return parse_v2_notification(body, self.credentials)

    async def handle(self, body: Union[bytes, str], handler: V2Handler) -> Reply:
        """Parse, run ``handler``; the success reply when it returns, a failure reply otherwise."""
        try:
            notification = self.parse(body)
        except NotificationError as exc:
            return failure_reply(exc)
        try:
            outcome = handler(notification)
            if outcome is not None:
                await outcome
        except Exception:  # any handler failure means "send it again", never a crash
            logger.exception("APIv2 %s callback handler failed", notification.kind)
            return failure_reply("处理失败，请稍后重试", 500)
        return success_reply()

    def aiohttp_handler(self, handler: V2Handler) -> Callable[[Any], Awaitable[Any]]:
        """An ``aiohttp.web`` request handler that receives APIv2 callbacks for ``handler``."""
        from aiohttp import web

        async def receive(request: web.Request) -> web.Response:
            reply = await self.handle(await request.read(), handler)
            return web.Response(status=reply.status, body=reply.body, headers=dict(reply.headers))

        return receive
