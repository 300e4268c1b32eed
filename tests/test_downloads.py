"""Bill downloads: verified step 1, digest-checked streamed step 2, gzip, and no half files."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import tracemalloc
from pathlib import Path
from typing import AsyncIterator, Iterator

import pytest

from engine import AnswerTooLargeError, ApiError, Engine, MalformedResponseError, MockTransport, RetryPolicy, UsageError
from engine.downloads import DigestMismatchError
from engine.sandbox import Sandbox, SandboxIdentity
from engine.sandbox.faults import Fault
from engine.sandbox.server import SandboxServer
from engine.wire import Headers, RawResponse, Request

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


# -- bounds: whatever the peer sends, memory and the disk stay bounded and nothing half-written stays --


def test_a_bill_past_max_bytes_fails_and_leaves_no_file(engine: Engine, tmp_path: Path) -> None:
    with pytest.raises(AnswerTooLargeError, match="larger than 64 bytes"):
        engine.download("v3.bill.tradebill.get", BILL, tmp_path / "b.csv", max_bytes=64)
    assert list(tmp_path.iterdir()) == []
    assert len(engine.emulator.exchanges) == 2  # never retried: the stream had started


def test_max_bytes_counts_the_uncompressed_bill_even_when_it_is_kept_compressed(engine: Engine, tmp_path: Path) -> None:
    whole = engine.download("v3.bill.tradebill.get", BILL, tmp_path / "plain.csv")
    with pytest.raises(AnswerTooLargeError):
        engine.download(
            "v3.bill.tradebill.get",
            {**BILL, "tar_type": "GZIP"},
            tmp_path / "b.gz",
            gunzip=False,
            max_bytes=whole.size - 1,
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.csv"]
    exact = engine.download("v3.bill.tradebill.get", BILL, tmp_path / "exact.csv", max_bytes=whole.size)
    assert exact.size == whole.size  # the bound is inclusive


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "1024"])
def test_a_bad_max_bytes_is_refused_before_anything_is_sent(engine: Engine, tmp_path: Path, bad: object) -> None:
    with pytest.raises(UsageError, match="max_bytes must be a positive int or None"):
        engine.download("v3.bill.tradebill.get", BILL, tmp_path / "b.csv", max_bytes=bad)  # type: ignore[arg-type]
    assert engine.emulator.exchanges == [] and list(tmp_path.iterdir()) == []


def _bill_served_as(identity: SandboxIdentity, body: bytes) -> Iterator[Engine]:
    """An engine whose step 1 is the sandbox's (verified, as ever) and whose file answer is ``body``."""
    sandbox = Sandbox(identity)

    def handler(request: Request) -> RawResponse:
        if request.target.startswith("/v3/billdownload/file"):
            return RawResponse(200, Headers({"Content-Type": "application/octet-stream"}), body)
        return sandbox.handle(request)

    engine = Engine(
        **identity.engine_settings(),
        transport=MockTransport(handler),
        retry=RetryPolicy.never(),
        load_entry_points=False,
    )
    yield engine
    engine.close()


BOMB_BYTES = 64 * 1024 * 1024  # inflated; about 64 KiB compressed, one transport chunk


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    return gzip.compress(bytes(BOMB_BYTES), compresslevel=9)


def test_a_gzip_bomb_is_inflated_a_piece_at_a_time_and_stops_at_max_bytes(
    identity: SandboxIdentity, gzip_bomb: bytes, tmp_path: Path
) -> None:
    for engine in _bill_served_as(identity, gzip_bomb):
        engine.call("v3.bill.tradebill.get", BILL)  # warm: imports and keys out of the measured peak
        tracemalloc.start()
        try:
            with pytest.raises(AnswerTooLargeError, match="larger than 8388608 bytes"):
                engine.download("v3.bill.tradebill.get", BILL, tmp_path / "b.csv", max_bytes=8 * 1024 * 1024)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert len(gzip_bomb) < 128 * 1024 < 8 * 1024 * 1024 < BOMB_BYTES
    # An unbounded decompress(chunk) holds one chunk's whole inflation (~64 MiB) at once.
    assert peak < 4 * 1024 * 1024
    assert list(tmp_path.iterdir()) == []


def test_a_gzip_bomb_under_no_bound_still_inflates_in_bounded_pieces(
    identity: SandboxIdentity, gzip_bomb: bytes, tmp_path: Path
) -> None:
    for engine in _bill_served_as(identity, gzip_bomb):
        engine.call("v3.bill.tradebill.get", BILL)
        tracemalloc.start()
        try:
            with pytest.raises(DigestMismatchError):  # the bomb is not the bill step 1 announced
                engine.download("v3.bill.tradebill.get", BILL, tmp_path / "b.csv", max_bytes=None)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak < 4 * 1024 * 1024
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "body", [b"\x1f\x8b" + b"\xff" * 64, gzip.compress("交易时间,x\n".encode())[:10] + b"\x00garbage" * 8]
)
def test_a_corrupt_gzip_bill_is_a_typed_error_and_leaves_no_file(
    identity: SandboxIdentity, tmp_path: Path, body: bytes
) -> None:
    for engine in _bill_served_as(identity, body):
        with pytest.raises(MalformedResponseError, match="compressed body is corrupt"):
            engine.download("v3.bill.tradebill.get", BILL, tmp_path / "b.csv")
    assert list(tmp_path.iterdir()) == []


