"""Shared fixtures: one generated sandbox identity per session (RSA key generation is the slow part)."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from wheelenv import install_wheel

from engine import Engine
from engine.sandbox import SandboxIdentity
from engine.sandbox.clock import TestClock

DATA = Path(__file__).parent / "data"
START = 1_800_000_000.0  # 2027-01-15: a fixed moment, so every time the sandbox clock gives is exact

COMBINE_PAPAY = {
    "appid": "wxd678efh567hg6787",
    "plan_id": 12535,
    "out_contract_code": "wxwtdk20200910100000",
    "contract_display_account": "微信代扣用户A",
    "notify_url": "https://yourapp.com/notify",
}
PAY_REDIRECT_SIGN = {
    "appid": "wxd678efh567hg6787",
    "service_id": 12535,
    "out_contract_code": "wxwtdk20200910100000",
    "notify_url": "https://yourapp.com/notify",
    "contract_display_account": "微信代扣用户A",
    "prepay_id": "wx201410272009395522657a690389285100",
    "openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
}
MICROPAY = {  # an APIv2 micropay (付款码支付) order, as the catalogue's examples write it
    "appid": "wxd678efh567hg6787",
    "body": "image形象店-深圳腾大- QQ公仔",
    "out_trade_no": "1217752501201407033233368018",
    "total_fee": 888,
    "spbill_create_ip": "8.8.8.8",
    "auth_code": "120061098828009406",
}
REAL_NAME = {
    "appid": "wxd678efh567h23787",
    "out_contract_code": "APPLYMENT_00000000001",
    "openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
    "real_name": "张三丰",
    "cred_type": "ID_CARD",
    "cred_id": "110101199003074477",
}


# How long a test waits for something that should happen at once (a callback delivered, a thread at
# its rendezvous, a page rendered): only a wedged machine takes this long, while a loaded CI machine
# may take seconds where an idle one takes milliseconds. Waits poll for the condition and end as soon
# as it holds, so the deadline costs nothing when all is well.
PATIENCE = 60.0


def wait_until(condition: Callable[[], Any], seconds: float = PATIENCE, pause: float = 0.01) -> Any:
    """Poll ``condition`` until it is truthy or ``seconds`` have passed; return its last value, for the
    test to assert on (a fixed number of short polls is a deadline that a loaded machine misses)."""
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(pause)


async def until(condition: Callable[[], Any], seconds: float = PATIENCE, pause: float = 0.01) -> Any:
    """``wait_until`` for async tests: the loop keeps running (servers, deliveries) between polls."""
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value or time.monotonic() >= deadline:
            return value
        await asyncio.sleep(pause)


_real_getaddrinfo = socket.getaddrinfo
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1", "")


def _loopback_only(host: Any, *args: Any, **kwargs: Any) -> Any:
    """Tests and benchmarks talk to loopback only: any other name fails here, before a DNS query."""
    name = host.decode() if isinstance(host, bytes) else str(host or "")
    if name not in LOOPBACK_NAMES and not name.startswith("127."):
        raise OSError(f"the test suite must not reach the network (tried to resolve {name!r})")
    return _real_getaddrinfo(host, *args, **kwargs)


socket.getaddrinfo = _loopback_only  # every test process, from the first import on


@pytest.fixture(scope="session")
def identity() -> SandboxIdentity:
    return SandboxIdentity.generate()


@pytest.fixture
def make_engine(identity: SandboxIdentity) -> Iterator[Callable[..., Engine]]:
    """Build sandbox engines sharing the session identity; all are closed after the test."""
    made: list[Engine] = []

    def make(**options: Any) -> Engine:
        engine = Engine.sandbox(identity=identity, load_entry_points=False, **options)
        made.append(engine)
        return engine

    yield make
    for engine in made:
        engine.close()


@pytest.fixture
def engine(make_engine: Callable[..., Engine]) -> Engine:
    return make_engine()


@pytest.fixture(scope="session")
def vectors() -> dict[str, dict]:
    raw = json.loads((DATA / "vectors.json").read_text(encoding="utf-8"))
    return {v["id"]: v for v in raw["vectors"]}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RedisServer:
    """A real redis-server on a free loopback port, no persistence; ``url``, ``stop()``, ``start()``."""

    def __init__(self) -> None:
        import shutil

        self.binary = shutil.which("redis-server")
        if self.binary is None:
            pytest.fail("redis-server is not installed: ./quickstart.sh installs it (apt-get install redis-server)")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: Any = None

    def start(self) -> "RedisServer":
        import subprocess

        argv = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + PATIENCE  # a loaded machine may take a while to exec and answer
        while time.monotonic() < deadline and self.process.poll() is None:  # an exit will not answer
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        pytest.fail(f"redis-server did not answer on 127.0.0.1:{self.port}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(PATIENCE)
        self.process = None

    def client(self) -> Any:
        import redis

        return redis.Redis.from_url(self.url)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One redis-server for the session (each test flushes it through ``redis_url``)."""
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    with redis_server.client() as client:
        client.flushall()
    return redis_server.url


@pytest.fixture(scope="session")
def wheel_venv() -> Iterator[Path]:
    """A fresh venv with the engine installed from a wheel built once per session (``wheelenv``), in a
    directory of its own, not pytest's numbered ones, which other pytest runs may prune meanwhile."""
    work = Path(tempfile.mkdtemp(prefix="wechatpay-wheel-"))
    try:
        yield install_wheel(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture
def no_local_constants(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hypothesis (>= 6.131) mixes constants found in every local module already imported into its
    examples, so with ``derandomize=True`` the examples still depend on which tests ran first: a
    failure seen in the full suite would not be seen in the file alone, nor in another order. The
    property-test modules use this fixture so that their examples depend on their own code only."""
    from hypothesis.internal.conjecture import providers

    if hasattr(providers, "_get_local_constants") and hasattr(providers, "Constants"):
        monkeypatch.setattr(providers, "_get_local_constants", providers.Constants)
        providers.CONSTANTS_CACHE.cache.clear()


@pytest.fixture
def clock() -> TestClock:
    return TestClock(start=START)


@pytest.fixture
def timed(make_engine: Any, clock: TestClock) -> Engine:
    """A sandbox engine sharing the frozen clock: it signs and verifies with the same wire time."""
    return make_engine(clock=clock)
