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
* What a clock tick needs is indexed (``engine.sandbox.schedule``): ``due(now)`` pops the records
  whose automatic transition fell due, so ticks never visit settled records.
"""

from __future__ import annotations

import datetime as dt
import secrets
import threading
from typing import Any, Iterator, Optional

import attrs

from engine.sandbox.schedule import Schedule

CHINA = dt.timezone(dt.timedelta(hours=8))


@attrs.frozen
class KindSpec:
    """The states of one kind of object and the transitions between them."""

    initial: str
    transitions: frozenset[tuple[str, str]]
    number: str  # the merchant's number field

    def allows(self, old: str, new: str) -> bool:
        return (old, new) in self.transitions

    def sources(self, new: str) -> list[str]:
        return sorted(old for old, target in self.transitions if target == new)


def _spec(initial: str, number: str, *pairs: str) -> KindSpec:
    return KindSpec(initial, frozenset(tuple(p.split(">")) for p in pairs), number)  # type: ignore[misc]


KINDS: dict[str, KindSpec] = {
    "order": _spec(
        "NOTPAY",
        "out_trade_no",
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
        "NOTPAY>SUCCESS",
        "NOTPAY>PAYERROR",
        "NOTPAY>CLOSED",
        "PAYERROR>CLOSED",
        "PAYERROR>SUCCESS",
    ),
    "refund": _spec(
        "PROCESSING",
        "out_refund_no",
        "PROCESSING>SUCCESS",
        "PROCESSING>ABNORMAL",
        "PROCESSING>CLOSED",
        "ABNORMAL>PROCESSING",
    ),
    # PRE_SIGN is the sandbox's name for "pre-entrust-sign issued, the user has not signed yet":
    # WeChat Pay itself answers 404 for such a contract, which the flows do.
    "contract": _spec("PRE_SIGN", "out_contract_code", "PRE_SIGN>SIGNED", "SIGNED>TERMINATED"),
    "transfer": _spec(
        "WAIT_USER_CONFIRM",
        "out_bill_no",
        "WAIT_USER_CONFIRM>SUCCESS",
        "WAIT_USER_CONFIRM>FAIL",
        "WAIT_USER_CONFIRM>CANCELING",
        "WAIT_USER_CONFIRM>CANCELLED",
        "CANCELING>CANCELLED",
    ),
}


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


class ObjectStore:
    """Every object of one sandbox, by kind, scope and number, and by WeChat Pay's own ids."""

    def __init__(self) -> None:
        self._records: dict[tuple[str, str, str], Record] = {}
        self._ids: dict[tuple[str, str], Record] = {}  # (id field, value) -> record
        self._schedule: Schedule[tuple[str, str, str]] = Schedule()  # keys with an automatic transition ahead
        self.lock = threading.RLock()  # the HTTP thread and a blocking clock advance may both act
        self.version = 0  # bumped on every change: the inspector's "something moved"

    def create(self, kind: str, scope: str, number: str, fields: dict[str, Any], now: float, **extra: Any) -> Record:
        spec = KINDS[kind]
        record = Record(kind, scope, number, spec.initial, fields, now, now, **extra)
        record.history.append((now, spec.initial))
        with self.lock:
            self._put(record)
            self.version += 1
        return record

    def _put(self, record: Record) -> None:
        """Hold ``record`` under its number; the record it replaces (if any) is forgotten entirely."""
        key = (record.kind, record.scope, record.number)
        replaced = self._records.get(key)
        if replaced is not None:
            self._unindex(replaced)
        self._records[key] = record
        self.index(record)
        self._schedule.set(key, record.due_at)

    def index(self, record: Record) -> None:
        """Make the record findable by the ids WeChat Pay gave it (transaction_id, refund_id ...)."""
        for name, value in _ids_of(record):
            self._ids[(name, value)] = record

    def _unindex(self, record: Record) -> None:
        for name, value in _ids_of(record):
            if self._ids.get((name, value)) is record:
                del self._ids[(name, value)]

    def get(self, kind: str, scope: str, number: str) -> Optional[Record]:
        return self._records.get((kind, scope, number))

    def by_id(self, name: str, value: Any) -> Optional[Record]:
        return self._ids.get((name, str(value)))

    def find(self, kinds: tuple[str, ...], number: str) -> list[Record]:
        """Every record of these kinds with this number, whatever its scope."""
        return [r for (kind, _, n), r in self._records.items() if kind in kinds and n == number]

    def move(self, record: Record, state: str, now: float, due_at: Optional[float] = None) -> None:
        """Change state along an allowed transition, or raise ``RefusedError`` saying why not."""
        spec = KINDS[record.kind]
        if not spec.allows(record.state, state):
            needs = " or ".join(spec.sources(state)) or "no state reaches it"
            message = f"{record.ref} is {record.state}: it cannot become {state} (only from {needs})"
            raise RefusedError(409, "INVALID_STATE", message)
        with self.lock:
            record.state = state
            record.updated_at = now
            record.due_at = due_at
            record.history.append((now, state))
            key = (record.kind, record.scope, record.number)
            if self._records.get(key) is record:  # not one a newer record under its number replaced
                self._schedule.set(key, due_at)
            self.version += 1

    def touch(self) -> None:
        self.version += 1

    def __iter__(self) -> Iterator[Record]:
        return iter(list(self._records.values()))

    def __len__(self) -> int:
        return len(self._records)

    def clear(self) -> None:
        with self.lock:
            self._records.clear()
            self._ids.clear()
            self._schedule.clear()
            self.version += 1

    def due(self, now: float) -> list[Record]:
        """Remove from the schedule and return the records whose automatic transition is due at ``now``."""
        with self.lock:
            return [self._records[key] for key in self._schedule.pop_due(now)]

    def next_due(self) -> Optional[float]:
        with self.lock:  # peeking drops stale heap entries: a change, like any other
            return self._schedule.next_at()

    def dump(self) -> list[dict[str, Any]]:
        return [attrs.asdict(record) for record in self]

    def load(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            row = {**row, "secret": tuple(row.get("secret", ())), "history": [tuple(h) for h in row.get("history", [])]}
            self._put(Record(**row))
        self.version += 1


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
