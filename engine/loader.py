"""Turning descriptor data (YAML text or dicts) into frozen ``Descriptor`` objects.

Design decisions:

* A dedicated cattrs converter with ``forbid_extra_keys=True``, never the global one: a typo such as
  ``encrpyted:`` is an error at load, not a silently ignored key.
* cattrs' structured errors are flattened with ``transform_error`` into ``"... @ $.request.body.x"``
  lines, so a broken file names itself and every bad key path in one ``DescriptorError``.
* Semantic checks cattrs cannot express (a name in two locations, a path parameter the template does
  not contain, limits on the wrong type) run right after structuring, with the same path style.
* YAML is parsed with libyaml's C loader when present (several times faster), else the pure one.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator, Literal, Mapping, get_args, get_origin

import cattrs
import yaml
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError

from engine.descriptor import Descriptor, Field
from engine.errors import DescriptorError

_YamlLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_TEMPLATE_PARAM = re.compile(r"{([^{}/]+)}")


def _strict(*kinds: type) -> Any:
    """A structure hook that accepts only the given Python types (no ``bool("maybe")`` coercion)."""

    def hook(value: Any, type_: Any) -> Any:
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
            raise TypeError(f"expected {type_.__name__}, got {type(value).__name__} {value!r}")
        return value

    return hook


def _build_converter() -> cattrs.Converter:
    converter = cattrs.Converter(forbid_extra_keys=True)
    converter.register_structure_hook(Any, lambda value, _: value)
    converter.register_structure_hook(bool, _strict(bool))
    converter.register_structure_hook(int, _strict(int))
    converter.register_structure_hook(float, _strict(int, float))
    converter.register_structure_hook(str, _strict(str))
    converter.register_structure_hook_func(lambda t: t == tuple[Any, ...], _enum_list)
    converter.register_structure_hook_func(lambda t: t == tuple[str, ...], _name_list)
    return converter


def _enum_list(value: Any, _: Any) -> tuple[Any, ...]:
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"expected list, got {type(value).__name__} {value!r}")
    return tuple(value)


def _name_list(value: Any, _: Any) -> tuple[str, ...]:
    """A list of field names (``one_of`` groups): a bare string is not a list of its characters."""
    if not isinstance(value, (list, tuple)) or not all(isinstance(name, str) for name in value):
        raise TypeError(f"expected a list of names, got {type(value).__name__} {value!r}")
    return tuple(value)


_CONVERTER = _build_converter()


def parse_yaml(text: str | bytes, source: str) -> Any:
    """Parse YAML text, turning syntax errors into a ``DescriptorError`` naming ``source``."""
    try:
        return yaml.load(text, Loader=_YamlLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise DescriptorError(source, [f"not valid YAML{where}: {getattr(exc, 'problem', exc)}"]) from None


def load_descriptor_file(path: Path, endpoint_id: str) -> Descriptor:
    """Read and structure one descriptor file; its id is its file name without ``.yaml``."""
    raw = parse_yaml(path.read_bytes(), str(path))
    return structure_descriptor(raw, endpoint_id, source=str(path))


def structure_descriptor(raw: Any, endpoint_id: str, source: str) -> Descriptor:
    """Structure a mapping into a ``Descriptor``, reporting every problem with its key path."""
    if not isinstance(raw, Mapping):
        raise DescriptorError(source, [f"expected a mapping at the top, got {type(raw).__name__} @ $"])
    data = dict(raw)
    declared = data.pop("id", endpoint_id)
    if declared != endpoint_id:
        raise DescriptorError(source, [f"id {declared!r} differs from the file name {endpoint_id!r} @ $.id"])
    try:
        descriptor = _CONVERTER.structure({"id": endpoint_id, **data}, Descriptor)
    except ClassValidationError as exc:
        raise DescriptorError(source, _describe(exc)) from None
    problems = list(semantic_problems(descriptor))
    if problems:
        raise DescriptorError(source, problems)
    return descriptor


def _describe(exc: ClassValidationError) -> list[str]:
    lines = cattrs.transform_error(exc, path="$", format_exception=_format_one)
    # cattrs writes mapping keys as ['name']; descriptors read better as dotted paths.
    return [re.sub(r"\['([^'\]]+)'\]", r".\1", line) for line in lines]


def _format_one(error: BaseException, type_: Any) -> str:
    if isinstance(error, ForbiddenExtraKeysError):
        return f"unknown key(s) {', '.join(sorted(error.extra_fields))}"
    if isinstance(error, KeyError):
        return "required key missing"
    if get_origin(type_) is Literal:
        allowed = ", ".join(str(a) for a in get_args(type_))
        return f"must be one of {allowed}"
    if isinstance(error, TypeError) and str(error).startswith("expected"):
        return str(error)
    return cattrs.v.format_exception(error, type_)


def semantic_problems(descriptor: Descriptor) -> Iterator[str]:
    """Checks beyond the shape: consistency between path template, locations and limits."""
    if not descriptor.path.startswith("/"):
        yield "path must start with '/' @ $.path"
    template_params = set(_TEMPLATE_PARAM.findall(descriptor.path))
    declared = set(descriptor.request.path)
    for name in sorted(template_params - declared):
        yield f"path parameter {{{name}}} has no field in request.path @ $.request.path"
    for name in sorted(declared - template_params):
        yield f"field is not a parameter of the path template @ $.request.path.{name}"
    yield from _duplicate_names(descriptor)
    for location, fields in (*descriptor.request.locations(), ("header", descriptor.request.header)):
        yield from _field_problems(fields, f"$.request.{location}")
    yield from _field_problems(descriptor.response, "$.response")
    yield from _idempotency_problems(descriptor)
    yield from _trait_problems(descriptor)


def _trait_problems(descriptor: Descriptor) -> Iterator[str]:
    """``fills`` and ``one_of`` name request fields; a ``one_of`` member is not required on its own."""
    fields = {name: f for _, group in descriptor.request.locations() for name, f in group.items()}
    for name in descriptor.fills:
        if name not in fields:
            yield f"filled field {name!r} is not a request field @ $.fills.{name}"
    for index, group in enumerate(descriptor.one_of):
        if len(group) < 2:
            yield f"a one_of group needs two names or more @ $.one_of[{index}]"
        for name in group:
            if name not in fields:
                yield f"{name!r} is not a request field @ $.one_of[{index}]"
            elif fields[name].required:
                yield f"{name!r} is required on its own, so it cannot be one of a group @ $.one_of[{index}]"


def _idempotency_problems(descriptor: Descriptor) -> Iterator[str]:
    trait = descriptor.idempotency
    if trait is None:
        return
    if trait.key is not None and trait.key not in descriptor.request.body:
        yield f"idempotency key {trait.key!r} is not a request body field @ $.idempotency.key"
    if trait.header is not None and trait.header not in descriptor.request.header:
        yield f"idempotency header {trait.header!r} is not a request header @ $.idempotency.header"
    if trait.safe_method and descriptor.method != "GET":
        yield "safe_method is only for GET @ $.idempotency.safe_method"
    if descriptor.method != "GET" and trait.key is None and trait.header is None:
        yield "a non-GET operation is safe to resend only by a key or a header @ $.idempotency"


def _duplicate_names(descriptor: Descriptor) -> Iterator[str]:
    seen: dict[str, str] = {}
    for location, fields in descriptor.request.locations():
        for name in fields:
            if name in seen:
                yield f"field {name!r} is declared in both {seen[name]} and {location} @ $.request.{location}.{name}"
            seen[name] = location


def _field_problems(fields: Mapping[str, Field], path: str) -> Iterator[str]:
    for name, field in fields.items():
        here = f"{path}.{name}"
        if field.type == "array" and field.items is None:
            yield f"an array field needs 'items' @ {here}"
        if field.type != "object" and field.fields:
            yield f"'fields' is only for type object @ {here}"
        if field.encrypted and field.type != "string":
            yield f"only string fields can be encrypted @ {here}"
        if field.pattern is not None:
            yield from _pattern_problem(field.pattern, here)
        yield from _field_problems(field.fields, f"{here}.fields")
        if field.items is not None:
            yield from _field_problems({"items": field.items}, here)


def _pattern_problem(pattern: str, path: str) -> Iterator[str]:
    try:
        re.compile(pattern)
    except re.error as exc:
        yield f"pattern is not a valid regular expression ({exc}) @ {path}.pattern"
