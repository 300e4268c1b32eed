"""Memory of many engines (one per merchant) in one process.

Design decisions:

* Each engine is a real, separate merchant: its own mchid, its own private key object (the PEM is
  parsed again for every engine, as it would be from each merchant's own file), its own store
  namespace, runtime, plugin manager and clock. What the engine shares by design is shared: the
  built-in descriptor registry (parsed descriptors included) and the HTTP connection pool.
* All engines live on one asyncio loop, as in an async web app serving every merchant, and each one
  makes one verified call through ``MockTransport`` (the sandbox checks and answers the first; the
  others get the same answer freshly signed by the sandbox's platform key), so each has its
  validator compiled, its loop resources made, its merchant key used and an answer verified.
* The figure is resident memory (``VmRSS``) after ``gc.collect()``: with the first engine built and
  used, then after the other N-1; the difference divided by N-1 is the cost of one more merchant.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine

from engine import Engine, MockTransport
from engine.sandbox import Sandbox, SandboxIdentity

PAYLOAD = {
    "appid": "wxd678efh567hg6787",
    "plan_id": 12535,
    "out_contract_code": "c-1",
    "contract_display_account": "A",
    "notify_url": "https://yourapp.com/notify",
}


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


async def main(count: int) -> dict:
    identity = SandboxIdentity.generate()
    sandbox = Sandbox(identity)

    canned: list[bytes] = []

    def answer(request):  # the sandbox checks and answers the first call; later ones get its body, freshly signed
        if not canned:
            canned.append(sandbox.handle(request).body)
            sandbox.exchanges.clear()
        return sandbox.sign_answer(200, canned[0], request.headers)

    transport = MockTransport(answer, record=False)
    pem = identity.merchant_private_pem()
    settings = identity.engine_settings()

    def build(index: int) -> Engine:
        return Engine(
            **{**settings, "mchid": identity.mchid if index == 0 else str(1900000000 + index), "private_key": pem},
            transport=transport,
            load_entry_points=False,
        )

    engines = [build(0)]
    await engines[0].acall("combine_papay.mini_program", PAYLOAD)
    gc.collect()
    first = rss_mib()
    started = time.perf_counter()
    for index in range(1, count):
        engine = build(index)
        await engine.acall("combine_papay.mini_program", PAYLOAD)
        engines.append(engine)
    gc.collect()
    after = rss_mib()
    seconds = time.perf_counter() - started
    for engine in engines:
        await engine.aclose()
    beyond = after - first
    return {
        "engines": count,
        "rss_first_mib": round(first, 1),
        "rss_all_mib": round(after, 1),
        "beyond_first_mib": round(beyond, 1),
        "per_engine_kib": round(beyond * 1024 / max(1, count - 1), 1),
        "build_and_call_s": round(seconds, 1),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", type=int, default=1000)
    args = parser.parse_args()
    result = asyncio.run(main(args.engines))
    print(f"{'engines':>8} {'first MiB':>10} {'all MiB':>9} {'beyond first MiB':>17} {'per engine KiB':>15}")
    print(
        f"{result['engines']:>8} {result['rss_first_mib']:>10} {result['rss_all_mib']:>9} "
        f"{result['beyond_first_mib']:>17} {result['per_engine_kib']:>15}"
    )
    print(json.dumps({"machine": machine(), "many_merchants": result}))
