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
  ``...combine_papay...`` finds ``/v3/ecommerce/combine-papay/...`` without guessing.
* A concrete value written in a template parameter's place (``...out_trade_no.abc_def.get()`` or
  ``...out_trade_no["abc_def"]``) is a *value*: it is sent exactly as written, percent-encoded,
  never folded. When the folded segments fit a descriptor's template, the literal path is that
  template with the values put in; ``_`` becomes ``-`` only in segment *names* the descriptor
  does not spell. A name with no descriptor at all falls back to a literal path (an attribute's
  ``_`` becoming ``-``, since nothing says which attributes are values: write a value with ``[...]``
  or a keyword), signed, sent and verified, not validated.
* Template segments (``_transaction_id_`` as an attribute, ``{transaction_id}`` in a string) take
  their values from keyword arguments; a missing one is a ``UsageError`` before anything is sent.
* ``json``, ``xml`` (APIv2's body, as the PHP SDK spells it), ``query`` and path keywords merge into
  the one flat payload the descriptor distributes, which is boxed (``engine.secret``) before the
  engine is called, and the caller's values dropped from the verb's frame: they may hold the
  plaintext of encrypted fields, and a failure's traceback must not show it.
* ``engine.v2....`` resolves like ``engine.v3....``: ``v2/pay/micropay`` folds to the id
  ``v2.pay.micropay.post``, whose descriptor's path is ``/pay/micropay`` (APIv2 URLs carry no ``/v2``).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Mapping, Optional
from urllib.parse import quote

from engine.errors import UsageError
from engine.registry import endpoint_id
from engine.secret import hide
from engine.untyped import Untyped

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
        if not isinstance(path, str):
            raise UsageError(f"a chain item is a path string such as 'v3/pay/transactions', got {type(path).__name__}")
        return Chain(self._engine, (*self._segments, *((s, False) for s in path.split("/") if s)))

    def __repr__(self) -> str:
        return f"<Chain /{'/'.join(text for text, _ in self._segments)}>"

    def reference(self, method: str, path_values: Mapping[str, Any]) -> tuple[str, bool]:
        """The reference ``Engine.call`` understands, and whether path values belong in the payload."""
        canonical = endpoint_id(method, "/" + "/".join(_template(text, False) for text, _ in self._segments))
        registry = self._engine.registry
        if canonical in registry:
            return canonical, True
        described = registry.fitting(method, [_template(text, False) for text, _ in self._segments])
        if described is not None:
            literal = _described_path(described.path, self._segments)
        else:
            literal = "/" + "/".join(_template(text, attribute) for text, attribute in self._segments)
        return f"{method.upper()} {_fill(literal, path_values)}", False


class _Verb:
    def __init__(self, chain: Chain, method: str) -> None:
        self.chain, self.method = chain, method

    def _arguments(
        self, payload: Any, json: Any, xml: Any, query: Optional[Mapping[str, Any]], path: dict[str, Any]
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
        merged = hide(merged)
        del payload, json, xml  # the caller's values leave this frame's locals, as in Engine.call
        return self.chain._engine.call(Untyped(ref), merged, headers=headers)


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
        merged = hide(merged)
        del payload, json, xml  # the caller's values leave this frame's locals, as in Engine.call
        return await self.chain._engine.acall(Untyped(ref), merged, headers=headers)


def _template(segment: str, attribute: bool) -> str:
    """``_name_`` or ``{name}`` -> ``{name}``; an attribute's ``_`` -> ``-`` (PHP camelCase -> kebab)."""
    match = _PLACEHOLDER.match(segment)
    if match is not None:
        return "{" + (match.group("attr") or match.group("brace")) + "}"
    return segment.replace("_", "-") if attribute else segment


def _described_path(template: str, segments: tuple[tuple[str, bool], ...]) -> str:
    """The descriptor's own spelling of each name, and each value exactly as the chain wrote it."""
    parts = []
    for spelled, (text, _) in zip([s for s in template.split("/") if s], segments, strict=True):
        if not (spelled.startswith("{") and spelled.endswith("}")):
            parts.append(spelled)
        elif _PLACEHOLDER.match(text):
            parts.append(_template(text, False))  # still a placeholder: a keyword gives its value
        else:
            parts.append(_encoded(text))
    return "/" + "/".join(parts)


def _encoded(value: str) -> str:
    """One path segment's value, percent-encoded with no safe characters."""
    try:
        return quote(value, safe="")
    except UnicodeEncodeError:
        raise UsageError("a path value contains a lone surrogate, which UTF-8 cannot encode") from None


def _fill(template: str, values: Mapping[str, Any]) -> str:
    """A literal path for an undescribed chain: placeholders replaced by their encoded values."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise UsageError(f"the path needs a value for {{{name}}}: pass {name}=... to the call")
        if str(values[name]) in ("", ".", ".."):
            raise UsageError(f"path parameter must not be empty, '.' or '..' @ $.{name}")
        return _encoded(str(values[name]))

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
