"""Importing the APIv2 part of the wechatpay-openapi catalogue: its ``v2/`` folder in, ``v2.*`` descriptors out.

``import_catalogue_v2(source, out)`` reads ``v2/`` of TheNorthMemory/wechatpay-openapi (MIT;
``../shared/catalog/wechatpay-openapi``), writes one ``v2.<path>.<method>.yaml`` per operation and
returns an ``ImportReport``; ``python -m tools.import_catalogue_v2 PATH [--out DIR]`` runs it from a
shell. Like the APIv3 importer it is a developer tool outside the package, writing into the
checkout's ``endpoints/`` by default.

Design decisions:

* **The same rules as APIv3** (``tools.import_catalogue``, and the run both share,
  ``tools.catalogue_common``): references resolved and ``allOf`` merged by the same resolver,
  fields mapped by the same functions (names, types, required, enums, limits, examples, the summary
  as ``title`` and a short ``label``; never prose), every key either carried or knowingly left out
  (``V2_IGNORED``, with the reason), every descriptor checked by the loader before it is written,
  output deterministic, stale ``v2.*`` files removed (and nothing else).
* **Paths and ids.** ``v2/pay/micropay.yaml`` is ``POST /pay/micropay``: APIv2 URLs carry no
  ``/v2`` (the folder names the protocol, as the chainable SDKs' ``$instance->v2->pay->micropay``
  does), and the id is ``v2.pay.micropay.post`` (``engine.registry``'s rule for protocol families).
* **Traits, each from a fact the catalogue states:**
  - ``protocol: v2``; ``body: xml`` for a body parameter, ``multipart`` for ``formData`` (the one
    upload), none for the GETs whose fields travel in the query string;
  - ``host``: ``x-base-uri`` (``fraud.mch.weixin.qq.com`` -> ``fraud``, ``payapp.weixin.qq.com``
    -> ``payapp``, ``payapp.mch.weixin.qq.com`` -> ``payapp_mch``);
  - ``client_certificate``: ``x-api-cert-required: true``;
  - ``signed_answer: false`` when the documented answer has no ``sign`` field (the red packets,
    transfers, bills...: the same list as php ``src/ClientXmlTrait.php``'s ``$noneSignatureRespond``,
    which the report lets a reviewer compare);
  - ``redirect`` when the only documented answer is a 3xx (``appauth/authindex``);
  - ``fills``, by field name: the merchant id (``mch_id``, else ``mchid``, else ``combine_mch_id``)
    and the app id (``appid``, ``mch_appid``, ``wxappid``, ``combine_appid``: written only when the
    engine has ``appid``), ``nonce_str``, ``timestamp``, an upload's ``media_hash``, ``sign_type``
    and ``sign``;
  - ``max_bytes`` on the upload's file part: the APIv3 rule (``upload_limits``);
  - ``idempotency``: the APIv3 rule's business numbers plus APIv2's own (``mch_billno`` of red
    packets, ``partner_trade_no`` of transfers), required or one of a group, with the lookup
    operation that finds the outcome by that number (a query whose last segment is one of
    ``LOOKUPS[number]`` and that takes the number, sharing the most leading path segments).
* **One of.** The catalogue marks ``transaction_id`` *and* ``out_trade_no`` required where WeChat
  Pay documents "二选一" (and four numbers where it documents "四选一"). That fact is not in the
  catalogue, so ``ONE_OF`` states it per operation, from the official APIv2 pages (查询订单, 申请退款,
  查询退款, 撤销订单 and their deposit/sandbox twins); the importer makes each group's members optional
  and writes ``one_of``, which validation enforces as "exactly one". Every application is reported.
* **Defects of the APIv2 part, repaired where the meaning is plain and listed** (``repaired``): a
  ``type`` that is an example value (``type: '20150806125346'``) is read as a string with that
  example; ``uint``/``uint32``/``uint64`` as integer; ``depracted`` is ignored like ``deprecated``;
  a ``sign`` limited to 32 characters loses the limit where HMAC-SHA256 is allowed (its sign has 64),
  and a ``sign_type`` limited to fewer characters than ``HMAC-SHA256`` loses it too; ``err_code``
  and its kin, which only FAIL answers carry, are never required of an answer.
* **Encrypted fields, by a stated fact.** ``format: base64`` alone does not say which key an APIv2
  field is encrypted with, and the part uses several: ``pay_bank``'s ``enc_bank_no`` and
  ``enc_true_name`` take the RSA key ``risk/getpublickey`` answers (RSA-OAEP, SHA-1, MGF1-SHA-1: the
  official page 获取RSA加密公钥API), while ``mchrisk/querymchrisk``'s take a platform certificate
  named in its own ``cert_serial_number`` body field. So ``ENCRYPTED_WITH`` states the key per
  operation, from the official pages, as ``ONE_OF`` states groups: the listed operations' base64
  string fields are marked ``encrypted`` and get ``encryption`` (``{key: pay_bank, scheme:
  RSA-OAEP-SHA1}``); base64 fields of any other operation stay plain strings, and the report's
  traits list them for a reviewer.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from engine.registry import endpoint_id
from tools.catalogue_common import (
    CatalogueError,
    Imported,
    ImportReport,
    Written,
    host_family,
    nearest,
    read_operations,
    run_importer,
    write_all,
)
from tools.import_catalogue import (
    _OPERATION_KEYS,
    BUSINESS_NUMBERS,
    _Catalogue,
    _Context,
    _request,
    _response,
    upload_limits,
)

TOP_FOLDER = "v2"
ID_PREFIX = "v2."
HOSTS = {
    "https://fraud.mch.weixin.qq.com/": "fraud",
    "https://payapp.weixin.qq.com/": "payapp",
    "https://payapp.mch.weixin.qq.com/": "payapp_mch",
}
# Keys of APIv2 operations and schemas left out knowingly, and why.
V2_IGNORED = {
    "xml": "the XML element name (the root is always <xml>) and CDATA wrapping: the codec writes every value as "
    "escaped text, which any XML reader reads back identically",
    "x-urlencode": "the inner shape of a string holding URL-encoded text; the field travels as that string",
    "x-verison": "a version date (metadata, misspelt in the catalogue)",
    "depracted": "a deprecation flag (metadata, misspelt in the catalogue)",
}
_TYPE_NAMES = ("string", "integer", "number", "boolean", "object", "array", "file", "stringde", "int")
_TYPE_REPAIRS = {"uint": "integer", "uint32": "integer", "uint64": "integer"}
HMAC_SIGN_LENGTH = 64
FAILURE_FIELDS = ("err_code", "err_code_des", "error_code", "error_code_des")
V2_OPERATION_KEYS = _OPERATION_KEYS | {"x-base-uri", "x-api-cert-required", "x-verison"}
MERCHANT_FIELDS = ("mch_id", "mchid", "combine_mch_id")
APP_FIELDS = ("appid", "mch_appid", "wxappid", "combine_appid")
FIXED_FILLS = {"nonce_str": "nonce", "timestamp": "timestamp", "sign_type": "sign_type", "sign": "signature"}
# Which key encrypts an operation's format: base64 request fields, by URL path (official APIv2 pages).
ENCRYPTED_WITH = {"/mmpaysptrans/pay_bank": {"key": "pay_bank", "scheme": "RSA-OAEP-SHA1"}}  # 获取RSA加密公钥API
FILE_DIGEST = "media_hash"  # secapi/mch/uploadmedia: the lower-case MD5 of the media part
# Business numbers WeChat Pay de-duplicates an APIv2 resend on: APIv3's, plus red packets' and transfers'.
V2_BUSINESS_NUMBERS = (*BUSINESS_NUMBERS, "mch_billno", "partner_trade_no")
LOOKUPS = {
    "out_trade_no": ("orderquery", "queryorder", "paporderquery"),
    "out_refund_no": ("refundquery", "refundqueryv2"),
    "mch_billno": ("gethbinfo",),
    "partner_trade_no": ("gettransferinfo", "query_bank"),
}
ORDER = ("transaction_id", "out_trade_no")
REFUND = ("refund_id", "out_refund_no", "transaction_id", "out_trade_no")
# "二选一"/"四选一" of the official APIv2 pages, by URL path.
ONE_OF: dict[str, tuple[tuple[str, ...], ...]] = {
    **{path: (ORDER,) for path in (
        "/pay/orderquery", "/pay/facepayquery", "/sandboxnew/pay/orderquery", "/xdc/apiv2sandbox/pay/orderquery",
        "/deposit/orderquery", "/pay/paporderquery", "/pay/partner/paporderquery", "/transit/queryorder",
        "/transit/partnerpay/queryorder", "/secapi/pay/refund", "/secapi/pay/refundv2", "/sandboxnew/pay/refund",
        "/deposit/refund", "/secapi/pay/reverse", "/secapi/pay/facepayreverse", "/deposit/reverse",
    )},
    **{path: (REFUND,) for path in (
        "/pay/refundquery", "/pay/refundqueryv2", "/sandboxnew/pay/refundquery", "/deposit/refundquery",
    )},
}  # fmt: skip


def import_catalogue_v2(source: Path, out: Path) -> ImportReport:
    """Write one descriptor per APIv2 operation of the catalogue at ``source`` into ``out``."""
    catalogue = _Catalogue(Path(source))
    if not (Path(source) / TOP_FOLDER).is_dir():
        raise CatalogueError(f"{source} has no {TOP_FOLDER}/ folder")
    report = ImportReport()
    files = sorted((Path(source) / TOP_FOLDER).rglob("*.yaml"), key=lambda p: p.as_posix())

    def one(file: Path, method: str) -> Imported:
        return _import_operation(catalogue, file, method, report)

    imported = read_operations(files, catalogue.methods, one, report)
    for canonical, raw, _ in imported:  # every operation is read first: a lookup may come later in the walk
        _with_lookup(raw, imported, report, canonical)
    report.removed = write_all(Path(out), imported, ID_PREFIX)
    return report


def main_import(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m tools.import_catalogue_v2 PATH [--out DIR]``: import, print a summary and the report."""
    return run_importer(
        import_catalogue_v2,
        "python -m tools.import_catalogue_v2",
        "Import the APIv2 part of the wechatpay-openapi catalogue as v2.* descriptor files.",
        "the wechatpay-openapi catalogue (the folder holding v2/)",
        argv,
    )


