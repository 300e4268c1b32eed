"""Example payloads built from descriptors: valid by construction, for docs, ``endpoints show`` and tests.

Design decisions:

* **The smallest payload the descriptor accepts**: every required field, and inside objects and array
  items every required sub-field; optional fields are left out.
* **The catalogue's example when it fits, else a generated value that does.** "Fits" is decided by the
  engine's own validator (``compile_validator``) on that one field, so an example is never trusted
  for a type, enum, length, range, pattern or encrypted-size limit it breaks (the catalogue has
  string examples on integer fields, ciphertext examples longer than RSA can hold, and so on).
* Generated values are **deterministic** (no randomness): the same descriptor always gives the same
  payload, so ``endpoints show`` is stable and tests are reproducible. Strings start from the field
  name; patterns are met by a short list of simple candidates (dates, digits, letters) tried in order.
* An upload always carries ``meta`` (the protocol signs it), so a multipart example has one even
  where the catalogue leaves it optional, with ``sha256`` computed from the example file by
  ``engine.multipart.complete_meta``, the engine's own rule, never the catalogue's sample digest.
* Headers the engine sets itself (``Wechatpay-Serial`` names the key it encrypts with) are never part
  of an example; ``example_headers`` gives the other required ones. Fields the engine fills itself
  (``fills``: merchant id, nonce, sign...) are left out too, except the app id, which the engine
  writes only when it was given one. A ``one_of`` group is met by its first member.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterator, cast

from engine.descriptor import Descriptor, Field, RequestSpec
from engine.multipart import complete_meta
from engine.validation import MAX_ENCRYPTED_BYTES, compile_validator

ENGINE_HEADERS = frozenset({"wechatpay-serial", "authorization", "accept", "user-agent", "content-type"})
EXAMPLE_FILE = b"example file content"
# Tried in order when a string has a pattern its example does not meet.
_PATTERN_CANDIDATES = ("20240101", "20240101120000", "000000", "A1", "a", "1", "example")


def example_payload(descriptor: Descriptor) -> dict[str, Any]:
    """A payload that passes ``descriptor``'s own validation: required fields only, examples where valid."""
    fields = {name: f for _, group in descriptor.request.locations() for name, f in group.items()}
    path_fields = set(descriptor.request.path)
    chosen = {group[0] for group in descriptor.one_of}
    engine_filled = {name for name, kind in descriptor.fills.items() if kind != "appid"}
    payload = {
        name: example_value(name, field)
        for name, field in fields.items()
        if (field.required or name in path_fields or name in chosen)  # path parameters are always required
        and name not in engine_filled
    }
    return _with_meta(descriptor, payload) if descriptor.body_kind == "multipart" else payload


def _with_meta(descriptor: Descriptor, payload: dict[str, Any]) -> dict[str, Any]:
    """An upload always sends ``meta``; its digest is the example file's, computed as the engine does."""
    meta_field = descriptor.request.body.get("meta")
    if meta_field is None or meta_field.type != "object":
        return payload
    meta = {k: v for k, v in example_value("meta", meta_field).items() if k != "sha256"}
    return cast(dict[str, Any], complete_meta(descriptor, {**payload, "meta": meta}))


def example_headers(descriptor: Descriptor) -> dict[str, str]:
    """The required headers a caller must pass (``headers=``), leaving out those the engine sets."""
    return {
        name: str(example_value(name, field))
        for name, field in descriptor.request.header.items()
        if field.required and name.lower() not in ENGINE_HEADERS
    }


def example_value(name: str, field: Field) -> Any:
    """The field's example if the field accepts it, else the first generated value it accepts."""
    accepts = _acceptor(field)
    for candidate in _candidates(name, field):
        if accepts(candidate):
            return candidate
    return _generated(name, field)  # nothing fits (contradictory limits): the plainest value


def _candidates(name: str, field: Field) -> Iterator[Any]:
    if field.example is not None:
        yield field.example
    if field.enum:
        yield from field.enum
    yield _generated(name, field)
    if field.type == "string" and field.pattern is not None:
        yield from (_sized(text, field) for text in _PATTERN_CANDIDATES)


def _generated(name: str, field: Field) -> Any:
    maker = _MAKERS.get(field.type, _text)
    return maker(name, field)


def _text(name: str, field: Field) -> str:
    return _sized(name or "x", field)


def _sized(text: str, field: Field) -> str:
    """``text`` padded or cut to the field's length limits (and to what RSA-OAEP can encrypt)."""
    high, low = field.max_length, max(field.min_length or 1, 1)
    if field.encrypted:  # its length limits are the ciphertext's; the plaintext must fit RSA-OAEP
        high, low = MAX_ENCRYPTED_BYTES // 3, 1
    if len(text) < low:
        text = text + "0" * (low - len(text))
    return text[:high] if high is not None else text


def _number(name: str, field: Field) -> Any:
    low, high = field.minimum, field.maximum
    value: float = 1
    if low is not None and value < low:
        value = low
    if high is not None and value > high:
        value = high
    return math.ceil(value) if field.type == "integer" else value


def _boolean(name: str, field: Field) -> bool:
    return True


def _object(name: str, field: Field) -> dict[str, Any]:
    return {sub: example_value(sub, f) for sub, f in field.fields.items() if f.required}


def _array(name: str, field: Field) -> list[Any]:
    count = max(field.min_items or 1, 1)
    if field.max_items is not None:
        count = min(count, field.max_items)
    item = example_value(name, field.items) if field.items is not None else name
    return [item] * count


def _file(name: str, field: Field) -> bytes:
    return EXAMPLE_FILE


_MAKERS: dict[str, Callable[[str, Field], Any]] = {
    "string": _text,
    "integer": _number,
    "number": _number,
    "boolean": _boolean,
    "object": _object,
    "array": _array,
    "file": _file,
}


def _acceptor(field: Field) -> Callable[[Any], bool]:
    """Whether the engine's validator accepts a value for this one field."""
    probe = Descriptor(id="example", method="POST", path="/", request=RequestSpec(body={"value": field}))
    validate = compile_validator(probe)
    return lambda value: value is not None and not validate({"value": value})
