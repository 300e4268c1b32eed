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
* Platform keys form a set: the public key (``PUB_KEY_ID_…``) and one or more certificates;
  ``rotate_certificate()`` adds a new one while the sandbox runs, and ``GET /v3/certificates``
  answers with every certificate, AEAD-encrypted under the APIv3 key (PROTOCOL.md §5).
* Faults (``engine.sandbox.faults``) are applied here when they concern the answer, and handed to
  the front-end (``respond`` returns them) when they concern the transport.
* State lives in ``World`` (``engine.sandbox.world``): after validation the sandbox asks it first,
  so orders, refunds, contracts and transfers answer what was created; every other endpoint keeps
  the schema-based answer. ``clock`` is the wire clock; ``time`` (a ``TestClock``, the given clock
  itself when it is one) is the business time the world runs on.
* Each answer is reported to ``observers`` with whether the Authorization verified, and why not
  (the inspector's record).
* APIv2 is a desk of its own (``engine.sandbox.v2``, ``Sandbox.v2``): ``respond`` lets it claim a
  request whose path is an APIv2 descriptor's before any APIv3 rule runs, so neither protocol's
  checks leak into the other's.
* No sockets here: the in-process transport calls ``respond`` directly, and the HTTP server wraps
  the same method. Exchanges are recorded, decrypted payload included, so tests can look at the
  wire; the record hides payloads from ``repr``.
* The record is a ring buffer (``engine.sandbox.ring.Ring``): the newest ``record_limit``
  exchanges (default ``DEFAULT_RECORD_LIMIT``) and deliveries are kept, older ones dropped, so a
  sandbox served for days stays the size it was after its first thousand calls.
  ``contract_signed`` finds its pre-entrust-sign request in that window only. Other threads append
  to it while the served loop reads it (an in-process engine on the same sandbox, a blocking
  ``TestClock.advance``): the ring takes its lock for both, every walk is of a copy, and
  ``record_limit`` resizes it in place, so no exchange is lost to a resize. Observers are handed
  the exchange just recorded, never "the newest", which another thread may have recorded since.
* The world's objects and callbacks are bounded too (``object_limit``, default
  ``DEFAULT_OBJECT_LIMIT``, 10,000; ``callback_limit``, twice that unless set): see
  ``engine.sandbox.world``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
import time
from typing import Any, Callable, Optional, Sequence, cast

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from engine import multipart
from engine.crypto import aead_encrypt, oaep_decrypt, oaep_encrypt, rsa_sign, rsa_verify
from engine.descriptor import Descriptor
from engine.fields import map_encrypted
from engine.keys import certificate_serial, normalize_serial
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
from engine.registry import BUILTIN_ENDPOINTS, Registry, path_parameters
from engine.sandbox import notify
from engine.sandbox.answers import error_body, success_body
from engine.sandbox.bills import BillDesk
from engine.sandbox.clock import as_test_clock
from engine.sandbox.faults import ANSWER_FAULTS, Fault, FaultPlan
from engine.sandbox.identity import SandboxIdentity, self_signed_certificate
from engine.sandbox.objects import DEFAULT_OBJECT_LIMIT, checked_limit
from engine.sandbox.ring import Ring
from engine.sandbox.v2 import V2Desk
from engine.sandbox.world import World
from engine.serialize import UnreadableJsonError, decode_json, encode_json, from_text, query_values
from engine.v2 import xmlcodec
from engine.validation import PayloadValidator, compile_validator
from engine.wire import Headers, RawResponse, Request

Route = Callable[[Request, dict[str, Any], Optional[Fault]], tuple[int, Any]]
DEFAULT_RECORD_LIMIT = 1000  # about 5.5 MiB of exchanges at their typical size


@attrs.frozen
class Exchange:
    """One request the sandbox received and the answer it gave."""

    request: Request
    response: RawResponse
    endpoint_id: Optional[str]
    payload: Any = attrs.field(default=None, repr=False)

    @property
    def answer(self) -> Any:
        if not self.response.body:
            return None
        if xmlcodec.looks_like_xml(self.response.body):
            return xmlcodec.parse(self.response.body)
        return json.loads(self.response.body)


