"""Built-in in-process transport to the sandbox emulator: no sockets, no network.

``Engine.sandbox()`` registers a ``SandboxTransportPlugin`` bound to its emulator; it claims the
``sandbox://`` base URL and hands each ``Request`` record to the emulator's ``handle``, the same
entry point an HTTP front-end uses, so in-process and served sandboxes behave alike.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Optional

from engine.hookspecs import TransportConfig, hookimpl
from engine.wire import RawResponse, Request

if TYPE_CHECKING:
    from engine.sandbox import Sandbox

SANDBOX_URL = "sandbox://wechatpay"


class SandboxTransport:
    def __init__(self, sandbox: "Sandbox") -> None:
        self.sandbox = sandbox

    async def send(self, request: Request, config: TransportConfig) -> RawResponse:
        await asyncio.sleep(0)  # behave like I/O: let other tasks run between calls
        return self.sandbox.handle(request)

    async def aclose(self) -> None:
        return None


class SandboxTransportPlugin:
    """A plugin object serving ``sandbox://`` from one emulator."""

    def __init__(self, sandbox: "Sandbox") -> None:
        self.sandbox = sandbox

    @hookimpl(trylast=True)
    def wxpay_transport(self, config: TransportConfig) -> Optional[SandboxTransport]:
        if config.base_url.startswith("sandbox://"):
            return SandboxTransport(self.sandbox)
        return None
