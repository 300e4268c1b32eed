"""Importing the wechatpay-openapi catalogue: its per-endpoint YAML in, our descriptor files out.

``import_catalogue(source, out)`` reads the APIv3 part of TheNorthMemory/wechatpay-openapi (MIT;
``../shared/catalog/wechatpay-openapi``), writes one ``<canonical id>.yaml`` per operation and returns
an ``ImportReport``. From the root of a checkout, ``python -m tools.import_catalogue PATH [--out DIR]``
runs it from a shell.

Design decisions:

* **A developer tool, outside the installed package.** Only maintainers regenerate the built-in
  descriptors, so the importer is not in the wheel. What it shares with the APIv2 importer (the
  run over the files, the report, writing and stale-file removal, the command line, and the
  ``CatalogueError`` it raises) is ``tools.catalogue_common``; this module holds the mapping rules.

* **What the top folders mean.** The catalogue mirrors URLs the way the chainable SDKs address them
  (``$instance->v3->pay->...``): a file's path under the catalogue root *is* the URL path. ``v3/``
  holds the APIv3 paths; ``hk/`` holds the cross-border wallet API of 2020 served under
  ``https://api.mch.weixin.qq.com/hk/v3/...`` (merchant code calls ``/hk/v3/transactions/app``
  there); ``global/`` holds the 2020 customs-declaration API, ``/global/v3/customs/...`` (newer copies
  live in ``v3/global/customs``). So ``hk/v3/refunds.yaml`` is ``POST /hk/v3/refunds`` with id
  ``hk.v3.refunds.post``: the same id the host-prefix rule would give, with the URL WeChat Pay serves.
  ``v2/`` (the legacy XML API) is imported by ``tools.import_catalogue_v2``, with the rules of this
  module plus APIv2's traits; this importer leaves its ``v2.*`` descriptors alone. A host other than
  the default is a fact the catalogue states per operation,
  ``x-baseuri: https://apihk.mch.weixin.qq.com/``, which becomes ``host: hk``.
* **References are resolved eagerly**, before anything is mapped: ``$ref`` into ``definitions/`` or
  into the same file (``#Name`` and ``#/Name`` alike), recursively, with a trail of the references
  being expanded so a cycle is reported instead of recursing forever. A ``$ref`` with sibling keys
  is the target refined by the siblings (the local description and example win).
* **allOf merges**: properties in order, ``required`` lists joined, and ``enum`` lists joined too,
  because the catalogue uses allOf to *extend* an enumeration (``BillType`` + ``RECHARGE_REFUND``…;
  the lists it combines never overlap). Scalars: the first one stated wins.
* **Facts only.** Names, types, required, enums, limits, examples, the ``summary`` as ``title`` and a
  short ``label`` cut from a description (up to the first ``，。；;：:（(`` or line break, at most 24
  characters) are copied; prose never is. Every key the importer reads is in ``_CARRIED``; keys it
  knowingly leaves out are in ``_IGNORED`` with the reason (operation metadata such as tags, roles,
  update dates, ``deprecated`` and ``consumes``/``produces`` in ``_OPERATION_KEYS``); any other key
  lands in the report, so a new construct in the catalogue cannot slip through unnoticed.
* **Traits.** ``format: base64`` marks a field ``encrypted`` in a request whose parameters include
  the ``Wechatpay-Serial`` header, and in any answer. Multipart uploads (``formData``) become
  ``body: multipart`` with their file part (type ``file``) and ``meta`` as an object of the meta
  schema's fields. Header parameters (Wechatpay-Serial, Idempotency-Key, Accept-Encoding) go to
  ``request.header``; the lowest 2xx answer with a schema gives ``response`` (answer ``headers`` are
  left out: WeChat Pay's signature headers, which the verifier handles for every call, and the
  ``Wechatpay-Statement-Sha1`` digest of the two statement downloads).
* **Upload sizes.** A file part's ``max_bytes`` is the size WeChat Pay states for it, by one rule
  (``upload_limits``): the largest "大小不(能)超过 N M|KB" in the file parameter's or the
  operation's description. ``M`` is read as MiB and ``KB`` as KiB, the larger reading, so the
  engine never refuses a file WeChat Pay accepts; where the size depends on the format (images
  5M, PDFs 7.5M on ``/v3/merchant/media/upload``) the largest is carried, for the same reason.
  Where the catalogue states none, ``DOCUMENTED_UPLOAD_LIMITS`` gives the size stated on WeChat
  Pay's own page for that API, with the page. Every limit is reported (``trait:`` lines), with
  where it came from.
* **The catalogue's own conventions are read as meant**: a pattern written as a JavaScript literal
  (``/\\d{8}/``, delimiters dropped); the ``{empty}`` template variable it uses for a URL ending in
  ``/`` (the path keeps its trailing slash); header parameters without a type (text, as every HTTP
  header); and values YAML 1.1 typed against the field (an unquoted ``2018-06-08`` example read as a
  date, ``- 2401`` in a string enum read as a number) written back in the field's type.
* **Defects of the catalogue are repaired only where the meaning is plain, and every repair is
  listed** in ``ImportReport.repaired`` (never silently): ``require:`` for ``required:``; the type
  typos ``'string '``/``stringde``/``int``; a URL template variable declared in the query or body
  (moved to the path: the URL is authoritative), missing (added as a required string) or misnamed
  (the stray path parameter left out); fields written beside an empty ``properties:`` (read as its
  fields); an array without ``items`` typed by its string example. What cannot be repaired is left
  out and listed too: a pattern no regex engine compiles, a ``required`` name with no definition,
  field definitions written beside a non-empty ``properties``.
* **Which operations may be resent** (``idempotency``, read by the retry policy) is derived by one
  rule, ``idempotency_trait``: an operation declaring the ``Idempotency-Key`` header gets
  ``header``; otherwise the first *required* body field among ``BUSINESS_NUMBERS`` (numbers WeChat
  Pay de-duplicates a resend on, most specific first) is the ``key``, and the GET of the same host
  with that name as a path parameter sharing the most leading path segments (two at least) is the
  ``query`` that finds the outcome. Every grant is listed in the report (``idempotent:`` lines), so
  the whole list is reviewable with one run; GETs need no trait.
* **Checked, deterministic, re-runnable** (``tools.catalogue_common``): every descriptor is checked
  by the loader before it is written, in the catalogue's own field order, so the same input gives
  byte-identical files; stale ``*.yaml`` descriptors are deleted (never ``aliases.yaml`` or ``__init__.py``).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional, Sequence

import attrs
import yaml

from engine.registry import endpoint_id
from tools.catalogue_common import CHECKOUT_ENDPOINTS as CHECKOUT_ENDPOINTS  # the tests read it here
from tools.catalogue_common import (
    CatalogueError,
    Imported,
    ImportReport,
    Problem,
    Written,
    host_family,
    nearest,
    read_operations,
    run_importer,
    write_all,
)

TOP_FOLDERS = ("v3", "hk", "global")
METHODS = ("get", "post", "put", "patch", "delete")
HOSTS = {"https://apihk.mch.weixin.qq.com/": "hk"}
LABEL_LIMIT = 24

_YamlLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_TEMPLATE_VARIABLE = re.compile(r"{([^{}/]+)}")
_INTEGER = re.compile(r"-?(0|[1-9]\d*)")
_DECIMAL = re.compile(r"-?(0|[1-9]\d*)\.\d+")
_LABEL_END = re.compile(r"[，。；;：:（(\n]")
_TYPES = ("string", "integer", "number", "boolean", "object", "array", "file")
_TYPE_TYPOS = {"stringde": "string", "int": "integer"}
_LIMITS = (
    ("minLength", "min_length"),
    ("maxLength", "max_length"),
    ("minimum", "minimum"),
    ("maximum", "maximum"),
    ("minItems", "min_items"),
    ("maxItems", "max_items"),
)
# Keys of a schema or parameter the importer turns into descriptor data.
_CARRIED = frozenset(
    {"type", "required", "require", "enum", "pattern", "example", "description", "properties", "items", "format"}
    | {key for key, _ in _LIMITS}
    | {"name", "in", "schema"}
)
# Keys it knowingly leaves out, and why.
_IGNORED = {
    "default": "a value WeChat Pay assumes when the field is omitted; the engine never fills it in",
    "nullable": "the engine omits an absent optional field rather than sending null",
    "x-json": "the inner shape of a string that holds JSON text; the field travels as that string",
    "x-key": "part of x-json",
    "x-is-sensitive": "a list of names that also carry format: base64 (the encryption rule), or 'ciphertext' on "
    "an AEAD_AES_256_GCM resource object, which describes itself by algorithm/nonce/ciphertext",
    "title": "prose",
}
_KNOWN = _CARRIED | frozenset(_IGNORED)
# Operation keys that are metadata or prose, not part of the call.
_OPERATION_KEYS = frozenset(
    {"summary", "parameters", "responses", "x-baseuri"}
    | {"description", "tags", "tag", "x-role", "x-last-updated-at", "x-version", "deprecated", "consumes"}
    | {"produces", "x-is-sensitive"}
)
_ANSWER_KEYS = frozenset({"schema", "description", "headers"})  # headers: protocol headers and one digest
# Business numbers WeChat Pay de-duplicates a resent request on (the same number, the same request),
# most specific first: a refund also names the order it refunds, a profit-sharing order the payment.
BUSINESS_NUMBERS = (
    "combine_out_trade_no",
    "out_refund_no",
    "out_return_no",
    "out_bill_no",
    "out_batch_no",
    "out_order_no",
    "out_trade_no",
    "business_code",
    "out_request_no",
)
IDEMPOTENCY_HEADER = "Idempotency-Key"
# How WeChat Pay states an upload's size: "文件大小不能超过5M", "图片大小不超过2M", "文件大小不能超过200KB".
_STATED_SIZE = re.compile(r"大小不能?超过\s*(\d+(?:\.\d+)?)\s*(MB|M|KB|K)", re.IGNORECASE)
_SIZE_UNITS = {"M": 1 << 20, "MB": 1 << 20, "K": 1 << 10, "KB": 1 << 10}
# Upload sizes WeChat Pay's own API pages state where the catalogue states none: catalogue file ->
# (the page's statement of the size, read by the same rule, and the page).
DOCUMENTED_UPLOAD_LIMITS = {
    "v3/merchant/media/video_upload.yaml": (
        "文件大小不能超过5M",
        "https://pay.weixin.qq.com/wiki/doc/apiv3/wxpay/tool/chapter3_2.shtml",
    ),
    "v3/marketing/favor/media/image-upload.yaml": (
        "文件大小不能超过2M",
        "https://pay.weixin.qq.com/wiki/doc/apiv3/apis/chapter9_0_1.shtml",
    ),
}


# -- the public entry points -----------------------------------------------------------------------


def import_catalogue(source: Path, out: Path) -> ImportReport:
    """Write one descriptor per APIv3 operation of the catalogue at ``source`` into ``out``."""
    catalogue = _Catalogue(Path(source))
    report = ImportReport()
    produced: dict[str, tuple[str, str]] = {}  # id -> (file, operation): two operations must not share one

    def one(file: Path, method: str) -> Optional[Imported]:
        return _import_operation(catalogue, file, method, produced, report)

    imported = read_operations(catalogue.operation_files(), catalogue.methods, one, report)
    lookups = _lookups(imported)
    traited = ((c, _with_idempotency(raw, lookups, report, c), relative) for c, raw, relative in imported)
    report.removed = write_all(Path(out), traited)
    return report


def main_import(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m tools.import_catalogue PATH [--out DIR]``: import, print a summary line and the report."""
    return run_importer(
        import_catalogue,
        "python -m tools.import_catalogue",
        "Import the wechatpay-openapi catalogue as descriptor files; print a summary and the report.",
        "the wechatpay-openapi catalogue (the folder holding v3/)",
        argv,
    )


