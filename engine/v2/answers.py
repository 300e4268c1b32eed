"""What an APIv2 answer means: its fields, whether it says SUCCESS, and the error it stands for.

Design decisions:

* APIv2 reports errors inside an HTTP 200 body, at two levels (PROTOCOL.md §11): ``return_code=FAIL``
  (the request was refused before any business logic: sign, parameters, certificate; such answers
  carry no ``sign``) becomes ``ReturnCodeError``; ``return_code=SUCCESS`` with ``result_code=FAIL``
  (the business step failed: ``ORDERPAID``, ``NOTENOUGH``...) becomes ``ResultCodeError``. Both carry
  ``err_code``/``err_code_des`` (or the ``error_code``/``error_code_des`` a few operations use).
* Only an answer whose ``return_code`` is ``SUCCESS`` and whose ``result_code``, when present, is
  ``SUCCESS`` is verified and returned as data; ``is_success`` is that one rule.
* ``SYSTEMERROR``, ``BANKERROR`` and ``USERPAYING`` mean "the result is not known yet" (WeChat Pay's
  documented advice is to query the order): their ``ResultCodeError`` is ``outcome_unknown``, so the
  pipeline attaches the call's ``Reconcile`` as it does for an APIv3 5xx.
* Parsed documents are memoised by their bytes (a small LRU): the verifier and the decoder of one
  answer read the same fields without parsing twice. The cache holds immutable copies.
* Answer values are text on the wire; ``typed`` turns them into the descriptor's types where the
  text is a number of the stated type (``total_fee`` -> ``1``), and leaves everything else text, so
  nothing is lost. ``coupon_fee_0`` takes the type of the catalogue's ``coupon_fee_$n``.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Mapping, Optional

from engine.descriptor import Descriptor, Field
from engine.errors import MalformedResponseError, ResultCodeError, ReturnCodeError
from engine.v2 import xmlcodec

SUCCESS = "SUCCESS"
OUTCOME_UNKNOWN = ("SYSTEMERROR", "BANKERROR", "USERPAYING")
_INTEGER = re.compile(r"-?(0|[1-9][0-9]*)\Z")
_NUMBERED = re.compile(r"(.*?)_[0-9]+\Z")


def parse_answer(body: bytes) -> dict[str, str]:
    """The fields of an XML answer; ``MalformedResponseError`` (parsed no further) for anything unsafe."""
    try:
        return dict(_parsed(body))
    except xmlcodec.MalformedXmlError as exc:
        raise MalformedResponseError(f"APIv2 answer refused: {exc}") from None


@functools.lru_cache(maxsize=64)
def _parsed(body: bytes) -> tuple[tuple[str, str], ...]:
    return tuple(xmlcodec.parse(body).items())


def is_success(fields: Mapping[str, str]) -> bool:
    """``return_code`` is SUCCESS and ``result_code``, when present, too: the answers that are verified."""
    return fields.get("return_code") == SUCCESS and fields.get("result_code", SUCCESS) == SUCCESS


def answer_error(
    fields: Mapping[str, str], verified: bool = False, status: int = 200
) -> Optional[ReturnCodeError | ResultCodeError]:
    """The error a FAIL answer stands for, or ``None`` for a SUCCESS one."""
    if "return_code" not in fields:
        raise MalformedResponseError("APIv2 answer has no return_code")
    err_code = fields.get("err_code") or fields.get("error_code") or ""
    err_code_des = fields.get("err_code_des") or fields.get("error_code_des") or ""
    if fields["return_code"] != SUCCESS:
        message = fields.get("return_msg") or err_code_des or "return_code is not SUCCESS"
        return ReturnCodeError(message, err_code, err_code_des, status=status)
    if fields.get("result_code", SUCCESS) != SUCCESS:
        message = err_code_des or fields.get("return_msg") or "result_code is not SUCCESS"
        unknown = err_code in OUTCOME_UNKNOWN
        return ResultCodeError(
            message, err_code, err_code_des, status=status, verified=verified, outcome_unknown=unknown
        )
    return None


def typed(descriptor: Descriptor, fields: Mapping[str, str]) -> dict[str, Any]:
    """The answer's fields, integers as integers where the descriptor says so and the text is one."""
    return {name: _typed(_field_for(descriptor.response, name), value) for name, value in fields.items()}


def _field_for(fields: Mapping[str, Field], name: str) -> Optional[Field]:
    field = fields.get(name)
    if field is None and (numbered := _NUMBERED.match(name)) is not None:
        field = fields.get(f"{numbered.group(1)}_$n")
    return field


def _typed(field: Optional[Field], value: str) -> Any:
    if field is not None and field.type == "integer" and _INTEGER.match(value):
        return int(value)
    return value
