"""Checking a payload against its descriptor before anything is signed or sent.

Design decisions:

* Validation reports *every* problem at once, each as ``"message @ $.json.path"``, in payload order,
  so a caller fixes a payload in one round. The message strings are part of the public API and are
  tested verbatim.
* A descriptor is compiled once into a tree of small checker closures (no per-call interpretation
  of the descriptor), cached by the engine next to the descriptor.
* Messages never echo the value of an ``encrypted`` field: a name or ID number must not reach an
  exception (and so a log) by way of a validation error.
* An ``encrypted`` field's plaintext must fit RSA-OAEP/SHA-1 under a 2048-bit key (``MAX_ENCRYPTED_BYTES``
  of UTF-8); its ``min_length``/``max_length`` are the lengths WeChat Pay documents for what travels,
  the base64 ciphertext (``pay_bank``'s 384), so they are checked on that, after encryption
  (``ciphertext_problems``), and not on the plaintext.
* A *required* ``encrypted`` field must not be ``""``. Empty values are sent as they are, never
  encrypted (``engine.fields``: WeChat Pay and the official SDKs do not encrypt an empty optional
  value), and the length limits above skip the plaintext, so a required one given empty used to go
  out as ``""`` in clear. Refused here, at every depth, by the one validator the engine and the
  sandbox share; an empty *optional* encrypted field still passes.
* ``bool`` is not an integer here, although Python says it is: ``True`` for a ``plan_id`` is a bug.
* Path parameters must be non-empty and never ``.`` or ``..``: percent-encoding cannot stop a
  dot-segment from being normalised away by a proxy, so those values are refused outright.
* Values must be what the wire can carry, whatever the descriptor says: strings encodable as UTF-8
  (a lone surrogate such as ``"\\ud800"`` is refused, not left to blow up in the encoder), finite
  numbers (``NaN`` and ``Infinity`` are not JSON) and integers that fit in 64 bits (WeChat Pay's own
  limit, and Python refuses to print integers of more than 4300 digits). A file given as a path
  must be a readable regular file now: a missing one was once sent as an empty file.
* A file must fit its size limit (``max_bytes``, else the engine's ceiling; ``engine.multipart``):
  bytes are measured by their length, a path by ``stat``, never by reading it. The sandbox
  validates with the same checker, so it refuses an oversized upload that bypassed the engine.
* A payload with no descriptor (``free_form``) is checked only for being JSON
  (``free_form_problems``): an object with string keys, JSON values, at most ``MAX_JSON_DEPTH``
  levels deep (which also catches a payload that contains itself).
* Query arrays travel comma-separated (``ids=1,2``), so a string item in one must be non-empty and
  hold no ``,``: otherwise WeChat Pay (and the sandbox) would read other items than were sent.
* Paths in messages show a key as ``.name`` when it is printable and as ``[repr]`` otherwise, so a
  hostile key cannot put a line break or a surrogate into an error message (or a log).
* A ``one_of`` group (WeChat Pay's "transaction_id 或 out_trade_no 二选一") takes exactly one of its
  fields: none is missing data, two are two answers to one question (which order to refund?), so
  both are refused rather than left to a precedence rule the caller may not know.
"""

from __future__ import annotations

import math
import os
import re
from typing import Any, Callable, Mapping, Optional

import attrs

from engine.descriptor import Descriptor, Field
from engine.multipart import file_problem, size_limit

Checker = Callable[[Any, str, list[str]], None]
PayloadValidator = Callable[[Any], list[str]]

# RSA-2048 with OAEP/SHA-1 holds at most 256 - 2*20 - 2 bytes of plaintext (a pay_bank key of any
# other size is refused at construction, engine.keys.PAY_BANK_KEY_BITS, so this figure holds for it).
MAX_ENCRYPTED_BYTES = 214
MAX_JSON_DEPTH = 64  # for free-form payloads; described ones are bounded by their descriptor
INT_RANGE = (-(2**63), 2**64 - 1)  # int64 and uint64 both fit
LONE_SURROGATE = "contains a lone surrogate, which UTF-8 cannot encode"
NOT_FINITE = "must be a finite number"
NOT_64_BITS = "integer does not fit in 64 bits"
EMPTY_ENCRYPTED = "must not be empty (a required encrypted field)"
_INT_LOW, _INT_HIGH = INT_RANGE

PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
    "file": (bytes, bytearray, os.PathLike),
}
_JSON_NAMES: dict[type, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    dict: "object",
    list: "array",
    bytes: "bytes",
}


def compile_validator(descriptor: Descriptor) -> PayloadValidator:
    """Build the payload checker for one descriptor."""
    fields = {name: f for _, group in descriptor.request.locations() for name, f in group.items()}
    # A path parameter is required whatever the descriptor says: an omitted one would leave
    # "{name}" in the path, and no endpoint can be reached that way.
    fields.update({name: attrs.evolve(f, required=True) for name, f in descriptor.request.path.items()})
    extra = {**_query_array_checks(descriptor.request.query), **_path_parameter_checks(descriptor.request.path)}
    check_object = _object_checker(fields, extra=extra)
    if descriptor.one_of:
        check_object = _all_of([check_object, *map(_one_of_check, descriptor.one_of)])

    def validate(payload: Any) -> list[str]:
        errors: list[str] = []
        if not isinstance(payload, dict):
            return [f"payload must be an object, got {_json_type(payload)} @ $"]
        check_object(payload, "$", errors)
        return errors

    return validate


def _one_of_check(group: tuple[str, ...]) -> Checker:
    listing = ", ".join(group)

    def check(value: dict[str, Any], path: str, errors: list[str]) -> None:
        given = [name for name in group if value.get(name) is not None]
        if not given:
            errors.append(f"missing one of {listing} (give exactly one) @ {path}")
        elif len(given) > 1:
            errors.append(f"give exactly one of {listing}, not {' and '.join(given)} @ {path}")

    return check


def _path_parameter_checks(path_fields: Mapping[str, Field]) -> dict[str, Checker]:
    def check(value: Any, path: str, errors: list[str]) -> None:
        if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value) in ("", ".", ".."):
            errors.append(f"path parameter must not be empty, '.' or '..' @ {path}")

    return {name: check for name in path_fields}


def _query_array_checks(query_fields: Mapping[str, Field]) -> dict[str, Checker]:
    """Query arrays travel comma-separated: an item with a ',' (or an empty one) would not come back as sent."""

    def check(value: Any, path: str, errors: list[str]) -> None:
        for index, item in enumerate(value):
            if isinstance(item, str) and ("," in item or not item):
                errors.append(f"a query array item must be non-empty and hold no ',' @ {path}[{index}]")

    return {name: check for name, field in query_fields.items() if field.type == "array"}


def _object_checker(fields: Mapping[str, Field], extra: Mapping[str, Checker] | None = None) -> Checker:
    checkers = {name: _field_checker(f) for name, f in fields.items()}
    for name, more in (extra or {}).items():
        checkers[name] = _chain(checkers[name], more)
    required = [name for name, f in fields.items() if f.required]

    def check(value: dict[str, Any], path: str, errors: list[str]) -> None:
        for key, item in value.items():
            checker = checkers.get(key)
            if checker is None:
                errors.append(f"unknown field @ {member(path, key)}")
            else:
                checker(item, f"{path}.{key}", errors)
        for name in required:
            if name not in value:
                errors.append(f"missing required field @ {path}.{name}")

    return check


def _chain(first: Checker, second: Checker) -> Checker:
    def check(value: Any, path: str, errors: list[str]) -> None:
        before = len(errors)
        first(value, path, errors)
        if len(errors) == before:
            second(value, path, errors)

    return check


