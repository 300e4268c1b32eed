"""A third-party client, wechatpayv3 from PyPI, against ``wechatpay sandbox serve`` over HTTP.

wechatpayv3 has no documented way to choose its host: ``Core`` hard-codes
``https://api.mch.weixin.qq.com`` in the attribute ``_gate_way``, which is set here to the served
sandbox (the one undocumented thing this test relies on). Everything else is its public API:
``pay``, ``query``, ``refund`` and ``callback``. The order is paid with the real command,
``wechatpay sandbox pay``, which finds the server through the state dir.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest
from conftest import PATIENCE, wait_until
from wechatpayv3 import WeChatPay, WeChatPayType

WECHATPAY = Path(sys.executable).with_name("wechatpay")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[dict[str, Any], Path]]:
    process = subprocess.Popen(
        [str(WECHATPAY), "sandbox", "serve", "--state-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stdout.readline().startswith("WeChat Pay sandbox at")
        yield json.loads((tmp_path / "sandbox.json").read_text()), tmp_path
    finally:
        process.terminate()
        process.communicate(timeout=PATIENCE)  # also closes the pipes


class Receiver(BaseHTTPRequestHandler):
    """The merchant's notify_url: wechatpayv3 verifies and decrypts what arrives."""

    client: WeChatPay
    received: list[dict[str, Any]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        result = self.client.callback(dict(self.headers.items()), body)
        if result is not None:
            self.received.append(result)
        self.send_response(204 if result is not None else 401)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[type[Receiver], str]]:
    handler = type("Handler", (Receiver,), {"received": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield handler, f"http://127.0.0.1:{server.server_address[1]}/notify"
    server.shutdown()
    server.server_close()


def client(manifest: dict[str, Any], notify_url: str) -> WeChatPay:
    wxpay = WeChatPay(
        wechatpay_type=WeChatPayType.JSAPI,
        mchid=manifest["mchid"],
        private_key=Path(manifest["merchant_private_key_path"]).read_text(),
        cert_serial_no=manifest["merchant_serial_no"],
        appid="wxd678efh567hg6787",
        apiv3_key=manifest["apiv3_key"],
        notify_url=notify_url,
        public_key=Path(manifest["platform_public_key_path"]).read_text(),
        public_key_id=manifest["platform_public_key_id"],
    )
    wxpay._core._gate_way = manifest["base_url"]  # no documented host setting (see the module docstring)
    return wxpay


def test_wechatpayv3_orders_queries_is_paid_by_the_cli_and_receives_the_callback(served, receiver) -> None:
    manifest, state_dir = served
    handler, url = receiver
    wxpay = handler.client = client(manifest, url)
    code, message = wxpay.pay(
        description="沙箱测试",
        out_trade_no="V3-ORDER-1",
        amount={"total": 1},
        payer={"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
    )
    assert code == 200 and json.loads(message)["prepay_id"]
    code, message = wxpay.query(out_trade_no="V3-ORDER-1")
    answer = json.loads(message)
    assert code == 200 and answer["trade_state"] == "NOTPAY" and answer["amount"]["total"] == 1

    paid = subprocess.run(
        [str(WECHATPAY), "sandbox", "pay", "V3-ORDER-1", "--state-dir", str(state_dir)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert paid.returncode == 0, paid.stderr
    assert json.loads(paid.stdout)["callback"]["event_type"] == "TRANSACTION.SUCCESS"
    wait_until(lambda: handler.received)  # sent by the served sandbox, verified by wechatpayv3 in its thread
    (event,) = handler.received  # verified with the WeChat Pay public key, decrypted with the APIv3 key
    assert event["event_type"] == "TRANSACTION.SUCCESS"
    assert event["resource"]["out_trade_no"] == "V3-ORDER-1" and event["resource"]["trade_state"] == "SUCCESS"

    code, message = wxpay.query(out_trade_no="V3-ORDER-1")
    assert code == 200 and json.loads(message)["trade_state"] == "SUCCESS"
    code, message = wxpay.refund(
        out_refund_no="V3-REFUND-1", amount={"refund": 2, "total": 1, "currency": "CNY"}, out_trade_no="V3-ORDER-1"
    )
    refused = json.loads(message)
    assert code == 400 and refused["code"] == "INVALID_REQUEST" and "可退1分" in refused["message"]
    code, message = wxpay.refund(
        out_refund_no="V3-REFUND-2", amount={"refund": 1, "total": 1, "currency": "CNY"}, out_trade_no="V3-ORDER-1"
    )
    assert code == 200 and json.loads(message)["status"] == "PROCESSING"

    again = subprocess.run(
        [str(WECHATPAY), "sandbox", "pay", "V3-ORDER-1", "--state-dir", str(state_dir)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert again.returncode == 2 and again.stdout == ""
    assert again.stderr.strip().splitlines() == [again.stderr.strip()] and "order/V3-ORDER-1 is REFUND" in again.stderr