async def test_max_bytes_bounds_a_download_streamed_over_http(http_engine: Engine, tmp_path: Path) -> None:
    with pytest.raises(AnswerTooLargeError):
        await http_engine.adownload("v3.bill.tradebill.get", BILL, tmp_path / "b.csv", max_bytes=64)
    assert list(tmp_path.iterdir()) == []
    again = await http_engine.adownload("v3.bill.tradebill.get", BILL, tmp_path / "b.csv")
    assert again.size > 64  # the connection the refused stream used did not spoil the next


# -- what follows a gzip stream: refused, never held, counted, or kept unverified --


def _real_bill(identity: SandboxIdentity, tmp_path: Path) -> bytes:
    honest = Engine(
        **identity.engine_settings(),
        transport=MockTransport(Sandbox(identity).handle),
        retry=RetryPolicy.never(),
        load_entry_points=False,
    )
    try:
        honest.download("v3.bill.tradebill.get", BILL, tmp_path / "real.csv")
        return (tmp_path / "real.csv").read_bytes()
    finally:
        honest.close()
        (tmp_path / "real.csv").unlink()


def test_trailing_data_after_a_gzip_bill_is_not_held_in_memory(identity: SandboxIdentity, tmp_path: Path) -> None:
    # zlib parks everything after the end of the gzip stream in unused_data, growing by copy: the
    # "endless body" the docstring promises to bound is held whole (peak ~2x the junk, quadratic time).
    body = gzip.compress(_real_bill(identity, tmp_path)) + bytes(16 * 1024 * 1024)
    for engine in _bill_served_as(identity, body):
        engine.call("v3.bill.tradebill.get", BILL)
        tracemalloc.start()
        try:
            with contextlib.suppress(MalformedResponseError):
                engine.download("v3.bill.tradebill.get", BILL, tmp_path / "b.csv", max_bytes=None)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak < 4 * 1024 * 1024


def test_a_second_gzip_member_is_not_kept_unverified(identity: SandboxIdentity, tmp_path: Path) -> None:
    # Only the first member is hashed; with gunzip=False the kept file carries an unverified second
    # member that gzip.decompress / zcat read as part of the bill.
    forged = b"`2026-11-21 23:59:59,`FORGED,`999999.00\n"
    body = gzip.compress(_real_bill(identity, tmp_path)) + gzip.compress(forged)
    for engine in _bill_served_as(identity, body):
        with pytest.raises(MalformedResponseError):
            engine.download("v3.bill.tradebill.get", BILL, tmp_path / "b.csv.gz", gunzip=False)
    assert list(tmp_path.iterdir()) == []


async def test_max_bytes_bounds_junk_after_a_gzip_content_encoding(identity: SandboxIdentity, tmp_path: Path) -> None:
    # Content-Encoding: gzip over HTTP: the transport's Inflater (limit None) swallows whatever follows
    # the gzip stream, so the sink - and max_bytes - never sees it: 8 MiB read against max_bytes=64 KiB.
    from aiohttp import web

    real = _real_bill(identity, tmp_path)

    class Hostile(SandboxServer):
        def app(self) -> web.Application:
            app = web.Application()
            app.router.add_get("/v3/billdownload/file", self._file)
            app.router.add_route("*", "/{tail:.*}", self._wechatpay)
            return app

        async def _file(self, http: web.Request) -> web.StreamResponse:
            answer = web.StreamResponse(status=200, headers={"Content-Encoding": "gzip"})
            await answer.prepare(http)
            await answer.write(gzip.compress(real))
            for _ in range(128):
                await answer.write(bytes(65536))
            await answer.write_eof()
            return answer

    async with Hostile(Sandbox(identity)) as server:
        engine = Engine(**identity.engine_settings(), base_url=server.base_url, load_entry_points=False)
        try:
            with pytest.raises((AnswerTooLargeError, MalformedResponseError)):
                await engine.adownload("v3.bill.tradebill.get", BILL, tmp_path / "b.csv", max_bytes=64 * 1024)
        finally:
            await engine.aclose()
    assert list(tmp_path.iterdir()) == []


