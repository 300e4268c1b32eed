"""Testing code that calls WeChat Pay through the engine: a ``Stubber`` in the spirit of botocore's.

``Stubber(engine)`` answers an engine's calls from a queue of canned answers, in order, and checks
that each call is the one expected, with the payload expected::

    with Stubber(engine) as stub:
        stub.add_response("combine_papay.mini_program", answer, expected_payload=payload)
        engine.call("combine_papay.mini_program", payload)
        stub.assert_no_pending_responses()

Design decisions:

* Built on the engine's own hooks and its one mock transport; nothing is patched. While active, a
  plugin's ``wxpay_transport`` (``tryfirst``) serves every base URL with a ``MockTransport`` whose
  handler answers from the queue, so nothing reaches a real transport. The engine keeps one
  transport per event loop, so those are retired on activation and on deactivation
  (``Runtime.retire_transports``: they close with their loop or the engine, never leak). The same
  plugin's ``wxpay_before_send`` tells the stub which endpoint each request belongs to (a request
  sent without that hook is named by its method and path).
* Stubbed answers are verified for real; nothing unverified is returned, even in tests. Each Stubber
  generates a throwaway RSA key named ``STUB_KEY_ID_…`` and signs every answer as WeChat Pay does
  (``Wechatpay-*`` headers and ``Request-ID``; the timestamp comes from the engine's clock, so injected
  clocks work). A second plugin's ``wxpay_verify_response`` checks answers naming that key with the
  built-in ``verify_signed`` and defers on anything else. Response fields marked ``encrypted`` are
  encrypted with the merchant's public key, so the engine's decryption runs too and the caller gets
  back the plaintext that was queued.
* Canned answers are checked against the descriptor when queued (``StubResponseError``): required
  fields present and types right, nested ones included, with the messages of ``engine.validation``.
  Unknown fields, enum values and limits are *not* checked: WeChat Pay adds fields and values over
  time, and tests must be able to send them. Free-form descriptors take anything.
* ``expected_payload`` is compared with what went on the wire, decoded: path parameters and the
  query string plus the JSON body (an upload's ``meta`` and file bytes), each encrypted field mapped
  back to the plaintext the engine encrypted (a ``wxpay_encrypt_field`` wrapper records it). The
  expected payload is first put through the engine's own serializer in the same way, so
  ``{"limit": 10}`` matches the query ``limit=10`` and a key the endpoint does not take is reported
  rather than dropped. Comparing the wire, not the caller's object, also tests what the serializer
  made of the payload. Differences read ``"expected …, sent … @ $.path"``; the values of encrypted
  fields are never shown.
* APIv2 operations (``protocol: v2``) are answered as WeChat Pay's XML server answers them
  (``engine.v2.stubs`` says how): a SUCCESS document with ``return_code``/``result_code`` filled
  in, or, through ``add_error(level=...)``, a FAIL one at either level. APIv2's key is a secret the
  merchant shares with WeChat Pay, not a WeChat Pay key a stub could replace with its own, so these
  answers are signed with the engine's APIv2 key, under the sign type the request used, when the
  call arrives, and the built-in APIv2 verifier checks them as it checks WeChat Pay's; the stub's
  verifier plugin is not involved. An engine without an APIv2 key cannot queue them
  (``ConfigurationError``), nor an engine answers to calls it refuses before they are signed (the
  family's refusal, ``Pipeline.refusal``: APIv3 operations on an APIv2-only engine), since such an
  answer could never be taken. ``expected_payload`` is compared with
  the request's XML fields, as text; the fields the engine fills (``nonce_str``, ``sign``,
  ``mch_id``...) only when it names them. Encrypted fields (``pay_bank``'s, under its own RSA key)
  are compared as the plaintext the engine encrypted, as in APIv3, and never shown.
* A call that does not match the next queued answer raises ``StubAssertionError`` and leaves the
  queue untouched (as botocore does), so ``assert_no_pending_responses`` still reports the answer.
"""

from __future__ import annotations

import json
import secrets
from collections import deque
from typing import Any, Mapping, Optional, cast

import attrs
from cryptography.hazmat.primitives.asymmetric import rsa

