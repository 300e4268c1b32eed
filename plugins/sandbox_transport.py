"""Built-in in-process transport to the sandbox emulator: no sockets, no network.

``Engine.sandbox()`` registers a ``SandboxTransportPlugin`` bound to its emulator; it claims the
``sandbox://`` base URL with a ``MockTransport`` (the project's one mock) that hands each ``Request``
record to the emulator's ``respond``, the same
entry point the HTTP server uses, so in-process and served sandboxes behave alike. Transport faults
are acted out as a client would experience them: latency against the engine's timeout
(``TransportTimeoutError``), a dropped connection or a truncated answer (``TransportError``).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Optional

from engine.errors import TransportError, TransportTimeoutError
from engine.hookspecs import hookimpl
from engine.transport import MockTransport, TransportConfig
from engine.wire import RawResponse, Request

if TYPE_CHECKING:
    from engine.sandbox import Sandbox

SANDBOX_URL = "sandbox://wechatpay"


def sandbox_transport(sandbox: "Sandbox", config: TransportConfig) -> MockTransport:
    """The engine's transport to ``sandbox``: the one mock transport, acting out the sandbox's faults."""

    async def respond(request: Request) -> RawResponse:
        outcome = sandbox.respond(request)
        fault = outcome.fault
        delay = fault.seconds if fault is not None and fault.kind == "latency" else 0.0
        if delay > config.timeout:
            await asyncio.sleep(config.timeout)
            raise TransportTimeoutError(f"no answer from the sandbox within {config.timeout} s")
        await asyncio.sleep(delay)  # zero still yields, like real I/O
        if fault is not None and fault.kind == "drop":
            raise TransportError("the sandbox dropped the connection before answering")
        if fault is not None and fault.kind == "truncate":
            raise TransportError("the sandbox's answer was cut short (fewer bytes than Content-Length)")
        return outcome.answer

    return MockTransport(respond, record=False)


class SandboxTransportPlugin:
    """A plugin object serving ``sandbox://`` from one emulator."""

    def __init__(self, sandbox: "Sandbox") -> None:
        self.sandbox = sandbox

    @hookimpl(trylast=True)
    def wxpay_transport(self, config: TransportConfig) -> Optional[MockTransport]:
        if config.base_url.startswith("sandbox://"):
            return sandbox_transport(self.sandbox, config)
        return None
