"""The Redis store: claims, acknowledgements, cached certificates and locks shared by every worker.

Design decisions:

* redis-py's asyncio client (``pip install wechatpay-engine[redis]``). Its connection pool is bound
  to the event loop that made it, so there is one client per Redis URL per loop, shared by every
  engine (every merchant) of the process on that loop (``engine.runtime.shared``, as the HTTP
  keep-alive pool is) and closed with that loop, not with any one engine: a hundred merchants in
  one worker use one pool, not a hundred. After ``fork()`` the child makes its own. Connections
  are named ``wechatpay-engine`` (``CLIENT LIST`` shows whose they are).
* Every write is atomic on the server. A claim is one Lua script (absent -> ``claimed:<token>``
  with ``PX claim_ttl``; ``done`` -> acknowledged; anything else -> in flight); acknowledging sets
  ``done`` with ``PX ack_ttl``; releasing and unlocking delete only when the stored token is ours
  (compare-and-delete in Lua). Nothing is read and then written from the client.
* Keys, all under ``wechatpay:<mchid>:`` so merchants never collide:
  ``notify:<notification id>`` (``claimed:<token>`` for ``claim_ttl``, then ``done`` for ``ack_ttl``),
  ``certificates`` (JSON: the encrypted entries of the last download, a version, when), and
  ``lock:<name>`` (a token, ``PX`` the lock's lifetime). Nothing secret is stored: the certificate
  entries are still AEAD-encrypted under the APIv3 key, which never enters Redis.
* Reachability is checked once at construction with a short synchronous ``PING`` (a
  ``StoreError`` naming the store); afterwards any Redis failure becomes ``StoreError``, which the
  receiver turns into a failure reply so WeChat Pay sends the notification again.
"""

from __future__ import annotations

import contextlib
import json
import time
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Optional, Sequence

from engine.errors import ConfigurationError, StoreError
from engine.runtime import shared
from engine.stores import (
    ACKNOWLEDGED,
    CLAIMED,
    DEFAULT_LOCK_TTL,
    IN_FLIGHT,
    CachedCertificates,
    Claim,
    new_token,
    poll_lock,
    redacted,
)

if TYPE_CHECKING:
    from engine.runtime import Runtime

KEY_PREFIX = "wechatpay"
CLIENT_NAME = "wechatpay-engine"
CONNECT_TIMEOUT = 2.0
COMMAND_TIMEOUT = 5.0

_CLAIM = """
local current = redis.call('GET', KEYS[1])
if not current then
  redis.call('SET', KEYS[1], 'claimed:' .. ARGV[1], 'PX', ARGV[2])
  return 'claimed'
end
if current == 'done' then return 'acknowledged' end
return 'in_flight'
"""
_DELETE_IF = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _redis() -> Any:
    try:
        import redis
        import redis.asyncio
    except ImportError:
        raise ConfigurationError(
            "store: redis:// needs the redis package: pip install 'wechatpay-engine[redis]'"
        ) from None
    return redis


