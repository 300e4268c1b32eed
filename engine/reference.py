"""A descriptor's facts as rows and tables: what ``wechatpay endpoints`` prints and the reference pages show.

Design decisions:

* One flattening of a descriptor's fields into ``FieldRow`` records (path, place, type, required,
  enum, limits, encryption, label), shared by the CLI's tables, its ``--json`` and the generated
  reference pages, so the three cannot disagree.
* A nested field is named by its path from the payload's top: ``amount.total``, and an array's
  items by ``[]``: ``detail.goods_detail[].merchant_goods_id``. Rows come parent first, in the
  descriptor's order, with ``depth`` for indentation.
* Path parameters are required whatever the descriptor says (validation enforces it), and the
  rows say so. Headers the engine sets itself (``Wechatpay-Serial``) are listed, marked ``engine``.
* Text tables measure East Asian wide characters as two columns, so Chinese titles and labels line
  up in a terminal.
"""

from __future__ import annotations

import unicodedata
from typing import Any, Iterable, Iterator, Mapping, Optional, Sequence

import attrs

from engine.descriptor import Descriptor, Field

ENGINE_SET_HEADERS = frozenset({"wechatpay-serial"})
LIMIT_KEYS = ("min_length", "max_length", "minimum", "maximum", "pattern", "min_items", "max_items", "max_bytes")


@attrs.frozen
class FieldRow:
    """One field of a request or an answer, flattened."""

    path: str
    depth: int
    location: str  # path, query, body, header; "answer" for answer fields
    type: str  # string, integer, number, boolean, object, file, array<string>, array<object>...
    required: bool
    encrypted: bool
    enum: tuple[Any, ...]
    limits: dict[str, Any]
    label: str

    @property
    def name(self) -> str:
        return self.path.rsplit(".", 1)[-1]

    def limits_text(self) -> str:
        """``length 1-32``, ``1-100``, ``bytes <= 2097152``, ``pattern ^\\d+$``: the limits in a few words."""
        parts = []
        for what, low, high in (
            ("length", "min_length", "max_length"),
            ("", "minimum", "maximum"),
            ("items", "min_items", "max_items"),
            ("bytes", "", "max_bytes"),
        ):
            span = _span(self.limits.get(low), self.limits.get(high))
            if span:
                parts.append(f"{what} {span}".strip())
        if "pattern" in self.limits:
            parts.append(f"pattern {self.limits['pattern']}")
        return ", ".join(parts)

    def as_json(self) -> dict[str, Any]:
        return {
            "field": self.path,
            "in": self.location,
            "type": self.type,
            "required": self.required,
            "encrypted": self.encrypted,
            "enum": list(self.enum),
            "limits": self.limits,
            "label": self.label,
        }


def _span(low: Any, high: Any) -> str:
    if low is None and high is None:
        return ""
    if low is None:
        return f"<= {_number(high)}"
    if high is None:
        return f">= {_number(low)}"
    return f"{_number(low)}-{_number(high)}"


def _number(value: Any) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def request_rows(descriptor: Descriptor) -> list[FieldRow]:
    """Every request field: path, query and body (the payload), then headers."""
    request = descriptor.request
    rows: list[FieldRow] = []
    for location, fields in (*request.locations(), ("header", request.header)):
        rows += _rows(fields, location, forced_required=location == "path")
    return rows


def answer_rows(descriptor: Descriptor) -> list[FieldRow]:
    return list(_rows(descriptor.response, "answer"))


def _rows(
    fields: Mapping[str, Field], location: str, prefix: str = "", depth: int = 0, forced_required: bool = False
) -> Iterator[FieldRow]:
    for name, field in fields.items():
        path = f"{prefix}{name}"
        yield _row(path, depth, location, field, forced_required)
        yield from _children(field, path, location, depth)


def _children(field: Field, path: str, location: str, depth: int) -> Iterator[FieldRow]:
    if field.fields:
        yield from _rows(field.fields, location, f"{path}.", depth + 1)
    item = field.items
    if item is not None and item.fields:
        yield from _rows(item.fields, location, f"{path}[].", depth + 1)


def _row(path: str, depth: int, location: str, field: Field, forced_required: bool) -> FieldRow:
    limits = {key: getattr(field, key) for key in LIMIT_KEYS if getattr(field, key) is not None}
    kind = field.type if field.items is None else f"array<{field.items.type}>"
    enum = field.enum if field.enum is not None else (field.items.enum if field.items is not None else None)
    encrypted = field.encrypted or (field.items is not None and field.items.encrypted)
    engine_set = location == "header" and path.lower() in ENGINE_SET_HEADERS
    label = field.label + (" (set by the engine)" if engine_set else "")
    return FieldRow(
        path, depth, location, kind, field.required or forced_required, encrypted, tuple(enum or ()), limits, label
    )


# -- text tables -----------------------------------------------------------------------------------


def width(text: str) -> int:
    """Terminal columns ``text`` takes: East Asian wide and full-width characters count two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def text_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Columns padded to their widest cell, two spaces apart; the last column is not padded."""
    body = [list(map(str, row)) for row in rows]
    table = [list(headers), *body]
    widths = [max(width(row[i]) for row in table) for i in range(len(headers))]
    lines = []
    for row in table:
        cells = [cell + " " * (widths[i] - width(cell)) for i, cell in enumerate(row[:-1])]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)


# enum last: a long list of values must not push the other columns off the screen
FIELD_HEADERS = ("field", "in", "type", "required", "encrypted", "limits", "label", "enum")


def field_cells(row: FieldRow, indent: bool = True) -> list[str]:
    name = ("  " * row.depth + row.name) if indent else row.path
    enum = "|".join(str(v) for v in row.enum)
    return [
        name,
        row.location,
        row.type,
        "yes" if row.required else "",
        "yes" if row.encrypted else "",
        row.limits_text(),
        row.label,
        enum,
    ]


def fields_table(rows: Sequence[FieldRow]) -> str:
    if not rows:
        return "(none)"
    return text_table(FIELD_HEADERS, (field_cells(row) for row in rows))


# -- summaries -------------------------------------------------------------------------------------


def summary(descriptor: Descriptor, name: Optional[str], aliases: Sequence[str] = ()) -> dict[str, Any]:
    """What ``endpoints list --json`` prints for one operation."""
    return {
        "id": descriptor.id,
        "name": name,
        "aliases": [a for a in aliases if a != name],
        "method": descriptor.method,
        "path": descriptor.path,
        "host": descriptor.host,
        "title": descriptor.title,
    }


def matches(entry: Mapping[str, Any], words: Sequence[str]) -> bool:
    """Whether every word occurs, case-insensitively, in the id, a name, the method, the path or the title."""
    haystack = " ".join(
        str(v)
        for v in (entry["id"], entry["name"] or "", *entry["aliases"], entry["method"], entry["path"], entry["title"])
    ).casefold()
    return all(word.casefold() in haystack for word in words)
