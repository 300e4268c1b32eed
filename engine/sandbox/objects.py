"""What the sandbox remembers: orders, refunds, contracts and transfers, and the states they move through.

Design decisions:

* One generic ``Record`` for every kind: the merchant's number (``out_trade_no``, ``out_refund_no``,
  ``out_contract_code``, ``out_bill_no``), a *scope* separating numbering spaces that WeChat Pay keeps
  apart (direct and partner orders, each contract product), the state, the fields an answer shows
  and the notify_url. What differs between kinds is data (``KINDS``: states and allowed
  transitions), not classes.
* A transition not in the table raises ``RefusedError``, naming the object, its state and what the
  action needs, so a test that pays a closed order learns exactly why it cannot.
* The store is plain data: ``dump``/``load`` round-trip it through JSON for the state directory.
  Fields hold what requests carried, decrypted (WeChat Pay holds them too); the names of fields
  that travelled encrypted are kept in ``secret`` so every view for people (the inspector) masks
  them. Reprs show kind, number and state only.
* A record created under the number of one it replaces (a new pre-entrust-sign for an unsigned
  contract) takes its place everywhere: the replaced record's ids leave the id index with it, so
  repeating a request holds one record, not one more per call.
* Times are the sandbox's business time (``engine.sandbox.clock``), in Unix seconds.
* The store is bounded (``limit``, default ``DEFAULT_OBJECT_LIMIT``): when a new number would take
  it past the limit, a *settled* record is evicted, the one that settled first. Settled means in
  one of its kind's ``final`` states (data in ``KINDS``: a closed, paid or refunded order, a
  settled or closed refund, a terminated contract, a finished transfer); one that a callback still
  being retried pins (``Pins``: the outbox) is passed over while others can go, and goes first
  once the outbox says its callbacks are done (``unpinned``), before any is forced. A record in any
  other state is in flight (a pre-entrust-sign waiting for the user too) and never evicted; when
  every record is, the new one is refused with WeChat Pay's 429 rate-limit answer, naming the
  limit, so memory stays bounded whatever a peer sends.
* A record evicted is forgotten entirely (number, ids, schedule): WeChat Pay's answer for it is
  the one for an unknown number (404 ``ORDER_NOT_EXIST`` / ``RESOURCE_NOT_EXISTS``), and its number
  can be used again. A paid order can still be refunded until it is evicted; then a refund of it
  answers as for an unknown order.
* A kind can belong to another (``parent``: a refund to the order whose ``transaction_id`` it
  carries). Such a record leaves with its parent and never alone, and the parent goes only once all
  its children have settled, so a kept order always sees all its refunds (what remains refundable
  is computed from them).
* When every settled record is still pinned by a pending callback, the oldest is evicted anyway and
  its callbacks given up: a receiver that never answers must not keep the store full.
* A refused create leaves the store as it was. A single create is refused only when nothing could
  be evicted, so nothing was; a settled parent whose turn came while the refused child was held
  gets its place in the eviction queue back (``_withdraw``), or it would never be evicted. A caller
  that makes several records for one action (a sandbox trigger's throwaway order and refund) asks
  ``fits(n)`` first, which counts the evictable records without evicting any, and gives what it
  made to ``discard`` if the action is refused later.
* What a clock tick needs is indexed (``engine.sandbox.schedule``): ``due(now)`` pops the records
  whose automatic transition fell due, so ticks never visit settled records.
"""

from __future__ import annotations

import datetime as dt
import itertools
import secrets
from typing import Any, Iterator, Optional, Protocol

import attrs

from engine import forksafe
from engine.errors import ConfigurationError
from engine.sandbox.schedule import Schedule

CHINA = dt.timezone(dt.timedelta(hours=8))