def test_max_bytes_is_the_uncompressed_size_even_for_a_small_gzip_bill(
    identity: SandboxIdentity, tmp_path: Path
) -> None:
    # A 4-byte bill, gzipped (24 bytes), under max_bytes=4: the docs bound the *uncompressed* size,
    # inclusively; the compressed-bytes check refuses it (it should get as far as the digest).
    for engine in _bill_served_as(identity, gzip.compress(b"a,b\n")):
        with pytest.raises(DigestMismatchError):
            engine.download("v3.bill.tradebill.get", BILL, tmp_path / "b.csv", max_bytes=4)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("gzipped", [False, True])
def test_a_body_whose_first_chunk_is_one_byte_keeps_its_order_and_kind(tmp_path: Path, gzipped: bool) -> None:
    """The byte held to tell gzip from text was written at the end of the file once a big chunk followed."""
    from engine.downloads import _Sink

    bill = "交易时间,x\n".encode() * 3
    body = gzip.compress(bill) if gzipped else bill
    with (tmp_path / "b").open("wb") as file:
        sink = _Sink(file, hashlib.sha1(), True, None)
        sink.write(body[:1])
        sink.write(body[1:])
        sink.finish()
    assert (tmp_path / "b").read_bytes() == bill and sink.compressed is gzipped
    assert sink.digest.hexdigest() == hashlib.sha1(bill).hexdigest()


def test_a_gzip_bill_cut_before_its_trailer_is_refused(identity: SandboxIdentity, tmp_path: Path) -> None:
    whole = gzip.compress(_real_bill(identity, tmp_path))
    for engine in _bill_served_as(identity, whole[:-8]):  # the stream's CRC and length missing
        with pytest.raises(MalformedResponseError, match="ends before the end of its stream"):
            engine.download("v3.bill.tradebill.get", BILL, tmp_path / "b.csv.gz", gunzip=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("make_dest", "reason"),
    [
        (lambda tmp: tmp / "missing" / "b.csv", "its directory does not exist"),
        (lambda tmp: tmp, "names a directory"),
        (lambda tmp: Path("/"), "names a directory"),
        (lambda tmp: None, "dest must be a path"),
        (lambda tmp: 42, "dest must be a path"),
    ],
)
def test_a_bad_dest_is_refused_before_anything_is_sent(engine: Engine, tmp_path: Path, make_dest, reason) -> None:
    with pytest.raises(UsageError, match=reason):
        engine.download("v3.bill.tradebill.get", BILL, make_dest(tmp_path))
    assert engine.emulator.exchanges == [] and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ({"hash_type": "SHAKE_128", "download_url": "/f"}, "unsupported hash_type 'SHAKE_128'"),
        ({"hash_type": "NOPE", "download_url": "/f"}, "unsupported hash_type 'NOPE'"),
        ({"hash_type": "SHA1", "download_url": "https://[::1/v3/billdownload/file"}, "download_url is not a URL"),
        ({"hash_type": "SHA1", "download_url": "https://127.0.0.1:99999/x"}, "download_url is not a URL"),
    ],
)
def test_a_bill_answer_that_cannot_be_followed_is_a_typed_error(
    engine: Engine, tmp_path: Path, answer: dict, message: str
) -> None:
    from engine.testing import Stubber

    url = answer["download_url"]
    answer = {
        **answer,
        "hash_value": "0" * 40,
        "download_url": engine.pipeline.settings.base_url + url if url == "/f" else url,
    }
    with Stubber(engine) as stub:
        stub.add_response("v3.bill.tradebill.get", answer)
        with pytest.raises(MalformedResponseError, match=message):
            engine.download("v3.bill.tradebill.get", BILL, tmp_path / "b.csv")
    assert list(tmp_path.iterdir()) == []


def test_the_bill_file_is_readable_by_its_owner_only(engine: Engine, tmp_path: Path) -> None:
    engine.download("v3.bill.tradebill.get", BILL, tmp_path / "bill.csv")
    assert (tmp_path / "bill.csv").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(("name", "reason"), [("a\0b.csv", "holds a NUL character"), ("x" * 300, "File name too long")])
def test_a_dest_the_file_system_cannot_take_is_refused_before_anything_is_sent(
    engine: Engine, tmp_path: Path, name: str, reason: str
) -> None:
    with pytest.raises(UsageError, match=reason):
        engine.download("v3.bill.tradebill.get", BILL, str(tmp_path / name))
    assert engine.emulator.exchanges == [] and list(tmp_path.iterdir()) == []


def test_a_dest_near_the_name_limit_still_gets_its_partial_file(engine: Engine, tmp_path: Path) -> None:
    """The partial's name was dest's name plus 17 characters: a valid 245-character dest failed after step 1."""
    dest = tmp_path / ("b" * 241 + ".csv")
    result = engine.download("v3.bill.tradebill.get", BILL, dest)
    assert result.path == dest and [p.name for p in tmp_path.iterdir()] == [dest.name]