# -- one operation ---------------------------------------------------------------------------------


def _import_operation(
    catalogue: _Catalogue,
    file: Path,
    method: str,
    produced: dict[str, tuple[str, str]],
    report: ImportReport,
) -> Optional[Imported]:
    relative = catalogue.relative(file)
    path = _url_path(relative)
    context = _Context(relative, f"{method.upper()} {path}", report)
    operation = catalogue.resolve_operation(catalogue.document(file)[method], file, context)
    raw = _descriptor(operation, method, path, context)
    canonical = endpoint_id(method, path, raw.get("host"))
    if canonical in produced:
        context.unexpressed(f"id {canonical} is also the id of {' '.join(produced[canonical])}")
        return None
    produced[canonical] = (relative, context.operation)
    report.written.append(Written(canonical, context.operation, relative))
    return canonical, raw, relative


def _url_path(relative: str) -> str:
    """``hk/v3/refunds.yaml`` -> ``/hk/v3/refunds``; a trailing ``{empty}`` segment is a trailing slash."""
    path = "/" + relative.removesuffix(".yaml")
    return path[: -len("{empty}")] if path.endswith("/{empty}") else path


def _descriptor(operation: Mapping[str, Any], method: str, path: str, context: _Context) -> dict[str, Any]:
    context.check_keys(operation, _OPERATION_KEYS, "the operation")
    request, body_kind = _request(operation.get("parameters") or [], method, path, context)
    raw: dict[str, Any] = {"title": str(operation.get("summary", "")).strip(), "method": method.upper(), "path": path}
    host = host_family(operation, "x-baseuri", HOSTS, context.unexpressed)
    if host:
        raw["host"] = host
    if body_kind:
        raw["body"] = body_kind
    if request:
        upload_limits(operation, request, context)
        raw["request"] = request
    response = _response(operation.get("responses") or {}, context)
    if response:
        raw["response"] = response
    return raw


