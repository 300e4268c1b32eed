"""Scripted faults: how the sandbox misbehaves on purpose, per endpoint or for the next calls.

Design decisions:

* A ``Fault`` is data. Three families, applied at three depths:
  ``error`` replaces the answer with a real WeChat Pay error body (still signed);
  answer faults (``not_json``, ``bad_signature``, ``stale_signature``, ``unknown_serial``, ``probe``)
  corrupt a correctly built answer; transport faults (``latency``, ``drop``, ``truncate``) are carried
  out by the front-end (the in-process transport or the HTTP server), since only it does I/O.
* ``FaultPlan`` is a queue per endpoint id (``None`` = any endpoint): each fault fires ``times``
  times, first come first served, so a test scripts exactly the calls it means to break.
* Error bodies use the codes and messages of PROTOCOL.md §6.
"""

from __future__ import annotations

from typing import Callable, Optional

import attrs

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

    @classmethod
    def error(cls, status: int, code: str = "", message: str = "") -> "Fault":
        """A WeChat Pay error answer; code and message default to the real ones for the status."""
        default_code, default_message = ERROR_BODIES.get(status, ("SYSTEM_ERROR", "系统异常"))
        return cls("error", status, code or default_code, message or default_message)

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

    def __init__(self) -> None:
        self._queue: list[tuple[Optional[str], _Scheduled]] = []

    def add(self, fault: Fault, *, endpoint: Optional[str] = None, times: int = 1) -> None:
        self._queue.append((endpoint, _Scheduled(fault, times)))

    def take(
        self, endpoint_id: Optional[str], canonical: Callable[[str], Optional[str]] = lambda ref: ref
    ) -> Optional[Fault]:
        """The next fault for this endpoint, consuming one of its firings.

        A fault queued for a short name or an alias fires on its operation: ``canonical`` turns the
        reference it was queued with into a canonical id (the sandbox passes its registry's lookup).
        """
        for index, (endpoint, scheduled) in enumerate(self._queue):
            if endpoint is None or endpoint == endpoint_id or canonical(endpoint) == endpoint_id:
                scheduled.remaining -= 1
                if scheduled.remaining <= 0:
                    del self._queue[index]
                return scheduled.fault
        return None

    def clear(self) -> None:
        self._queue.clear()

    def __len__(self) -> int:
        return len(self._queue)
