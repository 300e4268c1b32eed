"""Every extension point of the engine, as pluggy hookspecs with the ``wxpay_`` prefix.

Design decisions:

* Hooks are signature-checked by pluggy: a misspelt hook or argument fails at registration instead
  of silently never firing.
* ``firstresult=True`` where exactly one answer is wanted (transport, signer, verifier, field
  cipher). Built-in implementations are marked ``trylast``, so any user plugin answers first and
  overrides them without unregistering anything; returning ``None`` hands over to the next one.
* Observers (``wxpay_before_send``, ``wxpay_after_response``) receive frozen records and return
  nothing: they watch, they cannot reroute a call. Pluggy wrappers cannot span an awaited network
  call, so I/O is bracketed by a before and an after hook instead.
* Nothing here imports the network stack: hooks see ``engine.wire`` records only.
* **Protocol families answer for their own descriptors.** The hooks that depend on the wire format
  (``wxpay_body_codec``, ``wxpay_sign_request``, ``wxpay_verify_response``) receive the
  ``descriptor``; the APIv3 built-ins answer for ``protocol: v3`` and return ``None`` for anything
  else, the APIv2 built-ins the other way round, so a family is added by plugins, never by a branch
  in a stage. Arguments were added to existing hooks, not changed: pluggy lets an implementation
  accept any subset of a spec's arguments, so plugins written against the older signatures keep
  working for APIv3. One that answers *every* call (a replacement signer, say) now also meets
  APIv2 calls, and should decline them (``None``) unless ``descriptor.protocol == "v3"``.
* **What the shared stages must know of a family is the family's answer too**
  (``wxpay_protocol_family``, a ``Family`` record): which credentials its calls need (refused in
  ``prepare`` before anything is encrypted or signed) and how a held answer's headers are screened
  before its body is read. It is asked once per descriptor, like the body codec, so the per-call
  cost is an attribute read, not a dispatch; a descriptor no plugin answers for fails at its first
  call. Both answers are asked again after the implementations of their hook change.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional, Union

import attrs
import pluggy

from engine.transport import Screen, Transport, TransportConfig

if TYPE_CHECKING:
    from engine.descriptor import Descriptor
    from engine.keys import MerchantCredentials, PlatformKey, PlatformKeyring
    from engine.serialize import BodyCodec
    from engine.wire import RawResponse, Request

PROJECT = "wxpay"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@attrs.frozen
class SigningContext:
    """Everything a signer needs besides the request: who signs, and this attempt's time and nonce."""

    credentials: "MerchantCredentials"
    timestamp: int
    nonce: str


@attrs.frozen
class CallInfo:
    """What observers learn about the call a request belongs to."""

    endpoint_id: str
    descriptor: "Descriptor" = attrs.field(repr=False)
    attempt: int = 1


Refusal = Callable[["Descriptor", "MerchantCredentials"], Optional[str]]


@attrs.frozen
class Family:
    """What the shared stages need to know of a protocol family, as its plugin states it.

    ``refusal(descriptor, credentials)`` says why the engine's credentials cannot make
    ``descriptor``'s calls, or ``None`` when they can; the engine raises the reason as a
    ``ConfigurationError`` before anything is encrypted or signed (it must not name a secret's
    value). ``screen(status, headers)`` checks a held answer's headers before its body is read,
    raising ``SignatureError`` to refuse it unread; ``None`` for a family that signs inside the body.
    It is applied only where the descriptor says answers are signed (``signed_answer``), and never
    to a streamed answer (bill files, which WeChat Pay does not sign).
    """

    refusal: Optional[Refusal] = attrs.field(default=None, repr=False)
    screen: Optional[Screen] = attrs.field(default=None, repr=False)


@hookspec
def wxpay_endpoint_sources() -> list[Union[Path, "Descriptor"]]:  # type: ignore[empty-body]
    """Contribute endpoints: directories of descriptor YAML files and/or ``Descriptor`` objects.

    Called once when an engine is built; later sources override earlier ones with the same id.
    """


@hookspec(firstresult=True)
def wxpay_transport(config: TransportConfig) -> Optional[Transport]:
    """Return a transport for ``config.base_url``, or ``None`` to let another plugin serve it.

    Called lazily, once per engine and event loop, unless the engine was given ``transport=``.
    The transport must implement ``engine.Transport`` (``send``, ``stream``, ``aclose``).
    """


