"""Hostile input at every boundary: a typed ``EngineError``, nothing sent, memory bounded.

Each test here failed before the change it came with (payload hygiene, raw targets, bounded
descriptor loading, the sandbox's bounded record).
"""

from __future__ import annotations

import math
import os
import textwrap
import time
from pathlib import Path
from typing import Any, Callable

import pytest
from conftest import COMBINE_PAPAY, PATIENCE, REAL_NAME

from engine import (
    ApiError,
    ConfigurationError,
    Descriptor,
    DescriptorError,
    Engine,
    Field,
    RequestSpec,
    UsageError,
    ValidationError,
)
from engine.descriptor import adhoc_descriptor
from engine.registry import Registry
from engine.sandbox import Sandbox
from engine.serialize import encode_body, encode_json, query_values

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


# == 1. payload hygiene =============================================================================

SURROGATE = "\ud800"
LONE_SURROGATE = "contains a lone surrogate, which UTF-8 cannot encode"


@pytest.mark.parametrize(
    ("ref", "payload", "path"),
    [
        (COMBINE, {**COMBINE_PAPAY, "contract_display_account": "a" + SURROGATE}, "$.contract_display_account"),
        (REAL_NAME_ID, {**REAL_NAME, "real_name": SURROGATE}, "$.real_name"),  # encrypted: sized before encryption
        ("t.numbers.post", {"detail": {"name": "\udfff"}}, "$.detail.name"),
    ],
)
def test_lone_surrogates_are_refused_with_their_path(engine: Engine, ref: str, payload: dict, path: str) -> None:
    engine.register(NUMBERS)
    error = _refused(engine, ValidationError, ref, payload)
    assert error.errors == (f"{LONE_SURROGATE} @ {path}",)


def test_surrogates_in_path_and_query_values_are_refused(engine: Engine) -> None:
    error = _refused(engine, ValidationError, ORDER, {"out_trade_no": SURROGATE, "mchid": "1" + SURROGATE})
    assert error.errors == (f"{LONE_SURROGATE} @ $.out_trade_no", f"{LONE_SURROGATE} @ $.mchid")


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
def test_non_finite_numbers_are_refused_with_their_path(engine: Engine, value: float) -> None:
    engine.register(NUMBERS)
    error = _refused(engine, ValidationError, "t.numbers.post", {"rate": value, "rates": [1.5, value]})
    assert error.errors == ("must be a finite number @ $.rate", "must be a finite number @ $.rates[1]")
    error = _refused(engine, ValidationError, "t.numbers.post", {"detail": {"rate": value}})
    assert error.errors == ("must be a finite number @ $.detail.rate",)


@pytest.mark.parametrize("value", [math.nan, math.inf, {"a": [math.nan]}, {1, 2}, "\ud800", {"k": object()}])
def test_json_encoding_refuses_what_is_not_json(value: Any) -> None:
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        encode_json(math.nan)  # allow_nan=False
    with pytest.raises(ValidationError, match=r"cannot be encoded as JSON \(.*\) @ \$"):
        encode_body(adhoc_descriptor("POST", "/v3/x"), {"x": value})


def test_a_cycle_is_refused_even_under_a_raised_recursion_limit() -> None:
    """The shared C encoder kept no markers, so a cycle recursed until the recursion limit: under a limit an
    application raised (sys.setrecursionlimit(200000)), that overflowed the C stack and killed the process
    (SIGSEGV) where JSONEncoder.encode said 'Circular reference detected'. Run in a child: a crash is its exit."""
    import subprocess
    import sys

    script = textwrap.dedent(
        """
        import sys
        sys.setrecursionlimit(200000)
        from engine.serialize import encode_json
        cycle = {"a": []}
        cycle["a"].append(cycle)
        try:
            encode_json(cycle)
        except ValueError as error:
            print("refused:", error)
        """
    )
    root = str(Path(__file__).resolve().parent.parent)
    child = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=PATIENCE,
        env={**os.environ, "PYTHONPATH": root},
    )
    assert child.returncode == 0, child.stderr[-2000:]
    assert child.stdout.strip() == "refused: Circular reference detected"


