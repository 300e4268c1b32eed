"""From a validated payload to the parts of a request: target, headers, body bytes.

Design decisions:

* The descriptor decides where each payload key travels (path, query or body); the payload itself
  stays one flat mapping, as the caller wrote it.
* Path parameters are percent-encoded with *no* safe characters, so ``/``, ``?``, ``#`` and ``%``
  in a value can never change the path; dot-segments were already refused by validation.
* The body is serialized once, compactly, UTF-8 without ``\\u`` escapes; those bytes are both
  signed and sent. Uploads are the exception the protocol makes: ``engine.multipart`` builds the
  body and only its ``meta`` JSON is signed.
* A request with no descriptor (``"GET /v3/..."``) sends its payload as the query string for GET and
  DELETE and as the JSON body otherwise. Nothing validates such a payload against fields, but it
  must still be something JSON can say: an object with string keys and JSON values (finite numbers,
  UTF-8-encodable strings), or for a query string, scalars and arrays of scalars. Anything else is a
  ``ValidationError`` (``validation.free_form_problems``), before anything is signed.
* JSON is encoded with ``allow_nan=False``: ``NaN`` is not JSON, and a peer would read it as an error
  or as garbage. A request body that still cannot be encoded is a ``ValidationError``, never a raw
  ``ValueError`` (``encode_request_json``).
* JSON from outside (a CLI flag or file, a state file, a callback, a peer's answer) is read by
  ``decode_json``: every way ``json.loads`` refuses (not UTF-8, not JSON, nested past the recursion
  limit, an integer past ``int``'s digit limit, a bare ``ValueError``) is one ``UnreadableJsonError``
  with the reason, raised with no context, because a decoder's error and frames hold the whole text.
* A raw ``"METHOD /path"`` target is percent-encoded by ``raw_target`` (the rules are in
  ``engine.registry``'s docstring); ``query_values`` reads a target's query back, keeping every
  value of a repeated key.
* **Body codecs are chosen by a hook, not by an ``if`` here.** A ``BodyCodec`` encodes a body and
  decodes an answer; ``wxpay_body_codec(descriptor)`` picks one per descriptor (the pipeline asks
  once per descriptor and remembers the answer). ``JSON_CODEC`` below is APIv3's (JSON, uploads, no
  body), answered by the built-in ``engine.plugins.json_codec``; APIv2's XML codec is another plugin.
"""

from __future__ import annotations

import json
import re
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Optional, Protocol, Union, cast
from urllib.parse import quote, unquote

import attrs

from engine import multipart
from engine.descriptor import Descriptor, Field
from engine.errors import MalformedResponseError, UsageError, ValidationError
from engine.validation import free_form_problems

if TYPE_CHECKING:
    from engine.wire import RawResponse


@attrs.frozen
class PayloadParts:
    path: dict[str, Any]
    query: dict[str, Any]
    body: Any


def split_payload(descriptor: Descriptor, payload: Any) -> PayloadParts:
    """Distribute payload keys to the locations the descriptor gives them."""
    spec = descriptor.request
    if descriptor.free_form:
        return _split_free_form(descriptor, payload)
    data = payload or {}
    # Most operations take their fields in one place only: skip the scans of the empty ones.
    return PayloadParts(
        path={k: v for k, v in data.items() if k in spec.path} if spec.path else {},
        query={k: v for k, v in data.items() if k in spec.query} if spec.query else {},
        body={k: v for k, v in data.items() if k in spec.body} if spec.body else {},
    )


def _split_free_form(descriptor: Descriptor, payload: Any) -> PayloadParts:
    problems = free_form_problems(payload, query=descriptor.body_kind == "none")
    if problems:
        raise ValidationError(descriptor.id, problems)
    if descriptor.body_kind == "none":
        return PayloadParts(path={}, query=dict(payload or {}), body=None)
    return PayloadParts(path={}, query={}, body=payload)


def build_target(template: str, path_params: Mapping[str, Any], query: Mapping[str, Any]) -> str:
    """The raw request target: encoded path plus ``?query`` when there is one."""
    path = template
    for name, value in path_params.items():
        path = path.replace("{" + name + "}", quote(_text(value), safe=""))
    if not query:
        return path
    joiner = "&" if "?" in path else "?"
    return path + joiner + "&".join(f"{quote(k, safe='')}={quote(_text(v), safe='')}" for k, v in query.items())


