"""What ``engine.testing.Stubber`` needs of APIv2: canned XML answers, signed as WeChat Pay signs them.

Design decisions:

* **A canned answer is a SUCCESS document.** ``return_code`` SUCCESS and ``return_msg`` OK, and
  ``result_code`` SUCCESS and a fresh ``nonce_str`` where the descriptor's answer has them, are
  filled in unless the canned data gives them. Then the data is checked as an APIv3 answer is
  (``engine.testing``: types and required fields; unknown fields pass, since WeChat Pay adds them)
  and for what a flat XML document can carry (``xmlcodec.problems``: scalars only, no control
  characters). The call returns what a real answer would: the document's fields, integers typed
  (``answers.typed``), everything else text.
* **Signed when the call arrives, not when queued.** An answer is signed with the sign type its
  request used (``signing.sign_type_for``, the signer's and the verifier's one rule), which is known
  only then, so the fields are queued and the document is written (in CDATA, as WeChat Pay writes
  it) and signed with the engine's APIv2 key per call. Nothing is trusted for coming from the stub:
  the engine's own verifier (``engine.v2.verifier``) checks the sign. A ``sign`` in the canned data
  is sent as given, so a test can send a forged one; operations whose descriptor says
  ``signed_answer: false`` get none, as from WeChat Pay.
* **FAIL answers at both levels** (``engine.v2.answers``): ``level="result"`` is ``return_code``
  SUCCESS with ``result_code`` FAIL and ``err_code``/``err_code_des`` (``error_code``/... where the
  descriptor spells them so), signed, so the call raises a verified ``ResultCodeError``;
  ``level="return"`` is ``return_code`` FAIL with ``return_msg``, unsigned as WeChat Pay's are, so
  it raises an unverified ``ReturnCodeError``. Both travel in an HTTP 200 body, the only status
  APIv2 signs, so no other status is accepted.
* **No APIv2 key, nothing queued.** An operation that needs the key (its request or its answer is
  signed) is refused with a ``ConfigurationError`` when it is queued, not when the call fails.
* **``expected_payload``** is compared with the request's signable fields (``Request.fields``: the
  XML fields or the query, as text) plus an upload's file bytes. The expected payload is written the
  way the codec writes values (``total_fee=888`` is ``"888"``, ``True`` is ``"true"``); a value the
  codec cannot write stays as it is and is reported as a difference. The fields the engine writes
  itself (the descriptor's ``fills``: ``mch_id``, ``appid``, ``nonce_str``, ``sign_type``, ``sign``)
  are compared only when the expected payload names them: they come from the engine's settings or
  change with every attempt, not from the caller.
"""

from __future__ import annotations

import secrets
from typing import Any, Mapping

import attrs

from engine import multipart
from engine.descriptor import Descriptor
from engine.errors import ConfigurationError
from engine.keys import MerchantCredentials
from engine.v2 import answers, signing, xmlcodec
from engine.wire import Request

XML_HEADERS = {"Content-Type": "text/xml; charset=UTF-8"}
LEVELS = ("result", "return")


@attrs.frozen
class CannedV2:
    """An APIv2 answer waiting for its call: its fields as text, and whether it is to be signed."""

    fields: Mapping[str, str] = attrs.field(repr=False)
    signed: bool

    def document(self, descriptor: Descriptor, request: Request, credentials: MerchantCredentials) -> bytes:
        """The answer's XML, signed with the sign type ``request`` used (unless it gives its own sign)."""
        fields = dict(self.fields)
        if self.signed and signing.SIGN_FIELD not in fields:
            key = credentials.apiv2_key
            assert key is not None  # require_key refused to queue it otherwise
            sign_type = signing.sign_type_for(descriptor, request.fields or {}, credentials.apiv2_sign_type)
            fields[signing.SIGN_FIELD] = signing.sign(fields, key, sign_type)
        return xmlcodec.encode_cdata(fields)


def require_key(descriptor: Descriptor, credentials: MerchantCredentials) -> None:
    """``ConfigurationError`` when ``descriptor`` needs the APIv2 key and the engine has none."""
    needs_key = descriptor.signed_answer or "signature" in descriptor.fills.values()
    if needs_key and credentials.apiv2_key is None:
        raise ConfigurationError(
            f"cannot stub {descriptor.id}: an APIv2 operation is signed with the APIv2 key (its request by "
            "the engine, its answer by the Stubber), and this engine has none; give Engine(apiv2_key=...)"
        )


# -- success answers -----------------------------------------------------------------------------


