"""The served sandbox's memory over many calls: its record and its objects are bounded, so RSS stays flat.

Run: .venv/bin/python bench/sandbox_memory.py [--calls 20000] [--concurrency 32] [--record-limit N]
                                              [--distinct] [--object-limit N] [--warm-up N]

The sandbox is served in a child process, as ``wechatpay sandbox serve`` does it; the engine calls
the seed endpoint ``--calls`` times over HTTP. The child's resident set size (VmRSS, from
``/proc/<pid>/status``, so Linux only) is printed after a warm-up (the record already full), then
every fifth of the run, and at the end. By default the child is ``wechatpay sandbox serve`` itself
(record limit 1000, object limit 10,000, ``world.json`` in a temporary state dir);
``--record-limit N`` serves the same ``SandboxServer`` with that limit instead, without a state dir,
so ``--record-limit 1000000`` shows what an unbounded record costs (about 5.5 KiB per call).

``--distinct`` makes each call a new order number instead: a JSAPI order created, then closed (two
calls, one object that settles as CLOSED), which is what grew the sandbox without bound before its
objects were. The warm-up then creates more orders than the object limit, so the store is full
(and evicting) before the first reading; ``--object-limit N`` sets that limit (``1000000`` with the
same ``--warm-up``: what an unbounded store costs). The objects held at the end are counted through
``GET /sandbox/objects``.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

import aiohttp
from common import SEED_PAYLOAD, emit

from engine import Engine
from engine.sandbox import state

WARM_UP = 1200  # more than the default record limit: the ring is full before the first reading
DEFAULT_OBJECT_LIMIT = 10_000  # engine.sandbox.objects.DEFAULT_OBJECT_LIMIT
JSAPI = "v3.pay.transactions.jsapi.post"
CLOSE = "v3.pay.transactions.out_trade_no._out_trade_no_.close.post"
MCHID = "1900000109"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS line (is this Linux?)")


def start_server(state_dir: Path, record_limit: Optional[int], object_limit: int) -> subprocess.Popen:
    if record_limit is None:
        command = [str(Path(sys.executable).with_name("wechatpay")), "sandbox", "serve", "--state-dir", str(state_dir)]
    else:
        command = [sys.executable, __file__, "--serve", str(state_dir), "--record-limit", str(record_limit)]
    command += ["--object-limit", str(object_limit)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    process.stdout.readline()  # type: ignore[union-attr]  # "WeChat Pay sandbox at ..."
    return process


def serve(state_dir: Path, record_limit: int, object_limit: int) -> None:
    """The child: what ``wechatpay sandbox serve`` does, with a chosen record limit and no state dir."""
    from engine.registry import BUILTIN_ENDPOINTS, Registry
    from engine.sandbox import Sandbox
    from engine.sandbox.server import serve_forever

    identity = state.load_or_create(state_dir)
    sandbox = Sandbox(identity, Registry([BUILTIN_ENDPOINTS]), record_limit=record_limit, object_limit=object_limit)

    def ready(server: Any) -> None:
        state.write_manifest(identity, state_dir, server.base_url)
        print(f"WeChat Pay sandbox at {server.base_url}", flush=True)

    asyncio.run(serve_forever(sandbox, "127.0.0.1", 0, on_ready=ready))


async def seed_call(engine: Engine, n: int) -> None:
    await engine.acall("combine_papay.mini_program", SEED_PAYLOAD)


async def distinct_order(engine: Engine, n: int) -> None:
    """A new order number, driven to a final state (CLOSED) through the merchant API alone."""
    number = f"BENCH-{n}"
    order = {
        "appid": "wxd678efh567hg6787",
        "mchid": MCHID,
        "description": "bench",
        "out_trade_no": number,
        "notify_url": "https://yourapp.com/notify",
        "amount": {"total": 1},
        "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
    }
    await engine.acall(JSAPI, order)
    await engine.acall(CLOSE, {"out_trade_no": number, "mchid": MCHID})


async def drive(engine: Engine, calls: range, concurrency: int, call: Any, on_progress: Any) -> None:
    numbers = iter(calls)
    step = max(1, len(calls) // 5)

    async def worker() -> None:
        for n in numbers:  # shared: each number is taken once
            await call(engine, n)
            done = n - calls.start + 1
            if done % step == 0:
                on_progress(done)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def held_objects(base_url: str) -> int:
    async with aiohttp.ClientSession() as session, session.get(f"{base_url}/sandbox/objects") as answer:
        return len(await answer.json())


async def measure(pid: int, settings: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    engine = Engine(**settings)
    call = distinct_order if args.distinct else seed_call
    warm_up = args.warm_up if args.warm_up is not None else WARM_UP + (args.object_limit if args.distinct else 0)
    before = rss_kib(pid)
    await drive(engine, range(warm_up), args.concurrency, call, lambda done: None)
    readings = [(0, rss_kib(pid))]
    started = time.perf_counter()
    work = range(warm_up, warm_up + args.calls)
    await drive(engine, work, args.concurrency, call, lambda done: readings.append((done, rss_kib(pid))))
    elapsed = time.perf_counter() - started
    await engine.aclose()
    readings.append((args.calls, rss_kib(pid)))
    held = await held_objects(settings["base_url"])
    return {"before": before, "warm_up": warm_up, "readings": sorted(set(readings)), "seconds": elapsed, "held": held}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--record-limit", type=int, default=None, help="serve with this limit (default: the CLI's)")
    parser.add_argument("--distinct", action="store_true", help="a new order number per call, created then closed")
    parser.add_argument("--object-limit", type=int, default=DEFAULT_OBJECT_LIMIT, help="the sandbox's object limit")
    parser.add_argument("--warm-up", type=int, default=None, help="default 1200, plus the object limit if distinct")
    parser.add_argument("--serve", metavar="STATE_DIR", help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    if args.serve:
        return serve(Path(args.serve), args.record_limit, args.object_limit)
    state_dir = Path(tempfile.mkdtemp(prefix="wechatpay-memory-"))
    server = start_server(state_dir, args.record_limit, args.object_limit)
    try:
        settings = {**state.engine_settings(state_dir), "platform_certificates": [], "load_entry_points": False}
        result = asyncio.run(measure(server.pid, settings, args))
    finally:
        server.terminate()
        server.wait(timeout=10)
    readings = result["readings"]
    start, end = readings[0][1], readings[-1][1]
    unit = "orders" if args.distinct else "calls"
    table = [
        (f"{unit} after warm-up", "server RSS MiB"),
        (f"(before the {result['warm_up']} warm-up {unit})", _mib(result["before"])),
    ]
    table += [(str(n), _mib(kib)) for n, kib in readings]
    limit = args.record_limit if args.record_limit is not None else "CLI default (1000)"
    emit(
        "sandbox_memory",
        table,
        {
            "calls": args.calls,
            "distinct_orders": args.distinct,
            "warm_up_calls": result["warm_up"],
            "record_limit": limit,
            "object_limit": args.object_limit,
            "objects_held_at_end": result["held"],
            "rss_before_warm_up_mib": round(result["before"] / 1024, 1),
            "rss_start_mib": round(start / 1024, 1),
            "rss_end_mib": round(end / 1024, 1),
            "growth_mib": round((end - start) / 1024, 1),
            "seconds": round(result["seconds"], 1),
        },
    )


def _mib(kib: int) -> str:
    return f"{kib / 1024:.1f}"


if __name__ == "__main__":
    main()