def _field_checker(field: Field) -> Checker:
    expected = PYTHON_TYPES[field.type]
    refuse_bool = field.type in ("integer", "number")  # bool is an int to Python, not to WeChat Pay
    sendable = _SENDABLE.get(field.type)
    refine = _refinement(field)

    def check(value: Any, path: str, errors: list[str]) -> None:
        if value is None:
            errors.append(f"must not be null @ {path}")
        elif not isinstance(value, expected) or (refuse_bool and value.__class__ is bool):
            errors.append(f"expected {field.type}, got {_json_type(value)} @ {path}")
        elif sendable is not None and (problem := sendable(value)) is not None:
            errors.append(f"{problem} @ {path}")  # and no refinement: sizes and patterns need a sendable value
        elif refine is not None:
            refine(value, path, errors)

    if field.type == "string":  # most fields: an ASCII str skips every generic step above

        def check_string(value: Any, path: str, errors: list[str]) -> None:
            if value.__class__ is str and value.isascii():
                if refine is not None:
                    refine(value, path, errors)
            else:
                check(value, path, errors)

        return check_string
    return check


def _string_problem(value: str) -> Optional[str]:
    if value.isascii():
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return LONE_SURROGATE
    return None


def _number_problem(value: Any) -> Optional[str]:
    if isinstance(value, float):
        return None if math.isfinite(value) else NOT_FINITE
    return None if _INT_LOW <= value <= _INT_HIGH else NOT_64_BITS


_SENDABLE: dict[str, Callable[[Any], Optional[str]]] = {
    "string": _string_problem,
    "integer": _number_problem,
    "number": _number_problem,
}


def _refinement(field: Field) -> Checker | None:
    """The checks that apply once the type is right, or None when there are none."""
    parts: list[Checker] = []
    if field.enum is not None:
        parts.append(_enum_check(field))
    if field.type == "string":
        parts.extend(_string_checks(field))
    elif field.type in ("integer", "number"):
        parts.extend(_range_checks(field))
    elif field.type == "object":
        parts.append(_object_checker(field.fields))
    elif field.type == "array":
        parts.extend(_array_checks(field))
    elif field.type == "file":
        parts.append(_file_check(size_limit(field)))
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else _all_of(parts)


def _all_of(parts: list[Checker]) -> Checker:
    def check(value: Any, path: str, errors: list[str]) -> None:
        for part in parts:
            part(value, path, errors)

    return check


def _enum_check(field: Field) -> Checker:
    allowed = field.enum or ()
    listing = ", ".join(str(a) for a in allowed)

    def check(value: Any, path: str, errors: list[str]) -> None:
        if value not in allowed:
            shown = "" if field.encrypted else f", got {value!r}"
            errors.append(f"must be one of {listing}{shown} @ {path}")

    return check


def _string_checks(field: Field) -> list[Checker]:
    checks: list[Checker] = []
    low, high = field.min_length, field.max_length
    if (low is not None or high is not None) and not field.encrypted:  # an encrypted one's are the ciphertext's
        checks.append(_bounds_check(len, "length", low, high))
    if field.pattern is not None:
        regex = re.compile(field.pattern)
        checks.append(_predicate(lambda v: regex.search(v) is not None, f"does not match pattern {field.pattern}"))
    if field.encrypted:
        checks.append(_bounds_check(lambda v: len(v.encode()), "encoded size", None, MAX_ENCRYPTED_BYTES))
    if field.encrypted and field.required:  # "" is never encrypted: a required one would travel in clear
        checks.append(_predicate(lambda v: v != "", EMPTY_ENCRYPTED))
    return checks


def ciphertext_problems(field: Field, ciphertext: str, path: str) -> list[str]:
    """What keeps the ciphertext of an ``encrypted`` field within the field's documented length limits."""
    errors: list[str] = []
    if field.min_length is not None or field.max_length is not None:
        _bounds_check(len, "ciphertext length", field.min_length, field.max_length)(ciphertext, path, errors)
    return errors


def _file_check(limit: int) -> Checker:
    def check(value: Any, path: str, errors: list[str]) -> None:
        problem = file_problem(value, limit)
        if problem is not None:
            errors.append(f"{problem} @ {path}")

    return check


