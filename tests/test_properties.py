"""Property-based tests: generated payloads and mutated descriptor files meet only typed outcomes.

* (a) A payload generated for a real descriptor, valid or hostile, either raises ``ValidationError``
  with nothing sent, or gets a verified answer from the in-process sandbox. Nothing else: no raw
  exception, and no ``ApiError``, which would mean the client and the sandbox (which validates
  against the same descriptor after the wire) disagree about a payload.
* (b) A real descriptor file mutated byte by byte or field by field either loads (and then compiles
  a validator that can run) or raises ``DescriptorError``.

Deterministic (``derandomize=True``, no example database) and bounded to a few seconds each.
Hypothesis also mixes in constants it finds in every local module already imported, which makes
the examples depend on which other tests ran first; ``no_local_constants`` switches that off so a
failure seen in the full suite is seen alone too.
"""

from __future__ import annotations

import contextlib
import copy
import math
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

import attrs
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import DescriptorError, Engine, Field, ValidationError
from engine.registry import BUILTIN_ENDPOINTS, Registry
from engine.validation import compile_validator

DETERMINISTIC = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
SAMPLE = {  # endpoint -> examples, each run a second or two
    # the three seeds (endpoints/aliases.yaml), the largest descriptor, and two with path and query fields
    "combine_papay.mini_program": 100,
    "individual_contracts.real_name.mini_program": 80,
    "password_exempt.ecommerce.pay_redirect_sign": 100,
    "v3.applyment4sub.applyment.post": 40,
    "v3.platsolution.mch_transfer.batches.out_batch_no._out_batch_no_.get": 100,
    "v3.marketing.favor.users._openid_.coupons.get": 100,
}

# == values from a descriptor, mostly fitting it, sometimes hostile ===================================

HOSTILE_TEXT = st.sampled_from(
    ["", ".", "..", "a/b", "a?b=c#d", "100%", " ", "\t\r\n", "\x00", "\ud800", "x\udfff", "普通", "😀" * 3, "a,b"]
)
HOSTILE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(st.characters(codec=None, categories=("Cs", "Cc", "Lo", "So", "Zs")), max_size=8),
    HOSTILE_TEXT,
    st.binary(max_size=4),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.just({1, 2}),
)


def fitting(field: Field) -> st.SearchStrategy[Any]:
    """Values of the field's type within its limits: what validation should let through."""
    if field.enum:
        return st.sampled_from(field.enum)
    if field.type == "string":
        low, high = field.min_length or 0, field.max_length if field.max_length is not None else 24
        text = st.text(min_size=low, max_size=max(low, min(high, 24)))
        if field.encrypted:  # RSA-OAEP holds 214 bytes: keep most plaintexts well under it
            text = st.text(min_size=low, max_size=max(low, min(high, 40)))
        return st.one_of(text, st.just(field.example)) if isinstance(field.example, str) else text
    if field.type == "integer":
        low = int(field.minimum) if field.minimum is not None else -(2**31)
        high = int(field.maximum) if field.maximum is not None else 2**31
        return st.integers(min_value=low, max_value=max(low, high))
    if field.type == "number":
        return st.floats(field.minimum, field.maximum, allow_nan=False, allow_infinity=False)
    if field.type == "boolean":
        return st.booleans()
    if field.type == "object":
        return fitting_object(field.fields)
    if field.type == "array" and field.items is not None:
        low, high = field.min_items or 0, field.max_items if field.max_items is not None else 3
        return st.lists(fitting(field.items), min_size=low, max_size=max(low, min(high, 3)))
    return HOSTILE


def fitting_object(fields: dict[str, Field]) -> st.SearchStrategy[dict[str, Any]]:
    required = {name: fitting(f) for name, f in fields.items() if f.required}
    optional = {name: fitting(f) for name, f in fields.items() if not f.required}
    return st.fixed_dictionaries(required, optional=optional)


