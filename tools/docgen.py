"""The documentation site's generated pages: one reference page per operation, and the README's guides.

``docs/hooks.py`` calls ``pages()`` when MkDocs builds (``mkdocs build``), so nothing generated is
committed and the site always matches the descriptors and the README.

A reference page takes the shape of the seed pages (the chainable PHP SDK's documentation): the
request fields as a table, nested fields indented under their parent; the call in every addressing
style, sync and async, here in Python; the answer fields as a table. The example payload is
``engine.examples.example_payload``: the required fields, with values the engine's own validation
accepts, so every example runs against the sandbox (tests/test_docs.py runs a sample).
"""

from __future__ import annotations

import json
import keyword
import re
import sys
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.descriptor import Descriptor  # noqa: E402
from engine.examples import example_headers, example_payload  # noqa: E402
from engine.reference import FieldRow, answer_rows, request_rows  # noqa: E402
from engine.registry import BUILTIN_ENDPOINTS, Registry  # noqa: E402

CREDIT = (
    "Facts (path, method, fields, types, required, enums, limits, labels) from the "
    "[wechatpay-openapi](https://github.com/TheNorthMemory/wechatpay-openapi) catalogue (MIT licence)."
)
HOME = "index.md"  # the README's introduction; each of its "## " sections becomes a page of its own


def pages(registry: Optional[Registry] = None, readme: Optional[str] = None) -> dict[str, str]:
    """Site path -> Markdown for every generated page."""
    registry = registry or Registry([BUILTIN_ENDPOINTS])
    readme = readme if readme is not None else (ROOT / "README.md").read_text(encoding="utf-8")
    names = {endpoint_id: found[0] for endpoint_id, found in registry.names().items()}
    ops = [(names.get(i, i), registry.get(i)) for i in registry.ids()]
    generated = dict(guide_pages(readme))
    generated["BENCHMARKS.md"] = (ROOT / "BENCHMARKS.md").read_text(encoding="utf-8")
    generated["CHANGELOG.md"] = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    generated["LICENSE"] = (ROOT / "LICENSE").read_text(encoding="utf-8")
    generated["reference/index.md"] = reference_index(ops)
    for name, descriptor in ops:
        generated[f"reference/{name}.md"] = operation_page(name, descriptor)
    return generated


# -- guides ----------------------------------------------------------------------------------------


def slug(title: str) -> str:
    return re.sub(r"[^0-9a-z]+", "-", title.lower()).strip("-")


def guide_pages(readme: str) -> Iterator[tuple[str, str]]:
    """The README split at its ``##`` headings: the introduction as the home page, each section a page."""
    intro, *sections = re.split(r"(?m)^## ", readme)
    titles = guide_titles(readme)
    where = _anchor_pages(sections, titles)
    contents = "\n".join(f"- [{t}]({slug(t)}.md)" for t in titles)
    yield HOME, f"{_relink(intro, where).rstrip()}\n\n## Guides\n\n{contents}\n- [Reference](reference/index.md)\n"
    for title, section in zip(titles, sections, strict=True):
        body = section.split("\n", 1)[1] if "\n" in section else ""
        yield f"{slug(title)}.md", f"# {title}\n{_relink(body, where)}"


def guide_titles(readme: str) -> list[str]:
    return [section.split("\n", 1)[0].strip() for section in re.split(r"(?m)^## ", readme)[1:]]


def _anchor_pages(sections: list[str], titles: list[str]) -> dict[str, str]:
    """Heading anchor -> the guide page it lands on (``#threads-event-loops-and-fork`` -> using-the-engine)."""
    where = {}
    for title, section in zip(titles, sections, strict=True):
        for heading in re.findall(r"(?m)^#{2,6} (.+)$", "## " + section):
            where[slug(heading)] = slug(title)
    return where


def _relink(body: str, where: dict[str, str]) -> str:
    """README-internal links (``](#anchor)``) point at the page that now holds the anchor."""

    def fix(match: re.Match[str]) -> str:
        page = where.get(match.group(1))
        return f"]({page}.md#{match.group(1)})" if page else match.group(0)

    return re.sub(r"\]\(#([^)]+)\)", fix, body)


# -- the reference index ---------------------------------------------------------------------------


def reference_index(ops: list[tuple[str, Descriptor]]) -> str:
    lines = [
        "# Reference",
        "",
        f"All {len(ops)} operations, by short name. Every page lists the request and answer fields and the",
        "call in each addressing style. `wechatpay endpoints list --grep WORD` searches the same list.",
        "",
        "| short name | method | path | title |",
        "| --- | --- | --- | --- |",
    ]
    for name, d in sorted(ops):
        lines.append(f"| [`{name}`]({name}.md) | {d.method} | `{d.path}` | {_cell(d.title)} |")
    return "\n".join(lines) + "\n"


# -- one operation ---------------------------------------------------------------------------------