@attrs.frozen
class Outcome:
    """An answer plus the transport fault (latency, drop, truncate) the front-end must act out."""

    answer: RawResponse
    fault: Optional[Fault] = None


@attrs.frozen
class SigningKey:
    """One of WeChat Pay's keys in the sandbox: a public key id or a certificate serial."""

    key_id: str
    private_key: rsa.RSAPrivateKey = attrs.field(repr=False)
    certificate: Optional[x509.Certificate] = attrs.field(default=None, repr=False)


class _RefusalError(Exception):
    def __init__(
        self, status: int, code: str, message: str, detail: Optional[dict[str, Any]] = None, reason: str = ""
    ) -> None:
        self.status = status
        self.body = error_body(code, message, detail)
        self.reason = reason  # why the Authorization did not verify, in English (the inspector shows it)


VERIFIED = "verified"


class Sandbox:
    """An in-memory WeChat Pay for one merchant."""

    def __init__(
        self,
        identity: Optional[SandboxIdentity] = None,
        registry: Optional[Registry] = None,
        clock: Callable[[], float] = time.time,
        mode: str = "public_key",
        record_limit: int = DEFAULT_RECORD_LIMIT,
        object_limit: int = DEFAULT_OBJECT_LIMIT,
        callback_limit: Optional[int] = None,
    ) -> None:
        self.identity = identity or SandboxIdentity.generate()
        # "certificate": a merchant without a public key; answers default to the newest certificate.
        # "apiv2": an APIv2-only merchant, who makes no APIv3 call; anything else answers as "public_key".
        self.mode = mode
        self.registry = registry or Registry([BUILTIN_ENDPOINTS])
        self.clock = clock  # wire time: signature windows and timestamps
        self.time = as_test_clock(clock)  # business time: what the test clock advances
        self.exchanges: Ring[Exchange] = Ring(maxlen=_checked_limit(record_limit))
        self.deliveries: Ring[notify.Delivery] = Ring(maxlen=self.exchanges.maxlen)
        self.faults = FaultPlan(resolve=lambda ref: self.registry.get(ref))
        self.observers: list[Callable[[Exchange, str], None]] = []  # (exchange, verification) per answer
        self._validators: dict[str, PayloadValidator] = {}
        self._keys: dict[str, SigningKey] = {}
        self._add_key(SigningKey(self.identity.platform_public_key_id, self.identity.platform_key))
        self._add_key(
            SigningKey(
                self.identity.platform_certificate_serial,
                self.identity.platform_key,
                self.identity.platform_certificate,
            )
        )
        # WeChat Pay switching its answers to a new certificate during a rotation: every answer but
        # the certificate list (signed as asked, so clients can still verify it) uses this key id.
        self.answer_key: Optional[str] = None
        self.notify_schedule: Sequence[float] = notify.QUICK_SCHEDULE
        self.bills = BillDesk(self.identity.mchid, pending_limit=self.exchanges.maxlen or DEFAULT_RECORD_LIMIT)
        # orders, refunds, contracts, transfers (at most object_limit), their callbacks (callback_limit), time
        self.world = World(self, object_limit, callback_limit)
        self.v2 = V2Desk(self)
        # Server behaviour no descriptor can state: run after validation, with the validated payload.
        self._routes: dict[tuple[str, str], Route] = {
            ("GET", "/v3/certificates"): self._certificates,
            ("GET", "/v3/bill/tradebill"): self._bill,
            ("GET", "/v3/bill/fundflowbill"): self._bill,
            ("GET", "/v3/billdownload/file"): self._bill_file,
        }

    @property
    def record_limit(self) -> int:
        """How many exchanges (and deliveries, APIv2's too) the record keeps; setting it keeps the newest that fit."""
        return self.exchanges.maxlen or 0

    @record_limit.setter
    def record_limit(self, limit: int) -> None:
        limit = _checked_limit(limit)
        self.exchanges.resize(limit)  # in place: a writer holding the ring appends to the one kept
        self.deliveries.resize(limit)
        self.v2.deliveries.resize(limit)

    @property
    def object_limit(self) -> int:
        """How many objects the world keeps; setting it evicts settled ones down to it."""
        return self.world.object_limit

    @object_limit.setter
    def object_limit(self, limit: int) -> None:
        self.world.object_limit = limit

    @property
    def callback_limit(self) -> int:
        """How many callbacks the world keeps (twice ``object_limit`` unless set); see ``World``."""
        return self.world.callback_limit

    @callback_limit.setter
    def callback_limit(self, limit: Optional[int]) -> None:
        self.world.callback_limit = limit

    @property
    def last(self) -> Exchange:
        """The most recent exchange (``IndexError`` when there is none)."""
        return self.exchanges[-1]

    def handle(self, request: Request) -> RawResponse:
        """Answer one request as WeChat Pay would (transport faults are not acted out here)."""
        return self.respond(request).answer

    def respond(self, request: Request, client_certificate: Optional[bytes] = None, tls: bool = False) -> Outcome:
        """Answer one request, apply any scripted fault, and record the exchange.

        ``client_certificate`` is the DER certificate the client presented in the TLS handshake, when
        the sandbox is served over TLS (``tls``); APIv2 operations that need one refuse without it.
        """
        served = self.v2.serve(request, client_certificate, tls)
        if served is not None:
            self._record(Exchange(request, served.answer, served.endpoint_id, served.payload), served.verification)
            return Outcome(served.answer, served.fault)
        endpoint_id: Optional[str] = None
        payload: Any = None
        fault: Optional[Fault] = None
        verification = "not checked"
        try:
            self._check_transport_rules(request)
            verification = VERIFIED
            route, descriptor = self._route(request)
            endpoint_id = descriptor.id if descriptor is not None else None
            fault = self.faults.take(endpoint_id)  # faults are queued under canonical ids
            if fault is not None and fault.kind == "error":
                raise _RefusalError(fault.status, fault.code, fault.message)
            status, body, payload = self._serve(request, route, descriptor, fault)
        except _RefusalError as refusal:
            status, body = refusal.status, refusal.body
            if verification != VERIFIED:
                verification = refusal.reason or f"not checked: {refusal.body['message']}"
        if isinstance(body, RawResponse):  # a file: WeChat Pay does not sign those
            answer = body
        else:
            answer = self._answer(request, status, encode_json(body) if body is not None else b"", fault)
        if fault is not None and fault.retry_after is not None:  # not signed: WeChat Pay signs the body only
            answer = attrs.evolve(answer, headers=answer.headers.merged({"Retry-After": str(fault.retry_after)}))
        self._record(Exchange(request, answer, endpoint_id, payload), verification)
        return Outcome(answer, fault if fault is not None and fault.at_transport else None)

    def _record(self, exchange: Exchange, verification: str) -> None:
        """Keep ``exchange`` and report it to the observers (the inspector), APIv3 and APIv2 alike."""
        self.exchanges.append(exchange)
        for observe in self.observers:  # this exchange: another thread may have recorded a newer one since
            observe(exchange, verification)

    # -- the server's checks, in the order WeChat Pay applies them ---------------------------

    def _check_transport_rules(self, request: Request) -> None:
        if not request.headers.get("Accept", "").strip() or not request.headers.get("User-Agent", "").strip():
            raise _RefusalError(400, "INVALID_REQUEST", "Http头缺少Accept或User-Agent")
        self._check_signature(request)

    def _route(self, request: Request) -> tuple[Optional[Callable[..., Any]], Optional[Descriptor]]:
        path = request.target.split("?", 1)[0]
        candidates = self.registry.matches(request.method, path)
        route = self._routes.get((request.method, path))
        if not candidates and route is None:
            raise _RefusalError(404, "RESOURCE_NOT_EXISTS", f"no such API: {request.method} {path}")
        return route, self._best_fit(request, candidates)

    def _best_fit(self, request: Request, candidates: list[Descriptor]) -> Optional[Descriptor]:
        """Two templates can share a shape (/x/{business_code} and /x/{applyment_id}): like the real
        server, tell them apart by what the request carries, taking the first that validates."""
        if len(candidates) > 1:
            for descriptor in candidates:
                if self._accepts(descriptor, request):
                    return descriptor
        return candidates[0] if candidates else None

    def _serve(
        self, request: Request, route: Optional[Route], descriptor: Optional[Descriptor], fault: Optional[Fault]
    ) -> tuple[int, Any, Any]:
        payload: dict[str, Any] = {}
        if descriptor is not None:
            payload = self._decrypt(descriptor, request, self._read_payload(descriptor, request))
            self._validate(descriptor, payload)
        if route is not None:
            status, body = route(request, payload, fault)
            return status, body, payload
        assert descriptor is not None
        served = self.world.serve(descriptor, payload, self._shape)
        status, body = served if served is not None else self._succeed(descriptor, payload)
        return status, body, payload

    def _accepts(self, descriptor: Descriptor, request: Request) -> bool:
        try:
            self._validate(descriptor, self._decrypt(descriptor, request, self._read_payload(descriptor, request)))
        except _RefusalError:
            return False
        return True

    def _check_signature(self, request: Request) -> None:
        try:
            scheme, params = parse_authorization(request.headers.get("Authorization", ""))
        except ValueError as exc:
            raise _RefusalError(
                401, "SIGN_ERROR", f"Authorization头格式错误: {exc}", reason=f"malformed Authorization: {exc}"
            ) from None
        if scheme != SCHEME_RSA:
            raise _RefusalError(401, "SIGN_ERROR", f"不支持的签名方式 {scheme}", reason=f"unsupported scheme {scheme}")
        if params["mchid"] != self.identity.mchid or params["serial_no"] != self.identity.merchant_serial_no:
            reason = "unknown mchid or merchant serial_no"
            raise _RefusalError(401, "SIGN_ERROR", "商户号或证书序列号不正确", reason=reason)
        timestamp = params["timestamp"]
        if (
            not (timestamp.isascii() and timestamp.isdigit())
            or abs(self.clock() - int(timestamp)) > CLOCK_WINDOW_SECONDS
        ):
            reason = f"timestamp outside the {CLOCK_WINDOW_SECONDS}-second window"
            raise _RefusalError(401, "SIGN_ERROR", "时间戳超出允许范围", reason=reason)
        nonce = params["nonce_str"]
        message = request_message(request.method, request.target, timestamp, nonce, _signed_body(request))
        if not rsa_verify(self.identity.merchant_key.public_key(), message, params["signature"]):
            reason = "signature does not match the request (wrong key, or the bytes signed are not the bytes sent)"
            raise _RefusalError(401, "SIGN_ERROR", "错误的签名，验签失败", _sign_detail(request, message), reason)

    def _read_payload(self, descriptor: Descriptor, request: Request) -> dict[str, Any]:
        payload: dict[str, Any] = {}
        payload.update(_path_params(descriptor, request.target))
        payload.update(_query_params(descriptor, request.target))
        if descriptor.body_kind == "multipart":
            payload.update(_upload_payload(descriptor, request))
        elif request.body and descriptor.body_kind == "json":
            try:
                body = decode_json(request.body)
            except UnreadableJsonError:
                raise _RefusalError(400, "PARAM_ERROR", "请求体不是合法的JSON") from None
            if not isinstance(body, dict):
                raise _RefusalError(400, "PARAM_ERROR", "请求体必须是JSON对象")
            payload.update(body)
        return payload

    def _decrypt(self, descriptor: Descriptor, request: Request, payload: dict[str, Any]) -> dict[str, Any]:
        fields = {**descriptor.request.query, **descriptor.request.body}
        decrypt = self._platform_decryptor(request)
        try:
            return cast(dict[str, Any], map_encrypted(fields, payload, lambda value, path: decrypt(value)))
        except ValueError:
            raise _RefusalError(400, "PARAM_ERROR", "平台私钥解密失败") from None

    def _platform_decryptor(self, request: Request) -> Callable[[str], str]:
        key = self._keys.get(normalize_serial(request.headers.get(H_SERIAL, "")))

        def decrypt(value: str) -> str:
            if key is None:
                raise ValueError("Wechatpay-Serial names no platform key")
            return oaep_decrypt(key.private_key, value)

        return decrypt

    def _validate(self, descriptor: Descriptor, payload: dict[str, Any]) -> None:
        if descriptor.free_form:
            return
        validator = self._validators.get(descriptor.id)
        if validator is None:
            validator = self._validators[descriptor.id] = compile_validator(descriptor)
        errors = validator(payload)
        if errors:
            issue, _, where = errors[0].rpartition(" @ ")
            pointer = "/" + where.removeprefix("$.").replace(".", "/") if where != "$" else ""
            detail = {"field": pointer, "location": _location(descriptor, pointer), "issue": issue}
            raise _RefusalError(400, "PARAM_ERROR", f"参数错误: {errors[0]}", detail)

    def _succeed(self, descriptor: Descriptor, payload: dict[str, Any]) -> tuple[int, Optional[dict[str, Any]]]:
        if not descriptor.response:
            return 204, None
        return 200, self._shape(descriptor, payload)

    def _shape(self, descriptor: Descriptor, values: Optional[dict[str, Any]]) -> Optional[dict[str, Any]]:
        """An answer body with the descriptor's fields, from ``values`` (encrypted fields encrypted)."""
        if not descriptor.response or values is None:
            return None
        encrypt_for_merchant = lambda text: oaep_encrypt(self.identity.merchant_key.public_key(), text)  # noqa: E731
        return success_body(descriptor.response, values, self.identity.mchid, encrypt_for_merchant)

    # -- signing answers ---------------------------------------------------------------------

    # -- callbacks ---------------------------------------------------------------------------

    def notification(
        self, event_type: str, resource: dict[str, Any], *, summary: str = "", original_type: str = "transaction"
    ) -> RawResponse:
        """A signed notification envelope with ``resource`` encrypted under the APIv3 key."""
        return notify.build(self, event_type, resource, summary=summary, original_type=original_type)

    def event(self, event_type: str, resource: Optional[dict[str, Any]] = None, **fields: Any) -> RawResponse:
        """A signed notification of any event type the event catalogue lists (``engine.events``).

        The resource is ``resource`` if given, else one shaped from the catalogue's fields for that
        event (this merchant's ``mchid`` where it has one), updated with ``fields``.
        """
        from engine.events import catalogue, sample_resource

        known = catalogue().get(event_type)
        if known is None:
            raise LookupError(f"the event catalogue lists no event type {event_type!r}")
        if resource is None:
            shape = known.resource or {"mchid": "string"}
            mine = {name: self.identity.mchid for name in ("mchid", "sp_mchid") if name in shape}
            resource = sample_resource(known, **mine)
        resource = {**resource, **fields}
        return self.notification(event_type, resource, summary=known.label, original_type=known.original_type or "")

    async def notify(self, url: str, notification: RawResponse) -> notify.Delivery:
        """Deliver a notification to ``url``, retrying on ``notify_schedule``; record the delivery."""
        delivery = await notify.deliver(url, notification, self.notify_schedule)
        self.deliveries.append(delivery)
        return delivery

    def contract_signed(self, out_contract_code: str) -> tuple[str, RawResponse]:
        """The user finished signing: the notify_url of that pre-entrust-sign and its callback.

        ``PAPAY.SIGN`` mirrors the catalogue's ``PAPAY.TERMINATE``; it is the sandbox's name.
        """
        payload = self._request_payload("out_contract_code", out_contract_code)
        resource = notify.contract_signed_resource(self, payload)
        return payload["notify_url"], self.notification(
            "PAPAY.SIGN", resource, summary="签约成功", original_type="papay"
        )

    def payment_succeeded(self, out_trade_no: str, total: int = 1, appid: Optional[str] = None) -> RawResponse:
        """A ``TRANSACTION.SUCCESS`` callback for an order."""
        resource = notify.payment_succeeded_resource(self, out_trade_no, total, appid)
        return self.notification("TRANSACTION.SUCCESS", resource, summary="支付成功", original_type="transaction")

    def _request_payload(self, name: str, value: Any) -> dict[str, Any]:
        for exchange in reversed(self.exchanges):
            if isinstance(exchange.payload, dict) and exchange.payload.get(name) == value:
                return exchange.payload
        raise LookupError(f"the sandbox received no request with {name}={value!r}")

    # -- platform keys -------------------------------------------------------------------------

    def _add_key(self, key: SigningKey) -> None:
        self._keys[normalize_serial(key.key_id)] = key

    def rotate_certificate(self, retire_previous: bool = False) -> str:
        """Add a new platform key pair and certificate while the sandbox runs; return its serial.

        ``retire_previous`` drops the older certificates, as WeChat Pay eventually does.
        """
        if retire_previous:
            self._keys = {k: v for k, v in self._keys.items() if v.certificate is None}
        now = dt.datetime.now(dt.UTC)
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        certificate = self_signed_certificate(private_key, "WeChat Pay Sandbox Platform", now)
        serial = certificate_serial(certificate)
        self._add_key(SigningKey(serial, private_key, certificate))
        return serial

    def retire_certificate(self, serial: str) -> None:
        """Stop listing and signing with a platform certificate, as WeChat Pay does when it expires."""
        self._keys.pop(normalize_serial(serial), None)
        if self.answer_key is not None and normalize_serial(self.answer_key) == normalize_serial(serial):
            self.answer_key = None

    def certificates(self) -> list[x509.Certificate]:
        """Every platform certificate the sandbox holds, oldest first."""
        return [key.certificate for key in self._keys.values() if key.certificate is not None]

    def _bill(self, request: Request, payload: dict[str, Any], fault: Optional[Fault]) -> tuple[int, Any]:
        return 200, self.bills.request(request.base_url, payload)

    def _bill_file(self, request: Request, payload: dict[str, Any], fault: Optional[Fault]) -> tuple[int, Any]:
        corrupt = fault is not None and fault.kind == "corrupt_download"
        answer = self.bills.file(request.target, corrupt=corrupt)
        if answer is None:
            raise _RefusalError(400, "INVALID_REQUEST", "下载链接已失效")
        return answer.status, answer

    def _certificates(self, request: Request, payload: dict[str, Any], fault: Optional[Fault]) -> tuple[int, Any]:
        return 200, {"data": [self._encrypted_certificate(cert) for cert in self.certificates()]}

    def _encrypted_certificate(self, cert: x509.Certificate) -> dict[str, Any]:
        nonce = secrets.token_hex(6)
        pem = cert.public_bytes(serialization.Encoding.PEM)
        return {
            "serial_no": certificate_serial(cert),
            "effective_time": _rfc3339(cert.not_valid_before_utc),
            "expire_time": _rfc3339(cert.not_valid_after_utc),
            "encrypt_certificate": {
                "algorithm": "AEAD_AES_256_GCM",
                "nonce": nonce,
                "associated_data": "certificate",
                "ciphertext": aead_encrypt(self.identity.apiv3_key, nonce, "certificate", pem),
            },
        }

    def _answer(self, request: Request, status: int, body: bytes, fault: Optional[Fault]) -> RawResponse:
        request_headers = request.headers
        if self.answer_key is not None and not request.target.startswith("/v3/certificates"):
            request_headers = request_headers.merged({H_SERIAL: self.answer_key})
        if fault is None or fault.kind not in ANSWER_FAULTS:
            return self.sign_answer(status, body, request_headers)
        return corrupt_answer(self, fault.kind, status, body, request_headers)

    def signing_key(self, request_headers: Headers) -> SigningKey:
        """The key named by the request's ``Wechatpay-Serial`` when held, else the public key."""
        asked = self._keys.get(normalize_serial(request_headers.get(H_SERIAL, "")))
        if asked is not None:
            return asked
        if self.mode in ("certificate", "both"):  # WeChat Pay signs with the certificate unless asked otherwise
            return [key for key in self._keys.values() if key.certificate is not None][-1]
        return self._keys[normalize_serial(self.identity.platform_public_key_id)]

    def sign_answer(
        self, status: int, body: bytes, request_headers: Headers, timestamp: Optional[int] = None
    ) -> RawResponse:
        """Sign an answer as WeChat Pay does, with the key the request asked for."""
        key = self.signing_key(request_headers)
        return signed_answer(status, body, key.key_id, key.private_key, timestamp or int(self.clock()))


