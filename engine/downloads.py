"""Bill downloads: a verified request for a digest and a URL, then the file itself (PROTOCOL.md §8).

Design decisions:

* Two steps, one call. Step 1 is an ordinary, verified call (``tradebill``, ``fundflowbill``, any
  endpoint answering ``download_url``, ``hash_type`` and ``hash_value``). Step 2 follows
  ``download_url`` with a signed GET whose answer WeChat Pay does not sign: it is the only answer
  the engine accepts unverified, and only because its digest comes from the verified step 1 and is
  checked before the file is declared complete.
* ``download_url`` must be on the engine's own origin: an Authorization header is never sent to a
  host the merchant did not configure.
* The signed GET goes through the ordinary send loop with a sink: the transport protocol's
  ``stream`` writes the body in chunks instead of holding it. It is decompressed on the
  fly when it is gzip, hashed over the *uncompressed* bytes as WeChat Pay computes it, and written to
  ``<dest>.partial``. Only a matching digest renames it to ``dest``; a mismatch or any failure
  removes the partial file, so nothing incomplete looks finished.
"""

from __future__ import annotations

import hashlib
import os
import zlib
from pathlib import Path
from typing import Any, Optional
from urllib.parse import urlsplit

import attrs

from engine.descriptor import adhoc_descriptor
from engine.errors import DigestMismatchError, MalformedResponseError, UsageError
from engine.executor import Executor
from engine.pipeline import Prepared, Settings
from engine.wire import Headers, Request, Response

GZIP_MAGIC = b"\x1f\x8b"


@attrs.frozen
class Download:
    """A completed, digest-checked download."""

    path: Path
    size: int
    hash_type: str
    hash_value: str
    compressed: bool


class _Sink:
    """Writes chunks to a file, gunzipping if asked, hashing the uncompressed stream."""

    def __init__(self, path: Path, hash_type: str, gunzip: bool) -> None:
        try:
            self.digest = hashlib.new(hash_type.lower().replace("-", ""))
        except ValueError:
            raise MalformedResponseError(f"unsupported hash_type {hash_type!r} in the bill answer") from None
        self.file = path.open("wb")
        self.gunzip = gunzip
        self.inflater: Optional[Any] = None
        self.size = 0
        self.compressed = False
        self.head = b""

    def write(self, chunk: bytes) -> None:
        if self.size == 0 and len(chunk) < len(GZIP_MAGIC):  # too short to tell gzip from text yet
            self.head += chunk
            if len(self.head) < len(GZIP_MAGIC):
                return
            chunk, self.head = self.head, b""
        if self.size == 0 and self.inflater is None and chunk.startswith(GZIP_MAGIC):
            self.compressed = True
            self.inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        plain = self.inflater.decompress(chunk) if self.inflater is not None else chunk
        self.digest.update(plain)
        self.file.write(plain if self.gunzip or self.inflater is None else chunk)
        self.size += len(chunk)

    def close(self) -> None:
        if self.head:  # a body shorter than the gzip magic: plain text
            self.digest.update(self.head)
            self.file.write(self.head)
            self.size += len(self.head)
        if self.inflater is not None:
            tail = self.inflater.flush()
            self.digest.update(tail)
            if self.gunzip:
                self.file.write(tail)
        self.file.close()


async def download(executor: Executor, step_one: Response, dest: Path, gunzip: bool = True) -> Download:
    """Follow a verified bill answer to its file, checking the digest; see the module docstring."""
    data = step_one.data if isinstance(step_one.data, dict) else {}
    try:
        url, hash_type, expected = data["download_url"], data["hash_type"], data["hash_value"]
    except KeyError as exc:
        raise UsageError(
            f"{step_one.endpoint_id} did not answer with {exc.args[0]}: it is not a bill endpoint"
        ) from None
    prepared = _download_request(executor.pipeline.settings, str(url))
    partial = dest.with_name(dest.name + ".partial")
    sink = _Sink(partial, str(hash_type), gunzip)
    try:
        answer = await executor.sender.send(prepared, sink=sink.write)
        sink.close()
        if not 200 <= answer.status < 300:
            raise executor.pipeline.interpret_error(answer)
        _check(sink.digest.hexdigest(), str(expected).lower())
        os.replace(partial, dest)
    except BaseException:
        sink.file.close()
        partial.unlink(missing_ok=True)
        raise
    return Download(dest, dest.stat().st_size, str(hash_type), str(expected), sink.compressed)


def _download_request(settings: Settings, url: str) -> Prepared:
    base, target = urlsplit(settings.base_url), urlsplit(url)
    if (target.scheme, target.netloc) != (base.scheme, base.netloc):
        raise UsageError(f"download_url is on {target.scheme}://{target.netloc}, not the engine's {settings.base_url}")
    raw_target = target.path + (f"?{target.query}" if target.query else "")
    headers = Headers({"Accept": "*/*", "User-Agent": settings.user_agent})
    descriptor = adhoc_descriptor("GET", target.path)
    return Prepared(descriptor, Request("GET", settings.base_url, raw_target, headers=headers))


def _check(actual: str, expected: str) -> None:
    if actual != expected:
        raise DigestMismatchError(f"the downloaded bill's digest {actual} differs from the announced {expected}")
