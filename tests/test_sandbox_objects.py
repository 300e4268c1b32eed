"""The stateful sandbox: orders, refunds, contracts and transfers answer what was created."""

from __future__ import annotations

import gc
import weakref
from typing import Any, Callable

import pytest
from conftest import COMBINE_PAPAY, PAY_REDIRECT_SIGN, REAL_NAME

from engine import ApiError, Engine, RetryPolicy, UnknownEndpointError
from engine.examples import example_headers, example_payload
from engine.registry import BUILTIN_ENDPOINTS, Registry
from engine.sandbox import Sandbox
from engine.sandbox.faults import Fault
from engine.sandbox.flows import OPERATIONS, needs_object
from engine.sandbox.objects import RefusedError

JSAPI = "v3.pay.transactions.jsapi.post"
BY_NUMBER = "v3.pay.transactions.out_trade_no._out_trade_no_.get"
BY_ID = "v3.pay.transactions.id._transaction_id_.get"
CLOSE = "v3.pay.transactions.out_trade_no._out_trade_no_.close.post"
REFUND = "v3.refund.domestic.refunds.post"
REFUND_QUERY = "v3.refund.domestic.refunds._out_refund_no_.get"
TRANSFER = "v3.fund_app.mch_transfer.transfer_bills.post"
TRANSFER_QUERY = "v3.fund_app.mch_transfer.transfer_bills.out_bill_no._out_bill_no_.get"
TRANSFER_CANCEL = "v3.fund_app.mch_transfer.transfer_bills.out_bill_no._out_bill_no_.cancel.post"
MCHID = "1900000109"


def order(number: str = "T-1", total: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "appid": "wx2421b1c4370ec43b",
        "mchid": MCHID,
        "description": "沙箱测试商品",
        "out_trade_no": number,
        "notify_url": "https://merchant.example/notify",
        "amount": {"total": total, "currency": "CNY"},
        "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
        **extra,
    }


def refund(number: str, out_trade_no: str = "T-1", amount: int = 1, total: int = 1) -> dict[str, Any]:
    return {
        "out_trade_no": out_trade_no,
        "out_refund_no": number,
        "notify_url": "https://merchant.example/refunds",
        "amount": {"refund": amount, "total": total, "currency": "CNY"},
    }


TRANSFER_BILL = {
    "appid": "wx2421b1c4370ec43b",
    "out_bill_no": "B-1",
    "transfer_scene_id": "1000",
    "openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
    "user_name": "张三",
    "transfer_amount": 100,
    "transfer_remark": "新会员开通有礼",
    "notify_url": "https://merchant.example/transfers",
    "transfer_scene_report_infos": [{"info_type": "活动名称", "info_content": "新会员有礼"}],
}


def query(engine: Engine, number: str) -> dict[str, Any]:
    return engine.call(BY_NUMBER, {"out_trade_no": number, "mchid": MCHID}).data


def refused(call: Callable[[], Any]) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call()
    return caught.value


# -- orders ------------------------------------------------------------------------------------


def test_a_query_answers_what_was_created_not_the_catalogue_example(engine: Engine) -> None:
    created = engine.call(JSAPI, order("T-1", total=1)).data
    assert created["prepay_id"].startswith("wx")
    answer = query(engine, "T-1")
    assert answer["trade_state"] == "NOTPAY" and answer["amount"]["total"] == 1
    assert answer["appid"] == "wx2421b1c4370ec43b" and answer["mchid"] == MCHID and answer["trade_type"] == "JSAPI"
    assert "transaction_id" not in answer  # WeChat Pay has no transaction before the user pays


def test_paying_an_order_moves_it_to_success_and_queues_its_callback(engine: Engine) -> None:
    engine.call(JSAPI, order("T-2", total=250))
    callback = engine.emulator.world.pay("T-2")
    answer = query(engine, "T-2")
    assert answer["trade_state"] == "SUCCESS" and answer["amount"]["payer_total"] == 250 and answer["success_time"]
    by_id = engine.call(BY_ID, {"transaction_id": answer["transaction_id"], "mchid": MCHID}).data
    assert by_id["out_trade_no"] == "T-2" and by_id["trade_state"] == "SUCCESS"
    assert callback is not None and callback.event_type == "TRANSACTION.SUCCESS"
    assert callback.url == "https://merchant.example/notify" and callback.ref == "order/T-2"


