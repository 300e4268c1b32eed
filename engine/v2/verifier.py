"""APIv2's verifier: the answer's ``sign``, checked with the APIv2 key and the request's algorithm.

Design decisions:

* ``engine.plugins.v2_verifier`` answers ``wxpay_verify_response`` with ``verify_v2`` for
  ``protocol: v2`` descriptors. The pipeline never asks about an operation whose descriptor says
  ``signed_answer: false``.
* **What is verified** (PROTOCOL.md §11): an answer whose ``return_code`` is ``SUCCESS`` and whose
  ``result_code``, when present, is ``SUCCESS``. A FAIL answer is not data: it raises its
  ``ReturnCodeError``/``ResultCodeError`` here (a ``result_code=FAIL`` answer's sign is still
  checked, only to report ``.verified``).
* **One algorithm.** The answer is verified with the sign type its request used
  (``engine.v2.signing.sign_type_for``, the signer's own rule). An answer that declares another
  ``sign_type`` is refused (``sign_type_mismatch``), and so is one that verifies only under the other
  algorithm (``wrong_sign_type``): inferring the type from the answer, as some SDKs do from the sign's
  length, would let whoever writes the answer choose the weaker check.
* The XML is read by the refusing parser (DOCTYPE, entities, size: ``MalformedResponseError``)
  before anything else; a non-200 answer is reported as unverified (APIv2 signs only 200 bodies).
* Messages name fields and algorithms, never the key or a sign.
"""

from __future__ import annotations

from typing import Optional

from engine.descriptor import Descriptor
from engine.errors import SignatureError
from engine.keys import MerchantCredentials
from engine.v2 import answers, signing
from engine.v2.signer import apiv2_key
from engine.wire import RawResponse, Request


def verify_v2(
    response: RawResponse, descriptor: Descriptor, request: Optional[Request], credentials: MerchantCredentials
) -> str:
    """``apiv2:<sign type>`` for a verified SUCCESS answer; the answer's error, or ``SignatureError``."""
    if response.status != 200:
        raise SignatureError("unverified", f"APIv2 signs 200 answers only; this one is {response.status}")
    key = apiv2_key(descriptor, credentials)
    fields = answers.parse_answer(response.body)
    expected = signing.sign_type_for(
        descriptor, (request.fields if request else None) or {}, credentials.apiv2_sign_type
    )
    if not answers.is_success(fields):
        signed = bool(fields.get(signing.SIGN_FIELD)) and signing.verifies(fields, key, expected)
        error = answers.answer_error(fields, verified=signed, status=response.status)
        assert error is not None  # not a success, so an error
        raise error
    declared = fields.get(signing.SIGN_TYPE_FIELD)
    if declared and declared != expected:
        raise SignatureError(
            "sign_type_mismatch", f"the answer declares sign_type {declared}; its request used {expected}"
        )
    if not fields.get(signing.SIGN_FIELD):
        raise SignatureError("missing_sign", "the APIv2 answer says SUCCESS but carries no sign")
    if signing.verifies(fields, key, expected):
        return f"apiv2:{expected}"
    if signing.verifies(fields, key, signing.other(expected)):
        raise SignatureError(
            "wrong_sign_type", f"the answer is signed with {signing.other(expected)}; its request used {expected}"
        )
    raise SignatureError("mismatch", f"the APIv2 sign ({expected}) does not verify with the APIv2 key")
