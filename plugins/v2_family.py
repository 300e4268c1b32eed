"""Built-in family facts of APIv2 (``wxpay_protocol_family``), for ``protocol: v2`` descriptors.

Design decisions:

* APIv2 asks nothing of the credentials up front: the APIv2 key is checked by APIv2's signer and
  verifier, which refuse before anything is sent (``engine.v2.signer``), and an operation that is
  neither signed nor answered signed needs no key at all.
* APIv2 signs inside the XML body, not in headers, so no answer is screened on its headers; the
  verifier checks the body (``engine.v2.verifier``).
* It imports nothing of ``engine.v2``: an APIv3-only process never loads it (``engine.v2`` says why).
"""

from __future__ import annotations

from typing import Optional

from engine.descriptor import Descriptor
from engine.hookspecs import Family, hookimpl

APIV2 = Family()


@hookimpl(trylast=True)
def wxpay_protocol_family(descriptor: Descriptor) -> Optional[Family]:
    return APIV2 if descriptor.protocol == "v2" else None
