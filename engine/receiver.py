"""``Receiver``: callbacks dispatched by event type, for one merchant or many.

Design decisions:

* A receiver holds handlers by event type (``@receiver.on("TRANSACTION.SUCCESS")``, patterns such as
  ``"REFUND.*"``, and ``default`` for the rest) and one or more engines. Names are checked against
  the event catalogue (``engine.events``) when registered, so a typo fails at once with the closest
  names. A notification whose event type has no handler is **not** acknowledged: it is answered with
  a failure and logged, so WeChat Pay keeps it for a day while the missing handler is deployed;
  register ``receiver.ignore("…")`` for events you mean to drop.
* Routing happens before verification, from what is known then: an explicit key (a path parameter
  such as ``/notify/{mchid}``, or any token of your own from a lookup table: ``add(engine,
  key=...)``), else the ``Wechatpay-Serial`` header (the engines whose keyring holds that key are
  tried in order until one verifies and decrypts; if none does, the one engine in certificate mode
  that could still download it), else the only engine. Certificate-mode merchants that have not
  downloaded their certificates yet are best routed by key. Each engine keeps its own
  keys, store namespace and clock: nothing that must not be shared is.
* The exactly-once flow is each engine's ``NotificationReceiver`` (claim, handler, acknowledge); the
  receiver only picks the engine and the handler, for the async (``handle``) and sync
  (``handle_sync``) entry points alike.
"""

from __future__ import annotations

import fnmatch
import logging
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Optional, Union

from engine.errors import ConfigurationError, NotificationDecryptionError, NotificationSignatureError
from engine.events import catalogue
from engine.notifications import Handler, Notification, Reply, failure_reply
from engine.protocol import H_SERIAL
from engine.wire import Headers

if TYPE_CHECKING:
    from engine.client import Engine

logger = logging.getLogger("engine.notifications")
UNKNOWN_MERCHANT = "未知的商户"
NO_HANDLER = "未处理的通知类型"


class _UnhandledEventError(Exception):
    """Raised inside the flow for an event type without a handler, so it is not acknowledged."""


def _ignore(notification: Notification) -> None:
    return None


