"""The chainable addressing styles, sync and async, on the same validated, verified executor."""

from __future__ import annotations

import pytest
from conftest import COMBINE_PAPAY

from engine import ApiError, Descriptor, Engine, Field, RequestSpec, UsageError, ValidationError

SEED = "v3.ecommerce.combine_papay.contracts.pre_entrust_sign.mini_program.post"
# Not the order query: the sandbox answers that from the orders it holds (404 for a made-up id).
QUERY_ORDER = Descriptor(
    id="v3.edu_papay.transactions.id._transaction_id_.get",
    method="GET",
    path="/v3/edu-papay/transactions/id/{transaction_id}",
    request=RequestSpec(path={"transaction_id": Field(required=True)}, query={"sub_mchid": Field(required=True)}),
    response={"transaction_id": Field(required=True)},
)


def _styles(engine: Engine):
    return {
        "attributes": engine.v3.ecommerce.combine_papay.contracts.pre_entrust_sign.mini_program,
        "chain": engine.chain("v3/ecommerce/combine-papay/contracts/pre-entrust-sign/mini-program"),
        "item": engine["v3/ecommerce/combine-papay/contracts/pre-entrust-sign/mini-program"],
    }


@pytest.mark.parametrize("style", ["attributes", "chain", "item"])
def test_styles_sync(engine: Engine, style: str) -> None:
    response = _styles(engine)[style].post(json=COMBINE_PAPAY)
    assert response.status == 200 and response.endpoint_id == SEED and response.verified_with
    with pytest.raises(ValidationError, match=r"missing required field @ \$\.appid"):
        _styles(engine)[style].post(json={k: v for k, v in COMBINE_PAPAY.items() if k != "appid"})


@pytest.mark.parametrize("style", ["attributes", "chain", "item"])
async def test_styles_async(engine: Engine, style: str) -> None:
    response = await _styles(engine)[style].apost(json=COMBINE_PAPAY)
    assert response.status == 200 and response.endpoint_id == SEED
    await engine.aclose()


@pytest.mark.parametrize("value", ["4200/../x?y#z", "100%", "普通", "a b"])
def test_path_parameters_by_name_are_encoded(engine: Engine, value: str) -> None:
    engine.register(QUERY_ORDER)
    query = {"sub_mchid": "1"}
    via_attributes = engine.v3.edu_papay.transactions.id._transaction_id_.get(transaction_id=value, query=query)
    via_item = engine["v3/edu-papay/transactions/id/{transaction_id}"].get(transaction_id=value, query=query)
    assert via_attributes.data["transaction_id"] == via_item.data["transaction_id"] == value
    target = engine.emulator.last.request.target
    assert target.startswith("/v3/edu-papay/transactions/id/") and target.count("/") == 5 and "#" not in target


async def test_path_parameters_async(engine: Engine) -> None:
    engine.register(QUERY_ORDER)
    chain = engine.v3.edu_papay.transactions.id._transaction_id_
    response = await chain.aget(transaction_id="4200", query={"sub_mchid": "1"})
    assert engine.emulator.last.request.target == "/v3/edu-papay/transactions/id/4200?sub_mchid=1"
    assert response.data["transaction_id"] == "4200"
    await engine.aclose()


def test_undescribed_chain_is_signed_sent_and_verified(engine: Engine) -> None:
    with pytest.raises(ApiError) as caught:
        engine.v3.not_described.items._item_id_.delete(item_id="a/b")
    assert caught.value.status == 404 and caught.value.verified
    assert engine.emulator.last.request.method == "DELETE"
    assert engine.emulator.last.request.target == "/v3/not-described/items/a%2Fb"  # attribute _ -> -, value encoded


def test_missing_path_value_is_refused_before_sending(engine: Engine) -> None:
    with pytest.raises(UsageError, match=r"the path needs a value for \{item_id\}"):
        engine["v3/not/described/{item_id}"].get()
    assert engine.emulator.exchanges == []


def test_positional_payload_and_keywords_merge(engine: Engine) -> None:
    head = {k: COMBINE_PAPAY[k] for k in ("appid", "plan_id")}
    tail = {k: v for k, v in COMBINE_PAPAY.items() if k not in head}
    assert _styles(engine)["chain"].post(head, json=tail).status == 200
    with pytest.raises(UsageError, match="either positionally"):
        _styles(engine)["chain"].post([1], json=tail)


def test_chain_repr_and_dunder_safety(engine: Engine) -> None:
    assert repr(engine.v3.pay.transactions) == "<Chain /v3/pay/transactions>"
    with pytest.raises(AttributeError):
        engine.v3.__wrapped__  # noqa: B018 - dunder lookups must not build chains (copy, pickle, inspect)
