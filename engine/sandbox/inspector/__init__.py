"""The inspector: a live page of what the served sandbox saw and did, at ``/sandbox/``.

Design decisions:

* The page (``page.html``, beside this file) is one self-contained document: inline CSS and
  JavaScript, no external asset, so it works offline and behind any proxy. It renders a JSON
  snapshot (``GET /sandbox/state``) and re-renders on every server-sent event of
  ``GET /sandbox/stream``, which pushes a new snapshot whenever something changed. It builds the
  DOM with ``textContent`` only: request bodies are whatever a client sent, never markup.
* What is shown is redacted *when it is recorded*, so nothing secret is ever held for display:
  each exchange keeps its method, target, status, endpoint, whether the Authorization verified and
  why not, the answer's ``Wechatpay-Serial`` and Request-ID, and the bodies as they crossed the
  wire, where every field a descriptor marks ``encrypted`` shows the head of its ciphertext and the
  decrypted value only as "masked (N characters)". A value in an encrypted field that is not
  RSA ciphertext (a client that forgot to encrypt) is hidden too. No Authorization signature, key
  or APIv3 key is ever part of a snapshot. APIv2 XML bodies are shown one field a line, read by
  the engine's own refusing XML parser, with the same masking and their ``sign`` hidden.
* Objects show their fields with the ones that travelled encrypted masked; callbacks show their
  event, target URL and every delivery attempt, never their (encrypted) body.
* The record of exchanges is a bounded ring (``size``, an ``engine.sandbox.ring.Ring``),
  independent of the sandbox's own record. Exchanges are observed on whichever thread served them
  (the loop, an in-process engine elsewhere), while the loop reads the ring for a snapshot. A view
  is built outside any lock; then, under the inspector's own lock, it is numbered and appended, and
  only then counted in ``seen``: numbers are unique and in the ring's order, and a stream that sees
  the new count finds the entry in its snapshot (counted first, a snapshot taken in between would
  lack it, and nothing would push it until the next change).
* A snapshot is built and serialised under ``World.consistent()`` (``snapshot_text``), so it never
  shows half of a change another thread is making (an order paid but its callback not yet queued,
  a state without its history entry), and the JSON is written before the lock is let go: the views
  share the records' field dicts rather than copying them. The lock is released before the stream
  awaits its write. ``version()`` reads counters without it: a stale one only delays the next
  push by one poll.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

from aiohttp import web

from engine import forksafe
from engine.fields import map_encrypted
from engine.protocol import H_REQUEST_ID, H_SERIAL
from engine.sandbox.objects import Record, rfc3339
from engine.sandbox.outbox import Callback
from engine.sandbox.ring import Ring
from engine.v2 import xmlcodec

if TYPE_CHECKING:
    from engine.sandbox.emulator import Exchange, Sandbox

PAGE = Path(__file__).with_name("page.html")
BODY_LIMIT = 4000
RSA_CIPHERTEXT_BYTES = (256, 384, 512)  # RSA-2048/3072/4096 OAEP ciphertext lengths
STREAM_POLL_SECONDS = 0.25
_PATH_STEP = re.compile(r"\.([^.\[]+)|\[(\d+)\]")
CLOSING = web.AppKey("wechatpay_closing", asyncio.Event)  # set when the server shuts down: streams end


class Inspector:
    """Watches one sandbox and serves what it saw, redacted."""

    def __init__(self, sandbox: "Sandbox", size: int = 500) -> None:
        self.sandbox = sandbox
        self.entries: Ring[dict[str, Any]] = Ring(maxlen=size)
        self.seen = 0
        self._numbering = forksafe.lock()  # taken before the ring's: numbering, then appending
        sandbox.observers.append(self._observe)

    def _observe(self, exchange: "Exchange", verification: str) -> None:
        view = exchange_view(self.sandbox, exchange, verification)  # the costly part, outside the lock
        with self._numbering:  # see the module docstring: numbered, appended, then counted
            seq = self.seen + 1
            self.entries.append({"seq": seq, **view})
            self.seen = seq

    def version(self) -> tuple[Any, ...]:
        world = self.sandbox.world
        return self.seen, world.version, len(self.sandbox.faults), round(self.sandbox.time.offset, 3)

    def snapshot(self) -> dict[str, Any]:
        """What the page shows, taken while no writer acts (its fields are the records' own: read it
        at once, or use ``snapshot_text``)."""
        with self.sandbox.world.consistent():
            return self._snapshot()

    def snapshot_text(self) -> str:
        """The snapshot as JSON, serialised before any writer may act again."""
        with self.sandbox.world.consistent():
            return json.dumps(self._snapshot(), ensure_ascii=False)

    def _snapshot(self) -> dict[str, Any]:
        world = self.sandbox.world
        now = self.sandbox.time.now()
        return {
            "clock": {"now": rfc3339(now), "offset_seconds": self.sandbox.time.offset},
            "merchant": self.sandbox.identity.mchid,
            "exchanges": self.entries.snapshot(),
            "objects": [object_view(record) for record in world.store],
            "callbacks": [callback_view(callback) for callback in world.outbox.callbacks],
            "faults": self.sandbox.faults.pending(),
        }

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/sandbox", self._redirect)
        app.router.add_get("/sandbox/", self._page)
        app.router.add_get("/sandbox/state", self._state)
        app.router.add_get("/sandbox/stream", self._stream)
        closing = asyncio.Event()
        app[CLOSING] = closing

        async def on_shutdown(app: web.Application) -> None:
            closing.set()

        app.on_shutdown.append(on_shutdown)

    async def _redirect(self, http: web.Request) -> web.Response:
        raise web.HTTPFound("/sandbox/")

    async def _page(self, http: web.Request) -> web.Response:
        return web.Response(text=PAGE.read_text(encoding="utf-8"), content_type="text/html", charset="utf-8")

    async def _state(self, http: web.Request) -> web.Response:
        return web.json_response(text=self.snapshot_text())

    async def _stream(self, http: web.Request) -> web.StreamResponse:
        """Server-sent events: a snapshot now, and another each time something changes."""
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(http)
        closing = http.app[CLOSING]
        sent: Optional[tuple[Any, ...]] = None
        try:
            while not closing.is_set():
                if self.version() != sent:
                    sent = self.version()
                    data = self.snapshot_text()
                    await response.write(f"data: {data}\n\n".encode())
                await asyncio.sleep(STREAM_POLL_SECONDS)
        except (ConnectionResetError, RuntimeError):  # the page went away
            pass
        return response


def exchange_view(sandbox: "Sandbox", exchange: "Exchange", verification: str) -> dict[str, Any]:
    request, answer = exchange.request, exchange.response
    descriptor = _descriptor(sandbox, exchange.endpoint_id)
    request_fields = {**descriptor.request.query, **descriptor.request.body} if descriptor is not None else {}
    response_fields = descriptor.response if descriptor is not None else {}
    sent, sent_encrypted = _wire_body(request.body, request.headers.get("Content-Type", ""), request_fields)
    lengths = _plaintext_lengths(request_fields, exchange.payload)
    for entry in sent_encrypted:
        entry["decrypted"] = f"masked ({lengths[entry['path']]} characters)" if entry["path"] in lengths else "masked"
    got, got_encrypted = _wire_body(answer.body, answer.headers.get("Content-Type", ""), response_fields)
    scheme = request.headers.get("Authorization", "").split(" ", 1)[0]
    return {
        "at": rfc3339(sandbox.clock()),
        "method": request.method,
        "target": request.target,
        "path": request.target.split("?", 1)[0],
        "endpoint": exchange.endpoint_id,
        "status": answer.status,
        "verification": verification,
        "scheme": scheme,
        "request_serial": request.headers.get(H_SERIAL, ""),
        "answer_serial": answer.headers.get(H_SERIAL, ""),
        "request_id": answer.headers.get(H_REQUEST_ID, ""),
        "request_body": sent,
        "answer_body": got,
        "encrypted": [*sent_encrypted, *({**e, "in": "answer", "decrypted": "masked"} for e in got_encrypted)],
    }


def object_view(record: Record) -> dict[str, Any]:
    fields: Any = record.fields
    for path in record.secret:
        fields = _masked(fields, path)
    return {
        "ref": record.ref,
        "kind": record.kind,
        "scope": record.scope,
        "number": record.number,
        "state": record.state,
        "created": rfc3339(record.created_at),
        "updated": rfc3339(record.updated_at),
        "due": rfc3339(record.due_at) if record.due_at is not None else None,
        "notify_url": record.notify_url,
        "history": [[rfc3339(at), state] for at, state in record.history],
        "fields": fields,
    }


def callback_view(callback: Callback) -> dict[str, Any]:
    return {
        "id": callback.id,
        "event_type": callback.event_type,
        "object": callback.ref,
        "url": callback.url,
        "state": callback.state,
        "next_attempt": rfc3339(callback.next_at) if callback.next_at is not None else None,
        "attempts": [{"at": rfc3339(a.at), "status": a.status, "error": a.error} for a in callback.attempts],
    }


def _descriptor(sandbox: "Sandbox", endpoint_id: Optional[str]) -> Any:
    if endpoint_id is None:
        return None
    try:
        return sandbox.registry.get(endpoint_id)
    except Exception:
        return None


def _wire_body(body: bytes, content_type: str, fields: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """The body as it travelled, encrypted fields cut to their ciphertext's head; and those fields."""
    if not body:
        return "", []
    if content_type.startswith("multipart/"):
        return f"<multipart upload, {len(body)} bytes>", []
    found: list[dict[str, Any]] = []

    def shorten(value: str, path: str) -> str:
        shown = _ciphertext_head(value)
        found.append({"path": path, "ciphertext": shown})
        return shown

    if "xml" in content_type or xmlcodec.looks_like_xml(body):
        text = _xml_text(body, fields, shorten)
    else:
        text = _json_text(body, fields, shorten)
    if text is None:
        return f"<{len(body)} bytes of {content_type or 'unknown type'}>", []
    return (text if len(text) <= BODY_LIMIT else text[:BODY_LIMIT] + f"\n… ({len(text)} characters)"), found