from engine import forksafe, multipart
from engine.client import Engine
from engine.crypto import oaep_encrypt
from engine.descriptor import Descriptor, Field, RequestSpec
from engine.errors import ConfigurationError, StubAssertionError, StubResponseError, UsageError
from engine.fields import map_encrypted
from engine.hookspecs import CallInfo, hookimpl
from engine.keys import PlatformKey, PlatformKeyring, normalize_serial
from engine.plugins.verifier import verify_signed
from engine.protocol import (
    H_SERIAL,
)
from engine.registry import path_parameters
from engine.sandbox.emulator import signed_answer
from engine.serialize import build_target, encode_json, query_values, split_payload
from engine.transport import BaseTransport, MockTransport, TransportConfig
from engine.v2 import stubs as v2_stubs
from engine.validation import compile_validator
from engine.wire import Headers, RawResponse, Request

__all__ = ["BaseTransport", "MockTransport", "StubAssertionError", "StubResponseError", "Stubber"]

_JSON_NAMES = {list: "array", str: "string", int: "integer", float: "number", bool: "boolean", type(None): "null"}


@attrs.frozen(repr=False)
class _Secret:
    """An encrypted field's plaintext inside a comparison: equal by value, never shown."""

    value: Any

    def __repr__(self) -> str:
        return "<encrypted>"


@attrs.frozen
class _Queued:
    """One canned answer: its endpoint, status, body bytes, extra headers and expected payload.

    An APIv2 answer has no body yet: ``v2`` holds its fields, written and signed when the call
    arrives (its sign type is the request's).
    """

    endpoint_id: str
    label: str
    status: int
    body: bytes = attrs.field(repr=lambda b: f"<{len(b)} bytes>")
    headers: Mapping[str, str] = attrs.field(repr=False)
    checks_payload: bool = False
    expected: Any = attrs.field(default=None, repr=False)
    v2: Optional[v2_stubs.CannedV2] = attrs.field(default=None, repr=False)


