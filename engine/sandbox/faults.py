"""Scripted faults: how the sandbox misbehaves on purpose, per endpoint or for the next calls.

Design decisions:

* A ``Fault`` is data. Three families, applied at three depths:
  ``error`` replaces the answer with a real WeChat Pay error body (still signed);
  answer faults (``not_json``, ``bad_signature``, ``stale_signature``, ``unknown_serial``, ``probe``)
  corrupt a correctly built answer; transport faults (``latency``, ``drop``, ``truncate``) are carried
  out by the front-end (the in-process transport or the HTTP server), since only it does I/O.
* ``FaultPlan`` is a queue per endpoint id (``None`` = any endpoint): each fault fires ``times``
  times, first come first served, so a test scripts exactly the calls it means to break. It is
  taken under a lock: in-process engines in several threads share one plan, and a fault for n
  calls fires on n of them, whichever threads make them.
* An endpoint is named as anywhere else: canonical id, short name (alias) or ``"METHOD /path"``,
  resolved to its canonical id when the fault is added, so it fires whichever name was used; a name
  no descriptor answers to raises ``UnknownEndpointError`` (with the closest names) instead of
  queueing a fault that could never fire. Resolved there once, and only there: ``take`` compares ids,
  and looks nothing up, under the lock, on every answer. (A plan made without a resolver queues
  names as given, and they fire on requests taken with that same name.)
* Error bodies use the codes and messages of PROTOCOL.md §6.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import attrs

from engine import forksafe
from engine.descriptor import is_adhoc
from engine.errors import UnknownEndpointError, UsageError

ERROR_BODIES: dict[int, tuple[str, str]] = {
    400: ("PARAM_ERROR", "参数错误"),
    401: ("SIGN_ERROR", "错误的签名，验签失败"),
    403: ("NO_AUTH", "当前商户号没有使用该接口的权限"),
    404: ("RESOURCE_NOT_EXISTS", "资源不存在"),
    429: ("RATELIMIT_EXCEEDED", "请求超过频率限制"),
    500: ("SYSTEM_ERROR", "系统异常，请稍后重试"),
    502: ("SERVICE_UNAVAILABLE", "服务不可用"),
    503: ("SERVICE_UNAVAILABLE", "服务不可用，请稍后重试"),
}
ANSWER_FAULTS = ("not_json", "bad_signature", "stale_signature", "unknown_serial", "probe")
DOWNLOAD_FAULTS = ("corrupt_download",)  # the file differs from the digest step 1 announced
TRANSPORT_FAULTS = ("latency", "drop", "truncate")
KINDS = ("error", *ANSWER_FAULTS, *DOWNLOAD_FAULTS, *TRANSPORT_FAULTS)


@attrs.frozen
class Fault:
    kind: str = attrs.field(validator=attrs.validators.in_(KINDS))
    status: int = 500
    code: str = ""
    message: str = ""
    seconds: float = 0.0
    retry_after: Optional[int] = None  # an error answer's Retry-After header, in seconds

    @classmethod
    def error(cls, status: int, code: str = "", message: str = "", retry_after: Optional[int] = None) -> "Fault":
        """A WeChat Pay error answer; code and message default to the real ones for the status."""
        default_code, default_message = ERROR_BODIES.get(status, ("SYSTEM_ERROR", "系统异常"))
        return cls("error", status, code or default_code, message or default_message, retry_after=retry_after)

    @classmethod
    def latency(cls, seconds: float) -> "Fault":
        return cls("latency", seconds=seconds)

    @property
    def at_transport(self) -> bool:
        return self.kind in TRANSPORT_FAULTS


@attrs.define
class _Scheduled:
    fault: Fault
    remaining: int


class FaultPlan:
    """Faults waiting to fire, per endpoint id (``None`` matches every endpoint)."""

    def __init__(self, resolve: Optional[Callable[[str], Any]] = None) -> None:
        self._queue: list[tuple[Optional[str], _Scheduled]] = []
        self._resolve = resolve  # name -> descriptor (the sandbox's registry.get)
        # In-process engines in several threads (and the served loop) take from one plan: a fault
        # queued for n calls must fire on n, and a take must not delete another's entry. A leaf lock:
        # nothing is called under it (names are resolved by add, before it is taken).
        self._lock = forksafe.lock()

    def add(self, fault: Fault, *, endpoint: Optional[str] = None, times: int = 1) -> str:
        """Queue ``fault`` for ``times`` calls of ``endpoint`` (any name of it; None: any call).

        Returns the canonical id it was queued for ("" for any endpoint).
        """
        if not isinstance(times, int) or isinstance(times, bool) or times < 1:
            raise UsageError(f"times must be a whole number >= 1, got {times!r}")
        endpoint_id = self.endpoint_id(endpoint) if endpoint is not None else None
        with self._lock:
            self._queue.append((endpoint_id, _Scheduled(fault, times)))
        return endpoint_id or ""

    def endpoint_id(self, name: str) -> str:
        """The canonical id ``name`` resolves to; ``UnknownEndpointError`` when no descriptor answers to it."""
        if self._resolve is None:
            return name
        descriptor = self._resolve(name)
        if is_adhoc(descriptor):  # an ad-hoc "METHOD /path" with no descriptor behind it
            raise UnknownEndpointError(name)
        return str(descriptor.id)

    def take(self, endpoint_id: Optional[str]) -> Optional[Fault]:
        """The next fault for this endpoint (its canonical id), consuming one of its firings.

        A fault queued for a short name or an alias fires on its operation: ``add`` queued it under
        the canonical id.
        """
        with self._lock:
            for index, (endpoint, scheduled) in enumerate(self._queue):
                if endpoint is None or endpoint == endpoint_id:
                    scheduled.remaining -= 1
                    if scheduled.remaining <= 0:
                        del self._queue[index]
                    return scheduled.fault
        return None

    def pending(self) -> list[dict[str, object]]:
        """What is queued, as plain data (the inspector shows it)."""
        with self._lock:
            return [
                {"endpoint": endpoint, "kind": s.fault.kind, "status": s.fault.status, "remaining": s.remaining}
                for endpoint, s in self._queue
            ]

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()

    def __len__(self) -> int:
        return len(self._queue)