def signed_answer(status: int, body: bytes, key_id: str, private_key: rsa.RSAPrivateKey, timestamp: int) -> RawResponse:
    """A signed answer (or callback) with every header WeChat Pay sends."""
    nonce = secrets.token_hex(16)
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        H_TIMESTAMP: str(timestamp),
        H_NONCE: nonce,
        H_SIGNATURE: rsa_sign(private_key, response_message(timestamp, nonce, body)),
        H_SERIAL: key_id,
        H_SIGNATURE_TYPE: SCHEME_RSA,
        H_REQUEST_ID: secrets.token_hex(20).upper() + "-0",
    }
    return RawResponse(status, Headers(headers), body)


def corrupt_answer(sandbox: Sandbox, kind: str, status: int, body: bytes, request_headers: Headers) -> RawResponse:
    """A well-formed answer spoiled in one of the ways ``ANSWER_FAULTS`` names."""
    if kind == "not_json":
        return sandbox.sign_answer(status, b"<html><body>502 Bad Gateway</body></html>", request_headers)
    if kind == "stale_signature":
        return sandbox.sign_answer(status, body, request_headers, timestamp=int(sandbox.clock()) - 600)
    if kind == "unknown_serial":
        stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return signed_answer(
            status, body, "PUB_KEY_ID_0000000000000000000000000000000000", stranger, int(sandbox.clock())
        )
    answer = sandbox.sign_answer(status, body, request_headers)
    forged = "WECHATPAY/SIGNTEST/" + secrets.token_urlsafe(24) if kind == "probe" else answer.headers[H_SIGNATURE][::-1]
    return attrs.evolve(answer, headers=answer.headers.merged({H_SIGNATURE: forged}))


