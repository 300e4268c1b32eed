"""Shared state behind an engine: notification claims and acknowledgements, cached certificates, locks.

Design decisions:

* One small protocol, ``Store``, for everything an engine must share between its workers: a
  notification is *claimed* before its handler runs (``claim``), then *acknowledged* when the
  handler returned (``acknowledge``) or *released* when it failed (``release``); the certificate
  set is cached (``load_certificates``/``save_certificates``); and ``lock(name)`` is a lock held
  across processes, so one download serves every worker. Two implementations: ``MemoryStore``
  (the default: one process) and ``engine.redis_store.RedisStore`` (``redis://``: many processes).
* A claim is one atomic step, never read-then-write: ``claimed`` (run the handler), ``acknowledged``
  (already processed: answer success, do not run it again) or ``in_flight`` (another worker holds
  it now). Claims expire (``claim_ttl``, 5 min by default) so a worker that died mid-handler does
  not block the notification forever; acknowledgements expire after ``ack_ttl`` (25 hours by
  default: WeChat Pay re-sends for 24 h 4 min).
* The store holds no secret. Certificates are cached exactly as WeChat Pay sent them: each entry
  still AEAD-encrypted under the APIv3 key, so a reader needs the key (which never enters the
  store) and whoever can write to the store cannot slip in a certificate of their own.
* ``Engine`` calls ``bind(namespace, runtime, clock)`` on the store it is given: the namespace is
  the merchant id, so engines for different merchants never see each other's ids, and loop-bound
  clients live in the engine's ``Runtime``. ``MemoryStore`` expires entries by the engine's clock
  (so tests can move time); Redis expires them by its own.
* ``open_store("memory://" | "redis://…" | "rediss://…" | "unix://…")`` turns a setting into a
  store; an unknown scheme is a ``ConfigurationError``. Store failures are ``StoreError`` (a
  ``TransportError``), with the URL's password removed from every message.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import secrets
import threading
import time
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Mapping, Optional, Protocol, Sequence, Union
from urllib.parse import urlsplit, urlunsplit

import attrs

from engine import forksafe
from engine.errors import ConfigurationError
from engine.secret import Secret, reveal

if TYPE_CHECKING:
    from engine.runtime import Runtime

CLAIMED = "claimed"
ACKNOWLEDGED = "acknowledged"
IN_FLIGHT = "in_flight"
DEFAULT_CLAIM_TTL = 300.0
DEFAULT_ACK_TTL = 25 * 3600.0
DEFAULT_LOCK_TTL = 60.0
STORE_ENV = "WECHATPAY_STORE"
SCHEMES = ("memory", "redis", "rediss", "unix")


@attrs.frozen
class Claim:
    """The outcome of claiming one notification id; ``token`` proves who holds a ``claimed`` one."""

    notification_id: str
    status: str
    token: str = attrs.field(default="", repr=False)


@attrs.frozen
class CachedCertificates:
    """The certificate entries of the last download, still encrypted, with who saved them when."""

    entries: tuple[Mapping[str, Any], ...] = attrs.field(repr=lambda e: f"<{len(e)} entries>")
    version: str
    saved_at: float


class Store(Protocol):
    """What an engine shares with its other workers. Every method may raise ``StoreError``."""

    description: str  # for messages and reprs: never a password

    def bind(self, namespace: str, runtime: "Runtime", clock: Callable[[], float]) -> "Store":
        """This store for one merchant (``namespace``) and one engine's runtime and clock."""

    def check(self) -> None:
        """Raise ``StoreError`` now if the store cannot be reached (called once, at construction)."""

    async def claim(self, notification_id: str, ttl: float) -> Claim:
        """Atomically: ``claimed`` (and hold it ``ttl`` s), ``acknowledged`` or ``in_flight``."""

    async def acknowledge(self, claim: Claim, ttl: float) -> None:
        """Record the notification as processed for ``ttl`` s (replacing the claim)."""

    async def release(self, claim: Claim) -> None:
        """Give up a claim (the handler failed), if it is still ours: the next delivery runs it."""

    async def load_certificates(self) -> Optional[CachedCertificates]:
        """The cached certificate entries, or ``None``."""

    async def save_certificates(self, entries: Sequence[Mapping[str, Any]]) -> CachedCertificates:
        """Replace the cached entries; returns what was saved, with a new ``version``."""

    def lock(self, name: str, ttl: float = DEFAULT_LOCK_TTL) -> Any:
        """An async context manager holding ``name`` across processes (expires after ``ttl`` s)."""

    async def aclose(self) -> None:
        """Release what the store itself owns (loop-bound clients are released with their loop)."""


def new_token() -> str:
    return secrets.token_hex(16)


def open_store(
    spec: Union[str, Secret, Store, None], *, namespace: str, runtime: "Runtime", clock: Callable[[], float]
) -> Any:
    """The store a setting names, bound to one merchant and engine (``None``: memory).

    A URL may come boxed (``Engine`` boxes it: it may carry a password) and is opened inline only, so
    no frame of a refusal's traceback holds it.
    """
    if reveal(spec) is None or reveal(spec) == "":
        return MemoryStore().bind(namespace, runtime, clock)
    if not isinstance(reveal(spec), str):
        bind = getattr(spec, "bind", None)
        return bind(namespace, runtime, clock) if callable(bind) else spec
    scheme = urlsplit(reveal(spec)).scheme.lower()
    if scheme == "memory":
        return MemoryStore().bind(namespace, runtime, clock)
    if scheme in ("redis", "rediss", "unix"):
        from engine.redis_store import RedisStore

        if redacted(reveal(spec)) == UNPARSEABLE:
            raise ConfigurationError(
                "store: <unparseable store URL> (a port must be a number); see the README's store URLs"
            )
        return RedisStore(reveal(spec)).bind(namespace, runtime, clock)
    raise ConfigurationError(
        f"store: unknown scheme {scheme or '(none)'!r} (the URL is not shown: it may hold a password); use one of "
        + ", ".join(f"{s}://" for s in SCHEMES)
    )


