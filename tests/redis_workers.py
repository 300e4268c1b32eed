"""Worker processes for the multi-process Redis tests (importable by name, as 'spawn' requires)."""

from __future__ import annotations

import asyncio
import random
from typing import Any

HANDLED_KEY = "test:handled"


def engine_settings(identity: Any, *, mode: str = "public_key") -> dict[str, Any]:
    """Picklable Engine settings for a sandbox identity (PEM text, not key objects)."""
    settings: dict[str, Any] = {
        "mchid": identity.mchid,
        "serial_no": identity.merchant_serial_no,
        "private_key": identity.merchant_private_pem(),
        "apiv3_key": identity.apiv3_key,
    }
    if mode == "public_key":
        settings["platform_public_key"] = identity.platform_public_pem()
        settings["platform_public_key_id"] = identity.platform_public_key_id
    return settings


def receive_notifications(settings: dict[str, Any], redis_url: str, ports: Any, stop: Any) -> None:
    """Serve callbacks on a free loopback port until ``stop`` is set; record each handled id in Redis."""
    asyncio.run(_receive(settings, redis_url, ports, stop))


async def _receive(settings: dict[str, Any], redis_url: str, ports: Any, stop: Any) -> None:
    import redis.asyncio
    from aiohttp import web

    from engine import Engine

    engine = Engine(**settings, store=redis_url, base_url="http://127.0.0.1:9", load_entry_points=False)
    log = redis.asyncio.Redis.from_url(redis_url)

    async def handler(notification: Any) -> None:
        await asyncio.sleep(random.uniform(0.005, 0.03))  # long enough for deliveries to overlap
        await log.rpush(HANDLED_KEY, notification.id)

    app = web.Application()
    app.router.add_post("/notify", engine.notification_handler(handler))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    ports.put(runner.addresses[0][1])
    try:
        while not stop.is_set():
            await asyncio.sleep(0.05)
    finally:
        await runner.cleanup()
        await log.aclose()
        await engine.aclose()


def first_contact(settings: dict[str, Any], redis_url: str, base_url: str, barrier: Any, results: Any) -> None:
    """An engine in certificate mode makes its first call at the same moment as its siblings."""
    from engine import Engine

    payload = {
        "appid": "wxd678efh567hg6787",
        "plan_id": 12535,
        "out_contract_code": "c-mp",
        "contract_display_account": "A",
        "notify_url": "https://yourapp.com/notify",
    }
    try:
        engine = Engine(**settings, store=redis_url, base_url=base_url, load_entry_points=False)
        barrier.wait(120)  # all four spawned interpreters import the engine first: slow on a loaded machine
        answer = engine.call("combine_papay.mini_program", payload)
        results.put(("ok", answer.verified_with))
        engine.close()
    except Exception as exc:  # reported to the parent, which fails the test with it
        results.put(("error", f"{type(exc).__name__}: {exc}"))
