"""wechatpay-engine: WeChat Pay APIv3 (and the legacy APIv2) driven by declarative endpoint descriptors.

``Engine.call("combine_papay.mini_program", payload)`` validates the payload against the endpoint's
descriptor, encrypts the fields it marks sensitive, signs, sends, verifies the signed answer,
decrypts and returns it. Signing, verification, encryption, logging and transports are pluggy
plugins (see ``engine.hookspecs``). Importing this package does no I/O and registers nothing.
"""

__version__ = "0.1.0"

import typing as _typing

from engine.client import Engine
from engine.configuration import DEFAULT_BASE_URL
from engine.descriptor import Descriptor, Field, Idempotency, RequestSpec
from engine.errors import (
    AnswerTooLargeError,
    ApiError,
    ConfigurationError,
    ConnectError,
    ConnectTimeoutError,
    CredentialError,
    DescriptorError,
    DigestMismatchError,
    EngineError,
    MalformedNotificationError,
    MalformedResponseError,
    NotificationDecryptionError,
    NotificationError,
    NotificationSignatureError,
    Reconcile,
    ResultCodeError,
    ReturnCodeError,
    SignatureError,
    StaleNotificationError,
    StoreError,
    StubAssertionError,
    StubResponseError,
    TransportError,
    TransportTimeoutError,
    UnconfirmedError,
    UnconfirmedTimeoutError,
    UnknownEndpointError,
    UsageError,
    V2AnswerError,
    ValidationError,
)
from engine.hookspecs import CallInfo, Family, SigningContext, hookimpl
from engine.keyprovider import KeyProvider, StaticKeys
from engine.keys import MerchantSigner, PrivateKeySigner
from engine.registry import endpoint_id
from engine.retry import RetryPolicy
from engine.stores import Claim, MemoryStore, Store
from engine.tls import ClientCertificate
from engine.transport import BaseTransport, MockTransport, Transport, TransportConfig
from engine.untyped import Untyped
from engine.wire import Headers, RawResponse, Request, Response

__all__ = [
    "DEFAULT_BASE_URL",
    "AnswerTooLargeError",
    "ApiError",
    "BaseTransport",
    "CallInfo",
    "Claim",
    "ClientCertificate",
    "ConfigurationError",
    "ConnectError",
    "ConnectTimeoutError",
    "CredentialError",
    "Descriptor",
    "DescriptorError",
    "DigestMismatchError",
    "Engine",
    "EngineError",
    "EventType",
    "Family",
    "Field",
    "Headers",
    "Idempotency",
    "KeyProvider",
    "MalformedNotificationError",
    "MalformedResponseError",
    "MemoryStore",
    "MerchantSigner",
    "MockTransport",
    "Notification",
    "NotificationDecryptionError",
    "NotificationError",
    "NotificationSignatureError",
    "PrivateKeySigner",
    "RawResponse",
    "Receiver",
    "Reconcile",
    "Reply",
    "Request",
    "RequestSpec",
    "Response",
    "ResultCodeError",
    "RetryPolicy",
    "ReturnCodeError",
    "SignatureError",
    "SigningContext",
    "StaleNotificationError",
    "StaticKeys",
    "Store",
    "StoreError",
    "StubAssertionError",
    "StubResponseError",
    "Transport",
    "TransportConfig",
    "TransportError",
    "TransportTimeoutError",
    "UnconfirmedError",
    "UnconfirmedTimeoutError",
    "UnknownEndpointError",
    "Untyped",
    "UsageError",
    "V2AnswerError",
    "V2Notification",
    "ValidationError",
    "__version__",
    "endpoint_id",
    "hookimpl",
]

# Callback types load with their modules at first use (PEP 562): a first call needs none of them.
_LAZY = {
    "EventType": "engine.events",
    "Notification": "engine.notifications",
    "Reply": "engine.notifications",
    "Receiver": "engine.receiver",
    "V2Notification": "engine.v2.notifications",
}

if _typing.TYPE_CHECKING:
    from engine.events import EventType
    from engine.notifications import Notification, Reply
    from engine.receiver import Receiver
    from engine.v2.notifications import V2Notification


def __getattr__(name: str) -> _typing.Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