def _import_operation(catalogue: _Catalogue, file: Path, method: str, report: ImportReport) -> Imported:
    relative = catalogue.relative(file)
    path = "/" + relative.removeprefix(f"{TOP_FOLDER}/").removesuffix(".yaml")
    known = frozenset(V2_IGNORED)
    context = _Context(relative, f"{method.upper()} {path}", report, also_known=known, ciphers=False)
    operation = catalogue.resolve_operation(catalogue.document(file)[method], file, context)
    _repair_types(operation, context, "$")
    raw = _descriptor(operation, method, path, context)
    canonical = endpoint_id(method, path, raw.get("host"), "v2")
    report.written.append(Written(canonical, context.operation, relative))
    return canonical, raw, relative


def _descriptor(operation: Mapping[str, Any], method: str, path: str, context: _Context) -> dict[str, Any]:
    context.check_keys(operation, V2_OPERATION_KEYS, "the operation")
    request, body_kind = _request(operation.get("parameters") or [], method, path, context)
    response = _response(operation.get("responses") or {}, context)
    raw: dict[str, Any] = {"title": str(operation.get("summary", "")).strip(), "method": method.upper(), "path": path}
    raw["protocol"] = "v2"
    host = host_family(operation, "x-base-uri", HOSTS, context.unexpressed)
    if host:
        raw["host"] = host
    raw["body"] = "xml" if body_kind is None and method != "get" else body_kind or "none"
    if operation.get("x-api-cert-required"):
        raw["client_certificate"] = True
    if "sign" not in response:
        raw["signed_answer"] = False
        context.report.traits.append(f"{path}: signed_answer false")
    if _redirects(operation):
        raw["redirect"] = True
    encrypted = _base64_fields(operation, request, context)
    if encrypted and path in ENCRYPTED_WITH:
        _mark_encrypted(request, encrypted)
        raw["encryption"] = dict(ENCRYPTED_WITH[path])
        context.report.traits.append(f"{path}: {', '.join(encrypted)} encrypted with {ENCRYPTED_WITH[path]['key']}")
    elif encrypted:
        context.report.traits.append(f"{path}: format base64 on {', '.join(encrypted)}, no stated key: left plain")
    fields = {name: field for location in request.values() for name, field in location.items()}
    fills = _fills(fields)
    _lift_sign_limit(fields, fills, context)
    _failure_fields_optional(response, context)
    if fills:
        raw["fills"] = fills
    groups = _one_of(path, request, context)
    if groups:
        raw["one_of"] = [list(group) for group in groups]
    if request:
        upload_limits(operation, request, context)
        raw["request"] = request
    if response:
        raw["response"] = response
    return raw