class Stubber:
    """Answer an engine's calls from a queue of canned, signed answers while active.

    Use it as a context manager, or call ``activate()`` and ``deactivate()``. Transports the engine
    had cached are forgotten on activation, not closed: activate a stubber before an engine's first
    real HTTP call, or close the engine first.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.key_id = f"STUB_KEY_ID_{secrets.token_hex(12).upper()}"
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._queue: deque[_Queued] = deque()
        self._lock = forksafe.lock()
        self._calls: dict[int, CallInfo] = {}
        self._plaintexts: dict[str, str] = {}
        self.transport_plugin = _StubTransportPlugin(self)
        self.verifier_plugin = _StubVerifierPlugin(PlatformKey(self.key_id, self._key.public_key()))
        self.active = False

    # -- lifecycle -----------------------------------------------------------------------------

    def activate(self) -> None:
        """Register the stub plugins; from now on every call is answered from the queue."""
        if self.active:
            return
        self.engine.plugin_manager.register(self.transport_plugin)
        self.engine.plugin_manager.register(self.verifier_plugin)
        self.engine.runtime.retire_transports()
        self.active = True

    def deactivate(self) -> None:
        """Unregister the stub plugins; the engine's own transport serves the next call."""
        if not self.active:
            return
        for plugin in (self.transport_plugin, self.verifier_plugin):
            if self.engine.plugin_manager.is_registered(plugin):
                self.engine.plugin_manager.unregister(plugin)
        self.engine.runtime.retire_transports()
        self._calls.clear()
        self._plaintexts.clear()
        self.active = False

    def __enter__(self) -> "Stubber":
        self.activate()
        return self

    def __exit__(self, *exc: object) -> None:
        self.deactivate()

    # -- queueing ------------------------------------------------------------------------------

    def add_response(
        self,
        endpoint: str,
        data: Any,
        *,
        status: int = 200,
        expected_payload: Any = None,
        headers: Optional[Mapping[str, str]] = None,
    ) -> None:
        """Queue a successful answer (``data``: the decoded body, plaintext in encrypted fields).

        For an APIv2 operation ``data`` is the answer document's fields; ``return_code``,
        ``result_code``, ``nonce_str`` and ``sign`` are filled in unless given (``engine.v2.stubs``).
        """
        descriptor = self._answerable(endpoint)
        if descriptor.protocol == "v2":
            self._add_v2_response(descriptor, data, status, expected_payload, headers)
            return
        if not _is_status(status, 200, 299):
            raise StubResponseError(descriptor.id, [f"status {status!r} is not 2xx; queue errors with add_error"])
        problems = _answer_problems(descriptor, data)
        if problems:
            raise StubResponseError(descriptor.id, problems)
        body = self._encode_answer(descriptor, data)
        self._enqueue(descriptor, f"{descriptor.id} ({status})", status, body, headers, expected_payload)

    def add_error(
        self,
        endpoint: str,
        *,
        status: Optional[int] = None,
        code: str,
        message: str,
        detail: Any = None,
        level: Optional[str] = None,
        expected_payload: Any = None,
        headers: Optional[Mapping[str, str]] = None,
    ) -> None:
        """Queue a WeChat Pay error answer: the call raises ``ApiError`` with these fields.

        APIv3 errors need ``status`` (4xx or 5xx). An APIv2 error is a FAIL answer in a 200 body:
        ``level="result"`` (the default) raises ``ResultCodeError`` with ``err_code=code``,
        ``level="return"`` raises ``ReturnCodeError`` with ``return_msg=message``.
        """
        descriptor = self._answerable(endpoint)
        if descriptor.protocol == "v2":
            self._add_v2_error(descriptor, code, message, status, detail, level, expected_payload, headers)
            return
        problems = _error_problems(status, code, message)
        if level is not None:
            problems.append(f"level is for APIv2 FAIL answers; an APIv3 error is told by its status, got {level!r}")
        if problems or status is None:  # a missing status is one of the problems; `is None` narrows it for mypy
            raise StubResponseError(descriptor.id, problems)
        body = _encode(descriptor, _error_body(code, message, detail))
        self._enqueue(descriptor, f"{descriptor.id} ({status} {code})", status, body, headers, expected_payload)

    def _answerable(self, endpoint: str) -> Descriptor:
        """The descriptor of ``endpoint``, unless the engine refuses its calls (its family says why)."""
        descriptor = self.engine.endpoint(endpoint)
        refusal = self.engine.pipeline.refusal(descriptor)
        if refusal is not None:  # the call would be refused before signing: its answer could never be taken
            raise ConfigurationError(f"queuing an answer for {descriptor.id}: {refusal}")
        return descriptor

    def assert_no_pending_responses(self) -> None:
        """Raise ``StubAssertionError`` listing every queued answer no call has taken."""
        with self._lock:
            pending = [queued.label for queued in self._queue]
        if pending:
            noun = "answer was" if len(pending) == 1 else "answers were"
            raise StubAssertionError(f"{len(pending)} queued {noun} not used: {', '.join(pending)}")

    def _enqueue(
        self,
        descriptor: Descriptor,
        label: str,
        status: int,
        body: bytes,
        headers: Optional[Mapping[str, str]],
        expected_payload: Any,
        v2: Optional[v2_stubs.CannedV2] = None,
    ) -> None:
        checks = expected_payload is not None
        expected = _expected(descriptor, expected_payload) if checks else None
        queued = _Queued(descriptor.id, label, status, body, dict(headers or {}), checks, expected, v2)
        with self._lock:
            self._queue.append(queued)

    def _add_v2_response(
        self,
        descriptor: Descriptor,
        data: Any,
        status: int,
        expected_payload: Any,
        headers: Optional[Mapping[str, str]],
    ) -> None:
        v2_stubs.require_key(descriptor, self.engine.credentials)
        if not _is_status(status, 200, 200):
            problem = f"APIv2 answers are HTTP 200, got {status!r}; a FAIL travels in the body: queue it with add_error"
            raise StubResponseError(descriptor.id, [problem])
        if data is not None and not isinstance(data, dict):
            raise StubResponseError(descriptor.id, [f"answer must be an object, got {_json_name(data)} @ $"])
        fields = v2_stubs.success_fields(descriptor, data or {})  # None is no fields, as for APIv3
        problems = _answer_problems(v2_stubs.checked_view(descriptor), fields)
        problems += v2_stubs.outcome_problems(fields) + v2_stubs.carriage_problems(fields)
        if problems:
            raise StubResponseError(descriptor.id, problems)
        canned = v2_stubs.success_answer(descriptor, fields)
        self._enqueue(descriptor, v2_stubs.label(descriptor, canned), 200, b"", headers, expected_payload, canned)

    def _add_v2_error(
        self,
        descriptor: Descriptor,
        code: str,
        message: str,
        status: Optional[int],
        detail: Any,
        level: Optional[str],
        expected_payload: Any,
        headers: Optional[Mapping[str, str]],
    ) -> None:
        v2_stubs.require_key(descriptor, self.engine.credentials)
        level = "result" if level is None else level
        problems = v2_stubs.error_problems(status, code, message, detail, level)
        if problems:
            raise StubResponseError(descriptor.id, problems)
        canned = v2_stubs.error_answer(descriptor, level, code, message)
        self._enqueue(descriptor, v2_stubs.label(descriptor, canned), 200, b"", headers, expected_payload, canned)

    def _encode_answer(self, descriptor: Descriptor, data: Any) -> bytes:
        if data is None:
            return b""
        public_key = self.engine.credentials.public_key()
        if public_key is None:
            raise UsageError("the engine's signer has no public_key(): cannot encrypt answer fields for it")
        sealed = map_encrypted(descriptor.response, data, lambda value, path: oaep_encrypt(public_key, value))
        return _encode(descriptor, sealed)

    # -- answering (called by the stub plugin) -------------------------------------------------

    def _answer(self, request: Request) -> RawResponse:
        descriptor = self._descriptor_of(request)
        with self._lock:
            queued = self._take(descriptor, request)
        if queued.v2 is not None:
            return self._v2_answer(queued.v2, queued.headers, descriptor, request)
        return self._sign(queued)

    def _descriptor_of(self, request: Request) -> Descriptor:
        call = self._calls.pop(id(request), None)
        if call is not None:
            return call.descriptor
        # A request sent without the wxpay_before_send hook: name it by its method and path.
        return self.engine.endpoint(f"{request.method} {request.target.partition('?')[0]}")

    def _take(self, descriptor: Descriptor, request: Request) -> _Queued:
        if not self._queue:
            raise StubAssertionError(f"no response queued for {descriptor.id}")
        queued = self._queue[0]
        if queued.endpoint_id != descriptor.id:
            raise StubAssertionError(f"expected a call to {queued.endpoint_id}, got a call to {descriptor.id}")
        if queued.checks_payload:
            self._check_payload(queued.expected, descriptor, request)
        return self._queue.popleft()

    def _check_payload(self, expected: Any, descriptor: Descriptor, request: Request) -> None:
        differences = _differences(expected, self._sent_payload(descriptor, request, expected))
        if differences:
            listing = "\n  ".join(differences)
            raise StubAssertionError(f"the payload sent to {descriptor.id} is not expected_payload:\n  {listing}")

    def _sent_payload(self, descriptor: Descriptor, request: Request, expected: Any) -> Any:
        if descriptor.protocol == "v2":
            payload = v2_stubs.sent_fields(descriptor, request, expected)
        else:
            payload = _decoded_request(descriptor, request)
        fields = {**descriptor.request.query, **descriptor.request.body}
        return map_encrypted(fields, payload, lambda value, path: _Secret(self._plaintexts.get(value, value)))

    def _sign(self, queued: _Queued) -> RawResponse:
        timestamp = int(self.engine.clock())  # the engine's clock, injected or not
        answer = signed_answer(queued.status, queued.body, self.key_id, self._key, timestamp)
        return RawResponse(answer.status, answer.headers.merged(queued.headers), answer.body)

    def _v2_answer(
        self, canned: v2_stubs.CannedV2, headers: Mapping[str, str], descriptor: Descriptor, request: Request
    ) -> RawResponse:
        body = canned.document(descriptor, request, self.engine.credentials)
        return RawResponse(200, Headers(v2_stubs.XML_HEADERS).merged(headers), body)

    def __repr__(self) -> str:
        return f"<Stubber key_id={self.key_id} active={self.active} queued={len(self._queue)}>"


