"""``engine.testing.Stubber`` and the ``wechatpay`` pytest plugin, used as a user's test suite would."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from pathlib import Path

import pytest
from conftest import COMBINE_PAPAY, PATIENCE, REAL_NAME

from engine import (
    ApiError,
    Descriptor,
    Engine,
    Field,
    RequestSpec,
    SignatureError,
    UnknownEndpointError,
    UsageError,
    hookimpl,
)
from engine.sandbox import SandboxIdentity
from engine.testing import StubAssertionError, Stubber, StubResponseError

pytest_plugins = ["pytester"]

COMBINE_ID = "v3.ecommerce.combine_papay.contracts.pre_entrust_sign.mini_program.post"
REAL_NAME_ID = "v3.ecommerce.individual_contracts.pre_entrust_sign_with_real_name_identity.mini_program.post"
COMBINE_ANSWER = {
    "pre_entrustweb_id": "5778aadY9nltAsZzXixCkFIGYnV2V",
    "mchid": "1900000109",
    "plan_id": 12535,
    "out_contract_code": "wxwtdk20200910100000",
}
SECRET_ANSWER = Descriptor(
    id="test.secret.post",
    method="POST",
    path="/v3/test/secret",
    request=RequestSpec(body={"q": Field()}),
    response={
        "holder": Field(
            type="object",
            required=True,
            fields={
                "name": Field(encrypted=True, required=True),
                "ids": Field(type="array", items=Field(encrypted=True)),
            },
        ),
        "plain": Field(required=True),
    },
)
QUERY_ORDER = Descriptor(
    id="v3.pay.transactions.id._transaction_id_.get",
    method="GET",
    path="/v3/pay/transactions/id/{transaction_id}",
    request=RequestSpec(
        path={"transaction_id": Field(required=True)},
        query={"mchid": Field(required=True), "limit": Field(type="integer")},
    ),
    response={
        "transaction_id": Field(required=True),
        "trade_state": Field(enum=("SUCCESS", "NOTPAY")),
        "amount": Field(type="object", fields={"total": Field(type="integer", required=True)}),
    },
)
UPLOAD = Descriptor(
    id="v3.merchant.media.upload.post",
    method="POST",
    path="/v3/merchant/media/upload",
    body="multipart",
    request=RequestSpec(
        body={
            "file": Field(type="file", required=True),
            "meta": Field(type="object", required=True, fields={"filename": Field(), "sha256": Field()}),
        }
    ),
    response={"media_id": Field(required=True)},
)


class WireWatcher:
    """A user plugin keeping every raw answer body the engine received."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    @hookimpl
    def wxpay_after_response(self, call, request, response, error, elapsed_ms):
        if response is not None:
            self.bodies.append(response.body)


@pytest.fixture
def engine(make_engine) -> Engine:
    engine = make_engine()
    for descriptor in (SECRET_ANSWER, QUERY_ORDER, UPLOAD):
        engine.register(descriptor)
    return engine


# -- queue order and payloads ------------------------------------------------------------------


def test_answers_come_in_queue_order_verified_and_offline(engine: Engine) -> None:
    with Stubber(engine) as stub:
        stub.add_response("combine_papay.mini_program", COMBINE_ANSWER)
        stub.add_response("individual_contracts.real_name.mini_program", {"pre_entrustweb_id": "second"})
        first = engine.call("combine_papay.mini_program", COMBINE_PAPAY)
        second = engine.call("individual_contracts.real_name.mini_program", REAL_NAME)
        stub.assert_no_pending_responses()
    assert (first.endpoint_id, first.status, first.data) == (COMBINE_ID, 200, COMBINE_ANSWER)
    assert second.data == {"pre_entrustweb_id": "second"}
    assert first.verified_with == second.verified_with == stub.key_id
    assert stub.key_id.startswith("STUB_KEY_ID_")
    assert first.request_id and first.request_id == first.headers["Request-ID"]
    assert engine.emulator.exchanges == []  # nothing reached the sandbox