def _base64_fields(operation: Mapping[str, Any], request: dict[str, Any], context: _Context) -> list[str]:
    """The XML body's string fields the catalogue marks ``format: base64``."""
    body = request.get("body") or {}
    names: list[str] = []
    for parameter in operation.get("parameters") or []:
        properties = (parameter.get("schema") or {}).get("properties") or {} if parameter.get("in") == "body" else {}
        for name, schema in properties.items():
            if not isinstance(schema, Mapping) or schema.get("format") != "base64" or name not in body:
                continue
            if body[name].get("type") == "string":
                names.append(str(name))
            else:
                context.unexpressed(f"format base64 on a {body[name].get('type')} field cannot be encrypted @ $.{name}")
    return names


def _mark_encrypted(request: dict[str, Any], names: list[str]) -> None:
    body = request["body"]
    for name in names:
        body[name] = _with_encrypted(body[name])


def _with_encrypted(field: dict[str, Any]) -> dict[str, Any]:
    """``field`` with ``encrypted: true`` where the APIv3 importer writes it: after ``type`` and ``required``."""
    items = list(field.items())
    at = 2 if "required" in field else 1
    return dict([*items[:at], ("encrypted", True), *items[at:]])


def _repair_types(node: Any, context: _Context, where: str) -> None:
    """Types that are not types (in place): ``uint64`` an integer, an example value a string example."""
    if isinstance(node, list):
        for index, item in enumerate(node):
            _repair_types(item, context, f"{where}[{index}]")
        return
    if not isinstance(node, dict):
        return
    stated = node.get("type")
    if isinstance(stated, str) and stated.strip() not in _TYPE_NAMES:
        if stated in _TYPE_REPAIRS:
            node["type"] = _TYPE_REPAIRS[stated]
            context.repaired(f"type {stated!r} read as integer @ {where}")
        else:
            node["type"] = "string"
            node.setdefault("example", stated)
            context.repaired(f"type {stated!r} is an example value; read as a string with that example @ {where}")
    for key, value in node.items():
        if key not in ("example", "enum", "x-json", "x-urlencode"):
            _repair_types(value, context, f"{where}.{key}")


