"""The chainable addressing styles of the PHP/Node SDKs, on the same executor.

::

    engine.v3.ecommerce.combine_papay.contracts.pre_entrust_sign.mini_program.post(json={...})
    engine.chain("v3/ecommerce/combine-papay/contracts/pre-entrust-sign/mini-program").post(json={...})
    engine["v3/pay/transactions/id/{transaction_id}"].get(transaction_id="4200...", query={"mchid": "..."})
    await engine.v3.pay.transactions.id._transaction_id_.aget(transaction_id="4200...", query={...})
    engine.v2.pay.micropay.post(xml={"body": "...", "out_trade_no": "...", ...})

Design decisions:

* A chain is only a way to *name* an endpoint. Each verb resolves it to an endpoint reference and
  calls ``Engine.call``/``acall``, so validation, encryption, signing and verification are the ones
  every other call gets; there is no second pipeline.
* Resolution goes through the canonical id first: attribute names and path segments are folded
  exactly as the id rule folds them (``combine_papay`` and ``combine-papay`` both give
  ``combine_papay``), so ``engine.v3.mch_operate...`` finds ``/v3/mch_operate/...`` and
  ``...combine_papay...`` finds ``/v3/ecommerce/combine-papay/...`` without guessing. A name with no
  descriptor falls back to a literal path (attribute ``_`` becoming ``-``), signed, sent and
  verified, not validated.
* Template segments (``_transaction_id_`` as an attribute, ``{transaction_id}`` in a string) take
  their values from keyword arguments; a missing one is a ``UsageError`` before anything is sent.
* ``json``, ``xml`` (APIv2's body, as the PHP SDK spells it), ``query`` and path keywords merge into
  the one flat payload the descriptor distributes.
* ``engine.v2....`` resolves like ``engine.v3....``: ``v2/pay/micropay`` folds to the id
  ``v2.pay.micropay.post``, whose descriptor's path is ``/pay/micropay`` (APIv2 URLs carry no ``/v2``).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Mapping, Optional
from urllib.parse import quote

from engine.errors import UsageError
from engine.registry import endpoint_id

if TYPE_CHECKING:
    from engine.client import Engine
    from engine.wire import Response

_PLACEHOLDER = re.compile(r"^(?:_(?P<attr>[A-Za-z0-9_]+)_|\{(?P<brace>[^{}/]+)\})$")
METHODS = ("get", "post", "put", "patch", "delete")


class Chain:
    """A path being spelled out; verbs (``get``, ``post``... and ``aget``, ``apost``...) call it."""

    __slots__ = ("_engine", "_segments")

    def __init__(self, engine: "Engine", segments: tuple[tuple[str, bool], ...] = ()) -> None:
        self._engine = engine
        self._segments = segments  # (text, written as a Python attribute?)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if name in METHODS:
            return _Verb(self, name)
        if name.startswith("a") and name[1:] in METHODS:
            return _AsyncVerb(self, name[1:])
        return Chain(self._engine, (*self._segments, (name, True)))

    def __getitem__(self, path: str) -> "Chain":
        return Chain(self._engine, (*self._segments, *((s, False) for s in path.split("/") if s)))

    def __repr__(self) -> str:
        return f"<Chain /{'/'.join(text for text, _ in self._segments)}>"

    def reference(self, method: str, path_values: Mapping[str, Any]) -> tuple[str, bool]:
        """The reference ``Engine.call`` understands, and whether path values belong in the payload."""
        canonical = endpoint_id(method, "/" + "/".join(_template(text, False) for text, _ in self._segments))
        if canonical in self._engine.registry:
            return canonical, True
        literal = "/" + "/".join(_template(text, attribute) for text, attribute in self._segments)
        return f"{method.upper()} {_fill(literal, path_values)}", False


class _Verb:
    def __init__(self, chain: Chain, method: str) -> None:
        self.chain, self.method = chain, method

    def _arguments(
        self, payload: Any, json: Any, xml: Any, query: Optional[Mapping[str, Any]], path: dict
    ) -> tuple[str, Any]:
        ref, path_in_payload = self.chain.reference(self.method, path)
        if json is not None and xml is not None:
            raise UsageError("pass the body as json= or as xml=, not both")
        return ref, _merge(payload, json if xml is None else xml, query, path if path_in_payload else {})

    def __call__(
        self,
        payload: Any = None,
        *,
        json: Any = None,
        xml: Any = None,
        query: Optional[Mapping[str, Any]] = None,
        headers: Optional[Mapping[str, str]] = None,
        **path: Any,
    ) -> "Response":
        ref, merged = self._arguments(payload, json, xml, query, path)
        return self.chain._engine.call(ref, merged, headers=headers)


class _AsyncVerb(_Verb):
    async def __call__(  # type: ignore[override]
        self,
        payload: Any = None,
        *,
        json: Any = None,
        xml: Any = None,
        query: Optional[Mapping[str, Any]] = None,
        headers: Optional[Mapping[str, str]] = None,
        **path: Any,
    ) -> "Response":
        ref, merged = self._arguments(payload, json, xml, query, path)
        return await self.chain._engine.acall(ref, merged, headers=headers)


def _template(segment: str, attribute: bool) -> str:
    """``_name_`` or ``{name}`` -> ``{name}``; an attribute's ``_`` -> ``-`` (PHP camelCase -> kebab)."""
    match = _PLACEHOLDER.match(segment)
    if match is not None:
        return "{" + (match.group("attr") or match.group("brace")) + "}"
    return segment.replace("_", "-") if attribute else segment


def _fill(template: str, values: Mapping[str, Any]) -> str:
    """A literal path for an undescribed chain: placeholders replaced by their encoded values."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise UsageError(f"the path needs a value for {{{name}}}: pass {name}=... to the call")
        if str(values[name]) in ("", ".", ".."):
            raise UsageError(f"path parameter must not be empty, '.' or '..' @ $.{name}")
        return quote(str(values[name]), safe="")

    return re.sub(r"{([^{}/]+)}", replace, template)


def _merge(payload: Any, json: Any, query: Optional[Mapping[str, Any]], path: Mapping[str, Any]) -> Any:
    extras = [part for part in (json, query, path) if part]
    if not extras:
        return payload
    if payload is not None and not isinstance(payload, dict):
        raise UsageError("pass the payload either positionally or as json=/query=/path keywords, not both")
    merged: dict[str, Any] = dict(payload or {})
    for part in extras:
        merged.update(part)
    return merged
