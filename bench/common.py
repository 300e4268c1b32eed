"""Shared pieces of the benchmarks: a sandbox server in its own process, a hand-written baseline
client, machine facts and the result format.

Design decisions:

* The server under test runs in a *separate process* (``wechatpay sandbox serve``) so client and
  server do not share an interpreter; both run on this machine's loopback.
* The baseline is what a careful developer would write by hand with aiohttp and cryptography alone:
  build the JSON once per call, sign the five-line message, send, verify the answer's signature. It
  shares no code with the engine, so the ratio measures the engine's own cost.
* Figures are compared as ratios measured in one run, interleaved, never as absolute targets.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import platform
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import aiohttp
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from engine.sandbox import state

ROOT = Path(__file__).resolve().parent.parent
SEED_PATH = "/v3/ecommerce/combine-papay/contracts/pre-entrust-sign/mini-program"
SEED_PAYLOAD = json.loads((ROOT / "examples" / "combine_papay.json").read_text(encoding="utf-8"))


def machine() -> dict[str, Any]:
    return {
        "date": time.strftime("%Y-%m-%d"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "processor": _cpu_model(),
    }


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def pin_to_cores(pid: int, cores: set[int]) -> bool:
    """Keep process ``pid`` on ``cores`` (Linux); ``False`` where the machine cannot or has too few cores."""
    available = getattr(os, "sched_getaffinity", lambda _: set())(0)
    if not hasattr(os, "sched_setaffinity") or not cores <= available:
        return False
    os.sched_setaffinity(pid, cores)
    return True


@contextlib.contextmanager
def served_sandbox(*, pinned: bool = False) -> Iterator[dict[str, Any]]:
    """Start ``wechatpay sandbox serve`` in a child process; yield its sandbox.json.

    ``pinned``: on a machine of two or more cores, the server keeps the last core and this process
    the others, so neither migrates nor waits for the other's core between calls (both sides of a
    comparison get the same placement). The manifest says whether that happened.
    """
    state_dir = Path(tempfile.mkdtemp(prefix="wechatpay-bench-"))
    command = [str(Path(sys.executable).with_name("wechatpay")), "sandbox", "serve", "--state-dir", str(state_dir)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    cores = sorted(getattr(os, "sched_getaffinity", lambda _: set())(0))
    placed = pinned and len(cores) >= 2 and pin_to_cores(process.pid, {cores[-1]}) and pin_to_cores(0, set(cores[:-1]))
    try:
        process.stdout.readline()  # type: ignore[union-attr]  # "WeChat Pay sandbox at ..."
        yield {**json.loads((state_dir / "sandbox.json").read_text()), "state_dir": str(state_dir), "pinned": placed}
    finally:
        process.terminate()
        process.wait(timeout=10)
        if placed:
            os.sched_setaffinity(0, set(cores))


def engine_settings(manifest: dict[str, Any]) -> dict[str, Any]:
    settings = state.engine_settings(Path(manifest["state_dir"]))
    return {**settings, "platform_certificates": [], "load_entry_points": False}  # public-key mode, like the baseline


class BaselineClient:
    """Sign, send and verify the seed call with aiohttp and cryptography only."""

    def __init__(self, manifest: dict[str, Any]) -> None:
        self.manifest = manifest
        self.key = serialization.load_pem_private_key(Path(manifest["merchant_private_key_path"]).read_bytes(), None)
        self.platform = serialization.load_pem_public_key(Path(manifest["platform_public_key_path"]).read_bytes())
        self.session: aiohttp.ClientSession | None = None

    async def call(self) -> dict[str, Any]:
        if self.session is None:
            self.session = aiohttp.ClientSession()
        body = json.dumps(SEED_PAYLOAD, ensure_ascii=False, separators=(",", ":")).encode()
        timestamp, nonce = str(int(time.time())), secrets.token_hex(16)
        message = f"POST\n{SEED_PATH}\n{timestamp}\n{nonce}\n".encode() + body + b"\n"
        signature = base64.b64encode(self.key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()
        headers = {
            "Authorization": (
                f'WECHATPAY2-SHA256-RSA2048 mchid="{self.manifest["mchid"]}",nonce_str="{nonce}",'
                f'timestamp="{timestamp}",serial_no="{self.manifest["merchant_serial_no"]}",signature="{signature}"'
            ),
            "Accept": "application/json",
            "User-Agent": "baseline/1.0",
            "Content-Type": "application/json",
            "Wechatpay-Serial": self.manifest["platform_public_key_id"],
        }
        async with self.session.post(self.manifest["base_url"] + SEED_PATH, data=body, headers=headers) as answer:
            raw = await answer.read()
            verify = (
                f"{answer.headers['Wechatpay-Timestamp']}\n{answer.headers['Wechatpay-Nonce']}\n".encode() + raw + b"\n"
            )
            self.platform.verify(
                base64.b64decode(answer.headers["Wechatpay-Signature"]), verify, padding.PKCS1v15(), hashes.SHA256()
            )
            return json.loads(raw)

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()


def emit(name: str, table: list[tuple[str, ...]], figures: dict[str, Any]) -> None:
    """Print a table for people and one JSON line for machines."""
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    print(json.dumps({"benchmark": name, "machine": machine(), **figures}, ensure_ascii=False))