@st.composite
def corrupted(draw: st.DrawFn, payload: dict[str, Any]) -> Any:
    """The payload with one to three hostile changes anywhere in it: a value replaced, a key dropped or added."""
    data = copy.deepcopy(payload)
    for _ in range(draw(st.integers(1, 3))):
        containers = [c for c in _containers(data) if c or isinstance(c, dict)]
        target = draw(st.sampled_from(containers))
        keys = list(target) if isinstance(target, dict) else list(range(len(target)))
        kind = draw(st.sampled_from(["replace", "replace", "drop", "add"]))
        if kind == "add" and isinstance(target, dict):
            target[draw(st.sampled_from(["x", "\ud800", "a b", "__proto__", "\n"]))] = draw(HOSTILE)
        elif keys and kind == "drop":
            del target[draw(st.sampled_from(keys))]
        elif keys:
            target[draw(st.sampled_from(keys))] = draw(HOSTILE)
    return data


def descriptor_payloads(registry: Registry, ref: str) -> st.SearchStrategy[Any]:
    """Half fitting the descriptor, most of the rest a fitting payload spoilt, a few not even objects."""
    descriptor = registry.get(ref)
    fields = {name: f for _, group in descriptor.request.locations() for name, f in group.items()}
    fitting_payload = fitting_object(
        {**fields, **{n: attrs.evolve(f, required=True) for n, f in descriptor.request.path.items()}}
    )
    spoilt = fitting_payload.flatmap(corrupted)
    return st.integers(0, 9).flatmap(lambda n: fitting_payload if n < 5 else spoilt if n < 9 else HOSTILE)


pytestmark = pytest.mark.usefixtures("no_local_constants")  # examples independent of the tests run before


@pytest.fixture(scope="module")
def sandbox_engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    identity = request.getfixturevalue("identity")
    engine = Engine.sandbox(identity=identity, load_entry_points=False)
    yield engine
    engine.close()


def _payload_property(ref: str, examples: int) -> Callable[..., None]:
    registry = Registry([BUILTIN_ENDPOINTS])

    @settings(DETERMINISTIC, max_examples=examples)
    @given(payload=descriptor_payloads(registry, ref))
    def check(sandbox_engine: Engine, payload: Any) -> None:
        sandbox_engine.emulator.exchanges.clear()
        try:
            response = sandbox_engine.call(ref, payload)
        except ValidationError:
            assert sandbox_engine.emulator.exchanges == [], "a refused payload must not be sent"
            return
        assert response.verified_with, "an answer is returned only once verified"
        assert 200 <= response.status < 300
        assert len(sandbox_engine.emulator.exchanges) == 1

    return check


@pytest.mark.parametrize(("ref", "examples"), SAMPLE.items(), ids=list(SAMPLE))
def test_generated_payloads_are_refused_or_answered(sandbox_engine: Engine, ref: str, examples: int) -> None:
    _payload_property(ref, examples)(sandbox_engine)


def test_generated_payloads_include_valid_ones(sandbox_engine: Engine) -> None:
    """The property above must not hold vacuously: plenty of generated payloads do reach the sandbox."""
    registry = Registry([BUILTIN_ENDPOINTS])
    answered = []

    @settings(DETERMINISTIC, max_examples=40)
    @given(payload=descriptor_payloads(registry, "combine_papay.mini_program"))
    def count(payload: Any) -> None:
        with contextlib.suppress(ValidationError):
            answered.append(sandbox_engine.call("combine_papay.mini_program", payload))

    count()
    assert len(answered) >= 5


# == mutated descriptor files ============================================================================

DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MUTATED = [
    "v3.ecommerce.combine_papay.contracts.pre_entrust_sign.mini_program.post",
    "v3.pay.transactions.out_trade_no._out_trade_no_.get",
    "v3.merchant.media.upload.post",
]
YAML_NOISE = [
    b"&a ",
    b"*a",
    b"<<: *a\n",
    b"{",
    b"}",
    b"[",
    b"]",
    b": ",
    b"- ",
    b"\n  ",
    b"\t",
    b"!!python/object:os.system ",
    b"!!binary ",
    b"? ",
    b"%YAML 1.1\n",
    b"---\n",
    b"\x00",
    b"\xff",
    b"'",
    b'"',
    b"#",
    b"|",
    b">",
    b".nan",
    b"2020-01-01",
    b"{a-b}",
    b"~",
]


