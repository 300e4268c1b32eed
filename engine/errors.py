"""The exception tree: every failure the engine reports is one of these.

Design decisions:

* One root, ``EngineError``, so ``except EngineError`` catches everything the engine raises on
  purpose; anything else escaping is a bug.
* Errors are grouped by *who must act*: the caller (``UsageError``: nothing was sent), the network
  (``TransportError``), WeChat Pay (``ApiError``: it answered, and said no), or an attacker/misconfigured
  key (``SignatureError``: the answer cannot be trusted and its data is withheld).
* Messages say what to fix. They never carry key material, Authorization values or the plaintext of
  encrypted fields: they are built from names, paths and counts, never from secret values.
* **Errors travel.** Celery, process pools and multiprocessing pickle exceptions, and the default
  pickling of an exception calls ``cls(*exc.args)``, which breaks as soon as ``__init__`` takes
  other arguments than the message. So every class here (through ``_Travelling``) remembers the
  arguments it was constructed with, and ``__reduce__`` rebuilds it by calling the class with them
  again, then restores ``args`` and the instance attributes. One mechanism for every class, present
  and future: a subclass only has to keep its constructor arguments picklable. As with any
  exception, ``__traceback__``, ``__cause__`` and ``__context__`` do not travel.
* Every exception class the package raises to its callers is defined here and exported from
  ``engine``; the modules that raise them (``engine.downloads``, ``engine.testing``) import them.

::

    EngineError
    ├── UsageError                  the call was refused before anything was sent
    │   ├── UnknownEndpointError    no descriptor for that id (closest ids suggested)
    │   ├── DescriptorError         a descriptor file or object is malformed
    │   ├── ValidationError         the payload breaks its descriptor (.errors lists every problem)
    │   ├── ConfigurationError      the engine was built with missing or inconsistent settings
    │   │   └── CredentialError     a key, certificate or APIv3 key cannot be used
    │   └── StubResponseError       engine.testing: a canned answer breaks its descriptor
    ├── TransportError              no complete answer arrived (connection failed, reset...)
    │   ├── TransportTimeoutError   the answer did not arrive in time
    │   ├── AnswerTooLargeError     the answer exceeded max_answer_bytes; it was not read further
    │   ├── ConnectError            no connection was made: nothing was sent
    │   │   └── ConnectTimeoutError     ...because connecting took too long (also a TransportTimeoutError)
    │   ├── StoreError              the shared store (Redis) did not answer; nothing was recorded
    │   └── UnconfirmedError        a state-changing request may have arrived: reconcile (.reconcile)
    │       └── UnconfirmedTimeoutError ...and its last attempt timed out (also a TransportTimeoutError)
    ├── ApiError                    WeChat Pay answered with a non-2xx status
    │   └── V2AnswerError           APIv2: a 200 answer that says FAIL (.err_code, .err_code_des)
    │       ├── ReturnCodeError     return_code=FAIL: refused before business logic (sign, params)
    │       └── ResultCodeError     result_code=FAIL: a business failure (ORDERPAID, NOTENOUGH...)
    ├── SignatureError              the answer failed verification; its data is never returned
    ├── MalformedResponseError      a verified 2xx answer whose body cannot be decoded (APIv2: unsafe XML)
    │   └── DigestMismatchError     a downloaded bill differs from the digest its answer announced
    └── NotificationError           a callback was rejected; answer WeChat Pay with a 4xx/5xx
        ├── NotificationSignatureError  forged, probe, unknown key, missing signature headers
        ├── StaleNotificationError      Wechatpay-Timestamp outside the 5-minute window
        ├── MalformedNotificationError  not the JSON envelope of a notification
        └── NotificationDecryptionError the resource does not decrypt under the APIv3 key

    AssertionError
    └── StubAssertionError          engine.testing: a call did not match the Stubber's queue
                                    (an AssertionError, so test runners report a failed test)
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import attrs


def _rebuild(
    cls: type[BaseException], arguments: tuple[Any, ...], keywords: Mapping[str, Any], args: tuple[Any, ...]
) -> BaseException:
    """Unpickle a ``_Travelling`` error: construct it as it was constructed, then restore ``args``."""
    error = cls(*arguments, **keywords)
    error.args = args
    return error


class _Travelling(BaseException):
    """Mixin for exceptions that survive ``pickle`` whatever their ``__init__`` takes.

    ``__new__`` records the constructor's arguments (in ``_init_arguments``); ``__reduce__`` hands
    them to ``_rebuild`` with the instance attributes as state, so unpickling runs ``__init__``
    again with the same arguments, and then restores ``args`` and ``vars()`` exactly.
    """

    _init_arguments: tuple[tuple[Any, ...], dict[str, Any]]

    def __new__(cls, *arguments: Any, **keywords: Any) -> _Travelling:
        error = super().__new__(cls, *arguments, **keywords)
        error._init_arguments = (arguments, keywords)
        return error

    def __reduce__(self) -> tuple[Any, ...]:
        arguments, keywords = self._init_arguments
        return _rebuild, (type(self), arguments, keywords, self.args), dict(vars(self))


class EngineError(_Travelling, Exception):
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


class StubResponseError(UsageError):
    """``engine.testing``: a canned answer cannot be queued (it breaks its descriptor, or its status).

    ``.problems`` lists each problem, in ``engine.validation``'s ``"message @ $.path"`` form.
    """

    def __init__(self, endpoint_id: str, problems: Sequence[str]) -> None:
        self.endpoint_id = endpoint_id
        self.problems = tuple(problems)
        noun = "problem" if len(self.problems) == 1 else "problems"
        listing = "\n  ".join(self.problems)
        super().__init__(f"{len(self.problems)} {noun} in the canned answer for {endpoint_id}:\n  {listing}")


class CredentialError(ConfigurationError):
    """A private key, public key, certificate or APIv3 key cannot be loaded or used.

    The message names the setting and the reason, never the key material.
    """


class TransportError(EngineError):
    """No complete answer arrived (connection refused or reset, truncated answer...)."""


class TransportTimeoutError(TransportError):
    """The answer did not arrive within the configured timeout."""


class AnswerTooLargeError(TransportError):
    """The answer was bigger than ``max_answer_bytes``, or a bill file than ``max_bytes`` (after
    decompression); it was not read further."""


class ConnectError(TransportError):
    """No connection was made (refused, no route, name or proxy unreachable): nothing was sent."""


class ConnectTimeoutError(ConnectError, TransportTimeoutError):
    """The connection was not established in time: nothing was sent."""


@attrs.frozen
class Reconcile:
    """How to find out what happened to a request WeChat Pay may have received.

    Look the object up with ``engine.call(query, {field: value, ...})``: ``field`` is the business
    number WeChat Pay de-duplicates on, ``value`` what was sent, ``query`` the id of the operation
    that finds it (``None`` when the descriptors name none).
    """

    endpoint_id: str
    field: Optional[str] = None
    value: Any = None
    query: Optional[str] = None


class UnconfirmedError(TransportError):
    """A request that changes state may have reached WeChat Pay, and no answer confirmed it.

    Do not guess: look the outcome up. ``.reconcile`` (a ``Reconcile``, or ``None`` when the
    operation has no business number) says with which operation and number.
    """

    def __init__(self, message: str, reconcile: Optional[Reconcile] = None) -> None:
        self.reconcile = reconcile
        super().__init__(message)


class UnconfirmedTimeoutError(UnconfirmedError, TransportTimeoutError):
    """An ``UnconfirmedError`` whose last attempt timed out (so ``except TransportTimeoutError`` sees it)."""


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
    carried a valid signature; error bodies are informational, never trusted data). The message of
    an unverified answer says so: its text is the server's claim, not WeChat Pay's word.
    ``.reconcile`` is set on a ``5xx`` to a state-changing request: its outcome is unknown.
    ``.outcome_unknown`` says so for errors a family reports in a 2xx body (APIv2 ``SYSTEMERROR``).
    """

    outcome_unknown = False

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        detail: Any = None,
        request_id: str = "",
        verified: bool = False,
        reconcile: Optional[Reconcile] = None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.detail = detail
        self.request_id = request_id
        self.verified = verified
        self.reconcile = reconcile
        rid = f" (Request-ID {request_id})" if request_id else ""
        who = "WeChat Pay answered" if verified else "an unverified answer (not WeChat Pay's word) claims"
        super().__init__(f"{who} {status} {code}: {message}{rid}")


