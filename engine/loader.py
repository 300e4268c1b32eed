"""Turning descriptor data (YAML text or dicts) into frozen ``Descriptor`` objects.

Design decisions:

* A dedicated cattrs converter with ``forbid_extra_keys=True``, never the global one: a typo such as
  ``encrpyted:`` is an error at load, not a silently ignored key.
* cattrs' structured errors are flattened with ``transform_error`` into ``"... @ $.request.body.x"``
  lines, so a broken file names itself and every bad key path in one ``DescriptorError``.
* Semantic checks cattrs cannot express (a name in two locations, a path parameter the template does
  not contain, limits on the wrong type) run right after structuring, with the same path style.
* YAML is parsed with libyaml's C loader when present (several times faster), else the pure one.
* Loading is bounded, because a descriptor directory is input like any other. A file is read only
  if it is a regular file of at most ``MAX_DESCRIPTOR_BYTES`` (``engine.files``): a directory named
  ``x.yaml``, a FIFO, a symlink loop or an unreadable file is a ``DescriptorError`` naming it, never
  a raw ``OSError`` or a read that blocks. YAML aliases (``*name``) are refused while the document is constructed:
  no descriptor needs them, and a "billion laughs" of nested aliases is a few hundred bytes that
  expand to gigabytes once anything walks them. Nesting is limited twice: the raw YAML to
  ``MAX_YAML_DEPTH`` levels before cattrs recurses into it, and fields to ``MAX_FIELD_DEPTH``
  levels, so no walker (validation, encryption, the sandbox) can ever run out of stack.
* Path templates are checked at load: URL path characters only, balanced braces, parameter names
  of letters, digits and ``_``, each once. ``type: file`` is allowed only at the top of a multipart
  body, and ``max_bytes`` (a size limit of at least one byte) only on a file. Examples, enums and
  limits must be JSON values (no NaN, no dates), since the sandbox echoes them into answers.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Iterator, Literal, Mapping, Optional, get_args, get_origin

import cattrs
import yaml
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError

from engine.descriptor import PLATFORM_ENCRYPTION, Descriptor, Field
from engine.errors import DescriptorError
from engine.fields import any_encrypted
from engine.files import Unread, read_regular_file

MAX_DESCRIPTOR_BYTES = 1 << 20  # the largest built-in descriptor is about 22 KiB
MAX_FIELD_DEPTH = 32  # the deepest built-in descriptor nests 12 levels of fields
MAX_YAML_DEPTH = 2 * MAX_FIELD_DEPTH + 8  # each field level is two YAML mappings (name -> field, fields:)
_YamlLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_TEMPLATE_PARAM = re.compile(r"{([^{}/]+)}")
_PARAMETER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PATH_CHARACTERS = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@/%{}]*")


class _NoAliasLoader(_YamlLoader):  # type: ignore[misc,valid-type]
    """The safe loader, refusing any node met a second time: that is exactly what an alias is."""

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        if node in self.constructed_objects:
            raise yaml.constructor.ConstructorError(
                None, None, "YAML aliases (*name) are not allowed in descriptor files", node.start_mark
            )
        return super().construct_object(node, deep)


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


def read_source(path: Path) -> bytes:
    """The bytes of a descriptor (or aliases) file: a regular file of bounded size, else ``DescriptorError``."""
    content = read_regular_file(path, MAX_DESCRIPTOR_BYTES)
    if isinstance(content, Unread):
        too_large = f"larger than {MAX_DESCRIPTOR_BYTES} bytes"
        raise DescriptorError(str(path), [too_large if content.too_large else f"cannot be read: {content.reason}"])
    return content


def parse_yaml(text: str | bytes, source: str) -> Any:
    """Parse YAML text, turning syntax errors into a ``DescriptorError`` naming ``source``."""
    # Without an anchor (&name) there can be no alias: most files take the plain, faster loader.
    anchored = "&" in text if isinstance(text, str) else b"&" in text
    try:
        return yaml.load(text, Loader=_NoAliasLoader if anchored else _YamlLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise DescriptorError(source, [f"not valid YAML{where}: {getattr(exc, 'problem', exc)}"]) from None
    except RecursionError:  # a pathological flow collection ([[[[...): deeper than anything allowed
        raise DescriptorError(source, [f"the YAML is nested deeper than {MAX_YAML_DEPTH} levels"]) from None


def _deeper_than(data: Any, limit: int) -> Optional[str]:
    """The path of the first container nested more than ``limit`` deep, or None (iterative: no recursion).

    Paths are kept as (parent, key) links and written out only for the answer: this runs on every load.
    """
    if not isinstance(data, (dict, list)):
        return None
    stack: list[tuple[Any, int, Any]] = [(data, 1, None)]
    while stack:
        value, depth, trail = stack.pop()
        if depth > limit:
            return _written(trail)
        indexed = isinstance(value, list)
        for key, item in enumerate(value) if indexed else value.items():
            if isinstance(item, (dict, list)):  # only containers are pushed: most nodes are scalars
                stack.append((item, depth + 1, (trail, key, indexed)))
    return None


def _written(trail: Any) -> str:
    parts: list[str] = []
    while trail is not None:
        trail, key, indexed = trail
        parts.append(f"[{key}]" if indexed else f".{key}")
    return "$" + "".join(reversed(parts))


def load_descriptor_file(path: Path, endpoint_id: str) -> Descriptor:
    """Read and structure one descriptor file; its id is its file name without ``.yaml``."""
    raw = parse_yaml(read_source(path), str(path))
    return structure_descriptor(raw, endpoint_id, source=str(path))


def structure_descriptor(raw: Any, endpoint_id: str, source: str) -> Descriptor:
    """Structure a mapping into a ``Descriptor``, reporting every problem with its key path."""
    if not isinstance(raw, Mapping):
        raise DescriptorError(source, [f"expected a mapping at the top, got {type(raw).__name__} @ $"])
    too_deep = _deeper_than(raw, MAX_YAML_DEPTH)  # before cattrs recurses into it
    if too_deep is not None:
        problem = f"nested deeper than {MAX_YAML_DEPTH} levels (fields nest at most {MAX_FIELD_DEPTH})"
        raise DescriptorError(source, [f"{problem} @ {too_deep}"])
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
        names = sorted(key if isinstance(key, str) else repr(key) for key in error.extra_fields)  # YAML keys: any type
        return f"unknown key(s) {', '.join(names)}"
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
    if any(c.isspace() for c in descriptor.id):  # "METHOD /path" is how ad-hoc calls are told apart
        yield "an id holds no whitespace (a space is what tells an ad-hoc 'METHOD /path' call apart) @ $.id"
    if not descriptor.path.startswith("/"):
        yield "path must start with '/' @ $.path"
    yield from _template_problems(descriptor.path)
    template_params = set(_TEMPLATE_PARAM.findall(descriptor.path))
    declared = set(descriptor.request.path)
    for name in sorted(template_params - declared):
        yield f"path parameter {{{name}}} has no field in request.path @ $.request.path"
    for name in sorted(declared - template_params):
        yield f"field is not a parameter of the path template @ $.request.path.{name}"
    yield from _duplicate_names(descriptor)
    for location, fields in (*descriptor.request.locations(), ("header", descriptor.request.header)):
        files_allowed = location == "body" and descriptor.body_kind == "multipart"
        yield from _field_problems(fields, f"$.request.{location}", files_allowed)
    yield from _field_problems(descriptor.response, "$.response")
    yield from _idempotency_problems(descriptor)
    yield from _trait_problems(descriptor)


def _trait_problems(descriptor: Descriptor) -> Iterator[str]:
    """``fills`` and ``one_of`` name request fields; a ``one_of`` member is not required on its own; an
    ``encryption`` other than the default has request fields to encrypt (else it would be a trait nothing reads)."""
    fields = {name: f for _, group in descriptor.request.locations() for name, f in group.items()}
    if descriptor.encryption != PLATFORM_ENCRYPTION and not any_encrypted(fields):
        yield "encryption is stated, but no request field is marked encrypted @ $.encryption"
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


def _template_problems(path: str) -> Iterator[str]:
    """A template is URL path characters and ``{name}`` parameters, each name once (names fold to groups)."""
    if _PATH_CHARACTERS.fullmatch(path) is None:
        yield "the path may hold only URL path characters and {name} parameters @ $.path"
    if "{" in _TEMPLATE_PARAM.sub("", path) or "}" in _TEMPLATE_PARAM.sub("", path):
        yield "unbalanced '{' or '}' in the path @ $.path"
    seen: set[str] = set()
    for name in _TEMPLATE_PARAM.findall(path):
        if _PARAMETER_NAME.fullmatch(name) is None:
            yield f"path parameter {{{name}}} must be a name of letters, digits and _ @ $.path"
        elif name.lower() in seen:
            yield f"path parameter {{{name}}} appears twice @ $.path"
        seen.add(name.lower())


def _duplicate_names(descriptor: Descriptor) -> Iterator[str]:
    seen: dict[str, str] = {}
    for location, fields in descriptor.request.locations():
        for name in fields:
            if name in seen:
                yield f"field {name!r} is declared in both {seen[name]} and {location} @ $.request.{location}.{name}"
            seen[name] = location


def _field_problems(
    fields: Mapping[str, Field], path: str, files_allowed: bool = False, depth: int = 1
) -> Iterator[str]:
    for name, field in fields.items():
        here = f"{path}.{name}"
        if depth > MAX_FIELD_DEPTH:
            yield f"fields nested deeper than {MAX_FIELD_DEPTH} levels @ {here}"
            return  # and no deeper: a Python-built descriptor may be nested without bound
        if field.type == "array" and field.items is None:
            yield f"an array field needs 'items' @ {here}"
        if field.type != "object" and field.fields:
            yield f"'fields' is only for type object @ {here}"
        if field.type == "file" and not files_allowed:
            yield f"a file field belongs only at the top of a multipart body @ {here}"
        if field.encrypted and field.type != "string":
            yield f"only string fields can be encrypted @ {here}"
        if field.max_bytes is not None:
            yield from _size_problems(field, here)
        if field.pattern is not None:
            yield from _pattern_problem(field.pattern, here)
        yield from _value_problems(field, here)
        yield from _field_problems(field.fields, f"{here}.fields", depth=depth + 1)
        if field.items is not None:
            yield from _field_problems({"items": field.items}, here, depth=depth + 1)


def _size_problems(field: Field, path: str) -> Iterator[str]:
    """``max_bytes`` bounds a file's bytes: on any other type it would be a limit nothing reads."""
    if field.type != "file":
        yield f"'max_bytes' is only for type file @ {path}.max_bytes"
    elif field.max_bytes is not None and field.max_bytes < 1:
        yield f"max_bytes must be at least 1, got {field.max_bytes} @ {path}.max_bytes"


