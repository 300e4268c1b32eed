"""APIv2 through the one executor: golden vectors, signing and verification, errors, bad input, traits."""

from __future__ import annotations

import hashlib
import logging
import sys
from typing import Any

import attrs
import pytest
from conftest import COMBINE_PAPAY, MICROPAY

from engine import (
    ConfigurationError,
    CredentialError,
    Descriptor,
    Engine,
    Field,
    MalformedResponseError,
    MockTransport,
    RawResponse,
    Reconcile,
    RequestSpec,
    ResultCodeError,
    ReturnCodeError,
    SignatureError,
    V2AnswerError,
    ValidationError,
    hookimpl,
)
from engine.examples import example_payload
from engine.v2 import answers, signing, xmlcodec
from engine.wire import Headers

REDPACK = {
    "mch_billno": "10000098201411111234567890",
    "wxappid": "wx8888888888888888",
    "send_name": "天虹百货",
    "re_openid": "oxTWIuGaIt6gTKsQRLau2M0yL16E",
    "total_amount": 1000,
    "total_num": 1,
    "wishing": "感谢您参加猜灯谜活动",
    "client_ip": "192.168.0.1",
    "act_name": "猜灯谜抢红包活动",
    "remark": "猜越多得越多",
}
REFUND = {
    "appid": "wxd678efh567hg6787",
    "out_trade_no": "1217752501201407033233368018",
    "out_refund_no": "R-1217752501201407033233368018",
    "total_fee": 100,
    "refund_fee": 100,
}


# -- golden vectors (PROTOCOL.md §11, §13) -------------------------------------------------------------


def test_the_classic_md5_and_hmac_sha256_signs(vectors) -> None:
    vector = vectors["official-apiv2-sign-md5-hmac-sha256"]
    key = vector["key"].encode()
    assert signing.sign_string(vector["params"]) == vector["expected_stringA"]
    assert signing.sign(vector["params"], key, "MD5") == vector["expected_sign_md5"]
    assert signing.sign(vector["params"], key, "HMAC-SHA256") == vector["expected_sign_hmac_sha256"]
    example = xmlcodec.parse(vector["expected_xml_example"].encode())
    assert signing.verifies(example, key, "MD5") and not signing.verifies(example, key, "HMAC-SHA256")


def test_the_engine_signs_the_classic_example(identity, vectors) -> None:
    vector = vectors["official-apiv2-sign-md5-hmac-sha256"]
    descriptor = Descriptor(
        id="v2.golden.post",
        method="POST",
        path="/golden",
        protocol="v2",
        body="xml",
        signed_answer=False,
        fills={"mch_id": "merchant_id", "nonce_str": "nonce", "sign": "signature"},
        request=RequestSpec(body={name: Field(required=True) for name in (*vector["params"], "sign")}),
    )
    canned = MockTransport(
        lambda request: RawResponse(200, Headers({}), b"<xml><return_code>SUCCESS</return_code></xml>")
    )
    settings = {**identity.engine_settings(), "mchid": vector["params"]["mch_id"], "apiv2_key": vector["key"]}
    with Engine(
        **settings, transport=canned, nonce_factory=lambda: "ibuaiVcKdpRxkhJA", load_entry_points=False
    ) as engine:
        engine.register(descriptor)
        payload = {k: v for k, v in vector["params"].items() if k not in ("mch_id", "nonce_str")}
        engine.call("v2.golden.post", payload)
    sent = canned.requests[0]
    assert xmlcodec.parse(sent.body) == xmlcodec.parse(vector["expected_xml_example"].encode())
    assert sent.fields["sign"] == vector["expected_sign_md5"]
    assert sent.headers["Content-Type"] == "text/xml; charset=utf-8" and "Authorization" not in sent.headers


def test_sign_string_order_and_skips(vectors) -> None:
    vector = vectors["php-apiv2-ksort-and-querystringlike"]
    for case in vector["cases_ksort"]:
        fields = {name: "x" for name in case["input"]}
        assert [pair.split("=")[0] for pair in signing.sign_string(fields).split("&")] == case["expected_key_order"]
    for case in vector["cases_querystring"]:
        kept = sorted(k for k, v in case["input"].items() if k != "sign" and v)
        assert signing.sign_string(case["input"]) == "&".join(f"{k}={case['input'][k]}" for k in kept)