def test_unknown_numbers_answer_404_as_wechatpay_does(engine: Engine) -> None:
    error = refused(lambda: query(engine, "NOPE"))
    assert (error.status, error.code) == (404, "ORDER_NOT_EXIST")
    error = refused(lambda: engine.call(REFUND_QUERY, {"out_refund_no": "NOPE"}))
    assert (error.status, error.code) == (404, "RESOURCE_NOT_EXISTS")
    error = refused(lambda: engine.call(TRANSFER_QUERY, {"out_bill_no": "NOPE"}))
    assert (error.status, error.code) == (404, "RESOURCE_NOT_EXISTS")


def test_closing_an_unpaid_order_and_refusing_to_close_a_paid_one(engine: Engine) -> None:
    engine.call(JSAPI, order("T-3"))
    assert engine.call(CLOSE, {"out_trade_no": "T-3", "mchid": MCHID}).status == 204
    assert query(engine, "T-3")["trade_state"] == "CLOSED"
    with pytest.raises(RefusedError, match="order/T-3 is CLOSED: it cannot become SUCCESS"):
        engine.emulator.world.pay("T-3")
    engine.call(JSAPI, order("T-4"))
    engine.emulator.world.pay("T-4")
    error = refused(lambda: engine.call(CLOSE, {"out_trade_no": "T-4", "mchid": MCHID}))
    assert (error.status, error.code) == (400, "ORDERPAID")


def test_a_failed_payment_is_payerror(engine: Engine) -> None:
    engine.call(JSAPI, order("T-5"))
    assert engine.emulator.world.pay("T-5", fail=True) is None  # WeChat Pay sends no callback for it
    assert query(engine, "T-5")["trade_state"] == "PAYERROR"


def test_a_repeated_create_answers_as_before_and_a_reused_number_is_refused(engine: Engine) -> None:
    first = engine.call(JSAPI, order("T-6")).data
    assert engine.call(JSAPI, order("T-6")).data == first
    error = refused(lambda: engine.call(JSAPI, order("T-6", total=2)))
    assert (error.status, error.code, error.message) == (400, "INVALID_REQUEST", "201 商户订单号重复")


@pytest.mark.parametrize("route", ["app", "h5", "native"])
def test_every_direct_order_kind_answers_its_own_fields(engine: Engine, route: str) -> None:
    endpoint = f"v3.pay.transactions.{route}.post"
    payload = {**example_payload(engine.endpoint(endpoint)), "out_trade_no": f"T-{route}", "mchid": MCHID}
    created = engine.call(endpoint, payload, headers=example_headers(engine.endpoint(endpoint))).data
    assert set(created) == set(engine.endpoint(endpoint).response) - {"mchid"}
    assert query(engine, f"T-{route}")["trade_type"] == {"app": "APP", "h5": "MWEB", "native": "NATIVE"}[route]


def test_partner_orders_are_queried_with_sp_and_sub_mchid(engine: Engine) -> None:
    endpoint = "v3.pay.partner.transactions.miniprogram.post"
    payload = {**example_payload(engine.endpoint(endpoint)), "out_trade_no": "P-1", "amount": {"total": 9}}
    engine.call(endpoint, payload, headers=example_headers(engine.endpoint(endpoint)))
    engine.emulator.world.pay("P-1")
    by_number = "v3.pay.partner.transactions.out_trade_no._out_trade_no_.get"
    answer = engine.call(by_number, {"out_trade_no": "P-1", "sp_mchid": "1", "sub_mchid": "2"}).data
    assert answer["trade_state"] == "SUCCESS" and answer["amount"]["total"] == 9
    assert answer["sp_mchid"] == payload["sp_mchid"] and answer["sub_mchid"] == payload["sub_mchid"]
    with pytest.raises(ApiError, match="ORDER_NOT_EXIST"):  # a direct order is another numbering space
        query(engine, "P-1")