def operation_page(name: str, descriptor: Descriptor) -> str:
    title = descriptor.title or name
    facts = [
        f"`{descriptor.method} {descriptor.path}`" + (f" on the `{descriptor.host}` host" if descriptor.host else ""),
        f"short name `{name}`, canonical id `{descriptor.id}`",
        f"body: {descriptor.body_kind}",
    ]
    return "\n".join(
        [
            f"# {title}",
            "",
            " · ".join(facts),
            "",
            "## Request",
            "",
            _field_table(request_rows(descriptor), "request field"),
            "",
            "## Calling it",
            "",
            *_examples(name, descriptor),
            "## Answer",
            "",
            _field_table(answer_rows(descriptor), "answer field"),
            "",
            "---",
            "",
            CREDIT,
            "",
        ]
    )


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _field_table(rows: list[FieldRow], first: str) -> str:
    if not rows:
        return "None."
    lines = [f"| {first} | in | type | required | description |", "| --- | --- | --- | --- | --- |"]
    for row in rows:
        indent = "&nbsp;&nbsp;&nbsp;&nbsp;" * row.depth + ("└ " if row.depth else "")
        notes = [row.label]
        if row.encrypted:
            notes.append("**encrypted** (sent RSA-OAEP encrypted; give the plaintext)")
        if row.enum:
            notes.append("one of " + ", ".join(f"`{v}`" for v in row.enum))
        if row.limits_text():
            notes.append(row.limits_text())
        description = "; ".join(_cell(n) for n in notes if n)
        lines.append(
            f"| {indent}`{row.name}` | {row.location} | {row.type} | {'yes' if row.required else ''} | {description} |"
        )
    return "\n".join(lines)


def _examples(name: str, descriptor: Descriptor) -> Iterator[str]:
    payload = runnable_payload(descriptor)
    headers = example_headers(descriptor)
    for heading, sync, asynchronous in styles(name, descriptor, payload, headers):
        yield f"### {heading}\n"
        yield _block(sync)
        yield _block(asynchronous)


def runnable_payload(descriptor: Descriptor) -> dict[str, Any]:
    """The example payload as a caller writes it: an upload's file as a path, ``meta`` left to the engine."""
    payload = dict(example_payload(descriptor))
    if descriptor.body_kind == "multipart":
        meta = {k: v for k, v in payload.pop("meta", {}).items() if k not in ("filename", "sha256")}
        payload = {k: (FILE if isinstance(v, (bytes, bytearray)) else v) for k, v in payload.items()}
        if meta:
            payload["meta"] = meta
    return payload


class _File:
    """Stands for the file an upload example sends: written ``Path("example.png")``."""

    def __repr__(self) -> str:
        return 'Path("example.png")'


FILE = _File()


def _block(code: str) -> str:
    return f"```python\n{code}\n```\n"


def styles(
    name: str, descriptor: Descriptor, payload: Mapping[str, Any], headers: Mapping[str, str]
) -> Iterator[tuple[str, str, str]]:
    """(heading, sync code, async code) for each addressing style that reaches this operation."""
    extra = f", headers={_literal(headers)}" if headers else ""
    yield (
        "By short name (or canonical id)",
        f'response = engine.call("{name}", {_literal(payload)}{extra})\nprint(response.data)',
        f'response = await engine.acall("{name}", {_literal(payload)}{extra})\nprint(response.data)',
    )
    if descriptor.host is not None:
        return  # the chain styles address the main host
    arguments = _chain_arguments(descriptor, payload, headers)
    verb = descriptor.method.lower()
    path = descriptor.path.lstrip("/")
    attributes = _attribute_chain(descriptor)
    if attributes is not None:
        yield "Chained attributes", *_verb_pair(f"engine.{attributes}", verb, arguments)
    yield "engine.chain(path)", *_verb_pair(f'engine.chain("{path}")', verb, arguments)
    yield "engine[path]", *_verb_pair(f'engine["{path}"]', verb, arguments)


def _verb_pair(target: str, verb: str, arguments: str) -> tuple[str, str]:
    return (
        f"response = {target}.{verb}({arguments})\nprint(response.data)",
        f"response = await {target}.a{verb}({arguments})\nprint(response.data)",
    )


def _attribute_chain(descriptor: Descriptor) -> Optional[str]:
    """``v3.pay.transactions.jsapi``, or None when a segment cannot be a Python attribute."""
    segments = descriptor.id.split(".")[:-1]
    if segments[0] != "v3" or not all(s.isidentifier() and not keyword.iskeyword(s) for s in segments):
        return None
    return ".".join(segments)


def _chain_arguments(descriptor: Descriptor, payload: Mapping[str, Any], headers: Mapping[str, str]) -> str:
    request = descriptor.request
    parts = [f"{key}={_literal(value)}" for key, value in payload.items() if key in request.path]
    body = {k: v for k, v in payload.items() if k in request.body}
    query = {k: v for k, v in payload.items() if k in request.query}
    if body:
        parts.append(f"json={_literal(body)}")
    if query:
        parts.append(f"query={_literal(query)}")
    if headers:
        parts.append(f"headers={_literal(headers)}")
    return ", ".join(parts)


def _literal(value: Any, indent: int = 0) -> str:
    """A Python literal for an example value, a dict of several keys over several lines (as the seeds show)."""
    if isinstance(value, _File):
        return repr(value)
    if isinstance(value, dict):
        items = [f"{json.dumps(k, ensure_ascii=False)}: {_literal(v, indent + 4)}" for k, v in value.items()]
        if len(items) < 3:
            return "{" + ", ".join(items) + "}"
        inner = " " * (indent + 4)
        return "{\n" + "".join(f"{inner}{item},\n" for item in items) + " " * indent + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v, indent) for v in value) + "]"
    return repr(value) if isinstance(value, bool) or value is None else json.dumps(value, ensure_ascii=False)
