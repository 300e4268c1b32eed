"""Defaults from configuration, many merchants in one process, and the event catalogue with dispatch."""

from __future__ import annotations

import asyncio
import json

import pytest
from conftest import COMBINE_PAPAY, until

from engine import ApiError, ConfigurationError, Engine, Notification, Receiver, ValidationError
from engine.events import catalogue, sample_resource
from engine.registry import builtin_registry

# -- defaults --------------------------------------------------------------------------------


def test_defaults_fill_fields_the_descriptor_has_and_the_payload_leaves_out(make_engine) -> None:
    engine = make_engine(defaults={"appid": "wx-default", "notify_url": "https://d.example/n", "sub_mchid": "1"})
    payload = {k: v for k, v in COMBINE_PAPAY.items() if k not in ("appid", "notify_url")}
    engine.call("combine_papay.mini_program", payload)
    sent = engine.emulator.last.payload
    assert sent["appid"] == "wx-default" and sent["notify_url"] == "https://d.example/n"
    assert "sub_mchid" not in sent  # the descriptor has no such field: nothing is added
    assert "appid" not in payload  # the caller's dict is untouched


def test_the_payload_always_wins(make_engine) -> None:
    engine = make_engine(defaults={"appid": "wx-default"})
    engine.call("combine_papay.mini_program", COMBINE_PAPAY)
    assert engine.emulator.last.payload["appid"] == COMBINE_PAPAY["appid"]


def test_validation_sees_the_filled_payload(make_engine) -> None:
    engine = make_engine(defaults={"plan_id": "not-a-number"})
    payload = {k: v for k, v in COMBINE_PAPAY.items() if k != "plan_id"}
    with pytest.raises(ValidationError) as caught:
        engine.call("combine_papay.mini_program", payload)
    assert caught.value.errors == ("expected integer, got string @ $.plan_id",)
    without = make_engine()
    with pytest.raises(ValidationError, match=r"missing required field @ \$.plan_id"):
        without.call("combine_papay.mini_program", payload)


def test_defaults_fill_query_fields_too(make_engine) -> None:
    engine = make_engine(defaults={"mchid": "1900000109"})
    with pytest.raises(ApiError, match="ORDER_NOT_EXIST"):  # no order 4200 in the stateful sandbox
        engine.call("v3.pay.transactions.id._transaction_id_.get", {"transaction_id": "4200"})
    assert engine.emulator.last.request.target == "/v3/pay/transactions/id/4200?mchid=1900000109"