@attrs.frozen
class KindSpec:
    """The states of one kind of object, the transitions between them, and which states are final."""

    initial: str
    transitions: frozenset[tuple[str, str]]
    number: str  # the merchant's number field
    final: frozenset[str]  # settled: evictable once no callback about it is pending
    parent: Optional[tuple[str, str]] = None  # (kind, id field): the record it belongs to and leaves with

    def allows(self, old: str, new: str) -> bool:
        return (old, new) in self.transitions

    def sources(self, new: str) -> list[str]:
        return sorted(old for old, target in self.transitions if target == new)

    def states(self) -> frozenset[str]:
        return frozenset({self.initial, *(state for pair in self.transitions for state in pair)})


def _spec(initial: str, number: str, final: str, *pairs: str, parent: Optional[tuple[str, str]] = None) -> KindSpec:
    transitions = frozenset(tuple(p.split(">")) for p in pairs)
    return KindSpec(initial, transitions, number, frozenset(final.split()), parent)  # type: ignore[arg-type]


KINDS: dict[str, KindSpec] = {
    # A paid order is final although a refund can still follow: the payment is over, and a refund
    # is an object of its own that keeps the order in the store while it runs (``parent``).
    "order": _spec(
        "NOTPAY",
        "out_trade_no",
        "SUCCESS REFUND CLOSED",
        "NOTPAY>SUCCESS",
        "NOTPAY>PAYERROR",
        "NOTPAY>CLOSED",
        "PAYERROR>CLOSED",
        "PAYERROR>SUCCESS",
        "SUCCESS>REFUND",
        "REFUND>REFUND",
    ),
    "combine_order": _spec(
        "NOTPAY",
        "combine_out_trade_no",
        "SUCCESS CLOSED",
        "NOTPAY>SUCCESS",
        "NOTPAY>PAYERROR",
        "NOTPAY>CLOSED",
        "PAYERROR>CLOSED",
        "PAYERROR>SUCCESS",
    ),
    # ABNORMAL is not final: it waits for the merchant to reprocess the refund.
    "refund": _spec(
        "PROCESSING",
        "out_refund_no",
        "SUCCESS CLOSED",
        "PROCESSING>SUCCESS",
        "PROCESSING>ABNORMAL",
        "PROCESSING>CLOSED",
        "ABNORMAL>PROCESSING",
        parent=("order", "transaction_id"),
    ),
    # PRE_SIGN is the sandbox's name for "pre-entrust-sign issued, the user has not signed yet":
    # WeChat Pay itself answers 404 for such a contract, which the flows do. A signed contract is a
    # live agreement: only a terminated one is final.
    "contract": _spec("PRE_SIGN", "out_contract_code", "TERMINATED", "PRE_SIGN>SIGNED", "SIGNED>TERMINATED"),
    "transfer": _spec(
        "WAIT_USER_CONFIRM",
        "out_bill_no",
        "SUCCESS FAIL CANCELLED",
        "WAIT_USER_CONFIRM>SUCCESS",
        "WAIT_USER_CONFIRM>FAIL",
        "WAIT_USER_CONFIRM>CANCELING",
        "WAIT_USER_CONFIRM>CANCELLED",
        "CANCELING>CANCELLED",
    ),
}
DEFAULT_OBJECT_LIMIT = 10_000  # about 60 MiB of RSS when served (BENCHMARKS.md §6)
Key = tuple[str, str, str]  # (kind, scope, number)


