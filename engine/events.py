"""The event catalogue: every notification event type WeChat Pay documents, as data.

Design decisions:

* The facts live in ``engine/data/events.yaml`` (name, short label, the resource's
  ``original_type`` where known, the decrypted resource's top-level fields where known, and which
  source lists the event), parsed on first use and kept on the ``EventCatalogue`` instance. The
  module-level ``catalogue()`` is one shared instance: the data is immutable package data, so every
  engine and receiver in a process reads the same parsed copy.
* Event names are checked, not trusted: ``Receiver.on("TRANSACTION.SUCESS")`` fails with the
  closest names instead of registering a handler that never fires. ``REFUND.*`` and ``*`` are
  patterns over the catalogue.
* ``sample_resource`` builds a plausible decrypted resource from the recorded fields (strings,
  numbers, nested objects and arrays), so the sandbox can emit every event type.
"""

from __future__ import annotations

import difflib
import fnmatch
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional

import attrs

from engine import forksafe
from engine.errors import ConfigurationError

EVENTS_FILE = Path(__file__).resolve().parent / "data" / "events.yaml"
RESOURCE_TYPE = "encrypt-resource"


@attrs.frozen
class EventType:
    """One documented event type. ``resource`` maps field -> type ("string", {...}, [{...}]) or is ``None``."""

    name: str
    label: str = ""
    original_type: Optional[str] = None
    resource_type: str = RESOURCE_TYPE
    resource: Optional[Mapping[str, Any]] = None
    sources: tuple[str, ...] = ()


class EventCatalogue:
    """The documented event types, read from ``events.yaml`` on first use."""

    def __init__(self, path: Path = EVENTS_FILE) -> None:
        self.path = path
        self._events: Optional[dict[str, EventType]] = None
        self._lock = forksafe.lock()

    def _index(self) -> dict[str, EventType]:
        if self._events is None:
            with self._lock:
                if self._events is None:
                    self._events = _load(self.path)
        return self._events

    def __iter__(self) -> Iterator[EventType]:
        return iter(self._index().values())

    def __len__(self) -> int:
        return len(self._index())

    def __contains__(self, name: object) -> bool:
        return name in self._index()

    def names(self) -> list[str]:
        return sorted(self._index())

    def get(self, name: str) -> Optional[EventType]:
        return self._index().get(name)

    def __getitem__(self, name: str) -> EventType:
        found = self.get(name)
        if found is None:
            raise KeyError(name)
        return found

    def matching(self, pattern: str) -> list[str]:
        """The names a pattern (an exact name, ``REFUND.*``, ``*``) covers."""
        if not any(ch in pattern for ch in "*?["):
            return [pattern] if pattern in self else []
        return [name for name in self.names() if fnmatch.fnmatchcase(name, pattern)]

    def check(self, pattern: str) -> None:
        """Raise ``ConfigurationError`` (with the closest names) if ``pattern`` covers no known event."""
        if self.matching(pattern):
            return
        close = difflib.get_close_matches(pattern, self.names(), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ConfigurationError(
            f"unknown notification event type {pattern!r}{hint} (pass known=False to accept a name the "
            "event catalogue does not list yet)"
        )


def _load(path: Path) -> dict[str, EventType]:
    import yaml

    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    events: dict[str, EventType] = {}
    for name, entry in raw.items():
        events[name] = EventType(
            name=name,
            label=str(entry.get("label") or ""),
            original_type=entry.get("original_type"),
            resource=entry.get("resource"),
            sources=tuple(entry.get("source") or ()),
        )
    return events


_CATALOGUE = EventCatalogue()


def catalogue() -> EventCatalogue:
    """The process's one parsed event catalogue."""
    return _CATALOGUE


def sample_resource(event: EventType, **overrides: Any) -> dict[str, Any]:
    """A decrypted resource shaped like ``event``'s (a minimal one when its fields are unknown)."""
    fields = event.resource or {"mchid": "string"}
    sample = {name: _sample(name, kind) for name, kind in fields.items()}
    sample.update(overrides)
    return sample


def _sample(name: str, kind: Any) -> Any:
    if isinstance(kind, Mapping):
        return {k: _sample(k, v) for k, v in kind.items()}
    if isinstance(kind, list):
        return [_sample(name, kind[0])] if kind else []
    if kind in ("integer", "number"):
        return 1
    if kind == "boolean":
        return True
    return f"sandbox-{name}"