# -- requests --------------------------------------------------------------------------------------


def _request(parameters: list[Any], method: str, path: str, context: _Context) -> tuple[dict[str, Any], Optional[str]]:
    """The request locations, and ``body:`` when the method's default would be wrong."""
    context.encrypting = any(_is_serial_header(p) for p in parameters)
    locations: dict[str, dict[str, Any]] = {"path": {}, "query": {}, "header": {}, "body": {}}
    body_kind: Optional[str] = None
    for parameter in parameters:
        where = parameter.get("in")
        if where == "body":
            _add_all(locations, "body", _body_fields(parameter, context), context)
            body_kind = body_kind or ("json" if method in ("get", "delete") else None)
        elif where == "formData":
            _add_all(locations, "body", {parameter["name"]: _form_field(parameter, context)}, context)
            body_kind = "multipart"
        elif where in ("path", "query", "header"):
            _add_all(locations, where, {parameter["name"]: _parameter_field(parameter, context)}, context)
        else:
            context.unexpressed(f"parameter {parameter.get('name')!r} is in {where!r}")
    _reconcile_path(locations, path, context)
    return {k: v for k, v in locations.items() if v}, body_kind


def _reconcile_path(locations: dict[str, dict[str, Any]], path: str, context: _Context) -> None:
    """The URL template is authoritative: its variables, and only those, are path fields."""
    variables = _TEMPLATE_VARIABLE.findall(path)
    for name in [n for n in locations["path"] if n not in variables]:
        del locations["path"][name]
        context.repaired(f"path parameter {name!r} is not a variable of the URL template; left out")
    for name in variables:
        if name in locations["path"]:
            continue
        where = next((loc for loc in ("query", "header", "body") if name in locations[loc]), None)
        if where is None:
            locations["path"][name] = {"type": "string", "required": True}
            context.repaired(f"URL template variable {{{name}}} has no parameter; added as a required string")
        else:
            locations["path"][name] = _with_required(locations[where].pop(name), True)
            context.repaired(f"URL template variable {{{name}}} is declared in {where}; moved to path")