@st.composite
def byte_mutations(draw: st.DrawFn, text: bytes) -> bytes:
    data = bytearray(text)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["insert", "delete", "replace", "duplicate"]))
        if kind == "insert":
            data[at:at] = draw(st.one_of(st.sampled_from(YAML_NOISE), st.binary(min_size=1, max_size=3)))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 12))]
        elif kind == "replace":
            data[at : at + 1] = draw(st.binary(min_size=1, max_size=1))
        else:
            data[at:at] = data[max(0, at - 40) : at]
    return bytes(data)


FIELD_KEYS = ["type", "required", "encrypted", "enum", "min_length", "max_length", "minimum", "maximum", "pattern"]
FIELD_KEYS += ["min_items", "max_items", "example", "fields", "items", "label", "max_bytes"]
ODD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(),
    st.text(max_size=6),
    st.sampled_from(["file", "object", "array", "string", "{a-b}", "(", "/v3/{x}", "multipart", "GET", "hk"]),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@st.composite
def field_mutations(draw: st.DrawFn, raw: dict) -> Any:
    """The structured document with a few keys replaced, dropped, added or nested deeper."""
    data = copy.deepcopy(raw)
    for _ in range(draw(st.integers(1, 3))):
        target = draw(st.sampled_from([c for c in _containers(data) if isinstance(c, dict)]))
        kind = draw(st.sampled_from(["replace", "drop", "add", "nest"]))
        keys = list(target)
        if kind == "replace" and keys:
            target[draw(st.sampled_from(keys))] = draw(ODD_VALUES)
        elif kind == "drop" and keys:
            del target[draw(st.sampled_from(keys))]
        elif kind == "add":
            target[draw(st.sampled_from([*FIELD_KEYS, "path", "method", "body", "host", "free_form", "x"]))] = draw(
                ODD_VALUES
            )
        elif keys:
            key = draw(st.sampled_from(keys))
            nested: Any = target[key]
            for _ in range(draw(st.integers(1, 36))):
                nested = {"type": "object", "fields": {"f": nested}}
            target[key] = nested
    return data


def _containers(data: Any) -> Iterator[Any]:
    """Every dict and list inside ``data``, ``data`` included."""
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, (dict, list)):
            yield item
            stack.extend(item.values() if isinstance(item, dict) else item)


def _loads_or_refuses(directory: Path, endpoint_id: str, data: bytes) -> None:
    (directory / f"{endpoint_id}.yaml").write_bytes(data)
    try:
        descriptor = Registry([directory]).get(endpoint_id)
    except DescriptorError as exc:
        assert exc.source.endswith(f"{endpoint_id}.yaml")
        return
    validate = compile_validator(descriptor)  # a descriptor that loads is one that can be used
    assert isinstance(validate({}), list)
    assert isinstance(validate({"x": [math.nan]}), list)


@pytest.mark.parametrize("endpoint_id", MUTATED)
def test_byte_mutated_descriptors_load_or_raise_descriptor_error(endpoint_id: str) -> None:
    original = (BUILTIN_ENDPOINTS / f"{endpoint_id}.yaml").read_bytes()
    with tempfile.TemporaryDirectory() as scratch:

        @settings(DETERMINISTIC, max_examples=150)
        @given(data=byte_mutations(original))
        def check(data: bytes) -> None:
            _loads_or_refuses(Path(scratch), endpoint_id, data)

        check()


@pytest.mark.parametrize("endpoint_id", MUTATED)
def test_field_mutated_descriptors_load_or_raise_descriptor_error(endpoint_id: str) -> None:
    raw = yaml.load((BUILTIN_ENDPOINTS / f"{endpoint_id}.yaml").read_bytes(), Loader=LOADER)
    with tempfile.TemporaryDirectory() as scratch:

        @settings(DETERMINISTIC, max_examples=150)
        @given(data=field_mutations(raw))
        def check(data: Any) -> None:
            try:
                text = yaml.dump(data, Dumper=DUMPER, allow_unicode=True).encode("utf-8")
            except (yaml.YAMLError, UnicodeEncodeError):  # a generated value YAML cannot hold: nothing to load
                return
            _loads_or_refuses(Path(scratch), endpoint_id, text)

        check()
