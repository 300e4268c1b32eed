"""Fields the engine writes itself (a descriptor's ``fills``), and the descriptor as its caller sees it.

Design decisions:

* ``fills`` is a trait, so this is generic code: it reads ``FillKind``s, never a protocol. The
  values the engine knows once per call (its merchant id, its app id, a nonce, a timestamp, an
  upload's MD5) are written into the payload *before* validation, so validation checks what is
  sent; the signer's own (sign type, signature) are written by the family's signer, per attempt.
* Nothing the caller gave is overwritten: a caller's ``nonce_str`` or ``sign_type`` stands. Two
  things are refused instead: a signature the caller made (the engine signs every attempt), and a
  merchant id other than the engine's (it signs with that merchant's key, so the request would be
  someone else's, signed by the wrong key).
* ``caller_view`` is the descriptor the caller's payload is validated against: every filled field
  is optional there, except the app id, which the engine writes only when it was given one.
* Filled values take their field's type (a merchant id typed ``integer`` is an integer; a timestamp
  typed ``number`` stays a whole number).
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable, Mapping, Optional

import attrs

from engine.descriptor import Descriptor, Field
from engine.errors import ValidationError
from engine.multipart import upload_content
from engine.serialize import from_text

Source = Callable[[], Optional[str]]  # what the engine knows for one fill kind (None: nothing to write)


def fill(descriptor: Descriptor, payload: Any, sources: Mapping[str, Source]) -> Any:
    """``payload`` with the fields of ``descriptor.fills`` the engine knows once per call written in."""
    if not isinstance(payload, dict):
        return payload  # validation says what is wrong with it
    filled = dict(payload)
    located = {**descriptor.request.query, **descriptor.request.body}
    problems: list[str] = []
    for name, kind in descriptor.fills.items():
        if kind == "signature" and name in filled:
            problems.append(f"is computed by the engine for every attempt; leave it out @ $.{name}")
        elif kind == "merchant_id" and name in filled and str(filled[name]) != sources[kind]():
            problems.append(f"must be this engine's mchid (it signs with that merchant's key) @ $.{name}")
        elif name not in filled and (value := _value(kind, descriptor, filled, sources)) is not None:
            filled[name] = _typed(located[name], value)
    if problems:
        raise ValidationError(descriptor.id, problems)
    return filled


def caller_view(descriptor: Descriptor) -> Descriptor:
    """``descriptor`` as its caller sees it: a field the engine fills is not the caller's to give."""
    engine_fields = {name for name, kind in descriptor.fills.items() if kind != "appid"}
    if not engine_fields:
        return descriptor

    def optional(fields: dict[str, Field]) -> dict[str, Field]:
        return {n: attrs.evolve(f, required=False) if n in engine_fields else f for n, f in fields.items()}

    spec = descriptor.request
    return attrs.evolve(descriptor, request=attrs.evolve(spec, query=optional(spec.query), body=optional(spec.body)))


def _value(
    kind: str, descriptor: Descriptor, payload: Mapping[str, Any], sources: Mapping[str, Source]
) -> Optional[str]:
    """What the engine writes for one kind now; ``None`` for the signer's kinds and unknown values."""
    if kind == "file_md5":
        content = upload_content(descriptor, payload)  # None over the limit: validation says so
        return None if content is None else hashlib.md5(content).hexdigest()  # lower-case, as APIv2 uploads ask
    source = sources.get(kind)
    return source() if source is not None else None


def _typed(field: Field, text: str) -> Any:
    if field.type in ("integer", "number") and text.isdigit():
        return int(text)
    return from_text(field, text)
