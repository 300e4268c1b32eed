"""Plain records of what crosses the wire: no HTTP-library types.

Design decisions:

* ``Request`` is the one serialized form of a call: method, raw target (path + query exactly as
  signed), headers and body bytes. The signer, the logger, every transport and the sandbox read
  this record, so the bytes that are signed are the bytes that are sent.
* ``RawResponse`` is what a transport hands back before anything is trusted; ``Response`` is what
  the engine returns after verification. Only the latter ever reaches a caller.
* ``Headers`` is a small case-insensitive mapping, because ``Request-ID`` and ``Request-Id`` are the
  same header and WeChat Pay, proxies and SDKs spell them differently.
* Reprs show status, ids and sizes, never bodies or header values: records end up in logs and
  tracebacks, and bodies carry personal data.
* Headers a caller passes (``headers=``) are checked by ``caller_headers`` before anything uses
  them: a mapping of HTTP-token names to string values without line breaks, other control
  characters (tab excepted) or lone surrogates. Anything else is a ``UsageError``: a header that
  could be split, or that a transport would have to guess how to encode, is never sent.
* ``Request.fields`` is the body seen as name -> text, for families that sign fields rather than
  bytes (APIv2): the signer signs those fields and the same codec writes them, so what is signed is
  still what is sent. ``None`` for APIv3 requests.
"""

from __future__ import annotations

import re
from collections import abc
from typing import TYPE_CHECKING, Any, Callable, Generic, Iterable, Iterator, Mapping, Optional, cast

import attrs

from engine.errors import UsageError

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 token: a header name
_LINE_BREAK = re.compile("[\r\n]")
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f]")  # tab is allowed inside a value

if TYPE_CHECKING:  # a default (PEP 696) lets a bare ``Response`` mean ``Response[Any]``
    from typing_extensions import TypeVar

    Data = TypeVar("Data", default=Any)
else:
    from typing import TypeVar

    Data = TypeVar("Data")

Derived = TypeVar("Derived")  # what Headers.derived computes


class Headers(Mapping[str, str]):
    """An immutable, case-insensitive header mapping that keeps the original spelling."""

    __slots__ = ("_derived", "_items")

    def __init__(self, items: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        # C type checks first: abc.Mapping costs an ABC lookup (typing.Mapping far more), on every call
        if isinstance(items, dict):
            pairs: Iterable[tuple[str, str]] = items.items()
        elif isinstance(items, (list, tuple)):
            pairs = items
        else:
            pairs = items.items() if isinstance(items, abc.Mapping) else items
        self._items: dict[str, tuple[str, str]] = {k.lower(): (k, v) for k, v in pairs}
        self._derived: Optional[tuple[Callable[[Headers], Any], Any]] = None

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()][1]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return (original for original, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def get(self, name: str, default: Any = None) -> Any:
        item = self._items.get(name.lower())
        return default if item is None else item[1]

    def items(self) -> Any:
        """(name, value) pairs with their original spelling (a view, without per-key lookups)."""
        return self._items.values()

    def values_of(self, lowered: Iterable[str]) -> list[Optional[str]]:
        """The values of headers named in lower case (``None`` for an absent one), without case folding."""
        found = self._items
        return [None if (item := found.get(name)) is None else item[1] for name in lowered]

    def derived(self, compute: Callable[["Headers"], Derived]) -> Derived:
        """``compute(self)``, kept for the next ask with the same function. The mapping never changes, so
        what a pure function derived from it stays true: an answer's signature headers are checked by
        the transport before the body is read and asked for again by the verifier, which gets the
        first check's result (one function is remembered; a failure is not, and fails again)."""
        remembered = self._derived
        if remembered is not None and remembered[0] is compute:
            return cast(Derived, remembered[1])
        value = compute(self)
        self._derived = (compute, value)
        return value

    def with_header(self, name: str, value: str) -> "Headers":
        """A copy with one header set, replacing a same-named one whatever its case (``merged`` for one
        header, without building a mapping: the signer adds Authorization this way to every attempt)."""
        copy = Headers()
        copy._items = {**self._items, name.lower(): (name, value)}
        return copy

    def merged(self, extra: Mapping[str, str]) -> "Headers":
        """A copy with ``extra`` added, replacing same-named headers whatever their case."""
        if not extra:
            return self  # immutable: the copy would be equal
        copy = Headers()
        copy._items = {**self._items, **{k.lower(): (k, v) for k, v in extra.items()}}
        return copy

    def __repr__(self) -> str:
        return f"Headers({sorted(self)!r})"


def caller_headers(headers: Optional[Mapping[str, str]]) -> Headers:
    """The ``headers=`` a caller passed, checked (``UsageError``) and as ``Headers``."""
    if headers is None:
        return Headers()
    if not isinstance(headers, abc.Mapping):
        raise UsageError(f"headers must be a mapping of name to value, got {type(headers).__name__}")
    for name, value in headers.items():
        if not isinstance(name, str):
            raise UsageError(f"header names must be strings, got {type(name).__name__}")
        if _TOKEN.fullmatch(name) is None:
            raise UsageError(f"the header name {name!r} is not an HTTP token (letters, digits and !#$%&'*+-.^_`|~)")
        if not isinstance(value, str):
            raise UsageError(f"the {name!r} header value must be a string, got {type(value).__name__}")
        if _LINE_BREAK.search(value):
            raise UsageError(f"the {name!r} header contains a line break, which could inject headers")
        if _CONTROL.search(value):
            raise UsageError(f"the {name!r} header contains a control character")
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise UsageError(f"the {name!r} header contains a lone surrogate, which UTF-8 cannot encode") from None
    return Headers(headers)


@attrs.frozen
class Request:
    """A serialized, possibly signed request, ready for any transport."""

    method: str
    base_url: str
    target: str
    headers: Headers = attrs.field(factory=Headers, repr=False)
    body: bytes = attrs.field(default=b"", repr=lambda b: f"<{len(b)} bytes>")
    signed_body: Optional[bytes] = attrs.field(default=None, repr=False)
    fields: Optional[Mapping[str, str]] = attrs.field(default=None, repr=False)

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + self.target

    def with_headers(self, headers: Headers) -> "Request":
        """This request with other headers (``attrs.evolve`` without its introspection: once per attempt)."""
        return Request(self.method, self.base_url, self.target, headers, self.body, self.signed_body, self.fields)

    @property
    def body_to_sign(self) -> bytes:
        """The BODY line of the signature: the body itself, or an upload's ``meta`` JSON."""
        return self.body if self.signed_body is None else self.signed_body


@attrs.frozen
class RawResponse:
    """An answer as received: not yet verified, not to be trusted."""

    status: int
    headers: Headers = attrs.field(factory=Headers, repr=False)
    body: bytes = attrs.field(default=b"", repr=lambda b: f"<{len(b)} bytes>")


@attrs.frozen
class Response(Generic[Data]):
    """A verified answer. ``data`` is the decoded body with encrypted fields decrypted.

    Generic in the type of ``data``: ``engine.call("combine_papay.mini_program", ...)`` returns a
    ``Response[CombinePapayMiniProgramAnswer]`` to a type checker (see ``engine.types``).
    """

    status: int
    headers: Headers = attrs.field(repr=False)
    data: Data = attrs.field(repr=False)
    request_id: str = ""
    verified_with: Optional[str] = None
    endpoint_id: str = ""
