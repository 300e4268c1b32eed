"""Upload size limits: declared per file part (``max_bytes``), enforced before signing, never read past."""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from engine import (
    ApiError,
    Descriptor,
    DescriptorError,
    Engine,
    Field,
    MockTransport,
    RequestSpec,
    ValidationError,
    multipart,
)
from engine.loader import structure_descriptor
from engine.reference import request_rows
from engine.registry import BUILTIN_ENDPOINTS, Registry
from engine.sandbox import Sandbox, SandboxIdentity
from tools.import_catalogue import import_catalogue

IMAGES = "v3.merchant_service.images.upload.post"  # "文件大小不能超过2M" in the catalogue
TWO_MIB = 2 * 1024 * 1024
# What the catalogue (or, where it is silent, WeChat Pay's page for the API) states for each upload.
DECLARED = {
    "v2.secapi.mch.uploadmedia.post": ("media", TWO_MIB),
    "v3.global.merchant_service.images.upload.post": ("file", TWO_MIB),
    "v3.marketing.favor.media.image_upload.post": ("file", TWO_MIB),  # page chapter9_0_1
    "v3.marketing.shopping_receipt.shoppingreceipts.post": ("file", 200 * 1024),
    "v3.merchant.media.upload.post": ("file", 7864320),  # images 5M, PDFs 7.5M: the larger
    "v3.merchant.media.video_upload.post": ("file", 5 * 1024 * 1024),  # page chapter3_2
    "v3.merchant_service.images.upload.post": ("file", TWO_MIB),
    "v3.new_tax_control_fapiao.fapiao_applications.upload_fapiao_file.post": ("file", TWO_MIB),
}
SMALL = Descriptor(
    id="t.small.upload.post",
    method="POST",
    path="/v3/t/small/upload",
    body="multipart",
    request=RequestSpec(
        body={
            "file": Field(type="file", required=True, max_bytes=1000),
            "meta": Field(type="object", required=True, fields={"filename": Field(), "sha256": Field()}),
        }
    ),
    response={"media_id": Field(required=True)},
)


@pytest.fixture
def recorded(identity: SandboxIdentity) -> Iterator[tuple[Engine, MockTransport]]:
    """An engine whose transport records every request it is handed, answered by a sandbox."""
    transport = MockTransport(Sandbox(identity).handle)
    engine = Engine(**identity.engine_settings(), transport=transport, load_entry_points=False)
    yield engine, transport
    engine.close()


def _refusal(engine: Engine, transport: MockTransport, ref: str, payload: Any) -> tuple[str, ...]:
    """The problems of a call that must be refused before it is signed or reaches the transport."""
    signed: list[Any] = []
    sign = engine.pipeline.sign
    engine.pipeline.sign = lambda prepared: signed.append(prepared) or sign(prepared)  # type: ignore[method-assign]
    with pytest.raises(ValidationError) as caught:
        engine.call(ref, payload)
    assert signed == [] and transport.requests == [], "an oversized upload was signed or sent"
    return caught.value.errors


def _peak_bytes(call: Callable[[], Any]) -> int:
    """The most memory Python allocated while ``call`` ran."""
    tracemalloc.start()
    try:
        call()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


# -- the declared limits ---------------------------------------------------------------------------


def test_the_built_in_uploads_declare_the_documented_limits() -> None:
    registry = Registry([BUILTIN_ENDPOINTS])
    uploads = [registry.get(ref) for ref in registry.ids() if registry.get(ref).body_kind == "multipart"]
    declared = {
        d.id: (name, f.max_bytes) for d in uploads for name, f in d.request.body.items() if f.max_bytes is not None
    }
    assert declared == DECLARED
    assert len(uploads) == 15  # the other seven state no size: the engine's ceiling applies to them


def test_the_reference_tables_show_the_limit() -> None:
    rows = {row.path: row for row in request_rows(Registry([BUILTIN_ENDPOINTS]).get(IMAGES))}
    assert rows["file"].limits == {"max_bytes": TWO_MIB}
    assert rows["file"].limits_text() == f"bytes <= {TWO_MIB}"


VIDEO_PAGE = "https://pay.weixin.qq.com/wiki/doc/apiv3/wxpay/tool/chapter3_2.shtml"
UPLOAD_YAML = """\
post:
  summary: 上传
  description: {operation}
  parameters:
    - name: file
      in: formData
      type: file
      required: true
      description: {part}
    - name: meta
      in: formData
      type: string
      required: true
      schema:
        type: object
        properties:
          sha256:
            type: string
  responses: {{}}
"""


