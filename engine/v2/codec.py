"""APIv2's body codec: flat XML bodies (or a query string, or a form upload) and their answers.

Design decisions:

* ``engine.plugins.v2_codec`` hands it out for ``protocol: v2`` descriptors (and imports this
  module only then).
* **Encoding.** A body (``body: xml``) becomes ``<xml><k>v</k>...</xml>``; a GET carries its fields
  in the query string the pipeline builds; an upload (``body: multipart``) is a plain form with the
  file part last. In every case the request's ``fields`` are the signable name -> text pairs (file
  parts excluded, as the protocol says), and ``append`` adds the signer's ``sign_type``/``sign`` to
  the same encoding, so the bytes sent carry exactly the fields that were signed. A value XML cannot
  carry (a control character, an object or array where a scalar belongs) is a ``ValidationError``
  naming its path, raised before anything is signed.
* **Decoding.** An XML answer is parsed by ``engine.v2.xmlcodec`` (no DOCTYPE, no entities, bounded;
  anything else is a ``MalformedResponseError``) and a FAIL answer raises its ``ApiError`` even when
  the operation is unsigned (the verifier raises it first for signed ones). A JSON answer
  (``getaccesstoken``) is JSON; the text of an unsigned operation that answers text (bills, pages) is
  returned as text, or bytes when it is not UTF-8 (a gzipped bill). A signed operation must answer
  XML. A documented redirect answers ``{"location": ...}``.
"""

from __future__ import annotations

import json
from typing import Any, Mapping
from urllib.parse import quote

import attrs

from engine import multipart
from engine.descriptor import Descriptor
from engine.errors import MalformedResponseError, ReturnCodeError, ValidationError
from engine.serialize import EncodedBody, file_content
from engine.v2 import answers, xmlcodec
from engine.wire import Headers, RawResponse, Request

CONTENT_TYPE = "text/xml; charset=utf-8"
ACCEPT = "text/xml, text/plain, application/x-gzip"  # what APIv2 answers with (XML, bills, gzipped bills)


class XmlCodec:
    """APIv2's request encodings and answer decoding (see the module docstring)."""

    def encode(self, descriptor: Descriptor, body: Any, query: Mapping[str, Any]) -> EncodedBody:
        kind = descriptor.body_kind
        if kind == "none":
            return EncodedBody(fields=_texts(descriptor, query))
        if kind == "multipart":
            return _encode_form(descriptor, body or {})
        fields = _texts(descriptor, body or {})
        return EncodedBody(xmlcodec.encode(fields), None, CONTENT_TYPE, fields)

    def append(self, descriptor: Descriptor, request: Request, extra: Mapping[str, str]) -> Request:
        """``request`` carrying ``extra`` fields too (the signer's), in the same encoding, with APIv2 headers."""
        fields = {**(request.fields or {}), **extra}
        headers = Headers([(k, v) for k, v in request.headers.items() if k.lower() != "wechatpay-serial"])
        headers = headers.merged({"Accept": ACCEPT})
        kind = descriptor.body_kind
        if kind == "none":
            joiner = "&" if "?" in request.target else "?"
            pairs = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in extra.items())
            target = request.target + (joiner + pairs if pairs else "")
            return attrs.evolve(request, target=target, headers=headers, fields=fields)
        if kind == "multipart":
            body = multipart.insert_fields(request.headers.get("Content-Type", ""), request.body, list(extra.items()))
        else:
            body = xmlcodec.insert(request.body, extra)
        return attrs.evolve(request, body=body, headers=headers, fields=fields)

    def decode(self, descriptor: Descriptor, response: RawResponse) -> Any:
        if descriptor.redirect and 300 <= response.status < 400:
            return {"location": response.headers.get("Location", "")}
        body = response.body
        if xmlcodec.looks_like_xml(body):
            fields = answers.parse_answer(body)
            error = answers.answer_error(fields, status=response.status)
            if error is not None:
                raise error
            return answers.typed(descriptor, fields)
        if body.lstrip()[:1] == b"{":
            return _json_answer(body)
        if descriptor.signed_answer:
            kind = response.headers.get("Content-Type", "unknown content type")
            raise MalformedResponseError(f"APIv2 answer is not XML ({kind}, {len(body)} bytes)")
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            return body  # a gzipped bill (tar_type=GZIP): bytes as sent

    def __repr__(self) -> str:
        return "<XmlCodec>"


XML_CODEC = XmlCodec()


def _texts(descriptor: Descriptor, values: Mapping[str, Any]) -> dict[str, str]:
    """Every value as the text XML (or a query) carries; what cannot be carried is a ``ValidationError``."""
    problems = xmlcodec.problems(values)
    if problems:
        raise ValidationError(descriptor.id, problems)
    return {name: text for name, value in values.items() if (text := xmlcodec.scalar_text(value)) is not None}


def _encode_form(descriptor: Descriptor, body: Mapping[str, Any]) -> EncodedBody:
    file_fields = {name for name, field in descriptor.request.body.items() if field.type == "file"}
    fields = _texts(descriptor, {k: v for k, v in body.items() if k not in file_fields})
    files = [
        (name, getattr(body[name], "name", None) or name, file_content(descriptor, name, body[name]))
        for name in file_fields
        if name in body
    ]
    data, content_type = multipart.encode_form(list(fields.items()), files)
    return EncodedBody(data, None, content_type, fields)


def _json_answer(body: bytes) -> Any:
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise MalformedResponseError(f"APIv2 answer is neither XML nor JSON ({len(body)} bytes)") from None
    if isinstance(data, dict) and data.get("retcode") not in (None, 0, "0"):
        raise ReturnCodeError(str(data.get("retmsg") or "retcode is not 0"), str(data.get("retcode")))
    return data
