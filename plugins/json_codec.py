"""Built-in body codec of APIv3: JSON bodies, ``multipart/form-data`` uploads, no body; JSON answers.

It answers ``wxpay_body_codec`` for descriptors of the ``v3`` family with ``engine.serialize``'s
``JSON_CODEC`` and defers for any other family (APIv2's XML codec is ``engine.v2.codec``, handed out
by ``engine.plugins.v2_codec``).
"""

from __future__ import annotations

from typing import Optional

from engine.descriptor import Descriptor
from engine.hookspecs import hookimpl
from engine.serialize import JSON_CODEC, JsonCodec


@hookimpl(trylast=True)
def wxpay_body_codec(descriptor: Descriptor) -> Optional[JsonCodec]:
    return JSON_CODEC if descriptor.protocol == "v3" else None
