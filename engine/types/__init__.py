"""Payload and answer types of every built-in operation, for type checkers.

``from engine.types import CombinePapayMiniProgramPayload`` names the ``TypedDict`` of one
operation's payload (``...Answer`` for its answer, ``...Body``/``...Query``/``...PathParams`` for
the parts of a payload that travels in several places, and one per nested object). They are
generated from the descriptors by ``tools/typegen.py`` into the stub ``__init__.pyi`` beside this
module; type checkers read that stub, and ``Engine.call``/``acall`` and the chainable style are
typed with them (``_calls.pyi``, ``_chain.pyi``).

Design decisions:

* Run time pays nothing: ``import engine`` never imports this package, and importing it reads no
  stub. A name looked up here at run time is ``dict``, which is what a ``TypedDict`` is at run
  time (``CombinePapayMiniProgramPayload(appid=...)`` builds the same dict), so code that names the
  types outside ``if TYPE_CHECKING:`` still runs. Only names the stub declares exist: the stub is
  read once, on the first such lookup, to say so.
"""

from __future__ import annotations

import difflib
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

_DECLARED = re.compile(r"^(?:class (\w+)\(|(\w+) = TypedDict\()", re.MULTILINE)


@lru_cache(maxsize=1)
def _declared() -> frozenset[str]:
    text = (Path(__file__).parent / "__init__.pyi").read_text(encoding="utf-8")
    return frozenset(a or b for a, b in _DECLARED.findall(text))


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    if name in _declared():
        return dict
    close = difflib.get_close_matches(name, _declared(), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise AttributeError(f"module 'engine.types' has no type {name!r}{hint}")
