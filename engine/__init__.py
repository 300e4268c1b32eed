"""wechatpay-engine: WeChat Pay APIv3 driven by declarative endpoint descriptors.

``Engine.call("combine_papay.mini_program", payload)`` validates the payload against the endpoint's
descriptor, encrypts the fields it marks sensitive, signs, sends, verifies the signed answer,
decrypts and returns it. Signing, verification, encryption, logging and transports are pluggy
plugins (see ``engine.hookspecs``). Importing this package does no I/O and registers nothing.
"""

__version__ = "0.1.0"

from engine.client import DEFAULT_BASE_URL, Engine
from engine.descriptor import Descriptor, Field, RequestSpec
from engine.errors import (
    ApiError,
    ConfigurationError,
    CredentialError,
    DescriptorError,
    DigestMismatchError,
    EngineError,
    MalformedNotificationError,
    MalformedResponseError,
    NotificationDecryptionError,
    NotificationError,
    NotificationSignatureError,
    ReplayedNotificationError,
    SignatureError,
    StaleNotificationError,
    StubAssertionError,
    StubResponseError,
    TransportError,
    TransportTimeoutError,
    UnknownEndpointError,
    UsageError,
    ValidationError,
)
from engine.hookspecs import CallInfo, SigningContext, Transport, TransportConfig, hookimpl
from engine.notifications import MemoryReplayStore, Notification, Reply
from engine.registry import endpoint_id
from engine.wire import Headers, RawResponse, Request, Response

__all__ = [
    "DEFAULT_BASE_URL",
    "ApiError",
    "CallInfo",
    "ConfigurationError",
    "CredentialError",
    "Descriptor",
    "DescriptorError",
    "DigestMismatchError",
    "Engine",
    "EngineError",
    "Field",
    "Headers",
    "MalformedNotificationError",
    "MalformedResponseError",
    "MemoryReplayStore",
    "Notification",
    "NotificationDecryptionError",
    "NotificationError",
    "NotificationSignatureError",
    "RawResponse",
    "ReplayedNotificationError",
    "Reply",
    "Request",
    "RequestSpec",
    "Response",
    "SignatureError",
    "SigningContext",
    "StaleNotificationError",
    "StubAssertionError",
    "StubResponseError",
    "Transport",
    "TransportConfig",
    "TransportError",
    "TransportTimeoutError",
    "UnknownEndpointError",
    "UsageError",
    "ValidationError",
    "__version__",
    "endpoint_id",
    "hookimpl",
]
