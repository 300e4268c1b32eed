"""The one send loop: sign each attempt, send it through the loop's transport, observe it, retry.

Design decisions:

* Every request the engine sends, calls, certificate downloads and bill files alike, goes through
  ``Sender.send``: one place where attempts are counted, signed afresh (new timestamp and nonce),
  bracketed by the ``wxpay_before_send``/``wxpay_after_response`` observers, and retried.
* What is retried is ``engine.retry``'s rule, applied here and nowhere else: a connection that
  failed before the request was written, for any operation; anything else only for operations whose
  descriptor declares ``idempotency`` (GET, or a create WeChat Pay de-duplicates). Each retry is
  logged (``engine.retries``) with the attempt, the reason and the wait.
* The policy's deadline bounds the whole call: each attempt's timeout is cut to what is left, and a
  wait that would overrun it ends the call with the last outcome.
* A state-changing request that failed after it may have reached WeChat Pay is reported as
  ``UnconfirmedError`` carrying the ``Reconcile`` record, never as a plain transport failure that
  would invite a resend. A streamed answer is never retried once a byte of it was written.
* An answer over the size bound (``AnswerTooLargeError``) is final, whatever the operation: the same
  request gets the same answer, so another attempt would only read the bound's worth again.
* The transport comes from ``Runtime`` (one per event loop); the sender holds no loop-bound state.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Awaitable, Callable, Optional, Union

import attrs

from engine.errors import (
    AnswerTooLargeError,
    ConnectError,
    TransportError,
    TransportTimeoutError,
    UnconfirmedError,
    UnconfirmedTimeoutError,
)
from engine.hookspecs import CallInfo
from engine.pipeline import DirectHook, Pipeline, Prepared
from engine.retry import RETRYABLE_STATUSES, RetryPolicy, retry_after_seconds
from engine.runtime import Runtime
from engine.transport import Transport, TransportConfig, Write
from engine.wire import RawResponse, Request

logger = logging.getLogger("engine.retries")
_sleep = asyncio.sleep  # the backoff wait, looked up at each use so tests can record it instead
Outcome = Union[RawResponse, TransportError]


class Sender:
    """Sends prepared requests for one engine, under its retry policy."""

    def __init__(self, pipeline: Pipeline, runtime: Runtime, policy: RetryPolicy) -> None:
        self.pipeline = pipeline
        self.runtime = runtime
        self.policy = policy
        # The observers, called directly while the built-in is their only implementation (DirectHook
        # keeps that current when plugins come and go, the Stubber's among them).
        self._before_send = DirectHook(pipeline.hook.wxpay_before_send)
        self._after_response = DirectHook(pipeline.hook.wxpay_after_response)

    async def send(
        self, prepared: Prepared, *, sink: Optional[Write] = None, policy: Optional[RetryPolicy] = None
    ) -> RawResponse:
        """The answer to ``prepared`` (not yet trusted); ``sink`` streams a 2xx body instead of holding it."""
        policy = policy or self.policy
        transport = self.runtime.transport()
        base = self.pipeline.transport_record(prepared, streamed=sink is not None)
        deadline = time.monotonic() + policy.deadline
        written = _Counting(sink) if sink is not None else None
        attempt = 0
        while True:
            attempt += 1
            # The first attempt starts now: a deadline no shorter than the timeout cannot cut it.
            config = base if attempt == 1 and policy.deadline >= base.timeout else _within(base, deadline)
            outcome = await self._attempt(transport, prepared, attempt, config, written)
            wait = self._retry_wait(prepared, outcome, attempt, policy, written)
            if wait is None or time.monotonic() + wait >= deadline:
                return _final(prepared, outcome)
            logger.info(
                "retrying %s: attempt %d of %d failed (%s); next attempt in %.2f s",
                prepared.descriptor.id,
                attempt,
                policy.max_attempts,
                _reason(outcome),
                wait,
            )
            await _sleep(wait)

    async def _attempt(
        self,
        transport: Transport,
        prepared: Prepared,
        attempt: int,
        config: TransportConfig,
        written: Optional["_Counting"],
    ) -> Outcome:
        request = self.pipeline.sign(prepared)
        call = CallInfo(prepared.descriptor.id, prepared.descriptor, attempt)
        if written is None:
            send: Callable[[], Awaitable[RawResponse]] = lambda: transport.send(request, config)  # noqa: E731
        else:
            send = lambda: transport.stream(request, config, written)  # noqa: E731
        try:
            return await self._observed(call, request, send)
        except TransportError as exc:
            return exc

    def _retry_wait(
        self, prepared: Prepared, outcome: Outcome, attempt: int, policy: RetryPolicy, written: Optional["_Counting"]
    ) -> Optional[float]:
        """Seconds to wait before the next attempt, or ``None`` when this outcome is final."""
        if attempt >= policy.max_attempts or (written is not None and written.count):
            return None
        resend_safe = prepared.descriptor.idempotency is not None
        if isinstance(outcome, ConnectError):
            return policy.backoff(attempt)
        if isinstance(outcome, AnswerTooLargeError):
            return None
        if isinstance(outcome, TransportError):
            return policy.backoff(attempt) if resend_safe else None
        if outcome.status in RETRYABLE_STATUSES and resend_safe:
            return policy.backoff(attempt, retry_after_seconds(outcome.headers.get("Retry-After")))
        return None

    async def _observed(
        self, call: CallInfo, request: Request, send: Callable[[], Awaitable[RawResponse]]
    ) -> RawResponse:
        self._before_send(call=call, request=request)
        started = time.perf_counter()
        raw: Optional[RawResponse] = None
        error: Optional[BaseException] = None
        try:
            raw = await send()
            return raw
        except BaseException as exc:
            error = exc
            raise
        finally:
            elapsed = (time.perf_counter() - started) * 1000
            self._after_response(call=call, request=request, response=raw, error=error, elapsed_ms=elapsed)


def _within(base: TransportConfig, deadline: float) -> TransportConfig:
    """This attempt's transport settings: the configured timeout, cut to what the deadline leaves."""
    remaining = deadline - time.monotonic()
    if remaining >= base.timeout:
        return base
    return attrs.evolve(
        base, timeout=max(remaining, 0.001), connect_timeout=min(base.connect_timeout, max(remaining, 0.001))
    )


def _final(prepared: Prepared, outcome: Outcome) -> RawResponse:
    if isinstance(outcome, RawResponse):
        return outcome
    if isinstance(outcome, ConnectError) or prepared.reconcile is None:
        raise outcome  # nothing was sent, or a GET: a plain transport failure
    kind = UnconfirmedTimeoutError if isinstance(outcome, TransportTimeoutError) else UnconfirmedError
    raise kind(
        f"{prepared.descriptor.id}: {outcome}; the request may have reached WeChat Pay and its outcome is "
        "unknown: look it up (error.reconcile) before sending it again",
        prepared.reconcile,
    ) from outcome


def _reason(outcome: Outcome) -> str:
    if isinstance(outcome, RawResponse):
        return f"HTTP {outcome.status}"
    return type(outcome).__name__


class _Counting:
    """A sink that remembers whether anything was written (so a failed stream is not retried)."""

    def __init__(self, sink: Write) -> None:
        self.sink = sink
        self.count = 0

    def __call__(self, chunk: bytes) -> None:
        self.count += len(chunk)
        self.sink(chunk)
