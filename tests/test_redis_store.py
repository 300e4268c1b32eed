"""The Redis store against a real redis-server: atomic claims, expiries, no secrets, many processes."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import random
import time
from typing import Any

import aiohttp
import attrs
import pytest
import redis_workers
from conftest import COMBINE_PAPAY, RedisServer

from engine import Engine, Notification, StoreError, UsageError
from engine.redis_store import RedisStore
from engine.sandbox import Sandbox
from engine.sandbox.server import ServerThread
from engine.stores import ACKNOWLEDGED, CLAIMED, IN_FLIGHT

TIMEOUT = 120


def _delivery(engine: Engine, out_trade_no: str = "T-1") -> tuple[dict, bytes]:
    notification = engine.emulator.payment_succeeded(out_trade_no, total=10)
    return dict(notification.headers.items()), notification.body


async def test_claims_are_atomic_and_shared_by_engines_of_one_merchant(make_engine, redis_url: str) -> None:
    first, second = make_engine(store=redis_url), make_engine(store=redis_url)
    notification = first.parse_notification(*_delivery(first))
    claims = await asyncio.gather(*(e.notifications.claim(notification) for e in (first, second) for _ in range(5)))
    assert sorted(c.status for c in claims) == [CLAIMED] + [IN_FLIGHT] * 9
    winner = next(c for c in claims if c.status == CLAIMED)
    await first.notifications.release(attrs.evolve(winner, token="not-the-owner"))  # releases nothing
    assert (await second.notifications.claim(notification)).status == IN_FLIGHT
    await first.notifications.acknowledge(notification, winner)
    assert (await second.notifications.claim(notification)).status == ACKNOWLEDGED


async def test_keys_and_expiries(make_engine, redis_server: RedisServer, redis_url: str) -> None:
    engine = make_engine(store=redis_url, claim_ttl=120)
    headers, body = _delivery(engine)
    notification = engine.parse_notification(headers, body)
    key = f"wechatpay:{engine.credentials.mchid}:notify:{notification.id}"
    with redis_server.client() as client:
        await engine.notifications.claim(notification)
        assert client.get(key).startswith(b"claimed:") and 110_000 < client.pttl(key) <= 120_000
        client.delete(key)
        assert (await engine.handle_notification(headers, body, lambda n: None)).status == 204
        assert client.get(key) == b"done" and 25 * 3600_000 - 60_000 < client.pttl(key) <= 25 * 3600_000


async def test_a_duplicate_after_acknowledgement_through_redis(make_engine, redis_url: str) -> None:
    engine, other_worker = make_engine(store=redis_url), make_engine(store=redis_url)
    headers, body = _delivery(engine)
    ran: list[str] = []
    assert (await engine.handle_notification(headers, body, lambda n: ran.append(n.id))).status == 204
    assert (await other_worker.handle_notification(headers, body, lambda n: ran.append(n.id))).status == 204
    assert len(ran) == 1


async def test_merchants_sharing_one_redis_do_not_see_each_other(make_engine, redis_url: str) -> None:
    mine, theirs = make_engine(store=redis_url), make_engine(store=redis_url, mchid="1900000999")
    notification = mine.parse_notification(*_delivery(mine))
    await mine.aacknowledge_notification(notification)
    assert (await theirs.notifications.claim(notification)).status == CLAIMED


async def test_merchants_of_one_process_share_one_redis_pool_per_loop(
    make_engine, redis_server: RedisServer, redis_url: str
) -> None:
    """Ten merchants, one loop: one client, one connection (it was ten); a closed engine leaves it to the rest."""
    from engine.redis_store import CLIENT_NAME

    engines = [make_engine(store=redis_url, mchid=f"19000010{n:02d}") for n in range(10)]
    for engine in engines:  # one after another: each command finds the pool's connection free
        notification = engine.parse_notification(*_delivery(engine))
        assert (await engine.notifications.claim(notification)).status == CLAIMED
    with redis_server.client() as client:
        ours = [c for c in client.client_list() if c.get("name") == CLIENT_NAME]
    assert len(ours) == 1
    await engines[0].aclose()
    with pytest.raises(UsageError, match="closed"):
        await engines[0].notifications.claim(notification)
    assert (await engines[1].notifications.claim(notification)).status == CLAIMED  # its own merchant's key


async def test_nothing_secret_enters_redis(make_engine, redis_server: RedisServer, redis_url: str, identity) -> None:
    engine = make_engine(store=redis_url, mode="certificate", platform_certificates=[])
    await engine.acall("combine_papay.mini_program", COMBINE_PAPAY)  # downloads and caches the certificates
    await engine.handle_notification(*_delivery(engine), lambda n: None)
    with redis_server.client() as client:
        keys = sorted(k.decode() for k in client.keys("*"))
        stored = b"".join(client.get(k) or b"" for k in keys)
        cached = json.loads(client.get(f"wechatpay:{engine.credentials.mchid}:certificates"))
    assert identity.apiv3_key not in stored and b"PRIVATE KEY" not in stored and b"BEGIN CERTIFICATE" not in stored
    assert any(k.endswith(":certificates") for k in keys) and any(":notify:" in k for k in keys)
    assert cached["entries"][0]["encrypt_certificate"]["algorithm"] == "AEAD_AES_256_GCM"  # still sealed


def test_a_tampered_certificate_cache_is_ignored(make_engine, redis_server: RedisServer, redis_url: str) -> None:
    engine = make_engine(store=redis_url, mode="certificate", platform_certificates=[])
    engine.download_certificates()
    key = f"wechatpay:{engine.credentials.mchid}:certificates"
    with redis_server.client() as client:
        record = json.loads(client.get(key))
        record["entries"][0]["encrypt_certificate"]["ciphertext"] = (
            "AAAA" + record["entries"][0]["encrypt_certificate"]["ciphertext"][4:]
        )
        client.set(key, json.dumps(record))
    fresh = make_engine(store=redis_url, mode="certificate", platform_certificates=[])
    fresh.call("combine_papay.mini_program", COMBINE_PAPAY)  # the bad cache is ignored: it downloads itself
    assert [x.request.target for x in fresh.emulator.exchanges].count("/v3/certificates?algorithm_type=RSA") == 1


async def test_redis_lost_mid_way_means_failure_replies_and_no_crash(make_engine) -> None:
    server = RedisServer().start()
    try:
        engine = make_engine(store=server.url)
        ran: list[str] = []
        assert (await engine.handle_notification(*_delivery(engine, "T-1"), lambda n: ran.append(n.id))).status == 204
        server.stop()
        lost = await engine.handle_notification(*_delivery(engine, "T-2"), lambda n: ran.append(n.id))
        assert lost.status == 503 and json.loads(lost.body)["code"] == "FAIL" and len(ran) == 1
        server.start()  # same port: the engine reconnects by itself
        assert (await engine.handle_notification(*_delivery(engine, "T-3"), lambda n: ran.append(n.id))).status == 204
    finally:
        server.stop()


async def test_redis_lost_after_the_handler_ran_is_not_reported_as_success(make_engine) -> None:
    server = RedisServer().start()
    try:
        engine = make_engine(store=server.url)
        reply = await engine.handle_notification(*_delivery(engine), lambda n: server.stop())
        assert reply.status == 503  # handled, but not recorded: WeChat Pay must send it again
    finally:
        server.stop()


def test_store_errors_name_the_store_without_the_password() -> None:
    store = RedisStore("redis://:hunter2@127.0.0.1:1/0")
    assert store.description == "redis://:***@127.0.0.1:1/0" and "hunter2" not in repr(store)
    with pytest.raises(StoreError) as caught:
        store.check()
    assert "hunter2" not in str(caught.value) and "redis://:***@127.0.0.1:1/0" in str(caught.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:hunter2@[::1]:6379/0", "redis://:***@[::1]:6379/0"),
        ("https://gw:hunter2@[fe80::1%25eth0]:8443/pay", "https://gw:***@[fe80::1%25eth0]:8443/pay"),
        ("redis://:hunter2@Redis.Internal:0/1", "redis://:***@Redis.Internal:0/1"),
        ("redis://us%40er:hunter2@h/0", "redis://us%40er:***@h/0"),
    ],
)
def test_a_redacted_url_keeps_its_host_and_port_as_written(url: str, shown: str) -> None:
    """redacted rebuilt the host from urlsplit's hostname: an IPv6 literal lost its brackets
    (redis://:***@::1:6379/0, which names no host), the host was lower-cased and a port 0 dropped."""
    from engine.stores import redacted

    assert redacted(url) == shown


def _spawn() -> Any:
    return multiprocessing.get_context("spawn")


def _stop(processes: list[Any]) -> None:
    for process in processes:
        process.join(20)
        if process.is_alive():
            process.terminate()
            process.join(5)


def test_four_worker_processes_handle_each_of_50_notifications_exactly_once(
    identity, redis_server: RedisServer, redis_url: str
) -> None:
    ctx = _spawn()
    ports, stop = ctx.Queue(), ctx.Event()
    settings = redis_workers.engine_settings(identity)
    workers = [
        ctx.Process(target=redis_workers.receive_notifications, args=(settings, redis_url, ports, stop), daemon=True)
        for _ in range(4)
    ]
    for worker in workers:
        worker.start()
    try:
        urls = [f"http://127.0.0.1:{ports.get(timeout=TIMEOUT)}/notify" for _ in workers]
        sandbox = Sandbox(identity)
        notifications = [sandbox.payment_succeeded(f"MP-{i}", total=i + 1) for i in range(50)]
        deliveries = [n for n in notifications for _ in range(4)]  # each delivered four times ...
        random.Random(12).shuffle(deliveries)  # ... in shuffled order, concurrently, to any worker
        statuses = asyncio.run(_deliver_all(deliveries, urls))
        assert set(statuses) == {204}
        with redis_server.client() as client:
            handled = [x.decode() for x in client.lrange(redis_workers.HANDLED_KEY, 0, -1)]
        ids = {json.loads(n.body)["id"] for n in notifications}
        assert len(handled) == 50 and set(handled) == ids  # every id handled exactly once in total
    finally:
        stop.set()
        _stop(workers)


async def _deliver_all(deliveries: list[Any], urls: list[str]) -> list[int]:
    """POST like WeChat Pay: an answer other than 2xx means "send it again" (here after a short pause)."""
    gate = asyncio.Semaphore(32)
    deadline = time.monotonic() + TIMEOUT
    chooser = random.Random(7)

    async def deliver(session: aiohttp.ClientSession, notification: Any) -> int:
        while True:
            async with gate:
                url = chooser.choice(urls)
                async with session.post(url, data=notification.body, headers=dict(notification.headers.items())) as r:
                    await r.read()
                    status = r.status
            if status in (200, 204) or time.monotonic() > deadline:
                return status
            assert status == 503, status  # only "in flight elsewhere" is expected
            await asyncio.sleep(0.05)

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        return list(await asyncio.gather(*(deliver(session, n) for n in deliveries)))


def test_four_engines_in_certificate_mode_starting_at_once_download_certificates_once(identity, redis_url: str) -> None:
    ctx = _spawn()
    barrier, results = ctx.Barrier(4), ctx.Queue()
    settings = redis_workers.engine_settings(identity, mode="certificate")
    with ServerThread(Sandbox(identity, mode="certificate")) as server:
        workers = [
            ctx.Process(
                target=redis_workers.first_contact,
                args=(settings, redis_url, server.base_url, barrier, results),
                daemon=True,
            )
            for _ in range(4)
        ]
        for worker in workers:
            worker.start()
        try:
            outcomes = [results.get(timeout=TIMEOUT) for _ in workers]
        finally:
            _stop(workers)
        downloads = [x for x in server.sandbox.exchanges if x.request.target.startswith("/v3/certificates")]
    assert [kind for kind, _ in outcomes] == ["ok"] * 4, outcomes
    assert {key for _, key in outcomes} == {identity.platform_certificate_serial}
    assert len(downloads) == 1


async def test_four_engines_in_one_process_download_once_through_redis(identity, redis_url: str) -> None:
    settings = redis_workers.engine_settings(identity, mode="certificate")
    with ServerThread(Sandbox(identity, mode="certificate")) as server:
        engines = [
            Engine(**settings, store=redis_url, base_url=server.base_url, load_entry_points=False) for _ in range(4)
        ]
        answers = await asyncio.gather(*(e.acall("combine_papay.mini_program", COMBINE_PAPAY) for e in engines))
        for engine in engines:
            await engine.aclose()
        downloads = [x for x in server.sandbox.exchanges if x.request.target.startswith("/v3/certificates")]
    assert len(downloads) == 1 and {a.verified_with for a in answers} == {identity.platform_certificate_serial}


async def test_periodic_refreshes_of_many_workers_share_one_download(identity, redis_url: str) -> None:
    settings = redis_workers.engine_settings(identity, mode="certificate")
    with ServerThread(Sandbox(identity, mode="certificate")) as server:
        engines = [
            Engine(**settings, store=redis_url, base_url=server.base_url, load_entry_points=False) for _ in range(3)
        ]
        await engines[0].adownload_certificates()
        for engine in engines[1:]:
            await engine.keys.refresh(fresh_within=1800)  # what run_periodically(3600) does
        for engine in engines:
            await engine.aclose()
        downloads = [x for x in server.sandbox.exchanges if x.request.target.startswith("/v3/certificates")]
    assert len(downloads) == 1 and all(e.keyring.ids() for e in engines)


def test_handler_sees_the_merchant(make_engine, redis_url: str) -> None:
    engine = make_engine(store=redis_url)
    seen: list[Notification] = []
    engine.handle_notification_sync(*_delivery(engine), seen.append)
    assert seen[0].mchid == engine.credentials.mchid
