"""Cold start: a fresh process that imports the engine, builds it from key files and makes one call.

Run: .venv/bin/python bench/cold_start.py [--runs 10]

Compared with a floor process that only imports aiohttp and cryptography, in interleaved runs. Wall
time is measured around the whole child process (interpreter start included on both sides); peak
RSS is the child's own ``ru_maxrss``. Keys are generated once, before measuring, into a state
directory the measured process only reads. The full catalogue (1,019 APIv3 and 136 APIv2 descriptor files) is installed.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import emit

from engine.registry import BUILTIN_ENDPOINTS
from engine.sandbox import state

ENGINE = """
import json, sys
from pathlib import Path
from engine import Engine
from engine.sandbox import state
identity = state.load(Path(sys.argv[1]))
engine = Engine.sandbox(identity=identity, load_entry_points=False)
payload = json.loads(Path(sys.argv[2]).read_text())
assert engine.call("combine_papay.mini_program", payload).status == 200
engine.close()
print(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1])
"""
FLOOR = """
import aiohttp
from cryptography.hazmat.primitives.asymmetric import rsa
print(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1])
"""


def run(code: str, *args: str) -> tuple[float, int]:
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True).stdout
    return time.perf_counter() - started, int(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    state_dir = Path(tempfile.mkdtemp(prefix="wechatpay-cold-"))
    state.load_or_create(state_dir)
    example = Path(__file__).resolve().parent.parent / "examples" / "combine_papay.json"
    run(ENGINE, str(state_dir), str(example))  # warm the OS file cache and bytecode, like any second start
    engine_runs, floor_runs = [], []
    for _ in range(args.runs):
        engine_runs.append(run(ENGINE, str(state_dir), str(example)))
        floor_runs.append(run(FLOOR))
    runs = {"engine": engine_runs, "floor": floor_runs}
    seconds = {name: statistics.median(r[0] for r in rs) for name, rs in runs.items()}
    rss_mb = {name: statistics.median(r[1] for r in rs) / 1024 for name, rs in runs.items()}
    extra = {"seconds": seconds["engine"] - seconds["floor"], "rss_mb": rss_mb["engine"] - rss_mb["floor"]}
    descriptors = len(list(BUILTIN_ENDPOINTS.glob("*.yaml"))) - 1
    table = [
        ("process", "wall s (median)", "peak RSS MB"),
        ("floor: import aiohttp + cryptography", f"{seconds['floor']:.3f}", f"{rss_mb['floor']:.1f}"),
        (
            f"engine: import, build from key files, 1 call ({descriptors} descriptors)",
            f"{seconds['engine']:.3f}",
            f"{rss_mb['engine']:.1f}",
        ),
        ("engine over floor (targets: +0.25 s, +25 MB)", f"+{extra['seconds']:.3f}", f"+{extra['rss_mb']:.1f}"),
    ]
    emit(
        "cold_start",
        table,
        {
            "seconds": seconds,
            "rss_mb": rss_mb,
            "extra": extra,
            "descriptors": descriptors,
            "targets": {"seconds": 0.25, "rss_mb": 25},
        },
    )


if __name__ == "__main__":
    main()
