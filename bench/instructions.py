"""Instructions per call, counted by callgrind: a figure a busy machine cannot move.

Run: .venv/bin/python bench/instructions.py [--calls 2000]   (needs valgrind: apt install valgrind)

Wall and CPU time on a shared machine move with the neighbours; the number of instructions a
process executes does not. Each case runs in two child processes under ``valgrind --tool=callgrind``
that differ only in how many calls they make after the same warm-up (0 and ``--calls``), with hash
randomisation fixed; the difference divided by ``--calls`` is the instructions one call costs,
start-up and warm-up cancelled out. The cases are the in-process seed call of
``bench/retry_overhead.py`` (canned signed answer, stand-in signer, real RSA verification) with the
default retry policy and with ``RetryPolicy.never()``, and the baseline's own work of
``bench/overhead_anatomy.py`` (the same call written with cryptography alone, no HTTP, the same
stand-in signature and real RSA verification), so the engine's work beyond the baseline is
counted too. Instructions are not time (a cache miss costs more than an add), so this complements
the timed benches, it does not replace them.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import emit

HERE = Path(__file__).resolve().parent


def child_source(policy: str, calls: int, identity_dir: str) -> str:
    if policy == "baseline":
        return f"""
import asyncio, sys
from pathlib import Path
sys.path.insert(0, {str(HERE)!r})
from overhead_anatomy import BaselineWork
from engine.sandbox import state
work = BaselineWork(state.load(Path({identity_dir!r})).platform_key)

async def run(count):
    for _ in range(count):
        await work()

asyncio.run(run(200 + {calls}))
"""
    return f"""
import asyncio, sys
from pathlib import Path
sys.path.insert(0, {str(HERE)!r})
from retry_overhead import SEED, engines
from common import SEED_PAYLOAD
from engine.sandbox import state
engine = engines(state.load(Path({identity_dir!r})))[{policy!r}]

async def run(count):
    for _ in range(count):
        await engine.acall(SEED, SEED_PAYLOAD)

asyncio.run(run(200 + {calls}))
"""


def instructions(source: str) -> int:
    """Instructions callgrind counted for one child process running ``source``."""
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, "-c", source]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=True, cwd=tempfile.gettempdir())
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise SystemExit(f"callgrind printed no count:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def per_call(policy: str, calls: int, identity_dir: str) -> int:
    with ThreadPoolExecutor(2) as pool:  # the two children run side by side; counts do not care
        none, many = pool.map(instructions, [child_source(policy, n, identity_dir) for n in (0, calls)])
    return (many - none) // calls


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt install valgrind)")
    from engine.sandbox import SandboxIdentity, state

    with tempfile.TemporaryDirectory() as identity_dir:
        # One identity for every child: key generation is random, and its cost must cancel out.
        state.save(SandboxIdentity.generate(), Path(identity_dir))
        counts = {policy: per_call(policy, args.calls, identity_dir) for policy in ("default", "never", "baseline")}
    difference = counts["default"] - counts["never"]
    own = counts["default"] - counts["baseline"]
    table = [
        ("in-process seed call", "instructions per call"),
        ("default retry policy", f"{counts['default']:,}"),
        ("RetryPolicy.never()", f"{counts['never']:,}"),
        ("difference", f"{difference:+,} ({difference / counts['never']:+.3%})"),
        ("the baseline's own work (bench/overhead_anatomy.py)", f"{counts['baseline']:,}"),
        ("the engine's work beyond it", f"{own:+,}"),
    ]
    figures = {"instructions_per_call": counts, "difference": difference, "beyond_baseline": own, "calls": args.calls}
    emit("instructions", table, figures)


if __name__ == "__main__":
    main()
