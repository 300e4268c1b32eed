"""Built-in sensitive-field cipher: RSA-OAEP with SHA-1/MGF1-SHA-1 (PROTOCOL.md §3).

Which fields are encrypted is the descriptor's business (``encrypted: true``), and so are the key
and the scheme (its ``encryption`` trait); this plugin only turns one value into ciphertext and
back, for the scheme it implements, and defers (``None``) for any other. The engine walks the
fields, picks the key the trait names and, for the keyring's key, sets ``Wechatpay-Serial`` to
``key.key_id``, so the serial always names the key the fields were encrypted with.
"""

from __future__ import annotations

from typing import Optional

from engine.crypto import oaep_encrypt
from engine.descriptor import OAEP_SHA1
from engine.hookspecs import hookimpl
from engine.keys import MerchantCredentials, PlatformKey


@hookimpl(trylast=True)
def wxpay_encrypt_field(plaintext: str, key: PlatformKey, scheme: str) -> Optional[str]:
    if scheme != OAEP_SHA1:
        return None
    return oaep_encrypt(key.public_key, plaintext)


@hookimpl(trylast=True)
def wxpay_decrypt_field(ciphertext: str, credentials: MerchantCredentials) -> str:
    return credentials.decrypt(ciphertext)