class Receiver:
    """Receives callbacks for the engines added to it and calls the handler of each event type."""

    def __init__(
        self, engines: Union["Engine", Iterable["Engine"], Mapping[str, "Engine"]] = (), *, strict: bool = True
    ) -> None:
        self.strict = strict
        self._engines: dict[str, "Engine"] = {}
        self._handlers: dict[str, Handler] = {}
        self._patterns: list[tuple[str, Handler]] = []
        self._default: Optional[Handler] = None
        if isinstance(engines, Mapping):
            for key, engine in engines.items():
                self.add(engine, key=key)
        elif hasattr(engines, "notifications"):
            self.add(engines)  # type: ignore[arg-type]
        else:
            for engine in engines:
                self.add(engine)

    # -- configuration -------------------------------------------------------------------------

    def add(self, engine: "Engine", *, key: Optional[str] = None) -> "Engine":
        """Receive for ``engine`` under ``key`` (default: its mchid); returns the engine."""
        name = key if key is not None else engine.credentials.mchid
        if name in self._engines and self._engines[name] is not engine:
            raise ConfigurationError(f"Receiver: the key {name!r} already routes to another engine")
        self._engines[name] = engine
        return engine

    def engine_for(self, key: str) -> "Engine":
        try:
            return self._engines[key]
        except KeyError:
            raise ConfigurationError(f"Receiver: no engine under the key {key!r}") from None

    def on(self, *event_types: str, known: bool = True) -> Callable[[Handler], Handler]:
        """Decorator: ``handler`` receives notifications of these event types (names or patterns)."""
        if not event_types:
            raise ConfigurationError("Receiver.on: name at least one event type")
        for event_type in event_types:
            if self.strict and known and event_type != "*":
                catalogue().check(event_type)

        def register(handler: Handler) -> Handler:
            if not callable(handler):
                raise ConfigurationError("Receiver.on: the handler must be callable")
            for event_type in event_types:
                if any(ch in event_type for ch in "*?["):
                    self._patterns.append((event_type, handler))
                else:
                    self._handlers[event_type] = handler
            return handler

        return register

    def ignore(self, *event_types: str, known: bool = True) -> None:
        """Acknowledge these event types without doing anything."""
        self.on(*event_types, known=known)(_ignore)

    def default(self, handler: Handler) -> Handler:
        """Decorator: the handler of every event type without one of its own."""
        self._default = handler
        return handler

    def handler_for(self, event_type: str) -> Optional[Handler]:
        found = self._handlers.get(event_type)
        if found is not None:
            return found
        for pattern, handler in self._patterns:
            if fnmatch.fnmatchcase(event_type, pattern):
                return handler
        return self._default

    # -- receiving -----------------------------------------------------------------------------

    async def handle(
        self, headers: Mapping[str, str], body: Union[bytes, str], *, merchant: Optional[str] = None
    ) -> Reply:
        """For asyncio frameworks: route, verify, claim, dispatch, acknowledge; the reply to send."""
        engine = self._route(headers, body, merchant)
        if isinstance(engine, Reply):
            return engine
        return await engine.notifications.handle(headers, body, self._dispatch)

    def handle_sync(
        self, headers: Mapping[str, str], body: Union[bytes, str], *, merchant: Optional[str] = None
    ) -> Reply:
        """For WSGI frameworks (Flask, Django): the same, with sync handlers run in this thread."""
        engine = self._route(headers, body, merchant)
        if isinstance(engine, Reply):
            return engine
        return engine.handle_notification_sync(headers, body, self._dispatch)

    def aiohttp_handler(self, *, merchant_param: Optional[str] = None) -> Callable[[Any], Any]:
        """An ``aiohttp.web`` handler; ``merchant_param`` names the path parameter holding the key."""
        from aiohttp import web

        async def receive(request: web.Request) -> web.Response:
            merchant = request.match_info.get(merchant_param) if merchant_param else None
            reply = await self.handle(request.headers, await request.read(), merchant=merchant)
            return web.Response(status=reply.status, body=reply.body, headers=dict(reply.headers))

        return receive

    def _dispatch(self, notification: Notification) -> Any:
        handler = self.handler_for(notification.event_type)
        if handler is None:
            raise _UnhandledEventError(f"no handler for event type {notification.event_type}")
        return handler(notification)

    def _route(
        self, headers: Mapping[str, str], body: Union[bytes, str], merchant: Optional[str]
    ) -> Union["Engine", Reply]:
        if merchant is not None:
            engine = self._engines.get(merchant)
            return engine if engine is not None else failure_reply(UNKNOWN_MERCHANT, 404)
        engines = list(dict.fromkeys(self._engines.values()))
        if len(engines) == 1:
            return engines[0]
        if not engines:
            return failure_reply(UNKNOWN_MERCHANT, 404)
        serial = str(Headers(headers).get(H_SERIAL, ""))
        holders = [e for e in engines if e.keyring.find(serial) is not None]
        for engine in holders[:-1]:  # several merchants trust this key: the one whose APIv3 key opens it
            try:
                engine.notifications.parse(headers, body)
                return engine
            except (NotificationSignatureError, NotificationDecryptionError):
                continue
            except Exception:
                return engine  # its own flow will report what is wrong
        if holders:
            return holders[-1]
        downloading = [e for e in engines if e.keys.refreshes]  # certificate mode may not have the key yet
        if len(downloading) == 1:
            return downloading[0]
        logger.warning("no engine holds the key %r that signed a callback; route it by key (merchant=...)", serial)
        return failure_reply(UNKNOWN_MERCHANT, 404)

    def __repr__(self) -> str:
        return f"<Receiver engines={sorted(self._engines)} handlers={sorted(self._handlers)}>"
