"""Key material in a box that shows nothing: the APIv3 and APIv2 keys, key settings as given, PEM text.

Design decisions:

* Error trackers (Sentry and the like) record every frame's locals with their ``repr``. A bare
  ``bytes`` APIv3 key or a PEM string passed from frame to frame would be in all of them. So the
  engine wraps such values in ``Secret`` as soon as they arrive (by the wrapper around
  ``Engine.__init__``, before its first line) and passes the box along; only the innermost
  cryptographic call opens it, inline, without binding the plaintext to a local name.
* ``repr``, ``str`` and ``format`` say ``Secret(<hidden>)``; pickling refuses (key material does not
  belong in a Celery result or a queue); equality and hashing are by identity, so a comparison
  cannot be used to probe the value.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Secret", "hide", "reveal"]


class Secret:
    """A value that never shows itself; ``reveal()`` hands it over."""

    __slots__ = ("_value",)
    _value: Any

    def __init__(self, value: Any) -> None:
        object.__setattr__(self, "_value", value)

    def reveal(self) -> Any:
        return self._value

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("a Secret cannot be changed")

    def __repr__(self) -> str:
        return "Secret(<hidden>)"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __reduce__(self) -> Any:
        raise TypeError("key material does not pickle")


def hide(value: Any) -> Any:
    """``value`` in a ``Secret`` (``None`` and existing secrets stay as they are)."""
    return value if value is None or isinstance(value, Secret) else Secret(value)


def reveal(value: Any) -> Any:
    """The value inside a ``Secret``, or ``value`` itself."""
    return value.reveal() if isinstance(value, Secret) else value