def test_a_combined_order_pays_every_sub_order(engine: Engine) -> None:
    endpoint = "v3.combine_transactions.jsapi.post"
    payload = {**example_payload(engine.endpoint(endpoint)), "combine_out_trade_no": "C-1"}
    engine.call(endpoint, payload)
    get = "v3.combine_transactions.out_trade_no._combine_out_trade_no_.get"
    before = engine.call(get, {"combine_out_trade_no": "C-1"}).data
    assert {sub["trade_state"] for sub in before["sub_orders"]} == {"NOTPAY"}
    engine.emulator.world.pay("C-1")
    after = engine.call(get, {"combine_out_trade_no": "C-1"}).data
    assert {sub["trade_state"] for sub in after["sub_orders"]} == {"SUCCESS"}
    assert all(sub["transaction_id"] for sub in after["sub_orders"])


# -- refunds -----------------------------------------------------------------------------------


def test_refunds_are_limited_by_what_was_paid(engine: Engine) -> None:
    engine.call(JSAPI, order("T-10", total=100))
    error = refused(lambda: engine.call(REFUND, refund("R-0", "T-10", amount=10, total=100)))
    assert error.code == "INVALID_REQUEST" and "未支付" in error.message  # nothing paid yet
    engine.emulator.world.pay("T-10")
    first = engine.call(REFUND, refund("R-1", "T-10", amount=60, total=100)).data
    assert first["status"] == "PROCESSING" and first["amount"]["refund"] == 60
    assert query(engine, "T-10")["trade_state"] == "REFUND"
    error = refused(lambda: engine.call(REFUND, refund("R-2", "T-10", amount=41, total=100)))
    assert (error.status, error.code) == (400, "INVALID_REQUEST") and "可退40分" in error.message
    assert engine.call(REFUND, refund("R-3", "T-10", amount=40, total=100)).data["status"] == "PROCESSING"
    error = refused(lambda: engine.call(REFUND, refund("R-4", "T-10", amount=1, total=99)))
    assert "原订单金额为100分" in error.message
    error = refused(lambda: engine.call(REFUND, refund("R-5", "T-NONE")))
    assert (error.status, error.code) == (404, "RESOURCE_NOT_EXISTS")


def test_a_refund_settles_success_abnormal_or_closed_with_its_callback(engine: Engine) -> None:
    engine.call(JSAPI, order("T-11", total=3))
    engine.emulator.world.pay("T-11")
    for number, state in (("R-11", "SUCCESS"), ("R-12", "ABNORMAL"), ("R-13", "CLOSED")):
        engine.call(REFUND, refund(number, "T-11", total=3))
        callback = engine.emulator.world.settle_refund(number, state)
        assert callback is not None and callback.event_type == f"REFUND.{state}"
        assert engine.call(REFUND_QUERY, {"out_refund_no": number}).data["status"] == state
    with pytest.raises(RefusedError, match="refund/R-11 is SUCCESS"):
        engine.emulator.world.settle_refund("R-11", "CLOSED")


# -- contracts: the three seeds ----------------------------------------------------------------

CONTRACTS = [
    (
        "combine_papay.mini_program",
        COMBINE_PAPAY,
        "v3.ecommerce.combine_papay.contracts.plan_id._plan_id_.out_contract_code._out_contract_code_",
        {"plan_id": COMBINE_PAPAY["plan_id"]},
        "ECOMMERCE_ENTRUST",
    ),
    (
        "password_exempt.ecommerce.pay_redirect_sign",
        PAY_REDIRECT_SIGN,
        "v3.password_exempt_contract.contracts.service_id._service_id_.out_contract_code._out_contract_code_",
        {"service_id": PAY_REDIRECT_SIGN["service_id"]},
        "PAPAY",
    ),
]


