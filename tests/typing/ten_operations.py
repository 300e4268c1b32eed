"""A user script: ten operations in every typed form. Type-checked (mypy --strict, pyright strict) and run.

tests/test_typing.py checks that both type checkers pass it without a single error and times them;
it also runs it against the sandbox, so every payload here is one WeChat Pay would take.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import assert_type

from engine import Engine, Response, Untyped
from engine.types import (
    CombinePapayMiniProgramAnswer,
    PayTransactionsJsapiAnswer,
    PayTransactionsJsapiPayload,
    PayTransactionsOutTradeNoGetAnswer,
    RefundDomesticRefundsAnswer,
)


def pay(engine: Engine) -> str:
    order: PayTransactionsJsapiPayload = {
        "appid": "wxd678efh567hg6787",
        "mchid": "1900000109",
        "description": "Image形象店-深圳腾大-QQ公仔",
        "out_trade_no": "1217752501201407033233368018",
        "notify_url": "https://www.weixin.qq.com/wxpay/pay.php",
        "amount": {"total": 100, "currency": "CNY"},
        "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
    }
    created = engine.call("pay.transactions.jsapi", order)  # 1: short name
    assert_type(created, Response[PayTransactionsJsapiAnswer])
    return created.data["prepay_id"]


def sign_contracts(engine: Engine) -> None:
    contract = engine.call(  # 2: a seed, by short name
        "combine_papay.mini_program",
        {
            "appid": "wxd678efh567hg6787",
            "plan_id": 12535,
            "out_contract_code": "wxwtdk20200910100000",
            "contract_display_account": "微信代扣用户A",
            "notify_url": "https://yourapp.com/notify",
        },
    )
    assert_type(contract.data, CombinePapayMiniProgramAnswer)
    print(contract.data["pre_entrustweb_id"].upper())
    engine.call(  # 3: a seed, by canonical id
        "v3.password_exempt_contract.contracts.ecommerce.pre_entrust_sign.pay_redirect_sign.post",
        {
            "appid": "wxd678efh567hg6787",
            "service_id": 12535,
            "out_contract_code": "wxwtdk20200910100000",
            "notify_url": "https://yourapp.com/notify",
            "contract_display_account": "微信代扣用户A",
            "prepay_id": "wx201410272009395522657a690389285100",
            "openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
        },
    )


def query_and_refund(engine: Engine) -> int:
    # 4: the attribute chain; path values as keywords, the query as query=
    found = engine.v3.pay.transactions.out_trade_no._out_trade_no_.get(
        out_trade_no="1217752501201407033233368018", query={"mchid": "1900000109"}
    )
    assert_type(found.data, PayTransactionsOutTradeNoGetAnswer)
    state = found.data.get("trade_state", "")
    # 5: engine.chain(path) with a catalogue path
    by_id = engine.chain("v3/pay/transactions/id/{transaction_id}").get(
        transaction_id=found.data.get("transaction_id", ""), query={"mchid": "1900000109"}
    )
    print(state, by_id.data["appid"])
    # 6: engine[path]
    refund = engine["v3/refund/domestic/refunds"].post(
        json={
            "out_trade_no": "1217752501201407033233368018",
            "out_refund_no": "1217752501201407033233368019",
            "amount": {"refund": 100, "total": 100, "currency": "CNY"},
        }
    )
    assert_type(refund.data, RefundDomesticRefundsAnswer)
    return refund.data["amount"]["refund"]


def upload_and_bill(engine: Engine, logo: Path) -> None:
    media = engine.call("merchant.media.upload", {"file": logo})  # 7: an upload, the file as a path
    print(media.data["media_id"])
    bill = engine.call("bill.tradebill.get", {"bill_date": "2026-11-21", "bill_type": "ALL"})  # 8: enums
    print(bill.data["download_url"])


def close(engine: Engine) -> None:
    # 9: a payload with a path parameter and a body field, in the call form (an order nobody paid)
    engine.call("pay.transactions.jsapi", {**_order(), "out_trade_no": "1217752501201407033233368020"})
    engine.call(
        "pay.transactions.out_trade_no.close", {"out_trade_no": "1217752501201407033233368020", "mchid": "1900000109"}
    )


async def asynchronous(engine: Engine) -> None:
    answer = await engine.acall(  # 10: async, by short name
        "individual_contracts.real_name.mini_program",
        {
            "appid": "wxd678efh567h23787",
            "out_contract_code": "APPLYMENT_00000000001",
            "openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
            "real_name": "张三",
            "cred_type": "ID_CARD",
            "cred_id": "110101199003074477",
        },
    )
    print(answer.data["pre_entrustweb_id"])
    again = await engine.v3.pay.transactions.jsapi.apost(json={**_order(), "out_trade_no": "2"})
    print(again.data["prepay_id"])


def _order() -> PayTransactionsJsapiPayload:
    return {
        "appid": "wxd678efh567hg6787",
        "mchid": "1900000109",
        "description": "d",
        "out_trade_no": "1",
        "notify_url": "https://x.example/notify",
        "amount": {"total": 1},
        "payer": {"openid": "o"},
    }


def undescribed(engine: Engine, name: str) -> object:
    # A name only known at run time: the explicit untyped path (an Any payload, a Response[Any]).
    answer = engine.call(Untyped(name), {**_order(), "out_trade_no": "3"})
    return answer.data


def main() -> None:
    logo = Path("logo.png")
    logo.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    with Engine.sandbox() as engine:
        print(pay(engine))
        engine.emulator.world.pay("1217752501201407033233368018")  # the payer pays, in the sandbox
        sign_contracts(engine)
        print(query_and_refund(engine))
        upload_and_bill(engine, logo)
        close(engine)
        asyncio.run(asynchronous(engine))
        print(undescribed(engine, "pay.transactions.jsapi"))


if __name__ == "__main__":
    main()
