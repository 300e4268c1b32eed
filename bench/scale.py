"""Scale: one engine, many concurrent calls, against the sandbox served in another process.

Run: .venv/bin/python bench/scale.py [--seconds 3] [--soak 20000]

Calls per second at 1, 16, 64 and 256 concurrent calls; then a soak of ``--soak`` calls at
concurrency 64 sampling the process's open sockets and RSS every tenth of the way, to show the
keep-alive pool is reused (sockets bounded by the pool, not by the number of calls) and memory
stays flat.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

from common import SEED_PAYLOAD, emit, engine_settings, served_sandbox
from overhead_http import rate

from engine import Engine


def open_sockets() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        except OSError:  # the listing's own descriptor is gone by now
            continue
    return count


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    return 0.0


async def soak(engine: Engine, calls: int, concurrency: int) -> list[tuple[int, int, float]]:
    samples: list[tuple[int, int, float]] = []
    done = 0
    step = calls // 10

    async def worker() -> None:
        nonlocal done
        while done < calls:
            done += 1
            sample_after = done % step == 0
            await engine.acall("combine_papay.mini_program", SEED_PAYLOAD)
            if sample_after:
                samples.append((len(samples) * step + step, open_sockets(), rss_mb()))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return samples


async def measure(manifest: dict, seconds: float, calls: int) -> dict:
    engine = Engine(**engine_settings(manifest))
    call = lambda: engine.acall("combine_papay.mini_program", SEED_PAYLOAD)  # noqa: E731
    rates = {c: await rate(call, c, seconds) for c in (1, 16, 64, 256)}
    samples = await soak(engine, calls, 64)
    await engine.aclose()
    return {"rates": rates, "samples": samples}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--soak", type=int, default=20000)
    args = parser.parse_args()
    with served_sandbox() as manifest:
        figures = asyncio.run(measure(manifest, args.seconds, args.soak))
    table = [("concurrency", "calls/s")] + [(str(c), f"{r:.0f}") for c, r in figures["rates"].items()]
    table += [("after calls", "sockets / RSS MB")] + [(str(n), f"{s} / {m:.1f}") for n, s, m in figures["samples"]]
    sockets = [s for _, s, _ in figures["samples"]]
    memory = [m for _, _, m in figures["samples"]]
    summary = {"sockets_max": max(sockets), "rss_growth_mb": memory[-1] - memory[0]}
    emit("scale", table, {"calls_per_second": figures["rates"], "soak": figures["samples"], **summary})


if __name__ == "__main__":
    main()
