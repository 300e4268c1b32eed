"""Media uploads: ``multipart/form-data`` with a signed ``meta`` part and a ``file`` part (PROTOCOL.md §7).

Design decisions:

* The engine builds the multipart bytes itself instead of handing parts to an HTTP library, so the
  ``meta`` JSON in the body is byte-for-byte the string that is signed (the signature's BODY line is
  the meta JSON only, never the file).
* ``filename`` and ``sha256`` (lower-case hex of the file bytes) are computed when the descriptor's
  meta declares them and the caller left them out; a file may be given as bytes or as a path. A
  path digested for ``sha256`` is read once: the bytes digested are the bytes sent (``ReadFile``
  keeps the path's name), so a file rewritten in between cannot make the signed digest a lie.
* A path is read only if it names a regular file: a FIFO or a device would block the call or never
  end, and a path with a NUL is no path at all. Anything unreadable gives ``None``, which validation
  and serialization turn into a ``ValidationError`` (never an empty file sent in its place).
* **Every file has a size limit, and memory stays within it.** The limit is its field's
  ``max_bytes`` (what WeChat Pay documents for that upload), else ``MAX_UPLOAD_BYTES``. A path is
  measured with ``fstat`` on the opened file before anything is read, and then read for at most
  one byte more than the limit, so a file that grows after it was measured is refused too, having
  cost no more memory than the limit (the first read is sized to the file, not to the limit).
  Bytes given directly are measured by their length. Content over its limit is never hashed or
  sent: ``file_bytes`` gives ``None``, ``file_problem`` names the size and the limit, and
  validation (or, for a file that grew since, serialization) raises a ``ValidationError`` with
  them before anything is signed.
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

from engine.descriptor import Descriptor, Field
from engine.files import Unread, read_regular_file

# The ceiling for a file part whose descriptor states no limit: above the largest limit WeChat Pay
# documents for any upload (7.5 MiB, a PDF for /v3/merchant/media/upload) and under the 16 MiB
# request body the sandbox's HTTP server accepts, so the sandbox can receive whatever is sent.
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
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


def size_limit(field: Optional[Field]) -> int:
    """The most bytes a file part may hold: its documented ``max_bytes``, else the engine's ceiling."""
    if field is None or field.max_bytes is None:
        return MAX_UPLOAD_BYTES
    return field.max_bytes


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
    if "sha256" in declared and "sha256" not in meta and (data := upload_content(descriptor, payload)) is not None:
        meta["sha256"] = hashlib.sha256(data).hexdigest()
        if isinstance(source, os.PathLike):  # send the bytes digested: a file rewritten since is not read again
            return {**payload, "meta": meta, file_field(descriptor): ReadFile(data, Path(source).name)}
    return {**payload, "meta": meta}


class ReadFile(bytes):
    """A file's content, read once for its digest, keeping the name of the path it was read from."""

    name: str

    def __new__(cls, content: bytes, name: str) -> "ReadFile":
        read = super().__new__(cls, content)
        read.name = name
        return read


def upload_content(descriptor: Descriptor, payload: Any) -> Optional[bytes]:
    """The content of the descriptor's file part in ``payload``, within its limit; else None."""
    name = file_field(descriptor)
    return file_bytes(payload.get(name), size_limit(descriptor.request.body.get(name)))


def file_bytes(value: Any, limit: int) -> Optional[bytes]:
    """The file's content from bytes or a path, if it holds at most ``limit`` bytes.

    None when it is neither, cannot be read or holds more: ``file_problem`` says which.
    """
    if isinstance(value, (bytes, bytearray)):
        return bytes(value) if len(value) <= limit else None
    if isinstance(value, os.PathLike):
        content = read_regular_file(value, limit)
        return None if isinstance(content, Unread) else content  # file_problem says why, when asked
    return None


def file_problem(value: Any, limit: int) -> Optional[str]:
    """Why ``value`` cannot be sent as a file of at most ``limit`` bytes, or None; a path is only measured."""
    if isinstance(value, (bytes, bytearray)):
        size = len(value)
    elif isinstance(value, os.PathLike):
        try:
            measured = os.stat(value)
        except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
            return f"cannot read the file ({getattr(exc, 'strerror', None) or 'not a valid path'})"
        if not stat.S_ISREG(measured.st_mode):
            return "cannot read the file (not a regular file)"
        if not os.access(value, os.R_OK):
            return "cannot read the file (permission denied)"
        size = measured.st_size
    else:
        return None  # not a file at all: the field's type check says so
    return f"size {size} bytes is over the maximum {limit} bytes" if size > limit else None


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