def test_the_refund_key_and_the_aes_256_ecb_vector(vectors) -> None:
    md5 = vectors["axios-apiv2-md5-key-append"]["cases"][0]
    assert signing.refund_key(md5["input"].encode()) == md5["expected_md5_hex"].encode()
    ecb = vectors["php-aes-256-ecb-pkcs7"]
    assert signing.ecb_decrypt(ecb["key"].encode(), ecb["ciphertext_b64"]) == ecb["plaintext"].encode()
    assert signing.ecb_encrypt(ecb["key"].encode(), ecb["plaintext"].encode()) == ecb["ciphertext_b64"]
    with pytest.raises(ValueError, match="AES-256-ECB decryption failed"):
        signing.ecb_decrypt(b"1" * 32, ecb["ciphertext_b64"])


# -- calls through the sandbox ---------------------------------------------------------------------------


def test_micropay_is_signed_and_verified_with_the_type_it_used(engine: Engine) -> None:
    answer = engine.call("v2.micropay", MICROPAY)
    sent = engine.emulator.last.request
    assert answer.verified_with == "apiv2:HMAC-SHA256" and answer.data["result_code"] == "SUCCESS"
    assert sent.fields["sign_type"] == "HMAC-SHA256" and len(sent.fields["sign"]) == 64
    assert answer.data["total_fee"] == 888  # typed as the descriptor says
    chosen = engine.call("v2.pay.micropay.post", {**MICROPAY, "sign_type": "MD5"})
    assert chosen.verified_with == "apiv2:MD5" and len(engine.emulator.last.request.fields["sign"]) == 32


def test_the_chain_style_and_an_md5_engine(make_engine) -> None:
    engine = make_engine(apiv2_sign_type="MD5")
    answer = engine.v2.pay.micropay.post(xml=MICROPAY)
    assert answer.verified_with == "apiv2:MD5" and answer.endpoint_id == "v2.pay.micropay.post"
    assert engine.emulator.last.request.target == "/pay/micropay"  # APIv2 URLs carry no /v2


def test_operations_without_a_sign_type_field_sign_md5(engine: Engine) -> None:
    answer = engine.call("v2.sendredpack", REDPACK)
    sent = engine.emulator.last.request.fields
    assert "sign_type" not in sent and len(sent["sign"]) == 32
    assert answer.verified_with is None and answer.data["send_listid"]  # red packets answer unsigned


def test_unsigned_answers_skip_verification_and_only_they(make_engine) -> None:
    class Spy:
        def __init__(self) -> None:
            self.asked: list[str] = []

        @hookimpl
        def wxpay_verify_response(self, response, descriptor):
            self.asked.append(descriptor.id if descriptor is not None else "-")
            return None

    spy = Spy()
    engine = make_engine(plugins=[spy])
    engine.call("v2.sendredpack", REDPACK)
    engine.call("v2.pay.downloadbill.post", {"appid": "wxd678efh567hg6787", "bill_date": "20140603"})
    assert spy.asked == []
    engine.call("v2.micropay", MICROPAY)
    assert spy.asked == ["v2.pay.micropay.post"]


def test_a_bill_answers_text(engine: Engine) -> None:
    bill = engine.call("v2.downloadbill", {"appid": "wxd678efh567hg6787", "bill_date": "20140603"})
    assert isinstance(bill.data, str) and bill.data.startswith("交易时间")


def test_the_merchant_id_is_filled_and_checked(engine: Engine) -> None:
    engine.call("v2.micropay", MICROPAY)
    assert engine.emulator.last.payload["mch_id"] == engine.credentials.mchid
    with pytest.raises(ValidationError) as caught:
        engine.call("v2.micropay", {**MICROPAY, "mch_id": "1230000109"})
    assert caught.value.errors == ("must be this engine's mchid (it signs with that merchant's key) @ $.mch_id",)


def test_the_app_id_comes_from_the_engine_when_given(make_engine) -> None:
    engine = make_engine(appid="wx1111111111111111")
    payload = {k: v for k, v in MICROPAY.items() if k != "appid"}
    engine.call("v2.micropay", payload)
    assert engine.emulator.last.payload["appid"] == "wx1111111111111111"
    with pytest.raises(ValidationError, match=r"missing required field @ \$\.appid"):
        make_engine().call("v2.micropay", payload)