def success_fields(descriptor: Descriptor, data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` with the SUCCESS envelope filled in where it gives none (see the module docstring)."""
    envelope: dict[str, Any] = {"return_code": answers.SUCCESS, "return_msg": "OK"}
    if "result_code" in descriptor.response:
        envelope["result_code"] = answers.SUCCESS
    if "nonce_str" in descriptor.response:
        envelope["nonce_str"] = secrets.token_hex(16).upper()
    return {**envelope, **data}


def checked_view(descriptor: Descriptor) -> Descriptor:
    """``descriptor`` with ``sign`` optional in its answer: the stub writes it when the call arrives."""
    sign = descriptor.response.get(signing.SIGN_FIELD)
    if sign is None:
        return descriptor
    response = {**descriptor.response, signing.SIGN_FIELD: attrs.evolve(sign, required=False)}
    return attrs.evolve(descriptor, response=response)


def outcome_problems(fields: Mapping[str, Any]) -> list[str]:
    """A canned success that says FAIL: it would raise, so it is queued with ``add_error`` instead."""
    return [
        f"{name} must be SUCCESS in a canned success; queue FAIL answers with add_error @ $.{name}"
        for name in ("return_code", "result_code")
        if name in fields and fields[name] != answers.SUCCESS
    ]


def carriage_problems(fields: Mapping[str, Any]) -> list[str]:
    """What a flat XML document cannot carry, one ``"message @ $.name"`` per field."""
    return xmlcodec.problems(fields)


def success_answer(descriptor: Descriptor, fields: Mapping[str, Any]) -> CannedV2:
    """The checked fields as the text they travel as, signed when the operation's answers are."""
    texts = {name: text for name, value in fields.items() if (text := xmlcodec.scalar_text(value)) is not None}
    return CannedV2(texts, descriptor.signed_answer)


# -- FAIL answers --------------------------------------------------------------------------------


def error_problems(status: Any, code: Any, message: Any, detail: Any, level: Any) -> list[str]:
    """Why ``add_error``'s arguments cannot make an APIv2 FAIL answer."""
    problems: list[str] = []
    if status is not None and not (type(status) is int and status == 200):
        problems.append(f"APIv2 answers FAIL in an HTTP 200 body; leave status out, got {status!r}")
    if level not in LEVELS:
        problems.append(f"level must be 'result' (result_code FAIL) or 'return' (return_code FAIL), got {level!r}")
    if not isinstance(code, str) or (not code and level != "return"):
        problems.append(f"code must be a non-empty string (the err_code), got {code!r}")
    if not isinstance(message, str) or not message:
        problems.append(f"message must be a non-empty string, got {message!r}")
    if detail is not None:
        problems.append("detail belongs to APIv3 error bodies; an APIv2 FAIL answer has err_code and err_code_des")
    texts = {name: value for name, value in (("code", code), ("message", message)) if isinstance(value, str)}
    problems.extend(xmlcodec.problems(texts))  # a control character XML 1.0 cannot carry
    return problems


def error_answer(descriptor: Descriptor, level: str, code: str, message: str) -> CannedV2:
    """A FAIL answer: ``result_code`` FAIL (signed like a success) or ``return_code`` FAIL (unsigned)."""
    code_name, text_name = _error_names(descriptor)
    if level == "return":
        fields = {"return_code": "FAIL", "return_msg": message, **({code_name: code} if code else {})}
        return CannedV2(fields, signed=False)
    fields = {"return_code": answers.SUCCESS, "return_msg": "OK", "result_code": "FAIL"}
    if "nonce_str" in descriptor.response:
        fields["nonce_str"] = secrets.token_hex(16).upper()
    return CannedV2({**fields, code_name: code, text_name: message}, descriptor.signed_answer)


def _error_names(descriptor: Descriptor) -> tuple[str, str]:
    """``err_code``/``err_code_des``, or ``error_code``/``error_code_des`` where the answer spells them so."""
    if "error_code" in descriptor.response and "err_code" not in descriptor.response:
        return "error_code", "error_code_des"
    return "err_code", "err_code_des"


# -- expected payloads ---------------------------------------------------------------------------


def expected_fields(descriptor: Descriptor, payload: Any) -> Any:
    """``payload`` as ``sent_fields`` reads a request back: text where the codec writes text."""
    if not isinstance(payload, dict):
        return payload
    return {name: _as_sent(descriptor, name, value) for name, value in payload.items()}


def _as_sent(descriptor: Descriptor, name: str, value: Any) -> Any:
    field = descriptor.request.body.get(name)
    if field is not None and field.type == "file":
        return multipart.file_bytes(value, multipart.size_limit(field))
    text = xmlcodec.scalar_text(value)
    return value if text is None else text


def sent_fields(descriptor: Descriptor, request: Request, expected: Any) -> dict[str, Any]:
    """What ``request`` carried (signable fields, an upload's files), minus fills ``expected`` leaves out."""
    sent: dict[str, Any] = dict(request.fields or {})
    if descriptor.body_kind == "multipart":
        sent.update(_file_parts(descriptor, request))
    named = expected if isinstance(expected, dict) else {}
    return {name: value for name, value in sent.items() if name in named or name not in descriptor.fills}


def _file_parts(descriptor: Descriptor, request: Request) -> dict[str, bytes]:
    files = {name for name, field in descriptor.request.body.items() if field.type == "file"}
    parts = multipart.decode(request.headers.get("Content-Type", ""), request.body)
    return {name: content for name, (_, content) in parts.items() if name in files}


def label(descriptor: Descriptor, canned: CannedV2) -> str:
    """How ``assert_no_pending_responses`` names a queued APIv2 answer: its id and outcome."""
    fields = canned.fields
    code = fields.get("err_code") or fields.get("error_code") or ""
    if fields.get("return_code") != answers.SUCCESS:
        return f"{descriptor.id} (return_code FAIL{' ' + code if code else ''})"
    if fields.get("result_code", answers.SUCCESS) != answers.SUCCESS:
        return f"{descriptor.id} (result_code FAIL {code})"
    return f"{descriptor.id} (SUCCESS)"
