"""What the retry policy costs a call that needs no retry.

Run: .venv/bin/python bench/retry_overhead.py [--calls 500] [--pairs 41]

Two engines built alike answer through one canned, signed answer (``MockTransport``, no server):
one with the default policy (3 attempts, 30 s deadline), one with ``RetryPolicy.never()`` (one
attempt). Every call succeeds on its first attempt, so whatever separates the two is what the
policy costs when nothing fails. They alternate in ``--pairs`` pairs of ``--calls`` calls each, the
order swapped every other pair; per-call CPU time (``time.process_time``: one thread, no waiting)
is compared within each pair. The figure is the median per-pair difference with its quartiles: a
difference inside the quartiles of the differences is not measurable.

The merchant signature is made by a stand-in signer (``Engine(signer=...)``, the key-level seam):
an RSA signature costs hundreds of microseconds, which would bury a difference of a few hundred
nanoseconds in its own jitter. The answer is still verified with real RSA, as every answer is.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import statistics
import time
from typing import Any

from common import SEED_PAYLOAD, emit

from engine import Engine, MockTransport, RetryPolicy
from engine.sandbox import SandboxIdentity
from engine.sandbox.emulator import signed_answer

SEED = "combine_papay.mini_program"


class StandInSigner:
    """Signs with SHA-256 instead of RSA: the same interface, a thousandth of the cost."""

    def sign(self, data: bytes) -> bytes:
        return hashlib.sha256(data).digest() * 8


def engines(identity: SandboxIdentity) -> dict[str, Engine]:
    answer = signed_answer(
        200, b'{"mchid":"1900000109"}', identity.platform_public_key_id, identity.platform_key, int(time.time())
    )
    settings: dict[str, Any] = {**identity.engine_settings(), "signer": StandInSigner()}
    del settings["private_key"]
    canned = MockTransport(lambda request: answer, record=False)
    return {
        "default": Engine(**settings, transport=canned, load_entry_points=False),
        "never": Engine(**settings, transport=canned, load_entry_points=False, retry=RetryPolicy.never()),
    }


async def per_call_us(engine: Engine, calls: int) -> float:
    started = time.process_time()
    for _ in range(calls):
        await engine.acall(SEED, SEED_PAYLOAD)
    return (time.process_time() - started) / calls * 1e6


async def measure(built: dict[str, Engine], calls: int, pairs: int) -> dict[str, list[float]]:
    for engine in built.values():
        await per_call_us(engine, 200)  # warm: descriptor loaded, validator compiled, keys parsed
    results: dict[str, list[float]] = {name: [] for name in built}
    order = list(built.items())
    for pair in range(pairs):
        for name, engine in order if pair % 2 == 0 else order[::-1]:
            results[name].append(await per_call_us(engine, calls))
    for engine in built.values():
        await engine.aclose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=500, help="calls per slice")
    parser.add_argument("--pairs", type=int, default=41)
    args = parser.parse_args()
    results = asyncio.run(measure(engines(SandboxIdentity.generate()), args.calls, args.pairs))
    differences = [d - n for d, n in zip(results["default"], results["never"], strict=True)]
    low, median, high = statistics.quantiles(differences, n=4)
    figures = {
        "default_policy_us": statistics.median(results["default"]),
        "never_us": statistics.median(results["never"]),
        "difference_us": median,
        "difference_quartiles_us": [low, high],
    }
    table = [
        ("policy", "per call µs (median)"),
        ("default (3 attempts, 30 s deadline)", f"{figures['default_policy_us']:.2f}"),
        ("RetryPolicy.never()", f"{figures['never_us']:.2f}"),
        ("difference, median [quartiles]", f"{median:+.2f} [{low:+.2f}, {high:+.2f}]"),
    ]
    emit("retry_overhead", table, {**figures, "calls": args.calls, "pairs": args.pairs})


if __name__ == "__main__":
    main()
