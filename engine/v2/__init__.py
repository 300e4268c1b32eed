"""APIv2, the legacy XML protocol, as data plus plugins on the same executor (PROTOCOL.md §11).

The pieces, each small and sans-I/O:

* ``engine.v2.xmlcodec``  the flat ``<xml>`` documents of APIv2: a refusing parser (no DOCTYPE, no
  entities, bounded size) and an encoder that refuses what XML cannot carry.
* ``engine.v2.signing``   the ``k=v&...&key=`` sign string, MD5 and HMAC-SHA256, the sign type an
  operation uses, and the AES-256-ECB decryption of refund notifications.
* ``engine.v2.answers``   what an answer means: ``return_code``/``result_code`` checks and the errors.
* ``engine.v2.notifications`` payment and refund callbacks, verified or decrypted, and their XML reply.
* ``engine.v2.codec``, ``engine.v2.signer``, ``engine.v2.verifier``  what the three APIv2 hooks do.
* ``engine.v2.stubs``     the ``Stubber``'s APIv2 answers (``engine.testing``), signed for that verifier.

The plugins that put them to work are ordinary built-ins (``engine.plugins.v2_codec``,
``v2_signer``, ``v2_verifier``): they answer the hooks for descriptors with ``protocol: v2`` and defer
for every other one, exactly as the APIv3 built-ins defer for APIv2 descriptors. Nothing in the
executor, the sender or the pipeline knows which family a call belongs to. The plugins are thin and
import this package's modules at their first APIv2 call: a process that makes only APIv3 calls never
loads the XML parser, the codec or the signer (about 10 ms of its start).
"""