def test_queue_accepts_ids_aliases_and_method_paths(engine: Engine) -> None:
    with Stubber(engine) as stub:
        stub.add_response(COMBINE_ID, COMBINE_ANSWER)
        stub.add_response("POST /v3/ecommerce/combine-papay/contracts/pre-entrust-sign/mini-program", COMBINE_ANSWER)
        stub.add_response("GET /v3/not/described", {"anything": ["goes"]})
        for _ in range(2):
            engine.call("combine_papay.mini_program", COMBINE_PAPAY)
        assert engine.call("GET /v3/not/described").data == {"anything": ["goes"]}
        with pytest.raises(UnknownEndpointError):
            stub.add_response("combine_papay.mini_programme", COMBINE_ANSWER)


def test_expected_payload_matches_including_encrypted_fields(engine: Engine) -> None:
    with Stubber(engine) as stub:
        stub.add_response("combine_papay.mini_program", COMBINE_ANSWER, expected_payload=COMBINE_PAPAY)
        stub.add_response(
            "individual_contracts.real_name.mini_program", {"pre_entrustweb_id": "p"}, expected_payload=REAL_NAME
        )
        engine.call("combine_papay.mini_program", COMBINE_PAPAY)
        engine.call("individual_contracts.real_name.mini_program", REAL_NAME)
        stub.assert_no_pending_responses()


def test_expected_payload_mismatch_lists_differences_and_hides_encrypted_values(engine: Engine) -> None:
    expected = {**REAL_NAME, "cred_id": "110101199003070000", "openid": "someone-else", "note": 1}
    del expected["appid"]
    with Stubber(engine) as stub:
        stub.add_response(
            "individual_contracts.real_name.mini_program", {"pre_entrustweb_id": "p"}, **_expect(expected)
        )
        with pytest.raises(StubAssertionError) as caught:
            engine.call("individual_contracts.real_name.mini_program", REAL_NAME)
    assert str(caught.value) == (
        f"the payload sent to {REAL_NAME_ID} is not expected_payload:\n"
        "  expected 'someone-else', sent 'oUpF8uMuAJO_M2pxb1Q9zNjWeS6o' @ $.openid\n"
        "  encrypted value differs from the expected one (neither is shown) @ $.cred_id\n"
        "  expected 1, not sent @ $.note\n"
        "  sent 'wxd678efh567h23787', not expected @ $.appid"
    )
    assert "110101199003070000" not in str(caught.value) and REAL_NAME["cred_id"] not in str(caught.value)
    with pytest.raises(StubAssertionError, match=r"1 queued answer was not used: .*mini_program.post \(200\)$"):
        stub.assert_no_pending_responses()  # a refused call leaves the queue as it was


def _expect(payload: dict) -> dict:
    return {"expected_payload": payload}


def test_expected_payload_is_compared_as_sent_path_query_and_body(engine: Engine) -> None:
    payload = {"transaction_id": "4200/../x", "mchid": "1900000109", "limit": 10}
    answer = {"transaction_id": "4200/../x"}
    with Stubber(engine) as stub:
        stub.add_response(QUERY_ORDER.id, answer, expected_payload=payload)
        assert engine.call(QUERY_ORDER.id, payload).data == answer
        stub.add_response(QUERY_ORDER.id, answer, expected_payload={**payload, "limit": 11})
        with pytest.raises(StubAssertionError) as caught:
            engine.call(QUERY_ORDER.id, payload)
        assert str(caught.value).endswith("\n  expected '11', sent '10' @ $.limit")  # query values travel as text
        engine.call(QUERY_ORDER.id, {**payload, "limit": 11})  # the refused answer was still first in line
        stub.add_response("GET /v3/free/form", {}, expected_payload={"flag": True, "n": 2})
        engine.call("GET /v3/free/form", {"flag": True, "n": 2})
        stub.add_response("POST /v3/free/form", {}, expected_payload={"nested": {"a": [1, 2]}})
        with pytest.raises(StubAssertionError, match=r"\n  expected 2, sent 3 @ \$\.nested\.a\[1\]$") as caught:
            engine.call("POST /v3/free/form", {"nested": {"a": [1, 3]}})
        assert str(caught.value).count("\n") == 1
        engine.call("POST /v3/free/form", {"nested": {"a": [1, 2]}})


