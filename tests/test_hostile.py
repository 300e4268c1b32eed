"""Hostile input at every boundary: a typed ``EngineError``, nothing sent, memory bounded.

Each test here failed before the change it came with (payload hygiene, raw targets, bounded
descriptor loading, the sandbox's bounded record).
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import Any, Callable

import pytest

from engine import (
    Descriptor,
    DescriptorError,
    Engine,
    Field,
    RequestSpec,
)
from engine.registry import Registry

COMBINE = "combine_papay.mini_program"
REAL_NAME_ID = "individual_contracts.real_name.mini_program"
NUMBERS = Descriptor(
    id="t.numbers.post",
    method="POST",
    path="/v3/t/numbers",
    request=RequestSpec(
        body={
            "rate": Field(type="number"),
            "rates": Field(type="array", items=Field(type="number")),
            "detail": Field(type="object", fields={"rate": Field(type="number"), "name": Field()}),
        }
    ),
)
ORDER = "v3.pay.transactions.out_trade_no._out_trade_no_.get"


def _nothing_sent(engine: Engine) -> None:
    assert engine.emulator.exchanges == [], "nothing may be sent for a refused call"


def _refused(engine: Engine, kind: type, ref: str, payload: Any = None, **options: Any) -> Any:
    with pytest.raises(kind) as caught:
        engine.call(ref, payload, **options)
    _nothing_sent(engine)
    return caught.value


# == 3. bounded descriptor loading ===========================================================================


def _write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


LAUGHS = "\n".join(
    ["method: POST", "path: /v3/lol", "response:", "  f:", "    type: string", '    x0: &a0 ["lol","lol","lol","lol"]']
    + [f"    x{n}: &a{n} [{','.join([f'*a{n - 1}'] * 9)}]" for n in range(1, 10)]
    + ["    example: *a9"]
)


def test_yaml_aliases_are_refused_before_anything_expands(tmp_path: Path) -> None:
    path = _write(tmp_path, "v3.lol.post.yaml", LAUGHS)
    assert path.stat().st_size < 1024
    with pytest.raises(DescriptorError) as caught:
        Registry([tmp_path]).get("v3.lol.post")
    assert caught.value.source == str(path)
    assert "YAML aliases (*name) are not allowed" in str(caught.value)


def test_aliases_file_refuses_yaml_aliases_too(tmp_path: Path) -> None:
    _write(tmp_path, "aliases.yaml", "a: &x v3.a.post\nb: *x\n")
    with pytest.raises(DescriptorError, match=r"aliases\.yaml.*YAML aliases"):
        Registry([tmp_path]).get("a")


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("/v3/x/{a-b}", "path parameter {a-b} must be a name of letters, digits and _ @ $.path"),
        ("/v3/x/{a b}", "path parameter {a b} must be a name of letters, digits and _ @ $.path"),
        ("/v3/x/{1a}", "path parameter {1a} must be a name of letters, digits and _ @ $.path"),
        ("/v3/x/{a}/{a}", "path parameter {a} appears twice @ $.path"),
        ("/v3/x/{a}/{A}", "path parameter {A} appears twice @ $.path"),
        ("/v3/x/{a", "unbalanced '{' or '}' in the path @ $.path"),
        ("/v3/x/a}", "unbalanced '{' or '}' in the path @ $.path"),
        ("/v3/x y/{a}", "the path may hold only URL path characters and {name} parameters @ $.path"),
        ("/v3/x?q=1/{a}", "the path may hold only URL path characters and {name} parameters @ $.path"),
    ],
)
def test_path_templates_are_checked_at_load(tmp_path: Path, path: str, problem: str) -> None:
    names = sorted({part.split("}")[0] for part in path.split("{")[1:] if "}" in part})
    fields = "".join(f"    {name!r}: {{type: string}}\n" for name in names) or "    {}\n"
    source = _write(tmp_path, "v3.x.get.yaml", f"method: GET\npath: '{path}'\nrequest:\n  path:\n{fields}")
    with pytest.raises(DescriptorError) as caught:
        Registry([tmp_path]).get("v3.x.get")
    assert caught.value.source == str(source)
    assert problem in caught.value.problems


@pytest.mark.parametrize(
    ("location", "problem"),
    [
        (
            "request:\n  query:\n    f: {type: file}",
            "a file field belongs only at the top of a multipart body @ $.request.query.f",
        ),
        (
            "request:\n  body:\n    f: {type: file}",
            "a file field belongs only at the top of a multipart body @ $.request.body.f",
        ),
        ("response:\n  f: {type: file}", "a file field belongs only at the top of a multipart body @ $.response.f"),
        (
            "body: multipart\nrequest:\n  body:\n    meta: {type: object, fields: {f: {type: file}}}",
            "a file field belongs only at the top of a multipart body @ $.request.body.meta.fields.f",
        ),
        (
            "request:\n  body:\n    l: {type: array, items: {type: file}}",
            "a file field belongs only at the top of a multipart body @ $.request.body.l.items",
        ),
    ],
)
def test_file_fields_only_in_multipart_bodies(tmp_path: Path, location: str, problem: str) -> None:
    _write(tmp_path, "v3.x.post.yaml", f"method: POST\npath: /v3/x\n{location}\n")
    with pytest.raises(DescriptorError) as caught:
        Registry([tmp_path]).get("v3.x.post")
    assert problem in caught.value.problems


def _nested(levels: int) -> str:
    if levels > 1000:  # flow style: block style's indentation would make the file quadratic in size
        inner = "{type: object, fields: {a: " * (levels - 1) + "{type: string}" + "}}" * (levels - 1)
        return f"method: POST\npath: /v3/deep\nrequest: {{body: {{a: {inner}}}}}\n"
    lines, indent = ["method: POST", "path: /v3/deep", "request:", "  body:"], "    "
    for _ in range(levels - 1):
        lines += [f"{indent}a:", f"{indent}  type: object", f"{indent}  fields:"]
        indent += "    "
    lines.append(f"{indent}a: {{type: string}}")
    return "\n".join(lines) + "\n"


def test_nesting_up_to_32_levels_loads(tmp_path: Path) -> None:
    _write(tmp_path, "v3.deep.post.yaml", _nested(32))
    assert Registry([tmp_path]).get("v3.deep.post").request.body["a"].type == "object"


@pytest.mark.parametrize("levels", [33, 300, 5000])
def test_deeper_nesting_is_refused_at_load(tmp_path: Path, levels: int) -> None:
    source = _write(tmp_path, "v3.deep.post.yaml", _nested(levels))
    with pytest.raises(DescriptorError) as caught:
        Registry([tmp_path]).get("v3.deep.post")
    assert caught.value.source == str(source)
    (problem,) = caught.value.problems
    if levels == 33:
        assert problem == "fields nested deeper than 32 levels @ $.request.body.a" + ".fields.a" * 32
    assert "nest" in problem and len(str(caught.value)) < 1000  # libyaml itself stops at 1000 levels


def test_deep_descriptors_built_in_python_are_refused(engine: Engine) -> None:
    field = Field()
    for _ in range(2000):
        field = Field(type="array", items=field)
    with pytest.raises(DescriptorError, match="nested deeper than 32 levels"):
        engine.register(
            Descriptor(id="t.deep.post", method="POST", path="/v3/t/deep", request=RequestSpec(body={"a": field}))
        )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "response:\n  f: {type: number, example: .nan}",
            "example must be a JSON value, got the non-finite number nan @ $.response.f.example",
        ),
        ("response:\n  f: {type: number, maximum: .inf}", "maximum must be a finite number @ $.response.f.maximum"),
        (
            "response:\n  f: {type: string, example: 2020-01-01}",
            "example must be a JSON value, got date @ $.response.f.example",
        ),
        (
            "response:\n  f: {type: string, enum: [a, 2020-01-01]}",
            "enum must hold JSON values, got date @ $.response.f.enum",
        ),
    ],
)
def test_examples_and_limits_are_json_values(tmp_path: Path, text: str, problem: str) -> None:
    _write(tmp_path, "v3.x.post.yaml", f"method: POST\npath: /v3/x\n{text}\n")
    with pytest.raises(DescriptorError) as caught:
        Registry([tmp_path]).get("v3.x.post")
    assert problem in caught.value.problems


def _unreadable(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path.write_text("method: POST\npath: /v3/x\n")
    path.chmod(0)
    if os.geteuid() == 0:  # root reads anything: make the open fail as it would for anyone else
        real_open = os.open

        def refuse(file: Any, *args: Any, **kwargs: Any) -> int:
            if os.fspath(file) == str(path):
                raise PermissionError(13, "Permission denied", str(path))
            return real_open(file, *args, **kwargs)

        monkeypatch.setattr(os, "open", refuse)


ENTRIES: dict[str, Callable[[Path, pytest.MonkeyPatch], None]] = {
    "directory": lambda path, _: path.mkdir(),
    "symlink loop": lambda path, _: path.symlink_to(path),
    "dangling symlink": lambda path, _: path.symlink_to(path.parent / "nowhere"),
    "fifo": lambda path, _: os.mkfifo(path),
    "unreadable": _unreadable,
    "too large": lambda path, _: path.write_bytes(b"method: POST\npath: /v3/x\ntitle: " + b"x" * (1 << 20) + b"\n"),
    "not UTF-8": lambda path, _: path.write_bytes(b"method: POST\npath: /v3/x\ntitle: \xff\xfe\n"),
}


@pytest.mark.parametrize("kind", ENTRIES)
def test_unreadable_entries_name_themselves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    entry = tmp_path / "v3.x.post.yaml"
    ENTRIES[kind](entry, monkeypatch)
    registry = Registry([tmp_path])
    assert "v3.x.post" in registry.ids()  # listing never reads a file
    with pytest.raises(DescriptorError) as caught:
        registry.get("v3.x.post")
    assert caught.value.source == str(entry)


@pytest.mark.parametrize("kind", ["directory", "symlink loop", "fifo", "too large"])
def test_unreadable_aliases_file_names_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    entry = tmp_path / "aliases.yaml"
    ENTRIES[kind](entry, monkeypatch)
    with pytest.raises(DescriptorError) as caught:
        Registry([tmp_path]).get("some.alias")
    assert caught.value.source == str(entry)
