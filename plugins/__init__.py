"""The engine's built-in plugins, installed as ``engine.plugins``.

Each module is an ordinary pluggy plugin registered by module, exactly as a third-party plugin is,
and every built-in hook implementation is ``trylast`` so that a user plugin answering the same hook
takes precedence without unregistering anything.

* ``json_codec``        APIv3 bodies: JSON, uploads (``wxpay_body_codec``)
* ``signer``            SHA256-RSA2048 request signatures (``wxpay_sign_request``)
* ``verifier``          answer and callback verification, public key and certificates at once
* ``family``            APIv3's family facts: its calls need the APIv3 credentials, answers are screened on headers
* ``field_crypto``      RSA-OAEP (SHA-1) sensitive-field encryption and decryption
* ``call_log``          one INFO line per call, redacted DEBUG detail
* ``aiohttp_transport`` HTTP(S) with a keep-alive pool
* ``sandbox_transport`` the in-process emulator (``Engine.sandbox()``)
* ``v2_codec``          APIv2 bodies: flat XML (refusing DTDs), query strings, form uploads
* ``v2_signer``         APIv2 ``sign`` (MD5 / HMAC-SHA256 with the APIv2 key), inside the request
* ``v2_verifier``       APIv2 answers: ``return_code``/``result_code``, then ``sign`` by the request's type
* ``v2_family``         APIv2's family facts: no credentials asked up front, no header screen

The APIv3 built-ins answer for ``protocol: v3`` descriptors and the APIv2 ones for ``protocol: v2``;
each defers (returns ``None``) for the other family.
"""