def test_an_expected_payload_json_cannot_say_is_refused_when_queued(engine: Engine) -> None:
    """NaN, a set or a cycle in expected_payload: a StubResponseError at add_response, never a bare
    ValueError or TypeError from the JSON encoder, and nothing queued."""
    cyclic: dict = {}
    cyclic["self"] = cyclic
    with Stubber(engine) as stub:
        for bad in ({"a": float("nan")}, {"a": {1, 2}}, cyclic):
            with pytest.raises(StubResponseError) as caught:
                stub.add_response("POST /v3/free/form", {}, expected_payload=bad)
            assert "expected_payload is not a JSON value" in str(caught.value)
        stub.add_response("POST /v3/free/form", {}, expected_payload={"a": 1})
        engine.call("POST /v3/free/form", {"a": 1})  # the refused ones were not queued before it


def test_expected_payload_of_an_upload_compares_meta_and_file_bytes(engine: Engine, tmp_path: Path) -> None:
    picture = tmp_path / "logo.png"
    picture.write_bytes(b"\x89PNG" + bytes(range(256)))
    with Stubber(engine) as stub:
        stub.add_response(UPLOAD.id, {"media_id": "m"}, expected_payload={"file": picture})
        stub.add_response(UPLOAD.id, {"media_id": "m"}, expected_payload={"file": picture})
        engine.call(UPLOAD.id, {"file": picture})
        with pytest.raises(StubAssertionError) as caught:
            engine.call(UPLOAD.id, {"file": b"other", "meta": {"filename": "logo.png"}})
    digest = hashlib.sha256(picture.read_bytes()).hexdigest()
    assert f"expected '{digest}', sent '{hashlib.sha256(b'other').hexdigest()}' @ $.meta.sha256" in str(caught.value)
    assert "@ $.file" in str(caught.value)


# -- mismatched calls --------------------------------------------------------------------------


def test_a_call_with_nothing_queued_fails(engine: Engine) -> None:
    with Stubber(engine), pytest.raises(StubAssertionError) as caught:
        engine.call("combine_papay.mini_program", COMBINE_PAPAY)
    assert str(caught.value) == f"no response queued for {COMBINE_ID}"
    assert isinstance(caught.value, AssertionError)
    assert engine.emulator.exchanges == []


def test_a_call_out_of_order_fails_and_keeps_the_queue(engine: Engine) -> None:
    with Stubber(engine) as stub:
        stub.add_response("individual_contracts.real_name.mini_program", {"pre_entrustweb_id": "p"})
        stub.add_response("combine_papay.mini_program", COMBINE_ANSWER)
        with pytest.raises(StubAssertionError) as caught:
            engine.call("combine_papay.mini_program", COMBINE_PAPAY)
        assert str(caught.value) == f"expected a call to {REAL_NAME_ID}, got a call to {COMBINE_ID}"
        engine.call("individual_contracts.real_name.mini_program", REAL_NAME)
        engine.call("combine_papay.mini_program", COMBINE_PAPAY)


def test_assert_no_pending_responses_lists_what_is_left(engine: Engine) -> None:
    stub = Stubber(engine)
    stub.assert_no_pending_responses()
    stub.add_response("combine_papay.mini_program", COMBINE_ANSWER)
    stub.add_error("combine_papay.mini_program", status=429, code="FREQUENCY_LIMITED", message="slow down")
    with pytest.raises(AssertionError) as caught:
        stub.assert_no_pending_responses()
    assert (
        str(caught.value) == f"2 queued answers were not used: {COMBINE_ID} (200), {COMBINE_ID} (429 FREQUENCY_LIMITED)"
    )
    with stub:
        engine.call("combine_papay.mini_program", COMBINE_PAPAY)
        with pytest.raises(ApiError):
            engine.call("combine_papay.mini_program", COMBINE_PAPAY)
    stub.assert_no_pending_responses()


# -- error answers -----------------------------------------------------------------------------


def test_error_answers_become_api_errors(engine: Engine) -> None:
    detail = {"field": "/plan_id", "location": "body", "issue": "plan does not exist"}
    watcher = WireWatcher()
    engine.plugin_manager.register(watcher)
    with Stubber(engine) as stub:
        stub.add_error(
            "combine_papay.mini_program",
            status=400,
            code="PARAM_ERROR",
            message="参数错误",
            detail=detail,
            expected_payload=COMBINE_PAPAY,
        )
        with pytest.raises(ApiError) as caught:
            engine.call("combine_papay.mini_program", COMBINE_PAPAY)
    error = caught.value
    assert (error.status, error.code, error.message, error.detail) == (400, "PARAM_ERROR", "参数错误", detail)
    assert error.verified is True and re.fullmatch(r"[0-9A-F]{40}-0", error.request_id) is not None
    assert json.loads(watcher.bodies[0]) == {"code": "PARAM_ERROR", "message": "参数错误", "detail": detail}