class _StubTransportPlugin:
    """Serves every base URL while registered, and learns which call each request belongs to."""

    def __init__(self, stubber: Stubber) -> None:
        self._stubber = stubber
        self.transport = MockTransport(stubber._answer, record=False)

    @hookimpl(tryfirst=True)
    def wxpay_transport(self, config: TransportConfig) -> MockTransport:
        return self.transport

    @hookimpl
    def wxpay_before_send(self, call: CallInfo, request: Request) -> None:
        self._stubber._calls[id(request)] = call

    @hookimpl(wrapper=True)
    def wxpay_encrypt_field(self, plaintext: str, key: PlatformKey) -> Any:
        ciphertext = yield
        if isinstance(ciphertext, str):
            self._stubber._plaintexts[ciphertext] = plaintext  # so expected_payload compares plaintexts
        return ciphertext


class _StubVerifierPlugin:
    """Verifies answers signed with the stub key (the built-in check, one key); defers on others."""

    def __init__(self, key: PlatformKey) -> None:
        self.key_id = key.key_id
        self._keyring = PlatformKeyring([key])

    @hookimpl
    def wxpay_verify_response(self, response: RawResponse, keyring: PlatformKeyring, now: int) -> Optional[str]:
        if normalize_serial(response.headers.get(H_SERIAL, "")) != normalize_serial(self.key_id):
            return None
        return verify_signed(response.headers, response.body, self._keyring, now)


