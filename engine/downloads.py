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
  ``stream`` writes the body in chunks instead of holding it. It is decompressed on the fly when it
  is gzip, hashed over the *uncompressed* bytes as WeChat Pay computes it, and written to
  ``<dest>.<random>.partial`` (of dest's name, the first 64 characters; a file of its own: two
  downloads to one ``dest`` never mix). Only a matching digest renames it to ``dest``; a mismatch or
  any failure removes the partial file, so nothing incomplete looks finished. ``dest`` and
  ``max_bytes`` are checked before step 1 is sent.
* Bounded, whatever the peer sends: ``max_bytes`` caps the file's uncompressed size (what is
  hashed), and a gzip bill is inflated with ``engine.transport.Inflater``, a piece of at most 64 KiB
  at a time, so neither an endless body nor a compression bomb fills memory or the disk. Its
  compressed bytes may pass the cap only by deflate's worst-case overhead (1 % and 64 KiB here), so
  a gzip bill that never yields output is cut too. (A transfer encoded with ``Content-Encoding`` is
  undone by the transport first; one that never yields output is bounded by the timeout.) Past
  either, the download fails with ``AnswerTooLargeError`` (final: never retried) and the partial
  file goes. The default (``DEFAULT_MAX_DOWNLOAD_BYTES``, 1 GiB) is far above a day's bill of a
  large merchant; ``max_bytes=None`` lifts it for a caller who bounds the disk otherwise.
* One gzip stream is the whole bill. Anything after its end (junk, or a second member the digest
  never covered, which ``gunzip=False`` would keep and ``zcat`` would read as bill rows) and a
  stream cut before its end are ``MalformedResponseError``, as is a corrupt one.
* The file is made by ``tempfile.mkstemp``: readable by its owner only, as a bill should be.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Optional
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

    def __init__(self, file: IO[bytes], digest: Any, gunzip: bool, limit: Optional[int]) -> None:
        self.digest = digest
        self.file = file
        self.gunzip = gunzip
        self.limit = limit
        # what the compressed form may hold beyond the bill: deflate's worst case (stored blocks) is a
        # few bytes in 64 KiB, plus the gzip header; past it, no output is coming that the cap would see
        self.compressed_limit = None if limit is None else limit + limit // 100 + 64 * 1024
        self.inflater: Optional[Inflater] = None
        self.size = 0  # bytes received (compressed when the bill is gzip)
        self.compressed = False
        self.head = b""

    def write(self, chunk: bytes) -> None:
        if self.size == 0:  # gzip or text is told by the first two bytes, which may come one by one
            chunk, self.head = self.head + chunk, b""
            if len(chunk) < len(GZIP_MAGIC):
                self.head = chunk
                return
            if chunk.startswith(GZIP_MAGIC):
                self.compressed = True
                self.inflater = Inflater("gzip", self.limit)
        self.size += len(chunk)
        if self.inflater is None:
            self._plain(chunk)
            return
        if self.compressed_limit is not None and self.size > self.compressed_limit:
            raise AnswerTooLargeError(f"the bill is larger than {self.limit} bytes")
        for piece in self.inflater.pieces(chunk):  # refuses anything after the gzip stream's end
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

    def finish(self) -> None:
        """Write what the body's end leaves (a short text body, the inflater's tail); the file stays open."""
        if self.head:  # a body shorter than the gzip magic: plain text
            self.size += len(self.head)
            self._plain(self.head)
        if self.inflater is not None:
            tail = self.inflater.finish()  # refuses a gzip stream cut before its end
            self.digest.update(tail)
            if self.gunzip:
                self.file.write(tail)


def _digest(hash_type: str) -> Any:
    try:
        digest = hashlib.new(hash_type.lower().replace("-", ""))
    except (ValueError, TypeError):
        digest = None
    if digest is None or not digest.digest_size:  # unknown, or an extendable one (SHAKE) with no fixed digest
        raise MalformedResponseError(f"unsupported hash_type {hash_type[:32]!r} in the bill answer")
    return digest