# -- tampered answers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        ("sign", "mismatch"),
        ("field", "mismatch"),
        ("declared_sign_type", "sign_type_mismatch"),
        ("other_algorithm", "wrong_sign_type"),
        ("no_sign", "missing_sign"),
    ],
)
def test_tampered_answers_are_refused(engine: Engine, tamper: str, reason: str) -> None:
    engine.emulator.v2.tamper_next(tamper)
    with pytest.raises(SignatureError) as caught:
        engine.call("v2.micropay", MICROPAY)
    assert caught.value.reason == reason
    assert engine.credentials.apiv2_key.reveal().decode() not in str(caught.value)


def test_an_md5_request_refuses_an_hmac_signed_answer(engine: Engine) -> None:
    engine.emulator.v2.tamper_next("other_algorithm")
    with pytest.raises(SignatureError) as caught:
        engine.call("v2.micropay", {**MICROPAY, "sign_type": "MD5"})
    assert caught.value.reason == "wrong_sign_type" and "HMAC-SHA256" in str(caught.value)


@pytest.mark.parametrize("tamper", ["doctype", "oversize"])
@pytest.mark.parametrize(("endpoint", "payload"), [("v2.micropay", MICROPAY), ("v2.sendredpack", REDPACK)])
def test_unsafe_xml_is_refused_unparsed(engine: Engine, tamper: str, endpoint: str, payload: dict) -> None:
    engine.emulator.v2.tamper_next(tamper)
    with pytest.raises(MalformedResponseError, match="APIv2 answer refused"):
        engine.call(endpoint, payload)


def test_the_reader_refuses_every_dtd_feature() -> None:
    documents = [
        b'<!DOCTYPE xml [<!ENTITY a "b">]><xml><a>&a;</a></xml>',
        b'<!doctype xml SYSTEM "http://127.0.0.1/x.dtd"><xml/>',
        b"<xml><a><b>nested</b></a></xml>",
        b"<xml><sign>1</sign><sign>2</sign></xml>",
        b"<xml>text<a>1</a></xml>",
        b"<html><a>1</a></html>",
        b"<xml><a>unclosed</xml>",
        "<xml><a>1</a></xml>".encode("utf-16"),
        b"<xml>" + b"<a>1</a>" * 10 + b" " * xmlcodec.MAX_XML_BYTES + b"</xml>",
    ]
    for document in documents:
        with pytest.raises(xmlcodec.MalformedXmlError):
            xmlcodec.parse(document)
    reader = xmlcodec._FlatReader(("xml",))  # the parser's own guard, behind the textual check
    with pytest.raises(xmlcodec.MalformedXmlError, match="DOCTYPE"):
        reader.read(b"<!DOCTYPE xml [<!ELEMENT xml ANY>]><xml/>")


def test_cdata_and_escapes_read_back() -> None:
    fields = {"a": "x & <y>", "b": "line\r\nbreak", "c": "微信"}
    assert xmlcodec.parse(xmlcodec.encode(fields)) == fields
    assert xmlcodec.parse(b"<?xml version='1.0' encoding='GBK'?><xml><a><![CDATA[<&>]]></a></xml>") == {"a": "<&>"}


# -- FAIL answers ------------------------------------------------------------------------------------


def test_result_code_fail_is_a_result_code_error(engine: Engine) -> None:
    engine.emulator.v2.fail_next("ORDERPAID", "订单已支付")
    with pytest.raises(ResultCodeError) as caught:
        engine.call("v2.micropay", MICROPAY)
    error = caught.value
    assert isinstance(error, V2AnswerError) and (error.err_code, error.err_code_des) == ("ORDERPAID", "订单已支付")
    assert (error.code, error.message, error.verified, error.status) == ("ORDERPAID", "订单已支付", True, 200)
    assert error.reconcile is None and not error.outcome_unknown