@pytest.mark.parametrize(
    ("defaults", "message"),
    [([("a", 1)], "defaults must be a mapping"), ({"": 1}, "non-empty strings"), ({"x": object()}, "not a JSON")],
)
def test_bad_defaults_are_refused_at_construction(make_engine, defaults, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        make_engine(defaults=defaults)


# -- many merchants --------------------------------------------------------------------------


def _two_merchants(identity) -> tuple[Engine, Engine]:
    from engine.sandbox import SandboxIdentity

    other = SandboxIdentity.generate(mchid="1900000222")
    first = Engine.sandbox(identity=identity, load_entry_points=False)
    second = Engine.sandbox(identity=other, load_entry_points=False)
    return first, second


def test_engines_share_the_builtin_registry_and_nothing_that_must_not_be_shared(identity) -> None:
    first, second = _two_merchants(identity)
    first.call("combine_papay.mini_program", COMBINE_PAPAY)
    assert first.registry._parent is second.registry._parent is builtin_registry()
    assert first.endpoint("combine_papay.mini_program") is second.endpoint("combine_papay.mini_program")
    assert first.credentials is not second.credentials and first.store is not second.store
    assert first.keyring is not second.keyring and first.runtime is not second.runtime
    first.register(_renamed(first), aliases=["mine.only"])  # an engine's own endpoint stays its own
    assert "mine.only" in first.registry.aliases() and "mine.only" not in second.registry.aliases()
    first.close()
    second.close()


def _renamed(engine: Engine):  # type: ignore[no-untyped-def]
    import attrs

    return attrs.evolve(engine.endpoint("combine_papay.mini_program"), id="v3.mine.post", path="/v3/mine")


async def test_engines_on_one_loop_share_the_http_connection_pool(identity) -> None:
    from engine.plugins.aiohttp_transport import shared_aiohttp_connector

    settings = identity.engine_settings()
    first, second = (Engine(**{**settings, "mchid": m}, base_url="http://127.0.0.1:9") for m in "12")
    one = first.runtime.transport()._client()  # type: ignore[attr-defined]
    two = second.runtime.transport()._client()  # type: ignore[attr-defined]
    assert one is not two and one.connector is two.connector is shared_aiohttp_connector(100)
    await first.aclose()
    assert not two.connector.closed  # closing one merchant's engine leaves the pool to the others
    await second.aclose()


def test_a_receiver_routes_by_path_key_before_verifying(identity) -> None:
    first, second = _two_merchants(identity)
    receiver = Receiver({"shop-a": first, "shop-b": second})
    seen: list[tuple[str, str]] = []
    receiver.on("TRANSACTION.SUCCESS")(lambda n: seen.append((n.mchid, n.resource["out_trade_no"])))
    for engine, key in ((first, "shop-a"), (second, "shop-b")):
        callback = engine.emulator.payment_succeeded(f"O-{key}")
        assert receiver.handle_sync(dict(callback.headers.items()), callback.body, merchant=key).status == 204
    callback = second.emulator.payment_succeeded("O-x")
    wrong = receiver.handle_sync(dict(callback.headers.items()), callback.body, merchant="shop-a")
    assert wrong.status == 401  # routed to the wrong merchant: its keys do not verify it
    unknown = receiver.handle_sync(dict(callback.headers.items()), callback.body, merchant="shop-z")
    assert unknown.status == 404 and json.loads(unknown.body)["code"] == "FAIL"
    assert seen == [(first.credentials.mchid, "O-shop-a"), (second.credentials.mchid, "O-shop-b")]


def test_a_receiver_routes_by_wechatpay_serial_without_a_key(identity) -> None:
    first, second = _two_merchants(identity)
    receiver = Receiver([first, second])
    seen: list[str] = []
    receiver.default(lambda n: seen.append(n.mchid))
    for engine in (second, first):
        callback = engine.emulator.payment_succeeded("O-1")
        assert receiver.handle_sync(dict(callback.headers.items()), callback.body).status == 204
    assert seen == [second.credentials.mchid, first.credentials.mchid]


def test_merchants_sharing_a_platform_key_are_told_apart_by_their_apiv3_key(identity) -> None:
    first = Engine.sandbox(identity=identity, load_entry_points=False)
    second = Engine.sandbox(identity=identity, mchid="1900000333", apiv3_key=b"1" * 32, load_entry_points=False)
    receiver = Receiver([second, first])
    seen: list[str] = []
    receiver.default(lambda n: seen.append(n.mchid))
    callback = first.emulator.payment_succeeded("O-1")  # encrypted under the first merchant's APIv3 key
    assert receiver.handle_sync(dict(callback.headers.items()), callback.body).status == 204
    assert seen == [first.credentials.mchid]


# -- the event catalogue and dispatch ---------------------------------------------------------

REQUIRED_EVENTS = [
    "TRANSACTION.SUCCESS",
    "REFUND.SUCCESS",
    "MCHTRANSFER.BILL.FINISHED",
    "MCHTRANSFER.BATCH.FINISHED",
    "MCHTRANSFER.BATCH.CLOSED",
    "PROFITSHARING.SUCCESS",
    "PROFITSHARING.RETURN",
    "FAPIAO.ISSUED",
    "FAPIAO.REVERSED",
    "FAPIAO.USER_APPLIED",
    "FAPIAO.CARD_INSERTED",
    "FAPIAO.CARD_DISCARDED",
    "VIOLATION.PUNISH",
    "VIOLATION.INTERCEPT",
    "VIOLATION.APPEAL",
    "ENTRUST.SIGN",
    "ENTRUST.TERMINATE",
    "INSURANCE_ENTRUST.SIGN",
    "INSURANCE_ENTRUST.TERMINATE",
    "INSURANCE_ENTRUST.RENEW",
    "VEHICLE.ENTRANCE_STATE_CHANGE",
    "VEHICLE.USER_STATE_CHANGE",
    "TRANSACTION.PAY_BACK",
    "PAYSCORE.USER_ACCEPTED",
]


def test_the_catalogue_lists_every_documented_event_including_those_the_webhooks_file_lacks() -> None:
    import os

    import yaml
    from test_catalogue import _catalogue_path

    names = set(catalogue().names())
    assert set(REQUIRED_EVENTS) <= names
    webhooks_file = _catalogue_path() / "v3" / "webhooks.yaml"
    if webhooks_file.is_file() or os.environ.get("CI") == "true":
        webhooks = yaml.safe_load(webhooks_file.read_text(encoding="utf-8"))
        assert set(webhooks["WechatpayNotificationEventType"]["enum"]) <= names  # nothing of the catalogue's lost
    for event in catalogue():
        assert event.resource_type == "encrypt-resource" and event.sources
        assert event.resource is None or isinstance(event.resource, dict)
    bill = catalogue()["MCHTRANSFER.BILL.FINISHED"]
    assert bill.original_type == "mch_payment" and {"out_bill_no", "transfer_bill_no", "state"} <= set(bill.resource)


@pytest.mark.parametrize("event_type", catalogue().names())
def test_the_sandbox_emits_every_event_and_the_receiver_dispatches_it(engine: Engine, event_type: str) -> None:
    receiver = Receiver(engine)
    got: list[Notification] = []
    receiver.on(event_type)(got.append)
    receiver.default(lambda n: pytest.fail(f"{n.event_type} reached the default handler"))
    callback = engine.emulator.event(event_type)
    assert receiver.handle_sync(dict(callback.headers.items()), callback.body).status == 204
    (notification,) = got
    known = catalogue()[event_type]
    assert notification.event_type == event_type and notification.summary == known.label
    assert notification.resource == sample_resource(known, **_mine(engine, known))


def _mine(engine: Engine, known) -> dict:  # type: ignore[no-untyped-def]
    shape = known.resource or {"mchid": "string"}
    return {name: engine.credentials.mchid for name in ("mchid", "sp_mchid") if name in shape}


def test_a_typo_in_an_event_type_fails_at_registration(engine: Engine) -> None:
    receiver = Receiver(engine)
    with pytest.raises(ConfigurationError, match=r"unknown notification event type 'REFUND.SUCESS'; did you mean"):
        receiver.on("REFUND.SUCESS")
    with pytest.raises(ConfigurationError, match=r"'NOPE\.\*'"):
        receiver.on("NOPE.*")
    receiver.on("BRAND_NEW.EVENT", known=False)(print)  # a name WeChat Pay added after this catalogue
    assert receiver.handler_for("BRAND_NEW.EVENT") is print


async def test_patterns_default_ignore_and_unhandled_events(engine: Engine) -> None:
    receiver = Receiver(engine)
    got: list[str] = []
    receiver.on("REFUND.*")(lambda n: got.append(n.event_type))
    receiver.ignore("REFUND.CLOSED")
    for event_type in ("REFUND.SUCCESS", "REFUND.ABNORMAL", "REFUND.CLOSED"):
        callback = engine.emulator.event(event_type)
        assert (await receiver.handle(dict(callback.headers.items()), callback.body)).status == 204
    assert got == ["REFUND.SUCCESS", "REFUND.ABNORMAL"]
    unhandled = engine.emulator.event("COMPLAINT.CREATE")  # no handler, no default: kept for a re-send
    headers = dict(unhandled.headers.items())
    reply = await receiver.handle(headers, unhandled.body)
    assert reply.status == 500 and json.loads(reply.body)["code"] == "FAIL"

    @receiver.default
    def anything(notification: Notification) -> None:
        got.append(notification.event_type)

    assert (await receiver.handle(headers, unhandled.body)).status == 204  # the re-send, once deployed
    assert got[-1] == "COMPLAINT.CREATE"


def test_async_and_sync_handlers_through_both_entry_points(engine: Engine) -> None:
    receiver = Receiver(engine)
    got: list[str] = []

    @receiver.on("TRANSACTION.SUCCESS")
    async def paid(notification: Notification) -> str:
        await asyncio.sleep(0)
        got.append("async")
        return "ignored"

    @receiver.on("REFUND.SUCCESS")
    def refunded(notification: Notification) -> str:
        got.append("sync")
        return "ignored"

    for event_type in ("TRANSACTION.SUCCESS", "REFUND.SUCCESS"):
        callback = engine.emulator.event(event_type)
        assert receiver.handle_sync(dict(callback.headers.items()), callback.body).status == 204
        callback = engine.emulator.event(event_type)
        assert asyncio.run(receiver.handle(dict(callback.headers.items()), callback.body)).status == 204
    assert got == ["async", "async", "sync", "sync"]


async def test_the_served_sandbox_emits_any_catalogued_event(identity) -> None:
    from aiohttp import web
    from aiohttp.test_utils import TestServer

    from engine.sandbox import Sandbox
    from engine.sandbox.server import SandboxServer

    engine = Engine(**identity.engine_settings(), base_url="http://127.0.0.1:9", load_entry_points=False)
    receiver = Receiver(engine)
    got: list[str] = []
    receiver.on("VIOLATION.PUNISH")(lambda n: got.append(n.resource["record_id"]))
    app = web.Application()
    app.router.add_post("/notify", receiver.aiohttp_handler())
    async with TestServer(app) as target, SandboxServer(Sandbox(identity)) as server:
        server.sandbox.notify_schedule = (0.01,)
        control = aiohttp_post(
            f"{server.base_url}/sandbox/notify",
            {"url": str(target.make_url("/notify")), "event_type": "VIOLATION.PUNISH"},
        )
        assert (await control) == 202
        await until(lambda: got)  # delivered over HTTP by the server's own task
    assert got == ["sandbox-record_id"]
    await engine.aclose()


async def aiohttp_post(url: str, payload: dict) -> int:
    import aiohttp

    async with aiohttp.ClientSession() as session, session.post(url, json=payload) as answer:
        return answer.status


def test_an_unroutable_callback_is_refused_with_404(identity) -> None:
    first, second = _two_merchants(identity)
    receiver = Receiver([first, second])
    receiver.default(print)
    callback = first.emulator.payment_succeeded("O-1")
    headers = {**dict(callback.headers.items()), "Wechatpay-Serial": "PUB_KEY_ID_0000"}
    reply = receiver.handle_sync(headers, callback.body)
    assert reply.status == 404 and json.loads(reply.body) == {"code": "FAIL", "message": "未知的商户"}
