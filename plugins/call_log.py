"""Built-in logging: one INFO line per attempt, redacted detail at DEBUG.

Design decisions:

* INFO carries endpoint, method, path, status, milliseconds and Request-ID, nothing else.
* DEBUG adds header *names* with the Authorization value reduced to its scheme, and the body with
  every field the descriptor marks ``encrypted`` replaced by ``"<encrypted>"``: the same trait that
  drives encryption drives redaction, through the same walker (``engine.fields``).
* Bodies of calls without a descriptor are logged by size only: nothing says what in them is secret.
* Query strings are dropped from the logged path: they can carry identifiers the descriptor does
  not know to be sensitive.
"""

from __future__ import annotations

import json
import logging
from typing import Optional

from engine.fields import map_encrypted
from engine.hookspecs import CallInfo, hookimpl
from engine.protocol import H_REQUEST_ID
from engine.wire import RawResponse, Request

logger = logging.getLogger("engine.calls")
REDACTED = "<encrypted>"


@hookimpl(trylast=True)
def wxpay_before_send(call: CallInfo, request: Request) -> None:
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug(
            "sending %s %s attempt=%d headers=%s body=%s",
            request.method,
            _path(request),
            call.attempt,
            _header_summary(request),
            redacted_body(call, request.body),
        )


@hookimpl(trylast=True)
def wxpay_after_response(
    call: CallInfo,
    request: Request,
    response: Optional[RawResponse],
    error: Optional[BaseException],
    elapsed_ms: float,
) -> None:
    if not logger.isEnabledFor(logging.INFO):
        return
    if response is not None:
        outcome = f"{response.status} request_id={response.headers.get(H_REQUEST_ID, '-')}"
    else:
        outcome = f"failed ({type(error).__name__})"
    logger.info("%s %s %s -> %s in %.1f ms", call.endpoint_id, request.method, _path(request), outcome, elapsed_ms)


def _path(request: Request) -> str:
    return request.target.split("?", 1)[0]


def _header_summary(request: Request) -> str:
    names = []
    for name in request.headers:
        value = request.headers[name]
        names.append(f"{name}: {value.split(' ', 1)[0]} <redacted>" if name.lower() == "authorization" else name)
    return "[" + ", ".join(names) + "]"


def redacted_body(call: CallInfo, body: bytes) -> str:
    """The body for a log line, with encrypted fields blanked; unparseable bodies only by size."""
    if not body:
        return "<empty>"
    if call.descriptor.free_form:
        return f"<{len(body)} bytes, not described>"  # no descriptor: cannot tell what is sensitive
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return f"<{len(body)} bytes>"
    blanked = map_encrypted(call.descriptor.request.body, data, lambda value, path: REDACTED)
    return json.dumps(blanked, ensure_ascii=False)
