"""Receiving callbacks exactly once: verify, decrypt, claim, run the handler, acknowledge (PROTOCOL.md §4).

Design decisions:

* ``parse_notification`` is the low-level step and touches no state: headers present, timestamp
  within 5 minutes, signature verified with the public key or certificate that ``Wechatpay-Serial``
  names (through the engine's own ``wxpay_verify_response`` hook, so a callback is trusted exactly
  as an answer is), envelope well-formed, resource decrypted with AEAD_AES_256_GCM under the APIv3
  key. Each failure has its own ``NotificationError`` subclass; a ``WECHATPAY/SIGNTEST/`` probe fails
  like any bad signature. The 5-minute window is what rejects stale or replayed *signed messages*.
* Duplicates are judged by notification id, separately and for much longer: WeChat Pay re-sends a
  notification it did not see acknowledged for 24 h 4 min, each time freshly signed. So the
  receiver **claims** the id in the engine's store before the handler runs (atomically: one claim
  wins), **acknowledges** it when the handler returns (remembered ``ack_ttl``, 25 h by default) and
  **releases** it when the handler fails, so the next delivery runs it again.
* A duplicate of an acknowledged id is answered with success without running the handler (WeChat
  Pay's own guidance for a notification already processed). A duplicate that arrives while the
  first delivery is still being handled is answered at once with a failure (503): it does not run
  the handler, does not hold a worker waiting, and WeChat Pay's next re-send meets either the
  acknowledgement (success) or a released claim (the handler runs). A claim expires after
  ``claim_ttl`` (5 min) so a worker that died mid-handler does not block the id for good.
* A success reply is sent only after the acknowledgement was recorded: a store that fails (Redis
  gone) turns into a failure reply, never a success for an event that was not recorded, never a
  crash. If the store fails *after* the handler ran, the event may run again later: handlers that
  move money should still be idempotent on their own business keys.
* One flow, two drivers: ``begin`` (parse + claim) and ``finish`` (acknowledge or release) are
  coroutines, and the flow around the handler (begin, call it, await it if it is async, finish;
  give the id back if it is interrupted) is written once, as a generator of steps
  (``_delivery``), as httpx writes its auth flows. ``handle`` awaits each step in the running
  loop; ``handle_sync`` runs each through the runtime's ``run_sync``, so the generator, and with
  it a sync handler, runs in the caller's own thread outside any event loop (Django's ORM refuses
  to run inside one). A step's failure is thrown back into the flow, which alone decides what a
  failure means. Handlers may be sync or async; what they return is ignored.
* Replies follow the documented shapes: 204 without a body on success, a 4xx/5xx with
  ``{"code": "FAIL", "message": ...}`` on failure (401 for a failed verification).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import time
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Coroutine, Generator, Mapping, Optional, Union

import attrs

from engine.crypto import aead_decrypt
from engine.errors import (
    EngineError,
    MalformedNotificationError,
    NotificationDecryptionError,
    NotificationError,
    NotificationSignatureError,
    SignatureError,
    StaleNotificationError,
    StoreError,
)
from engine.protocol import H_REQUEST_ID, H_SERIAL
from engine.serialize import UnreadableJsonError, decode_json
from engine.stores import ACKNOWLEDGED, CLAIMED, DEFAULT_ACK_TTL, DEFAULT_CLAIM_TTL, IN_FLIGHT, Claim
from engine.wire import Headers, RawResponse

if TYPE_CHECKING:
    from engine.keyprovider import KeyProvider
    from engine.secret import Secret
    from engine.stores import Store

logger = logging.getLogger("engine.notifications")
ENVELOPE_FIELDS = ("id", "create_time", "event_type", "resource_type", "resource")
TEXT_FIELDS = ("create_time", "event_type", "resource_type", "summary")
RESOURCE_FIELDS = ("algorithm", "ciphertext", "nonce")


@attrs.frozen
class Notification:
    """A verified, decrypted callback. ``resource`` is the decrypted business object.

    ``mchid`` names the merchant whose engine verified it (the receiver's, when routing many).
    """

    id: str
    create_time: str
    event_type: str
    resource_type: str
    summary: str
    original_type: str
    resource: Any = attrs.field(repr=False)
    request_id: str = ""
    verified_with: str = ""
    mchid: str = ""


@attrs.frozen
class Reply:
    """What to answer WeChat Pay: a status, headers and body for any web framework."""

    status: int
    body: bytes = b""
    headers: Mapping[str, str] = attrs.field(factory=dict)


Verify = Callable[[RawResponse], str]


def parse_notification(
    headers: Union[Mapping[str, str], Headers],
    body: Union[bytes, str],
    *,
    verify: Verify,
    apiv3_key: Any,
    mchid: str = "",
) -> Notification:
    """Check and open one callback; raise a ``NotificationError`` subclass saying what failed.

    Nothing is remembered: duplicates are the receiver's business (``NotificationReceiver``).
    """
    raw = RawResponse(200, _text_headers(headers), _bytes(body))
    key_id = _verified(raw, verify)
    envelope = _envelope(raw.body)
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
        mchid=mchid,
    )


MAX_NOTIFICATION_BYTES = 1024 * 1024  # a callback envelope is a few KiB; anyone can send one
MAX_HEADERS = 200


def _text_headers(headers: Any) -> Headers:
    """The callback's headers, which must map text to text (a framework always gives that)."""
    if isinstance(headers, Headers):
        return headers
    items = getattr(headers, "items", None)  # a Mapping, aiohttp's multidict, werkzeug's Headers...
    if not callable(items):
        raise MalformedNotificationError("callback headers must be a mapping of text to text")
    pairs = list(items())
    if len(pairs) > MAX_HEADERS or not all(
        isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[0], str) and isinstance(pair[1], str)
        for pair in pairs
    ):
        raise MalformedNotificationError("callback headers must be a mapping of text to text")
    return Headers(pairs)


