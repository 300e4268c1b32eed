"""Media uploads: ``multipart/form-data`` with a signed ``meta`` part and a ``file`` part (PROTOCOL.md §7).

Design decisions:

* The engine builds the multipart bytes itself instead of handing parts to an HTTP library, so the
  ``meta`` JSON in the body is byte-for-byte the string that is signed (the signature's BODY line is
  the meta JSON only, never the file).
* ``filename`` and ``sha256`` (lower-case hex of the file bytes) are computed when the descriptor's
  meta declares them and the caller left them out; a file may be given as bytes or as a path.
* A path is read only if it names a regular file: a FIFO or a device would block the call or never
  end, and a path with a NUL is no path at all. Anything unreadable gives ``None``, which validation
  and serialization turn into a ``ValidationError`` (never an empty file sent in its place).
* Encoding and decoding live together, so the client and the sandbox cannot disagree on the format.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import re
import secrets
import stat
from pathlib import Path
from typing import Any, Optional, Sequence

import attrs

from engine.descriptor import Descriptor

_BOUNDARY = re.compile(r'boundary="?([^";]+)"?')
_DISPOSITION = re.compile(r'name="([^"]*)"(?:; filename="([^"]*)")?')


@attrs.frozen
class Upload:
    """An encoded upload: the wire body, the bytes to sign, and its Content-Type."""

    body: bytes = attrs.field(repr=lambda b: f"<{len(b)} bytes>")
    meta: bytes
    content_type: str


def file_field(descriptor: Descriptor) -> str:
    """The name of the descriptor's (first) file part; ``file`` for most uploads."""
    return next((name for name, field in descriptor.request.body.items() if field.type == "file"), "file")


def complete_meta(descriptor: Descriptor, payload: Any) -> Any:
    """Fill ``meta.filename`` and ``meta.sha256`` from the file when the descriptor declares them."""
    meta_field = descriptor.request.body.get("meta")
    if meta_field is None or not isinstance(payload, dict) or not isinstance(payload.get("meta", {}), dict):
        return payload  # no meta part (APIv2's form uploads), or a payload validation will refuse
    declared = meta_field.fields
    source = payload.get(file_field(descriptor))
    meta = dict(payload.get("meta") or {})
    if "filename" in declared and "filename" not in meta and isinstance(source, os.PathLike):
        meta["filename"] = Path(source).name
    if "sha256" in declared and "sha256" not in meta and (data := file_bytes(source)) is not None:
        meta["sha256"] = hashlib.sha256(data).hexdigest()
    return {**payload, "meta": meta}


def file_bytes(value: Any) -> Optional[bytes]:
    """The file's content from bytes or a path; None when it is neither (validation reports that)."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, os.PathLike):
        try:
            # O_NONBLOCK: opening a FIFO must not wait for a writer; fstat then refuses it.
            handle = os.open(value, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
        except (OSError, ValueError):  # ValueError: a NUL in the path
            return None
        try:
            if not stat.S_ISREG(os.fstat(handle).st_mode):
                return None
            with os.fdopen(handle, "rb", closefd=False) as file:
                return file.read()
        except OSError:
            return None
        finally:
            os.close(handle)
    return None


def encode(meta_json: bytes, files: list[tuple[str, str, bytes]], fields: Sequence[tuple[str, str]] = ()) -> Upload:
    """The multipart body: ``meta`` first (exactly as signed), then the files, then plain fields."""
    boundary = secrets.token_hex(16)
    chunks = [_part(boundary, 'name="meta";', "application/json", meta_json)]
    for name, filename, content in files:
        media_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        chunks.append(_part(boundary, f'name="{_quote(name)}"; filename="{_quote(filename)}"', media_type, content))
    for name, value in fields:
        chunks.append(_part(boundary, f'name="{_quote(name)}"', None, value.encode("utf-8")))
    body = b"".join(chunks) + f"--{boundary}--\r\n".encode()
    return Upload(body, meta_json, f"multipart/form-data; boundary={boundary}")


def encode_form(fields: list[tuple[str, str]], files: list[tuple[str, str, bytes]]) -> tuple[bytes, str]:
    """A plain ``multipart/form-data`` body (APIv2 uploads: fields first, then files) and its Content-Type."""
    boundary = secrets.token_hex(16)
    chunks = [_part(boundary, f'name="{_quote(name)}"', None, value.encode("utf-8")) for name, value in fields]
    for name, filename, content in files:
        media_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        chunks.append(_part(boundary, f'name="{_quote(name)}"; filename="{_quote(filename)}"', media_type, content))
    return b"".join(chunks) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def insert_fields(content_type: str, body: bytes, fields: list[tuple[str, str]]) -> bytes:
    """``body`` with plain ``fields`` added as parts before its closing delimiter (how a signer adds ``sign``)."""
    match = _BOUNDARY.search(content_type)
    if match is None:
        raise ValueError("not multipart/form-data")
    boundary = match.group(1)
    closing = f"--{boundary}--\r\n".encode()
    extra = b"".join(_part(boundary, f'name="{_quote(name)}"', None, value.encode("utf-8")) for name, value in fields)
    return body[: -len(closing)] + extra + closing


def _part(boundary: str, disposition: str, media_type: Optional[str], content: bytes) -> bytes:
    head = f"--{boundary}\r\nContent-Disposition: form-data; {disposition}\r\n"
    if media_type is not None:
        head += f"Content-Type: {media_type}\r\n"
    return head.encode() + b"\r\n" + content + b"\r\n"


def _quote(filename: str) -> str:
    return filename.replace("\\", "_").replace('"', "_").replace("\r", "_").replace("\n", "_")


def decode(content_type: str, body: bytes) -> dict[str, tuple[Optional[str], bytes]]:
    """Parts by name -> (filename, raw bytes). ``ValueError`` when the body is not multipart."""
    match = _BOUNDARY.search(content_type)
    if not content_type.startswith("multipart/form-data") or match is None:
        raise ValueError("not multipart/form-data")
    delimiter = b"--" + match.group(1).encode()
    parts: dict[str, tuple[Optional[str], bytes]] = {}
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        head, separator, content = chunk.partition(b"\r\n\r\n")
        disposition = _DISPOSITION.search(head.decode("utf-8", errors="replace"))
        if not separator or disposition is None:
            raise ValueError("malformed multipart part")
        parts[disposition.group(1)] = (disposition.group(2), content.removesuffix(b"\r\n"))
    return parts
