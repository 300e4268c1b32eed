"""Built-in signer: ``WECHATPAY2-SHA256-RSA2048`` Authorization over the five-line message.

The message is built by ``engine.protocol`` from the request record (raw target, exact body bytes,
or an upload's exact ``meta`` JSON), so what is signed is what the transport sends. It signs APIv3
descriptors only and defers (``None``) for any other protocol family.
The merchant key never leaves the key-level signer of ``signing.credentials`` (a private key in
memory, or a KMS/HSM behind ``Engine(signer=...)``).
"""

from __future__ import annotations

from typing import Optional

from engine.descriptor import Descriptor
from engine.hookspecs import SigningContext, hookimpl
from engine.protocol import SCHEME_RSA, format_authorization, request_message
from engine.wire import Request


@hookimpl(trylast=True)
def wxpay_sign_request(request: Request, signing: SigningContext, descriptor: Descriptor) -> Optional[str]:
    if descriptor.protocol != "v3":
        return None
    message = request_message(request.method, request.target, signing.timestamp, signing.nonce, request.body_to_sign)
    credentials = signing.credentials
    return format_authorization(
        SCHEME_RSA,
        {
            "mchid": credentials.mchid,
            "nonce_str": signing.nonce,
            "timestamp": str(signing.timestamp),
            "serial_no": credentials.serial_no,
            "signature": credentials.sign(message),
        },
    )
