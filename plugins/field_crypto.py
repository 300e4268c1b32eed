"""Built-in sensitive-field cipher: RSA-OAEP with SHA-1/MGF1-SHA-1 (PROTOCOL.md §3).

Which fields are encrypted is the descriptor's business (``encrypted: true``); this plugin only
turns one value into ciphertext and back. The engine walks the fields and sets ``Wechatpay-Serial``
to ``key.key_id``, so the serial always names the key the fields were encrypted with.
"""

from __future__ import annotations

from engine.crypto import oaep_encrypt
from engine.hookspecs import hookimpl
from engine.keys import MerchantCredentials, PlatformKey


@hookimpl(trylast=True)
def wxpay_encrypt_field(plaintext: str, key: PlatformKey) -> str:
    return oaep_encrypt(key.public_key, plaintext)


@hookimpl(trylast=True)
def wxpay_decrypt_field(ciphertext: str, credentials: MerchantCredentials) -> str:
    return credentials.decrypt(ciphertext)
