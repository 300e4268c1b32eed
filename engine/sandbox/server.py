"""The sandbox over HTTP: the same emulator core behind an aiohttp.web server on loopback.

Design decisions:

* One catch-all handler turns each HTTP request into the engine's ``Request`` record with the raw
  request target (``raw_path``: path and query exactly as sent) and the raw body bytes, and hands it
  to ``Sandbox.respond``. Nothing is re-parsed or re-serialized, so any client's signature is
  checked over what it really sent.
* Transport faults are acted out for real: latency sleeps, ``drop`` closes the connection without
  an answer, ``truncate`` announces the full Content-Length and sends half.
* ``tls=True`` serves HTTPS with the identity's TLS certificate (issued by its sandbox CA, which a
  client trusts through ``SSL_CERT_FILE``), asks every client for a certificate and hands the one
  presented to ``Sandbox.respond``, so APIv2 operations that need the merchant's client certificate
  are refused without it, as WeChat Pay refuses them.
* A small control API lives under ``/sandbox/`` (outside WeChat Pay's ``/v3/`` space), all of it
  wired by ``engine.sandbox.admin``: rotate the platform certificate, script faults, trigger
  callbacks (``/sandbox/v2/notify`` for APIv2's), list exchanges, the user's actions, event triggers
  and the test clock; the server lends it its ``tasks`` (``engine.sandbox.tasks``), so the
  deliveries it starts are the server's, at most ``delivery_limit`` in flight, and ``stop``
  cancels them and waits until they have finished. The inspector page is ``/sandbox/`` (``engine.sandbox.inspector``).
  It is unauthenticated, which is why the server binds 127.0.0.1 unless told otherwise. A
  malformed control request is a 400 with a reason, never a 500.
* While serving, a ticker lets the sandbox act on what falls due (expiries, callback retries) every
  ``TICK_SECONDS`` of real time; each tick also writes the world's state dir when something changed
  (calls do not write it themselves), and ``stop`` writes it a last time. ``serve_forever`` (the
  CLI's) stops the same way on SIGTERM as on Ctrl-C, so a terminated sandbox keeps its last calls.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from typing import Any, Optional

from aiohttp import web

from engine.sandbox import admin
from engine.sandbox.emulator import Sandbox
from engine.sandbox.inspector import Inspector
from engine.sandbox.tasks import DEFAULT_DELIVERY_LIMIT, Tasks
from engine.wire import Headers, Request

TICK_SECONDS = 0.2


class SandboxServer:
    """Serves one ``Sandbox`` over HTTP until stopped."""

    def __init__(
        self,
        sandbox: Sandbox,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: bool = False,
        delivery_limit: int = DEFAULT_DELIVERY_LIMIT,
    ) -> None:
        self.sandbox = sandbox
        self.host = host
        self.port = port
        self.tls = tls
        self._runner: Optional[web.AppRunner] = None
        self.tasks = Tasks(delivery_limit)  # the ticker and the admin API's deliveries
        self.inspector = Inspector(sandbox)

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host  # an IPv6 address is bracketed in a URL
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    async def start(self) -> str:
        """Bind and start serving; return the base URL (the real port when 0 was asked)."""
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        context = self.sandbox.identity.tls_server_context() if self.tls else None
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=context)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.tasks.start(self._tick())
        return self.base_url

    async def _tick(self) -> None:
        while True:
            try:
                await self.sandbox.time.tick()
            except Exception:
                logging.getLogger("engine.sandbox").exception("sandbox tick failed")
            await asyncio.sleep(TICK_SECONDS)

    async def stop(self) -> None:
        await self.tasks.close()  # cancelled and finished: nothing of this server is left on the loop
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.sandbox.world.save(wait=True)  # what changed since the last tick, written before stop returns

    async def __aenter__(self) -> "SandboxServer":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        admin.add_routes(app, self.sandbox, self.tasks)
        self.inspector.add_routes(app)
        app.router.add_route("*", "/{tail:.*}", self._wechatpay)
        return app

    # -- WeChat Pay ----------------------------------------------------------------------------

    async def _wechatpay(self, http: web.Request) -> web.StreamResponse:
        record = Request(
            method=http.method,
            base_url=self.base_url,
            target=http.raw_path,
            headers=Headers(list(http.headers.items())),
            body=await http.read(),
        )
        outcome = self.sandbox.respond(record, _peer_certificate(http), self.tls)
        answer, fault = outcome.answer, outcome.fault
        if fault is not None and fault.kind == "latency":
            await asyncio.sleep(fault.seconds)
        if fault is not None and fault.kind == "drop":
            _hang_up(http)
            return web.Response(status=499)  # never reaches the client: the connection is gone
        headers = {k: v for k, v in answer.headers.items() if k.lower() != "content-length"}
        if fault is not None and fault.kind == "truncate":
            return await _truncated(http, answer.status, headers, answer.body)
        return web.Response(status=answer.status, body=answer.body, headers=headers)


def _peer_certificate(http: web.Request) -> Optional[bytes]:
    """The DER certificate the client presented in the TLS handshake, if any."""
    ssl_object = http.transport.get_extra_info("ssl_object") if http.transport is not None else None
    return ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None


def _hang_up(http: web.Request) -> None:
    if http.transport is not None:
        http.transport.close()


async def _truncated(http: web.Request, status: int, headers: dict[str, str], body: bytes) -> web.StreamResponse:
    response = web.StreamResponse(status=status, headers=headers)
    response.content_length = len(body)
    await response.prepare(http)
    await response.write(body[: len(body) // 2])
    _hang_up(http)
    return response


async def serve_forever(
    sandbox: Sandbox, host: str, port: int, on_ready: Any = None, delivery_limit: int = DEFAULT_DELIVERY_LIMIT
) -> None:
    """Serve until cancelled (Ctrl-C in the CLI) or sent SIGTERM; either way stop cleanly."""
    server = SandboxServer(sandbox, host, port, delivery_limit=delivery_limit)
    await server.start()
    try:
        if on_ready is not None:
            on_ready(server)
        await _terminated()
    finally:
        await server.stop()


async def _terminated() -> None:
    """Return on SIGTERM (where this loop can handle signals); until then, or otherwise, wait."""
    loop, stopping = asyncio.get_running_loop(), asyncio.Event()
    try:
        loop.add_signal_handler(signal.SIGTERM, stopping.set)
    except (NotImplementedError, RuntimeError, ValueError):  # no signal handlers here (Windows, a thread)
        handled = False
    else:
        handled = True
    try:
        await stopping.wait()  # without a handler only cancellation (Ctrl-C) ends this
    finally:
        if handled:
            loop.remove_signal_handler(signal.SIGTERM)


class ServerThread:
    """A ``SandboxServer`` on its own event loop in a background thread, for sync and async callers.

    ``with ServerThread(sandbox) as server: ... server.base_url ...``: it is listening when the
    ``with`` body starts and stopped, its port released, when it ends.
    """

    def __init__(
        self,
        sandbox: Sandbox,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: bool = False,
        delivery_limit: int = DEFAULT_DELIVERY_LIMIT,
    ) -> None:
        self.server = SandboxServer(sandbox, host, port, tls, delivery_limit)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="wechatpay-sandbox", daemon=True)

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def sandbox(self) -> Sandbox:
        return self.server.sandbox

    def __enter__(self) -> "ServerThread":
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self._loop).result(timeout=30)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()
