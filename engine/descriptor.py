"""Descriptors: an endpoint stated as data, in frozen attrs classes.

Design decisions:

* A descriptor is *data only*: no behaviour hangs off an endpoint. Traits (``encrypted``,
  ``required``, limits) are read by generic code (validation, encryption, redaction), never by
  ``if endpoint == ...`` branches.
* Request fields are grouped by location (``path``, ``query``, ``header``, ``body``); the caller
  hands one flat payload and the descriptor decides where each key travels.
* The same ``Field`` class describes request and response values, so one tree walker
  (``engine.fields``) serves encryption, decryption and log redaction.
* **An upload's size limit is a trait of its file part** (``max_bytes``), like a string's
  ``max_length``: the number WeChat Pay documents for that upload, read by validation, by the
  bounded file reads of ``engine.multipart`` and, through validation, by the sandbox. A file part
  without one gets the engine's ceiling (``engine.multipart.MAX_UPLOAD_BYTES``).
* Classes are frozen: a descriptor is shared by every call and must not change under them.
* Whether an operation may be sent again is a trait (``idempotency``), not a method check, so a
  descriptor file or a plugin can declare or clear it.
* **A protocol is a trait too.** ``protocol`` names the family an endpoint belongs to (``v3``, the
  default, or ``v2``, the legacy XML API); the built-in plugins of each family answer the hooks for
  their own descriptors and defer for the others, so no stage branches on it. The other traits a
  second family needs are stated generically: the body codec (``body: xml``), the fields the engine
  fills in (``fills``), whether the answer is signed (``signed_answer``), whether the merchant's TLS
  client certificate is needed (``client_certificate``), groups of alternatives (``one_of``), and a
  documented redirect answer (``redirect``).
* **Which key encrypts is a trait too** (``encryption``). A field marked ``encrypted`` is encrypted
  for WeChat Pay; the descriptor's ``Encryption`` names the key and the scheme. By default (APIv3)
  that is the WeChat Pay key of the engine's keyring, named in ``Wechatpay-Serial``; APIv2
  ``pay_bank`` says ``key: pay_bank``, the RSA key ``risk/getpublickey`` hands out, which no header
  names. The scheme is stated rather than implied (both use RSA-OAEP with SHA-1 and MGF1-SHA-1), so
  a descriptor cannot silently mean another padding, and the field cipher is told which it is.
"""

from __future__ import annotations

import functools
from typing import Any, Literal, Optional

import attrs

FieldType = Literal["string", "integer", "number", "boolean", "object", "array", "file"]
BodyKind = Literal["json", "multipart", "none", "xml"]
ProtocolFamily = Literal["v3", "v2"]
# What the engine writes into a field itself (``fills``): the merchant id and app id of its settings,
# a nonce, a Unix timestamp and the MD5 of the upload's file (once per call, before validation), and
# the sign type and signature (by the family's signer, for every attempt).
FillKind = Literal["merchant_id", "appid", "nonce", "timestamp", "file_md5", "sign_type", "signature"]
HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
# The keys request fields are encrypted with: the WeChat Pay key of the keyring (APIv3, named in
# Wechatpay-Serial), or the RSA key of APIv2's risk/getpublickey (Engine(pay_bank_public_key=...)).
EncryptionKey = Literal["platform", "pay_bank"]
# How one field is encrypted: RSAES-OAEP, SHA-1 and MGF1-SHA-1, empty label, then standard base64.
CipherScheme = Literal["RSA-OAEP-SHA1"]
OAEP_SHA1: CipherScheme = "RSA-OAEP-SHA1"


@attrs.frozen
class Field:
    """One value in a request or response, with the limits WeChat Pay documents for it.

    ``max_bytes`` is for ``file`` fields only: the most bytes the file may hold.
    """

    type: FieldType = "string"
    required: bool = False
    label: str = ""
    encrypted: bool = False
    enum: Optional[tuple[Any, ...]] = None
    min_length: Optional[int] = None
    max_length: Optional[int] = None
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    pattern: Optional[str] = None
    min_items: Optional[int] = None
    max_items: Optional[int] = None
    example: Any = None
    fields: dict[str, "Field"] = attrs.field(factory=dict)
    items: Optional["Field"] = None
    max_bytes: Optional[int] = None  # last: fields before it keep their positions

    @functools.cached_property
    def holds_encrypted(self) -> bool:
        """This field or anything inside it is encrypted (computed once: walkers skip clean branches)."""
        if self.encrypted or (self.items is not None and self.items.holds_encrypted):
            return True
        return any(field.holds_encrypted for field in self.fields.values())