def _value_problems(field: Field, path: str) -> Iterator[str]:
    """Examples and enums are echoed into sandbox answers and limits compared with payload numbers."""
    for limit, value in (("minimum", field.minimum), ("maximum", field.maximum)):
        if value is not None and not math.isfinite(value):
            yield f"{limit} must be a finite number @ {path}.{limit}"
    example = field.example
    if example is not None and example.__class__ not in _PLAIN and (problem := _not_json(example)) is not None:
        yield f"example must be a JSON value, got {problem} @ {path}.example"
    for value in field.enum or ():
        if value.__class__ not in _PLAIN and (problem := _not_json(value)) is not None:
            yield f"enum must hold JSON values, got {problem} @ {path}.enum"
            break


_PLAIN = (str, int, bool)  # JSON values whatever their content: the common case, checked by class alone


def _not_json(value: Any) -> Optional[str]:
    """What keeps ``value`` from being a JSON value (a date, a NaN...), or None when it is one."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_YAML_DEPTH:
            return f"a value nested deeper than {MAX_YAML_DEPTH} levels"
        if isinstance(item, float) and not math.isfinite(item):
            return f"the non-finite number {item}"
        if isinstance(item, dict):
            if not all(isinstance(key, str) for key in item):
                return "an object with a key that is not a string"
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend((child, depth + 1) for child in item)
        elif item is not None and not isinstance(item, (str, int, float)):
            return type(item).__name__
    return None


def _pattern_problem(pattern: str, path: str) -> Iterator[str]:
    try:
        re.compile(pattern)
    except re.error as exc:
        yield f"pattern is not a valid regular expression ({exc}) @ {path}.pattern"