class RedisStore:
    """``Store`` on Redis, for many processes (see the module docstring for keys and expiries)."""

    def __init__(
        self,
        url: str,
        *,
        namespace: str = "",
        runtime: Optional["Runtime"] = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.description = redacted(url)  # first: a repr of a half-made store must still work
        self.url = url
        _redis()
        self.namespace = namespace
        self._runtime = runtime
        self.clock = clock

    def bind(self, namespace: str, runtime: "Runtime", clock: Callable[[], float]) -> "RedisStore":
        return RedisStore(self.url, namespace=namespace, runtime=runtime, clock=clock)

    def key(self, *parts: str) -> str:
        return ":".join((KEY_PREFIX, self.namespace, *parts))

    def check(self) -> None:
        client = _redis().Redis.from_url(
            self.url, socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=CONNECT_TIMEOUT
        )
        try:
            with self._errors("cannot reach"):
                client.ping()
        finally:
            client.close()

    # -- notifications -----------------------------------------------------------------------

    async def claim(self, notification_id: str, ttl: float) -> Claim:
        token = new_token()
        with self._errors("claim failed on"):
            outcome = await self._client().eval(_CLAIM, 1, self.key("notify", notification_id), token, _ms(ttl))
        status = outcome.decode() if isinstance(outcome, bytes) else str(outcome)
        if status == CLAIMED:
            return Claim(notification_id, CLAIMED, token)
        return Claim(notification_id, ACKNOWLEDGED if status == ACKNOWLEDGED else IN_FLIGHT)

    async def acknowledge(self, claim: Claim, ttl: float) -> None:
        with self._errors("acknowledgement failed on"):
            await self._client().set(self.key("notify", claim.notification_id), "done", px=_ms(ttl))

    async def release(self, claim: Claim) -> None:
        with self._errors("release failed on"):
            key = self.key("notify", claim.notification_id)
            await self._client().eval(_DELETE_IF, 1, key, "claimed:" + claim.token)

    # -- certificates --------------------------------------------------------------------------

    async def load_certificates(self) -> Optional[CachedCertificates]:
        with self._errors("reading certificates failed on"):
            raw = await self._client().get(self.key("certificates"))
        if raw is None:
            return None
        try:
            data = json.loads(raw)
            return CachedCertificates(tuple(data["entries"]), str(data["version"]), float(data["saved_at"]))
        except (ValueError, KeyError, TypeError):
            return None  # unreadable: treated as absent, the next download replaces it

    async def save_certificates(self, entries: Sequence[Mapping[str, Any]]) -> CachedCertificates:
        saved = CachedCertificates(tuple(entries), new_token(), self.clock())
        record = {"entries": list(saved.entries), "version": saved.version, "saved_at": saved.saved_at}
        with self._errors("saving certificates failed on"):
            await self._client().set(self.key("certificates"), json.dumps(record))
        return saved

    def lock(self, name: str, ttl: float = DEFAULT_LOCK_TTL) -> Any:
        key, token = self.key("lock", name), new_token()

        async def acquire() -> bool:
            with self._errors("locking failed on"):
                return bool(await self._client().set(key, token, nx=True, px=_ms(ttl)))

        async def release() -> None:
            with contextlib.suppress(StoreError), self._errors("unlocking failed on"):  # it expires by itself
                await self._client().eval(_DELETE_IF, 1, key, token)

        return contextlib.asynccontextmanager(poll_lock)(acquire, release, ttl)

    async def aclose(self) -> None:
        return None  # the per-loop clients close with their loops (engine.runtime)

    # -- internals -----------------------------------------------------------------------------

    def _client(self) -> Any:
        if self._runtime is None:
            raise ConfigurationError("RedisStore is used through an Engine: Engine(store='redis://...')")
        self._runtime.check_open()  # a closed engine stops here, though the client outlives it
        return shared(f"redis-store:{self.url}", self._make_client, _close_client)

    def _make_client(self) -> Any:
        return _redis().asyncio.Redis.from_url(
            self.url, socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=COMMAND_TIMEOUT, client_name=CLIENT_NAME
        )

    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        redis = _redis()
        try:
            yield
        except (TimeoutError, redis.exceptions.RedisError, OSError) as exc:
            # Not chained: redis-py's exceptions can carry the connection's keyword arguments.
            raise StoreError(f"store {self.description}: {what} it ({type(exc).__name__}: {_reason(exc)})") from None

    def __repr__(self) -> str:
        return f"<RedisStore {self.description} namespace={self.namespace!r}>"


async def _close_client(client: Any) -> None:
    with contextlib.suppress(Exception):
        await client.aclose()
    with contextlib.suppress(Exception):
        await client.connection_pool.disconnect()


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def _reason(exc: BaseException) -> str:
    text = str(exc)
    return text if ":" not in text or "@" not in text else type(exc).__name__  # never echo a URL with a password
