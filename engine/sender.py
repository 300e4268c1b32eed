"""The one send loop: sign each attempt, send it through the loop's transport, observe it.

Design decisions:

* Every request the engine sends, calls, certificate downloads and bill files alike, goes through
  ``Sender.send``: one place where attempts are counted, signed afresh and bracketed by the
  ``wxpay_before_send``/``wxpay_after_response`` observers.
* The transport comes from ``Runtime`` (one per event loop); the sender holds no loop-bound state.
* Only a GET is sent again, and only after a transport failure: a POST that may have reached
  WeChat Pay is never sent twice behind the caller's back. A streamed answer is never retried once
  a byte of it has been written.
"""

from __future__ import annotations

import time
from typing import Awaitable, Callable, Optional

from engine.errors import TransportError
from engine.hookspecs import CallInfo
from engine.pipeline import DirectHook, Pipeline, Prepared
from engine.runtime import Runtime
from engine.transport import Write
from engine.wire import RawResponse, Request


class Sender:
    """Sends prepared requests for one engine."""

    def __init__(self, pipeline: Pipeline, runtime: Runtime) -> None:
        self.pipeline = pipeline
        self.runtime = runtime
        self._config = pipeline.settings.transport_config()  # settings are frozen: one record serves every send
        self._before_send = DirectHook(pipeline.hook.wxpay_before_send)
        self._after_response = DirectHook(pipeline.hook.wxpay_after_response)

    async def send(self, prepared: Prepared, *, sink: Optional[Write] = None) -> RawResponse:
        """The answer to ``prepared`` (not yet trusted); ``sink`` streams a 2xx body instead of holding it."""
        transport = self.runtime.transport()
        config = self._config
        attempts = 1 + (self.pipeline.settings.get_retries if prepared.request.method == "GET" else 0)
        written = _Counting(sink) if sink is not None else None
        for attempt in range(1, attempts + 1):
            request = self.pipeline.sign(prepared)
            call = CallInfo(prepared.descriptor.id, prepared.descriptor, attempt)
            if written is None:
                send: Callable[[], Awaitable[RawResponse]] = lambda r=request: transport.send(r, config)  # noqa: E731
            else:
                send = lambda r=request: transport.stream(r, config, written)  # noqa: E731
            try:
                return await self._observed(call, request, send)
            except TransportError:
                if attempt == attempts or (written is not None and written.count):
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

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


class _Counting:
    """A sink that remembers whether anything was written (so a failed stream is not retried)."""

    def __init__(self, sink: Write) -> None:
        self.sink = sink
        self.count = 0

    def __call__(self, chunk: bytes) -> None:
        self.count += len(chunk)
        self.sink(chunk)

