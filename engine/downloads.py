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
* Bounded, whatever the peer sends: ``max_bytes`` caps the file's uncompressed size (what is
  hashed), and a gzip bill is inflated with ``engine.transport.Inflater``, a piece of at most 64 KiB
  at a time, so neither an endless body nor a compression bomb fills memory or the disk. Past the
  cap the download fails with ``AnswerTooLargeError`` (final: never retried) and the partial file
  goes. The default (``DEFAULT_MAX_DOWNLOAD_BYTES``, 1 GiB) is far above a day's bill of a large
  merchant; ``max_bytes=None`` lifts it for a caller who bounds the disk otherwise.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Optional
from urllib.parse import urlsplit

import attrs

from engine.descriptor import adhoc_descriptor
from engine.errors import AnswerTooLargeError, DigestMismatchError, MalformedResponseError, UsageError
from engine.executor import Executor
from engine.pipeline import Prepared, Settings
from engine.transport import DEFAULT_MAX_DOWNLOAD_BYTES, Inflater
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
    """Writes chunks to a file, gunzipping if asked, hashing the uncompressed stream, within ``limit`` bytes."""

    def __init__(self, path: Path, hash_type: str, gunzip: bool, limit: Optional[int]) -> None:
        try:
            self.digest = hashlib.new(hash_type.lower().replace("-", ""))
        except ValueError:
            raise MalformedResponseError(f"unsupported hash_type {hash_type!r} in the bill answer") from None
        self.file = path.open("wb")
        self.gunzip = gunzip
        self.limit = limit
        self.inflater: Optional[Inflater] = None
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
            self.inflater = Inflater("gzip", self.limit)
        self.size += len(chunk)
        if self.inflater is None:
            self._plain(chunk)
            return
        if (
            self.limit is not None and self.size > self.limit
        ):  # compressed bytes past the cap (a gzip stream that never ends)
            raise AnswerTooLargeError(f"the bill is larger than {self.limit} bytes")
        for piece in self.inflater.pieces(chunk):
            self.digest.update(piece)
            if self.gunzip:
                self.file.write(piece)
        if not self.gunzip:
            self.file.write(chunk)

    def _plain(self, data: bytes) -> None:
        if self.limit is not None and self.size > self.limit:
            raise AnswerTooLargeError(f"the bill is larger than {self.limit} bytes")
        self.digest.update(data)
        self.file.write(data)

    def close(self) -> None:
        if self.head:  # a body shorter than the gzip magic: plain text
            self.size += len(self.head)
            self._plain(self.head)
        if self.inflater is not None:
            tail = self.inflater.finish()
            self.digest.update(tail)
            if self.gunzip:
                self.file.write(tail)
        self.file.close()


async def download(
    executor: Executor,
    step_one: Response,
    dest: Path,
    gunzip: bool = True,
    max_bytes: Optional[int] = DEFAULT_MAX_DOWNLOAD_BYTES,
) -> Download:
    """Follow a verified bill answer to its file, checking the digest; see the module docstring."""
    check_max_bytes(max_bytes)
    data = step_one.data if isinstance(step_one.data, dict) else {}
    try:
        url, hash_type, expected = data["download_url"], data["hash_type"], data["hash_value"]
    except KeyError as exc:
        raise UsageError(
            f"{step_one.endpoint_id} did not answer with {exc.args[0]}: it is not a bill endpoint"
        ) from None
    prepared = _download_request(executor.pipeline.settings, str(url))
    partial = dest.with_name(dest.name + ".partial")
    sink = _Sink(partial, str(hash_type), gunzip, max_bytes)
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


def check_max_bytes(max_bytes: object) -> None:
    """A ``UsageError`` unless ``max_bytes`` is a positive int or ``None`` (checked before step 1 is sent)."""
    if max_bytes is not None and (isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1):
        raise UsageError(f"max_bytes must be a positive int or None, not {type(max_bytes).__name__} {max_bytes!r:.40}")


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
