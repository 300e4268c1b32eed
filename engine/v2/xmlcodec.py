"""The flat XML documents of APIv2: ``<xml><name>value</name>...</xml>``, parsed defensively.

Design decisions:

* **Refuse before parsing, refuse while parsing.** An answer larger than ``MAX_XML_BYTES``, not
  UTF-8, or containing ``<!DOCTYPE`` or ``<!ENTITY`` anywhere is refused before the parser sees a
  byte. The parser is expat driven directly (not ``ElementTree``), with handlers that abort on any
  DOCTYPE, entity declaration, external entity reference or unparsed entity, and with parameter
  entities never parsed: the same defence ``defusedxml`` installs, in thirty lines, without a
  dependency. Without a DTD no entity can be declared, so no expansion bomb and no external
  reference is possible; the five predefined entities and character references still decode.
* **Flat by contract.** APIv2 documents are one root element of text children. A nested element, a
  repeated name or text beside the children is refused (``MalformedXmlError``): a duplicated
  ``<sign>`` or ``<return_code>`` is exactly what a forged answer would try, and a nested element
  has no place in the sign string, so neither is guessed at.
* **The encoder refuses what XML 1.0 cannot carry** (C0 control characters other than tab, line
  feed and carriage return, lone surrogates, U+FFFE/U+FFFF) and any non-scalar value, naming each
  field, so a payload is refused before signing instead of being corrupted on the wire. Carriage
  returns are written as ``&#13;``: a parser normalises a literal CR to LF, which would change the
  value the server signs.
* Values are written as escaped text, not CDATA: both read back identically, and escaping has no
  ``]]>`` corner. The decoder reads CDATA sections as text, which is how WeChat Pay writes them.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping, Optional
from xml.parsers import expat

MAX_XML_BYTES = 1024 * 1024  # APIv2 answers are a few KB; bills are text, never parsed as XML
MAX_FIELDS = 1000
_DECLARATIONS = re.compile(r"<!(?:DOCTYPE|ENTITY)", re.IGNORECASE)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*\Z")
_UNCARRIABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"})


class MalformedXmlError(ValueError):
    """The bytes are not a flat APIv2 XML document (or hold a DOCTYPE, entities, too many bytes)."""


_HTML = (b"<html", b"<!doctype html")


def looks_like_xml(body: bytes) -> bool:
    """Whether a body is to be read as XML: it starts (after whitespace) with ``<`` and is not an HTML
    page. The sniff tells XML from bills, JSON and browser pages; anything it calls XML then meets
    the refusing parser, DOCTYPE and all."""
    head = body.lstrip()[:16].lower()
    return head[:1] == b"<" and not head.startswith(_HTML)


def parse(body: bytes, roots: Iterable[str] = ("xml",)) -> dict[str, str]:
    """The fields of a flat document whose root is one of ``roots``; ``MalformedXmlError`` otherwise."""
    if len(body) > MAX_XML_BYTES:
        raise MalformedXmlError(f"XML document of {len(body)} bytes is over the {MAX_XML_BYTES}-byte limit")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedXmlError("XML document is not UTF-8") from None
    if _DECLARATIONS.search(text):
        raise MalformedXmlError("XML document holds a DOCTYPE or an entity declaration; refused unparsed")
    return _FlatReader(tuple(roots)).read(body)


class _FlatReader:
    """One parse: expat events folded into a flat mapping, with every DTD feature turned into an error."""

    def __init__(self, roots: tuple[str, ...]) -> None:
        self.roots = roots
        self.fields: dict[str, str] = {}
        self.depth = 0
        self.current: Optional[str] = None
        self.chunks: list[str] = []
        self.root: Optional[str] = None

    def read(self, body: bytes) -> dict[str, str]:
        parser = expat.ParserCreate(encoding="UTF-8")  # overrides whatever the declaration claims
        parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        parser.StartDoctypeDeclHandler = _refuse("a DOCTYPE")
        parser.EntityDeclHandler = _refuse("an entity declaration")
        parser.UnparsedEntityDeclHandler = _refuse("an unparsed entity")
        parser.ExternalEntityRefHandler = _refuse("an external entity reference")
        parser.StartElementHandler = self.start
        parser.EndElementHandler = self.end
        parser.CharacterDataHandler = self.text
        try:
            parser.Parse(body, True)
        except expat.ExpatError as exc:
            raise MalformedXmlError(f"not well-formed XML ({expat.ErrorString(exc.code)})") from None
        if self.root is None:
            raise MalformedXmlError("XML document has no root element")
        return self.fields

    def start(self, name: str, attributes: Mapping[str, str]) -> None:
        self.depth += 1
        if self.depth == 1:
            if name not in self.roots:
                raise MalformedXmlError(f"XML root is <{name}>, expected <{'> or <'.join(self.roots)}>")
            self.root = name
        elif self.depth == 2:
            if name in self.fields:
                raise MalformedXmlError(f"XML field <{name}> appears twice")
            if len(self.fields) >= MAX_FIELDS:
                raise MalformedXmlError(f"XML document has more than {MAX_FIELDS} fields")
            self.current, self.chunks = name, []
        else:
            raise MalformedXmlError(f"XML field <{self.current}> holds a nested element <{name}>")

    def end(self, name: str) -> None:
        if self.depth == 2 and self.current is not None:
            self.fields[self.current] = "".join(self.chunks)
            self.current = None
        self.depth -= 1

    def text(self, data: str) -> None:
        if self.depth == 2:
            self.chunks.append(data)
        elif self.depth == 1 and data.strip():
            raise MalformedXmlError("XML root holds text outside its fields")


def _refuse(what: str) -> Any:
    def handler(*_: Any) -> None:
        raise MalformedXmlError(f"XML document holds {what}; refused")

    return handler


def scalar_text(value: Any) -> Optional[str]:
    """The text an XML field carries for a scalar value; None for anything that is not a scalar."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return None