def test_error_without_detail_and_custom_headers(engine: Engine) -> None:
    with Stubber(engine) as stub:
        stub.add_error(
            "combine_papay.mini_program", status=503, code="SYSTEM_ERROR", message="busy", headers={"Request-ID": "R-1"}
        )
        with pytest.raises(ApiError) as caught:
            engine.call("combine_papay.mini_program", COMBINE_PAPAY)
    assert (caught.value.detail, caught.value.request_id) == (None, "R-1")


def test_statuses_must_fit_the_kind_of_answer(engine: Engine) -> None:
    stub = Stubber(engine)
    with pytest.raises(StubResponseError, match="status 500 is not 2xx; queue errors with add_error"):
        stub.add_response("combine_papay.mini_program", COMBINE_ANSWER, status=500)
    with pytest.raises(StubResponseError) as caught:
        stub.add_error("combine_papay.mini_program", status=200, code="", message=3)  # type: ignore[arg-type]
    assert caught.value.problems == (
        "error status must be 4xx or 5xx, got 200",
        "code must be a non-empty string, got ''",
        "message must be a non-empty string, got 3",
    )
    stub.assert_no_pending_responses()


# -- canned answers against the descriptor -----------------------------------------------------


def test_canned_answer_missing_a_required_field_is_refused(engine: Engine) -> None:
    stub = Stubber(engine)
    answer = {k: v for k, v in COMBINE_ANSWER.items() if k != "pre_entrustweb_id"}
    with pytest.raises(StubResponseError) as caught:
        stub.add_response("combine_papay.mini_program", answer)
    assert isinstance(caught.value, UsageError)
    assert caught.value.endpoint_id == COMBINE_ID
    assert caught.value.problems == ("missing required field @ $.pre_entrustweb_id",)
    assert str(caught.value) == (
        f"1 problem in the canned answer for {COMBINE_ID}:\n  missing required field @ $.pre_entrustweb_id"
    )
    stub.assert_no_pending_responses()


def test_canned_answer_with_wrong_types_is_refused_nested_too(engine: Engine) -> None:
    stub = Stubber(engine)
    with pytest.raises(StubResponseError) as caught:
        stub.add_response(QUERY_ORDER.id, {"transaction_id": 42, "amount": {"total": "100"}})
    assert caught.value.problems == (
        "expected string, got integer @ $.transaction_id",
        "expected integer, got string @ $.amount.total",
    )
    with pytest.raises(StubResponseError, match=r"answer must be an object, got array @ \$"):
        stub.add_response(QUERY_ORDER.id, [])
    with pytest.raises(StubResponseError, match=r"missing required field @ \$\.transaction_id"):
        stub.add_response(QUERY_ORDER.id, None)
    with pytest.raises(StubResponseError, match="answer is not JSON"):
        stub.add_response(QUERY_ORDER.id, {"transaction_id": "t", "when": object()})


def test_canned_answers_may_carry_new_fields_and_values(engine: Engine) -> None:
    answer = {"transaction_id": "t", "trade_state": "REFUND", "amount": {"total": 1, "currency": "CNY"}, "new": True}
    with Stubber(engine) as stub:
        stub.add_response(QUERY_ORDER.id, answer)
        stub.add_response("GET /v3/free/form", ["any", "json"])
        assert engine.call(QUERY_ORDER.id, {"transaction_id": "t", "mchid": "1"}).data == answer
        assert engine.call("GET /v3/free/form").data == ["any", "json"]


# -- real verification and decryption ---------------------------------------------------------