def upload_limits(operation: Mapping[str, Any], request: dict[str, Any], context: _Context) -> None:
    """Give each file part of ``request`` the size WeChat Pay states for it (``max_bytes``), in place."""
    for parameter in operation.get("parameters") or []:
        if parameter.get("in") != "formData" or parameter.get("type") != "file":
            continue
        stated = _stated_size(parameter.get("description"), operation.get("description"))
        size, source = (stated, "the catalogue") if stated is not None else _documented_size(context.file)
        if size is not None:
            request["body"][parameter["name"]]["max_bytes"] = size
            context.report.traits.append(f"{context.operation}: {parameter['name']} max_bytes {size} from {source}")


def _stated_size(*texts: Any) -> Optional[int]:
    """The largest upload size the texts state, in bytes; None when they state none."""
    found = [_STATED_SIZE.findall(text) for text in texts if isinstance(text, str)]
    return max((_in_bytes(number, unit) for sizes in found for number, unit in sizes), default=None)


def _documented_size(file: str) -> tuple[Optional[int], str]:
    if file not in DOCUMENTED_UPLOAD_LIMITS:
        return None, ""
    statement, page = DOCUMENTED_UPLOAD_LIMITS[file]
    return _stated_size(statement), page


def _in_bytes(number: str, unit: str) -> int:
    """``7.5`` ``M`` -> 7864320: binary units, the larger reading of WeChat Pay's M and KB."""
    return int(Fraction(number) * _SIZE_UNITS[unit.upper()])


def _is_serial_header(parameter: Mapping[str, Any]) -> bool:
    return parameter.get("in") == "header" and str(parameter.get("name", "")).lower() == "wechatpay-serial"