UNPARSEABLE = "<unparseable URL>"  # what redacted shows for a URL it cannot read (store, base URL)


def redacted(url: str) -> str:
    """``url`` without its password (``redis://:secret@h/0`` -> ``redis://:***@h/0``): store URLs, and
    base URLs in transport and doctor messages (a gateway's credentials may sit in one)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (a port that is not a number is refused here, not later)
    except ValueError:
        return UNPARSEABLE
    if parts.password is None:
        return url
    # The host and port as written (hostname would drop an IPv6 literal's brackets and lower-case it)
    userinfo, _, place = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urlunsplit((parts.scheme, f"{user}:***@{place}", parts.path, parts.query, parts.fragment))


async def poll_lock(try_acquire: Callable[[], Any], release: Callable[[], Any], wait: float) -> AsyncIterator[bool]:
    """Hold a lock by polling ``try_acquire`` (awaitable or not) for up to ``wait`` s; yields whether it is held.

    A lock that cannot be had in time is not waited for forever: the caller proceeds without it
    (liveness over single-flight) and is told so.
    """
    deadline = time.monotonic() + wait
    pause = 0.01
    while True:
        got = try_acquire()
        if asyncio.iscoroutine(got):
            got = await got
        if got or time.monotonic() >= deadline:
            break
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.2)
    try:
        yield bool(got)
    finally:
        if got:
            outcome = release()
            if asyncio.iscoroutine(outcome):
                await outcome


@attrs.define
class _MemoryState:
    """Shared by every view of one ``MemoryStore``: (namespace, key) -> (value, token, expires_at)."""

    records: dict[tuple[str, str], tuple[str, str, float]] = attrs.field(factory=dict)
    expiry: list[tuple[float, tuple[str, str]]] = attrs.field(factory=list)
    certificates: dict[str, CachedCertificates] = attrs.field(factory=dict)
    guard: threading.Lock = attrs.field(factory=forksafe.lock)


class MemoryStore:
    """The default store: this process only, thread-safe, expiring by the engine's clock."""

    description = "memory://"

    def __init__(self, *, namespace: str = "", clock: Callable[[], float] = time.time) -> None:
        self.namespace = namespace
        self.clock = clock
        self._state = _MemoryState()

    def bind(self, namespace: str, runtime: "Runtime", clock: Callable[[], float]) -> "MemoryStore":
        view = MemoryStore(namespace=namespace, clock=clock)
        view._state = self._state
        return view

    def check(self) -> None:
        return None

    async def claim(self, notification_id: str, ttl: float) -> Claim:
        key = (self.namespace, "notify:" + notification_id)
        with self._state.guard:
            record = self._live(key)
            if record is None:
                token = new_token()
                self._put(key, CLAIMED, token, ttl)
                return Claim(notification_id, CLAIMED, token)
        return Claim(notification_id, ACKNOWLEDGED if record[0] == ACKNOWLEDGED else IN_FLIGHT)

    async def acknowledge(self, claim: Claim, ttl: float) -> None:
        with self._state.guard:
            self._put((self.namespace, "notify:" + claim.notification_id), ACKNOWLEDGED, "", ttl)

    async def release(self, claim: Claim) -> None:
        key = (self.namespace, "notify:" + claim.notification_id)
        with self._state.guard:
            record = self._live(key)
            if record is not None and record[0] == CLAIMED and record[1] == claim.token:
                del self._state.records[key]

    async def load_certificates(self) -> Optional[CachedCertificates]:
        return self._state.certificates.get(self.namespace)

    async def save_certificates(self, entries: Sequence[Mapping[str, Any]]) -> CachedCertificates:
        saved = CachedCertificates(tuple(entries), new_token(), self.clock())
        self._state.certificates[self.namespace] = saved
        return saved

    def lock(self, name: str, ttl: float = DEFAULT_LOCK_TTL) -> Any:
        key = (self.namespace, "lock:" + name)
        token = new_token()

        def acquire() -> bool:
            with self._state.guard:
                if self._live(key) is not None:
                    return False
                self._put(key, "locked", token, ttl)
                return True

        def release() -> None:
            with self._state.guard:
                record = self._state.records.get(key)
                if record is not None and record[1] == token:
                    del self._state.records[key]

        return contextlib.asynccontextmanager(poll_lock)(acquire, release, ttl)

    async def aclose(self) -> None:
        return None

    def __len__(self) -> int:
        """Live records (claims, acknowledgements, locks) across every namespace."""
        with self._state.guard:
            self._prune(self.clock())
            return len(self._state.records)

    # -- internals (called with the guard held) -------------------------------------------------

    def _live(self, key: tuple[str, str]) -> Optional[tuple[str, str, float]]:
        now = self.clock()
        self._prune(now)
        record = self._state.records.get(key)
        if record is not None and record[2] <= now:
            del self._state.records[key]
            return None
        return record

    def _put(self, key: tuple[str, str], value: str, token: str, ttl: float) -> None:
        expires = self.clock() + ttl
        self._state.records[key] = (value, token, expires)
        heapq.heappush(self._state.expiry, (expires, key))

    def _prune(self, now: float) -> None:
        expiry, records = self._state.expiry, self._state.records
        while expiry and expiry[0][0] <= now:
            expires, key = heapq.heappop(expiry)
            record = records.get(key)
            if record is not None and record[2] == expires:
                del records[key]

    def __repr__(self) -> str:
        return f"<MemoryStore namespace={self.namespace!r}>"
