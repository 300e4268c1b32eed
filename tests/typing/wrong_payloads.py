"""Mistakes a type checker must report, each with the field's name (tests/test_typing.py reads the output).

Not run: every call here is wrong on purpose.
"""

from __future__ import annotations

from engine import Engine
from engine.types import CombinePapayMiniProgramPayload

RIGHT: CombinePapayMiniProgramPayload = {
    "appid": "wxd678efh567hg6787",
    "plan_id": 12535,
    "out_contract_code": "wxwtdk20200910100000",
    "contract_display_account": "微信代扣用户A",
    "notify_url": "https://yourapp.com/notify",
}


def call_form(engine: Engine) -> None:
    engine.call(
        "combine_papay.mini_program",
        {
            "appid": "wxd678efh567hg6787",
            "plan_id": "12535",  # wrong type
            "out_contract_code": "wxwtdk20200910100000",
            "contract_display_account": "微信代扣用户A",
            "notify_url": "https://yourapp.com/notify",
        },
    )
    engine.call("combine_papay.mini_program", {**RIGHT, "plan_idd": 12535})  # unknown key


def chain_form(engine: Engine) -> None:
    engine.v3.ecommerce.combine_papay.contracts.pre_entrust_sign.mini_program.post(
        json={
            "appid": "wxd678efh567hg6787",
            "plan_id": "12535",  # wrong type
            "out_contract_code": "wxwtdk20200910100000",
            "contract_display_account": "微信代扣用户A",
            "notify_url": "https://yourapp.com/notify",
        }
    )
    engine.v3.ecommerce.combine_papay.contracts.pre_entrust_sign.mini_program.post(
        json={
            "appid": "wxd678efh567hg6787",
            "plan_id": 12535,
            "out_contract_code": "wxwtdk20200910100000",
            "contract_display_account": "微信代扣用户A",
            "notify_url": "https://yourapp.com/notify",
            "plan_idd": 12535,  # unknown key
        }
    )


def typed_variable() -> CombinePapayMiniProgramPayload:
    return {**RIGHT, "plan_id": "12535"}  # wrong type in an annotated payload