def test_an_unknown_outcome_says_how_to_reconcile(engine: Engine) -> None:
    engine.emulator.v2.fail_next("USERPAYING", "需要用户输入支付密码")
    with pytest.raises(ResultCodeError) as caught:
        engine.call("v2.micropay", MICROPAY)
    assert caught.value.outcome_unknown
    assert caught.value.reconcile == Reconcile(
        "v2.pay.micropay.post", "out_trade_no", MICROPAY["out_trade_no"], "v2.pay.orderquery.post"
    )


def test_return_code_fail_is_a_return_code_error(make_engine, engine: Engine) -> None:
    engine.emulator.v2.fail_next("", "系统繁忙", level="return")
    with pytest.raises(ReturnCodeError) as caught:
        engine.call("v2.micropay", MICROPAY)
    assert (caught.value.code, caught.value.message, caught.value.verified) == ("FAIL", "系统繁忙", False)
    wrong_key = make_engine(apiv2_key="0" * 32)
    with pytest.raises(ReturnCodeError, match="签名错误"):
        wrong_key.call("v2.micropay", MICROPAY)


def test_a_fail_answer_of_an_unsigned_operation_is_an_error_too(engine: Engine) -> None:
    engine.emulator.v2.fail_next("NOTENOUGH", "帐号余额不足")
    with pytest.raises(ResultCodeError) as caught:
        engine.call("v2.sendredpack", REDPACK)
    assert caught.value.err_code == "NOTENOUGH" and not caught.value.verified


def test_answers_without_return_code_are_malformed() -> None:
    with pytest.raises(MalformedResponseError, match="no return_code"):
        answers.answer_error({"result_code": "SUCCESS"})


# -- configuration and bad input: nothing is sent --------------------------------------------------------


def _without(identity, name: str) -> dict[str, Any]:
    return {k: v for k, v in identity.engine_settings().items() if k != name}


def test_no_apiv2_key_is_a_configuration_error_naming_it(identity) -> None:
    engine = _engine_without(identity, "apiv2_key")
    with pytest.raises(ConfigurationError, match=r"give Engine\(apiv2_key=\.\.\.\)"):
        engine.call("v2.micropay", MICROPAY)
    assert engine.emulator.exchanges == []
    assert engine.call("combine_papay.mini_program", COMBINE_PAPAY).status == 200  # APIv3 needs no APIv2 key


def _engine_without(identity, name: str) -> Engine:
    from engine.plugins.sandbox_transport import SANDBOX_URL, SandboxTransportPlugin
    from engine.sandbox import Sandbox

    emulator = Sandbox(identity)
    plugins = [SandboxTransportPlugin(emulator)]
    engine = Engine(**_without(identity, name), base_url=SANDBOX_URL, plugins=plugins, load_entry_points=False)
    emulator.registry = engine.registry
    engine.emulator = emulator
    return engine


def test_an_operation_needing_the_client_certificate_refuses_without_it(identity) -> None:
    engine = _engine_without(identity, "client_certificate")
    with pytest.raises(ConfigurationError, match=r"client_certificate"):
        engine.call("v2.refund", REFUND)
    assert engine.emulator.exchanges == []
    assert engine.call("v2.micropay", MICROPAY).verified_with  # others need none


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("short", "must be 32 printable ASCII characters"),
        ("密" * 32, "must be 32 printable ASCII characters"),
        (12345, "must be 32 characters of text or bytes"),
    ],
)
def test_a_bad_apiv2_key_is_refused_without_echoing_it(identity, value: Any, message: str) -> None:
    with pytest.raises(CredentialError, match=message) as caught:
        Engine(**{**identity.engine_settings(), "apiv2_key": value})
    assert "short" not in str(caught.value) and "密" not in str(caught.value)


def test_a_bad_sign_type_setting_is_refused(identity) -> None:
    with pytest.raises(ConfigurationError, match="apiv2_sign_type must be one of"):
        Engine(**identity.engine_settings(), apiv2_sign_type="SHA1")


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"body": "bad \x01 byte"}, "cannot be carried in XML: character U+0001 @ $.body"),
        ({"body": "\ud800"}, "contains a lone surrogate, which UTF-8 cannot encode @ $.body"),
        ({"attach": {"nested": 1}}, "expected string, got object @ $.attach"),
        ({"sign": "0" * 32}, "is computed by the engine for every attempt; leave it out @ $.sign"),
    ],
)
def test_values_xml_cannot_carry_are_refused_with_their_path(engine: Engine, change: dict, error: str) -> None:
    with pytest.raises(ValidationError) as caught:
        engine.call("v2.micropay", {**MICROPAY, **change})
    assert caught.value.errors == (error,)
    assert engine.emulator.exchanges == []