# -- checking canned answers -------------------------------------------------------------------


def _is_status(status: Any, low: int, high: int) -> bool:
    return isinstance(status, int) and not isinstance(status, bool) and low <= status <= high


def _error_problems(status: Any, code: Any, message: Any) -> list[str]:
    problems = [] if _is_status(status, 400, 599) else [f"error status must be 4xx or 5xx, got {status!r}"]
    for name, value in (("code", code), ("message", message)):
        if not isinstance(value, str) or not value:
            problems.append(f"{name} must be a non-empty string, got {value!r}")
    return problems


def _error_body(code: str, message: str, detail: Any) -> dict[str, Any]:
    """The real error body shape: ``code``, ``message`` and, when there is one, ``detail``."""
    body: dict[str, Any] = {"code": code, "message": message}
    if detail is not None:
        body["detail"] = detail
    return body


def _answer_problems(descriptor: Descriptor, data: Any) -> list[str]:
    """Required fields and types of a canned answer; unknown fields, enums and limits pass."""
    if descriptor.free_form:
        return []
    if data is not None and not isinstance(data, dict):
        return [f"answer must be an object, got {_json_name(data)} @ $"]
    fields = {name: _structural(field) for name, field in descriptor.response.items()}
    as_payload = Descriptor(id=descriptor.id, method="POST", path="/", request=RequestSpec(body=fields))
    problems = compile_validator(as_payload)(data or {})
    return [problem for problem in problems if not problem.startswith("unknown field @ ")]


def _json_name(value: Any) -> str:
    return _JSON_NAMES.get(type(value), type(value).__name__)


def _structural(field: Field) -> Field:
    """The field with only its type, presence and encryption left to check."""
    return attrs.evolve(
        field,
        enum=None,
        min_length=None,
        max_length=None,
        minimum=None,
        maximum=None,
        pattern=None,
        min_items=None,
        max_items=None,
        fields={name: _structural(f) for name, f in field.fields.items()},
        items=_structural(field.items) if field.items is not None else None,
    )


def _encode(descriptor: Descriptor, data: Any) -> bytes:
    try:
        return encode_json(data)
    except (TypeError, ValueError) as exc:
        raise StubResponseError(descriptor.id, [f"answer is not JSON: {exc} @ $"]) from None


# -- comparing payloads on the wire ------------------------------------------------------------


