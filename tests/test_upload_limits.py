"""Upload size limits: declared per file part (``max_bytes``), enforced before signing, never read past."""

from __future__ import annotations

from typing import Any

import pytest

from engine import DescriptorError
from engine.loader import structure_descriptor
from engine.reference import request_rows
from engine.registry import BUILTIN_ENDPOINTS, Registry

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
