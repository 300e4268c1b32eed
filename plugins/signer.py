"""Built-in signer: ``WECHATPAY2-SHA256-RSA2048`` Authorization over the five-line message.

The message is built by ``engine.protocol`` from the request record (raw target, exact body bytes,
or an upload's exact ``meta`` JSON), so what is signed is what the transport sends. It signs APIv3
descriptors only and defers (``None``) for any other protocol family.
The merchant key never leaves the key-level signer of ``signing.credentials`` (a private key in
memory, or a KMS/HSM behind ``Engine(signer=...)``). Credentials without a serial and a signer (an
APIv2-only engine) are refused with ``require_apiv3``'s message; the pipeline refuses such calls
earlier still, so this is the second line.
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
    credentials = signing.credentials
    serial_no, _ = credentials.require_apiv3(f"{descriptor.id} is an APIv3 operation: it")
    message = request_message(request.method, request.target, signing.timestamp, signing.nonce, request.body_to_sign)
    return format_authorization(
        SCHEME_RSA,
        {
            "mchid": credentials.mchid,
            "nonce_str": signing.nonce,
            "timestamp": str(signing.timestamp),
            "serial_no": serial_no,
            "signature": credentials.sign(message),
        },
    )