def test_the_codec_refuses_what_validation_does_not_know(engine: Engine) -> None:
    free = Descriptor(id="v2.free.post", method="POST", path="/free", protocol="v2", body="xml", free_form=True)
    engine.register(free)
    with pytest.raises(ValidationError) as caught:
        engine.call("v2.free.post", {"a": {"b": 1}, "c": [1], "d": "tab\tok", "bad name": "x"})
    assert caught.value.errors == (
        "cannot be carried in XML: expected a scalar, got object @ $.a",
        "cannot be carried in XML: expected a scalar, got array @ $.c",
        "not a name an XML element can have @ $.bad name",
    )


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        ({"appid": "wxd678efh567hg6787"}, "missing one of transaction_id, out_trade_no (give exactly one) @ $"),
        (
            {"appid": "wxd678efh567hg6787", "transaction_id": "4200", "out_trade_no": "T-1"},
            "give exactly one of transaction_id, out_trade_no, not transaction_id and out_trade_no @ $",
        ),
    ],
)
def test_one_of_means_exactly_one(engine: Engine, payload: dict, error: str) -> None:
    with pytest.raises(ValidationError) as caught:
        engine.call("v2.orderquery", payload)
    assert caught.value.errors == (error,)
    assert engine.call("v2.orderquery", {"appid": "wxd678efh567hg6787", "out_trade_no": "T-1"}).verified_with


def test_the_refund_descriptor_says_one_of_and_needs_the_certificate(engine: Engine) -> None:
    refund = engine.endpoint("v2.refund")
    assert refund.one_of == (("transaction_id", "out_trade_no"),) and refund.client_certificate
    assert not refund.request.body["transaction_id"].required and not refund.request.body["out_trade_no"].required
    assert engine.endpoint("v2.refundquery").one_of == (
        ("refund_id", "out_refund_no", "transaction_id", "out_trade_no"),
    )


# -- traits and hosts ----------------------------------------------------------------------------------


def test_host_families_of_the_catalogue(engine: Engine) -> None:
    from engine.configuration import DEFAULT_HOSTS
    from engine.pipeline import Settings

    assert engine.endpoint("v2.risk.getpublickey.post").host == "fraud"
    assert engine.endpoint("v2.face.get_wxpayface_authinfo.post").host == "payapp"
    assert engine.endpoint("v2.appauth.authindex.get").host == "payapp_mch"
    production = Settings("https://api.mch.weixin.qq.com", "ua", hosts=DEFAULT_HOSTS)
    assert production.base_url_for(engine.endpoint("v2.risk.getpublickey.post")) == "https://fraud.mch.weixin.qq.com"
    assert engine.call("v2.risk.getpublickey.post", {}).data["return_code"] == "SUCCESS"


def test_the_backup_domain_keeps_the_host_families() -> None:
    from engine.configuration import host_families

    assert host_families("https://api2.mch.weixin.qq.com", None)["fraud"] == "https://fraud.mch.weixin.qq.com"


def test_a_redirect_operation_answers_its_location(engine: Engine) -> None:
    payload = example_payload(engine.endpoint("v2.appauth.authindex.get"))
    answer = engine.call("v2.appauth.authindex.get", payload)
    assert answer.status == 302 and answer.data["location"].startswith(payload["redirect_uri"] + "?code=")


def test_an_upload_sends_its_md5_and_signs_the_fields_only(engine: Engine) -> None:
    answer = engine.call("v2.secapi.mch.uploadmedia.post", {"media": b"\x89PNG image"})
    sent = engine.emulator.last.request
    assert answer.data["media_id"] and sent.headers["Content-Type"].startswith("multipart/form-data")
    assert set(sent.fields) == {"mch_id", "media_hash", "sign_type", "sign"}
    assert sent.fields["media_hash"] == hashlib.md5(b"\x89PNG image").hexdigest()


