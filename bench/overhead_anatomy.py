"""Where the engine's concurrency-1 gap over HTTP comes from: its own work, or how it talks HTTP.

Run: .venv/bin/python bench/overhead_anatomy.py [--slice 1.0] [--pairs 9]

``bench/overhead_http.py`` compares the engine with a hand-written baseline over loopback. This
script asks what the difference is made of, with three sides calling the same served sandbox in
interleaved slices (the order rotated every round, the server pinned to its own core):

* ``baseline``: the hand-written aiohttp + cryptography call of ``bench/common.py``;
* ``engine``: ``engine.acall`` of the same operation;
* ``baseline + in-process engine call``: the baseline call, then one engine call of the same
  operation answered in process (``MockTransport``, a canned signed answer, the stand-in signer of
  ``bench/retry_overhead.py``, real RSA verification). It does the engine's whole pipeline with no
  HTTP of its own.

If the third side is as slow as the engine, the gap is the engine's own per-call work and not its
use of aiohttp. Beside them, the same in-process call is timed on its own (CPU per call), back to
back and after a 2 ms sleep before each call, as a call over HTTP waits for its answer. The
difference between the two shows what idling does to the cost of the same work on this machine.
The baseline's own work with no HTTP (``BaselineWork``: its JSON body, five-line message, the same
stand-in signature, headers, the answer's RSA verification and JSON) is timed the same two ways,
so the engine's own work is the difference of two like measures, hot and after a wait.
Per-call CPU is ``time.process_time`` (this process only; the server runs in another).

Two more measures check the reading of the slices:

* ``call by call``: the engine and the baseline alternate one call at a time (ABBA), each call's
  wall time taken on its own, so both sides see the same moment of a shared machine; the ratio is
  the baseline's mean call time over the engine's, the same quantity as a ratio of calls/s.
* ``machine``: one RSA-2048 verification (C code, a few KiB of state, no Python of the engine's)
  timed back to back and after 2 ms of busy-waiting before each (the CPU never idles, nothing else
  runs in this process). If it too costs more after the wait, the dearer work after a wait is this
  machine's, whatever the code, and not the size of the engine's working set.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import secrets
import statistics
import time
from typing import Any, Awaitable, Callable, Optional

from common import SEED_PATH, SEED_PAYLOAD, BaselineClient, emit, engine_settings, served_sandbox
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from retry_overhead import SEED, StandInSigner, engines

from engine import Engine
from engine.sandbox import SandboxIdentity

Call = Callable[[], Awaitable[Any]]


async def side_rate(call: Call, seconds: float) -> tuple[float, float]:
    """Calls per second and client CPU µs per call, calling back to back for ``seconds``."""
    done, cpu, started = 0, time.process_time(), time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        await call()
        done += 1
    return done / (time.perf_counter() - started), (time.process_time() - cpu) / done * 1e6


async def in_process_cpu(call: Call, calls: int, idle: float) -> float:
    """CPU µs of one in-process call, each preceded by ``idle`` seconds of sleep (not counted)."""
    spent = 0.0
    for _ in range(calls):
        if idle:
            await asyncio.sleep(idle)
        started = time.process_time()
        await call()
        spent += time.process_time() - started
    return spent / calls * 1e6


async def call_by_call(first: Call, second: Call, pairs: int) -> tuple[list[float], list[float]]:
    """Wall µs of each call of ``first`` and ``second``, alternating ABBA so neither always goes first."""
    times: tuple[list[float], list[float]] = ([], [])
    for pair in range(pairs):
        order = ((0, first), (1, second)) if pair % 2 == 0 else ((1, second), (0, first))
        for side, call in order:
            started = time.perf_counter()
            await call()
            times[side].append((time.perf_counter() - started) * 1e6)
    return times


class BaselineWork:
    """The baseline call of ``bench/common.py`` without its HTTP, signed by the in-process engine's
    stand-in signer, verifying a canned signed answer with real RSA as the in-process engine does."""

    def __init__(self, key: Optional[rsa.RSAPrivateKey] = None) -> None:
        # bench/instructions.py passes one key to all its children: generating one costs a random amount
        key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.public = key.public_key()
        self.answer, self.timestamp, self.nonce = b'{"mchid":"1900000109"}', str(int(time.time())), "a" * 32
        message = f"{self.timestamp}\n{self.nonce}\n".encode() + self.answer + b"\n"
        self.signature = base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()
        self.signer = StandInSigner()

    async def __call__(self) -> Any:
        body = json.dumps(SEED_PAYLOAD, ensure_ascii=False, separators=(",", ":")).encode()
        timestamp, nonce = str(int(time.time())), secrets.token_hex(16)
        message = f"POST\n{SEED_PATH}\n{timestamp}\n{nonce}\n".encode() + body + b"\n"
        signature = base64.b64encode(self.signer.sign(message)).decode()
        headers = {
            "Authorization": f'WECHATPAY2-SHA256-RSA2048 mchid="1900000109",nonce_str="{nonce}",'
            f'timestamp="{timestamp}",serial_no="1",signature="{signature}"',
            "Accept": "application/json",
            "Content-Type": "application/json",
        }
        answered = f"{self.timestamp}\n{self.nonce}\n".encode() + self.answer + b"\n"
        self.public.verify(base64.b64decode(self.signature), answered, padding.PKCS1v15(), hashes.SHA256())
        return headers, json.loads(self.answer)


class Verification:
    """One RSA-2048 signature over a 344-byte message and the public key that checks it, made once."""

    def __init__(self) -> None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.message = base64.b64encode(bytes(range(256)))
        self.signature = key.sign(self.message, padding.PKCS1v15(), hashes.SHA256())
        self.public = key.public_key()

    def __call__(self) -> None:
        self.public.verify(self.signature, self.message, padding.PKCS1v15(), hashes.SHA256())


def verify_after(verify: Verification, gap: float, calls: int) -> float:
    """µs of one RSA-2048 verification, each after ``gap`` seconds of busy-waiting (not counted)."""
    spent = 0.0
    for _ in range(calls):
        until = time.perf_counter() + gap
        while time.perf_counter() < until:
            pass
        started = time.perf_counter()
        verify()
        spent += time.perf_counter() - started
    return spent / calls * 1e6


async def measure(manifest: dict[str, Any], slice_seconds: float, pairs: int) -> dict[str, Any]:
    engine = Engine(**engine_settings(manifest))
    baseline = BaselineClient(manifest)
    in_process = engines(SandboxIdentity.generate())["default"]

    async def engine_call() -> None:
        await engine.acall(SEED, SEED_PAYLOAD)

    async def in_process_call() -> None:
        await in_process.acall(SEED, SEED_PAYLOAD)

    async def both() -> None:
        await baseline.call()
        await in_process_call()

    sides: list[tuple[str, Call]] = [
        ("baseline", baseline.call),
        ("engine", engine_call),
        ("baseline + in-process engine call", both),
    ]
    for _, call in sides:
        for _ in range(50):
            await call()
    rounds: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in sides}
    hot: list[float] = []
    idle: list[float] = []
    own = BaselineWork()
    own_hot: list[float] = []
    own_idle: list[float] = []
    for round_ in range(pairs):
        for offset in range(len(sides)):
            name, call = sides[(round_ + offset) % len(sides)]
            rounds[name].append(await side_rate(call, slice_seconds))
        hot.append(await in_process_cpu(in_process_call, 300, 0.0))
        idle.append(await in_process_cpu(in_process_call, 300, 0.002))
        own_hot.append(await in_process_cpu(own, 300, 0.0))
        own_idle.append(await in_process_cpu(own, 300, 0.002))
    alternating = await call_by_call(baseline.call, engine_call, pairs * 500)
    verify = Verification()
    machine = [(verify_after(verify, 0.0, 300), verify_after(verify, 0.002, 300)) for _ in range(pairs)]
    await engine.aclose()
    await baseline.close()
    await in_process.aclose()
    return {
        "rounds": rounds,
        "hot": hot,
        "idle": idle,
        "own_hot": own_hot,
        "own_idle": own_idle,
        "alternating": alternating,
        "machine": machine,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slice", type=float, default=1.0, help="seconds per slice")
    parser.add_argument("--pairs", type=int, default=9, help="rounds of the three sides")
    args = parser.parse_args()
    with served_sandbox(pinned=True) as manifest:
        found = asyncio.run(measure(manifest, args.slice, args.pairs))
    rounds = found["rounds"]
    rate = {name: statistics.median(r[0] for r in values) for name, values in rounds.items()}
    cpu = {name: statistics.median(r[1] for r in values) for name, values in rounds.items()}
    base = rounds["baseline"]
    per_round = {name: [v[0] / b[0] for v, b in zip(values, base, strict=True)] for name, values in rounds.items()}
    ratio = {name: statistics.median(values) for name, values in per_round.items()}
    hot, idle = statistics.median(found["hot"]), statistics.median(found["idle"])
    # Within each round, like the ratios: the wall time one call takes more than a baseline call.
    added = {
        name: statistics.median(1e6 / v[0] - 1e6 / b[0] for v, b in zip(values, base, strict=True))
        for name, values in rounds.items()
    }
    table = [("side", "calls/s", "vs baseline", "wall µs added per call", "client CPU µs per call")]
    for name in rounds:
        table.append((name, f"{rate[name]:.0f}", f"{ratio[name]:.3f}", f"{added[name]:+.0f}", f"{cpu[name]:.0f}"))
    table.append(("in-process engine call alone, back to back", "", "", "", f"{hot:.0f}"))
    table.append(("in-process engine call alone, after 2 ms idle", "", "", "", f"{idle:.0f}"))
    own_hot, own_idle = statistics.median(found["own_hot"]), statistics.median(found["own_idle"])
    table.append(("the baseline's own work alone, back to back", "", "", "", f"{own_hot:.0f}"))
    table.append(("the baseline's own work alone, after 2 ms idle", "", "", "", f"{own_idle:.0f}"))
    base_calls, engine_calls = found["alternating"]
    by_call = statistics.fmean(base_calls) / statistics.fmean(engine_calls)
    added_by_call = statistics.fmean(engine_calls) - statistics.fmean(base_calls)
    table.append(("engine, call by call (ABBA)", "", f"{by_call:.3f}", f"{added_by_call:+.0f}", ""))
    verify_hot = statistics.median(pair[0] for pair in found["machine"])
    verify_waited = statistics.median(pair[1] for pair in found["machine"])
    table.append(("RSA-2048 verify alone, back to back (wall µs)", "", "", "", f"{verify_hot:.0f}"))
    table.append(("RSA-2048 verify alone, after 2 ms busy wait (wall µs)", "", "", "", f"{verify_waited:.0f}"))
    emit(
        "overhead_anatomy",
        table,
        {
            "calls_per_second": rate,
            "ratios": ratio,
            "client_cpu_us": cpu,
            "wall_us_added": added,
            "in_process_cpu_us": {"back_to_back": hot, "after_2ms_idle": idle},
            "baseline_own_work_cpu_us": {"back_to_back": own_hot, "after_2ms_idle": own_idle},
            "call_by_call": {"ratio": by_call, "wall_us_added": added_by_call, "calls_per_side": len(base_calls)},
            "rsa_verify_us": {"back_to_back": verify_hot, "after_2ms_busy_wait": verify_waited},
            "pinned": manifest["pinned"],
            "slice_seconds": args.slice,
            "pairs": args.pairs,
        },
    )


if __name__ == "__main__":
    main()
