"""APIv2's signer: ``sign`` (MD5 or HMAC-SHA256 with the APIv2 key) written into the request itself.

Design decisions:

* ``engine.plugins.v2_signer`` answers ``wxpay_sign_request`` for ``protocol: v2`` descriptors with
  ``sign_v2``'s whole signed ``Request`` (APIv2 signs inside the body, not in a header).
* The algorithm is ``engine.v2.signing.sign_type_for``'s: the caller's ``sign_type``, else the
  engine's ``apiv2_sign_type`` where the operation allows it, else MD5. When the operation has a
  ``sign_type`` field the chosen type is written into it, so WeChat Pay and the verifier agree on it.
* The sign covers the request's ``fields`` (everything but file parts), and the codec appends
  ``sign_type``/``sign`` to the same encoding: what is signed is what is sent. An operation whose
  descriptor fills no signature (``appauth/authindex``, a browser redirect) is sent as it is.
* No APIv2 key, no request: a ``ConfigurationError`` naming ``apiv2_key``, before anything is sent.
"""

from __future__ import annotations

from engine.descriptor import Descriptor
from engine.errors import ConfigurationError, ValidationError
from engine.keys import MerchantCredentials
from engine.secret import Secret
from engine.v2 import signing
from engine.v2.codec import XML_CODEC
from engine.wire import Request


def sign_v2(descriptor: Descriptor, request: Request, credentials: MerchantCredentials) -> Request:
    """``request`` with its ``sign_type`` and ``sign`` written in."""
    key = apiv2_key(descriptor, credentials)
    fields = dict(request.fields or {})
    extra: dict[str, str] = {}
    names = {kind: name for name, kind in descriptor.fills.items()}
    if "signature" in names:
        algorithm = signing.sign_type_for(descriptor, fields, credentials.apiv2_sign_type)
        if algorithm not in signing.SIGN_TYPES:
            raise ValidationError(
                descriptor.id, [f"must be MD5 or HMAC-SHA256 @ $.{names.get('sign_type', 'sign_type')}"]
            )
        if "sign_type" in names and names["sign_type"] not in fields:
            extra[names["sign_type"]] = algorithm
        extra[names["signature"]] = signing.sign({**fields, **extra}, key, algorithm)
    return XML_CODEC.append(descriptor, request, extra)


def apiv2_key(descriptor: Descriptor, credentials: MerchantCredentials) -> Secret:
    if credentials.apiv2_key is None:
        raise ConfigurationError(
            f"{descriptor.id} is an APIv2 operation: give Engine(apiv2_key=...), the 32-character APIv2 key "
            "set in the merchant platform"
        )
    return credentials.apiv2_key