def _range_checks(field: Field) -> list[Checker]:
    if field.minimum is None and field.maximum is None:
        return []
    return [_bounds_check(lambda v: v, "value", field.minimum, field.maximum)]


def _array_checks(field: Field) -> list[Checker]:
    checks: list[Checker] = []
    if field.min_items is not None or field.max_items is not None:
        checks.append(_bounds_check(len, "item count", field.min_items, field.max_items))
    if field.items is not None:
        item_check = _field_checker(field.items)

        def check_items(value: list[Any], path: str, errors: list[str]) -> None:
            for index, item in enumerate(value):
                item_check(item, f"{path}[{index}]", errors)

        checks.append(check_items)
    return checks


def _bounds_check(measure: Callable[[Any], Any], what: str, low: Any, high: Any) -> Checker:
    def check(value: Any, path: str, errors: list[str]) -> None:
        size = measure(value)
        if low is not None and size < low:
            errors.append(f"{what} {size} is under the minimum {_num(low)} @ {path}")
        if high is not None and size > high:
            errors.append(f"{what} {size} is over the maximum {_num(high)} @ {path}")

    return check


def _predicate(test: Callable[[Any], bool], message: str) -> Checker:
    def check(value: Any, path: str, errors: list[str]) -> None:
        if not test(value):
            errors.append(f"{message} @ {path}")

    return check


def free_form_problems(payload: Any, query: bool = False) -> list[str]:
    """What keeps a payload with no descriptor from being sent: it must be an object (or None) of
    string keys and JSON values; for a query string (``query``), scalars or arrays of scalars."""
    if payload is None:
        return []
    if not isinstance(payload, dict):
        return [f"payload must be an object, got {_json_type(payload)} @ $"]
    errors: list[str] = []
    stack: list[tuple[Any, str, int]] = [(payload, "$", 1)]
    while stack:  # iterative, so a deep or self-containing payload is an error, not a RecursionError
        value, path, depth = stack.pop()
        problem, children = _json_problem(value, path, depth, query)
        if problem is not None:
            errors.append(f"{problem} @ {path}")
        stack.extend(reversed(children))  # reversed: problems come out in payload order
    return errors


def _json_problem(value: Any, path: str, depth: int, query: bool) -> tuple[Optional[str], list[Any]]:
    """One value's problem (or None) and the children to look at next."""
    if isinstance(value, str):
        return _string_problem(value), []
    if isinstance(value, (bool, type(None))):
        return ("must not be null" if value is None and query else None), []
    if isinstance(value, (int, float)):
        return _number_problem(value), []
    if not isinstance(value, (dict, list, tuple)):
        return f"not a JSON value ({type(value).__name__})", []
    if query and depth > 1 and (depth > 2 or isinstance(value, dict)):
        return "a query value must be text, a number, a boolean or an array of them", []
    if depth > MAX_JSON_DEPTH:
        return f"nested deeper than {MAX_JSON_DEPTH} levels", []
    if isinstance(value, dict):
        bad_key = next((key for key in value if not isinstance(key, str)), _NO_KEY)
        if bad_key is not _NO_KEY:
            return f"object keys must be strings, got {_json_type(bad_key)} {repr(bad_key)[:40]}", []
        return None, [(item, member(path, key), depth + 1) for key, item in value.items()]
    return None, [(item, f"{path}[{index}]", depth + 1) for index, item in enumerate(value)]


_NO_KEY = object()


def member(path: str, key: Any) -> str:
    """``path.key`` for a printable key, ``path[repr(key)]`` for one that could garble a message or a log."""
    text = key if isinstance(key, str) else repr(key)
    return f"{path}.{text}" if text.isprintable() else f"{path}[{text!r}]"


def _num(value: Any) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _json_type(value: Any) -> str:
    return "null" if value is None else _JSON_NAMES.get(type(value), type(value).__name__)