def problems(fields: Mapping[str, Any], where: str = "$") -> list[str]:
    """Why ``fields`` cannot travel as a flat XML document: one ``"message @ path"`` per field."""
    found: list[str] = []
    for name, value in fields.items():
        path = f"{where}.{name}"
        if not isinstance(name, str) or not _NAME.match(name):
            found.append(f"not a name an XML element can have @ {path}")
            continue
        text = scalar_text(value)
        if text is None:
            kind = "object" if isinstance(value, Mapping) else type(value).__name__
            if isinstance(value, (list, tuple)):
                kind = "array"
            found.append(f"cannot be carried in XML: expected a scalar, got {kind} @ {path}")
            continue
        bad = _UNCARRIABLE.search(text)
        if bad is not None:
            found.append(f"cannot be carried in XML: character U+{ord(bad.group()):04X} @ {path}")
    return found


def encode(fields: Mapping[str, str], root: str = "xml") -> bytes:
    """``<root><name>escaped text</name>...</root>`` in UTF-8 (values already checked by ``problems``)."""
    inner = "".join(f"<{name}>{value.translate(_ESCAPES)}</{name}>" for name, value in fields.items())
    return f"<{root}>{inner}</{root}>".encode()


def insert(document: bytes, fields: Mapping[str, str], root: str = "xml") -> bytes:
    """``document`` with ``fields`` appended inside its root (how the signer adds ``sign``)."""
    closing = f"</{root}>".encode()
    extra = "".join(f"<{name}>{value.translate(_ESCAPES)}</{name}>" for name, value in fields.items())
    return document[: -len(closing)] + extra.encode() + closing


def encode_cdata(fields: Mapping[str, str], root: str = "xml") -> bytes:
    """WeChat Pay's own style (the sandbox answers with it): strings in CDATA, digits bare."""
    parts = []
    for name, value in fields.items():
        if value.isdigit() or "]]>" in value:
            parts.append(f"<{name}>{value.translate(_ESCAPES)}</{name}>")
        else:
            parts.append(f"<{name}><![CDATA[{value}]]></{name}>")
    return f"<{root}>{''.join(parts)}</{root}>".encode()