def _add_all(locations: dict[str, dict[str, Any]], where: str, fields: dict[str, Any], context: _Context) -> None:
    for name, field in fields.items():
        clash = next((loc for loc, existing in locations.items() if name in existing), None)
        if clash is not None:
            context.unexpressed(f"field {name!r} is declared in both {clash} and {where}")
            continue
        locations[where][name] = field


def _body_fields(parameter: Mapping[str, Any], context: _Context) -> dict[str, Any]:
    context.check_keys(parameter, _KNOWN, "the body parameter")
    schema = parameter.get("schema") or {}
    if _type_of(schema, context, "$body") != "object":
        context.unexpressed(f"the body is a {schema.get('type')}, not an object of fields")
        return {}
    return _object_fields(schema, context, "$body", request=True)


def _parameter_field(parameter: Mapping[str, Any], context: _Context) -> dict[str, Any]:
    where = f"${parameter.get('in')}.{parameter.get('name')}"
    if parameter.get("in") == "header" and "type" not in parameter:
        parameter = {**parameter, "type": "string"}  # an HTTP header value is text
    field = _field(parameter, context, where, request=True)
    return _with_required(field, _parameter_required(parameter, context))


def _form_field(parameter: Mapping[str, Any], context: _Context) -> dict[str, Any]:
    """A multipart part: the file, ``meta`` (described by its ``schema``) or a plain value."""
    where = f"$formData.{parameter.get('name')}"
    schema = parameter.get("schema")
    if isinstance(schema, Mapping):
        described = {**schema, "description": parameter.get("description", schema.get("description"))}
        field = _field(described, context, where, request=True)
        context.check_keys(parameter, _KNOWN, where)
    else:
        field = _field(parameter, context, where, request=True)
    return _with_required(field, _parameter_required(parameter, context))


def _parameter_required(parameter: Mapping[str, Any], context: _Context) -> bool:
    if "require" in parameter and "required" not in parameter:
        context.repaired(f"parameter {parameter.get('name')!r} says 'require:'; read as 'required:'")
        return bool(parameter["require"])
    return bool(parameter.get("required", False))


def _with_required(field: dict[str, Any], required: bool) -> dict[str, Any]:
    if not required:
        return field
    return {"type": field["type"], "required": True, **{k: v for k, v in field.items() if k != "type"}}


# -- responses -------------------------------------------------------------------------------------


def _response(responses: Mapping[Any, Any], context: _Context) -> dict[str, Any]:
    """The fields of the lowest 2xx answer that has a schema with properties."""
    for code in sorted(responses, key=str):
        answer = responses[code] or {}
        context.check_keys(answer, _ANSWER_KEYS, f"the {code} answer")
        schema = answer.get("schema") or {}
        if str(code).startswith("2") and schema.get("properties"):
            return _object_fields(schema, context, "$response", request=False)
    return {}


# -- fields ----------------------------------------------------------------------------------------


def _object_fields(schema: Mapping[str, Any], context: _Context, where: str, request: bool) -> dict[str, Any]:
    required = schema.get("required") if isinstance(schema.get("required"), list) else []
    properties = schema.get("properties") or {}
    fields: dict[str, Any] = {}
    for name, sub in properties.items():
        field = _field(sub if isinstance(sub, Mapping) else {}, context, f"{where}.{name}", request)
        fields[str(name)] = _with_required(field, name in required)
    for name in required:
        if name not in properties:
            context.repaired(f"required field {name!r} has no definition; left out @ {where}")
    return fields


def _field(schema: Mapping[str, Any], context: _Context, where: str, request: bool) -> dict[str, Any]:
    """One descriptor field, keys in a fixed order, defaults left out."""
    context.check_keys(schema, _KNOWN, where)
    kind = _type_of(schema, context, where)
    field: dict[str, Any] = {"type": kind}
    if _encrypted(schema, kind, context, where, request):
        field["encrypted"] = True
    field.update(_constraints(schema, kind, context, where))
    label = short_label(schema.get("description"))
    if label:
        field["label"] = label
    if schema.get("example") is not None:
        field["example"] = _typed(_plain(schema["example"]), kind)
    if kind == "object" and schema.get("properties"):
        field["fields"] = _object_fields(schema, context, where, request)
    if kind == "array":
        field["items"] = _items(schema, context, where, request)
    return field


