"""Which endpoints act on sandbox objects, and what WeChat Pay answers for each.

Design decisions:

* ``OPERATIONS`` is a table, endpoint id -> ``Operation(kind, verb, scope, lookup)``: the stateful
  endpoints are data, read by one handler per (kind, verb); every other endpoint keeps the
  schema-based answer. The ids are checked against the descriptors by a test.
* A handler returns the *values* of an answer (the object's view); the sandbox shapes them with the
  endpoint's response descriptor (``answers.success_body``), so answers hold exactly the documented
  fields, encrypted where the descriptor says so, with generated fillers only for what the object
  does not know.
* Refusals use WeChat Pay's codes: 404 ``ORDER_NOT_EXIST`` for orders, 404 ``RESOURCE_NOT_EXISTS``
  for the rest, 400 ``INVALID_REQUEST`` for a business rule (``201 商户订单号重复``, a refund above
  what remains refundable), 400 ``ORDERPAID`` to close a paid order.
* A create that repeats an earlier one exactly answers as the first did (WeChat Pay de-duplicates on
  the merchant's number); the same number with other parameters is refused.
* Paged lists (``offset``/``limit`` in the query, a ``data`` array in the answer) page over what
  exists: ``data``, ``total_count``, ``offset`` and ``limit`` agree with each other.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any, Callable, Optional

import attrs

from engine.descriptor import Descriptor
from engine.sandbox.objects import Record, RefusedError, new_id, parse_rfc3339, rfc3339

if TYPE_CHECKING:
    from engine.sandbox.world import World

Values = Optional[dict[str, Any]]


@attrs.frozen
class Operation:
    kind: str
    verb: str  # create | get | close | cancel | terminate | reprocess
    scope: str
    lookup: str = ""  # the payload field naming the object
    trade_type: str = ""  # orders: what the query answers as trade_type


ORDER_ROUTES = {"jsapi": "JSAPI", "app": "APP", "h5": "MWEB", "native": "NATIVE", "miniprogram": "JSAPI"}
CONTRACT_SEEDS = {
    "combine_papay": (
        "v3.ecommerce.combine_papay.contracts.pre_entrust_sign.mini_program.post",
        "v3.ecommerce.combine_papay.contracts.plan_id._plan_id_.out_contract_code._out_contract_code_",
    ),
    "password_exempt": (
        "v3.password_exempt_contract.contracts.ecommerce.pre_entrust_sign.pay_redirect_sign.post",
        "v3.password_exempt_contract.contracts.service_id._service_id_.out_contract_code._out_contract_code_",
    ),
    "individual": (
        "v3.ecommerce.individual_contracts.pre_entrust_sign_with_real_name_identity.mini_program.post",
        "v3.ecommerce.individual_contracts.out_contract_code._out_contract_code_",
    ),
}
TRADE_STATE_DESC = {
    "NOTPAY": "订单未支付",
    "SUCCESS": "支付成功",
    "CLOSED": "订单已关闭",
    "PAYERROR": "支付失败，请重新下单支付",
    "REFUND": "转入退款",
}


def _operations() -> dict[str, Operation]:
    ops: dict[str, Operation] = {}
    for scope, prefix, routes in (
        ("direct", "v3.pay.transactions", [r for r in ORDER_ROUTES if r != "miniprogram"]),
        ("partner", "v3.pay.partner.transactions", list(ORDER_ROUTES)),
    ):
        for route in routes:
            ops[f"{prefix}.{route}.post"] = Operation("order", "create", scope, trade_type=ORDER_ROUTES[route])
        ops[f"{prefix}.out_trade_no._out_trade_no_.get"] = Operation("order", "get", scope, "out_trade_no")
        ops[f"{prefix}.id._transaction_id_.get"] = Operation("order", "get", scope, "transaction_id")
        ops[f"{prefix}.out_trade_no._out_trade_no_.close.post"] = Operation("order", "close", scope, "out_trade_no")
    combine = "v3.combine_transactions"
    for route, trade_type in ORDER_ROUTES.items():
        ops[f"{combine}.{route}.post"] = Operation("combine_order", "create", "combine", trade_type=trade_type)
    ops[f"{combine}.out_trade_no._combine_out_trade_no_.get"] = Operation(
        "combine_order", "get", "combine", "combine_out_trade_no"
    )
    ops[f"{combine}.id._combine_transaction_id_.get"] = Operation(
        "combine_order", "get", "combine", "combine_transaction_id"
    )
    ops[f"{combine}.out_trade_no._combine_out_trade_no_.close.post"] = Operation(
        "combine_order", "close", "combine", "combine_out_trade_no"
    )
    refunds = "v3.refund.domestic.refunds"
    ops[f"{refunds}.post"] = Operation("refund", "create", "domestic")
    ops[f"{refunds}._out_refund_no_.get"] = Operation("refund", "get", "domestic", "out_refund_no")
    ops[f"{refunds}._refund_id_.apply_abnormal_refund.post"] = Operation("refund", "reprocess", "domestic", "refund_id")
    for scope, prefix in (("direct", "v3.fund_app.mch_transfer"), ("partner", "v3.fund_app.mch_transfer.partner")):
        bills = f"{prefix}.transfer_bills"
        ops[f"{bills}.post"] = Operation("transfer", "create", scope)
        ops[f"{bills}.out_bill_no._out_bill_no_.get"] = Operation("transfer", "get", scope, "out_bill_no")
        ops[f"{bills}.out_bill_no._out_bill_no_.cancel.post"] = Operation("transfer", "cancel", scope, "out_bill_no")
    ops["v3.fund_app.mch_transfer.transfer_bills.transfer_bill_no._transfer_bill_no_.get"] = Operation(
        "transfer", "get", "direct", "transfer_bill_no"
    )
    for scope, (create, address) in CONTRACT_SEEDS.items():
        ops[create] = Operation("contract", "create", scope)
        ops[f"{address}.get"] = Operation("contract", "get", scope, "out_contract_code")
        if scope != "individual":  # real-name authorisations have no terminate endpoint
            ops[f"{address}.terminate.post"] = Operation("contract", "terminate", scope, "out_contract_code")
    return ops


OPERATIONS = _operations()


def needs_object(endpoint_id: str) -> bool:
    """Whether the endpoint answers about an object that must exist first (else 404)."""
    operation = OPERATIONS.get(endpoint_id)
    return operation is not None and (operation.verb != "create" or operation.kind == "refund")


def is_paged(descriptor: Descriptor) -> bool:
    """A paged list: offset and limit in the query, a data array in the answer."""
    query = descriptor.request.query
    data = descriptor.response.get("data")
    return "offset" in query and "limit" in query and data is not None and data.type == "array"


def page(payload: dict[str, Any], items: list[Any]) -> dict[str, Any]:
    offset = max(_whole(payload.get("offset"), 0), 0)
    limit = max(_whole(payload.get("limit"), 10), 1)
    return {"data": items[offset : offset + limit], "total_count": len(items), "offset": offset, "limit": limit}


def _whole(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def answer(world: "World", operation: Operation, payload: dict[str, Any], now: float) -> tuple[int, Values]:
    """Serve one stateful call: (status, the answer's values); ``RefusedError`` for a WeChat Pay error."""
    handler = HANDLERS[(operation.kind, operation.verb)]
    return handler(world, operation, payload, now)


# -- orders ------------------------------------------------------------------------------------


def _create_order(world: "World", op: Operation, payload: dict[str, Any], now: float) -> tuple[int, Values]:
    kind, number_field = op.kind, "out_trade_no" if op.kind == "order" else "combine_out_trade_no"
    number = str(payload[number_field])
    existing = world.store.get(kind, op.scope, number)
    if existing is not None:
        return 200, _repeat(existing, payload, "201 商户订单号重复")
    prepay_id = "wx" + new_id("", 34)
    fields = {
        **payload,
        "trade_type": op.trade_type,
        "prepay_id": prepay_id,
        "code_url": f"weixin://wxpay/bizpayurl?pr={secrets.token_urlsafe(6)}",
        "h5_url": f"https://wx.tenpay.com/cgi-bin/mmpayweb-bin/checkmweb?prepay_id={prepay_id}",
    }
    if kind == "order":
        fields["transaction_id"] = new_id("42000", 23)
    else:
        fields["combine_transaction_id"] = new_id("42000", 23)
        fields["sub_orders"] = [{**sub, "transaction_id": new_id("42000", 23)} for sub in payload["sub_orders"]]
    expires = parse_rfc3339(str(payload.get("time_expire", ""))) or now + world.order_ttl
    world.create(kind, op.scope, number, fields, now, payload, due_at=expires)
    return 200, {"prepay_id": prepay_id, "code_url": fields["code_url"], "h5_url": fields["h5_url"]}


def _repeat(existing: Record, payload: dict[str, Any], refusal: str) -> dict[str, Any]:
    if existing.request != payload:
        raise RefusedError(400, "INVALID_REQUEST", refusal)
    return dict(existing.fields)


def _find(world: "World", op: Operation, payload: dict[str, Any]) -> Record:
    value = payload.get(op.lookup)
    record = world.store.get(op.kind, op.scope, str(value))
    if record is None and op.lookup in ("transaction_id", "combine_transaction_id", "refund_id", "transfer_bill_no"):
        found = world.store.by_id(op.lookup, value)
        record = found if found is not None and (found.kind, found.scope) == (op.kind, op.scope) else None
        if record is not None and op.kind in ("order", "combine_order") and record.state in ("NOTPAY", "CLOSED"):
            record = None  # WeChat Pay's transaction id exists once the user has paid
    if record is None or (op.kind == "contract" and not _contract_matches(record, payload)):
        code = "ORDER_NOT_EXIST" if op.kind in ("order", "combine_order") else "RESOURCE_NOT_EXISTS"
        raise RefusedError(404, code, NOT_FOUND[op.kind])
    return record


NOT_FOUND = {
    "order": "订单不存在",
    "combine_order": "订单不存在",
    "refund": "退款单不存在",
    "transfer": "转账单据不存在",
    "contract": "协议不存在",
}


def _get(world: "World", op: Operation, payload: dict[str, Any], now: float) -> tuple[int, Values]:
    return 200, view(_find(world, op, payload))


def _close_order(world: "World", op: Operation, payload: dict[str, Any], now: float) -> tuple[int, Values]:
    record = _find(world, op, payload)
    if record.state in ("SUCCESS", "REFUND"):
        raise RefusedError(400, "ORDERPAID", "订单已支付")
    if record.state != "CLOSED":
        world.transition(record, "CLOSED", now)
    return 204, None


def order_view(record: Record) -> dict[str, Any]:
    fields = record.fields
    paid = record.state in ("SUCCESS", "REFUND")
    shown = {k: v for k, v in fields.items() if k not in ("prepay_id", "code_url", "h5_url", "transaction_id")}
    amount = dict(fields.get("amount") or {})
    amount.setdefault("currency", "CNY")
    if paid:
        amount.update(payer_total=amount.get("total", 0), payer_currency=amount["currency"])
    state = {"trade_state": record.state, "trade_state_desc": TRADE_STATE_DESC[record.state], "amount": amount}
    if paid or record.state == "PAYERROR":
        state.update(transaction_id=fields["transaction_id"], bank_type="OTHERS")
    if paid:
        state["success_time"] = rfc3339(_entered(record, "SUCCESS"))
    return {**shown, **state}


def combine_view(record: Record) -> dict[str, Any]:
    paid = record.state == "SUCCESS"
    subs = []
    for sub in record.fields["sub_orders"]:
        amount = dict(sub.get("amount") or {})
        if paid:
            amount.update(payer_amount=amount.get("total_amount", 0), payer_currency=amount.get("currency", "CNY"))
        entry = {**sub, "trade_type": record.fields["trade_type"], "trade_state": record.state, "amount": amount}
        if not paid:
            entry.pop("transaction_id", None)
        else:
            entry.update(bank_type="OTHERS", success_time=rfc3339(_entered(record, "SUCCESS")))
        subs.append(entry)
    shown = {k: v for k, v in record.fields.items() if k not in ("prepay_id", "code_url", "h5_url")}
    return {**shown, "sub_orders": subs}


def _entered(record: Record, state: str) -> float:
    return next((at for at, s in reversed(record.history) if s == state), record.updated_at)


# -- refunds -----------------------------------------------------------------------------------


def _create_refund(world: "World", op: Operation, payload: dict[str, Any], now: float) -> tuple[int, Values]:
    number = str(payload["out_refund_no"])
    existing = world.store.get("refund", op.scope, number)
    if existing is not None:
        return 200, view_if_same(existing, payload)
    order = _refunded_order(world, payload)
    amount = payload["amount"]
    _check_refund_amount(world, order, amount)
    fields = {
        **payload,
        "refund_id": new_id("50", 30),
        "transaction_id": order.fields["transaction_id"],
        "out_trade_no": order.number,
        "channel": "ORIGINAL",
        "user_received_account": "支付用户零钱",
        "funds_account": payload.get("funds_account", "AVAILABLE"),
        "create_time": rfc3339(now),
        "amount": {
            "total": amount["total"],
            "refund": amount["refund"],
            "payer_total": amount["total"],
            "payer_refund": amount["refund"],
            "settlement_total": amount["total"],
            "settlement_refund": amount["refund"],
            "discount_refund": 0,
            "currency": amount.get("currency", "CNY"),
        },
    }
    record = world.create("refund", op.scope, number, fields, now, payload, due_at=now + world.refund_delay)
    world.transition(order, "REFUND", now)
    return 200, view(record)


def view_if_same(existing: Record, payload: dict[str, Any]) -> dict[str, Any]:
    _repeat(existing, payload, "商户退款单号重复，请使用新的退款单号")
    return view(existing)


def _refunded_order(world: "World", payload: dict[str, Any]) -> Record:
    candidates: list[Record] = []
    if payload.get("transaction_id"):
        found = world.store.by_id("transaction_id", payload["transaction_id"])
        candidates = [found] if found is not None and found.kind == "order" else []
    elif payload.get("out_trade_no"):
        candidates = world.store.find(("order",), str(payload["out_trade_no"]))
    if not candidates:
        raise RefusedError(404, "RESOURCE_NOT_EXISTS", "订单不存在")
    order = candidates[0]
    if order.state not in ("SUCCESS", "REFUND"):
        raise RefusedError(400, "INVALID_REQUEST", f"订单状态为{order.state}，未支付的订单不能退款")
    return order


def _check_refund_amount(world: "World", order: Record, amount: dict[str, Any]) -> None:
    total = int((order.fields.get("amount") or {}).get("total", 0))
    if amount["total"] != total:
        raise RefusedError(400, "INVALID_REQUEST", f"订单金额不一致：原订单金额为{total}分")
    if amount["refund"] <= 0:
        raise RefusedError(400, "PARAM_ERROR", "退款金额必须大于0")
    refunded = sum(  # the order's own refunds (a kept order keeps all of them: objects.py)
        int(r.fields["amount"]["refund"]) for r in world.store.children(order) if r.state != "CLOSED"
    )
    if amount["refund"] > total - refunded:
        raise RefusedError(400, "INVALID_REQUEST", f"申请退款金额超过订单可退金额（可退{total - refunded}分）")


def _reprocess_refund(world: "World", op: Operation, payload: dict[str, Any], now: float) -> tuple[int, Values]:
    record = _find(world, op, payload)
    world.transition(record, "PROCESSING", now, due_at=now + world.refund_delay, refusal=400)
    return 200, view(record)


def refund_view(record: Record) -> dict[str, Any]:
    values = {**record.fields, "status": record.state}
    if record.state == "SUCCESS":
        values["success_time"] = rfc3339(_entered(record, "SUCCESS"))
    return values


# -- transfers (the 2025 flow: the user confirms receipt) --------------------------------------


def _create_transfer(world: "World", op: Operation, payload: dict[str, Any], now: float) -> tuple[int, Values]:
    number = str(payload["out_bill_no"])
    existing = world.store.get("transfer", op.scope, number)
    if existing is not None:
        return 200, view_if_same(existing, payload)
    fields = {
        **payload,
        "transfer_bill_no": new_id("1330000", 24),
        "package_info": secrets.token_urlsafe(48),
        "create_time": rfc3339(now),
    }
    record = world.create("transfer", op.scope, number, fields, now, payload, due_at=now + world.transfer_ttl)
    return 200, view(record)


def _cancel_transfer(world: "World", op: Operation, payload: dict[str, Any], now: float) -> tuple[int, Values]:
    record = _find(world, op, payload)
    world.transition(record, "CANCELING", now, due_at=now, refusal=400)
    return 200, view(record)


def transfer_view(record: Record) -> dict[str, Any]:
    return {
        **record.fields,
        "mch_id": record.fields.get("mch_id"),
        "state": record.state,
        "update_time": rfc3339(record.updated_at),
    }


# -- pre-entrust-sign contracts ----------------------------------------------------------------


def _create_contract(world: "World", op: Operation, payload: dict[str, Any], now: float) -> tuple[int, Values]:
    number = str(payload["out_contract_code"])
    existing = world.store.get("contract", op.scope, number)
    if existing is not None and existing.state != "PRE_SIGN":
        raise RefusedError(400, "INVALID_REQUEST", f"协议号{number}已签约，请使用新的协议号")
    fields = {**payload, "pre_entrustweb_id": secrets.token_hex(16), "contract_id": new_id("2020", 20)}
    world.create("contract", op.scope, number, fields, now, payload)  # a new pre-sign replaces an unsigned one
    return 200, dict(fields)


def _contract_matches(record: Record, payload: dict[str, Any]) -> bool:
    """The plan or service in the path is the contract's own, and WeChat Pay knows it once signed."""
    for name in ("plan_id", "service_id"):
        if name in payload and payload[name] != record.fields.get(name):
            return False
    return record.state != "PRE_SIGN"


def _terminate_contract(world: "World", op: Operation, payload: dict[str, Any], now: float) -> tuple[int, Values]:
    record = _find(world, op, payload)
    remark = str(payload.get("contract_termination_remark", ""))
    world.terminate_contract(record, now, mode="MCH_API_TERMINATE", remark=remark, refusal=400)
    return 200, view(record)


def contract_view(record: Record) -> dict[str, Any]:
    values = {**record.fields, "contract_state": record.state}
    if record.state in ("SIGNED", "TERMINATED"):
        signed = _entered(record, "SIGNED")
        values.update(
            contract_signed_time=rfc3339(signed),
            signed_time=rfc3339(signed),
            contract_expired_time=rfc3339(signed + 5 * 365 * 86400),
            auth_state="AUTHORIZED",
            individual_openid=record.fields.get("openid"),
        )
    return values


HANDLERS: dict[tuple[str, str], Callable[["World", Operation, dict[str, Any], float], tuple[int, Values]]] = {
    ("order", "create"): _create_order,
    ("order", "get"): _get,
    ("order", "close"): _close_order,
    ("combine_order", "create"): _create_order,
    ("combine_order", "get"): _get,
    ("combine_order", "close"): _close_order,
    ("refund", "create"): _create_refund,
    ("refund", "get"): _get,
    ("refund", "reprocess"): _reprocess_refund,
    ("transfer", "create"): _create_transfer,
    ("transfer", "get"): _get,
    ("transfer", "cancel"): _cancel_transfer,
    ("contract", "create"): _create_contract,
    ("contract", "get"): _get,
    ("contract", "terminate"): _terminate_contract,
}
VIEWS: dict[str, Callable[[Record], dict[str, Any]]] = {
    "order": order_view,
    "combine_order": combine_view,
    "refund": refund_view,
    "transfer": transfer_view,
    "contract": contract_view,
}


def view(record: Record) -> dict[str, Any]:
    """What WeChat Pay knows about an object now: its fields with its state in the kind's own words."""
    return VIEWS[record.kind](record)
