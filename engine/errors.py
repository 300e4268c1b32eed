"""The exception tree: every failure the engine reports is one of these.

Design decisions:

* One root, ``EngineError``, so ``except EngineError`` catches everything the engine raises on
  purpose; anything else escaping is a bug.
* Errors are grouped by *who must act*: the caller (``UsageError``: nothing was sent), the network
  (``TransportError``), WeChat Pay (``ApiError``: it answered, and said no), or an attacker/misconfigured
  key (``SignatureError``: the answer cannot be trusted and its data is withheld).
* Messages say what to fix. They never carry key material, Authorization values or the plaintext of
  encrypted fields: they are built from names, paths and counts, never from secret values.

::

    EngineError
    ├── UsageError                  the call was refused before anything was sent
    │   ├── UnknownEndpointError    no descriptor for that id (closest ids suggested)
    │   ├── DescriptorError         a descriptor file or object is malformed
    │   ├── ValidationError         the payload breaks its descriptor (.errors lists every problem)
    │   └── ConfigurationError      the engine was built with missing or inconsistent settings
    │       └── CredentialError     a key, certificate or APIv3 key cannot be used
    ├── TransportError              no complete answer arrived (connection failed, reset...)
    │   ├── TransportTimeoutError   the answer did not arrive in time
    │   └── StoreError              the shared store (Redis) did not answer; nothing was recorded
    ├── ApiError                    WeChat Pay answered with a non-2xx status
    ├── SignatureError              the answer failed verification; its data is never returned
    ├── MalformedResponseError      a verified 2xx answer whose body cannot be decoded
    └── NotificationError           a callback was rejected; answer WeChat Pay with a 4xx/5xx
        ├── NotificationSignatureError  forged, probe, unknown key, missing signature headers
        ├── StaleNotificationError      Wechatpay-Timestamp outside the 5-minute window
        ├── ReplayedNotificationError   an id already acknowledged, within the window
        ├── MalformedNotificationError  not the JSON envelope of a notification
        └── NotificationDecryptionError the resource does not decrypt under the APIv3 key
"""

from __future__ import annotations

from typing import Any, Sequence


class EngineError(Exception):
    """Root of every error the engine raises on purpose."""


class UsageError(EngineError):
    """The call was refused before anything was sent; fix the call or the configuration."""


class UnknownEndpointError(UsageError):
    """No descriptor is registered under the given id or alias.

    ``.suggestions`` holds the closest known ids, best first.
    """

    def __init__(self, endpoint_id: str, suggestions: Sequence[str] = ()) -> None:
        self.endpoint_id = endpoint_id
        self.suggestions = tuple(suggestions)
        hint = f"; did you mean {', '.join(repr(s) for s in self.suggestions)}?" if suggestions else ""
        super().__init__(f"unknown endpoint {endpoint_id!r}{hint}")


class DescriptorError(UsageError):
    """A descriptor is malformed; the message names the file (or id) and every bad key path."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = tuple(problems)
        super().__init__(f"invalid descriptor {source}: " + "; ".join(self.problems))


class ValidationError(UsageError):
    """The payload breaks its descriptor. Nothing was sent.

    ``.errors`` lists every problem as ``"message @ $.json.path"``, in payload order.
    """

    def __init__(self, endpoint_id: str, errors: Sequence[str]) -> None:
        self.endpoint_id = endpoint_id
        self.errors = tuple(errors)
        count = len(self.errors)
        listing = "\n  ".join(self.errors)
        noun = "problem" if count == 1 else "problems"
        super().__init__(f"{count} {noun} in the payload for {endpoint_id}:\n  {listing}")


class ConfigurationError(UsageError):
    """The engine settings are missing something or contradict each other."""


class CredentialError(ConfigurationError):
    """A private key, public key, certificate or APIv3 key cannot be loaded or used.

    The message names the setting and the reason, never the key material.
    """


class TransportError(EngineError):
    """No complete answer arrived (connection refused or reset, truncated answer...)."""


class TransportTimeoutError(TransportError):
    """The answer did not arrive within the configured timeout."""


class StoreError(TransportError):
    """The notification/certificate store (e.g. Redis) could not be reached or did not answer.

    Raised at construction when the store is unreachable, and mid-way when it goes away; a callback
    that meets it is answered with a failure, so WeChat Pay sends it again. The message names the
    store with any password removed.
    """


class ApiError(EngineError):
    """WeChat Pay answered with a non-2xx status.

    Attributes mirror the error body: ``.status``, ``.code``, ``.message``, ``.detail``, plus
    ``.request_id`` (quote it to WeChat Pay support) and ``.verified`` (whether the error answer
    carried a valid signature; error bodies are informational, never trusted data).
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        detail: Any = None,
        request_id: str = "",
        verified: bool = False,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.detail = detail
        self.request_id = request_id
        self.verified = verified
        rid = f" (Request-ID {request_id})" if request_id else ""
        super().__init__(f"WeChat Pay answered {status} {code}: {message}{rid}")


class SignatureError(EngineError):
    """An answer (or callback) failed verification, so its data is withheld.

    ``.reason`` is one of ``missing_header``, ``unsupported_type``, ``bad_timestamp``, ``stale``,
    ``unknown_serial``, ``expired``, ``probe``, ``mismatch``, ``unverified``.
    """

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


class MalformedResponseError(EngineError):
    """A verified 2xx answer whose body is not the JSON (or ciphertext) it should be."""


class NotificationError(EngineError):
    """A callback was rejected; reply with ``failure_reply`` so WeChat Pay sends it again."""


class NotificationSignatureError(NotificationError, SignatureError):
    """The callback's signature did not verify (``.reason`` as for ``SignatureError``)."""


class StaleNotificationError(NotificationError):
    """The callback's timestamp is outside the 5-minute window."""


class ReplayedNotificationError(NotificationError):
    """A notification id that was already acknowledged arrived again within the window."""


class MalformedNotificationError(NotificationError):
    """The body is not a notification envelope (JSON with id, event_type, resource...)."""


class NotificationDecryptionError(NotificationError):
    """The resource does not decrypt with AEAD_AES_256_GCM under the APIv3 key."""
