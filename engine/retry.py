"""Retries that cannot double-charge: the policy, and the one rule deciding whether to send again.

Design decisions:

* One frozen ``RetryPolicy`` per engine (``Engine(retry=...)``), replaceable per call
  (``engine.call(..., retry=...)``); ``RetryPolicy.never()`` sends exactly once. Defaults: 3
  attempts, exponential backoff with full jitter from 0.5 s capped at 8 s, ``Retry-After`` honoured,
  and a 30 s deadline for the whole call, attempts and waits included.
* What may be sent again depends on where the failure happened and on the operation's
  ``idempotency`` trait, never on the method alone:

  - a connection that failed before the request was written (``ConnectError``: refused, no route,
    name not found, connect timeout) is retried for **any** operation: nothing reached WeChat Pay;
  - a failure after the request may have been written (reset, read timeout), ``429`` and ``5xx``
    are retried only for operations whose descriptor says resending is safe (GET, or a create that
    WeChat Pay de-duplicates by a business number or an ``Idempotency-Key``);
  - ``4xx`` business errors and a ``2xx`` that failed verification are never retried.

* ``Retry-After`` (seconds or an HTTP date) is a floor for the wait; a wait that would overrun the
  deadline ends the call instead, with the last failure.
* Randomness is injectable (``random``) so tests are deterministic.
"""

from __future__ import annotations

import email.utils
import random as _random
import time
from typing import Callable, Optional

import attrs

from engine.errors import ConfigurationError

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER_SECONDS = 600.0  # a hostile or broken peer cannot park a call for longer than this


def _positive(name: str) -> Callable[[object, object, float], None]:
    def check(instance: object, attribute: object, value: float) -> None:
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
            raise ConfigurationError(f"retry.{name} must be a number >= 0, got {value!r}")

    return check


def _attempts(instance: object, attribute: object, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigurationError(f"retry.max_attempts must be a whole number >= 1, got {value!r}")


@attrs.frozen
class RetryPolicy:
    """How often and how patiently a call is sent again (see the module docstring for what is)."""

    max_attempts: int = attrs.field(default=3, validator=_attempts)
    base_delay: float = attrs.field(default=0.5, validator=_positive("base_delay"))
    max_delay: float = attrs.field(default=8.0, validator=_positive("max_delay"))
    deadline: float = attrs.field(default=30.0, validator=_positive("deadline"))
    respect_retry_after: bool = True
    random: Callable[[], float] = attrs.field(default=_random.random, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        if self.max_delay < self.base_delay:
            raise ConfigurationError(
                f"retry.max_delay ({self.max_delay}) is below retry.base_delay ({self.base_delay})"
            )
        if self.deadline <= 0:
            raise ConfigurationError("retry.deadline must be more than 0 seconds")

    @classmethod
    def never(cls) -> "RetryPolicy":
        """Exactly one attempt, whatever happens."""
        return cls(max_attempts=1)

    def backoff(self, attempt: int, retry_after: Optional[float] = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based): full jitter, Retry-After as a floor."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        wait = ceiling * self.random()
        if retry_after is not None and self.respect_retry_after:
            wait = max(wait, retry_after)
        return float(wait)


def retry_after_seconds(value: Optional[str], now: Optional[float] = None) -> Optional[float]:
    """A ``Retry-After`` header as seconds from now, or ``None`` when absent or unreadable."""
    if not value or len(value) > 64:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return min(float(text), MAX_RETRY_AFTER_SECONDS)
    try:
        moment = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment.tzinfo is None:
        return None
    seconds = moment.timestamp() - (time.time() if now is None else now)
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)
