"""Bill downloads: verified step 1, digest-checked streamed step 2, gzip, and no half files."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path
from typing import AsyncIterator

import pytest

from engine import ApiError, Engine, UsageError
from engine.downloads import DigestMismatchError
from engine.sandbox import Sandbox, SandboxIdentity
from engine.sandbox.faults import Fault
from engine.sandbox.server import SandboxServer

BILL = {"bill_date": "2026-11-21", "bill_type": "ALL"}


def test_trade_bill_download(engine: Engine, tmp_path: Path) -> None:
    result = engine.download("v3.bill.tradebill.get", BILL, tmp_path / "bill.csv")
    content = (tmp_path / "bill.csv").read_bytes()
    assert content.startswith("交易时间".encode()) and b"`2026-11-21 10:00:00" in content
    assert result.hash_type == "SHA1" and result.hash_value == hashlib.sha1(content).hexdigest()
    assert result.size == len(content) and not result.compressed
    step_one, step_two = engine.emulator.exchanges
    assert step_one.request.target == "/v3/bill/tradebill?bill_date=2026-11-21&bill_type=ALL"
    assert step_two.request.target.startswith("/v3/billdownload/file?token=")
    assert "Authorization" in step_two.request.headers and "Wechatpay-Signature" not in step_two.response.headers


def test_gzip_bill_is_hashed_uncompressed_and_gunzipped(engine: Engine, tmp_path: Path) -> None:
    result = engine.download(
        "v3.bill.fundflowbill.get", {"bill_date": "2026-11-21", "tar_type": "GZIP"}, tmp_path / "f.csv"
    )
    assert result.compressed and (tmp_path / "f.csv").read_bytes().startswith("交易时间".encode())
    kept = engine.download("v3.bill.tradebill.get", {**BILL, "tar_type": "GZIP"}, tmp_path / "t.csv.gz", gunzip=False)
    assert gzip.decompress((tmp_path / "t.csv.gz").read_bytes()).startswith("交易时间".encode())
    assert kept.hash_value == hashlib.sha1(gzip.decompress((tmp_path / "t.csv.gz").read_bytes())).hexdigest()


def test_digest_mismatch_leaves_no_file(engine: Engine, tmp_path: Path) -> None:
    engine.emulator.faults.add(Fault("corrupt_download"), endpoint="v3.billdownload.file.get")
    dest = tmp_path / "bill.csv"
    with pytest.raises(DigestMismatchError, match="differs from the announced"):
        engine.download("v3.bill.tradebill.get", BILL, dest)
    assert not dest.exists() and list(tmp_path.iterdir()) == []


def test_expired_download_url_is_an_api_error_and_leaves_no_file(engine: Engine, tmp_path: Path) -> None:
    engine.emulator.faults.add(
        Fault.error(400, "INVALID_REQUEST", "下载链接已失效"), endpoint="v3.billdownload.file.get"
    )
    with pytest.raises(ApiError) as caught:
        engine.download("v3.bill.tradebill.get", BILL, tmp_path / "b.csv")
    assert (caught.value.status, caught.value.code) == (400, "INVALID_REQUEST")
    assert list(tmp_path.iterdir()) == []


def test_download_url_must_be_on_the_engines_origin(engine: Engine, tmp_path: Path) -> None:
    from engine.testing import Stubber

    answer = {
        "hash_type": "SHA1",
        "hash_value": "0" * 40,
        "download_url": "https://evil.example/v3/billdownload/file?t=1",
    }
    with Stubber(engine) as stub:
        stub.add_response("v3.bill.tradebill.get", answer)
        with pytest.raises(UsageError, match=r"download_url is on https://evil\.example, not the engine's"):
            engine.download("v3.bill.tradebill.get", BILL, tmp_path / "b.csv")
    assert list(tmp_path.iterdir()) == []


def test_not_a_bill_endpoint(engine: Engine, tmp_path: Path) -> None:
    from conftest import COMBINE_PAPAY

    with pytest.raises(UsageError, match="did not answer with download_url"):
        engine.download("combine_papay.mini_program", COMBINE_PAPAY, tmp_path / "x")


@pytest.fixture
async def http_engine(identity: SandboxIdentity) -> AsyncIterator[Engine]:
    async with SandboxServer(Sandbox(identity)) as server:
        engine = Engine(**identity.engine_settings(), base_url=server.base_url, load_entry_points=False)
        yield engine
        await engine.aclose()


async def test_streamed_download_over_http(http_engine: Engine, tmp_path: Path) -> None:
    result = await http_engine.adownload("v3.bill.tradebill.get", {**BILL, "tar_type": "GZIP"}, tmp_path / "b.csv")
    assert result.compressed and result.size == (tmp_path / "b.csv").stat().st_size
    assert (tmp_path / "b.csv").read_bytes().endswith(b"`3,`6.00\n")
