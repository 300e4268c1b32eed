"""Built-in hook for APIv2 signing: ``engine.v2.signer.sign_v2`` for ``protocol: v2`` descriptors.

Design decisions:

* It answers ``wxpay_sign_request`` for ``protocol: v2`` descriptors with a whole signed ``Request``
  (APIv2 signs inside the body, not in a header) and defers for every other family.
* The signer's module is imported at the first APIv2 call, not when the engine registers its
  built-ins (``engine.v2`` says why).
"""

from __future__ import annotations

from typing import Optional

from engine.descriptor import Descriptor
from engine.hookspecs import SigningContext, hookimpl
from engine.wire import Request


@hookimpl(trylast=True)
def wxpay_sign_request(request: Request, signing: SigningContext, descriptor: Descriptor) -> Optional[Request]:
    if descriptor.protocol != "v2":
        return None
    from engine.v2.signer import sign_v2

    return sign_v2(descriptor, request, signing.credentials)