@attrs.frozen
class Encryption:
    """Which key and scheme encrypt the request fields a descriptor marks ``encrypted``.

    One key per request: WeChat Pay decrypts a request's fields with one private key (APIv3 names it
    in one ``Wechatpay-Serial`` header). Answer fields are another matter: WeChat Pay encrypts those
    for the merchant's own key.
    """

    key: EncryptionKey = "platform"
    scheme: CipherScheme = OAEP_SHA1


PLATFORM_ENCRYPTION = Encryption()


@attrs.frozen
class RequestSpec:
    """Request fields by the place they travel in."""

    path: dict[str, Field] = attrs.field(factory=dict)
    query: dict[str, Field] = attrs.field(factory=dict)
    header: dict[str, Field] = attrs.field(factory=dict)
    body: dict[str, Field] = attrs.field(factory=dict)

    def locations(self) -> tuple[tuple[str, dict[str, Field]], ...]:
        """The payload-fed locations in a stable order (headers come from ``headers=``)."""
        return (("path", self.path), ("query", self.query), ("body", self.body))


@attrs.frozen
class Idempotency:
    """Why sending this operation again cannot do anything twice (the retry policy reads it).

    ``key``: a body field WeChat Pay de-duplicates on (a business number such as ``out_trade_no``);
    ``query``: the id of the operation that finds the outcome by that number; ``header``: a header
    (``Idempotency-Key``) whose value the engine generates once per call and sends on every
    attempt; ``safe_method``: the method itself changes nothing (GET).
    """

    key: Optional[str] = None
    query: Optional[str] = None
    header: Optional[str] = None
    safe_method: bool = False


SAFE_METHOD = Idempotency(safe_method=True)


@attrs.frozen
class Descriptor:
    """An endpoint: where it lives, what it takes, what it answers.

    ``body`` defaults to ``json`` for methods that carry one and ``none`` for GET/DELETE.
    ``response`` describes the 2xx body's fields (``encrypted`` marks merchant-key ciphertext).
    ``free_form`` endpoints take any payload unvalidated (GET/DELETE: query string; else JSON body).
    ``host`` names a host family other than the default API host (``hk`` for apihk), and prefixes
    the canonical id. ``idempotency`` says why resending is safe (``None``: it is not; GET always is).
    ``protocol`` is the family (``v3``/``v2``; a ``v2`` id is prefixed ``v2.`` instead of its host).
    ``fills`` maps request fields to what the engine writes there (``FillKind``); the caller may
    leave them out. ``one_of`` lists groups of fields of which the caller gives exactly one.
    ``signed_answer: false`` marks answers WeChat Pay does not sign (their verification is skipped,
    and only theirs); ``client_certificate`` operations are sent with the merchant's TLS client
    certificate; ``redirect`` operations answer a 3xx whose ``Location`` is the result.
    ``encryption`` says which key and scheme encrypt the ``encrypted`` request fields (the keyring's
    WeChat Pay key unless it says otherwise).
    """

    id: str
    method: HttpMethod
    path: str
    title: str = ""
    body: Optional[BodyKind] = None
    request: RequestSpec = attrs.field(factory=RequestSpec)
    response: dict[str, Field] = attrs.field(factory=dict)
    free_form: bool = False
    host: Optional[str] = None
    idempotency: Optional[Idempotency] = attrs.field()
    protocol: ProtocolFamily = "v3"
    fills: dict[str, FillKind] = attrs.field(factory=dict)
    one_of: tuple[tuple[str, ...], ...] = ()
    signed_answer: bool = True
    client_certificate: bool = False
    redirect: bool = False
    encryption: Encryption = PLATFORM_ENCRYPTION

    @idempotency.default
    def _method_idempotency(self) -> Optional[Idempotency]:
        return SAFE_METHOD if self.method == "GET" else None

    @property
    def body_kind(self) -> BodyKind:
        if self.body is not None:
            return self.body
        return "none" if self.method in ("GET", "DELETE") else "json"


def adhoc_descriptor(method: str, path: str) -> Descriptor:
    """A descriptor for ``"METHOD /path"`` calls with no registered endpoint: nothing to validate.

    GET and DELETE send the payload as the query string; other methods as the JSON body.
    """
    return Descriptor(id=f"{method} {path}", method=method, path=path, free_form=True)  # type: ignore[arg-type]


def is_adhoc(descriptor: Descriptor) -> bool:
    """Whether ``descriptor`` was made for one ``"METHOD /path"`` call (``adhoc_descriptor``): its id
    is that text, which no registered id can be (the loader refuses an id with whitespace)."""
    return " " in descriptor.id
