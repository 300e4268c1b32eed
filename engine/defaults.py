"""Payload defaults from configuration: ``Engine(defaults={"sp_mchid": ..., "notify_url": ...})``.

Design decisions:

* A default fills a field only where the endpoint's descriptor has a *top-level* request field of
  that name (body, query or path) and the payload leaves it out; what the payload gives always
  wins, even ``None`` or an empty string. Nested fields (``sub_orders[].mchid``) are never filled:
  the same name means different things at different depths.
* Filling happens in the pipeline right after the payload is assembled and *before* validation, so
  the validator, the encryption of marked fields, the Stubber and the sandbox all see the filled
  payload. Endpoints without a descriptor (``"POST /v3/unknown"``) and ``free_form`` ones get nothing.
* The mapping is copied and frozen at construction; values must be JSON-like (text, numbers,
  booleans, lists, mappings), checked then, with the offending key named.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Mapping, Optional

from engine.descriptor import Descriptor
from engine.errors import ConfigurationError

_JSON_SCALARS = (str, int, float, bool, type(None))


class Defaults:
    """Values filled into payloads whose descriptor names the field and which leave it out."""

    __slots__ = ("values",)

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.values = MappingProxyType(dict(values))

    @classmethod
    def from_setting(cls, setting: Optional[Mapping[str, Any]]) -> Optional["Defaults"]:
        if setting is None:
            return None
        if not isinstance(setting, Mapping):
            raise ConfigurationError(f"defaults must be a mapping of field name to value, got {type(setting).__name__}")
        for name, value in setting.items():
            if not isinstance(name, str) or not name:
                raise ConfigurationError(f"defaults: field names must be non-empty strings, got {name!r}")
            if not _json_like(value):
                raise ConfigurationError(f"defaults[{name!r}]: not a JSON value ({type(value).__name__})")
        return cls(setting) if setting else None

    def fill(self, descriptor: Descriptor, payload: Any) -> Any:
        """``payload`` with the defaults its descriptor has fields for (a new dict; the caller's is untouched)."""
        if descriptor.free_form or not (payload is None or isinstance(payload, dict)):
            return payload
        request = descriptor.request
        given = payload or {}
        missing = {
            name: value
            for name, value in self.values.items()
            if name not in given and (name in request.body or name in request.query or name in request.path)
        }
        if not missing:
            return payload
        return {**missing, **given}

    def __repr__(self) -> str:
        return f"Defaults({sorted(self.values)})"  # names only: values may be internal ids


def _json_like(value: Any) -> bool:
    if isinstance(value, _JSON_SCALARS):
        return True
    if isinstance(value, (list, tuple)):
        return all(_json_like(v) for v in value)
    if isinstance(value, Mapping):
        return all(isinstance(k, str) and _json_like(v) for k, v in value.items())
    return False