@pytest.mark.parametrize(
    ("relative", "operation", "part", "limit", "source"),
    [
        (
            "v3/a/upload.yaml",
            "媒体图片文件大小不能超过5M。PDF文件大小不能超过7.5M。",
            "图片文件",
            7864320,
            "the catalogue",
        ),
        ("v3/a/upload.yaml", "上传", "图片文件，文件大小不能超过200KB。", 204800, "the catalogue"),
        ("v3/a/upload.yaml", "图片大小不超过2M", "图片文件", TWO_MIB, "the catalogue"),
        ("v3/a/upload.yaml", "上传", "图片文件", None, None),
        ("v3/merchant/media/video_upload.yaml", "上传", "视频文件", 5 * 1024 * 1024, VIDEO_PAGE),
    ],
)
def test_the_importer_carries_the_stated_size(
    tmp_path: Path, relative: str, operation: str, part: str, limit: Any, source: Any
) -> None:
    catalogue = tmp_path / "catalogue"
    for top in ("v3", "hk", "global"):
        (catalogue / top).mkdir(parents=True)
    (catalogue / relative).parent.mkdir(parents=True, exist_ok=True)
    (catalogue / relative).write_text(UPLOAD_YAML.format(operation=operation, part=part), encoding="utf-8")
    report = import_catalogue(catalogue, tmp_path / "out")
    (written,) = report.written
    assert Registry([tmp_path / "out"]).get(written.id).request.body["file"].max_bytes == limit
    reported = [line for line in report.traits if "max_bytes" in line]
    assert reported == ([] if limit is None else [f"{written.operation}: file max_bytes {limit} from {source}"])


@pytest.mark.parametrize(
    ("field", "problem"),
    [
        ({"type": "string", "max_bytes": 10}, "'max_bytes' is only for type file @ $.request.body.file.max_bytes"),
        ({"type": "file", "max_bytes": 0}, "max_bytes must be at least 1, got 0 @ $.request.body.file.max_bytes"),
    ],
)
def test_a_misplaced_or_empty_limit_is_a_descriptor_error(field: dict[str, Any], problem: str) -> None:
    raw = {"method": "POST", "path": "/v3/t", "body": "multipart", "request": {"body": {"file": field}}}
    with pytest.raises(DescriptorError) as caught:
        structure_descriptor(raw, "t.post", source="t.yaml")
    assert caught.value.problems == (problem,)


# -- refused before signing, sent when it fits ------------------------------------------------------


def test_bytes_over_the_limit_are_refused_naming_field_size_and_limit(recorded) -> None:
    engine, transport = recorded
    payload = {"file": bytes(TWO_MIB + 1), "meta": {"filename": "a.png"}}
    errors = _refusal(engine, transport, IMAGES, payload)
    assert errors == (f"size {TWO_MIB + 1} bytes is over the maximum {TWO_MIB} bytes @ $.file",)


def test_a_path_over_the_limit_is_refused_without_being_read(recorded, tmp_path: Path) -> None:
    engine, transport = recorded
    picture = tmp_path / "huge.png"
    with picture.open("wb") as file:
        file.truncate(256 * 1024 * 1024)  # sparse: 256 MiB on paper, nothing on disk
    peak = _peak_bytes(lambda: _refusal(engine, transport, IMAGES, {"file": picture}))
    assert peak < TWO_MIB, f"{peak} bytes allocated: the file was read"
    with pytest.raises(ValidationError) as caught:
        engine.call(IMAGES, {"file": picture})
    assert caught.value.errors == (f"size {256 * 1024 * 1024} bytes is over the maximum {TWO_MIB} bytes @ $.file",)


@pytest.mark.parametrize("given", ["bytes", "path"])
def test_exactly_at_the_limit_is_sent(recorded, tmp_path: Path, given: str) -> None:
    engine, transport = recorded
    content = b"\x89PNG" + bytes(TWO_MIB - 4)
    picture = tmp_path / "edge.png"
    picture.write_bytes(content)
    payload = {"file": picture} if given == "path" else {"file": content, "meta": {"filename": "edge.png"}}
    assert engine.call(IMAGES, payload).data["media_id"]
    (request,) = transport.requests
    parts = multipart.decode(request.headers["Content-Type"], request.body)
    assert parts["file"] == ("edge.png", content)


@pytest.fixture
def growing(recorded, tmp_path: Path) -> tuple[Engine, MockTransport, Path]:
    """The recording engine with ``SMALL`` (1000 bytes at most) and a 10-byte file to grow."""
    engine, transport = recorded
    engine.register(SMALL)
    picture = tmp_path / "growing.png"
    picture.write_bytes(bytes(10))
    return engine, transport, picture