def _bytes(body: Any) -> bytes:
    """The callback's body as bytes: bytes as they came, text as UTF-8, anything else refused."""
    if isinstance(body, str):
        try:
            data = body.encode("utf-8")
        except UnicodeEncodeError:
            raise MalformedNotificationError("callback body is not UTF-8 text") from None
    elif isinstance(body, (bytes, bytearray, memoryview)):
        data = bytes(body)
    else:
        raise MalformedNotificationError(f"callback body must be bytes or text, got {type(body).__name__}")
    if len(data) > MAX_NOTIFICATION_BYTES:
        raise MalformedNotificationError(f"callback body is larger than {MAX_NOTIFICATION_BYTES} bytes")
    return data


def _verified(raw: RawResponse, verify: Verify) -> str:
    try:
        return verify(raw)
    except SignatureError as exc:
        if exc.reason == "stale":
            raise StaleNotificationError(str(exc).replace("answer", "callback")) from None
        raise NotificationSignatureError(exc.reason, str(exc).replace("answer", "callback")) from None


def _envelope(body: bytes) -> dict[str, Any]:
    try:
        envelope = decode_json(body)
    except UnreadableJsonError:
        raise MalformedNotificationError("callback body is not JSON") from None
    if not isinstance(envelope, dict):
        raise MalformedNotificationError("callback body is not a JSON object")
    if "id" in envelope and (not isinstance(envelope["id"], str) or not envelope["id"] or len(envelope["id"]) > 128):
        raise MalformedNotificationError("callback id must be a non-empty string of at most 128 characters")
    wrong = [name for name in TEXT_FIELDS if name in envelope and not isinstance(envelope[name], str)]
    if wrong:
        raise MalformedNotificationError(f"callback envelope fields must be text: {', '.join(wrong)}")
    missing = [name for name in ENVELOPE_FIELDS if name not in envelope]
    resource = envelope.get("resource")
    if not missing and isinstance(resource, dict):
        missing = [f"resource.{name}" for name in RESOURCE_FIELDS if not isinstance(resource.get(name), str)]
        missing += [
            f"resource.{name} (text)"
            for name in ("associated_data", "original_type")
            if resource.get(name) is not None and not isinstance(resource[name], str)
        ]
    elif not missing:
        missing = ["resource (an object)"]
    if missing:
        raise MalformedNotificationError(f"callback envelope lacks {', '.join(missing)}")
    return envelope


