"""Short names: one per operation, by the rule in tools/names.py, committed in endpoints/aliases.yaml."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from engine.registry import BUILTIN_ENDPOINTS, Registry

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import names  # noqa: E402  (tools/names.py: the rule and its generator)

REGISTRY = Registry([BUILTIN_ENDPOINTS])
IDS = REGISTRY.ids()
SEEDS = {
    "combine_papay.mini_program": "v3.ecommerce.combine_papay.contracts.pre_entrust_sign.mini_program.post",
    "password_exempt.ecommerce.pay_redirect_sign": (
        "v3.password_exempt_contract.contracts.ecommerce.pre_entrust_sign.pay_redirect_sign.post"
    ),
    "individual_contracts.real_name.mini_program": (
        "v3.ecommerce.individual_contracts.pre_entrust_sign_with_real_name_identity.mini_program.post"
    ),
}


def test_the_committed_names_are_the_rules_output() -> None:
    committed = (BUILTIN_ENDPOINTS / "aliases.yaml").read_text(encoding="utf-8")
    assert committed == names.render(names.short_names(IDS)), "run: python tools/names.py"


def test_every_operation_has_one_unique_short_name_shorter_than_its_id() -> None:
    by_id: dict[str, list[str]] = {}
    for alias, target in REGISTRY.aliases().items():
        by_id.setdefault(target, []).append(alias)
    assert len(IDS) == 1155 and sorted(by_id) == IDS  # 1,019 APIv3 and 136 APIv2 operations
    assert all(len(found) == 1 for found in by_id.values())
    for endpoint_id, (name,) in by_id.items():
        assert len(name) < len(endpoint_id) and name not in IDS


def test_the_seed_names_are_unchanged() -> None:
    assert {alias: REGISTRY.aliases()[alias] for alias in SEEDS} == SEEDS


@pytest.mark.parametrize(
    ("endpoint_id", "name"),
    [
        ("v3.pay.transactions.out_trade_no._out_trade_no_.get", "pay.transactions.out_trade_no.get"),
        ("v3.pay.transactions.jsapi.post", "pay.transactions.jsapi"),
        ("v3.pay.transactions.id._transaction_id_.get", "pay.transactions.id._transaction_id_.get"),
        ("v3.refund.domestic.refunds._out_refund_no_.get", "refund.domestic.refunds._out_refund_no_.get"),
        ("hk.v3.refunds.post", "hk_refunds"),
        ("hk.v3.global.certificates.get", "hk_global.certificates.get"),
        ("global.v3.customs.orders.get", "global_customs.orders.get"),
        ("v3.global.customs.orders.get", "global.customs.orders.get"),
        ("v3.merchant.media.upload.post", "merchant.media.upload"),
    ],
)
def test_the_rule(endpoint_id: str, name: str) -> None:
    assert names.rule_name(endpoint_id) == name
    assert REGISTRY.get(name).id == endpoint_id


def test_every_short_name_resolves_to_its_operation() -> None:
    for alias, target in REGISTRY.aliases().items():
        assert REGISTRY.get(alias) is REGISTRY.get(target)


def test_a_clash_is_refused_not_written() -> None:
    with pytest.raises(ValueError, match="given twice"):
        names.short_names(["v3.a.b.post", "v3.a.b.post2"], pinned={"v3.a.b.post2": "a.b"})


def test_the_generator_reports_a_stale_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "v3.shop.orders.get.yaml").write_text("method: GET\npath: /v3/shop/orders\n", encoding="utf-8")
    assert names.main(["--dir", str(tmp_path), "--check"]) == 1
    assert names.main(["--dir", str(tmp_path)]) == 0
    assert names.main(["--dir", str(tmp_path), "--check"]) == 0
    assert (tmp_path / "aliases.yaml").read_text(encoding="utf-8").endswith("shop.orders.get: v3.shop.orders.get\n")
    capsys.readouterr()


def test_a_short_name_is_accepted_wherever_an_id_is(engine, tmp_path: Path) -> None:
    from engine import ApiError, RetryPolicy, Untyped
    from engine.sandbox.faults import Fault
    from engine.testing import Stubber

    name, endpoint_id = "pay.transactions.out_trade_no.get", "v3.pay.transactions.out_trade_no._out_trade_no_.get"
    payload = {"out_trade_no": "1217752501201407033233368018", "mchid": "1900000109"}
    engine.call(
        "pay.transactions.jsapi",
        {  # the stateful sandbox answers a query for an order it holds
            "appid": "wxd678efh567hg6787",
            "mchid": "1900000109",
            "description": "d",
            "notify_url": "https://x.example/n",
            "out_trade_no": payload["out_trade_no"],
            "amount": {"total": 1},
            "payer": {"openid": "o"},
        },
    )
    assert engine.endpoint(name).id == endpoint_id and engine.call(name, payload).endpoint_id == endpoint_id
    engine.emulator.faults.add(Fault.error(429), endpoint=name)  # a fault queued by short name
    with pytest.raises(ApiError) as refused:
        engine.call(endpoint_id, payload, retry=RetryPolicy.never())  # a 429 to a GET is otherwise retried
    assert refused.value.status == 429
    engine.download("bill.tradebill.get", {"bill_date": "2026-11-21"}, tmp_path / "bill.csv")
    assert (tmp_path / "bill.csv").read_text(encoding="utf-8").startswith("交易时间")
    with Stubber(engine) as stub:
        stub.add_response("pay.transactions.out_trade_no.close", {}, status=204)
        engine.call(Untyped("v3.pay.transactions.out_trade_no._out_trade_no_.close.post"), payload)
        stub.assert_no_pending_responses()


def test_a_fault_queued_by_short_name_is_resolved_once_not_looked_up_on_every_answer(identity, monkeypatch) -> None:
    """The plan queues a fault under the canonical id its name resolves to, so taking one (on every
    answer, under the plan's lock) compares ids: it used to look up every queued name again, each take."""
    from conftest import COMBINE_PAPAY

    from engine import ApiError, Engine, MockTransport, RetryPolicy
    from engine.sandbox import Sandbox
    from engine.sandbox.faults import Fault

    sandbox = Sandbox(identity)
    others = ["pay.transactions.jsapi", "refund.domestic.refunds"]  # queued first: taken past, never fired
    for name in others:
        sandbox.faults.add(Fault.error(503), endpoint=name)
    sandbox.faults.add(Fault.error(429), endpoint="combine_papay.mini_program")
    other_ids = [REGISTRY.get(name).id for name in others]
    looked_up: list[str] = []
    real_get = sandbox.registry.get
    monkeypatch.setattr(sandbox.registry, "get", lambda ref: looked_up.append(ref) or real_get(ref))
    engine = Engine(
        **identity.engine_settings(),
        transport=MockTransport(sandbox.handle),
        retry=RetryPolicy.never(),
        load_entry_points=False,
    )
    with pytest.raises(ApiError) as refused:
        engine.call("combine_papay.mini_program", COMBINE_PAPAY)
    engine.close()
    assert refused.value.status == 429  # the fault queued by short name fired on its operation
    assert [ref for ref in looked_up if ref in other_ids] == []
    assert [entry["endpoint"] for entry in sandbox.faults.pending()] == other_ids  # still waiting for theirs


def test_the_plain_reading_of_aliases_yaml_is_the_yaml_reading() -> None:
    import yaml

    from engine.registry import _read_aliases

    path = BUILTIN_ENDPOINTS / "aliases.yaml"
    assert _read_aliases(path) == yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("times", [0, -1, 1.5, True, "2"])
def test_a_fault_for_no_whole_number_of_calls_is_a_usage_error(times) -> None:
    from engine.errors import UsageError
    from engine.sandbox.faults import Fault, FaultPlan

    plan = FaultPlan()
    with pytest.raises(UsageError, match="times must be a whole number >= 1"):
        plan.add(Fault("not_json"), times=times)
    assert len(plan) == 0
