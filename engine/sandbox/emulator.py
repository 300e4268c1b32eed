"""The sandbox: an emulator of the WeChat Pay APIv3 server, as a sans-I/O ``handle(Request)``.

Design decisions:

* It plays the server side of PROTOCOL.md §12 with real cryptography: Accept and User-Agent are
  required (400 ``INVALID_REQUEST``), the Authorization parameters are parsed in any order and the
  signature is checked with the merchant's public key over the raw target and raw body (401
  ``SIGN_ERROR`` with ``sign_information``, as the real server answers).
* It validates requests against the *same* descriptors as the client (400 ``PARAM_ERROR`` with a
  ``detail`` pointer), after decrypting the fields marked ``encrypted`` with the platform private key
  (400 when that fails), so a client bug in encryption or validation cannot hide behind the sandbox.
* Every answer, errors included, is signed like WeChat Pay's: ``Wechatpay-Timestamp``, ``-Nonce``,
  ``-Signature``, ``-Serial``, ``-Signature-Type`` and ``Request-ID``, with the key named by the
  request's ``Wechatpay-Serial`` when the sandbox holds it, else with the public key.
* No sockets here: the in-process transport calls ``handle`` directly, and an HTTP server can wrap
  the same method. Every exchange is recorded, decrypted payload included, so tests can look at the
  wire; the record hides payloads from ``repr``.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from typing import Any, Callable, Optional
from urllib.parse import unquote

import attrs

from engine import multipart
from engine.crypto import oaep_decrypt, oaep_encrypt, rsa_sign, rsa_verify
from engine.descriptor import Descriptor, Field
from engine.fields import map_encrypted
from engine.keys import MerchantCredentials, normalize_serial
from engine.protocol import (
    CLOCK_WINDOW_SECONDS,
    H_NONCE,
    H_REQUEST_ID,
    H_SERIAL,
    H_SIGNATURE,
    H_SIGNATURE_TYPE,
    H_TIMESTAMP,
    SCHEME_RSA,
    parse_authorization,
    request_message,
    response_message,
)
from engine.registry import Registry
from engine.sandbox.answers import error_body, success_body
from engine.sandbox.identity import SandboxIdentity
from engine.serialize import encode_json
from engine.validation import PayloadValidator, compile_validator
from engine.wire import Headers, RawResponse, Request

_COERCE: dict[str, Callable[[str], Any]] = {"integer": int, "number": float, "boolean": lambda t: t == "true"}


@attrs.frozen
class Exchange:
    """One request the sandbox received and the answer it gave."""

    request: Request
    response: RawResponse
    endpoint_id: Optional[str]
    payload: Any = attrs.field(default=None, repr=False)

    @property
    def answer(self) -> Any:
        return json.loads(self.response.body) if self.response.body else None


class _RefusalError(Exception):
    def __init__(self, status: int, code: str, message: str, detail: Optional[dict] = None) -> None:
        self.status = status
        self.body = error_body(code, message, detail)


class Sandbox:
    """An in-memory WeChat Pay for one merchant."""

    def __init__(
        self,
        identity: Optional[SandboxIdentity] = None,
        registry: Optional[Registry] = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.identity = identity or SandboxIdentity.generate()
        self.registry = registry or Registry()
        self.clock = clock
        self.exchanges: list[Exchange] = []
        self._validators: dict[str, PayloadValidator] = {}
        self._merchant = MerchantCredentials(
            self.identity.mchid, self.identity.merchant_serial_no, self.identity.merchant_key
        )

    @property
    def last(self) -> Exchange:
        """The most recent exchange (``IndexError`` when there is none)."""
        return self.exchanges[-1]

    def handle(self, request: Request) -> RawResponse:
        """Answer one request as WeChat Pay would, and record the exchange."""
        endpoint_id: Optional[str] = None
        payload: Any = None
        try:
            descriptor, payload = self._accept(request)
            endpoint_id = descriptor.id
            status, body = self._succeed(descriptor, payload)
        except _RefusalError as refusal:
            status, body = refusal.status, refusal.body
        answer = self.sign_answer(status, encode_json(body) if body is not None else b"", request.headers)
        self.exchanges.append(Exchange(request, answer, endpoint_id, payload))
        return answer

    # -- the server's checks, in the order WeChat Pay applies them ---------------------------

    def _accept(self, request: Request) -> tuple[Descriptor, dict]:
        if "Accept" not in request.headers or "User-Agent" not in request.headers:
            raise _RefusalError(400, "INVALID_REQUEST", "Http头缺少Accept或User-Agent")
        self._check_signature(request)
        path = request.target.split("?", 1)[0]
        descriptor = self.registry.match(request.method, path)
        if descriptor is None:
            raise _RefusalError(404, "RESOURCE_NOT_EXISTS", f"no such API: {request.method} {path}")
        payload = self._decrypt(descriptor, request, self._read_payload(descriptor, request))
        self._validate(descriptor, payload)
        return descriptor, payload

    def _check_signature(self, request: Request) -> None:
        try:
            scheme, params = parse_authorization(request.headers.get("Authorization", ""))
        except ValueError as exc:
            raise _RefusalError(401, "SIGN_ERROR", f"Authorization头格式错误: {exc}") from None
        if scheme != SCHEME_RSA:
            raise _RefusalError(401, "SIGN_ERROR", f"不支持的签名方式 {scheme}")
        if params["mchid"] != self.identity.mchid or params["serial_no"] != self.identity.merchant_serial_no:
            raise _RefusalError(401, "SIGN_ERROR", "商户号或证书序列号不正确")
        timestamp = params["timestamp"]
        if (
            not (timestamp.isascii() and timestamp.isdigit())
            or abs(self.clock() - int(timestamp)) > CLOCK_WINDOW_SECONDS
        ):
            raise _RefusalError(401, "SIGN_ERROR", "时间戳超出允许范围")
        nonce = params["nonce_str"]
        message = request_message(request.method, request.target, timestamp, nonce, _signed_body(request))
        if not rsa_verify(self.identity.merchant_key.public_key(), message, params["signature"]):
            raise _RefusalError(401, "SIGN_ERROR", "错误的签名，验签失败", _sign_detail(request, message))

    def _read_payload(self, descriptor: Descriptor, request: Request) -> dict:
        payload: dict[str, Any] = {}
        payload.update(_path_params(descriptor, request.target))
        payload.update(_query_params(descriptor, request.target))
        if descriptor.body_kind == "multipart":
            payload.update(_upload_payload(request))
        elif request.body and descriptor.body_kind == "json":
            try:
                body = json.loads(request.body)
            except (UnicodeDecodeError, json.JSONDecodeError):
                raise _RefusalError(400, "PARAM_ERROR", "请求体不是合法的JSON") from None
            if not isinstance(body, dict):
                raise _RefusalError(400, "PARAM_ERROR", "请求体必须是JSON对象")
            payload.update(body)
        return payload

    def _decrypt(self, descriptor: Descriptor, request: Request, payload: dict) -> dict:
        fields = {**descriptor.request.query, **descriptor.request.body}
        decrypt = self._platform_decryptor(request)
        try:
            return map_encrypted(fields, payload, lambda value, path: decrypt(value))
        except ValueError:
            raise _RefusalError(400, "PARAM_ERROR", "平台私钥解密失败") from None

    def _platform_decryptor(self, request: Request) -> Callable[[str], str]:
        serial = request.headers.get(H_SERIAL, "")

        def decrypt(value: str) -> str:
            if normalize_serial(serial) not in self._platform_ids():
                raise ValueError("Wechatpay-Serial names no platform key")
            return oaep_decrypt(self.identity.platform_key, value)

        return decrypt

    def _validate(self, descriptor: Descriptor, payload: dict) -> None:
        if descriptor.free_form:
            return
        validator = self._validators.get(descriptor.id)
        if validator is None:
            validator = self._validators[descriptor.id] = compile_validator(descriptor)
        errors = validator(payload)
        if errors:
            issue, _, where = errors[0].rpartition(" @ ")
            pointer = "/" + where.removeprefix("$.").replace(".", "/") if where != "$" else ""
            detail = {"field": pointer, "location": "body", "issue": issue}
            raise _RefusalError(400, "PARAM_ERROR", f"参数错误: {errors[0]}", detail)

    def _succeed(self, descriptor: Descriptor, payload: dict) -> tuple[int, Optional[dict]]:
        if not descriptor.response:
            return 204, None
        encrypt_for_merchant = lambda text: oaep_encrypt(self.identity.merchant_key.public_key(), text)  # noqa: E731
        return 200, success_body(descriptor.response, payload, self.identity.mchid, encrypt_for_merchant)

    # -- signing answers ---------------------------------------------------------------------

    def _platform_ids(self) -> dict[str, str]:
        ids = (self.identity.platform_public_key_id, self.identity.platform_certificate_serial)
        return {normalize_serial(i): i for i in ids}

    def sign_answer(self, status: int, body: bytes, request_headers: Headers) -> RawResponse:
        """Sign an answer with the key the request asked for (``Wechatpay-Serial``), else the public key."""
        asked = self._platform_ids().get(normalize_serial(request_headers.get(H_SERIAL, "")))
        serial = asked or self.identity.platform_public_key_id
        timestamp, nonce = str(int(self.clock())), secrets.token_hex(16)
        signature = rsa_sign(self.identity.platform_key, response_message(timestamp, nonce, body))
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            H_TIMESTAMP: timestamp,
            H_NONCE: nonce,
            H_SIGNATURE: signature,
            H_SERIAL: serial,
            H_SIGNATURE_TYPE: SCHEME_RSA,
            H_REQUEST_ID: secrets.token_hex(20).upper() + "-0",
        }
        return RawResponse(status, Headers(headers), body)


def _signed_body(request: Request) -> bytes:
    """What the client must have signed: the body, or for an upload the raw ``meta`` part."""
    content_type = request.headers.get("Content-Type", "")
    if not content_type.startswith("multipart/form-data"):
        return request.body
    try:
        return multipart.decode(content_type, request.body).get("meta", (None, b""))[1]
    except ValueError:
        return request.body


def _upload_payload(request: Request) -> dict[str, Any]:
    try:
        parts = multipart.decode(request.headers.get("Content-Type", ""), request.body)
        meta = json.loads(parts["meta"][1])
        content = parts["file"][1]
    except (ValueError, KeyError):
        raise _RefusalError(400, "PARAM_ERROR", "上传请求须为multipart/form-data，含meta和file两部分") from None
    declared = meta.get("sha256") if isinstance(meta, dict) else None
    if declared is not None and declared != hashlib.sha256(content).hexdigest():
        raise _RefusalError(400, "PARAM_ERROR", "文件sha256与meta不一致", {"field": "/meta/sha256", "location": "body"})
    return {"meta": meta, "file": content}


def _sign_detail(request: Request, message: bytes) -> dict:
    return {
        "field": "signature",
        "location": "authorization",
        "detail": {"issue": "sign not match"},
        "sign_information": {
            "method": request.method,
            "url": request.target,
            "sign_message_length": len(message),
            "truncated_sign_message": message[:200].decode("utf-8", errors="replace"),
        },
    }


def _path_params(descriptor: Descriptor, target: str) -> dict[str, Any]:
    names = re.findall(r"{([^{}/]+)}", descriptor.path)
    if not names:
        return {}
    pattern = re.sub(r"\\{[^{}/]+\\}", "([^/]+)", re.escape(descriptor.path))
    match = re.fullmatch(pattern, target.split("?", 1)[0])
    values = match.groups() if match else ()
    return {n: _coerce(descriptor.request.path.get(n), unquote(v)) for n, v in zip(names, values, strict=False)}


def _query_params(descriptor: Descriptor, target: str) -> dict[str, Any]:
    _, _, query = target.partition("?")
    pairs = (item.partition("=") for item in query.split("&") if item)
    return {unquote(k): _coerce(descriptor.request.query.get(unquote(k)), unquote(v)) for k, _, v in pairs}


def _coerce(field: Optional[Field], text: str) -> Any:
    convert = _COERCE.get(field.type) if field is not None else None
    if convert is None:
        return text
    try:
        return convert(text)
    except ValueError:
        return text