@pytest.mark.parametrize(("seed", "payload", "address", "ids", "family"), CONTRACTS)
def test_a_contract_is_signed_then_terminated(
    engine: Engine, seed: str, payload: dict, address: str, ids: dict, family: str
) -> None:
    engine.call(seed, payload)
    lookup = {"out_contract_code": payload["out_contract_code"], **ids}
    error = refused(lambda: engine.call(f"{address}.get", lookup))
    assert (error.status, error.code) == (404, "RESOURCE_NOT_EXISTS")  # not signed yet: WeChat Pay knows nothing
    signed = engine.emulator.world.sign_contract(payload["out_contract_code"])
    assert signed is not None and signed.event_type == f"{family}.SIGN" and signed.url == payload["notify_url"]
    answer = engine.call(f"{address}.get", lookup).data
    assert answer["contract_state"] == "SIGNED" and answer["contract_id"] and answer["contract_signed_time"]
    engine.call(f"{address}.terminate.post", {**lookup, "contract_termination_remark": "用户不再使用"})
    answer = engine.call(f"{address}.get", lookup).data
    assert answer["contract_state"] == "TERMINATED"
    assert answer["contract_terminate_info"]["contract_termination_remark"] == "用户不再使用"
    assert engine.emulator.world.outbox.callbacks[-1].event_type == f"{family}.TERMINATE"
    error = refused(lambda: engine.call(f"{address}.terminate.post", {**lookup, "contract_termination_remark": "x"}))
    assert error.status == 400 and "TERMINATED" in error.message


def test_a_repeated_pre_sign_replaces_the_unsigned_contract_and_forgets_it(engine: Engine) -> None:
    store = engine.emulator.world.store
    engine.call("combine_papay.mini_program", COMBINE_PAPAY)
    (first,) = store.find(("contract",), COMBINE_PAPAY["out_contract_code"])
    first_id, forgotten = first.fields["contract_id"], weakref.ref(first)
    del first
    for _ in range(20):
        engine.call("combine_papay.mini_program", COMBINE_PAPAY)
    (latest,) = store.find(("contract",), COMBINE_PAPAY["out_contract_code"])
    assert store.by_id("contract_id", latest.fields["contract_id"]) is latest
    assert store.by_id("contract_id", first_id) is None  # the replaced pre-sign left the id index too
    gc.collect()
    assert forgotten() is None  # nothing holds it: twenty repeats cost one record, not twenty-one


def test_the_real_name_contract_is_authorised_once_signed(engine: Engine) -> None:
    engine.call("individual_contracts.real_name.mini_program", REAL_NAME)
    get = "v3.ecommerce.individual_contracts.out_contract_code._out_contract_code_.get"
    lookup = {"out_contract_code": REAL_NAME["out_contract_code"], "appid": REAL_NAME["appid"]}
    assert refused(lambda: engine.call(get, lookup)).status == 404
    assert engine.emulator.world.sign_contract(REAL_NAME["out_contract_code"]) is None  # it has no notify_url
    assert engine.call(get, lookup).data["auth_state"] == "AUTHORIZED"
    (record,) = engine.emulator.world.store.find(("contract",), REAL_NAME["out_contract_code"])
    assert record.secret == ("$.real_name", "$.cred_id")  # masked wherever the record is shown


# -- transfers ---------------------------------------------------------------------------------


def test_a_transfer_waits_for_the_user_then_succeeds(engine: Engine) -> None:
    created = engine.call(TRANSFER, TRANSFER_BILL).data
    assert created["state"] == "WAIT_USER_CONFIRM" and created["package_info"] and created["transfer_bill_no"]
    callback = engine.emulator.world.confirm_transfer("B-1")
    assert callback is not None and callback.event_type == "MCHTRANSFER.BILL.FINISHED"
    answer = engine.call(TRANSFER_QUERY, {"out_bill_no": "B-1"}).data
    assert answer["state"] == "SUCCESS" and answer["transfer_amount"] == 100 and answer["mch_id"] == MCHID
    assert answer["user_name"] == "张三"  # encrypted for the merchant on the wire, decrypted by the engine
    assert "张三".encode() not in engine.emulator.last.response.body
    by_bill = "v3.fund_app.mch_transfer.transfer_bills.transfer_bill_no._transfer_bill_no_.get"
    assert engine.call(by_bill, {"transfer_bill_no": created["transfer_bill_no"]}).data["out_bill_no"] == "B-1"


