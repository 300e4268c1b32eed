"""A sandbox's stateful side: its objects, the user's actions, time, callbacks and the state dir.

Design decisions:

* ``World`` owns the ``ObjectStore``, the ``Outbox`` and the certificate schedule of one sandbox,
  and subscribes to its test clock. The emulator asks it first for every validated call
  (``serve``); it answers the endpoints of ``engine.sandbox.flows.OPERATIONS`` and paged lists, and
  returns None for the rest, which keep the schema-based answer.
* Every change of state goes through ``transition``: the allowed-transition check, then the event
  the change sends (``engine.sandbox.triggers``) to the object's notify_url, queued in the outbox.
  User actions (``pay``, ``confirm_transfer``, ``sign_contract``, ``settle_refund``) and ``trigger``
  are thin wrappers that find the object and name the state; an object that does not exist, or a
  state that does not allow the action, raises ``RefusedError`` naming what is wrong.
* Time: unpaid orders close at ``time_expire`` (default ``order_ttl``, 2 h), refunds succeed
  ``refund_delay`` after they were accepted, transfers the user has not confirmed are cancelled
  after ``transfer_ttl`` (24 h), and platform certificates rotate ``certificate_overlap`` before the
  newest expires and retire when they expire. ``on_time`` applies whatever fell due, then delivers
  due callbacks.
* In the state dir (``attach``) the objects, the callbacks and the clock's offset are kept in
  ``world.json`` (0600: it holds the decrypted request fields). It is written behind the calls, not
  by each: every ``on_time`` (the served sandbox's ticker, every ``TICK_SECONDS``; each clock
  advance) saves what changed since the last save, as do the user's actions and the server's stop.
  Rewriting the whole file on every call cost a serialisation of every object plus a blocking
  truncate-and-write per request; now a burst of calls costs one write per tick.
* Saving rewrites the whole file, which at the full ``object_limit`` is about 10 MiB and half a
  second. So the ticker's saves are paced: after a save that took longer than ``PACED_SAVE_SECONDS``
  the next one from ``on_time`` waits until saving has used at most ``SAVE_SHARE`` of the time
  since (a tenth). A small world (a save of a few milliseconds) is saved every tick as before; a
  full one is at most a few seconds behind, and the user's actions and the server's stop still save
  at once, so only a crash of the process can lose those seconds.
* Memory is bounded by ``object_limit`` (default ``DEFAULT_OBJECT_LIMIT``, 10,000), which bounds
  the objects (settled ones are evicted oldest first, ``engine.sandbox.objects``), and by
  ``callback_limit``, which bounds the callbacks (finished ones pruned, ``engine.sandbox.outbox``).
  The callback limit is its own because one object can have several callbacks pending (a
  contract's signing and its termination, a refund's ABNORMAL and then its SUCCESS) and a
  triggered sample has no object at all; unless set it is ``CALLBACKS_PER_OBJECT`` (2) times the
  object limit, and follows it. ``world.json`` is what is held: an evicted object is gone from the
  next save, and loading evicts down to the limit in force, so a restart with a lower limit starts
  within it.
* A change that would send a callback is admitted first (``_admit``: the transition is allowed and
  the outbox has room), and only then made: an action refused for a full outbox (429
  ``RATELIMIT_EXCEEDED``) has changed nothing, and no pending callback is ever dropped to make room
  while its object is kept. A change that falls due by itself (a refund succeeding after
  ``refund_delay``, an unconfirmed transfer cancelled) cannot be refused: while the outbox is full
  it is postponed to the outbox's next delivery attempt, when a callback may finish and make room,
  as WeChat Pay is late rather than silent.
* A trigger on a throwaway object makes it (a refund's order too) only after everything that can
  refuse the trigger has been asked (the URL, the outbox's room, ``ObjectStore.fits``), and
  discards what it made if it is refused after all: a refused trigger leaves the store as it was.
* ``consistent()`` holds every writer off (the store's lock, then the outbox's: the one order both
  are taken in): ``save`` takes its mark and dump under it, and the admin API and the inspector
  build their views under it. It is taken and released in synchronous code only, never across an
  ``await``, so the served ticker (which takes the store's lock in ``on_time``) and a blocking
  ``advance`` in another thread only ever wait for a view to be built, never for each other.
* Several threads may save at once (the ticker, a blocking ``advance``, an action, which saves
  holding the store's lock). Each dump is numbered under ``consistent()`` and handed to one
  ``engine.sandbox.saving.NewestWriter``, which writes the newest and never an older one over it,
  without any saver waiting for another's file I/O. The file itself is replaced in one rename
  (``engine.sandbox.state``), so a reader or a restart never sees half of it.
* ``on_time`` visits only the objects whose automatic transition fell due (``ObjectStore.due``)
  and the callbacks due (the outbox's schedule), so a tick costs what changes, not what is held.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional

from engine.descriptor import Descriptor
from engine.examples import example_payload
from engine.fields import map_encrypted
from engine.sandbox import flows, notify
from engine.sandbox.answers import error_body
from engine.sandbox.objects import (
    DEFAULT_OBJECT_LIMIT,
    KINDS,
    ObjectStore,
    Record,
    RefusedError,
    checked_limit,
    rfc3339,
)
from engine.sandbox.outbox import Callback, Outbox
from engine.sandbox.saving import Dump, NewestWriter
from engine.sandbox.triggers import EventType, event_types, for_transition
from engine.wire import Headers

if TYPE_CHECKING:
    from engine.sandbox.emulator import Sandbox

WORLD_FILE = "world.json"
PACED_SAVE_SECONDS = 0.05  # a save longer than this delays the ticker's next one ...
SAVE_SHARE = 0.1  # ... until saving has taken at most this share of the time since
_pace_clock = time.monotonic  # what paces saves (a test replaces it; the sandbox's own clock is simulated)
AUTOMATIC = {
    ("order", "NOTPAY"): "CLOSED",
    ("order", "PAYERROR"): "CLOSED",
    ("combine_order", "NOTPAY"): "CLOSED",
    ("combine_order", "PAYERROR"): "CLOSED",
    ("refund", "PROCESSING"): "SUCCESS",
    ("transfer", "WAIT_USER_CONFIRM"): "CANCELLED",
    ("transfer", "CANCELING"): "CANCELLED",
}
FIXTURES = {  # the endpoint whose example payload makes a throwaway object for a trigger
    ("order", "direct"): "v3.pay.transactions.jsapi.post",
    ("combine_order", "combine"): "v3.combine_transactions.jsapi.post",
    ("refund", "domestic"): "v3.refund.domestic.refunds.post",
    ("transfer", "direct"): "v3.fund_app.mch_transfer.transfer_bills.post",
    **{("contract", scope): seed for scope, (seed, _) in flows.CONTRACT_SEEDS.items()},
}
Shape = Callable[[Descriptor, Optional[dict[str, Any]]], Any]


CALLBACKS_PER_OBJECT = 2  # the default callback_limit, per object the store may hold
POSTPONE_SECONDS = 15.0  # an automatic change waiting for room, when no delivery attempt is scheduled


class World:
    """The objects of one sandbox and everything that moves them."""

    def __init__(
        self, sandbox: "Sandbox", object_limit: int = DEFAULT_OBJECT_LIMIT, callback_limit: Optional[int] = None
    ) -> None:
        self.sandbox = sandbox
        self._callback_limit = None if callback_limit is None else checked_limit("callback_limit", callback_limit)
        self.outbox = Outbox(self._sign)
        self.store = ObjectStore(object_limit, pins=self.outbox)  # checks the limit; pending callbacks pin
        self.outbox.limit = self.callback_limit
        self.outbox.on_unpinned = self.store.unpinned
        self.order_ttl = 2 * 3600.0
        self.refund_delay = 60.0
        self.transfer_ttl = 24 * 3600.0
        self.certificate_lifetime = 5 * 365 * 86400.0
        self.certificate_overlap = 30 * 86400.0
        self._certificate_expiry: dict[str, float] = {}
        self._secret: tuple[str, ...] = ()
        self._path: Optional[Path] = None
        # saves from several threads: numbered under the world's locks, the newest written (see save)
        self._saver = NewestWriter(self._write_file, written_mark=(-1, 0.0))
        self._next_paced_save = 0.0  # the _pace_clock() time before which on_time does not save
        sandbox.time.subscribe(self)

    @property
    def now(self) -> float:
        return self.sandbox.time.now()

    @property
    def version(self) -> int:
        return self.store.version + self.outbox.version

    @property
    def object_limit(self) -> int:
        """The most objects kept; setting it evicts down to it (and moves a callback limit not set)."""
        return self.store.limit

    @object_limit.setter
    def object_limit(self, limit: int) -> None:
        self.store.limit = limit  # checks it
        self.outbox.limit = self.callback_limit

    @property
    def callback_limit(self) -> int:
        """The most callbacks kept: as set, else ``CALLBACKS_PER_OBJECT`` times ``object_limit``.

        Setting it prunes finished callbacks down to it; None goes back to following the object limit.
        """
        return self._callback_limit or CALLBACKS_PER_OBJECT * self.store.limit

    @callback_limit.setter
    def callback_limit(self, limit: Optional[int]) -> None:
        self._callback_limit = None if limit is None else checked_limit("callback_limit", limit)
        self.outbox.limit = self.callback_limit

    @contextlib.contextmanager
    def consistent(self) -> Iterator[None]:
        """Hold every writer off while reading objects and callbacks together (synchronous code only:
        never ``await`` inside, and call nothing that changes the outbox)."""
        with self.store.lock, self.outbox.lock:
            yield

    # -- serving calls -------------------------------------------------------------------------

    def serve(self, descriptor: Descriptor, payload: dict[str, Any], shape: Shape) -> Optional[tuple[int, Any]]:
        """Answer a validated call that concerns sandbox objects; None for every other endpoint."""
        operation = flows.OPERATIONS.get(descriptor.id)
        if operation is None:
            return (
                (200, shape(descriptor, {**payload, **flows.page(payload, [])})) if flows.is_paged(descriptor) else None
            )
        with self.store.lock:
            self._secret = _encrypted_paths(descriptor, payload)
            try:
                status, values = flows.answer(self, operation, payload, self.now)
            except RefusedError as refusal:
                return refusal.status, error_body(refusal.code, refusal.message)
            finally:
                self._secret = ()
        return status, shape(descriptor, values) if values is not None else None

    def create(
        self,
        kind: str,
        scope: str,
        number: str,
        fields: dict[str, Any],
        now: float,
        request: dict[str, Any],
        due_at: Optional[float] = None,
    ) -> Record:
        fields = {"mch_id" if kind == "transfer" else "mchid": self.sandbox.identity.mchid, **fields}
        return self.store.create(
            kind,
            scope,
            number,
            fields,
            now,
            notify_url=request.get("notify_url"),
            due_at=due_at,
            secret=self._secret,
            request=request,
        )

    # -- changes of state ----------------------------------------------------------------------

    def transition(
        self,
        record: Record,
        state: str,
        now: float,
        *,
        due_at: Optional[float] = None,
        url: Optional[str] = None,
        refusal: int = 409,
    ) -> Optional[Callback]:
        """Move ``record`` to ``state`` and queue the callback that change sends, if any.

        Refused (``RefusedError``, nothing changed) when the state does not allow it or the outbox has
        no room for its callback.
        """
        with self.store.lock:  # every enqueue is made under it: what was admitted stays admitted
            event, target = self._admit(record, state, url, refusal)
            self.store.move(record, state, now, due_at)
            if event is None or target is None:
                return None
            envelope = self._envelope(event, record, now)
            return self.outbox.enqueue(target, envelope, event.name, record.ref, now, pin=record.pin)

    def _admit(
        self, record: Record, state: str, url: Optional[str] = None, refusal: int = 409
    ) -> tuple[Optional[EventType], Optional[str]]:
        """Refuse a change before anything is made of it; else the event it sends and where to."""
        try:
            self.store.check_move(record, state)
        except RefusedError as error:
            raise RefusedError(refusal, "INVALID_REQUEST" if refusal == 400 else error.code, error.message) from None
        event, target = self._callback(record, state, url)
        if event is not None:
            self.outbox.check_room()
        return event, target

    def _callback(
        self, record: Record, state: str, url: Optional[str] = None
    ) -> tuple[Optional[EventType], Optional[str]]:
        """The event ``record`` becoming ``state`` sends and its target; (None, None) when it sends none."""
        event = for_transition(record, state)
        target = url or record.notify_url
        return (event, target) if event is not None and target else (None, None)

    def _envelope(self, event: EventType, record: Record, now: float) -> bytes:
        resource = event.resource(record, self.sandbox.identity.mchid)
        built = notify.build(
            self.sandbox,
            event.name,
            resource,
            summary=event.summary,
            original_type=event.original_type,
            create_time=rfc3339(now),
        )
        return built.body

    def _sign(self, body: bytes) -> Any:
        return self.sandbox.sign_answer(200, body, Headers({}))

    # -- the user's actions ----------------------------------------------------------------------

    def find(self, kinds: tuple[str, ...], number: str) -> Record:
        """The one object of these kinds with this number; ``RefusedError`` 404 when there is none."""
        found = self.store.find(kinds, number)
        if not found:
            raise RefusedError(
                404, "RESOURCE_NOT_EXISTS", f"no {' or '.join(kinds)} with number {number!r} in this sandbox"
            )
        if len(found) > 1:
            refs = ", ".join(f"{r.ref} ({r.scope})" for r in found)
            raise RefusedError(409, "AMBIGUOUS", f"{number!r} names several objects: {refs}")
        return found[0]

    def pay(self, out_trade_no: str, *, fail: bool = False, url: Optional[str] = None) -> Optional[Callback]:
        """The user pays an order or a combined order (``fail``: the payment fails: PAYERROR)."""
        with self.store.lock:
            record = self.find(("order", "combine_order"), out_trade_no)
            state = "PAYERROR" if fail else "SUCCESS"
            due_at = record.due_at if fail else None
            payer = {"payer": record.fields.get("payer") or {"openid": _openid()}}
            return self._act(record, state, due_at=due_at, url=url, fields=payer)

    def confirm_transfer(
        self, out_bill_no: str, *, fail: bool = False, url: Optional[str] = None
    ) -> Optional[Callback]:
        """The user confirms receipt of a transfer (``fail``: the transfer fails instead)."""
        with self.store.lock:
            record = self.find(("transfer",), out_bill_no)
            reason = {"fail_reason": "TRANSFER_RISK"} if fail else {}
            return self._act(record, "FAIL" if fail else "SUCCESS", url=url, fields=reason)

    def sign_contract(self, out_contract_code: str, *, url: Optional[str] = None) -> Optional[Callback]:
        """The user signs a pre-entrust-sign contract."""
        with self.store.lock:
            record = self.find(("contract",), out_contract_code)
            return self._act(record, "SIGNED", url=url, fields={"openid": record.fields.get("openid") or _openid()})

    def terminate_contract(
        self,
        record: Record,
        now: float,
        *,
        mode: str = "USER_TERMINATE",
        remark: str = "",
        refusal: int = 409,
        url: Optional[str] = None,
    ) -> Optional[Callback]:
        with self.store.lock:
            self._admit(record, "TERMINATED", url, refusal)  # before the fields change
            record.fields["contract_terminate_info"] = {
                "contract_termination_mode": mode,
                "contract_terminated_time": rfc3339(now),
                "contract_termination_remark": remark or "用户解约",
            }
            return self.transition(record, "TERMINATED", now, url=url, refusal=refusal)

    def settle_refund(
        self, out_refund_no: str, state: str = "SUCCESS", *, url: Optional[str] = None
    ) -> Optional[Callback]:
        """WeChat Pay finishes a refund: SUCCESS, ABNORMAL or CLOSED."""
        with self.store.lock:
            return self._act(self.find(("refund",), out_refund_no), state, url=url)

    def _act(
        self,
        record: Record,
        state: str,
        *,
        due_at: Optional[float] = None,
        url: Optional[str] = None,
        fields: Optional[dict[str, Any]] = None,
    ) -> Optional[Callback]:
        """The user's change of ``record`` to ``state``, with the ``fields`` it sets once admitted."""
        if record.kind == "contract" and state == "TERMINATED":
            return self.terminate_contract(record, self.now, url=url)
        self._admit(record, state, url)
        record.fields.update(fields or {})
        callback = self.transition(record, state, self.now, due_at=due_at, url=url)
        self.save()
        return callback

    def trigger(
        self, name: str, number: Optional[str] = None, url: Optional[str] = None
    ) -> tuple[Optional[Record], Any]:
        """Send event ``name``: on the object with ``number``, or on a fresh throwaway object.

        The object moves to the state the event reports (a payment succeeds, a refund is closed...);
        ``url`` receives the callback instead of the object's notify_url. Any other event type of the
        event catalogue (``engine.events``) is sent to ``url`` with a sample resource, no object.
        """
        event = event_types().get(name)
        if event is None:
            return None, self._catalogue_event(name, number, url)
        if number is None and url is None:
            raise RefusedError(
                400, "NO_URL", f"a throwaway object for {name} has no notify_url: give a URL to forward to"
            )
        with self.store.lock:
            if number is None:
                return self._on_throwaway(event, url)
            record = self.find(event.kinds, number)
            if not event.concerns(record):
                raise RefusedError(409, "INVALID_STATE", f"{name} is not sent for {record.ref} ({record.scope})")
            if url is None and not record.notify_url:
                raise RefusedError(
                    400, "NO_URL", f"{record.ref} has no notify_url: give a URL to forward the callback to"
                )
            return record, self._act(record, event.states[0], url=url)

    def _on_throwaway(self, event: EventType, url: Optional[str]) -> tuple[Optional[Record], Any]:
        """Send ``event`` on a throwaway object; refused, it leaves the store as it was (the module
        docstring says how)."""
        self.outbox.check_room()
        count = 1 + (KINDS[event.kinds[0]].parent is not None)  # a refund needs its order made too
        if not self.store.fits(count):
            raise RefusedError(429, "RATELIMIT_EXCEEDED", self.store.full_message(count))
        made: list[Record] = []
        try:
            record = self._fixture(event, made)
            return record, self._act(record, event.states[0], url=url)
        except RefusedError:
            self.store.discard(made[::-1])  # children first, as they were made last
            raise

    def _catalogue_event(self, name: str, number: Optional[str], url: Optional[str]) -> Callback:
        """An event of the catalogue that no modelled object sends: a sample resource, to ``url``."""
        from engine.events import catalogue

        if catalogue().get(name) is None:
            raise RefusedError(400, "UNKNOWN_EVENT", f"the event catalogue lists no event type {name!r}")
        if number is not None:
            raise RefusedError(400, "NO_OBJECT", f"{name} concerns no object the sandbox keeps: leave out the number")
        if url is None:
            raise RefusedError(400, "NO_URL", f"{name} has no object with a notify_url: give a URL to forward to")
        body = self.sandbox.event(name).body
        with self.store.lock:  # as in transition
            return self.outbox.enqueue(url, body, name, f"event/{name}", self.now)

    def _fixture(self, event: EventType, made: list[Record]) -> Record:
        """A throwaway object for ``event``, each record made appended to ``made`` as it is made."""
        kind = event.kinds[0]
        scope = event.scopes[0] if event.scopes else next(s for k, s in FIXTURES if k == kind)
        if kind == "refund":
            order = self._make(("order", "direct"), {"notify_url": None}, made)
            self.transition(order, "SUCCESS", self.now)
            return self._make(
                (kind, scope),
                {
                    "out_trade_no": order.number,
                    "transaction_id": None,
                    "amount": {"refund": 1, "total": 1, "currency": "CNY"},
                },
                made,
            )
        record = self._make((kind, scope), {}, made)
        if kind == "contract" and event.states[0] == "TERMINATED":
            self.transition(record, "SIGNED", self.now)
        return record

    def _make(self, key: tuple[str, str], overrides: dict[str, Any], made: list[Record]) -> Record:
        descriptor = self.sandbox.registry.get(FIXTURES[key])
        payload = {k: v for k, v in {**example_payload(descriptor), **overrides}.items() if v is not None}
        number_field = _number_field(key[0])
        payload[number_field] = "SANDBOX" + secrets.token_hex(6).upper()
        if key[0] == "order":
            payload["amount"] = {"total": 1, "currency": "CNY"}
        flows.answer(self, flows.OPERATIONS[descriptor.id], payload, self.now)
        record = self.store.get(key[0], key[1], payload[number_field])
        assert record is not None
        made.append(record)
        record.notify_url = None  # a throwaway object's callbacks go where the trigger says only
        return record

    # -- time ------------------------------------------------------------------------------------

    def next_due(self) -> Optional[float]:
        due = [t for t in (self.store.next_due(), self.outbox.next_due(), self._certificates_due()) if t is not None]
        return min(due) if due else None

    async def on_time(self, now: float) -> None:
        with self.store.lock:
            for record in self.store.due(now):  # only what fell due: settled records are never visited
                self._fall_due(record, now)
            self._certificates_on_time(now)
        await self.outbox.deliver_due(now)
        if _pace_clock() >= self._next_paced_save:
            self.save()

    def _fall_due(self, record: Record, now: float) -> None:
        """Make ``record``'s automatic change, or postpone it while the outbox has no room for its callback."""
        assert record.due_at is not None
        try:
            self.transition(record, AUTOMATIC[(record.kind, record.state)], record.due_at)
        except RefusedError:  # only a full outbox refuses an automatic change (the table allows them all)
            self.store.postpone(record, max(now, self.outbox.next_due() or now + POSTPONE_SECONDS))

    async def deliver_due(self) -> list[Callback]:
        """Attempt every callback due now (what ``clock.advance(0)`` does too)."""
        return await self.outbox.deliver_due(self.now)

    def _expiry(self, serial: str, certificate: Any) -> float:
        return self._certificate_expiry.get(serial) or certificate.not_valid_after_utc.timestamp()

    def _certificates_due(self) -> Optional[float]:
        held = self.sandbox.certificates()
        if not held:
            return None
        expiries = [self._expiry(f"{c.serial_number:X}", c) for c in held]
        rotation = expiries[-1] - self.certificate_overlap
        retirements = expiries[:-1]  # the newest never retires before its successor exists
        return min([rotation, *retirements])

    def _certificates_on_time(self, now: float) -> None:
        held = self.sandbox.certificates()
        if held and now >= self._expiry(f"{held[-1].serial_number:X}", held[-1]) - self.certificate_overlap:
            serial = self.sandbox.rotate_certificate()
            self._certificate_expiry[serial] = now + self.certificate_lifetime
            self.store.touch()
        held = self.sandbox.certificates()
        for certificate in held[:-1]:
            serial = f"{certificate.serial_number:X}"
            if now >= self._expiry(serial, certificate):
                self.sandbox.retire_certificate(serial)
                self.store.touch()

    # -- the state dir ---------------------------------------------------------------------------

    def attach(self, state_dir: Path) -> None:
        """Keep the world in ``state_dir/world.json``: load what is there, save changes (``save``).

        Temporary files of writers that died mid-write are removed first (``state.remove_stale_temporaries``).
        """
        from engine.sandbox.state import remove_stale_temporaries

        remove_stale_temporaries(state_dir)
        self._path = state_dir / WORLD_FILE
        if self._path.exists():
            data = json.loads(self._path.read_text(encoding="utf-8"))
            self.sandbox.time.offset = float(data.get("clock_offset", 0.0))
            # Callbacks first: loading the objects trims to the limit, and a pending callback must pin its
            # object then, or it would be restored about an object already gone.
            self.outbox.load(data.get("callbacks", []))
            self.store.load(data.get("objects", []))
        self._saver.written_mark = self._mark()

    def save(self, wait: bool = False) -> None:
        """Write ``world.json`` if the world changed since it was last written (no-op unattached).

        Another thread writing now is handed the dump instead; ``wait`` waits until it is written.
        """
        if self._path is None or self._saver.written_mark == self._mark():
            return
        started = _pace_clock()
        with self.consistent():  # the mark and the dump together: a change made meanwhile is not marked saved
            mark = self._mark()
            objects, callbacks = self.store.dump(), self.outbox.dump()
            number = self._saver.number()
        data = {"clock_offset": mark[1], "objects": objects, "callbacks": callbacks}
        self._saver.hand_over(Dump(number, mark, json.dumps(data, ensure_ascii=False).encode("utf-8")), wait)
        spent = _pace_clock() - started
        if spent > PACED_SAVE_SECONDS:
            self._next_paced_save = started + spent / SAVE_SHARE

    def _write_file(self, text: bytes) -> None:
        from engine.sandbox.state import write_private

        assert self._path is not None  # a dump is only taken once attached
        write_private(self._path, text, durable=False)  # saved many times a second: see write_private

    def _mark(self) -> tuple[int, float]:
        return self.version, self.sandbox.time.offset

    def clear(self) -> None:
        """Forget every object and callback."""
        self.store.clear()
        self.outbox.clear()


def _number_field(kind: str) -> str:
    return KINDS[kind].number


def _openid() -> str:
    return "o" + secrets.token_urlsafe(20)[:27]


def _encrypted_paths(descriptor: Descriptor, payload: dict[str, Any]) -> tuple[str, ...]:
    paths: list[str] = []
    fields = {**descriptor.request.query, **descriptor.request.body}
    map_encrypted(fields, payload, lambda value, path: paths.append(path) or value)  # type: ignore[func-returns-value]
    return tuple(paths)