def test_encrypted_answer_fields_go_through_real_decryption(engine: Engine) -> None:
    watcher = WireWatcher()
    engine.plugin_manager.register(watcher)
    answer = {"holder": {"name": "张三", "ids": ["110101199003074477", ""]}, "plain": "p"}
    with Stubber(engine) as stub:
        stub.add_response(SECRET_ANSWER.id, answer)
        assert engine.call(SECRET_ANSWER.id, {"q": "1"}).data == answer
    on_wire = json.loads(watcher.bodies[0])
    assert "张三" not in watcher.bodies[0].decode() and b"110101199003074477" not in watcher.bodies[0]
    assert len(on_wire["holder"]["name"]) == 344 and on_wire["holder"]["ids"][1] == ""  # base64 of an RSA block
    assert on_wire["plain"] == "p"


def test_encrypted_answer_fields_must_fit_one_rsa_block(engine: Engine) -> None:
    with pytest.raises(StubResponseError, match=r"encoded size 300 is over the maximum 214 @ \$\.holder\.name"):
        Stubber(engine).add_response(SECRET_ANSWER.id, {"holder": {"name": "x" * 300}, "plain": "p"})


def test_stub_answers_are_verified_for_real(engine: Engine) -> None:
    with Stubber(engine) as stub:
        engine.plugin_manager.unregister(stub.verifier_plugin)
        stub.add_response("combine_papay.mini_program", COMBINE_ANSWER)
        with pytest.raises(SignatureError) as caught:
            engine.call("combine_papay.mini_program", COMBINE_PAPAY)
        assert caught.value.reason == "unknown_serial" and stub.key_id in str(caught.value)
    with Stubber(engine) as stub:
        stub.add_response("combine_papay.mini_program", COMBINE_ANSWER, headers={"Wechatpay-Signature": "AAAA"})
        with pytest.raises(SignatureError) as caught:
            engine.call("combine_papay.mini_program", COMBINE_PAPAY)
        assert caught.value.reason == "mismatch"


def test_stub_verifier_defers_on_other_keys(engine: Engine) -> None:
    with Stubber(engine) as stub:
        stub.add_response("combine_papay.mini_program", COMBINE_ANSWER, headers={"Wechatpay-Serial": "PUB_KEY_ID_1"})
        with pytest.raises(SignatureError) as caught:  # the built-in verifier answers, and knows no such key
            engine.call("combine_papay.mini_program", COMBINE_PAPAY)
    assert caught.value.reason == "unknown_serial"


def test_answers_are_signed_with_the_engines_clock(identity: SandboxIdentity) -> None:
    moment = 1_600_000_000.0
    engine = Engine.sandbox(identity=identity, clock=lambda: moment, load_entry_points=False)
    with engine, Stubber(engine) as stub:
        stub.add_response("combine_papay.mini_program", COMBINE_ANSWER)
        response = engine.call("combine_papay.mini_program", COMBINE_PAPAY)
    assert response.headers["Wechatpay-Timestamp"] == "1600000000"
    assert response.verified_with == stub.key_id


# -- sync, async, activation -------------------------------------------------------------------


async def test_async_calls_are_stubbed_too(identity: SandboxIdentity) -> None:
    async with Engine.sandbox(identity=identity, load_entry_points=False) as engine:
        with Stubber(engine) as stub:
            for n in range(3):
                stub.add_response("individual_contracts.real_name.mini_program", {"pre_entrustweb_id": f"p{n}"})
            answers = await asyncio.gather(
                *(engine.acall("individual_contracts.real_name.mini_program", REAL_NAME) for _ in range(3))
            )
            assert sorted(a.data["pre_entrustweb_id"] for a in answers) == ["p0", "p1", "p2"]
            stub.add_response("combine_papay.mini_program", COMBINE_ANSWER, expected_payload=COMBINE_PAPAY)
            assert engine.call("combine_papay.mini_program", COMBINE_PAPAY).data == COMBINE_ANSWER  # sync, same engine
            stub.assert_no_pending_responses()
        assert (await engine.acall("combine_papay.mini_program", COMBINE_PAPAY)).verified_with != stub.key_id
        assert len(engine.emulator.exchanges) == 1