def _decoded_request(descriptor: Descriptor, request: Request) -> Any:
    """What a request carried, as one payload: path parameters, query, body (all decoded)."""
    body = _decoded_body(request)
    if body is not None and not isinstance(body, dict):
        return body  # a free-form JSON body that is not an object
    target = request.target
    return {**path_parameters(descriptor.path, target), **query_values(target), **(body or {})}


def _decoded_body(request: Request) -> Any:
    if not request.body:
        return None
    content_type = request.headers.get("Content-Type", "")
    if content_type.startswith("multipart/form-data"):
        parts = multipart.decode(content_type, request.body)
        return {"meta": json.loads(parts["meta"][1]), "file": parts["file"][1]}
    return json.loads(request.body)


def _expected(descriptor: Descriptor, payload: Any) -> Any:
    """``_expected_on_wire``, refusing what JSON cannot say (NaN, a set, a cycle) as a ``StubResponseError``."""
    try:
        return _expected_on_wire(descriptor, payload)
    except (TypeError, ValueError) as exc:  # encode_json's refusals name a type or a rule, never a value
        problem = f"expected_payload is not a JSON value: {exc}"
    raise StubResponseError(descriptor.id, [problem])


def _expected_on_wire(descriptor: Descriptor, payload: Any) -> Any:
    """``payload`` as ``_decoded_request`` would read it back after the engine sent it."""
    if descriptor.protocol == "v2":
        fields = descriptor.request.body  # pay_bank's bank card number and name: compared as plaintext
        return map_encrypted(fields, v2_stubs.expected_fields(descriptor, payload), lambda value, path: _Secret(value))
    if descriptor.free_form and descriptor.body_kind != "none":
        return {} if payload is None else json.loads(encode_json(payload))
    if not isinstance(payload, dict):
        return payload
    if descriptor.body_kind == "multipart":
        payload = multipart.complete_meta(descriptor, payload)
    parts = split_payload(descriptor, payload)
    placed = {*parts.path, *parts.query, *(parts.body or {})}
    target = build_target(descriptor.path, parts.path, parts.query)
    wire = {**_decoded_target(descriptor, target), **_expected_body(descriptor, parts.body)}
    wire.update({name: value for name, value in payload.items() if name not in placed})
    fields = {**descriptor.request.query, **descriptor.request.body}
    return map_encrypted(fields, wire, lambda value, path: _Secret(value))


def _decoded_target(descriptor: Descriptor, target: str) -> dict[str, str]:
    decoded: dict[str, Any] = {**path_parameters(descriptor.path, target)}
    return {**decoded, **query_values(target)}


def _expected_body(descriptor: Descriptor, body: Any) -> dict[str, Any]:
    if descriptor.body_kind == "none" or not body:
        return {}
    if descriptor.body_kind == "multipart":
        meta = json.loads(encode_json(body.get("meta") or {}))
        return {"meta": meta, "file": multipart.upload_content(descriptor, body) or b""}
    return cast(dict[str, Any], json.loads(encode_json(body)))


def _differences(expected: Any, sent: Any, path: str = "$") -> list[str]:
    """Every difference between two decoded payloads, as ``"expected …, sent … @ $.path"``."""
    if isinstance(expected, list) and isinstance(sent, list) and len(expected) == len(sent):
        pairs = enumerate(zip(expected, sent, strict=True))
        return [found for i, (item, other) in pairs for found in _differences(item, other, f"{path}[{i}]")]
    if not (isinstance(expected, dict) and isinstance(sent, dict)):
        if expected == sent:
            return []
        if isinstance(expected, _Secret) or isinstance(sent, _Secret):
            return [f"encrypted value differs from the expected one (neither is shown) @ {path}"]
        return [f"expected {expected!r}, sent {sent!r} @ {path}"]
    found: list[str] = []
    for name in [*expected, *(n for n in sent if n not in expected)]:
        where = f"{path}.{name}"
        if name not in sent:
            found.append(f"expected {expected[name]!r}, not sent @ {where}")
        elif name not in expected:
            found.append(f"sent {sent[name]!r}, not expected @ {where}")
        else:
            found.extend(_differences(expected[name], sent[name], where))
    return found
