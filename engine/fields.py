"""Walking values along descriptor fields.

Design decisions:

* One walker, ``map_encrypted``, applies a function to every value a descriptor marks
  ``encrypted``, however deep (objects, arrays of objects). Request encryption, response
  decryption, the sandbox's own decryption and log redaction are all this walker with a different
  function, so the ``encrypted`` trait cannot mean one thing to the cipher and another to the logs.
* ``map_encrypted_fields`` is the same walker handing the function each value's ``Field`` too, for
  the work that needs its limits (a ciphertext's ``max_length``); ``map_encrypted`` is that walk
  with the field left out, so there is one walk, not two that could disagree.
* The walker never mutates: it returns new containers only along the changed branches and leaves
  values it does not understand (wrong types are the validator's business) untouched.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from engine.descriptor import Field

Transform = Callable[[str, str], Any]  # (value, json path) -> new value (text, or a stand-in for it)
FieldTransform = Callable[[str, str, Field], Any]  # the same, given the value's field as well


def any_encrypted(fields: Mapping[str, Field]) -> bool:
    """True when any field in the tree is marked encrypted."""
    return any(field.holds_encrypted for field in fields.values())


def map_encrypted(fields: Mapping[str, Field], data: Any, fn: Transform, path: str = "$") -> Any:
    """Return ``data`` with ``fn`` applied to every string value marked ``encrypted``."""
    return map_encrypted_fields(fields, data, lambda value, where, field: fn(value, where), path)


def map_encrypted_fields(fields: Mapping[str, Field], data: Any, fn: FieldTransform, path: str = "$") -> Any:
    """``map_encrypted``, with ``fn`` given the value's field as its third argument."""
    if not isinstance(data, dict):
        return data
    out = None
    for name, field in fields.items():
        if field.holds_encrypted and name in data:
            out = out if out is not None else dict(data)
            out[name] = _map_value(field, data[name], fn, f"{path}.{name}")
    return data if out is None else out


def _map_value(field: Field, value: Any, fn: FieldTransform, path: str) -> Any:
    if field.encrypted:
        # Empty strings travel as they are: WeChat Pay and the official SDKs do not encrypt them.
        return fn(value, path, field) if isinstance(value, str) and value != "" else value
    if field.type == "object":
        return map_encrypted_fields(field.fields, value, fn, path)
    if field.type == "array" and field.items is not None and isinstance(value, list):
        return [_map_value(field.items, v, fn, f"{path}[{i}]") for i, v in enumerate(value)]
    return value
