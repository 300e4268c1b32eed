"""wechatpay-engine: WeChat Pay APIv3 driven by declarative endpoint descriptors.

``Engine.call("combine_papay.mini_program", payload)`` validates the payload against the endpoint's
descriptor, encrypts the fields it marks sensitive, signs, sends, verifies the signed answer,
decrypts and returns it. Signing, verification, encryption, logging and transports are pluggy
plugins (see ``engine.hookspecs``). Importing this package does no I/O and registers nothing.
"""

__version__ = "0.1.0"

from engine.client import Engine
from engine.configuration import DEFAULT_BASE_URL
from engine.descriptor import Descriptor, Field, RequestSpec
from engine.errors import (
    ApiError,
    ConfigurationError,
    CredentialError,
    DescriptorError,
    EngineError,
    MalformedNotificationError,
    MalformedResponseError,
    NotificationDecryptionError,
    NotificationError,
    NotificationSignatureError,
    ReplayedNotificationError,
    SignatureError,
    StaleNotificationError,
    TransportError,
    TransportTimeoutError,
    UnknownEndpointError,
    UsageError,
    ValidationError,
)
from engine.hookspecs import CallInfo, SigningContext, hookimpl
from engine.keyprovider import KeyProvider, StaticKeys
from engine.keys import MerchantSigner, PrivateKeySigner
from engine.notifications import MemoryReplayStore, Notification, Reply
from engine.registry import endpoint_id
from engine.transport import BaseTransport, MockTransport, Transport, TransportConfig
from engine.untyped import Untyped
from engine.wire import Headers, RawResponse, Request, Response

__all__ = [
    "DEFAULT_BASE_URL",
    "ApiError",
    "BaseTransport",
    "CallInfo",
    "ConfigurationError",
    "CredentialError",
    "Descriptor",
    "DescriptorError",
    "Engine",
    "EngineError",
    "Field",
    "Headers",
    "KeyProvider",
    "MalformedNotificationError",
    "MalformedResponseError",
    "MemoryReplayStore",
    "MerchantSigner",
    "MockTransport",
    "Notification",
    "NotificationDecryptionError",
    "NotificationError",
    "NotificationSignatureError",
    "PrivateKeySigner",
    "RawResponse",
    "ReplayedNotificationError",
    "Reply",
    "Request",
    "RequestSpec",
    "Response",
    "SignatureError",
    "SigningContext",
    "StaleNotificationError",
    "StaticKeys",
    "Transport",
    "TransportConfig",
    "TransportError",
    "TransportTimeoutError",
    "UnknownEndpointError",
    "Untyped",
    "UsageError",
    "ValidationError",
    "__version__",
    "endpoint_id",
    "hookimpl",
]