class V2AnswerError(ApiError):
    """An APIv2 answer that says FAIL: the code and description WeChat Pay gave, and whether it was signed.

    ``.err_code``/``.err_code_des`` are the answer's own fields (``error_code``/``error_code_des`` on
    the few operations that spell them so); ``.code`` is ``err_code`` (``FAIL`` when there is none) and
    ``.message`` the most specific text the answer holds. ``.outcome_unknown`` is true for the codes
    WeChat Pay documents as "the result is not known yet" (``SYSTEMERROR``, ``BANKERROR``,
    ``USERPAYING``): look the order up (``.reconcile``) before trying again.
    """

    def __init__(
        self,
        message: str,
        err_code: str = "",
        err_code_des: str = "",
        *,
        status: int = 200,
        request_id: str = "",
        verified: bool = False,
        reconcile: Optional[Reconcile] = None,
        outcome_unknown: bool = False,
    ) -> None:
        self.err_code = err_code
        self.err_code_des = err_code_des
        self.outcome_unknown = outcome_unknown
        super().__init__(status, err_code or "FAIL", message, None, request_id, verified, reconcile)


class ReturnCodeError(V2AnswerError):
    """APIv2 ``return_code=FAIL``: the request was refused at the protocol level (sign, parameters,
    certificate, merchant); such answers are not signed, so ``.verified`` is false."""