def test_one_object_encoded_from_many_threads_at_once_is_no_cycle() -> None:
    """Each encoding keeps its own markers: shared ones would see another thread's containers as a cycle."""
    import threading

    shared = {"amount": {"total": 1, "detail": [{"n": n} for n in range(50)]}, "tags": [[1], [2]]}
    expected = encode_json(shared)
    failures: list[BaseException] = []

    def encode_often() -> None:
        try:
            for _ in range(2000):
                assert encode_json(shared) == expected
        except BaseException as error:  # reported below: an assertion in a thread fails nothing by itself
            failures.append(error)

    threads = [threading.Thread(target=encode_often) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(PATIENCE)
    assert not any(thread.is_alive() for thread in threads) and failures == []


@pytest.mark.parametrize(
    "value",
    [
        {"a": {"b": [1, 2, (3, 4)]}, "c": None, "d": True, "e": False},
        [0.0, -0.0, 1e300, 1e-300, 3.14, 2**70, -(2**70)],
        {2: "int key", True: "bool key", None: "null key", 1.5: "float key", -0.0: "negative zero key"},
        'é\u2028\x00"\\',
    ],
)
def test_json_encoding_matches_the_standard_encoder(value: Any) -> None:
    import enum
    import json

    class Text(str):
        pass

    class Number(enum.IntEnum):
        ONE = 1

    class Table(dict):  # type: ignore[type-arg]
        pass

    standard = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    for each in (value, [value], Table(wrapped=value), {Text("k"): Text("v"), Number.ONE: Number.ONE}):
        assert encode_json(each) == standard.encode(each).encode("utf-8")


def test_finite_numbers_still_pass(engine: Engine) -> None:
    engine.register(NUMBERS)
    assert engine.call("t.numbers.post", {"rate": 1.5, "rates": [0, -2.25], "detail": {"rate": 1e300}}).status == 204
    assert engine.emulator.last.request.body == b'{"rate":1.5,"rates":[0,-2.25],"detail":{"rate":1e+300}}'


UPLOAD = Descriptor(
    id="t.upload.post",
    method="POST",
    path="/v3/t/upload",
    body="multipart",
    request=RequestSpec(
        body={
            "file": Field(type="file", required=True),
            "meta": Field(type="object", required=True, fields={"filename": Field(required=True)}),
        }
    ),
)


@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_upload_from_a_path_that_is_not_a_readable_file_is_refused(engine: Engine, tmp_path: Path, kind: str) -> None:
    engine.register(UPLOAD)
    source = tmp_path / "logo.png"
    if kind == "directory":
        source.mkdir()
    error = _refused(engine, ValidationError, "t.upload.post", {"file": source})
    assert len(error.errors) == 1 and error.errors[0].endswith("@ $.file")
    assert error.errors[0].startswith("cannot read the file")


def test_upload_of_a_file_read_fails_late_is_still_refused(engine: Engine, tmp_path: Path, monkeypatch) -> None:
    """The file vanishing between validation and encoding must not send an empty file."""
    from engine import multipart

    engine.register(UPLOAD)
    source = tmp_path / "logo.png"
    source.write_bytes(b"png")
    monkeypatch.setattr(multipart, "file_bytes", lambda value, limit: None)
    error = _refused(engine, ValidationError, "t.upload.post", {"file": source})
    assert error.errors[0].startswith("cannot read the file") and error.errors[0].endswith("@ $.file")


FREE_POST = "POST /v3/some/undescribed"
FREE_GET = "GET /v3/some/undescribed"


@pytest.mark.parametrize(
    ("ref", "payload", "problem"),
    [
        (FREE_POST, [1, 2], "payload must be an object, got array @ $"),
        (FREE_POST, "abc", "payload must be an object, got string @ $"),
        (FREE_POST, {1, 2}, "payload must be an object, got set @ $"),
        (FREE_GET, [("a", 1)], "payload must be an object, got array @ $"),
        (FREE_GET, "ab", "payload must be an object, got string @ $"),
        (FREE_POST, {"a": {1, 2}}, "not a JSON value (set) @ $.a"),
        (FREE_POST, {"a": [b"x"]}, "not a JSON value (bytes) @ $.a[0]"),
        (FREE_POST, {1: "x"}, "object keys must be strings, got integer 1 @ $"),
        (FREE_POST, {"a": {None: 1}}, "object keys must be strings, got null None @ $.a"),
        (FREE_POST, {"a": math.nan}, "must be a finite number @ $.a"),
        (FREE_POST, {"a": ["x" + SURROGATE]}, f"{LONE_SURROGATE} @ $.a[0]"),
        (FREE_GET, {"a": {"b": 1}}, "a query value must be text, a number, a boolean or an array of them @ $.a"),
        (FREE_GET, {"a": None}, "must not be null @ $.a"),
        (FREE_GET, {"a": [[1]]}, "a query value must be text, a number, a boolean or an array of them @ $.a[0]"),
    ],
)
def test_free_form_payloads_are_json_objects(engine: Engine, ref: str, payload: Any, problem: str) -> None:
    error = _refused(engine, ValidationError, ref, payload)
    assert error.errors == (problem,)


def test_free_form_payloads_are_bounded_in_depth(engine: Engine) -> None:
    deep: Any = "leaf"
    for _ in range(5000):
        deep = [deep]
    error = _refused(engine, ValidationError, FREE_POST, {"a": deep})
    assert error.errors == ("nested deeper than 64 levels @ $.a" + "[0]" * 63,)
    looped: dict = {}
    looped["self"] = looped
    assert _refused(engine, ValidationError, FREE_POST, looped).errors[0].startswith("nested deeper than 64 levels")


def test_free_form_payloads_that_are_json_still_go_out(engine: Engine) -> None:
    with pytest.raises(ApiError):  # the sandbox knows no such API, but it did receive it, signed
        engine.call(FREE_POST, {"a": [1, 2.5, True, None, {"b": "普通"}]})
    assert engine.emulator.last.request.body == '{"a":[1,2.5,true,null,{"b":"普通"}]}'.encode()
    with pytest.raises(ApiError):
        engine.call(FREE_GET, {"a": [1, 2], "b": True})
    assert engine.emulator.last.request.target == "/v3/some/undescribed?a=1%2C2&b=true"


@pytest.mark.parametrize(
    ("headers", "problem"),
    [
        ({"Idempotency-Key": 1}, "the 'Idempotency-Key' header value must be a string, got int"),
        ({"Idempotency-Key": b"x"}, "the 'Idempotency-Key' header value must be a string, got bytes"),
        ({"Idempotency-Key": None}, "the 'Idempotency-Key' header value must be a string, got NoneType"),
        ({1: "x"}, "header names must be strings, got int"),
        ({"Bad Name": "x"}, "the header name 'Bad Name' is not an HTTP token"),
        ({"X:Y": "x"}, "the header name 'X:Y' is not an HTTP token"),
        ({"": "x"}, "the header name '' is not an HTTP token"),
        ({"Idempotency-Key": "a\x00b"}, "the 'Idempotency-Key' header contains a control character"),
        ({"Idempotency-Key": SURROGATE}, "the 'Idempotency-Key' header contains a lone surrogate"),
        ("X-A: 1", "headers must be a mapping of name to value, got str"),
        ([("X-A", "1")], "headers must be a mapping of name to value, got list"),
    ],
)
def test_header_names_and_values_are_checked(engine: Engine, headers: Any, problem: str) -> None:
    error = _refused(engine, UsageError, COMBINE, COMBINE_PAPAY, headers=headers)
    assert str(error).startswith(problem)


def test_endpoint_reference_must_be_text(engine: Engine) -> None:
    with pytest.raises(UsageError, match="an endpoint reference is a string"):
        engine.call(42)  # type: ignore[arg-type]
    _nothing_sent(engine)


# == 2. raw targets ===================================================================================


@pytest.mark.parametrize(
    ("target", "sent"),
    [
        ("/v3/x y", "/v3/x%20y"),
        ("/v3/x?a=b c", "/v3/x?a=b%20c"),
        ("/v3/普通", "/v3/%E6%99%AE%E9%80%9A"),
        ("/v3/x#frag", "/v3/x%23frag"),
        ("/v3/100%", "/v3/100%25"),
        ("/v3/%41%zz", "/v3/%41%25zz"),
        ('/v3/"<>\\^`{|}[]', "/v3/%22%3C%3E%5C%5E%60%7B%7C%7D%5B%5D"),
        ("/v3/a-b_c.d~e!$&'()*+,;=:@/f?g=h&i", "/v3/a-b_c.d~e!$&'()*+,;=:@/f?g=h&i"),
    ],
)
def test_raw_targets_are_percent_encoded_and_the_encoded_form_is_signed(engine: Engine, target: str, sent: str) -> None:
    with pytest.raises(ApiError) as caught:  # the sandbox knows no such API: it checked the signature first
        engine.call(f"GET {target}")
    assert caught.value.code == "RESOURCE_NOT_EXISTS" and caught.value.verified
    assert engine.emulator.last.request.target == sent


@pytest.mark.parametrize("char", ["\t", "\r", "\n", "\x00", "\x1b", "\x7f", "\x85", SURROGATE])
def test_raw_targets_with_control_characters_are_refused(engine: Engine, char: str) -> None:
    with pytest.raises(UsageError, match="the request target contains"):
        engine.call(f"GET /v3/x{char}Host: evil")
    with pytest.raises(UsageError, match="the request target contains"):
        engine.v3.pay.transactions[f"a{char}b"].get()
    _nothing_sent(engine)


def test_raw_target_values_reach_a_descriptor_decoded(engine: Engine, identity) -> None:
    with pytest.raises(ApiError, match="ORDER_NOT_EXIST"):  # no such order in the stateful sandbox
        engine.call(f"GET /v3/pay/transactions/out-trade-no/a b?mchid={identity.mchid}")
    assert engine.emulator.last.endpoint_id == ORDER
    assert engine.emulator.last.request.target == f"/v3/pay/transactions/out-trade-no/a%20b?mchid={identity.mchid}"
    assert engine.emulator.last.payload["out_trade_no"] == "a b"


def test_repeated_query_keys_are_kept_in_order(engine: Engine) -> None:
    with pytest.raises(ApiError):
        engine.call("GET /v3/x?a=1&b=0&a=2")
    assert engine.emulator.last.request.target == "/v3/x?a=1&b=0&a=2"
    assert query_values("/v3/x?a=1&b=0&a=2&a=3") == {"a": ["1", "2", "3"], "b": "0"}


def test_repeated_query_keys_are_not_collapsed_for_a_descriptor(engine: Engine) -> None:
    error = _refused(engine, ValidationError, "GET /v3/pay/transactions/out-trade-no/x?mchid=1&mchid=2")
    assert error.errors == ("expected string, got array @ $.mchid",)


def test_repeated_query_keys_fill_an_array_field_in_order(engine: Engine) -> None:
    engine.register(
        Descriptor(
            id="t.arr.get",
            method="GET",
            path="/v3/t/arr",
            request=RequestSpec(query={"ids": Field(type="array", items=Field(type="integer"))}),
        )
    )
    engine.call("GET /v3/t/arr?ids=3&ids=1,2")
    assert engine.emulator.last.payload == {"ids": [3, 1, 2]}


@pytest.mark.parametrize("value", ["abc_def", "a__b", "abc_", "_abc", "abc"])
def test_attribute_chains_keep_underscores_in_path_values(engine: Engine, identity, value: str) -> None:
    chain = getattr(engine.v3.pay.transactions.out_trade_no, value)
    with pytest.raises(ApiError, match="ORDER_NOT_EXIST"):  # no such order in the stateful sandbox
        chain.get(query={"mchid": identity.mchid})
    assert engine.emulator.last.endpoint_id == ORDER
    assert engine.emulator.last.request.target == f"/v3/pay/transactions/out-trade-no/{value}?mchid={identity.mchid}"
    assert engine.emulator.last.payload["out_trade_no"] == value


def test_attribute_chains_keep_underscores_before_a_trailing_segment(engine: Engine, identity) -> None:
    with pytest.raises(ApiError, match="ORDER_NOT_EXIST"):
        engine.v3.pay.transactions.out_trade_no.abc_def.close.post(json={"mchid": identity.mchid})
    assert engine.emulator.last.request.target == "/v3/pay/transactions/out-trade-no/abc_def/close"
    assert engine.emulator.last.endpoint_id == "v3.pay.transactions.out_trade_no._out_trade_no_.close.post"


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


# == 4. the sandbox's record is bounded =====================================================================


def test_the_sandbox_keeps_a_bounded_record(identity, make_engine) -> None:
    engine = make_engine()
    assert engine.emulator.record_limit == 1000
    engine.emulator.record_limit = 3
    for n in range(10):
        engine.call(COMBINE, {**COMBINE_PAPAY, "out_contract_code": f"c{n}"})
    assert len(engine.emulator.exchanges) == 3
    assert [e.payload["out_contract_code"] for e in engine.emulator.exchanges] == ["c7", "c8", "c9"]
    assert engine.emulator.last.payload["out_contract_code"] == "c9"
    small = Sandbox(identity, record_limit=2)
    assert small.exchanges == [] and small.exchanges.maxlen == 2
    with pytest.raises(ConfigurationError, match="record_limit must be a whole number >= 1"):
        Sandbox(identity, record_limit=0)
    engine.emulator.record_limit = 5
    assert len(engine.emulator.exchanges) == 3 and engine.emulator.deliveries.maxlen == 5


def test_bills_waiting_to_be_fetched_are_bounded() -> None:
    from engine.sandbox.bills import BillDesk

    desk = BillDesk("1900000109", pending_limit=2)
    urls = [desk.request("sandbox://x", {"bill_date": "2026-12-01"})["download_url"] for _ in range(3)]
    targets = [url.removeprefix("sandbox://x") for url in urls]
    assert desk.file(targets[0]) is None  # the oldest was forgotten when the third was prepared
    assert desk.file(targets[1]) is not None and desk.file(targets[2]) is not None


# == found while probing further ===========================================================================

SHA_UPLOAD = Descriptor(
    id="t.sha.upload.post",
    method="POST",
    path="/v3/t/sha/upload",
    body="multipart",
    request=RequestSpec(
        body={
            "file": Field(type="file", required=True),
            "meta": Field(type="object", required=True, fields={"filename": Field(), "sha256": Field()}),
        }
    ),
)


def test_upload_path_with_a_nul_is_refused(engine: Engine) -> None:
    engine.register(SHA_UPLOAD)
    error = _refused(engine, ValidationError, "t.sha.upload.post", {"file": Path("a\x00b.png")})
    assert error.errors == ("cannot read the file (not a valid path) @ $.file",)


def test_upload_from_a_fifo_neither_blocks_nor_sends(engine: Engine, tmp_path: Path) -> None:
    import threading

    engine.register(SHA_UPLOAD)
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    outcome: list[BaseException] = []

    def call() -> None:
        try:
            engine.call("t.sha.upload.post", {"file": fifo})
        except BaseException as exc:  # the outcome is what is asserted
            outcome.append(exc)

    worker = threading.Thread(target=call, daemon=True)
    worker.start()
    worker.join(PATIENCE)  # a refusal returns at once; only a read blocked on the FIFO takes this long
    if worker.is_alive():  # blocked reading the FIFO: give it a writer so the test can end
        with open(fifo, "wb"):
            pass
        worker.join(PATIENCE)
        pytest.fail("reading an upload from a FIFO blocked the call")
    assert [type(e) for e in outcome] == [ValidationError]
    assert outcome[0].errors == ("cannot read the file (not a regular file) @ $.file",)
    _nothing_sent(engine)


@pytest.mark.parametrize(
    "body", [b"[" * 100_000 + b"]" * 100_000, b'{"plan_id": ' + b"9" * 5000 + b"}"], ids=["deep", "long_number"]
)
def test_sandbox_answers_a_signed_but_absurdly_deep_body_with_400(engine: Engine, body: bytes) -> None:
    from engine.hookspecs import SigningContext
    from engine.wire import Headers, Request

    path = "/v3/ecommerce/combine-papay/contracts/pre-entrust-sign/mini-program"
    headers = Headers({"Accept": "application/json", "User-Agent": "t", "Content-Type": "application/json"})
    request = Request("POST", "sandbox://x", path, headers, body)
    signing = SigningContext(engine.credentials, int(time.time()), "n" * 32)
    descriptor = engine.endpoint("combine_papay.mini_program")
    sign = engine.plugin_manager.hook.wxpay_sign_request
    authorization = sign(request=request, signing=signing, descriptor=descriptor)
    signed = Request("POST", "sandbox://x", path, headers.merged({"Authorization": authorization}), request.body)
    answer = engine.emulator.handle(signed)
    assert answer.status == 400 and b"PARAM_ERROR" in answer.body


@pytest.mark.parametrize(
    ("route", "body"),
    [
        ("/sandbox/faults", {"kind": "error", "status": "many"}),
        ("/sandbox/faults", {"kind": "error", "status": 42}),
        ("/sandbox/faults", {"kind": "latency", "seconds": "NaN"}),
        ("/sandbox/faults", {"kind": "latency", "seconds": 1e9}),
        ("/sandbox/faults", {"kind": "drop", "times": [1]}),
        ("/sandbox/faults", "[" * 100_000 + "]" * 100_000),
        ("/sandbox/notify", {"out_trade_no": "x", "url": "http://127.0.0.1:9/", "total": "lots"}),
    ],
)
def test_control_api_answers_malformed_requests_with_400(identity, route: str, body: Any) -> None:
    import json
    import urllib.error
    import urllib.request

    from engine.sandbox.server import ServerThread

    data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    with ServerThread(Sandbox(identity)) as server:
        request = urllib.request.Request(server.base_url + route, data=data, method="POST")
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=PATIENCE)
    assert caught.value.code == 400


