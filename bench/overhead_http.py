"""Engine against a hand-written baseline, both calling the sandbox served in another process.

Run: .venv/bin/python bench/overhead_http.py [--seconds 3] [--rounds 3]

Async engine and baseline alternate in rounds at concurrency 1 and 64 (same server, same request),
the order swapped every other round. The sync engine (``engine.call`` from a thread without a
running loop) is measured against the baseline driven synchronously the cheapest way there is: one
private event loop and ``loop.run_until_complete(baseline.call())`` per call, no thread hop.
Calls/s are medians over the rounds; a ratio is the median over rounds of engine / baseline calls/s
within a round.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any, Awaitable, Callable, TypeVar

from common import SEED_PAYLOAD, BaselineClient, emit, engine_settings, served_sandbox

from engine import Engine

T = TypeVar("T")


async def rate(call: Callable[[], Awaitable[Any]], concurrency: int, seconds: float) -> float:
    """Calls per second with ``concurrency`` workers calling back to back for ``seconds``."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await call()
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done / (time.perf_counter() - started)


def sync_rate(engine: Engine, seconds: float) -> float:
    done, deadline, started = 0, time.perf_counter() + seconds, time.perf_counter()
    while time.perf_counter() < deadline:
        engine.call("combine_papay.mini_program", SEED_PAYLOAD)
        done += 1
    return done / (time.perf_counter() - started)


async def measure(manifest: dict[str, Any], seconds: float, rounds: int) -> dict[str, list[float]]:
    engine = Engine(**engine_settings(manifest))
    baseline = BaselineClient(manifest)
    call_engine = lambda: engine.acall("combine_papay.mini_program", SEED_PAYLOAD)  # noqa: E731
    for warm in (call_engine, baseline.call):
        for _ in range(50):
            await warm()
    results: dict[str, list[float]] = {}
    for round_ in range(rounds):
        for concurrency in (1, 64):
            for name, call in _in_turn(round_, ("baseline", baseline.call), ("engine", call_engine)):
                results.setdefault(f"{name}_c{concurrency}", []).append(await rate(call, concurrency, seconds))
    await engine.aclose()
    await baseline.close()
    return results


def measure_sync(manifest: dict[str, Any], seconds: float, rounds: int) -> dict[str, list[float]]:
    engine = Engine(**engine_settings(manifest))
    baseline = BaselineClient(manifest)
    loop = asyncio.new_event_loop()

    def baseline_sync_rate(duration: float) -> float:
        done, deadline, started = 0, time.perf_counter() + duration, time.perf_counter()
        while time.perf_counter() < deadline:
            loop.run_until_complete(baseline.call())
            done += 1
        return done / (time.perf_counter() - started)

    sync_rate(engine, 0.5)
    baseline_sync_rate(0.5)
    results: dict[str, list[float]] = {"baseline": [], "engine": []}
    sides = (("baseline", baseline_sync_rate), ("engine", lambda duration: sync_rate(engine, duration)))
    for round_ in range(rounds):
        for name, measure_side in _in_turn(round_, *sides):
            results[name].append(measure_side(seconds))
    loop.run_until_complete(baseline.close())
    loop.close()
    engine.close()
    return {f"{name}_sync_c1": values for name, values in results.items()}


def _in_turn(round_: int, first: T, second: T) -> tuple[T, T]:
    """The two sides of a round, the order swapped every other round so drift favours neither."""
    return (first, second) if round_ % 2 == 0 else (second, first)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with served_sandbox() as manifest:
        rounds = asyncio.run(measure(manifest, args.seconds, args.rounds))
        rounds.update(measure_sync(manifest, args.seconds, args.rounds))
    cases = {
        "async_c1": ("engine_c1", "baseline_c1"),
        "async_c64": ("engine_c64", "baseline_c64"),
        "sync_c1": ("engine_sync_c1", "baseline_sync_c1"),
    }
    figures = {name: statistics.median(values) for name, values in rounds.items()}
    # Each round's two sides ran back to back: the ratio is taken within a round, then the median
    # over rounds, so a slow patch of a shared machine cannot pair one side's good round with the
    # other side's bad one.
    ratios = {
        case: statistics.median(e / b for e, b in zip(rounds[eng], rounds[base], strict=True))
        for case, (eng, base) in cases.items()
    }
    targets = {"async_c1": 0.95, "async_c64": 0.95, "sync_c1": 0.95}
    table = [("case", "engine calls/s", "baseline calls/s", "ratio", "target")]
    for case, (eng, base) in cases.items():
        table.append(
            (case, f"{figures[eng]:.0f}", f"{figures[base]:.0f}", f"{ratios[case]:.3f}", f">= {targets[case]}")
        )
    emit(
        "overhead_http",
        table,
        {"calls_per_second": figures, "ratios": ratios, "targets": targets, "rounds": rounds},
    )


if __name__ == "__main__":
    main()