class ResultCodeError(V2AnswerError):
    """APIv2 ``result_code=FAIL``: WeChat Pay processed the request and the business step failed
    (``ORDERPAID``, ``NOTENOUGH``...); ``.verified`` says whether the answer's sign checked out."""


class SignatureError(EngineError):
    """An answer (or callback) failed verification, so its data is withheld.

    ``.reason`` is one of ``missing_header``, ``unsupported_type``, ``bad_timestamp``, ``stale``,
    ``unknown_serial``, ``expired``, ``probe``, ``mismatch``, ``unverified``; APIv2 adds
    ``missing_sign`` (a SUCCESS answer without ``sign``), ``sign_type_mismatch`` (the answer declares
    another sign type than its request used) and ``wrong_sign_type`` (it verifies only under the
    other algorithm).
    """

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


class MalformedResponseError(EngineError):
    """A verified 2xx answer whose body is not the JSON (or ciphertext) it should be; or an APIv2 XML
    answer refused before anything in it was trusted (DOCTYPE, entities, nested or repeated fields,
    over the size limit)."""


class DigestMismatchError(MalformedResponseError):
    """``engine.download``: the file's digest differs from the one the verified answer announced."""


class NotificationError(EngineError):
    """A callback was rejected; reply with ``failure_reply`` so WeChat Pay sends it again."""


class NotificationSignatureError(NotificationError, SignatureError):
    """The callback's signature did not verify (``.reason`` as for ``SignatureError``)."""


class StaleNotificationError(NotificationError):
    """The callback's timestamp is outside the 5-minute window."""


class MalformedNotificationError(NotificationError):
    """The body is not a notification envelope (JSON with id, event_type, resource...)."""


class NotificationDecryptionError(NotificationError):
    """The resource does not decrypt with AEAD_AES_256_GCM under the APIv3 key."""


class StubAssertionError(_Travelling, AssertionError):
    """``engine.testing``: a call did not match the Stubber's queue.

    Nothing was queued, another endpoint was expected, or another payload. An ``AssertionError``,
    so that test runners report it as a failed test rather than an error.
    """