def test_a_file_that_grows_after_it_was_measured_is_read_no_further(growing, monkeypatch: pytest.MonkeyPatch) -> None:
    """The file passes ``fstat`` at 10 bytes, then becomes 256 MiB before it is read."""
    engine, transport, picture = growing
    inode = picture.stat().st_ino
    real_fstat = os.fstat

    def fstat_then_grow(fd: int) -> os.stat_result:
        measured = real_fstat(fd)
        if measured.st_ino == inode:
            os.truncate(picture, 256 * 1024 * 1024)
        return measured

    monkeypatch.setattr(os, "fstat", fstat_then_grow)
    errors: list[tuple[str, ...]] = []
    peak = _peak_bytes(lambda: errors.append(_refusal(engine, transport, SMALL.id, {"file": picture})))
    assert peak < 1024 * 1024, f"{peak} bytes allocated: the file was read past its limit"
    assert errors == [(f"size {256 * 1024 * 1024} bytes is over the maximum 1000 bytes @ $.file",)]


def test_a_file_that_grows_past_its_limit_after_validation_is_not_sent(
    growing, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, transport, picture = growing
    validate = multipart.file_problem

    def validate_then_grow(value: Any, limit: int) -> Any:
        problem = validate(value, limit)
        os.truncate(picture, 5000)  # after validation measured it
        return problem

    monkeypatch.setattr("engine.validation.file_problem", validate_then_grow)
    errors = _refusal(engine, transport, SMALL.id, {"file": picture, "meta": {"sha256": "0" * 64}})
    assert errors == ("size 5000 bytes is over the maximum 1000 bytes @ $.file",)


def test_an_undeclared_upload_has_the_engine_ceiling(recorded) -> None:
    engine, transport = recorded
    ceiling = multipart.MAX_UPLOAD_BYTES
    payload = {"file": bytes(ceiling + 1), "meta": {"filename": "a.png"}}
    errors = _refusal(engine, transport, "v3.marketing.partner.product_coupon.media.upload_image.post", payload)
    assert errors == (f"size {ceiling + 1} bytes is over the maximum {ceiling} bytes @ $.file",)


def test_an_apiv2_upload_over_its_limit_is_refused(engine: Engine) -> None:
    with pytest.raises(ValidationError) as caught:
        engine.call("v2.secapi.mch.uploadmedia.post", {"media": bytes(TWO_MIB + 1)})
    assert caught.value.errors == (f"size {TWO_MIB + 1} bytes is over the maximum {TWO_MIB} bytes @ $.media",)
    assert engine.emulator.exchanges == []


def test_an_apiv2_file_unreadable_when_encoded_is_refused_not_sent_empty(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    picture = tmp_path / "logo.png"
    picture.write_bytes(b"\x89PNG image")
    reads = iter([b"\x89PNG image"])  # the MD5 fill reads it; the encoder's read then fails
    monkeypatch.setattr(multipart, "file_bytes", lambda value, limit: next(reads, None))
    with pytest.raises(ValidationError) as caught:
        engine.call("v2.secapi.mch.uploadmedia.post", {"media": picture})
    assert caught.value.errors == ("cannot read the file (it could not be read to be sent) @ $.media",)
    assert engine.emulator.exchanges == []


# -- the sandbox refuses what the engine's check would have --------------------------------------------


def test_the_sandbox_refuses_an_oversized_upload_sent_past_the_engine(identity: SandboxIdentity) -> None:
    """A client whose descriptor has no limit (an old endpoint_dirs copy) still meets WeChat Pay's."""
    sandbox = Sandbox(identity)
    engine = Engine(**identity.engine_settings(), transport=MockTransport(sandbox.handle), load_entry_points=False)
    unbounded = sandbox.registry.get(IMAGES)
    body = dict(unbounded.request.body)
    body["file"] = Field(type="file", required=True)
    engine.register(Descriptor(**{**_fields(unbounded), "request": RequestSpec(body=body)}))
    try:
        with pytest.raises(ApiError) as caught:
            engine.call(IMAGES, {"file": bytes(TWO_MIB + 1), "meta": {"filename": "a.png"}})
    finally:
        engine.close()
    assert (caught.value.status, caught.value.code) == (400, "PARAM_ERROR")
    assert caught.value.detail["field"] == "/file" and caught.value.detail["location"] == "body"
    assert caught.value.detail["issue"] == f"size {TWO_MIB + 1} bytes is over the maximum {TWO_MIB} bytes"


def _fields(descriptor: Descriptor) -> dict[str, Any]:
    return {name: getattr(descriptor, name) for name in ("id", "method", "path", "title", "body", "response")}