def _items(schema: Mapping[str, Any], context: _Context, where: str, request: bool) -> dict[str, Any]:
    """The element field of an array; an array stated without ``items`` takes its example's type."""
    if isinstance(schema.get("items"), Mapping):
        return _field(schema["items"], context, f"{where}[]", request)
    example = schema.get("example")
    values = example if isinstance(example, list) else [example]
    if example is not None and all(isinstance(v, str) for v in values):
        context.repaired(f"array without 'items'; elements typed string after its example @ {where}")
        return {"type": "string"}
    context.unexpressed(f"array without 'items' or an example to type them by @ {where}")
    return {"type": "string"}


def _type_of(schema: Mapping[str, Any], context: _Context, where: str) -> str:
    """The field type: stated (typos normalised), else implied by properties, items or enum values."""
    stated = schema.get("type")
    if isinstance(stated, str):
        kind = _TYPE_TYPOS.get(stated.strip(), stated.strip())
        if kind != stated:
            context.repaired(f"type {stated!r} read as {kind!r} @ {where}")
        if kind in _TYPES:
            return kind
        context.unexpressed(f"type {stated!r} @ {where}")
        return "string"
    if schema.get("properties") is not None:
        return "object"
    if "items" in schema:
        return "array"
    enum = schema.get("enum") or []
    if enum and all(isinstance(v, str) for v in enum):
        return "string"
    context.unexpressed(f"no type @ {where}")
    return "string"


def _encrypted(schema: Mapping[str, Any], kind: str, context: _Context, where: str, request: bool) -> bool:
    if not context.ciphers or schema.get("format") != "base64" or (request and not context.encrypting):
        return False
    if kind != "string":
        context.unexpressed(f"format base64 on a {kind} field cannot be encrypted @ {where}")
        return False
    return True