def query_values(target: str) -> dict[str, Union[str, list[str]]]:
    """The raw query of a request target as decoded text values: the inverse of ``build_target``.

    A key that appears more than once maps to the list of its values, in order (never the last one).
    """
    _, _, query = target.partition("?")
    pairs = (item.partition("=") for item in query.split("&") if item)
    return grouped((unquote(name), unquote(value)) for name, _, value in pairs)


def grouped(pairs: Iterable[tuple[str, str]]) -> dict[str, Union[str, list[str]]]:
    """Query pairs by name: one value as text, a repeated name as the list of its values in order."""
    values: dict[str, Union[str, list[str]]] = {}
    for name, value in pairs:
        known = values.get(name)
        if known is None:
            values[name] = value
        elif isinstance(known, list):
            known.append(value)
        else:
            values[name] = [known, value]
    return values


# Control characters (C0, DEL, C1) and lone surrogates: refused in a raw target, whatever their place.
_FORBIDDEN_IN_TARGET = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_STRAY_PERCENT = re.compile("%(?![0-9A-Fa-f]{2})")
_TARGET_SAFE = "/?:@!$&'()*+,;=%"  # with letters, digits and -._~: RFC 3986's path and query characters


def raw_target(target: str) -> str:
    """A caller's raw request target as a valid one: the form that is signed and sent.

    ``UsageError`` for control characters and lone surrogates; everything else outside RFC 3986's
    path and query characters is percent-encoded (UTF-8), keeping existing ``%XX`` escapes.
    """
    bad = _FORBIDDEN_IN_TARGET.search(target)
    if bad is not None:
        what = "a lone surrogate" if "\ud800" <= bad.group() <= "\udfff" else "a control character"
        raise UsageError(
            f"the request target contains {what} (U+{ord(bad.group()):04X}) at position {bad.start()}: "
            "percent-encode it if it is data; it is never sent as it is"
        )
    return quote(_STRAY_PERCENT.sub("%25", target), safe=_TARGET_SAFE)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(_text(item) for item in value)  # query arrays travel comma-separated
    return str(value)


def from_text(field: Optional[Field], text: Union[str, list[str]]) -> Any:
    """The inverse of the query/path encoding: ``"10"`` -> 10 for an integer field, and so on.

    A list (a repeated query key) stays a list: an array field gets every item of every value, any
    other field a list of converted values, which validation then refuses with the field's path.
    """
    if isinstance(text, list):
        if field is not None and field.type == "array":
            return [item for part in text for item in from_text(field, part)]
        return [from_text(field, part) for part in text]
    if field is None:
        return text
    if field.type == "array":
        return [from_text(field.items, item) for item in text.split(",")] if text else []
    convert = _FROM_TEXT.get(field.type)
    if convert is None:
        return text
    try:
        return convert(text)
    except ValueError:
        return text  # validation will say what is wrong with it


_FROM_TEXT: dict[str, Any] = {
    "integer": int,
    "number": float,
    "boolean": lambda text: {"true": True, "false": False}[text],
}


# Stateless: one instance serves every call. allow_nan=False: NaN and Infinity are not JSON.
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
# The C encoder JSONEncoder.encode would reach through iterencode's Python layers, called directly.
# Made per call, with markers of its own (check_circular): without markers a cycle recursed to the
# recursion limit, and under a limit an application raised that overflowed the C stack (a crash,
# not a RecursionError); shared markers would make threads encoding one object see a cycle.
_ENCODER_ARGUMENTS = (_JSON.default, encode_basestring, None, ":", ",", False, False, False)


def encode_json(data: Any) -> bytes:
    """Compact UTF-8 JSON. ``ValueError`` (NaN, lone surrogates, too deep, a cycle) or ``TypeError``
    (sets, objects) for what JSON cannot say: callers turn those into their own errors
    (``encode_request_json``)."""
    try:
        text = (
            _JSON.encode(data) if c_make_encoder is None else "".join(c_make_encoder({}, *_ENCODER_ARGUMENTS)(data, 0))
        )
        return text.encode("utf-8")
    except RecursionError:
        raise ValueError("nested too deeply to encode") from None


class UnreadableJsonError(ValueError):
    """JSON text ``decode_json`` could not read; the message is the reason (``"is nested too deeply to
    read"``), never the text. A ``ValueError``: callers that caught ``json.loads``' errors still catch it."""


