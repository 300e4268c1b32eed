"""The README's framework recipes, each run with that framework's own test client."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi import FastAPI, Request, Response  # module level: FastAPI resolves the view's annotations here

from engine import Engine, Notification, Receiver


def _receiver(engine: Engine, received: list) -> Receiver:
    receiver = Receiver(engine)

    @receiver.on("TRANSACTION.SUCCESS")
    def paid(notification: Notification) -> None:
        received.append(notification.resource["out_trade_no"])

    return receiver


def _callbacks(engine: Engine) -> tuple[dict, bytes, dict]:
    good = engine.emulator.payment_succeeded("R-1", total=3)
    forged = {**dict(good.headers.items()), "Wechatpay-Signature": "WECHATPAY/SIGNTEST/x"}
    return dict(good.headers.items()), good.body, forged


async def test_aiohttp_recipe(engine: Engine) -> None:
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    received: list[str] = []
    app = web.Application()
    app.router.add_post("/wechatpay/notify", _receiver(engine, received).aiohttp_handler())
    headers, body, forged = _callbacks(engine)
    async with TestClient(TestServer(app)) as client:
        first = await client.post("/wechatpay/notify", data=body, headers=headers)
        again = await client.post("/wechatpay/notify", data=body, headers=headers)
        bad = await client.post("/wechatpay/notify", data=body, headers=forged)
        assert (first.status, again.status, bad.status) == (204, 204, 401)
        assert await bad.json() == {"code": "FAIL", "message": "签名验证失败"}
    assert received == ["R-1"]


def test_fastapi_recipe(engine: Engine) -> None:
    from fastapi.testclient import TestClient

    received: list[str] = []
    receiver = _receiver(engine, received)
    app = FastAPI()

    @app.post("/wechatpay/notify")
    async def notify(request: Request) -> Response:
        reply = await receiver.handle(request.headers, await request.body())
        return Response(reply.body, reply.status, dict(reply.headers))

    headers, body, forged = _callbacks(engine)
    with TestClient(app) as client:
        statuses = [client.post("/wechatpay/notify", content=body, headers=h).status_code for h in (headers, headers)]
        bad = client.post("/wechatpay/notify", content=body, headers=forged)
    assert statuses == [204, 204] and bad.status_code == 401 and bad.json()["code"] == "FAIL"
    assert received == ["R-1"]


def test_flask_recipe(engine: Engine) -> None:
    from flask import Flask, request

    received: list[str] = []
    receiver = _receiver(engine, received)
    app = Flask(__name__)

    @app.post("/wechatpay/notify")
    def notify() -> Any:
        reply = receiver.handle_sync(request.headers, request.get_data())
        return reply.body, reply.status, dict(reply.headers)

    headers, body, forged = _callbacks(engine)
    client = app.test_client()
    statuses = [client.post("/wechatpay/notify", data=body, headers=h).status_code for h in (headers, headers)]
    bad = client.post("/wechatpay/notify", data=body, headers=forged)
    assert statuses == [204, 204] and bad.status_code == 401 and json.loads(bad.data)["code"] == "FAIL"
    assert received == ["R-1"]


@pytest.fixture
def django_settings() -> Any:
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(DEBUG=False, ALLOWED_HOSTS=["testserver"], ROOT_URLCONF=__name__, SECRET_KEY="test")
        django.setup()
    return settings


def test_django_recipe(engine: Engine, django_settings: Any) -> None:
    import types

    from django.http import HttpResponse
    from django.test import Client, override_settings
    from django.urls import path
    from django.views.decorators.csrf import csrf_exempt

    received: list[str] = []
    receiver = _receiver(engine, received)

    @csrf_exempt
    def notify(request: Any) -> HttpResponse:
        reply = receiver.handle_sync(request.headers, request.body)
        return HttpResponse(reply.body, status=reply.status, headers=reply.headers)

    urls = types.ModuleType("wechatpay_urls")  # a urls.py of its own, in memory
    urls.urlpatterns = [path("wechatpay/notify", notify)]  # type: ignore[attr-defined]
    headers, body, forged = _callbacks(engine)
    with override_settings(ROOT_URLCONF=urls):
        client = Client(enforce_csrf_checks=True)  # the view is exempt, as WeChat Pay sends no token

        def post(h: dict) -> Any:
            return client.post("/wechatpay/notify", data=body, content_type="application/json", headers=h)

        statuses = [post(headers).status_code, post(headers).status_code]
        bad = post(forged)
    assert statuses == [204, 204] and bad.status_code == 401 and json.loads(bad.content)["code"] == "FAIL"
    assert received == ["R-1"]
