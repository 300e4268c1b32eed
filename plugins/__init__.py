"""The engine's built-in plugins, installed as ``engine.plugins``.

Each module is an ordinary pluggy plugin registered by module, exactly as a third-party plugin is,
and every built-in hook implementation is ``trylast`` so that a user plugin answering the same hook
takes precedence without unregistering anything.

* ``signer``            SHA256-RSA2048 request signatures (``wxpay_sign_request``)
* ``verifier``          answer and callback verification, public key and certificates at once
* ``field_crypto``      RSA-OAEP (SHA-1) sensitive-field encryption and decryption
* ``call_log``          one INFO line per call, redacted DEBUG detail
* ``aiohttp_transport`` HTTP(S) with a keep-alive pool
* ``sandbox_transport`` the in-process emulator (``Engine.sandbox()``)
"""