async def test_a_cancelled_transfer_is_canceling_then_cancelled(engine: Engine) -> None:
    await engine.acall(TRANSFER, TRANSFER_BILL)
    assert (await engine.acall(TRANSFER_CANCEL, {"out_bill_no": "B-1"})).data["state"] == "CANCELING"
    await engine.emulator.time.aadvance(0)
    assert (await engine.acall(TRANSFER_QUERY, {"out_bill_no": "B-1"})).data["state"] == "CANCELLED"
    with pytest.raises(RefusedError, match="transfer/B-1 is CANCELLED"):
        engine.emulator.world.confirm_transfer("B-1")


# -- paged lists, stateful ids, faults ---------------------------------------------------------


def test_a_paged_list_honours_offset_and_limit(engine: Engine) -> None:
    endpoint = "v3.merchant_service.complaints_v2.get"
    payload = {**example_payload(engine.endpoint(endpoint)), "offset": 20, "limit": 5}
    answer = engine.call(endpoint, payload).data
    assert (answer["data"], answer["total_count"], answer["offset"], answer["limit"]) == ([], 0, 20, 5)


def test_every_stateful_id_is_a_builtin_descriptor() -> None:
    registry = Registry([BUILTIN_ENDPOINTS])
    assert [i for i in OPERATIONS if i not in registry] == []


@pytest.mark.parametrize("endpoint_id", sorted(i for i in OPERATIONS if needs_object(i)))
def test_every_call_about_an_object_answers_404_for_an_unknown_one(engine: Engine, endpoint_id: str) -> None:
    descriptor = engine.endpoint(endpoint_id)
    error = refused(lambda: engine.call(endpoint_id, example_payload(descriptor), headers=example_headers(descriptor)))
    assert error.status == 404 and error.code in ("ORDER_NOT_EXIST", "RESOURCE_NOT_EXISTS")


@pytest.mark.parametrize(
    "name",
    [JSAPI, "combine_papay.mini_program", "POST /v3/pay/transactions/jsapi", "GET /v3/pay/transactions/out-trade-no/X"],
)
def test_a_fault_fires_whatever_name_it_was_registered_by(engine: Engine, name: str) -> None:
    fired = engine.emulator.faults.add(Fault.error(429), endpoint=name)
    assert fired in (JSAPI, BY_NUMBER, "v3.ecommerce.combine_papay.contracts.pre_entrust_sign.mini_program.post")
    once = RetryPolicy.never()  # a 429 is retried otherwise, and the next attempt succeeds
    target = {
        JSAPI: lambda: engine.call(JSAPI, order("T-F"), retry=once),
        BY_NUMBER: lambda: engine.call(BY_NUMBER, {"out_trade_no": "X", "mchid": MCHID}, retry=once),
    }.get(fired, lambda: engine.call("combine_papay.mini_program", COMBINE_PAPAY))
    assert refused(target).code == "RATELIMIT_EXCEEDED"


@pytest.mark.parametrize("name", ["combine_papay.mini_programme", "POST /v3/no/such/api", "v3.nothing.get"])
def test_a_fault_for_an_unknown_endpoint_is_refused(name: str) -> None:
    sandbox = Sandbox()
    with pytest.raises(UnknownEndpointError):
        sandbox.faults.add(Fault.error(500), endpoint=name)
    assert len(sandbox.faults) == 0


def test_records_keep_their_fields_out_of_reprs(engine: Engine) -> None:
    engine.call("individual_contracts.real_name.mini_program", REAL_NAME)
    (record,) = engine.emulator.world.store.find(("contract",), REAL_NAME["out_contract_code"])
    assert REAL_NAME["cred_id"] not in repr(record) and "contract" in repr(record)