def test_a_query_signed_browser_page(engine: Engine) -> None:
    payload = {"appid": "wxd678efh567hg6787", "plan_id": 12535, "contract_code": "C-1", "request_serial": 1}
    answer = engine.call("v2.papay.entrustweb.get", {**payload, "notify_url": "https://x", "version": "1.0"})
    target = engine.emulator.last.request.target
    assert target.startswith("/papay/entrustweb?") and "&sign=" in target and "timestamp=" in target
    assert isinstance(answer.data, str) and answer.verified_with is None


def test_apiv3_built_ins_decline_apiv2_descriptors(engine: Engine) -> None:
    v2 = engine.endpoint("v2.micropay")
    signer, verifier = sys.modules["engine.plugins.signer"], sys.modules["engine.plugins.verifier"]
    assert signer.wxpay_sign_request(request=None, signing=None, descriptor=v2) is None
    assert verifier.wxpay_verify_response(response=None, keyring=None, now=0, descriptor=v2) is None
    codec = sys.modules["engine.plugins.json_codec"]
    assert codec.wxpay_body_codec(descriptor=v2) is None
    v3 = engine.endpoint("combine_papay.mini_program")
    assert sys.modules["engine.plugins.v2_codec"].wxpay_body_codec(descriptor=v3) is None
    assert sys.modules["engine.plugins.v2_signer"].wxpay_sign_request(None, None, v3) is None


def test_secrets_stay_out_of_reprs_and_logs(engine: Engine, caplog) -> None:
    secret = engine.credentials.apiv2_key.reveal().decode()
    with caplog.at_level(logging.DEBUG, logger="engine"):
        engine.call("v2.micropay", MICROPAY)
        engine.emulator.v2.tamper_next("sign")
        with pytest.raises(SignatureError):
            engine.call("v2.micropay", MICROPAY)
    sign = engine.emulator.exchanges[0].request.fields["sign"]
    for text in (caplog.text, repr(engine), repr(engine.credentials), repr(engine.pipeline.settings)):
        assert secret not in text and sign not in text
    assert "PRIVATE KEY" not in repr(engine.pipeline.settings.client_certificate)


def test_the_engine_id_rule_for_apiv2() -> None:
    from engine.registry import endpoint_id

    assert endpoint_id("POST", "/pay/micropay", None, "v2") == "v2.pay.micropay.post"
    assert endpoint_id("POST", "/risk/getpublickey", "fraud", "v2") == "v2.risk.getpublickey.post"
    assert endpoint_id("POST", "/v3/refund/domestic/refunds", "hk") == "hk.v3.refund.domestic.refunds.post"


def test_a_descriptor_with_a_misspelt_group_fails_at_load() -> None:
    from engine.loader import structure_descriptor

    with pytest.raises(Exception, match=r"expected a list of names, got str 'ab' @ \$\.one_of\[0\]"):
        structure_descriptor({"method": "POST", "path": "/x", "one_of": ["ab"]}, "x.post", "test")
    with pytest.raises(Exception, match=r"'q' is not a request field @ \$\.one_of\[0\]"):
        structure_descriptor(
            {"method": "POST", "path": "/x", "one_of": [["a", "q"]], "request": {"body": {"a": {}}}}, "x.post", "test"
        )
    evolved = attrs.evolve(Descriptor(id="x", method="POST", path="/x"), fills={"nope": "nonce"})
    from engine.loader import semantic_problems

    assert list(semantic_problems(evolved)) == ["filled field 'nope' is not a request field @ $.fills.nope"]


def test_a_resend_safe_operation_is_retried_with_the_same_body(make_engine) -> None:
    from engine import RetryPolicy
    from engine.sandbox.faults import Fault

    engine = make_engine(retry=RetryPolicy(base_delay=0, max_delay=0))
    engine.emulator.faults.add(Fault("drop"), endpoint="v2.pay.micropay.post")  # the answer is lost once
    assert engine.call("v2.micropay", MICROPAY).verified_with
    first, second = engine.emulator.exchanges
    assert first.request.body == second.request.body  # one nonce_str per call, so one sign: a true resend
    assert engine.endpoint("v2.micropay").idempotency.key == "out_trade_no"