def decode_json(data: Union[bytes, str]) -> Any:
    """``json.loads`` for text from outside, every refusal an ``UnreadableJsonError`` (see the docstring)."""
    try:
        return json.loads(data)
    except json.JSONDecodeError as exc:
        reason = f"is not valid JSON: {exc.msg} (line {exc.lineno} column {exc.colno})"
    except UnicodeDecodeError:
        reason = "is not UTF-8"
    except RecursionError:  # json.loads' own error for a document nested past the recursion limit
        reason = "is nested too deeply to read"
    except ValueError:  # an integer past sys.get_int_max_str_digits(): int() refuses it, not the decoder
        reason = "holds a number too long to read"
    raise UnreadableJsonError(reason)


def encode_request_json(descriptor: Descriptor, data: Any) -> bytes:
    """``encode_json`` for a request body: what cannot be encoded is a ``ValidationError``, nothing is sent.

    Validation refuses such values first; this is the last line, for what validation cannot see.
    """
    try:
        return encode_json(data)
    except (ValueError, TypeError) as exc:
        reason = "a lone surrogate is not UTF-8" if isinstance(exc, UnicodeError) else str(exc)
        raise ValidationError(descriptor.id, [f"cannot be encoded as JSON ({reason}) @ $"]) from None


@attrs.frozen
class EncodedBody:
    """Body bytes, the bytes to sign when they differ (uploads), and the Content-Type.

    ``fields`` is the request as name -> text, for families whose signature covers fields rather
    than bytes (APIv2); ``None`` for APIv3.
    """

    data: bytes = b""
    signed: Optional[bytes] = None
    content_type: Optional[str] = None
    fields: Optional[Mapping[str, str]] = None


class BodyCodec(Protocol):
    """How one family puts a body on the wire and reads an answer back (``wxpay_body_codec``)."""

    def encode(self, descriptor: Descriptor, body: Any, query: Mapping[str, Any]) -> EncodedBody:
        """The body (and, for field-signing families, the fields) of a validated, encrypted payload."""

    def decode(self, descriptor: Descriptor, response: "RawResponse") -> Any:
        """The data of an answer (verified unless its descriptor says it is unsigned)."""


class JsonCodec:
    """APIv3's bodies: compact UTF-8 JSON, ``multipart/form-data`` uploads, or none; JSON answers."""

    def encode(self, descriptor: Descriptor, body: Any, query: Mapping[str, Any]) -> EncodedBody:
        return encode_body(descriptor, body)

    def decode(self, descriptor: Descriptor, response: "RawResponse") -> Any:
        if not response.body:
            return None
        try:
            return json.loads(response.body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            kind = response.headers.get("Content-Type", "unknown content type")
            message = f"verified {response.status} answer is not JSON ({kind}, {len(response.body)} bytes)"
            raise MalformedResponseError(message) from None

    def __repr__(self) -> str:
        return "<JsonCodec>"


JSON_CODEC = JsonCodec()


def encode_body(descriptor: Descriptor, body: Any) -> EncodedBody:
    if descriptor.body_kind == "none" or body is None:
        return EncodedBody()
    if descriptor.body_kind == "multipart":
        return _encode_upload(descriptor, body)
    return EncodedBody(encode_request_json(descriptor, body), None, "application/json")


def _encode_upload(descriptor: Descriptor, body: Mapping[str, Any]) -> EncodedBody:
    meta = body.get("meta") or {}
    fields = descriptor.request.body
    files = [
        (name, _filename(meta, body[name]), file_content(descriptor, name, body[name]))
        for name, field in fields.items()
        if field.type == "file" and name in body
    ]
    plain = [
        (name, _text(body[name]))
        for name, field in fields.items()
        if field.type not in ("file", "object") and name in body
    ]
    upload = multipart.encode(encode_request_json(descriptor, meta), files, plain)
    return EncodedBody(upload.body, upload.meta, upload.content_type)


def file_content(descriptor: Descriptor, name: str, source: Any) -> bytes:
    """The bytes of file part ``name``; a path that cannot be read now, or grew past its limit, sends nothing.

    Validation saw the file readable and within its limit; it may have changed since, so the read
    is bounded again and a refusal says why the file fails now. Every family's codec reads files here.
    """
    limit = multipart.size_limit(descriptor.request.body.get(name))
    content = multipart.file_bytes(source, limit)
    if content is None:
        problem = multipart.file_problem(source, limit) or "cannot read the file (it could not be read to be sent)"
        raise ValidationError(descriptor.id, [f"{problem} @ $.{name}"])
    return content


def _filename(meta: Mapping[str, Any], source: Any) -> str:
    for key in ("filename", "file_name"):
        if isinstance(meta.get(key), str) and meta[key]:
            return cast(str, meta[key])
    return getattr(source, "name", None) or "file"
