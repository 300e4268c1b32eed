"""Built-in family facts of APIv3 (``wxpay_protocol_family``), for ``protocol: v3`` descriptors.

Design decisions:

* An APIv3 call needs the APIv3 credentials (a serial and a signer). Without them (an APIv2-only
  engine) the pipeline refuses the call with ``MerchantCredentials.apiv3_refusal``'s message, the
  one ``require_apiv3`` raises everywhere else, before anything is encrypted and before any signer
  is asked: a replacement signer (or the Stubber) would otherwise sign and send a request whose
  answer the engine could never verify.
* APIv3 signs its answers in the ``Wechatpay-*`` headers, so a held 2xx answer is screened on them
  (``engine.protocol.screen_answer``) before its body is read; a 2xx without them is refused unread.
* It defers (``None``) for every other family.
"""

from __future__ import annotations

from typing import Optional

from engine.descriptor import Descriptor
from engine.hookspecs import Family, hookimpl
from engine.keys import MerchantCredentials
from engine.protocol import screen_answer


def apiv3_refusal(descriptor: Descriptor, credentials: MerchantCredentials) -> Optional[str]:
    """Why ``credentials`` cannot make ``descriptor``'s APIv3 calls, or ``None``."""
    return credentials.apiv3_refusal(f"{descriptor.id} is an APIv3 operation: it")


APIV3 = Family(refusal=apiv3_refusal, screen=screen_answer)


@hookimpl(trylast=True)
def wxpay_protocol_family(descriptor: Descriptor) -> Optional[Family]:
    return APIV3 if descriptor.protocol == "v3" else None