def _checked_limit(limit: Any) -> int:
    return checked_limit("record_limit", limit)


def _rfc3339(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone(dt.timedelta(hours=8))).isoformat(timespec="seconds")


def _location(descriptor: Descriptor, pointer: str) -> str:
    """Where the offending field travels; path and query fields are named, body ones pointed at."""
    top = pointer.lstrip("/").split("/", 1)[0].split("[", 1)[0]
    for location in ("path", "query"):
        if top in getattr(descriptor.request, location):
            return location
    return "body"


def _signed_body(request: Request) -> bytes:
    """What the client must have signed: the body, or for an upload the raw ``meta`` part."""
    content_type = request.headers.get("Content-Type", "")
    if not content_type.startswith("multipart/form-data"):
        return request.body
    try:
        return multipart.decode(content_type, request.body).get("meta", (None, b""))[1]
    except ValueError:
        return request.body


def _upload_payload(descriptor: Descriptor, request: Request) -> dict[str, Any]:
    try:
        parts = multipart.decode(request.headers.get("Content-Type", ""), request.body)
        meta = json.loads(parts.pop("meta")[1])
    except (ValueError, KeyError, RecursionError):
        raise _RefusalError(400, "PARAM_ERROR", "上传请求须为multipart/form-data，含meta部分") from None
    payload: dict[str, Any] = {"meta": meta}
    for name, (filename, content) in parts.items():
        field = descriptor.request.body.get(name)
        payload[name] = content if filename is not None else from_text(field, content.decode("utf-8", errors="replace"))
    declared = meta.get("sha256") if isinstance(meta, dict) else None
    content = payload.get(multipart.file_field(descriptor), b"")
    if declared is not None and declared != hashlib.sha256(content).hexdigest():
        raise _RefusalError(400, "PARAM_ERROR", "文件sha256与meta不一致", {"field": "/meta/sha256", "location": "body"})
    return payload


def _sign_detail(request: Request, message: bytes) -> dict[str, Any]:
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
    values = path_parameters(descriptor.path, target)
    return {name: from_text(descriptor.request.path.get(name), value) for name, value in values.items()}


def _query_params(descriptor: Descriptor, target: str) -> dict[str, Any]:
    return {name: from_text(descriptor.request.query.get(name), v) for name, v in query_values(target).items()}
