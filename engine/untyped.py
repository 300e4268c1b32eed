"""``Untyped``: the explicit way to call an operation the generated types do not know.

``engine.call`` is typed per operation (see ``engine.types``): its overloads accept the canonical
id or the short name of every built-in operation as a literal, each with its own payload and
answer type, and nothing else. A reference that only exists at run time (an endpoint registered in
Python, a user descriptor directory, an alias, ``"METHOD /path"``, a name held in a variable) is
wrapped in ``Untyped(...)``: it type-checks with an ``Any`` payload and a ``Response[Any]``.

Design decisions:

* A ``str`` subclass, so every runtime path (registry lookups, logs, error messages, the Stubber)
  takes it as the plain string it is, repr included; the wrapping exists for the type checker.
* No catch-all ``str`` overload on ``call``: it would let a known operation with a wrong payload fall
  through to it, silently weakening the typed form. Reaching for ``Untyped`` is a visible choice.
"""

from __future__ import annotations

__all__ = ["Untyped"]


class Untyped(str):
    """An endpoint reference (id, alias, short name or ``"METHOD /path"``) typed as ``Any`` payload."""

    __slots__ = ()
