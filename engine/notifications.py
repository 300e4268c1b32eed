"""Receiving callbacks: verify, check freshness and replays, decrypt, and reply (PROTOCOL.md §4).

Design decisions:

* One function, ``parse_notification``, does the checks in WeChat Pay's documented order: headers
  present, timestamp within 5 minutes, signature verified with the public key or certificate that
  ``Wechatpay-Serial`` names (through the engine's own ``wxpay_verify_response`` hook, so a
  callback is trusted exactly as an answer is), envelope well-formed, not a replay, resource
  decrypted with AEAD_AES_256_GCM under the APIv3 key. Each failure has its own
  ``NotificationError`` subclass; a ``WECHATPAY/SIGNTEST/`` probe fails like any bad signature.
* Replays are judged by acknowledged ids. WeChat Pay re-sends a notification (same id, fresh
  signature) when the merchant did not acknowledge it, several times within five minutes; rejecting
  those would lose events whose first processing failed. So an id enters the store when the merchant
  *acknowledges* it (``handle_notification`` does so when the handler returns), and a notification
  whose id was acknowledged within the window is rejected as a replay.
* The store is a two-method protocol, in memory by default; a multi-process receiver plugs in a
  shared one (Redis, a database table).
* Replies follow the documented shapes: 204 without a body on success, a 4xx/5xx with
  ``{"code": "FAIL", "message": ...}`` on failure (401 for a failed verification).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Mapping, Optional, Protocol, Union

import attrs

from engine.crypto import aead_decrypt
from engine.errors import (
    EngineError,
    MalformedNotificationError,
    NotificationDecryptionError,
    NotificationError,
    NotificationSignatureError,
    ReplayedNotificationError,
    SignatureError,
    StaleNotificationError,
)
from engine.protocol import CLOCK_WINDOW_SECONDS, H_REQUEST_ID, H_SERIAL
from engine.wire import Headers, RawResponse

if TYPE_CHECKING:
    from engine.keyprovider import KeyProvider

logger = logging.getLogger("engine.notifications")
ENVELOPE_FIELDS = ("id", "create_time", "event_type", "resource_type", "resource")
RESOURCE_FIELDS = ("algorithm", "ciphertext", "nonce")


@attrs.frozen
class Notification:
    """A verified, decrypted callback. ``resource`` is the decrypted business object."""

    id: str
    create_time: str
    event_type: str
    resource_type: str
    summary: str
    original_type: str
    resource: Any = attrs.field(repr=False)
    request_id: str = ""
    verified_with: str = ""


@attrs.frozen
class Reply:
    """What to answer WeChat Pay: a status, headers and body for any web framework."""

    status: int
    body: bytes = b""
    headers: Mapping[str, str] = attrs.field(factory=dict)


class ReplayStore(Protocol):
    def acknowledged(self, notification_id: str, now: float) -> bool:
        """True when the id was acknowledged within the window."""

    def acknowledge(self, notification_id: str, now: float) -> None:
        """Remember that the merchant processed this id."""


REPLAY_MEMORY_SECONDS = 2 * CLOCK_WINDOW_SECONDS + 60
"""A callback stays acceptable until its timestamp + 300 s, and its timestamp may run 300 s ahead of
our clock, so an acknowledged id is remembered for both windows plus a margin."""


class MemoryReplayStore:
    """Acknowledged ids in memory, forgotten after ``window`` seconds (thread-safe)."""

    def __init__(self, window: float = REPLAY_MEMORY_SECONDS) -> None:
        self.window = window
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def acknowledged(self, notification_id: str, now: float) -> bool:
        with self._lock:
            self._forget_older_than(now - self.window)
            return notification_id in self._seen

    def acknowledge(self, notification_id: str, now: float) -> None:
        with self._lock:
            self._seen[notification_id] = now

    def _forget_older_than(self, moment: float) -> None:
        for stale in [k for k, seen_at in self._seen.items() if seen_at < moment]:
            del self._seen[stale]


Verify = Callable[[RawResponse], str]


def parse_notification(
    headers: Union[Mapping[str, str], Headers],
    body: Union[bytes, str],
    *,
    verify: Verify,
    apiv3_key: Optional[bytes],
    store: ReplayStore,
    now: float,
) -> Notification:
    """Check and open one callback; raise a ``NotificationError`` subclass saying what failed."""
    raw = RawResponse(200, headers if isinstance(headers, Headers) else Headers(headers), _bytes(body))
    key_id = _verified(raw, verify)
    envelope = _envelope(raw.body)
    if store.acknowledged(envelope["id"], now):
        raise ReplayedNotificationError(f"notification {envelope['id']} was already acknowledged")
    resource = envelope["resource"]
    return Notification(
        id=envelope["id"],
        create_time=str(envelope["create_time"]),
        event_type=str(envelope["event_type"]),
        resource_type=str(envelope["resource_type"]),
        summary=str(envelope.get("summary", "")),
        original_type=str(resource.get("original_type", "")),
        resource=_decrypt(resource, apiv3_key),
        request_id=raw.headers.get(H_REQUEST_ID, ""),
        verified_with=key_id,
    )


def _bytes(body: Union[bytes, str]) -> bytes:
    return body.encode("utf-8") if isinstance(body, str) else bytes(body)


def _verified(raw: RawResponse, verify: Verify) -> str:
    try:
        return verify(raw)
    except SignatureError as exc:
        if exc.reason == "stale":
            raise StaleNotificationError(str(exc).replace("answer", "callback")) from None
        raise NotificationSignatureError(exc.reason, str(exc).replace("answer", "callback")) from None


def _envelope(body: bytes) -> dict[str, Any]:
    try:
        envelope = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise MalformedNotificationError("callback body is not JSON") from None
    if not isinstance(envelope, dict):
        raise MalformedNotificationError("callback body is not a JSON object")
    missing = [name for name in ENVELOPE_FIELDS if name not in envelope]
    resource = envelope.get("resource")
    if not missing and isinstance(resource, dict):
        missing = [f"resource.{name}" for name in RESOURCE_FIELDS if not isinstance(resource.get(name), str)]
    elif not missing:
        missing = ["resource (an object)"]
    if missing:
        raise MalformedNotificationError(f"callback envelope lacks {', '.join(missing)}")
    return envelope


def _decrypt(resource: dict[str, Any], apiv3_key: Optional[bytes]) -> Any:
    if apiv3_key is None:
        raise NotificationDecryptionError("the engine has no apiv3_key to decrypt callbacks with")
    if resource["algorithm"] != "AEAD_AES_256_GCM":
        raise NotificationDecryptionError(f"unsupported resource algorithm {resource['algorithm']!r}")
    try:
        plaintext = aead_decrypt(
            apiv3_key, resource["nonce"], str(resource.get("associated_data") or ""), resource["ciphertext"]
        )
    except ValueError:
        raise NotificationDecryptionError(
            "resource does not decrypt under the APIv3 key (wrong key or tampered)"
        ) from None
    try:
        return json.loads(plaintext)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return plaintext.decode("utf-8", errors="replace")


def success_reply() -> Reply:
    """200/204 with no body: WeChat Pay stops re-sending."""
    return Reply(204)


def failure_reply(error: Union[BaseException, str], status: Optional[int] = None) -> Reply:
    """A 4xx/5xx with the documented ``{"code": "FAIL", "message": ...}`` body; WeChat Pay re-sends."""
    if status is None:
        status = _failure_status(error)
    message = _public_reason(error)
    body = json.dumps({"code": "FAIL", "message": message}, ensure_ascii=False).encode("utf-8")
    return Reply(status, body, {"Content-Type": "application/json; charset=utf-8"})


def _public_reason(error: Union[BaseException, str]) -> str:
    """What the sender of a rejected callback is told: the kind of failure, never our key ids or details."""
    if isinstance(error, str):
        return error
    for kind, reason in _PUBLIC_REASONS:
        if isinstance(error, kind):
            return reason
    return "处理失败"


def _failure_status(error: Union[BaseException, str]) -> int:
    if isinstance(error, NotificationSignatureError):
        return 401  # as the Java SDK answers a failed verification
    return 400 if isinstance(error, NotificationError) else 500


_PUBLIC_REASONS: tuple[tuple[type, str], ...] = (
    (NotificationSignatureError, "签名验证失败"),
    (StaleNotificationError, "时间戳超出允许范围"),
    (ReplayedNotificationError, "重复的通知"),
    (MalformedNotificationError, "报文格式错误"),
    (NotificationDecryptionError, "报文解密失败"),
)

Handler = Callable[[Notification], Union[Awaitable[None], None]]


class NotificationReceiver:
    """An engine's callback side: its verifier, APIv3 key, clock and replay store."""

    def __init__(
        self,
        verify: Verify,
        keys: "KeyProvider",
        apiv3_key: Optional[bytes],
        store: ReplayStore,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.verify = verify
        self.keys = keys  # certificate mode: a rotated certificate signs callbacks too
        self.apiv3_key = apiv3_key
        self.store = store
        self.clock = clock

    def parse(self, headers: Union[Mapping[str, str], Headers], body: Union[bytes, str]) -> Notification:
        return parse_notification(
            headers, body, verify=self.verify, apiv3_key=self.apiv3_key, store=self.store, now=self.clock()
        )

    def acknowledge(self, notification: Notification) -> None:
        self.store.acknowledge(notification.id, self.clock())

    async def aparse(self, headers: Mapping[str, str], body: Union[bytes, str]) -> Notification:
        """``parse``, refreshing the platform certificates once if the callback names an unknown one."""
        try:
            return self.parse(headers, body)
        except NotificationSignatureError as exc:
            if exc.reason != "unknown_serial" or not self.keys.refreshes:
                raise
            if await self.keys.for_serial(str(Headers(headers).get(H_SERIAL, ""))) is None:
                raise
        return self.parse(headers, body)

    async def handle(self, headers: Mapping[str, str], body: bytes, handler: Handler) -> Reply:
        """Parse, run ``handler``, acknowledge when it returns; any failure gets a failure reply."""
        try:
            notification = await self.aparse(headers, body)
        except NotificationError as exc:
            return failure_reply(exc)
        except EngineError as exc:  # the certificate refresh itself failed: WeChat Pay will send it again
            return failure_reply(f"certificate refresh failed: {type(exc).__name__}", 503)
        try:
            outcome = handler(notification)
            if outcome is not None:
                await outcome
        except Exception:  # any handler failure means "send it again", never a crash
            logger.exception("callback handler failed for %s (%s)", notification.id, notification.event_type)
            return failure_reply("处理失败，请稍后重试", 500)
        self.acknowledge(notification)
        return success_reply()

    def aiohttp_handler(self, handler: Handler) -> Callable[[Any], Awaitable[Any]]:
        """An ``aiohttp.web`` request handler that receives callbacks for ``handler``."""
        from aiohttp import web

        async def receive(request: web.Request) -> web.Response:
            reply = await self.handle(dict(request.headers), await request.read(), handler)
            return web.Response(status=reply.status, body=reply.body, headers=dict(reply.headers))

        return receive