def _lift_sign_limit(fields: Mapping[str, Any], fills: Mapping[str, str], context: _Context) -> None:
    """An operation that accepts HMAC-SHA256 takes 64-character signs, whatever the catalogue's limit says."""
    sign_type = next((fields[name] for name, kind in fills.items() if kind == "sign_type"), None)
    if sign_type is None or "HMAC-SHA256" not in sign_type.get("enum", ["HMAC-SHA256"]):
        return  # MD5 only: 32 characters is right
    for name, kind in fills.items():
        limit = fields[name].get("max_length")
        if kind == "signature" and limit is not None and limit < HMAC_SIGN_LENGTH:
            del fields[name]["max_length"]
            context.repaired(f"{name} has max_length {limit}, under an HMAC-SHA256 sign's 64; limit left out")
        longest = max((len(str(v)) for v in fields[name].get("enum", ())), default=0)
        if kind == "sign_type" and limit is not None and limit < longest:
            del fields[name]["max_length"]
            context.repaired(f"{name} has max_length {limit}, under its own enum's {longest}; limit left out")


def _failure_fields_optional(response: dict[str, Any], context: _Context) -> None:
    """``err_code`` and its kin are in FAIL answers only, whatever a success schema's ``required`` says."""
    for name in FAILURE_FIELDS:
        if (response.get(name) or {}).get("required"):
            response[name] = {k: v for k, v in response[name].items() if k != "required"}
            context.repaired(f"answer field {name} is required, but only FAIL answers carry it; made optional")


