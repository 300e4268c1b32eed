"""Regressions for the findings of a cold review: each test failed before its fix."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from conftest import COMBINE_PAPAY
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from engine import Engine, SignatureError, UsageError, hookimpl
from engine.keys import PlatformKey, PlatformKeyring
from engine.plugins.verifier import verify_signed
from engine.sandbox.emulator import signed_answer


def test_query_in_a_method_path_reference_is_sent_and_typed(engine: Engine) -> None:
    engine.call("GET /v3/certificates?algorithm_type=SM2")
    assert engine.emulator.last.request.target == "/v3/certificates?algorithm_type=SM2"
    answer = engine.call("GET /v3/edu-papay/transactions/id/4200000001?sub_mchid=1900000109")
    assert engine.emulator.last.request.target == "/v3/edu-papay/transactions/id/4200000001?sub_mchid=1900000109"
    assert answer.endpoint_id == "v3.edu_papay.transactions.id._transaction_id_.get"


def test_array_query_values_travel_comma_separated(engine: Engine) -> None:
    from engine import Descriptor, Field, RequestSpec

    engine.register(
        Descriptor(
            id="t.arr.get",
            method="GET",
            path="/v3/t/arr",
            request=RequestSpec(query={"ids": Field(type="array", items=Field(type="integer"))}),
        )
    )
    engine.call("t.arr.get", {"ids": [1, 2, 3]})
    assert engine.emulator.last.request.target == "/v3/t/arr?ids=1%2C2%2C3"
    assert engine.emulator.last.payload == {"ids": [1, 2, 3]}


@pytest.mark.parametrize("value", ["a\r\nX-Evil: 1", "a\nb"])
def test_header_values_cannot_inject_headers(engine: Engine, value: str) -> None:
    with pytest.raises(UsageError, match="contains a line break"):
        engine.call("combine_papay.mini_program", COMBINE_PAPAY, headers={"Idempotency-Key": value})
    assert engine.emulator.exchanges == []


@pytest.mark.parametrize("value", ["", ".", ".."])
def test_undescribed_chain_refuses_dot_segments(engine: Engine, value: str) -> None:
    with pytest.raises(UsageError, match=r"must not be empty, '\.' or '\.\.'"):
        engine.v3.no_such_thing._order_.get(order=value)
    assert engine.emulator.exchanges == []


def test_expired_certificate_no_longer_verifies(identity) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "old")])
    past = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(12345)
        .not_valid_before(past)
        .not_valid_after(past + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    now = int(dt.datetime.now(dt.UTC).timestamp())
    answer = signed_answer(200, b"{}", "3039", key, now)
    with pytest.raises(SignatureError) as caught:
        verify_signed(answer.headers, answer.body, PlatformKeyring([PlatformKey.from_certificate(cert)]), now)
    assert caught.value.reason == "expired"


def test_bill_file_download_is_seen_by_observers(engine: Engine, tmp_path: Path) -> None:
    seen = []

    class Watch:
        @hookimpl
        def wxpay_after_response(self, call, request, response, error, elapsed_ms):
            seen.append((request.target.split("?")[0], response.status if response else None))

    engine.plugin_manager.register(Watch())
    engine.download("v3.bill.tradebill.get", {"bill_date": "2026-11-21"}, tmp_path / "b.csv")
    assert seen == [("/v3/bill/tradebill", 200), ("/v3/billdownload/file", 200)]
