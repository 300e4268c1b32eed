"""Cold start: a fresh process that imports the engine, builds it from key files and makes one call.

Run: .venv/bin/python bench/cold_start.py [--runs 15]

The measured process does what a user's first call does: ``import engine``, ``Engine(...)`` from
the key files of a sandbox served in another process (started once, before measuring, outside the
measured processes), and one ``engine.call`` to it over loopback. The floor process only imports
aiohttp and the cryptography primitives and does nothing else. The two alternate run by run; the
figures are the ratio of their median wall times (interpreter start included on both sides) and
the difference of their median peak RSS (``VmHWM``, read by the child itself: ``ru_maxrss`` would
report the parent's size).

Both kinds of child keep compiled bytecode in one private cache directory, warmed by one run of
each before measuring, like any second start of an installed package (pip compiles bytecode at
install time; an editable checkout under ``PYTHONDONTWRITEBYTECODE`` would otherwise recompile the
engine's sources in every process). ``--no-bytecode-cache`` measures that recompiling case instead.
The engine uses every default a user gets, entry-point plugin discovery included.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from common import SEED_PAYLOAD, emit, engine_settings, served_sandbox

from engine.registry import BUILTIN_ENDPOINTS

PEAK_RSS = 'print(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1])'
ENGINE = f"""
import json, sys
from engine import Engine
engine = Engine(**json.loads(sys.argv[1]))
assert engine.call("combine_papay.mini_program", json.loads(sys.argv[2])).status == 200
engine.close()
{PEAK_RSS}
"""
FLOOR = f"""
import aiohttp
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
{PEAK_RSS}
"""


def run(code: str, args: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Wall seconds of one child process and its peak RSS in KiB.

    Children start in a neutral directory: ``python -c`` puts the working directory first on
    ``sys.path``, and the engine must come from where it is installed, not from a checkout there.
    """
    started = time.perf_counter()
    command = [sys.executable, "-c", code, *args]
    out = subprocess.run(command, capture_output=True, text=True, check=True, env=env, cwd=tempfile.gettempdir())
    return time.perf_counter() - started, int(out.stdout.strip().splitlines()[-1])


def child_env(bytecode_cache: bool) -> dict[str, str]:
    env = dict(os.environ)
    if bytecode_cache:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = tempfile.mkdtemp(prefix="wechatpay-cold-pyc-")
    return env


# What a first call needs: the APIv3 engine "from key files" (merchant key, WeChat Pay public key).
# The sandbox's settings also carry the APIv2 key and the TLS client certificate; the second case
# adds them, as an APIv2 merchant's engine has them (it parses the certificate at construction).
APIV2_ONLY = ("apiv2_key", "client_certificate")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--no-bytecode-cache", action="store_true", help="recompile sources in every child")
    args = parser.parse_args()
    env = child_env(not args.no_bytecode_cache)
    with served_sandbox() as manifest:
        full = {**engine_settings(manifest), "load_entry_points": True}  # the default, as a user has it
        cases = {
            "engine": {k: v for k, v in full.items() if k not in APIV2_ONLY},
            "engine_with_apiv2": full,
        }
        arguments = {name: [json.dumps(settings), json.dumps(SEED_PAYLOAD)] for name, settings in cases.items()}
        for engine_args in arguments.values():
            run(ENGINE, engine_args, env)  # warm the OS file cache, the bytecode cache and the server
        run(FLOOR, [], env)
        runs: dict[str, list[tuple[float, int]]] = {"floor": [], **{name: [] for name in cases}}
        for _ in range(args.runs):
            runs["floor"].append(run(FLOOR, [], env))
            for name, engine_args in arguments.items():
                runs[name].append(run(ENGINE, engine_args, env))
    seconds = {name: statistics.median(r[0] for r in rs) for name, rs in runs.items()}
    rss_mib = {name: statistics.median(r[1] for r in rs) / 1024 for name, rs in runs.items()}
    ratios = {name: seconds[name] / seconds["floor"] for name in cases}
    extra_rss = {name: rss_mib[name] - rss_mib["floor"] for name in cases}
    targets = {"ratio": 1.5, "rss_mib": 25}
    descriptors = len(list(BUILTIN_ENDPOINTS.glob("*.yaml"))) - 1
    labels = {
        "engine": f"engine: import, Engine(...) from key files, 1 call over HTTP ({descriptors} descriptors)",
        "engine_with_apiv2": "the same, also given the APIv2 key and the TLS client certificate",
    }
    table = [
        (
            "process",
            "wall s (median)",
            "peak RSS MiB (median)",
            f"/ floor (targets <= {targets['ratio']}x, +{targets['rss_mib']} MiB)",
        ),
        ("floor: import aiohttp + cryptography primitives", f"{seconds['floor']:.3f}", f"{rss_mib['floor']:.1f}", ""),
    ]
    for name, label in labels.items():
        table.append(
            (label, f"{seconds[name]:.3f}", f"{rss_mib[name]:.1f}", f"{ratios[name]:.2f}x, +{extra_rss[name]:.1f}")
        )
    emit(
        "cold_start",
        table,
        {
            "seconds": seconds,
            "rss_mib": rss_mib,
            "ratios": ratios,
            "extra_rss_mib": extra_rss,
            "runs": args.runs,
            "bytecode_cache": not args.no_bytecode_cache,
            "descriptors": descriptors,
            "targets": targets,
        },
    )


if __name__ == "__main__":
    main()