def _json_text(body: bytes, fields: dict[str, Any], shorten: Callable[[str, str], str]) -> Optional[str]:
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return json.dumps(map_encrypted(fields, data, shorten), ensure_ascii=False, indent=1)


def _xml_text(body: bytes, fields: dict[str, Any], shorten: Callable[[str, str], str]) -> Optional[str]:
    """An APIv2 document one field a line, read by the engine's refusing parser (no DTD, no entity,
    flat): encrypted fields cut to their ciphertext's head, and the ``sign`` masked as an APIv3
    Authorization signature is (it proves the APIv2 key; the page is not where to look at it)."""
    try:
        parsed = xmlcodec.parse(body)
    except xmlcodec.MalformedXmlError:
        return None
    shown = map_encrypted(fields, parsed, shorten)
    if "sign" in shown:
        shown = {**shown, "sign": f"hidden (a signature of {len(parsed['sign'])} characters)"}
    lines = [f" <{name}>{_xml_escaped(str(value))}</{name}>" for name, value in shown.items()]
    return "\n".join(["<xml>", *lines, "</xml>"])


def _xml_escaped(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _ciphertext_head(value: str) -> str:
    try:
        size = len(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError):
        size = 0
    if size not in RSA_CIPHERTEXT_BYTES:
        return f"<not RSA ciphertext: {len(value)} characters, hidden>"
    return f"{value[:24]}… ({len(value)} characters of ciphertext)"


def _plaintext_lengths(fields: dict[str, Any], payload: Any) -> dict[str, int]:
    lengths: dict[str, int] = {}

    def measure(value: str, path: str) -> str:
        lengths[path] = len(value)
        return value

    map_encrypted(fields, payload, measure)
    return lengths


def _masked(data: Any, path: str) -> Any:
    """A copy of ``data`` with the value at a ``$.a.b[0].c`` path replaced by a mask."""
    steps = [name if name else int(index) for name, index in _PATH_STEP.findall(path)]
    return _mask_at(data, steps)


def _mask_at(data: Any, steps: list[Any]) -> Any:
    if not steps:
        return f"masked ({len(data)} characters)" if isinstance(data, str) else "masked"
    step, rest = steps[0], steps[1:]
    if isinstance(step, int) and isinstance(data, list) and step < len(data):
        return [_mask_at(v, rest) if i == step else v for i, v in enumerate(data)]
    if isinstance(step, str) and isinstance(data, dict) and step in data:
        return {k: _mask_at(v, rest) if k == step else v for k, v in data.items()}
    return data
