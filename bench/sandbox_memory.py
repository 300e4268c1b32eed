"""The served sandbox's memory over many calls: its record is a ring buffer, so RSS stays flat.

Run: .venv/bin/python bench/sandbox_memory.py [--calls 20000] [--concurrency 32] [--record-limit N]

The sandbox is served in a child process, as ``wechatpay sandbox serve`` does it; the engine calls
the seed endpoint ``--calls`` times over HTTP. The child's resident set size (VmRSS, from
``/proc/<pid>/status``, so Linux only) is printed after a warm-up (the record already full), then
every fifth of the run, and at the end. By default the child is ``wechatpay sandbox serve`` itself
(record limit 1000); ``--record-limit N`` serves the same ``SandboxServer`` with that limit instead,
so ``--record-limit 1000000`` shows what an unbounded record costs (about 5.5 KiB per call).
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

from common import SEED_PAYLOAD, emit

from engine import Engine
from engine.sandbox import state

WARM_UP = 1200  # more than the default record limit: the ring is full before the first reading


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS line (is this Linux?)")


def start_server(state_dir: Path, record_limit: Optional[int]) -> subprocess.Popen:
    if record_limit is None:
        command = [str(Path(sys.executable).with_name("wechatpay")), "sandbox", "serve", "--state-dir", str(state_dir)]
    else:
        command = [sys.executable, __file__, "--serve", str(state_dir), "--record-limit", str(record_limit)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    process.stdout.readline()  # type: ignore[union-attr]  # "WeChat Pay sandbox at ..."
    return process


def serve(state_dir: Path, record_limit: int) -> None:
    """The child: what ``wechatpay sandbox serve`` does, with a chosen record limit."""
    from engine.registry import BUILTIN_ENDPOINTS, Registry
    from engine.sandbox import Sandbox
    from engine.sandbox.server import serve_forever

    identity = state.load_or_create(state_dir)
    sandbox = Sandbox(identity, Registry([BUILTIN_ENDPOINTS]), record_limit=record_limit)

    def ready(server: Any) -> None:
        state.write_manifest(identity, state_dir, server.base_url)
        print(f"WeChat Pay sandbox at {server.base_url}", flush=True)

    asyncio.run(serve_forever(sandbox, "127.0.0.1", 0, on_ready=ready))


async def drive(engine: Engine, calls: int, concurrency: int, on_progress: Any) -> None:
    done = 0

    async def worker() -> None:
        nonlocal done
        while done < calls:
            done += 1
            await engine.acall("combine_papay.mini_program", SEED_PAYLOAD)
            if done % max(1, calls // 5) == 0:
                on_progress(done)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def measure(pid: int, settings: dict[str, Any], calls: int, concurrency: int) -> dict[str, Any]:
    engine = Engine(**settings)
    before = rss_kib(pid)
    await drive(engine, WARM_UP, concurrency, lambda done: None)
    readings = [(0, rss_kib(pid))]
    started = time.perf_counter()
    await drive(engine, calls, concurrency, lambda done: readings.append((done, rss_kib(pid))))
    elapsed = time.perf_counter() - started
    await engine.aclose()
    readings.append((calls, rss_kib(pid)))
    return {"before": before, "readings": sorted(set(readings)), "seconds": elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--record-limit", type=int, default=None, help="serve with this limit (default: the CLI's)")
    parser.add_argument("--serve", metavar="STATE_DIR", help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    if args.serve:
        return serve(Path(args.serve), args.record_limit)
    state_dir = Path(tempfile.mkdtemp(prefix="wechatpay-memory-"))
    server = start_server(state_dir, args.record_limit)
    try:
        settings = {**state.engine_settings(state_dir), "platform_certificates": [], "load_entry_points": False}
        result = asyncio.run(measure(server.pid, settings, args.calls, args.concurrency))
    finally:
        server.terminate()
        server.wait(timeout=10)
    readings = result["readings"]
    start, end = readings[0][1], readings[-1][1]
    table = [
        ("calls after warm-up", "server RSS MiB"),
        (f"(before the {WARM_UP} warm-up calls)", _mib(result["before"])),
    ]
    table += [(str(n), _mib(kib)) for n, kib in readings]
    limit = args.record_limit if args.record_limit is not None else "CLI default (1000)"
    emit(
        "sandbox_memory",
        table,
        {
            "calls": args.calls,
            "warm_up_calls": WARM_UP,
            "record_limit": limit,
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