class RefusedError(Exception):
    """A request or action the sandbox turns down: HTTP status, WeChat Pay-style code, message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@attrs.define
class Record:
    """One object the sandbox holds."""

    kind: str
    scope: str
    number: str
    state: str
    fields: dict[str, Any] = attrs.field(repr=False)
    created_at: float
    updated_at: float
    notify_url: Optional[str] = attrs.field(default=None, repr=False)
    due_at: Optional[float] = None  # business time of the next automatic transition
    secret: tuple[str, ...] = attrs.field(default=(), repr=False)
    request: dict[str, Any] = attrs.field(factory=dict, repr=False)  # what created it (duplicates are compared)
    history: list[tuple[float, str]] = attrs.field(factory=list, repr=False)

    @property
    def ref(self) -> str:
        """``kind/number``: how people and the admin API name it."""
        return f"{self.kind}/{self.number}"

    @property
    def pin(self) -> str:
        """``kind/scope/number``: what its callbacks are filed under (``Pins``). The scope matters: a
        direct and a partner order, or contracts of two products, may share a number."""
        return f"{self.kind}/{self.scope}/{self.number}"


class Pins(Protocol):
    """What keeps a settled record in the store: callbacks about it still being retried (the outbox)."""

    def pending(self, ref: str) -> bool:
        """Whether a callback about ``ref`` (a record's ``pin``) is still to be delivered."""

    def give_up(self, ref: str) -> None:
        """Stop retrying every callback about ``ref``."""


class _NoPins:
    def pending(self, ref: str) -> bool:
        return False

    def give_up(self, ref: str) -> None:
        pass


class ObjectStore:
    """Every object of one sandbox, by kind, scope and number, and by WeChat Pay's own ids."""

    def __init__(self, limit: int = DEFAULT_OBJECT_LIMIT, pins: Optional[Pins] = None) -> None:
        self._records: dict[Key, Record] = {}
        self._ids: dict[tuple[str, str], Record] = {}  # (id field, value) -> record
        self._numbers: dict[tuple[str, str], dict[Key, None]] = {}  # (kind, number) -> keys, every scope
        self._children: dict[Key, dict[Key, None]] = {}  # parent key -> keys of the records that belong to it
        self._schedule: Schedule[Key] = Schedule()  # keys with an automatic transition ahead
        self._settled: dict[Key, None] = {}  # final records, in the order they settled: eviction candidates
        self._pinned: dict[Key, None] = {}  # settled records found pinned by a callback when their turn came
        self._freed: dict[Key, None] = {}  # keys the outbox said are no longer pinned (``unpinned``)
        self._limit = _checked(limit)
        self.pins: Pins = pins or _NoPins()
        self.evicted = 0  # records evicted since the store was made
        self.lock = forksafe.rlock()  # the HTTP thread and a blocking clock advance may both act
        self.version = 0  # bumped on every change: the inspector's "something moved"

    @property
    def limit(self) -> int:
        """The most records held; setting it evicts settled records down to the new limit."""
        return self._limit

    @limit.setter
    def limit(self, limit: int) -> None:
        with self.lock:
            self._limit = _checked(limit)
            self._trim()

    def create(self, kind: str, scope: str, number: str, fields: dict[str, Any], now: float, **extra: Any) -> Record:
        """Hold a new record (replacing one under the same number), evicting to stay within the limit.

        ``RefusedError`` 429 when the store is full of records still in flight.
        """
        spec = KINDS[kind]
        record = Record(kind, scope, number, spec.initial, fields, now, now, **extra)
        record.history.append((now, spec.initial))
        with self.lock:
            grows = _key(record) not in self._records
            self._put(record)
            if grows and not self._trim():
                self._withdraw(record)
                raise RefusedError(429, "RATELIMIT_EXCEEDED", self.full_message())
            self.version += 1
        return record

    def fits(self, count: int) -> bool:
        """Whether ``count`` new records would be held: there is room, or enough settled records to
        evict for it. Counted, not evicted: a caller refused here has changed nothing.

        Costs the evictable records it counts, at worst a pass over the eviction queues (only when
        the store is full of records in flight).
        """
        with self.lock:
            needed = len(self._records) + count - self._limit
            counted: set[Key] = set()
            for key in itertools.chain(self._pinned, self._settled):
                if len(counted) >= needed:
                    break
                group = self._group(key)
                if group is not None:
                    counted.update(map(_key, group))
            return len(counted) >= needed

    def discard(self, records: list[Record]) -> None:
        """Forget ``records`` (children before their parents), as if they had never been created."""
        with self.lock:
            for record in records:
                if self._records.get(_key(record)) is record:
                    self._withdraw(record)
            self.version += 1

    def _withdraw(self, record: Record) -> None:
        """Forget ``record`` and give its parent back its place among the settled: a parent whose turn
        came while this child was in flight left the eviction queue, counting on the child's settling
        to bring it back, which a withdrawn child never does."""
        parent = self.parent(record)
        self._remove(record)
        if parent is not None and _key(parent) not in self._settled and _key(parent) not in self._pinned:
            self._queue(parent)

    def full_message(self, count: int = 1) -> str:
        """Why ``count`` new records are refused: too few of those held have settled to make room."""
        why = "and none has settled" if count == 1 else f"and too few have settled to make room for {count} more"
        return (
            f"the sandbox holds {len(self)} objects, its limit {self._limit}, {why}: "
            "settle some, or raise the limit (object_limit, wechatpay sandbox serve --object-limit)"
        )

    def _put(self, record: Record) -> None:
        """Hold ``record`` under its number; the record it replaces (if any) is forgotten entirely."""
        key = _key(record)
        replaced = self._records.get(key)
        if replaced is not None:
            self._unindex(replaced)
        self._records[key] = record
        self.index(record)
        self._schedule.set(key, record.due_at)
        self._queue(record)

    def index(self, record: Record) -> None:
        """Make the record findable by its number and the ids WeChat Pay gave it (transaction_id ...)."""
        key = _key(record)
        for name, value in _ids_of(record):
            self._ids[(name, value)] = record
        self._numbers.setdefault((record.kind, record.number), {})[key] = None
        self._link(record)

    def _link(self, record: Record) -> None:
        """Count ``record`` among its parent's children (a refund among its order's), if both are held."""
        parent = self.parent(record)
        if parent is not None:
            self._children.setdefault(_key(parent), {})[_key(record)] = None

    def _unindex(self, record: Record) -> None:
        key = _key(record)
        for name, value in _ids_of(record):
            if self._ids.get((name, value)) is record:
                del self._ids[(name, value)]
        _discard(self._numbers, (record.kind, record.number), key)
        parent = self.parent(record)
        if parent is not None:
            _discard(self._children, _key(parent), key)

    def _remove(self, record: Record) -> None:
        """Forget ``record``: its number, its ids, its place in the schedule and the eviction queues."""
        key = _key(record)
        self._unindex(record)
        del self._records[key]
        self._schedule.discard(key)
        self._settled.pop(key, None)
        self._pinned.pop(key, None)
        self._freed.pop(key, None)

    def unpinned(self, pin: str) -> None:
        """The outbox: no callback about ``pin`` (a ``Record.pin``) is pending any more.

        Called under the outbox's lock, so it takes none of its own (the lock order is store, then
        outbox): it only notes the key, and the next eviction, under the store's lock, reads it.
        """
        kind, _, rest = pin.partition("/")
        scope, _, number = rest.partition("/")
        self._freed[(kind, scope, number)] = None

    def get(self, kind: str, scope: str, number: str) -> Optional[Record]:
        return self._records.get((kind, scope, number))

    def by_id(self, name: str, value: Any) -> Optional[Record]:
        return self._ids.get((name, str(value)))

    def find(self, kinds: tuple[str, ...], number: str) -> list[Record]:
        """Every record of these kinds with this number, whatever its scope."""
        return [self._records[key] for kind in kinds for key in self._numbers.get((kind, number), ())]

    def parent(self, record: Record) -> Optional[Record]:
        """The record ``record`` belongs to (a refund's order), if its kind has one and it is held."""
        link = KINDS[record.kind].parent
        if link is None:
            return None
        kind, field = link
        found = self.by_id(field, record.fields.get(field))
        return found if found is not None and found.kind == kind else None

    def children(self, record: Record) -> list[Record]:
        """The records that belong to ``record`` (an order's refunds), oldest first."""
        return [self._records[key] for key in self._children.get(_key(record), ())]

    def check_move(self, record: Record, state: str) -> None:
        """``RefusedError`` 409 saying why ``record`` cannot become ``state``; None when it can."""
        spec = KINDS[record.kind]
        if not spec.allows(record.state, state):
            needs = " or ".join(spec.sources(state)) or "no state reaches it"
            message = f"{record.ref} is {record.state}: it cannot become {state} (only from {needs})"
            raise RefusedError(409, "INVALID_STATE", message)

    def move(self, record: Record, state: str, now: float, due_at: Optional[float] = None) -> None:
        """Change state along an allowed transition, or raise ``RefusedError`` saying why not."""
        self.check_move(record, state)
        with self.lock:
            record.state = state
            record.updated_at = now
            record.due_at = due_at
            record.history.append((now, state))
            if self._records.get(_key(record)) is record:  # not one evicted while a caller held it
                self._schedule.set(_key(record), due_at)
                self._queue(record)
            self.version += 1

    def _queue(self, record: Record) -> None:
        """A record that reached a final state joins the end of the eviction queue."""
        key = _key(record)
        self._settled.pop(key, None)
        self._pinned.pop(key, None)
        if _final(record):
            self._settled[key] = None

    def postpone(self, record: Record, due_at: float) -> None:
        """Make ``record``'s automatic transition due again at ``due_at`` (it could not happen yet)."""
        with self.lock:
            record.due_at = due_at
            if self._records.get(_key(record)) is record:
                self._schedule.set(_key(record), due_at)
            self.version += 1

    def due(self, now: float) -> list[Record]:
        """Remove from the schedule and return the records whose automatic transition is due at ``now``."""
        with self.lock:
            return [self._records[key] for key in self._schedule.pop_due(now)]

    def next_due(self) -> Optional[float]:
        with self.lock:  # peeking drops stale heap entries: a change, like any other
            return self._schedule.next_at()

    # -- eviction --------------------------------------------------------------------------------

    def _trim(self) -> bool:
        """Evict settled records until the store is within its limit; False if it cannot be."""
        while len(self._records) > self._limit:
            if not self._evict_one():
                return False
        return True

    def _evict_one(self) -> bool:
        """Evict the oldest settled record no callback pins; as a last resort the oldest pinned one,
        its callbacks given up. False when nothing has settled."""
        return self._evict_pinned(force=False) or self._evict_settled() or self._evict_pinned(force=True)

    def _evict_settled(self) -> bool:
        while self._settled:
            key = next(iter(self._settled))
            del self._settled[key]
            group = self._group(key)
            if group is None:
                continue
            if self._is_pinned(group):  # waits in the second queue, still ahead of every newer one
                self._pinned[key] = None
                continue
            self._evict(group, give_up=False)
            return True
        return False

    def _evict_pinned(self, force: bool) -> bool:
        """The oldest record that was pinned when its turn came: evicted once its callbacks are done,
        or (``force``) with its callbacks given up. Only the head is looked at: O(1) per eviction."""
        while self._pinned:
            key = next(iter(self._pinned))
            group = self._group(key)
            if group is not None and not force and self._is_pinned(group):
                return self._evict_freed()
            del self._pinned[key]
            if group is not None:
                self._evict(group, give_up=force)
                return True
        return False

    def _evict_freed(self) -> bool:
        """A record further back in the pinned queue whose callbacks are done since: it goes before
        anything is forced (each key the outbox freed is looked at once)."""
        while self._freed:
            key = next(iter(self._freed))
            del self._freed[key]
            group = self._group(key)
            if group is None or self._is_pinned(group):
                continue
            queued = [k for k in map(_key, group) if k in self._pinned]
            if not queued:  # not waiting in the pinned queue: the settled queue reaches it in turn
                continue
            for waiting in queued:
                del self._pinned[waiting]
            self._evict(group, give_up=False)
            return True
        return False

    def _is_pinned(self, group: list[Record]) -> bool:
        return any(self.pins.pending(record.pin) for record in group)

    def _group(self, key: Key) -> Optional[list[Record]]:
        """What evicting ``key`` takes: the record (or the parent it belongs to) with every child,
        all settled; None when the entry is stale or part of the group is still in flight."""
        record = self._records.get(key)
        if record is None or not _final(record):
            return None
        record = self.parent(record) or record  # a settled child's turn stands for its parent's
        group = [record, *self.children(record)]
        return group if all(_final(r) for r in group) else None

    def _evict(self, group: list[Record], give_up: bool) -> None:
        for record in group:
            if give_up:
                self.pins.give_up(record.pin)
            self._remove(record)
        self._children.pop(_key(group[0]), None)
        self.evicted += len(group)

    def touch(self) -> None:
        self.version += 1

    def __iter__(self) -> Iterator[Record]:
        return iter(list(self._records.values()))

    def __len__(self) -> int:
        return len(self._records)

    def clear(self) -> None:
        with self.lock:
            queues = (self._settled, self._pinned, self._freed)
            for index in (self._records, self._ids, self._numbers, self._children, *queues):
                index.clear()
            self._schedule.clear()
            self.version += 1

    # -- the state dir ---------------------------------------------------------------------------

    def dump(self) -> list[dict[str, Any]]:
        return [attrs.asdict(record) for record in self]

    def load(self, rows: list[dict[str, Any]]) -> None:
        """Hold the dumped records, then evict down to the limit (which may be lower than when saved)."""
        with self.lock:
            loaded = [_row(row) for row in rows]
            for record in loaded:
                self._put(record)
            for record in loaded:  # a child may have been dumped before its parent
                self._link(record)
            settled = sorted(self._settled, key=lambda key: self._records[key].updated_at)
            self._settled = dict.fromkeys(settled)  # the queue's order is when each settled
            self._trim()
            self.version += 1


def _row(row: dict[str, Any]) -> Record:
    """A dumped record back (JSON turned its tuples into lists)."""
    history = [tuple(h) for h in row.get("history", [])]
    return Record(**{**row, "secret": tuple(row.get("secret", ())), "history": history})


def _key(record: Record) -> Key:
    return (record.kind, record.scope, record.number)


def _final(record: Record) -> bool:
    return record.state in KINDS[record.kind].final


def _discard(index: dict[Any, dict[Key, None]], name: Any, key: Key) -> None:
    keys = index.get(name)
    if keys is not None:
        keys.pop(key, None)
        if not keys:
            del index[name]


def checked_limit(name: str, limit: Any) -> int:
    """``limit`` when it is a whole number >= 1, else ``ConfigurationError`` naming the setting."""
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise ConfigurationError(f"{name} must be a whole number >= 1, got {limit!r}")
    return limit


def _checked(limit: Any) -> int:
    return checked_limit("object_limit", limit)


ID_FIELDS: dict[str, tuple[str, ...]] = {
    "order": ("transaction_id",),
    "combine_order": ("combine_transaction_id",),
    "refund": ("refund_id",),
    "contract": ("contract_id",),
    "transfer": ("transfer_bill_no",),
}


def _ids_of(record: Record) -> Iterator[tuple[str, str]]:
    for name in ID_FIELDS.get(record.kind, ()):
        value = record.fields.get(name)
        if isinstance(value, str) and value:
            yield name, value


def rfc3339(moment: float) -> str:
    """Business time as WeChat Pay writes it: RFC 3339 in China time."""
    return dt.datetime.fromtimestamp(moment, CHINA).isoformat(timespec="seconds")


def parse_rfc3339(text: str) -> Optional[float]:
    try:
        return dt.datetime.fromisoformat(text).timestamp()
    except (TypeError, ValueError):
        return None


def new_id(prefix: str, digits: int) -> str:
    """A WeChat Pay-looking id: a fixed prefix and random digits.

    One draw below ``10**digits``, zero-padded: every digit string equally likely, as with a draw per
    digit, at a tenth of the cost (the ids of a stateful call are made on every request).
    """
    return prefix + str(secrets.randbelow(10**digits)).zfill(digits)
