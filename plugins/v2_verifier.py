"""Built-in hook for APIv2 answers: ``engine.v2.verifier.verify_v2`` for ``protocol: v2`` descriptors.

Design decisions:

* It answers ``wxpay_verify_response`` for ``protocol: v2`` descriptors and defers for every other
  one. The pipeline never asks it about an operation whose descriptor says ``signed_answer: false``.
* The verifier's module is imported at the first APIv2 call, not when the engine registers its
  built-ins (``engine.v2`` says why).
"""

from __future__ import annotations

from typing import Optional

from engine.descriptor import Descriptor
from engine.hookspecs import hookimpl
from engine.keys import MerchantCredentials
from engine.wire import RawResponse, Request


@hookimpl(trylast=True)
def wxpay_verify_response(
    response: RawResponse,
    descriptor: Optional[Descriptor],
    request: Optional[Request],
    credentials: MerchantCredentials,
) -> Optional[str]:
    if descriptor is None or descriptor.protocol != "v2":
        return None
    from engine.v2.verifier import verify_v2

    return verify_v2(response, descriptor, request, credentials)
