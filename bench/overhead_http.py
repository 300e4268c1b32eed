"""Engine against a hand-written baseline, both calling the sandbox served in another process.

Run: .venv/bin/python bench/overhead_http.py [--slice 1.0] [--pairs 15] [--no-pin]

Each case (async at concurrency 1 and 64, sync at concurrency 1) is measured in ``--pairs`` pairs
of back-to-back slices of ``--slice`` seconds, one slice of the engine and one of the baseline,
the order swapped every other pair. A pair's ratio is engine / baseline calls/s within it; the
figure is the median over pairs, with the quartiles beside it to show the spread. Short, many,
interleaved slices make a shared machine's drift (a neighbour's burst, the server's own state
growing) land on both sides alike. On two or more cores the server is pinned to the last core and
this process to the others (``--no-pin`` leaves placement to the scheduler).

The sync engine (``engine.call`` from a thread without a running loop) is measured against the
baseline driven synchronously the cheapest way there is: one private event loop and
``loop.run_until_complete(baseline.call())`` per call, no thread hop.
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


async def measure(manifest: dict[str, Any], slice_seconds: float, pairs: int) -> dict[str, list[float]]:
    engine = Engine(**engine_settings(manifest))
    baseline = BaselineClient(manifest)
    call_engine = lambda: engine.acall("combine_papay.mini_program", SEED_PAYLOAD)  # noqa: E731
    for warm in (call_engine, baseline.call):
        for _ in range(50):
            await warm()
    results: dict[str, list[float]] = {}
    for concurrency in (1, 64):
        for pair in range(pairs):
            for name, call in _in_turn(pair, ("baseline", baseline.call), ("engine", call_engine)):
                results.setdefault(f"{name}_c{concurrency}", []).append(await rate(call, concurrency, slice_seconds))
    await engine.aclose()
    await baseline.close()
    return results


def measure_sync(manifest: dict[str, Any], slice_seconds: float, pairs: int) -> dict[str, list[float]]:
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
    for pair in range(pairs):
        for name, measure_side in _in_turn(pair, *sides):
            results[name].append(measure_side(slice_seconds))
    loop.run_until_complete(baseline.close())
    loop.close()
    engine.close()
    return {f"{name}_sync_c1": values for name, values in results.items()}


def _in_turn(pair: int, first: T, second: T) -> tuple[T, T]:
    """The two sides of a pair, the order swapped every other pair so drift favours neither."""
    return (first, second) if pair % 2 == 0 else (second, first)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slice", type=float, default=1.0, help="seconds per slice")
    parser.add_argument("--pairs", type=int, default=15, help="engine/baseline slice pairs per case")
    parser.add_argument("--no-pin", action="store_true", help="do not pin the server and the client to cores")
    args = parser.parse_args()
    with served_sandbox(pinned=not args.no_pin) as manifest:
        rounds = asyncio.run(measure(manifest, args.slice, args.pairs))
        rounds.update(measure_sync(manifest, args.slice, args.pairs))
    cases = {
        "async_c1": ("engine_c1", "baseline_c1"),
        "async_c64": ("engine_c64", "baseline_c64"),
        "sync_c1": ("engine_sync_c1", "baseline_sync_c1"),
    }
    figures = {name: statistics.median(values) for name, values in rounds.items()}
    # Each pair's two slices ran back to back: the ratio is taken within a pair, then the median over
    # pairs, so a slow patch of a shared machine cannot pair one side's good slice with the other's bad one.
    per_pair = {
        case: [e / b for e, b in zip(rounds[eng], rounds[base], strict=True)] for case, (eng, base) in cases.items()
    }
    ratios = {case: statistics.median(values) for case, values in per_pair.items()}
    spread = {case: _quartiles(values) for case, values in per_pair.items()}
    targets = {"async_c1": 0.95, "async_c64": 0.95, "sync_c1": 0.95}
    table = [("case", "engine calls/s", "baseline calls/s", "ratio", "quartiles", "target")]
    for case, (eng, base) in cases.items():
        low, high = spread[case]
        table.append(
            (
                case,
                f"{figures[eng]:.0f}",
                f"{figures[base]:.0f}",
                f"{ratios[case]:.3f}",
                f"{low:.3f}-{high:.3f}",
                f">= {targets[case]}",
            )
        )
    emit(
        "overhead_http",
        table,
        {
            "calls_per_second": figures,
            "ratios": ratios,
            "quartiles": spread,
            "targets": targets,
            "pinned": manifest["pinned"],
            "slice_seconds": args.slice,
            "pairs": args.pairs,
            "rounds": rounds,
        },
    )


def _quartiles(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return values[0], values[0]
    low, _, high = statistics.quantiles(values, n=4)
    return low, high


if __name__ == "__main__":
    main()
