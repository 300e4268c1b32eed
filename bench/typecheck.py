"""How long mypy --strict and pyright strict take on user scripts typed with the generated stubs.

    .venv/bin/python bench/typecheck.py [--rounds 2]

The engine is installed from its wheel into a fresh venv (as a user's project sees it, site-packages
and py.typed), and each checker runs on three scripts: tests/typing/ten_operations.py (ten
operations in every typed form), ten operations in the call form only (one overload set of 1,020
per call), and the same ten in the chain form only (attribute lookups, no overloads). mypy is timed
cold (empty cache) and warm (its cache from the cold run); pyright has no cache between runs.
Wall-clock and CPU seconds (user + system of the checker's processes) are reported; on a shared
machine CPU seconds are the steadier figure. Medians of ``--rounds``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from common import machine  # noqa: E402
from wheelenv import install_wheel  # noqa: E402

BIN = Path(sys.executable).parent
TEN = [  # (short name, payload literal, chain call) for ten operations
    (
        "combine_papay.mini_program",
        '{"appid": "wx1", "plan_id": 1, "out_contract_code": "c", "contract_display_account": "A", '
        '"notify_url": "https://x.example"}',
        'v3.ecommerce.combine_papay.contracts.pre_entrust_sign.mini_program.post(json={"appid": "wx1", "plan_id": 1, '
        '"out_contract_code": "c", "contract_display_account": "A", "notify_url": "https://x.example"})',
    ),
    (
        "pay.transactions.out_trade_no.close",
        '{"out_trade_no": "1", "mchid": "1"}',
        'v3.pay.transactions.out_trade_no._out_trade_no_.close.post(out_trade_no="1", json={"mchid": "1"})',
    ),
    ("bill.tradebill.get", '{"bill_date": "2026-11-21"}', 'v3.bill.tradebill.get(query={"bill_date": "2026-11-21"})'),
    ("certificates.get", "{}", "v3.certificates.get()"),
    (
        "pay.transactions.id._transaction_id_.get",
        '{"transaction_id": "1", "mchid": "1"}',
        'v3.pay.transactions.id._transaction_id_.get(transaction_id="1", query={"mchid": "1"})',
    ),
    (
        "refund.domestic.refunds._out_refund_no_.get",
        '{"out_refund_no": "1"}',
        'v3.refund.domestic.refunds._out_refund_no_.get(out_refund_no="1")',
    ),
    (
        "profitsharing.orders._out_order_no_.get",
        '{"out_order_no": "1", "transaction_id": "1"}',
        'v3.profitsharing.orders._out_order_no_.get(out_order_no="1", query={"transaction_id": "1"})',
    ),
    (
        "merchant.fund.balance._account_type_.get",
        '{"account_type": "BASIC"}',
        'v3.merchant.fund.balance._account_type_.get(account_type="BASIC")',
    ),
    (
        "transfer.batches.out_batch_no.get",
        '{"out_batch_no": "1", "need_query_detail": False}',
        'v3.transfer.batches.out_batch_no._out_batch_no_.get(out_batch_no="1", query={"need_query_detail": False})',
    ),
    (
        "pay.transactions.jsapi",
        '{"appid": "wx1", "mchid": "1", "description": "d", "out_trade_no": "1", "notify_url": "https://x.example", '
        '"amount": {"total": 1}, "payer": {"openid": "o"}}',
        'v3.pay.transactions.jsapi.post(json={"appid": "wx1", "mchid": "1", "description": "d", "out_trade_no": "1", '
        '"notify_url": "https://x.example", "amount": {"total": 1}, "payer": {"openid": "o"}})',
    ),
]


def scripts(where: Path) -> dict[str, Path]:
    head = "from engine import Engine\n\n\ndef main(engine: Engine) -> None:\n"
    call = head + "".join(f'    engine.call("{name}", {payload})\n' for name, payload, _ in TEN)
    chain = head + "".join(f"    engine.{expression}\n" for _, _, expression in TEN)
    found = {"ten_operations.py (mixed forms)": where / "ten_operations.py"}
    shutil.copy(ROOT / "tests" / "typing" / "ten_operations.py", found["ten_operations.py (mixed forms)"])
    for label, text, name in (
        ("10 calls, call form", call, "call_form.py"),
        ("10 calls, chain form", chain, "chain_form.py"),
    ):
        (where / name).write_text(text, encoding="utf-8")
        found[label] = where / name
    return found


def timed(command: list[str], cwd: Path) -> tuple[float, float, str]:
    before = os.times()
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    after = os.times()
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return wall, cpu, result.stdout + result.stderr


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="wechatpay-typecheck-"))
    try:
        venv = install_wheel(work)
        where = work / "scripts"
        where.mkdir()
        config = {"typeCheckingMode": "strict", "venvPath": str(venv.parent), "venv": venv.name}
        (where / "pyrightconfig.json").write_text(json.dumps(config), encoding="utf-8")
        rows = measure(scripts(where), venv, where, args.rounds)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("| script | checker | wall s | CPU s | errors |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['script']} | {row['checker']} | {row['wall']:.1f} | {row['cpu']:.1f} | {row['errors']} |")
    print(json.dumps({"machine": machine(), "rows": rows}, ensure_ascii=False))
    return 0


def _fresh(where: Path) -> str:
    return str(where / f".mypy-cold-{time.time_ns()}")


def measure(found: dict[str, Path], venv: Path, where: Path, rounds: int) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for label, script in found.items():
        mypy = [str(BIN / "mypy"), "--strict", "--python-executable", str(venv / "bin" / "python")]
        checkers = {
            "mypy --strict, cold": lambda s=script, m=mypy: [*m, "--cache-dir", _fresh(where), s.name],
            "mypy --strict, warm": lambda s=script, m=mypy: [*m, "--cache-dir", str(where / ".warm"), s.name],
            "pyright strict (basedpyright)": lambda s=script: [str(BIN / "basedpyright"), s.name],
        }
        if (BIN / "pyright").exists():  # the PyPI wrapper of the npm package, where it can fetch that
            checkers["pyright strict (pyright)"] = lambda s=script: [str(BIN / "pyright"), s.name]
        subprocess.run(checkers["mypy --strict, warm"](), cwd=where, capture_output=True, check=False)  # fill cache
        for checker, command in checkers.items():
            samples = [timed(command(), where) for _ in range(rounds)]
            errors = samples[-1][2].count("error:") if "mypy" in checker else samples[-1][2].count(" - error:")
            rows.append(
                {
                    "script": label,
                    "checker": checker,
                    "errors": errors,
                    "wall": statistics.median(s[0] for s in samples),
                    "cpu": statistics.median(s[1] for s in samples),
                }
            )
    return rows


if __name__ == "__main__":
    sys.exit(main())