async def download(
    executor: Executor,
    step_one: Response,
    dest: Path,
    gunzip: bool = True,
    max_bytes: Optional[int] = DEFAULT_MAX_DOWNLOAD_BYTES,
) -> Download:
    """Follow a verified bill answer to its file, checking the digest; see the module docstring.

    ``dest`` and ``max_bytes`` come checked (``check_destination``, ``check_max_bytes``): the caller
    checks them before step 1 is sent.
    """
    data = step_one.data if isinstance(step_one.data, dict) else {}
    try:
        url, hash_type, expected = data["download_url"], data["hash_type"], data["hash_value"]
    except KeyError as exc:
        raise UsageError(
            f"{step_one.endpoint_id} did not answer with {exc.args[0]}: it is not a bill endpoint"
        ) from None
    prepared = _download_request(executor.pipeline.settings, str(url))
    digest_name = str(hash_type)
    digest = _digest(digest_name)  # an unsupported digest is refused before the file is asked for
    # A partial file of its own: two downloads to one dest never write into each other's.
    handle, name = _partial(dest)
    partial = Path(name)
    try:
        with os.fdopen(handle, "wb") as file:
            sink = _Sink(file, digest, gunzip, max_bytes)
            answer = await executor.sender.send(prepared, sink=sink.write)
            sink.finish()
        if not 200 <= answer.status < 300:
            raise executor.pipeline.interpret_error(answer)
        _check(sink.digest.hexdigest(), str(expected).lower())
        os.replace(partial, dest)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return Download(dest, dest.stat().st_size, digest_name, str(expected), sink.compressed)


def check_max_bytes(max_bytes: object) -> None:
    """A ``UsageError`` unless ``max_bytes`` is a positive int or ``None`` (checked before step 1 is sent)."""
    if max_bytes is not None and (isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1):
        raise UsageError(f"max_bytes must be a positive int or None, not {type(max_bytes).__name__} {max_bytes!r:.40}")


def check_destination(dest: object) -> Path:
    """``dest`` as a path a file can be made at, or a ``UsageError`` (checked before step 1 is sent)."""
    if not isinstance(dest, (str, os.PathLike)):
        raise UsageError(f"dest must be a path (str or os.PathLike), not {type(dest).__name__}")
    try:
        path = Path(dest)
    except TypeError:  # an os.PathLike whose __fspath__ answers neither str nor bytes
        raise UsageError("dest must be a path (str or os.PathLike)") from None
    shown = repr(str(path))[:200]
    if "\0" in str(path):
        raise UsageError(f"dest {shown} holds a NUL character")
    try:
        if not path.name or path.is_dir():
            raise UsageError(f"dest {shown} names a directory, not a file")
        if not path.parent.is_dir():
            raise UsageError(f"dest {shown}: its directory does not exist")
    except OSError as exc:  # a name past the file system's limit, a directory that cannot be searched
        raise UsageError(f"dest {shown}: {exc.strerror or type(exc).__name__}") from None
    return path


def _partial(dest: Path) -> tuple[int, str]:
    try:
        # the name's head only: a dest near the file system's name limit still gets a partial beside it
        return tempfile.mkstemp(prefix=f"{dest.name[:64]}.", suffix=".partial", dir=dest.parent)
    except OSError as exc:
        raise UsageError(f"cannot write beside dest {str(dest)!r}: {exc.strerror or type(exc).__name__}") from None


def _download_request(settings: Settings, url: str) -> Prepared:
    base = urlsplit(settings.base_url)
    try:
        target = urlsplit(url)
        target.port  # noqa: B018  (parsed lazily: a bad port raises here, not later)
    except ValueError:
        raise MalformedResponseError("the bill answer's download_url is not a URL") from None
    if (target.scheme, target.netloc) != (base.scheme, base.netloc):
        raise UsageError(f"download_url is on {target.scheme}://{target.netloc}, not the engine's {settings.base_url}")
    raw_target = target.path + (f"?{target.query}" if target.query else "")
    headers = Headers({"Accept": "*/*", "User-Agent": settings.user_agent})
    descriptor = adhoc_descriptor("GET", target.path)
    return Prepared(descriptor, Request("GET", settings.base_url, raw_target, headers=headers))


def _check(actual: str, expected: str) -> None:
    if actual != expected:
        raise DigestMismatchError(f"the downloaded bill's digest {actual} differs from the announced {expected}")
