"""Built-in hook for APIv2 bodies: ``engine.v2.codec``'s XML codec for ``protocol: v2`` descriptors.

Design decisions:

* It answers ``wxpay_body_codec`` for ``protocol: v2`` descriptors and defers for every other one.
* The codec's module (and with it the XML parser) is imported at the first APIv2 call, not when the
  engine registers its built-ins: an APIv3-only process never loads it (``engine.v2`` says more).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from engine.descriptor import Descriptor
from engine.hookspecs import hookimpl

if TYPE_CHECKING:
    from engine.v2.codec import XmlCodec


@hookimpl(trylast=True)
def wxpay_body_codec(descriptor: Descriptor) -> Optional[XmlCodec]:
    if descriptor.protocol != "v2":
        return None
    from engine.v2.codec import XML_CODEC

    return XML_CODEC