def _decrypt(resource: dict[str, Any], apiv3_key: Any) -> Any:
    if apiv3_key is None:
        raise NotificationDecryptionError("the engine has no apiv3_key to decrypt callbacks with")
    if resource["algorithm"] != "AEAD_AES_256_GCM":
        raise NotificationDecryptionError(f"unsupported resource algorithm {resource['algorithm'][:32]!r}")
    try:
        plaintext = aead_decrypt(
            apiv3_key, resource["nonce"], str(resource.get("associated_data") or ""), resource["ciphertext"]
        )
    except ValueError:
        raise NotificationDecryptionError(
            "resource does not decrypt under the APIv3 key (wrong key or tampered)"
        ) from None
    try:
        return decode_json(plaintext)
    except UnreadableJsonError:  # as for the envelope: the resource is kept as text then
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
    (MalformedNotificationError, "报文格式错误"),
    (NotificationDecryptionError, "报文解密失败"),
)

IN_FLIGHT_MESSAGE = "通知正在处理中，请稍后重试"
STORE_DOWN_MESSAGE = "暂时无法记录通知，请稍后重试"
HANDLER_FAILED_MESSAGE = "处理失败，请稍后重试"

Handler = Callable[[Notification], Any]
"""Receives a verified notification; sync or async; what it returns is ignored, raising means "send it again"."""


Step = Callable[[], Coroutine[Any, Any, Any]]
"""One step of a delivery: a coroutine factory, awaited by ``handle``, run through ``run_sync`` by ``handle_sync``."""


Flow = Generator[Step, Any, Reply]


@attrs.frozen
class Reception:
    """One delivery between ``begin`` and ``finish``: the notification and the claim on its id."""

    notification: Notification
    claim: Claim


class NotificationReceiver:
    """An engine's callback side: its verifier, APIv3 key, clock and store (claims and acknowledgements)."""

    def __init__(
        self,
        verify: Verify,
        keys: "KeyProvider",
        apiv3_key: Optional["Secret"],
        store: "Store",
        clock: Callable[[], float] = time.time,
        *,
        mchid: str = "",
        ack_ttl: float = DEFAULT_ACK_TTL,
        claim_ttl: float = DEFAULT_CLAIM_TTL,
    ) -> None:
        self.verify = verify
        self.keys = keys  # certificate mode: a rotated certificate signs callbacks too
        self.apiv3_key = apiv3_key
        self.store = store
        self.clock = clock
        self.mchid = mchid
        self.ack_ttl = ack_ttl
        self.claim_ttl = claim_ttl

    # -- the low-level steps -----------------------------------------------------------------

    def parse(self, headers: Union[Mapping[str, str], Headers], body: Union[bytes, str]) -> Notification:
        return parse_notification(headers, body, verify=self.verify, apiv3_key=self.apiv3_key, mchid=self.mchid)

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

    async def claim(self, notification: Notification) -> Claim:
        """Claim the id before handling it: ``claimed``, ``acknowledged`` or ``in_flight`` (``StoreError``)."""
        return await self.store.claim(notification.id, self.claim_ttl)

    async def acknowledge(self, notification: Notification, claim: Optional[Claim] = None) -> None:
        """Record the id as processed for ``ack_ttl`` seconds (``StoreError`` if that fails)."""
        await self.store.acknowledge(claim or Claim(notification.id, CLAIMED), self.ack_ttl)

    async def release(self, claim: Claim) -> None:
        """Give up a claim after a failed handler, so the next delivery runs it."""
        await self.store.release(claim)

    # -- the flow ------------------------------------------------------------------------------

    async def begin(self, headers: Mapping[str, str], body: Union[bytes, str]) -> Union[Reply, Reception]:
        """Parse and claim: a ``Reply`` when the delivery is over already, else a ``Reception`` to handle."""
        try:
            notification = await self.aparse(headers, body)
        except NotificationError as exc:
            return failure_reply(exc)
        except EngineError as exc:  # the certificate refresh itself failed: WeChat Pay will send it again
            return failure_reply(f"certificate refresh failed: {type(exc).__name__}", 503)
        try:
            claim = await self.claim(notification)
        except StoreError as exc:
            logger.error("notification %s not claimed: %s", notification.id, exc)
            return failure_reply(STORE_DOWN_MESSAGE, 503)
        if claim.status == ACKNOWLEDGED:
            logger.info(
                "notification %s (%s) already processed: success, handler not run",
                notification.id,
                notification.event_type,
            )
            return success_reply()
        if claim.status == IN_FLIGHT:
            logger.info(
                "notification %s (%s) is being handled elsewhere: asked to resend",
                notification.id,
                notification.event_type,
            )
            return failure_reply(IN_FLIGHT_MESSAGE, 503)
        return Reception(notification, claim)

    async def finish(self, reception: Reception, error: Optional[BaseException]) -> Reply:
        """Acknowledge after a handler that returned, release after one that raised; the reply to send."""
        notification, claim = reception.notification, reception.claim
        if error is not None:
            logger.error(
                "callback handler failed for %s (%s)",
                notification.id,
                notification.event_type,
                exc_info=(type(error), error, error.__traceback__),
            )
            try:
                await self.release(claim)
            except StoreError as exc:  # the claim expires by itself after claim_ttl
                logger.warning("claim on %s not released: %s", notification.id, exc)
            return failure_reply(HANDLER_FAILED_MESSAGE, 500)
        try:
            await self.acknowledge(notification, claim)
        except StoreError as exc:
            logger.error(
                "notification %s handled but not recorded: %s; WeChat Pay will send it again", notification.id, exc
            )
            return failure_reply(STORE_DOWN_MESSAGE, 503)
        return success_reply()

    def _delivery(self, headers: Mapping[str, str], body: Union[bytes, str], handler: Handler) -> Flow:
        """The flow around ``handler`` as steps for a driver (``_drive``, ``_drive_sync``) to run.

        Each step yielded is a coroutine factory; the driver sends its result back, or throws in what
        it raised. The handler is called here, in whichever thread the driver runs the flow in.
        """
        started: Union[Reply, Reception] = yield lambda: self.begin(headers, body)
        if isinstance(started, Reply):
            return started
        error: Optional[BaseException] = None
        try:
            outcome = handler(started.notification)
            if inspect.isawaitable(outcome):
                yield lambda: _awaited(outcome)
        except Exception as exc:  # any handler failure means "send it again", never a crash
            error = exc
        except BaseException:  # cancelled (client gone, shutdown): give the id back, then stop
            with contextlib.suppress(BaseException):  # what the driver throws back for this step, too
                yield lambda: _shielded(self.release(started.claim))
            raise
        reply: Reply = yield lambda: self.finish(started, error)
        return reply

    async def handle(self, headers: Mapping[str, str], body: Union[bytes, str], handler: Handler) -> Reply:
        """For asyncio frameworks: the whole flow around ``handler``; the reply WeChat Pay expects."""
        return await _drive(self._delivery(headers, body, handler))

    def handle_sync(
        self,
        headers: Mapping[str, str],
        body: Union[bytes, str],
        handler: Handler,
        run_sync: Callable[[Step], Any],
    ) -> Reply:
        """For WSGI frameworks: the same flow, with a sync handler called in this thread, outside any loop."""
        return _drive_sync(self._delivery(headers, body, handler), run_sync)

    def aiohttp_handler(self, handler: Handler) -> Callable[[Any], Awaitable[Any]]:
        """An ``aiohttp.web`` request handler that receives callbacks for ``handler``."""
        from aiohttp import web

        async def receive(request: web.Request) -> web.Response:
            reply = await self.handle(request.headers, await request.read(), handler)
            return web.Response(status=reply.status, body=reply.body, headers=dict(reply.headers))

        return receive


