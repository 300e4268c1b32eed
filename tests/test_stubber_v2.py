"""``engine.testing.Stubber`` on APIv2 operations: signed XML answers, FAIL answers, expected payloads."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import COMBINE_PAPAY, MICROPAY
from test_testing_toolkit import WireWatcher

from engine import (
    ConfigurationError,
    Engine,
    Reconcile,
    ResultCodeError,
    ReturnCodeError,
    SignatureError,
)
from engine.sandbox import SandboxIdentity
from engine.testing import StubAssertionError, Stubber, StubResponseError
from engine.v2 import signing, xmlcodec

MICROPAY_ID = "v2.pay.micropay.post"
ORDERQUERY_ID = "v2.pay.orderquery.post"
MICROPAY_ANSWER = {
    "appid": "wxd678efh567hg6787",
    "mch_id": "1900000109",
    "openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
    "is_subscribe": "N",
    "trade_type": "MICROPAY",
    "bank_type": "CMC",
    "total_fee": 888,
    "cash_fee": 888,
    "transaction_id": "1217752501201407033233368018",
    "out_trade_no": MICROPAY["out_trade_no"],
    "time_end": "20141030133525",
}
ORDERQUERY = {"appid": "wxd678efh567hg6787", "out_trade_no": MICROPAY["out_trade_no"]}
REFUND = {
    "appid": "wxd678efh567hg6787",
    "out_trade_no": MICROPAY["out_trade_no"],
    "out_refund_no": "R-1217752501201407033233368018",
    "total_fee": 888,
    "refund_fee": 100,
}
REFUND_ANSWER = {
    "appid": "wxd678efh567hg6787",
    "mch_id": "1900000109",
    "transaction_id": "1217752501201407033233368018",
    "out_trade_no": REFUND["out_trade_no"],
    "out_refund_no": REFUND["out_refund_no"],
    "refund_id": "50000000382019052709732678859",
    "refund_fee": 100,
    "total_fee": 888,
    "cash_fee": 888,
}


# -- SUCCESS answers: signed with the request's sign type, verified, typed -------------------------


def test_a_canned_success_is_signed_verified_and_typed(engine: Engine) -> None:
    with Stubber(engine) as stub:
        stub.add_response("v2.micropay", MICROPAY_ANSWER)
        stub.add_response("v2.micropay", MICROPAY_ANSWER)
        hmac = engine.call("v2.micropay", MICROPAY)
        md5 = engine.call("v2.micropay", {**MICROPAY, "sign_type": "MD5"})
        stub.assert_no_pending_responses()
    assert hmac.verified_with == "apiv2:HMAC-SHA256" and len(hmac.data["sign"]) == 64
    assert md5.verified_with == "apiv2:MD5" and len(md5.data["sign"]) == 32
    envelope = {k: hmac.data[k] for k in ("return_code", "return_msg", "result_code")}
    assert envelope == {"return_code": "SUCCESS", "return_msg": "OK", "result_code": "SUCCESS"}
    assert len(hmac.data["nonce_str"]) == 32 and hmac.data["nonce_str"] != md5.data["nonce_str"]
    assert {k: v for k, v in hmac.data.items() if k in MICROPAY_ANSWER} == MICROPAY_ANSWER
    assert hmac.data["total_fee"] == 888  # integers come back typed, as from a real answer
    assert engine.emulator.exchanges == []  # nothing reached the sandbox


def test_given_envelope_fields_and_new_fields_are_kept(engine: Engine) -> None:
    answer = {**MICROPAY_ANSWER, "return_msg": "成功", "nonce_str": "N1", "promotion_new": "x & <y>"}
    with Stubber(engine) as stub:
        stub.add_response("v2.micropay", answer)
        data = engine.call("v2.micropay", MICROPAY).data
    assert (data["return_msg"], data["nonce_str"], data["promotion_new"]) == ("成功", "N1", "x & <y>")


def test_orderquery_and_refund_answers_and_numbered_fields(engine: Engine) -> None:
    query_answer = {
        **{k: v for k, v in MICROPAY_ANSWER.items() if k != "out_trade_no"},
        "out_trade_no": ORDERQUERY["out_trade_no"],
        "trade_type": "JSAPI",
        "trade_state": "SUCCESS",
        "trade_state_desc": "支付成功",
        "coupon_count": 1,
        "coupon_fee_0": 100,
    }
    with Stubber(engine) as stub:
        stub.add_response("v2.pay.orderquery.post", query_answer, expected_payload=ORDERQUERY)
        stub.add_response("v2.secapi.pay.refund.post", REFUND_ANSWER, expected_payload=REFUND)
        queried = engine.call("v2.orderquery", ORDERQUERY).data
        refunded = engine.call("v2.refund", REFUND)
    assert (queried["trade_state"], queried["coupon_count"], queried["coupon_fee_0"]) == ("SUCCESS", 1, 100)
    assert refunded.verified_with == "apiv2:HMAC-SHA256" and refunded.data["refund_fee"] == 100


def test_an_unsigned_operation_gets_no_sign(engine: Engine) -> None:
    answer = {
        "mch_billno": "10000098201411111234567890",
        "mch_id": "1900000109",
        "wxappid": "wx8888888888888888",
        "re_openid": "oxTWIuGaIt6gTKsQRLau2M0yL16E",
        "total_amount": 1000,
        "send_listid": "100000000020150520314766074200",
    }
    watcher = WireWatcher()
    engine.plugin_manager.register(watcher)
    payload = {k: v for k, v in answer.items() if k not in ("mch_id", "send_listid")}
    payload.update(send_name="天虹百货", total_num=1, wishing="w", client_ip="192.168.0.1", act_name="a", remark="r")
    with Stubber(engine) as stub:
        stub.add_response("v2.sendredpack", answer)
        response = engine.call("v2.sendredpack", payload)
    assert response.verified_with is None and response.data["total_amount"] == 1000
    assert "sign" not in xmlcodec.parse(watcher.bodies[0])


# -- the stub really signs: its sign is the engine key's, and a corrupted one is refused -----------


def test_the_sign_is_the_engines_and_a_corrupted_one_is_refused(engine: Engine) -> None:
    watcher = WireWatcher()
    engine.plugin_manager.register(watcher)
    with Stubber(engine) as stub:
        stub.add_response("v2.micropay", MICROPAY_ANSWER)
        engine.call("v2.micropay", MICROPAY)
        sent = xmlcodec.parse(watcher.bodies[0])
        assert watcher.bodies[0].startswith(b"<xml><return_code><![CDATA[SUCCESS]]>")  # WeChat Pay's CDATA style
        assert sent["sign"] == signing.sign(sent, engine.credentials.apiv2_key, "HMAC-SHA256")
        corrupted = sent["sign"][:-1] + ("0" if sent["sign"][-1] != "0" else "1")
        stub.add_response("v2.micropay", {**MICROPAY_ANSWER, "nonce_str": sent["nonce_str"], "sign": corrupted})
        with pytest.raises(SignatureError) as caught:
            engine.call("v2.micropay", MICROPAY)
    assert caught.value.reason == "mismatch"
    assert xmlcodec.parse(watcher.bodies[1])["sign"] == corrupted  # the same answer, one character off


# -- canned data against the descriptor ------------------------------------------------------------


def test_canned_answers_with_wrong_types_or_missing_fields_are_refused(engine: Engine) -> None:
    stub = Stubber(engine)
    answer = {k: v for k, v in MICROPAY_ANSWER.items() if k != "transaction_id"}
    with pytest.raises(StubResponseError) as caught:
        stub.add_response("v2.micropay", {**answer, "total_fee": "888", "openid": 7})
    assert caught.value.endpoint_id == MICROPAY_ID
    assert caught.value.problems == (
        "expected string, got integer @ $.openid",
        "expected integer, got string @ $.total_fee",
        "missing required field @ $.transaction_id",
    )
    stub.assert_no_pending_responses()


def test_canned_answers_xml_cannot_carry_are_refused(engine: Engine) -> None:
    stub = Stubber(engine)
    with pytest.raises(StubResponseError) as caught:
        stub.add_response("v2.micropay", {**MICROPAY_ANSWER, "detail": {"a": 1}, "bell": "\x07", "bad name": "x"})
    assert caught.value.problems == (
        "cannot be carried in XML: expected a scalar, got object @ $.detail",
        "cannot be carried in XML: character U+0007 @ $.bell",
        "not a name an XML element can have @ $.bad name",
    )
    with pytest.raises(StubResponseError, match=r"answer must be an object, got array @ \$"):
        stub.add_response("v2.micropay", [MICROPAY_ANSWER])
    with pytest.raises(StubResponseError, match=r"missing required field @ \$\.appid"):
        stub.add_response("v2.micropay", None)


def test_a_canned_success_must_say_success_and_be_a_200(engine: Engine) -> None:
    stub = Stubber(engine)
    with pytest.raises(StubResponseError) as caught:
        stub.add_response("v2.micropay", {**MICROPAY_ANSWER, "return_code": "FAIL", "result_code": "FAIL"})
    assert caught.value.problems == (
        "return_code must be SUCCESS in a canned success; queue FAIL answers with add_error @ $.return_code",
        "result_code must be SUCCESS in a canned success; queue FAIL answers with add_error @ $.result_code",
    )
    with pytest.raises(StubResponseError) as caught:
        stub.add_response("v2.micropay", MICROPAY_ANSWER, status=204)
    assert caught.value.problems == (
        "APIv2 answers are HTTP 200, got 204; a FAIL travels in the body: queue it with add_error",
    )
    stub.assert_no_pending_responses()


# -- FAIL answers ----------------------------------------------------------------------------------


def test_result_code_fail_raises_a_verified_result_code_error(engine: Engine) -> None:
    with Stubber(engine) as stub:
        stub.add_error("v2.micropay", code="ORDERPAID", message="订单已支付")
        stub.add_error("v2.micropay", code="USERPAYING", message="需要用户输入支付密码", level="result")
        with pytest.raises(ResultCodeError) as paid:
            engine.call("v2.micropay", MICROPAY)
        with pytest.raises(ResultCodeError) as paying:
            engine.call("v2.micropay", {**MICROPAY, "sign_type": "MD5"})
    error = paid.value
    assert (error.err_code, error.err_code_des) == (error.code, error.message) == ("ORDERPAID", "订单已支付")
    assert (error.status, error.verified, error.outcome_unknown, error.reconcile) == (200, True, False, None)
    assert paying.value.verified and paying.value.outcome_unknown  # signed MD5, as its request
    assert paying.value.reconcile == Reconcile(MICROPAY_ID, "out_trade_no", MICROPAY["out_trade_no"], ORDERQUERY_ID)


def test_return_code_fail_raises_an_unverified_return_code_error(engine: Engine) -> None:
    watcher = WireWatcher()
    engine.plugin_manager.register(watcher)
    with Stubber(engine) as stub:
        stub.add_error("v2.micropay", code="", message="签名错误", level="return")
        stub.add_error("v2.orderquery", code="NOAUTH", message="商户无此接口权限", level="return")
        with pytest.raises(ReturnCodeError) as refused:
            engine.call("v2.micropay", MICROPAY)
        with pytest.raises(ReturnCodeError) as unauthorised:
            engine.call("v2.orderquery", ORDERQUERY)
    assert (refused.value.code, refused.value.message, refused.value.verified) == ("FAIL", "签名错误", False)
    assert (unauthorised.value.code, unauthorised.value.err_code) == ("NOAUTH", "NOAUTH")
    assert xmlcodec.parse(watcher.bodies[0]) == {"return_code": "FAIL", "return_msg": "签名错误"}  # unsigned


def test_add_error_arguments_are_checked_for_each_family(engine: Engine) -> None:
    stub = Stubber(engine)
    with pytest.raises(StubResponseError) as caught:
        stub.add_error("v2.micropay", status=500, code="", message="", detail={"x": 1}, level="business")
    assert caught.value.problems == (
        "APIv2 answers FAIL in an HTTP 200 body; leave status out, got 500",
        "level must be 'result' (result_code FAIL) or 'return' (return_code FAIL), got 'business'",
        "code must be a non-empty string (the err_code), got ''",
        "message must be a non-empty string, got ''",
        "detail belongs to APIv3 error bodies; an APIv2 FAIL answer has err_code and err_code_des",
    )
    with pytest.raises(StubResponseError, match=r"character U\+0000 @ \$\.message"):
        stub.add_error("v2.micropay", code="SYSTEMERROR", message="\x00")
    with pytest.raises(StubResponseError) as caught:
        stub.add_error("combine_papay.mini_program", code="PARAM_ERROR", message="m", level="result")
    assert caught.value.problems == (
        "error status must be 4xx or 5xx, got None",
        "level is for APIv2 FAIL answers; an APIv3 error is told by its status, got 'result'",
    )
    stub.add_error("v2.micropay", status=200, code="SYSTEMERROR", message="系统超时")  # 200 is APIv2's status
    stub.add_error("v2.micropay", code="", message="参数格式校验错误", level="return")
    with pytest.raises(StubAssertionError) as pending:
        stub.assert_no_pending_responses()
    assert str(pending.value) == (
        f"2 queued answers were not used: {MICROPAY_ID} (result_code FAIL SYSTEMERROR), "
        f"{MICROPAY_ID} (return_code FAIL)"
    )


# -- expected payloads -----------------------------------------------------------------------------


def test_expected_payload_matches_the_xml_fields_without_the_engines_fills(engine: Engine) -> None:
    with Stubber(engine) as stub:
        stub.add_response("v2.micropay", MICROPAY_ANSWER, expected_payload=MICROPAY)  # total_fee 888 is "888"
        stub.add_response("v2.micropay", MICROPAY_ANSWER, expected_payload={**MICROPAY, "sign_type": "MD5"})
        stub.add_response("v2.micropay", MICROPAY_ANSWER, expected_payload={**MICROPAY, "mch_id": "1900000109"})
        engine.call("v2.micropay", MICROPAY)
        engine.call("v2.micropay", {**MICROPAY, "sign_type": "MD5"})
        engine.call("v2.micropay", MICROPAY)
        stub.assert_no_pending_responses()
    assert engine.emulator.exchanges == []


def test_expected_payload_mismatch_lists_every_difference(engine: Engine) -> None:
    expected = {**MICROPAY, "total_fee": 889, "attach": "说明", "sign_type": "MD5"}
    del expected["auth_code"]
    with Stubber(engine) as stub:
        stub.add_response("v2.micropay", MICROPAY_ANSWER, expected_payload=expected)
        with pytest.raises(StubAssertionError) as caught:
            engine.call("v2.micropay", {**MICROPAY, "device_info": "013467007045764"})
        assert str(caught.value) == (
            f"the payload sent to {MICROPAY_ID} is not expected_payload:\n"
            "  expected '889', sent '888' @ $.total_fee\n"
            "  expected '说明', not sent @ $.attach\n"
            "  expected 'MD5', sent 'HMAC-SHA256' @ $.sign_type\n"
            "  sent '120061098828009406', not expected @ $.auth_code\n"
            "  sent '013467007045764', not expected @ $.device_info"
        )
        assert "nonce_str" not in str(caught.value) and "$.sign\n" not in str(caught.value)
        with pytest.raises(StubAssertionError, match=r"1 queued answer was not used: .*micropay.post \(SUCCESS\)$"):
            stub.assert_no_pending_responses()  # a refused call leaves the queue as it was


def test_expected_payload_of_an_upload_compares_its_file_bytes(engine: Engine, tmp_path: Path) -> None:
    picture = tmp_path / "logo.png"
    picture.write_bytes(b"\x89PNG" + bytes(range(32)))
    answer = {"appid": "wx8888888888888888", "mch_id": "1900000109", "media_id": "m-1"}
    with Stubber(engine) as stub:
        stub.add_response("v2.secapi.mch.uploadmedia.post", answer, expected_payload={"media": picture})
        stub.add_response("v2.secapi.mch.uploadmedia.post", answer, expected_payload={"media": picture})
        assert engine.call("v2.secapi.mch.uploadmedia.post", {"media": picture}).data["media_id"] == "m-1"
        with pytest.raises(StubAssertionError) as caught:
            engine.call("v2.secapi.mch.uploadmedia.post", {"media": b"other"})
    # media_hash (the MD5 the engine fills in) differs too, but is not compared: it was not named
    assert str(caught.value).split("\n")[1:] == [f"  expected {picture.read_bytes()!r}, sent b'other' @ $.media"]


def test_a_v2_call_out_of_order_fails_and_keeps_the_queue(engine: Engine) -> None:
    with Stubber(engine) as stub:
        stub.add_error("v2.orderquery", code="ORDERNOTEXIST", message="此交易订单号不存在")
        with pytest.raises(StubAssertionError) as caught:
            engine.call("v2.micropay", MICROPAY)
        assert str(caught.value) == f"expected a call to {ORDERQUERY_ID}, got a call to {MICROPAY_ID}"
        with pytest.raises(ResultCodeError, match="此交易订单号不存在"):
            engine.call("v2.orderquery", ORDERQUERY)


# -- no APIv2 key ----------------------------------------------------------------------------------


def test_an_engine_without_an_apiv2_key_cannot_queue_apiv2_answers(identity: SandboxIdentity) -> None:
    settings = {k: v for k, v in identity.engine_settings().items() if k != "apiv2_key"}
    with Engine(**settings, base_url="http://127.0.0.1:9", load_entry_points=False) as engine:
        stub = Stubber(engine)
        message = r"cannot stub v2\.pay\.micropay\.post: .* and this engine has none; give Engine\(apiv2_key=\.\.\.\)"
        with pytest.raises(ConfigurationError, match=message):
            stub.add_response("v2.micropay", MICROPAY_ANSWER)
        with pytest.raises(ConfigurationError, match=message):
            stub.add_error("v2.micropay", code="ORDERPAID", message="订单已支付")
        stub.assert_no_pending_responses()
        with stub:  # APIv3 needs no APIv2 key
            answer = {"pre_entrustweb_id": "p", "mchid": "1900000109", "plan_id": 1, "out_contract_code": "c"}
            stub.add_response("combine_papay.mini_program", answer)
            assert engine.call("combine_papay.mini_program", COMBINE_PAPAY).data == answer
