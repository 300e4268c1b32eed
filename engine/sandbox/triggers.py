"""The event types the sandbox can send, and the callback resource each builds from an object.

Design decisions:

* **This is the seam to the shared event catalogue.** ``event_types()`` is the only place the
  sandbox learns which WeChat Pay notification types exist: their name, the kind of object and the
  states they report, the ``original_type`` of the encrypted resource, the summary, and a builder
  of the resource from an object. When the project's catalogue of every notification type lands
  (``engine/events.py``), this function becomes a lookup into it plus the resource builders below;
  nothing else in the sandbox names an event type.
* Names are WeChat Pay's (the catalogue's webhooks list): ``TRANSACTION.SUCCESS``,
  ``REFUND.SUCCESS/ABNORMAL/CLOSED``, ``PAPAY.SIGN/TERMINATE`` (the sandbox's existing contract
  callbacks), ``ECOMMERCE_ENTRUST.SIGN/TERMINATE`` (收付通合单代扣签约/解约, the combine-papay
  seed's own event) and ``MCHTRANSFER.BILL.FINISHED`` (a merchant transfer reached a final state).
* An event type belongs to kinds of object and to the states it reports; for contracts also to
  the products (scopes) that send it. ``for_transition`` picks the event a state change sends.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import attrs

from engine.sandbox.flows import view
from engine.sandbox.objects import Record, rfc3339

Resource = Callable[[Record, str], dict[str, Any]]


@attrs.frozen
class EventType:
    name: str
    kinds: tuple[str, ...]
    states: tuple[str, ...]  # the object states this event reports; the first is what a trigger moves to
    original_type: str
    summary: str
    resource: Resource = attrs.field(repr=False)
    scopes: Optional[tuple[str, ...]] = None  # None: every scope of the kind

    def concerns(self, record: Record) -> bool:
        return record.kind in self.kinds and (self.scopes is None or record.scope in self.scopes)


def _transaction(record: Record, mchid: str) -> dict[str, Any]:
    values = view(record)
    drop = ("notify_url", "time_expire", "description", "limit_pay", "support_fapiao", "settle_info")
    return {k: v for k, v in values.items() if k not in drop}


def _refund(record: Record, mchid: str) -> dict[str, Any]:
    values = view(record)
    keep = ("out_trade_no", "transaction_id", "out_refund_no", "refund_id", "user_received_account", "success_time")
    resource = {k: values[k] for k in keep if k in values}
    amount = values["amount"]
    resource.update(mchid=values.get("sub_mchid") or mchid, refund_status=record.state)
    resource["amount"] = {k: amount[k] for k in ("total", "refund", "payer_total", "payer_refund")}
    return resource


def _transfer(record: Record, mchid: str) -> dict[str, Any]:
    values = view(record)
    keep = (
        "out_bill_no",
        "transfer_bill_no",
        "state",
        "mch_id",
        "transfer_amount",
        "openid",
        "fail_reason",
        "create_time",
        "update_time",
    )
    return {k: values[k] for k in keep if k in values}


def _contract(record: Record, mchid: str) -> dict[str, Any]:
    values = view(record)
    resource = {
        "mchid": mchid,
        "change_type": "ADD" if record.state == "SIGNED" else "DELETE",
        "operate_time": rfc3339(record.updated_at),
        "contract_state": record.state,
    }
    for name in (
        "appid",
        "out_contract_code",
        "contract_id",
        "openid",
        "plan_id",
        "service_id",
        "contract_display_account",
        "contract_signed_time",
        "contract_terminate_info",
    ):
        if name in values:
            resource[name] = values[name]
    return resource


_CONTRACT_PAPAY = ("password_exempt", "individual")


def event_types() -> dict[str, EventType]:
    """Every event type the sandbox can send, by name (THE seam: see the module docstring)."""
    events = [
        EventType(
            "TRANSACTION.SUCCESS", ("order", "combine_order"), ("SUCCESS",), "transaction", "支付成功", _transaction
        ),
        EventType("REFUND.SUCCESS", ("refund",), ("SUCCESS",), "refund", "退款成功", _refund),
        EventType("REFUND.ABNORMAL", ("refund",), ("ABNORMAL",), "refund", "退款异常", _refund),
        EventType("REFUND.CLOSED", ("refund",), ("CLOSED",), "refund", "退款关闭", _refund),
        EventType(
            "MCHTRANSFER.BILL.FINISHED",
            ("transfer",),
            ("SUCCESS", "FAIL", "CANCELLED"),
            "mch_payment",
            "商家转账单据终态通知",
            _transfer,
        ),
        EventType("PAPAY.SIGN", ("contract",), ("SIGNED",), "papay", "签约成功", _contract, _CONTRACT_PAPAY),
        EventType("PAPAY.TERMINATE", ("contract",), ("TERMINATED",), "papay", "解约成功", _contract, _CONTRACT_PAPAY),
        EventType(
            "ECOMMERCE_ENTRUST.SIGN", ("contract",), ("SIGNED",), "entrust", "签约成功", _contract, ("combine_papay",)
        ),
        EventType(
            "ECOMMERCE_ENTRUST.TERMINATE",
            ("contract",),
            ("TERMINATED",),
            "entrust",
            "解约成功",
            _contract,
            ("combine_papay",),
        ),
    ]
    return {event.name: event for event in events}


def for_transition(record: Record, state: str) -> Optional[EventType]:
    """The event a change of ``record`` to ``state`` sends, if any."""
    for event in event_types().values():
        if event.concerns(record) and state in event.states:
            return event
    return None