async def _awaited(outcome: Awaitable[Any]) -> Any:
    return await outcome


async def _shielded(step: Coroutine[Any, Any, Any]) -> Any:
    """``step`` run to its end even if the task awaiting it is cancelled (again)."""
    return await asyncio.shield(step)


# -- the drivers: each runs the one flow's steps its own way ---------------------------------------


def _resume(flow: Flow, result: Any, error: Optional[BaseException]) -> Union[Step, Reply]:
    """The flow's next step after ``result`` (or ``error``, thrown in), or its reply once it returns."""
    try:
        return flow.throw(error) if error is not None else flow.send(result)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


async def _drive(flow: Flow) -> Reply:
    """Run ``flow`` in this event loop, each step awaited."""
    result, error = None, None
    while not isinstance(step := _resume(flow, result, error), Reply):
        try:
            result, error = await step(), None
        except BaseException as exc:  # thrown into the flow: it alone judges a failure, even a cancellation
            result, error = None, exc
    return step


def _drive_sync(flow: Flow, run_sync: Callable[[Step], Any]) -> Reply:
    """Run ``flow`` in this thread, outside any loop, each step through ``run_sync``."""
    result, error = None, None
    while not isinstance(step := _resume(flow, result, error), Reply):
        try:
            result, error = run_sync(step), None
        except BaseException as exc:
            result, error = None, exc
    return step