def _constraints(schema: Mapping[str, Any], kind: str, context: _Context, where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(schema.get("enum"), list):
        out["enum"] = [_typed(_plain(v), kind) for v in schema["enum"]]
    for theirs, ours in _LIMITS:
        if schema.get(theirs) is not None:
            out[ours] = schema[theirs]
    pattern = _pattern(schema.get("pattern"), context, where)
    if pattern is not None:
        out["pattern"] = pattern
    return _ordered(out)


def _ordered(constraints: dict[str, Any]) -> dict[str, Any]:
    order = ("enum", "min_length", "max_length", "minimum", "maximum", "pattern", "min_items", "max_items")
    return {key: constraints[key] for key in order if key in constraints}


def _pattern(pattern: Any, context: _Context, where: str) -> Optional[str]:
    """The pattern as a Python regex (JavaScript ``/…/`` delimiters dropped), or None if it cannot compile."""
    if pattern is None:
        return None
    text = str(pattern)
    if len(text) > 1 and text.startswith("/") and text.endswith("/"):
        text = text[1:-1]
    try:
        re.compile(text)
    except re.error as exc:
        context.repaired(f"pattern {pattern} does not compile ({exc}); left out @ {where}")
        return None
    return text


def short_label(description: Any) -> str:
    """The description up to its first ``，。；;：:（(`` or line break, at most 24 characters."""
    if not isinstance(description, str):
        return ""
    return _LABEL_END.split(description.strip(), maxsplit=1)[0].strip()[:LABEL_LIMIT].strip()


def _typed(value: Any, kind: str) -> Any:
    """A scalar YAML typed otherwise, in the field's type when nothing is lost: ``- 2401`` of a string enum."""
    if kind == "string" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if kind in ("integer", "number") and isinstance(value, str) and _INTEGER.fullmatch(value):
        return int(value)
    if kind == "number" and isinstance(value, str) and _DECIMAL.fullmatch(value):
        return float(value)
    return value


def _plain(value: Any) -> Any:
    """A value as the catalogue's author wrote it: YAML 1.1 dates back to their text."""
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


# -- reading the catalogue -------------------------------------------------------------------------


def _is_schema(value: Any) -> bool:
    return isinstance(value, Mapping) and any(key in value for key in ("type", "properties", "$ref", "allOf"))


@attrs.define
class _Context:
    """Where the importer is (file, operation) and where its findings go."""

    file: str
    operation: str
    report: ImportReport
    encrypting: bool = False
    also_known: frozenset[str] = frozenset()  # keys another family's importer knowingly leaves out
    ciphers: bool = True  # whether format: base64 means APIv3's field encryption (not in APIv2)

    def unexpressed(self, reason: str) -> None:
        self.report.unexpressed.append(Problem(self.file, self.operation, reason))

    def repaired(self, reason: str) -> None:
        self.report.repaired.append(Problem(self.file, self.operation, reason))

    def check_keys(self, node: Mapping[str, Any], known: frozenset[str], where: str) -> None:
        for key, value in node.items():
            if key in known or key in self.also_known:
                continue
            if _is_schema(value):
                self.repaired(f"field {key!r} is written beside 'properties', not in it; left out @ {where}")
            else:
                self.unexpressed(f"unknown key {key!r} @ {where}")


class _Catalogue:
    """The catalogue's files, parsed once each (memoised on the instance), and reference resolution."""

    def __init__(self, root: Path) -> None:
        if not all((root / top).is_dir() for top in TOP_FOLDERS):
            raise CatalogueError(f"{root} is not the wechatpay-openapi catalogue (no {'/, '.join(TOP_FOLDERS)}/)")
        self.root = root
        self._documents: dict[Path, Any] = {}

    def operation_files(self) -> Iterator[Path]:
        for top in TOP_FOLDERS:
            yield from sorted((self.root / top).rglob("*.yaml"), key=lambda p: p.relative_to(self.root).as_posix())

    def relative(self, file: Path) -> str:
        return file.relative_to(self.root).as_posix()

    def methods(self, file: Path) -> list[str]:
        document = self.document(file)
        return [m for m in METHODS if isinstance(document, Mapping) and m in document]

    def document(self, file: Path) -> Any:
        key = Path(os.path.normpath(file))
        if key not in self._documents:
            try:
                self._documents[key] = yaml.load(key.read_bytes(), Loader=_YamlLoader)
            except (OSError, yaml.YAMLError) as exc:
                raise CatalogueError(f"cannot read {key}: {exc}") from None
        return self._documents[key]

    def resolve_operation(self, operation: Mapping[str, Any], file: Path, context: _Context) -> dict[str, Any]:
        """The operation with every ``$ref`` in its parameters and answers resolved and ``allOf`` merged."""
        resolver = _Resolver(self, context)
        answers = operation.get("responses") or {}
        return {
            **operation,
            "parameters": [resolver.node(p, file, ()) for p in operation.get("parameters") or []],
            "responses": {code: resolver.node(answer or {}, file, ()) for code, answer in answers.items()},
        }


class _Resolver:
    """Expands references depth-first; ``trail`` holds the references being expanded (cycle guard)."""

    _SUBSCHEMAS = ("items", "schema", "allOf")

    def __init__(self, catalogue: _Catalogue, context: _Context) -> None:
        self.catalogue = catalogue
        self.context = context

    def node(self, node: Any, file: Path, trail: tuple[str, ...]) -> Any:
        if isinstance(node, list):
            return [self.node(item, file, trail) for item in node]
        if not isinstance(node, Mapping):
            return node
        out = {key: self._child(key, value, file, trail) for key, value in self._adopt(node).items() if key != "$ref"}
        if "$ref" in node:
            out = _merge(out, self._target(str(node["$ref"]), file, trail), self.context)
        for part in out.pop("allOf", None) or []:
            out = _merge(out, part, self.context)
        return out

    def _adopt(self, node: Mapping[str, Any]) -> Mapping[str, Any]:
        """An empty ``properties:`` with the fields written beside it: those fields are its properties."""
        if "properties" not in node or node["properties"]:
            return node
        strays = {k: v for k, v in node.items() if k not in _KNOWN and _is_schema(v)}
        if not strays:
            return node
        self.context.repaired(f"fields {', '.join(strays)} written beside an empty 'properties:'; read as its fields")
        return {**{k: v for k, v in node.items() if k not in strays}, "properties": strays}

    def _child(self, key: str, value: Any, file: Path, trail: tuple[str, ...]) -> Any:
        if key == "properties" and isinstance(value, Mapping):
            return {name: self.node(sub, file, trail) for name, sub in value.items()}
        if key in self._SUBSCHEMAS:
            return self.node(value, file, trail)
        return value

    def _target(self, ref: str, file: Path, trail: tuple[str, ...]) -> dict[str, Any]:
        target_file, pointer = self._locate(ref, file)
        key = f"{self.catalogue.relative(target_file)}#{pointer}"
        try:
            target = self._follow(self.catalogue.document(target_file), pointer)
        except (KeyError, TypeError, CatalogueError):
            self.context.unexpressed(f"$ref {ref} does not resolve")
            return {}
        if key in trail:  # a recursive shape: cut it at the repeat, keeping what the target says of itself
            self.context.unexpressed(f"$ref cycle {' -> '.join((*trail, key))}")
            cut = target if isinstance(target, Mapping) else {}
            return {k: v for k, v in cut.items() if k not in ("properties", "items", "allOf", "$ref")}
        resolved = self.node(target, target_file, (*trail, key))
        return resolved if isinstance(resolved, dict) else {}

    def _locate(self, ref: str, file: Path) -> tuple[Path, str]:
        target, _, pointer = ref.partition("#")
        target_file = Path(os.path.normpath(file.parent / target)) if target else file
        return target_file, pointer.strip("/")

    @staticmethod
    def _follow(document: Any, pointer: str) -> Any:
        node = document
        for part in pointer.split("/") if pointer else ():
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node


def _merge(first: dict[str, Any], second: Any, context: _Context) -> dict[str, Any]:
    """``first`` refined by ``second`` (both resolved schemas); see the module docstring for the rules."""
    if not isinstance(second, Mapping):
        return first
    out = dict(first)
    for key, value in second.items():
        if out.get(key) is None:
            out[key] = value
        elif key == "properties" and isinstance(value, Mapping):
            out[key] = _merge_properties(out[key], value, context)
        elif key in ("required", "enum") and isinstance(value, list) and isinstance(out[key], list):
            out[key] = [*out[key], *(v for v in value if v not in out[key])]
        elif key == "items":
            out[key] = _merge(out[key], value, context)
        elif key == "type" and str(value).strip() != str(out[key]).strip():
            context.unexpressed(f"allOf/$ref combines type {out[key]} with type {value}")
    return out


def _merge_properties(first: Mapping[str, Any], second: Mapping[str, Any], context: _Context) -> dict[str, Any]:
    out = dict(first)
    for name, schema in second.items():
        out[name] = _merge(out[name], schema, context) if isinstance(out.get(name), dict) else schema
    return out


# -- idempotency -----------------------------------------------------------------------------------


def _lookups(imported: list[Imported]) -> list[tuple[str, str, Optional[str]]]:
    """(id, path, host) of every GET: the operations that can find an object by a number in their path."""
    return [(canonical, raw["path"], raw.get("host")) for canonical, raw, _ in imported if raw["method"] == "GET"]


def _with_idempotency(
    raw: dict[str, Any], lookups: list[tuple[str, str, Optional[str]]], report: ImportReport, canonical: str
) -> dict[str, Any]:
    """``raw`` with its ``idempotency`` trait (after ``body``/``host``), when the rule grants one."""
    trait = idempotency_trait(raw, lookups)
    if trait is None:
        return raw
    report.idempotent.append(f"{canonical}: {', '.join(f'{k}={v}' for k, v in trait.items())}")
    ordered = {k: v for k, v in raw.items() if k in ("title", "method", "path", "host", "body")}
    return {**ordered, "idempotency": trait, **{k: v for k, v in raw.items() if k not in ordered}}


Lookups = list[tuple[str, str, Optional[str]]]


def idempotency_trait(raw: Mapping[str, Any], lookups: Lookups) -> Optional[dict[str, str]]:
    """The one rule: which operations WeChat Pay treats a resend of as the same request.

    A GET needs no trait. An operation whose request declares the ``Idempotency-Key`` header gets
    ``header``. Otherwise, a required body field named in ``BUSINESS_NUMBERS`` (the first one listed,
    when there are several) is the ``key``, and the GET of the same host whose path template has that
    name as a parameter and shares the most leading path segments (at least two) is the ``query``.
    """
    if raw["method"] == "GET":
        return None
    request = raw.get("request") or {}
    if IDEMPOTENCY_HEADER in (request.get("header") or {}):
        return {"header": IDEMPOTENCY_HEADER}
    body = request.get("body") or {}
    for name in BUSINESS_NUMBERS:
        if (body.get(name) or {}).get("required"):
            query = _query_for(name, raw["path"], raw.get("host"), lookups)
            return {"key": name, **({"query": query} if query else {})}
    return None


def _query_for(name: str, path: str, host: Optional[str], lookups: Lookups) -> Optional[str]:
    """The GET of ``host`` with ``{name}`` in its path nearest ``path``, sharing two segments at least."""
    candidates = ((canonical, candidate) for canonical, candidate, on in lookups if on == host)
    return nearest(path, ((c, p) for c, p in candidates if f"{{{name}}}" in p), at_least=2)


if __name__ == "__main__":
    sys.exit(main_import(sys.argv[1:]))