@hookspec(firstresult=True)
def wxpay_body_codec(descriptor: "Descriptor") -> Optional["BodyCodec"]:
    """Return the ``engine.serialize.BodyCodec`` that encodes ``descriptor``'s bodies and decodes its answers.

    Asked once per descriptor (the pipeline remembers the answer, and asks again only after this
    hook's implementations change); ``None`` defers to the next plugin.
    """


@hookspec(firstresult=True)
def wxpay_protocol_family(descriptor: "Descriptor") -> Optional[Family]:
    """Return the ``Family`` facts of ``descriptor``'s protocol family, or ``None`` for another family.

    Asked once per descriptor and kept with it (again only after this hook's implementations
    change); a descriptor no plugin answers for is a ``ConfigurationError`` at its first call.
    """


@hookspec(firstresult=True)
def wxpay_sign_request(
    request: "Request", signing: SigningContext, descriptor: "Descriptor"
) -> Optional[Union[str, "Request"]]:
    """Sign ``request`` for one attempt: return the ``Authorization`` header value (its headers do not
    have one yet), or, for a family that signs inside the body (APIv2), the whole signed ``Request``.

    ``signing.timestamp`` and ``signing.nonce`` are fresh for every attempt and injectable for tests.
    Return ``None`` for a ``descriptor`` of a family this plugin does not sign.
    """


@hookspec(firstresult=True)
def wxpay_verify_response(
    response: "RawResponse",
    keyring: "PlatformKeyring",
    now: int,
    descriptor: Optional["Descriptor"],
    request: Optional["Request"],
    credentials: "MerchantCredentials",
) -> Optional[str]:
    """Verify a signed answer (or callback); return the id of the key that verified it.

    Raise ``engine.SignatureError`` to reject it; return ``None`` to defer to the next verifier. If
    every verifier defers, the answer is rejected: nothing unverified is ever returned. ``descriptor``
    and ``request`` (the prepared request) are those of the call answered, ``None`` for callbacks and
    certificate checks. A family whose errors travel in a 2xx body (APIv2 ``return_code``/``result_code``
    ``FAIL``, which are not signed) raises the ``engine.ApiError`` the answer stands for instead.
    """


@hookspec(firstresult=True)
def wxpay_encrypt_field(plaintext: str, key: "PlatformKey", scheme: str) -> Optional[str]:
    """Encrypt one sensitive request field for WeChat Pay with ``key`` by ``scheme``; return the ciphertext.

    ``key`` and ``scheme`` are what the descriptor's ``encryption`` trait names: by default the
    keyring's WeChat Pay key, which the engine names in the ``Wechatpay-Serial`` header of the same
    request, or a named key such as APIv2 ``pay_bank``'s (``key.kind == "pay_bank"``, no header);
    ``scheme`` is an ``engine.descriptor.CipherScheme`` (``RSA-OAEP-SHA1``). Return ``None`` for a
    scheme or a key this plugin does not handle (a KMS knowing only APIv3 serials: ``key.kind ==
    "pay_bank"``); raise ``ValueError`` to refuse a value (the engine reports it as a
    ``ValidationError`` at the field's path). Implementations written before ``scheme`` existed may
    leave it out of their signature; code calling the hook itself must pass it.
    """


@hookspec(firstresult=True)
def wxpay_decrypt_field(ciphertext: str, credentials: "MerchantCredentials") -> Optional[str]:
    """Decrypt one response field WeChat Pay encrypted for the merchant; raise ``ValueError`` if it cannot."""


@hookspec
def wxpay_before_send(call: CallInfo, request: "Request") -> None:
    """Observe a signed request just before a transport sends it (once per attempt)."""


@hookspec
def wxpay_after_response(
    call: CallInfo,
    request: "Request",
    response: Optional["RawResponse"],
    error: Optional[BaseException],
    elapsed_ms: float,
) -> None:
    """Observe the outcome of one attempt: the raw answer, or the error that replaced it.

    ``response`` has not been verified yet when this runs; observers must not trust its body.
    """