def test_chain_items_must_be_text(engine: Engine) -> None:
    with pytest.raises(UsageError, match="a chain item is a path string"):
        engine.v3.pay[42]  # type: ignore[index]
    with pytest.raises(UsageError, match="a chain item is a path string"):
        engine.chain(b"v3/pay")  # type: ignore[arg-type]


def test_a_descriptor_key_that_is_not_a_string_is_named(tmp_path: Path) -> None:
    """Found by tests/test_properties.py: YAML's '? ' made a null key, and naming it raised TypeError."""
    _write(tmp_path, "v3.x.post.yaml", "? \nmethod: POST\npath: /v3/x\n1: 2\n")
    with pytest.raises(DescriptorError) as caught:
        Registry([tmp_path]).get("v3.x.post")
    assert caught.value.problems == ("unknown key(s) 1, None @ $",)


TAGS = Descriptor(
    id="t.tags.get",
    method="GET",
    path="/v3/t/tags",
    request=RequestSpec(query={"tags": Field(type="array", items=Field(), max_items=2)}),
)


@pytest.mark.parametrize("tags", [["a,b"], [""], ["x", "a,b,c"]])
def test_query_array_items_that_commas_would_split_are_refused(engine: Engine, tags: list) -> None:
    """Arrays travel comma-separated: ["a,b"] would reach WeChat Pay as two items."""
    engine.register(TAGS)
    error = _refused(engine, ValidationError, "t.tags.get", {"tags": tags})
    bad = next(i for i, tag in enumerate(tags) if "," in tag or not tag)
    assert error.errors == (f"a query array item must be non-empty and hold no ',' @ $.tags[{bad}]",)


def test_query_array_items_that_travel_intact_pass(engine: Engine) -> None:
    engine.register(TAGS)
    engine.call("t.tags.get", {"tags": ["a b", "普通"]})
    assert engine.emulator.last.payload == {"tags": ["a b", "普通"]}
