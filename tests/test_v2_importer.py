"""The APIv2 importer's rules, on a catalogue written here, and what it made of the real one."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from engine.registry import BUILTIN_ENDPOINTS, Registry
from tools.import_catalogue import import_catalogue
from tools.import_catalogue_v2 import ONE_OF, import_catalogue_v2, main_import

QUERY = """
post:
  x-api-cert-required: true
  x-base-uri: https://fraud.mch.weixin.qq.com/
  summary: 查询订单
  description: 一段不该复制的说明
  consumes: [application/xml]
  produces: [application/xml]
  parameters:
    - name: _
      in: body
      required: true
      schema:
        type: object
        xml:
          name: xml
        required: [appid, mch_id, transaction_id, out_trade_no, nonce_str, sign]
        properties:
          appid: {type: string, maxLength: 32, description: 公众账号ID}
          mch_id: {type: string, maxLength: 32}
          transaction_id: {type: string, maxLength: 32}
          out_trade_no: {type: '20150806125346'}
          nonce_str: {type: string, maxLength: 32}
          sign: {type: string, maxLength: 32, xml: {x-cdata: true}}
          sign_type: {type: string, maxLength: 10, enum: [MD5, HMAC-SHA256]}
          detail: {type: string, format: base64, x-json: {type: object}}
  responses:
    '200':
      schema:
        allOf:
          - type: object
            required: [return_code]
            properties:
              return_code: {type: string, enum: [SUCCESS, FAIL]}
          - type: object
            required: [sign, err_code]
            properties:
              sign: {type: string}
              err_code: {type: string}
              total_fee: {type: integer, format: int32}
"""
REDPACK = """
post:
  summary: 发放普通红包
  parameters:
    - name: _
      in: body
      schema:
        type: object
        required: [mch_billno, mch_id, wxappid, nonce_str, sign]
        properties:
          mch_billno: {type: string}
          mch_id: {type: string}
          wxappid: {type: string}
          nonce_str: {type: string}
          sign: {type: string, maxLength: 32}
  responses:
    '200':
      schema:
        type: object
        properties:
          return_code: {type: string}
"""


def _write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    root = tmp_path / "catalogue"
    for top in ("v3", "hk", "global"):
        (root / top).mkdir(parents=True)
    _write(root, "v2/pay/orderquery.yaml", QUERY)
    _write(root, "v2/mmpaymkttransfers/sendredpack.yaml", REDPACK)
    return root


def test_the_rules_in_small(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    report = import_catalogue_v2(tiny, out)
    assert [w.id for w in report.written] == ["v2.mmpaymkttransfers.sendredpack.post", "v2.pay.orderquery.post"]
    assert report.unexpressed == []
    text = (out / "v2.pay.orderquery.post.yaml").read_text(encoding="utf-8")
    assert text.startswith("# Facts from the wechatpay-openapi catalogue (MIT): v2/pay/orderquery.yaml\n")
    assert "不该复制" not in text
    query = Registry([out]).get("v2.pay.orderquery.post")
    assert (query.path, query.protocol, query.body_kind, query.host) == ("/pay/orderquery", "v2", "xml", "fraud")
    assert query.client_certificate and query.signed_answer and not query.redirect
    assert query.fills == {
        "mch_id": "merchant_id",
        "appid": "appid",
        "nonce_str": "nonce",
        "sign_type": "sign_type",
        "sign": "signature",
    }
    assert query.one_of == (("transaction_id", "out_trade_no"),)
    body = query.request.body
    assert not body["transaction_id"].required and not body["out_trade_no"].required
    assert body["out_trade_no"].type == "string" and body["out_trade_no"].example == "20150806125346"
    assert body["sign"].max_length is None and body["sign_type"].max_length is None  # 64-char HMAC signs fit
    assert not body["detail"].encrypted  # APIv2 base64 is not APIv3's field encryption
    assert query.response["total_fee"].type == "integer" and not query.response["err_code"].required
    redpack = Registry([out]).get("v2.mmpaymkttransfers.sendredpack.post")
    assert not redpack.signed_answer and redpack.fills["wxappid"] == "appid"
    assert redpack.request.body["sign"].max_length == 32  # MD5 only: its limit is right
    assert redpack.idempotency is not None and redpack.idempotency.key == "mch_billno"
    reasons = [problem.reason for problem in report.repaired]
    assert any("is an example value" in r for r in reasons) and any("under its own enum" in r for r in reasons)
    assert "/mmpaymkttransfers/sendredpack: signed_answer false" in report.traits


def test_each_importer_keeps_to_its_own_files(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "v2.gone.post.yaml").write_text("# stale\n", encoding="utf-8")
    (out / "v3.gone.get.yaml").write_text("# stale\n", encoding="utf-8")
    v2 = import_catalogue_v2(tiny, out)
    assert v2.removed == ["v2.gone.post.yaml"] and (out / "v3.gone.get.yaml").exists()
    v3 = import_catalogue(tiny, out)
    assert v3.removed == ["v3.gone.get.yaml"]
    assert sorted(p.name for p in out.glob("v2.*")) == [
        "v2.mmpaymkttransfers.sendredpack.post.yaml",
        "v2.pay.orderquery.post.yaml",
    ]
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert import_catalogue_v2(tiny, out).removed == []
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before  # unchanged files are not rewritten


def test_console_entry(tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main_import([str(tiny), "--out", str(tmp_path / "out")]) == 0
    assert capsys.readouterr().out.startswith("imported 2 operations from 2 files")
    assert main_import([str(tmp_path / "nowhere")]) == 2


def test_the_real_catalogue_as_committed() -> None:
    builtins = Registry([BUILTIN_ENDPOINTS])
    v2 = [builtins.get(i) for i in builtins.ids() if i.startswith("v2.")]
    assert len(v2) == 136 and {d.protocol for d in v2} == {"v2"}
    assert sum(d.client_certificate for d in v2) == 57  # x-api-cert-required: true
    unsigned = {d.path for d in v2 if not d.signed_answer}
    assert {"/mmpaymkttransfers/sendredpack", "/pay/downloadbill", "/risk/getpublickey"} <= unsigned
    assert {d.host for d in v2} == {None, "fraud", "payapp", "payapp_mch"}
    for path, groups in ONE_OF.items():
        assert builtins.match("POST", path).one_of == groups
