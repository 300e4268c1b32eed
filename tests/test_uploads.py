"""Media uploads: multipart with a signed meta part, computed digest, checked by the sandbox."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from engine import ApiError, Descriptor, Engine, Field, RequestSpec, ValidationError, multipart
from engine.crypto import rsa_verify
from engine.protocol import parse_authorization, request_message

IMAGE_UPLOAD = Descriptor(
    id="v3.merchant.media.upload.post",
    method="POST",
    path="/v3/merchant/media/upload",
    body="multipart",
    request=RequestSpec(
        body={
            "file": Field(type="file", required=True),
            "meta": Field(
                type="object",
                required=True,
                fields={"filename": Field(required=True, max_length=128), "sha256": Field(required=True)},
            ),
        }
    ),
    response={"media_id": Field(required=True)},
)
PICTURE = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


@pytest.fixture
def uploader(make_engine) -> Engine:
    engine = make_engine()
    engine.register(IMAGE_UPLOAD)
    return engine


def _parts(engine: Engine) -> dict:
    request = engine.emulator.last.request
    return multipart.decode(request.headers["Content-Type"], request.body)


def test_upload_from_a_path_computes_filename_and_digest(uploader: Engine, tmp_path: Path) -> None:
    picture = tmp_path / "logo.png"
    picture.write_bytes(PICTURE)
    response = uploader.call("v3.merchant.media.upload.post", {"file": picture})
    assert response.status == 200 and response.data["media_id"]
    parts = _parts(uploader)
    assert json.loads(parts["meta"][1]) == {"filename": "logo.png", "sha256": hashlib.sha256(PICTURE).hexdigest()}
    assert parts["file"] == ("logo.png", PICTURE)
    assert b"Content-Type: image/png" in uploader.emulator.last.request.body


def test_a_path_is_read_once_so_the_signed_digest_matches_the_bytes_sent(
    uploader: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file is rewritten right after it is read for its digest: what is sent is what was digested."""
    picture = tmp_path / "logo.png"
    picture.write_bytes(PICTURE)
    read = multipart.file_bytes

    def read_then_rewrite(value, limit):  # another process replacing the file at the worst moment
        content = read(value, limit)
        picture.write_bytes(bytes(reversed(PICTURE)))
        return content

    monkeypatch.setattr(multipart, "file_bytes", read_then_rewrite)
    assert uploader.call("v3.merchant.media.upload.post", {"file": picture}).status == 200
    parts = _parts(uploader)
    assert parts["file"] == ("logo.png", PICTURE)
    assert json.loads(parts["meta"][1])["sha256"] == hashlib.sha256(PICTURE).hexdigest()


async def test_upload_from_bytes_signs_only_the_meta(uploader: Engine) -> None:
    await uploader.acall("v3.merchant.media.upload.post", {"file": PICTURE, "meta": {"filename": "a.jpg"}})
    request = uploader.emulator.last.request
    meta_json = _parts(uploader)["meta"][1]
    _, params = parse_authorization(request.headers["Authorization"])
    message = request_message("POST", request.target, params["timestamp"], params["nonce_str"], meta_json)
    assert rsa_verify(uploader.emulator.identity.merchant_key.public_key(), message, params["signature"])
    assert request.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    await uploader.aclose()


def test_bytes_need_a_filename(uploader: Engine) -> None:
    with pytest.raises(ValidationError) as caught:
        uploader.call("v3.merchant.media.upload.post", {"file": PICTURE})
    assert caught.value.errors == ("missing required field @ $.meta.filename",)
    assert uploader.emulator.exchanges == []


def test_file_must_be_bytes_or_a_path(uploader: Engine) -> None:
    with pytest.raises(ValidationError) as caught:
        uploader.call("v3.merchant.media.upload.post", {"file": "logo.png", "meta": {"filename": "x"}})
    assert caught.value.errors[0] == "expected file, got string @ $.file"


def test_sandbox_refuses_a_digest_that_does_not_match(uploader: Engine) -> None:
    payload = {"file": PICTURE, "meta": {"filename": "a.png", "sha256": "0" * 64}}
    with pytest.raises(ApiError) as caught:
        uploader.call("v3.merchant.media.upload.post", payload)
    assert (caught.value.status, caught.value.code) == (400, "PARAM_ERROR")
    assert caught.value.detail["field"] == "/meta/sha256"


def test_content_type_cannot_be_overridden(uploader: Engine) -> None:
    from engine import UsageError

    with pytest.raises(UsageError, match="Content-Type header is set by the engine"):
        payload = {"file": PICTURE, "meta": {"filename": "a.png"}}
        uploader.call("v3.merchant.media.upload.post", payload, headers={"Content-Type": "text/plain"})


def test_multipart_round_trip_keeps_odd_filenames_harmless() -> None:
    upload = multipart.encode(b"{}", [("file", 'a"b\r\nc.png', b"x")])
    parts = multipart.decode(upload.content_type, upload.body)
    assert parts["file"] == ("a_b__c.png", b"x") and parts["meta"] == (None, b"{}")
    with pytest.raises(ValueError, match="not multipart"):
        multipart.decode("application/json", b"{}")