def test_deactivate_restores_the_sandbox_transport(engine: Engine) -> None:
    engine.call("combine_papay.mini_program", COMBINE_PAPAY)  # the sandbox transport is cached now
    stub = Stubber(engine)
    with stub:
        stub.add_response("combine_papay.mini_program", COMBINE_ANSWER)
        engine.call("combine_papay.mini_program", COMBINE_PAPAY)
        assert len(engine.emulator.exchanges) == 1
    assert not engine.plugin_manager.is_registered(stub.transport_plugin)
    assert not engine.plugin_manager.is_registered(stub.verifier_plugin)
    response = engine.call("combine_papay.mini_program", COMBINE_PAPAY)
    assert len(engine.emulator.exchanges) == 2
    assert response.verified_with == engine.emulator.identity.platform_public_key_id
    stub.activate()
    stub.activate()  # idempotent
    stub.add_response("combine_papay.mini_program", COMBINE_ANSWER)
    assert engine.call("combine_papay.mini_program", COMBINE_PAPAY).data == COMBINE_ANSWER
    stub.deactivate()
    stub.deactivate()
    assert len(engine.emulator.exchanges) == 2 and "active=False" in repr(stub)


def test_nothing_reaches_a_real_transport(identity: SandboxIdentity) -> None:
    engine = Engine(**identity.engine_settings(), base_url="http://127.0.0.1:9", load_entry_points=False)
    with engine, Stubber(engine) as stub:
        stub.add_response("combine_papay.mini_program", COMBINE_ANSWER)
        assert engine.call("combine_papay.mini_program", COMBINE_PAPAY).data == COMBINE_ANSWER


# -- the pytest plugin -------------------------------------------------------------------------


def test_fixture_wechatpay_stubber(wechatpay_stubber: Stubber, wechatpay_sandbox: Engine) -> None:
    assert wechatpay_stubber.engine is wechatpay_sandbox and wechatpay_stubber.active
    wechatpay_stubber.add_response("combine_papay.mini_program", COMBINE_ANSWER, expected_payload=COMBINE_PAPAY)
    assert wechatpay_sandbox.call("combine_papay.mini_program", COMBINE_PAPAY).data == COMBINE_ANSWER
    assert wechatpay_sandbox.emulator.exchanges == []


def test_fixture_wechatpay_sandbox(wechatpay_sandbox: Engine, wechatpay_sandbox_identity: SandboxIdentity) -> None:
    assert wechatpay_sandbox.emulator.identity is wechatpay_sandbox_identity
    assert wechatpay_sandbox.call("combine_papay.mini_program", COMBINE_PAPAY).status == 200


def test_fixture_checks_pending_answers_after_passing_tests_only(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import pytest

        @pytest.fixture
        def wechatpay_sandbox_options():
            return {"mode": "certificate"}
        """
    )
    pytester.makepyfile(
        """
        def test_leaves_one(wechatpay_stubber, wechatpay_sandbox):
            assert wechatpay_sandbox.keyring.ids() == [wechatpay_sandbox.emulator.identity.platform_certificate_serial]
            wechatpay_stubber.add_error("combine_papay.mini_program", status=500, code="SYSTEM_ERROR", message="x")

        def test_fails_first(wechatpay_stubber):
            wechatpay_stubber.add_error("combine_papay.mini_program", status=500, code="SYSTEM_ERROR", message="x")
            assert False, "the test's own failure"
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-p", "no:asyncio")
    result.assert_outcomes(passed=1, failed=1, errors=1)
    result.stdout.fnmatch_lines(["*StubAssertionError: 1 queued answer was not used: *(500 SYSTEM_ERROR)"])
    assert "the test's own failure" in result.stdout.str()


def test_sandbox_server_fixture_serves_any_http_client(wechatpay_sandbox_server) -> None:
    import urllib.request

    served = wechatpay_sandbox_server
    engine = served.engine()
    answer = engine.call("combine_papay.mini_program", COMBINE_PAPAY)
    assert answer.status == 200 and served.base_url.startswith("http://127.0.0.1:")
    assert served.sandbox.last.request.target.startswith("/v3/ecommerce/combine-papay/")
    with urllib.request.urlopen(served.base_url + "/sandbox/exchanges", timeout=PATIENCE) as listing:
        assert json.loads(listing.read())[-1]["status"] == 200


async def test_sandbox_server_fixture_in_async_tests(wechatpay_sandbox_server) -> None:
    engine = wechatpay_sandbox_server.engine()
    assert (await engine.acall("combine_papay.mini_program", COMBINE_PAPAY)).verified_with
    await engine.aclose()
