"""The sandbox's bill desk: step 1 answers a digest and a one-time URL, step 2 serves the file.

Design decisions:

* Bills are generated from the request (date, type) in WeChat Pay's CSV shape (header row,
  back-tick-prefixed detail fields, a summary), so a client's parser sees realistic content.
* ``hash_value`` is the SHA-1 of the *uncompressed* bill, as WeChat Pay documents, also when
  ``tar_type=GZIP`` makes the download gzip-compressed.
* The file answer is not signed (WeChat Pay does not sign it); its token is single-use. At most
  ``pending_limit`` bills wait to be fetched; preparing one more forgets the oldest, so a client
  that never downloads cannot grow the sandbox without bound.
"""

from __future__ import annotations

import gzip
import hashlib
import secrets
from typing import Any, Optional
from urllib.parse import parse_qs, urlsplit

from engine.wire import Headers, RawResponse

HEADER = "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,订单金额\n"


class BillDesk:
    def __init__(self, mchid: str, pending_limit: int = 1000) -> None:
        self.mchid = mchid
        self.pending_limit = pending_limit
        self._files: dict[str, tuple[bytes, bool]] = {}  # insertion-ordered: the first key is the oldest

    def request(self, base_url: str, payload: dict[str, Any], rows: int = 3) -> dict[str, str]:
        """Step 1: prepare the bill and answer where to fetch it and its digest."""
        content = self.content(str(payload.get("bill_date", "")), rows)
        token = secrets.token_urlsafe(24)
        self._files[token] = (content, payload.get("tar_type") == "GZIP")
        while len(self._files) > self.pending_limit:
            del self._files[next(iter(self._files))]
        return {
            "hash_type": "SHA1",
            "hash_value": hashlib.sha1(content).hexdigest(),
            "download_url": f"{base_url.rstrip('/')}/v3/billdownload/file?token={token}",
        }

    def content(self, bill_date: str, rows: int) -> bytes:
        lines = [HEADER]
        for n in range(rows):
            lines.append(
                f"`{bill_date} 10:0{n}:00,`wxd678efh567hg6787,`{self.mchid},`0,`,`42000{n:023d},"
                f"`ORDER{n:04d},`oUpF8uMuAJO_M2pxb1Q9zNjWeS6o,`JSAPI,`SUCCESS,`{n + 1}.00\n"
            )
        lines.append("总交易单数,总交易额\n")
        lines.append(f"`{rows},`{sum(range(1, rows + 1))}.00\n")
        return "".join(lines).encode("utf-8")

    def file(self, target: str, corrupt: bool = False) -> Optional[RawResponse]:
        """Step 2: the file for a token (once), or None when the token is unknown or spent."""
        token = parse_qs(urlsplit(target).query).get("token", [""])[0]
        stored = self._files.pop(token, None)
        if stored is None:
            return None
        content, compressed = stored
        if corrupt:
            content = content.replace(b"SUCCESS", b"REFUND!", 1)
        body = gzip.compress(content, mtime=0) if compressed else content
        kind = "application/x-gzip" if compressed else "text/plain; charset=utf-8"
        return RawResponse(200, Headers({"Content-Type": kind}), body)
