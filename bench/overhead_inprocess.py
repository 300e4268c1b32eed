"""Microseconds the engine spends per call beyond the cryptography it cannot avoid.

Run: .venv/bin/python bench/overhead_inprocess.py [--calls 7000]

A transport plugin answers every call with one canned, pre-signed answer, so no server cost is in
the picture. Per call the engine must sign once and verify once (and OAEP-encrypt each encrypted
field); those are timed separately in the same run with the same keys and subtracted. Two cases: the
seed endpoint, and the catalogue's largest request descriptor with every field filled.

Both sides are timed in CPU time of this process (``time.process_time``): everything here runs on
one thread without waiting, so CPU time is the cost, and unlike wall time it does not count the
moments a neighbour on a shared machine holds the core.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from common import SEED_PAYLOAD, emit

from engine import Descriptor, Engine, Field, MockTransport, RawResponse
from engine.crypto import oaep_encrypt, rsa_sign, rsa_verify
from engine.examples import example_value
from engine.protocol import response_message
from engine.registry import BUILTIN_ENDPOINTS, Registry
from engine.sandbox import SandboxIdentity
from engine.sandbox.emulator import signed_answer

SEED = "v3.ecommerce.combine_papay.contracts.pre_entrust_sign.mini_program.post"
ROUNDS = 7


def full_value(name: str, field: Field) -> Any:
    """A value for ``field`` with every optional sub-field filled too."""
    if field.type == "object" and field.fields:
        return {n: full_value(n, f) for n, f in field.fields.items()}
    if field.type == "array" and field.items is not None and field.items.type == "object":
        return [full_value(name, field.items)]
    return example_value(name, field)


def full_payload(descriptor: Descriptor) -> dict[str, Any]:
    return {n: full_value(n, f) for _, group in descriptor.request.locations() for n, f in group.items()}


def size(fields: dict[str, Field]) -> int:
    return sum(1 + size(f.fields) + (size({"": f.items}) if f.items else 0) for f in fields.values())


def encrypted_count(fields: dict[str, Field]) -> int:
    return sum(
        f.encrypted + encrypted_count(f.fields) + (encrypted_count({"": f.items}) if f.items else 0)
        for f in fields.values()
    )


def largest(registry: Registry) -> Descriptor:
    candidates = [registry.get(i) for i in registry.ids()]
    json_bodies = [d for d in candidates if d.body_kind != "multipart" and d.protocol == "v3"]
    return max(json_bodies, key=lambda d: size({**d.request.path, **d.request.query, **d.request.body}))


def per_call_us(engine: Engine, endpoint: str, payload: Any, headers: dict[str, str], calls: int) -> float:
    async def run() -> float:
        for _ in range(200):
            await engine.acall(endpoint, payload, headers=headers)
        started = time.process_time()
        for _ in range(calls):
            await engine.acall(endpoint, payload, headers=headers)
        elapsed = time.process_time() - started
        return elapsed / calls * 1e6

    return asyncio.run(run())


def floor_us(identity: SandboxIdentity, answer: RawResponse, encrypted: int, calls: int) -> float:
    message = b"POST\n/v3/x\n1700000000\nnonce\n" + b"x" * 200 + b"\n"
    verify_message = response_message(
        answer.headers["Wechatpay-Timestamp"], answer.headers["Wechatpay-Nonce"], answer.body
    )
    public = identity.platform_key.public_key()
    started = time.process_time()
    for _ in range(calls):
        rsa_sign(identity.merchant_key, message)
        rsa_verify(public, verify_message, answer.headers["Wechatpay-Signature"])
        for _ in range(encrypted):
            oaep_encrypt(public, "110101199003074477")
    return (time.process_time() - started) / calls * 1e6


def case(identity: SandboxIdentity, descriptor: Descriptor, payload: Any, calls: int) -> dict[str, Any]:
    body = b'{"mchid":"1900000109"}'
    answer = signed_answer(200, body, identity.platform_public_key_id, identity.platform_key, int(time.time()))
    canned = MockTransport(lambda request: answer, record=False)
    engine = Engine(**identity.engine_settings(), transport=canned, load_entry_points=False)
    headers = {
        n: "header-value" for n, f in descriptor.request.header.items() if f.required and n != "Wechatpay-Serial"
    }
    fields = {**descriptor.request.query, **descriptor.request.body}
    encrypted = encrypted_count(fields)
    totals, floors = [], []
    for _ in range(ROUNDS):  # interleaved, so drift on a shared machine hits both sides alike
        totals.append(per_call_us(engine, descriptor.id, payload, headers, calls // ROUNDS))
        floors.append(floor_us(identity, answer, encrypted, calls // ROUNDS))
    return {
        "endpoint": descriptor.id,
        "fields": size(fields),
        "encrypted_fields": encrypted,
        "per_call_us": statistics.median(totals),
        "crypto_floor_us": statistics.median(floors),
        "overhead_us": statistics.median(t - f for t, f in zip(totals, floors, strict=True)),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=7000)
    args = parser.parse_args()
    identity = SandboxIdentity.generate()
    registry = Registry([BUILTIN_ENDPOINTS])
    big = largest(registry)
    results = {
        "seed": case(identity, registry.get(SEED), SEED_PAYLOAD, args.calls),
        "largest": case(identity, big, full_payload(big), args.calls),
    }
    targets = {"seed": 60.0, "largest": 150.0}
    table = [("case", "endpoint", "fields", "encrypted", "per call µs", "crypto floor µs", "overhead µs", "target")]
    for name, r in results.items():
        table.append(
            (
                name,
                r["endpoint"],
                str(r["fields"]),
                str(r["encrypted_fields"]),
                f"{r['per_call_us']:.1f}",
                f"{r['crypto_floor_us']:.1f}",
                f"{r['overhead_us']:.1f}",
                f"<= {targets[name]:.0f}",
            )
        )
    emit("overhead_inprocess", table, {"results": results, "targets_us": targets})


if __name__ == "__main__":
    main()
