"""Shared fixtures: one generated sandbox identity per session (RSA key generation is the slow part)."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from engine import Engine
from engine.sandbox import SandboxIdentity

DATA = Path(__file__).parent / "data"

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