def _redirects(operation: Mapping[str, Any]) -> bool:
    codes = [str(code) for code in operation.get("responses") or {}]
    return bool(codes) and all(code.startswith("3") for code in codes)


def _fills(fields: Mapping[str, Any]) -> dict[str, str]:
    fills: dict[str, str] = {}
    merchant = next((name for name in MERCHANT_FIELDS if name in fields), None)
    if merchant is not None:
        fills[merchant] = "merchant_id"
    app = next((name for name in APP_FIELDS if name in fields), None)
    if app is not None:
        fills[app] = "appid"
    fills.update({name: kind for name, kind in FIXED_FILLS.items() if name in fields})
    if FILE_DIGEST in fields:
        fills[FILE_DIGEST] = "file_md5"
    return fills


def _one_of(path: str, request: dict[str, Any], context: _Context) -> tuple[tuple[str, ...], ...]:
    """The documented groups of ``path``, their members made optional in ``request``."""
    groups = ONE_OF.get(path, ())
    body = request.get("body") or {}
    for group in groups:
        missing = [name for name in group if name not in body]
        if missing:
            context.unexpressed(f"one_of member(s) {', '.join(missing)} are not request fields")
            continue
        for name in group:
            body[name] = {k: v for k, v in body[name].items() if k != "required"}
        context.report.traits.append(f"{path}: one_of {', '.join(group)}")
    return groups


def _with_lookup(raw: dict[str, Any], imported: list[Imported], report: ImportReport, canonical: str) -> None:
    """Add ``idempotency`` after the traits when a business number makes a resend safe."""
    body = _body(raw)
    grouped = {name for group in raw.get("one_of", ()) for name in group}
    key = next((n for n in V2_BUSINESS_NUMBERS if n in body and (body[n].get("required") or n in grouped)), None)
    if key is None:
        return
    trait = {"key": key}
    query = _lookup(key, raw["path"], imported)
    if query is not None:
        trait["query"] = query
    report.idempotent.append(f"{canonical}: {', '.join(f'{k}={v}' for k, v in trait.items())}")
    items = list(raw.items())
    at = next(i for i, (k, _) in enumerate(items) if k == "body") + 1
    raw.clear()
    raw.update([*items[:at], ("idempotency", trait), *items[at:]])


def _lookup(key: str, path: str, imported: list[Imported]) -> Optional[str]:
    """The query nearest ``path`` among those named in ``LOOKUPS[key]`` that take ``key``."""
    names = LOOKUPS.get(key, ())
    candidates = [(canonical, raw["path"]) for canonical, raw, _ in imported if key in _body(raw)]
    return nearest(path, ((c, p) for c, p in candidates if p.strip("/").split("/")[-1] in names))


def _body(raw: Mapping[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = (raw.get("request") or {}).get("body") or {}
    return body


if __name__ == "__main__":
    sys.exit(main_import(sys.argv[1:]))
