"""The sans-I/O stages every call goes through, sync or async, whatever the endpoint.

Design decisions:

* Resolve -> validate -> encrypt -> serialize (``prepare``), sign (``sign``), verify -> decode ->
  decrypt (``interpret``) are plain synchronous methods over small frozen records (``Prepared``,
  ``Request``, ``RawResponse``), never untyped dicts. Nothing here awaits or touches a socket:
  ``engine.sender`` sends, ``engine.executor`` strings the stages together.
* Every attempt is signed afresh (new timestamp and nonce, both injectable), by ``sign``.
* A 2xx answer is returned only after a verifier hook accepted it; if none does, the call fails.
  Non-2xx answers become ``ApiError`` (their signature is checked only to report ``.verified``).
* The ``Wechatpay-Serial`` header names the WeChat Pay key this engine encrypts with and verifies
  by, so WeChat Pay signs its answer with a key the engine holds (PROTOCOL.md §2); a descriptor
  whose fields another key encrypts (APIv2 ``pay_bank``'s) names none.
* The keyring is shared data, not a service: the key provider adds to it, the stages read it.
* Hooks called on every call go through ``DirectHook``: while a hook's implementations are all
  plain functions (the built-ins), they are called directly, in the order and with the stopping
  rule pluggy would use, without pluggy's dispatch; a wrapper registered, even after the engine
  was built, hands the call to pluggy.
* **No stage knows a protocol family.** What differs between APIv3 and APIv2 is read from
  descriptor traits by generic code (``fills``, ``one_of``, ``signed_answer``,
  ``client_certificate``, ``redirect``) or answered by the family's plugins through the hooks: the
  body codec (``wxpay_body_codec``), the family's facts (``wxpay_protocol_family``: which
  credentials its calls need, how its answers' headers are screened), the signer (an
  ``Authorization`` header, or a whole signed ``Request`` for families that sign inside the body)
  and the verifier (given the descriptor, the prepared request and the credentials).
* The codec and the family's facts are asked once per descriptor and kept in its ``_Plan``, so the
  hot path pays attribute reads for them, never a dispatch. The credentials are the engine's and
  frozen, so the family's refusal (an APIv3 operation on an APIv2-only engine, say) is worked out
  then too, and raised in ``prepare`` before anything is encrypted and before any signer is asked:
  left to a signer, a replacement signing plugin (or the Stubber) would still sign and send a
  request whose answer this engine could never verify.
* Those answers follow plugin changes: they are one record per plan (``_Answers``: the codec, the
  family's refusal, the transport settings for held and streamed answers), stamped with the
  generation of the two hooks' implementations (``HookWatch``, one comparison of each hook's list
  per call: the prepared call carries its record to the sender and to ``interpret``), and
  asked again when a plugin registered or removed after the engine was built has moved the
  generation on. A change made while another thread is asking leaves that answer stamped with the
  old generation, so it is asked again next time instead of being kept for good.
* Fields the engine fills (``fills``) that it knows once per call are written before validation
  (``engine.fills``), against the descriptor as the caller sees it; every attempt of one call
  therefore sends the same body nonce, and the signer adds its own fields per attempt.
* **The key that encrypts is the descriptor's to name** (``encryption``): the keyring's WeChat Pay
  key (the one ``Wechatpay-Serial`` names) unless the trait names another, such as APIv2
  ``pay_bank``'s, which the engine holds by name (``encryption_keys``). A descriptor whose key the
  engine lacks is refused in ``prepare``, before anything is signed. The cipher hook is told the
  scheme. A ciphertext must fit the field's documented length limits (``pay_bank``'s 384 are the
  ciphertext's), and a plaintext the key cannot hold is a ``ValidationError`` at its path, never
  the cipher's own ``ValueError``.
* **The caller's payload stays out of tracebacks.** It may hold the plaintext of encrypted fields
  (a bank card number, a name), and error trackers record every frame's locals. ``Engine.call``
  hands it over boxed (``engine.secret``), and ``prepare`` opens it only in ``_prepare``. Below
  that the plaintext is walked, encrypted and handed to plugins, so whatever leaves ``prepare``
  (a typed error, a plugin's own bug, with their causes) first has the locals of those finished
  frames cleared (``forget_frames``): the traceback still names every frame and line, a plugin's
  included, and none of them holds the payload.
* An ``ApiError`` a family raises while verifying or decoding (APIv2 ``result_code=FAIL``) gets the
  call's ``Reconcile`` when it says the outcome is unknown (``outcome_unknown``), as a 5xx does.
"""

from __future__ import annotations

import json
import operator
import sys
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional, cast

import attrs

from engine.defaults import Defaults
from engine.descriptor import Descriptor, Field, is_adhoc
from engine.errors import (
    ApiError,
    ConfigurationError,
    MalformedResponseError,
    Reconcile,
    SignatureError,
    UsageError,
    ValidationError,
)
from engine.fields import any_encrypted, map_encrypted, map_encrypted_fields
from engine.fills import Source, caller_view, fill
from engine.hookspecs import Family, SigningContext
from engine.keys import ENCRYPTION_KEY_REMEDIES, MerchantCredentials, PlatformKey, PlatformKeyring
from engine.multipart import complete_meta
from engine.protocol import H_REQUEST_ID, H_SERIAL
from engine.registry import Registry
from engine.secret import forget_frames, reveal
from engine.serialize import BodyCodec, build_target, from_text, split_payload
from engine.transport import DEFAULT_MAX_ANSWER_BYTES, Screen, TransportConfig
from engine.validation import PayloadValidator, ciphertext_problems, compile_validator
from engine.wire import Headers, RawResponse, Request, Response, caller_headers

if TYPE_CHECKING:
    from engine.tls import ClientCertificate

# The body's framing is the engine's too: a caller's Content-Length (sent in place of the real one) or
# Transfer-Encoding (sent beside it) frames the body wrongly, and on a kept-alive connection the
# rest of the body is read as the next request
# Set by the engine or its transport, never by a caller: the signature, the body's framing, and the
# host the base_url names (a caller's Host would send the request to one virtual host under another's name).
RESERVED_HEADERS = ("Authorization", "Content-Type", "Content-Length", "Transfer-Encoding", "Host")


@attrs.frozen
class Settings:
    base_url: str
    user_agent: str
    timeout: float = 30.0
    connect_timeout: float = 10.0
    hosts: Mapping[str, str] = attrs.field(factory=dict)
    proxy: Optional[str] = attrs.field(default=None, repr=False)  # may carry proxy credentials
    trust_env: bool = False
    pool_size: int = 100
    max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES
    client_certificate: Optional["ClientCertificate"] = attrs.field(default=None, repr=False)
    appid: Optional[str] = None

    def base_url_for(self, descriptor: Descriptor) -> str:
        """Where a descriptor is served: its host family's URL, or the engine's base URL."""
        if descriptor.host is None:
            return self.base_url
        try:
            return self.hosts[descriptor.host]
        except KeyError:
            family = descriptor.host
            message = f"{descriptor.id} is served from the {family!r} host: give Engine(hosts={{{family!r}: url}})"
            raise ConfigurationError(message) from None

    def transport_config(
        self, screen: Optional[Screen] = None, descriptor: Optional[Descriptor] = None
    ) -> TransportConfig:
        """What a transport needs; with the client certificate for a descriptor that needs one."""
        certificate = self.client_certificate if descriptor is not None and descriptor.client_certificate else None
        return TransportConfig(
            self.base_url,
            self.timeout,
            self.connect_timeout,
            self.proxy,
            self.trust_env,
            self.pool_size,
            self.max_answer_bytes,
            screen,
            certificate,
        )


@attrs.frozen
class Prepared:
    """A validated, encrypted, serialized call, waiting to be signed for each attempt.

    ``reconcile`` says how to look the outcome up should it stay unknown (state-changing calls).
    """

    descriptor: Descriptor = attrs.field(repr=lambda d: d.id)
    request: Request
    reconcile: Optional[Reconcile] = attrs.field(default=None, repr=False)
    # what the plugins answered when it was prepared (codec, transport settings): the whole call uses them
    answers: Optional["_Answers"] = attrs.field(default=None, repr=False, eq=False)


class Pipeline:
    """The stages for one engine: its registry, plugins, credentials, keyring, clock and nonces."""

    def __init__(
        self,
        registry: Registry,
        hook: Any,
        credentials: MerchantCredentials,
        keyring: PlatformKeyring,
        settings: Settings,
        clock: Callable[[], float],
        nonce: Callable[[], str],
        defaults: Optional[Defaults] = None,
        encryption_keys: Optional[Mapping[str, PlatformKey]] = None,
    ) -> None:
        self.registry = registry
        # keys descriptors name in their encryption trait besides the keyring's (pay_bank), by name
        self.encryption_keys: Mapping[str, PlatformKey] = dict(encryption_keys or {})
        self.defaults = defaults  # engine.defaults: filled in before validation
        self.hook = hook
        self.credentials = credentials
        self.keyring = keyring
        self.settings = settings
        self.clock = clock
        self.nonce = nonce
        # by id, remembering the descriptor: one registered later under the same id gets its own
        self._plans: dict[str, _Plan] = {}
        self._asked = HookWatch(hook.wxpay_body_codec, hook.wxpay_protocol_family)  # kept in the plans
        self._sign_request = DirectHook(hook.wxpay_sign_request)
        self._verify_response = DirectHook(hook.wxpay_verify_response)
        self._encrypt_field = DirectHook(hook.wxpay_encrypt_field)
        self._decrypt_field = DirectHook(hook.wxpay_decrypt_field)
        self._fill_sources: dict[str, Source] = {  # what the engine knows once per call (engine.fills)
            "merchant_id": lambda: credentials.mchid,
            "appid": lambda: settings.appid,
            "nonce": nonce,
            "timestamp": lambda: str(int(clock())),
        }

    # -- prepare ---------------------------------------------------------------------------

    def prepare(self, ref: str, payload: Any, headers: Optional[Mapping[str, str]] = None) -> Prepared:
        """Resolve, validate, encrypt and serialize one call; ``payload`` may come boxed in a ``Secret``.

        Whatever is raised leaves with the locals of the frames below this one cleared (the module
        docstring says why).
        """
        try:
            return self._prepare(ref, reveal(payload), headers)
        except BaseException as error:
            forget_frames(error, sys._getframe())
            raise

    def _prepare(self, ref: str, payload: Any, headers: Optional[Mapping[str, str]]) -> Prepared:
        descriptor, from_ref = self.registry.resolve(ref)
        if from_ref and isinstance(payload, (dict, type(None))):
            # "GET /v3/x/4200?mchid=1" fills {transaction_id} and mchid, typed as the descriptor says.
            located = {**descriptor.request.query, **descriptor.request.path}
            payload = {**{k: from_text(located.get(k), v) for k, v in from_ref.items()}, **(payload or {})}
        if self.defaults is not None:
            payload = self.defaults.fill(descriptor, payload)
        plan = self._plan(descriptor)
        answers = self._answers(plan)
        if answers.refusal is not None:  # the family's reason these credentials cannot make this call
            raise ConfigurationError(answers.refusal)
        if descriptor.client_certificate and self.settings.client_certificate is None:
            raise ConfigurationError(
                f"{descriptor.id} is sent with the merchant's TLS client certificate (apiclient_cert): "
                "give Engine(client_certificate=(cert, key)) or client_certificate={'pkcs12': path, 'password': ...}"
            )
        if descriptor.body_kind == "multipart":
            payload = complete_meta(descriptor, payload)
        if descriptor.fills:
            payload = fill(descriptor, payload, self._fill_sources)
        if plan.validator is not None:
            errors = plan.validator({} if payload is None else payload)
            if errors:
                raise ValidationError(descriptor.id, errors)
        user_headers = caller_headers(headers)
        key = self._platform_key(user_headers)
        parts = split_payload(descriptor, payload)
        body, query = parts.body, parts.query
        if plan.encrypted_body or plan.encrypted_query:
            body, query = self._encrypted(plan, key, body, query)
        encoded = answers.codec.encode(descriptor, body, query)
        request = Request(
            method=descriptor.method,
            base_url=self.settings.base_url_for(descriptor),
            target=build_target(descriptor.path, parts.path, query),
            headers=self._headers(plan, user_headers, key if plan.names_platform_key else None, encoded.content_type),
            body=encoded.data,
            signed_body=encoded.signed,
            fields=encoded.fields,
        )
        return Prepared(descriptor, request, _reconcile(descriptor, parts.body), answers)

    def codec(self, descriptor: Descriptor) -> BodyCodec:
        """The body codec a plugin chose for ``descriptor`` (asked once per descriptor, kept in its plan)."""
        return self._answers(self._plan(descriptor)).codec

    def refusal(self, descriptor: Descriptor) -> Optional[str]:
        """Why this engine's credentials cannot make ``descriptor``'s calls, by its family; ``None`` when they can."""
        return self._answers(self._plan(descriptor)).refusal

    def transport_record(self, prepared: Prepared, *, streamed: bool = False) -> TransportConfig:
        """The transport settings of ``prepared``'s request: a held answer screened on its headers as
        its family says (when its answers are signed); a streamed one (a bill file) never."""
        answers = self._answers_of(prepared)
        return answers.streamed if streamed else answers.held

    def _answers_of(self, prepared: Prepared) -> "_Answers":
        """The answers ``prepared`` was made with, so one call is encoded, sent and decoded alike."""
        answers = prepared.answers
        return answers if answers is not None else self._answers(self._plan(prepared.descriptor))

    def _answers(self, plan: "_Plan") -> "_Answers":
        """What the plugins answered for the plan's descriptor under the plugins registered now."""
        generation = self._asked.generation()  # read before asking: a change while asking is seen next call
        answers = plan.answers
        if answers is None or answers.generation != generation:
            answers = plan.answers = self._ask(plan.descriptor, generation)
        return answers

    def _ask(self, descriptor: Descriptor, generation: int) -> "_Answers":
        """Ask the plugins for ``descriptor``'s family and codec, with what follows for this engine."""
        family = self.hook.wxpay_protocol_family(descriptor=descriptor)
        if family is None:
            raise ConfigurationError(
                f"no plugin answers for the protocol family {descriptor.protocol!r} of {descriptor.id}: "
                "register the family's plugins (they implement wxpay_protocol_family)"
            )
        if not isinstance(family, Family):
            raise ConfigurationError(
                f"a wxpay_protocol_family plugin answered {type(family).__name__} for {descriptor.id}, "
                "not an engine.Family"
            )
        codec = self.hook.wxpay_body_codec(descriptor=descriptor)
        if codec is None:
            raise ConfigurationError(f"no plugin encodes the {descriptor.body_kind} body of {descriptor.id}")
        screen = family.screen if descriptor.signed_answer else None
        return _Answers(
            generation,
            codec,
            refusal=None if family.refusal is None else family.refusal(descriptor, self.credentials),
            held=self.settings.transport_config(screen=screen, descriptor=descriptor),
            streamed=self.settings.transport_config(descriptor=descriptor),
        )

    def _plan(self, descriptor: Descriptor) -> "_Plan":
        if is_adhoc(descriptor):  # made afresh for each "METHOD /path" call: kept, it would only pile up
            return _Plan.of(descriptor)
        known = self._plans.get(descriptor.id)
        if known is None or known.descriptor is not descriptor:
            known = self._plans[descriptor.id] = _Plan.of(descriptor)
        return known

    def _platform_key(self, user_headers: Headers) -> Optional[PlatformKey]:
        if H_SERIAL not in user_headers:
            return self.keyring.preferred(self.clock())
        key = self.keyring.find(user_headers[H_SERIAL])
        if key is None:
            raise ConfigurationError(
                f"the {H_SERIAL} header names a key this engine does not hold; known: {', '.join(self.keyring.ids())}"
            )
        return key

    def _encrypted(self, plan: "_Plan", platform_key: Optional[PlatformKey], body: Any, query: Any) -> tuple[Any, Any]:
        """``body`` and ``query`` with their encrypted fields encrypted; every problem reported at once."""
        descriptor = plan.descriptor
        problems: list[str] = []
        encrypt = self._encryptor(descriptor, self._encryption_key(descriptor, platform_key), problems)
        if plan.encrypted_body:
            body = map_encrypted_fields(descriptor.request.body, body, encrypt)
        if plan.encrypted_query:
            query = map_encrypted_fields(descriptor.request.query, query, encrypt)
        if problems:
            raise ValidationError(descriptor.id, problems)
        return body, query

    def _encryption_key(self, descriptor: Descriptor, platform_key: Optional[PlatformKey]) -> PlatformKey:
        """The key ``descriptor``'s encryption trait names: the keyring's, or one the engine holds by name."""
        name = descriptor.encryption.key
        chosen = platform_key if name == "platform" else self.encryption_keys.get(name)
        if chosen is not None:
            return chosen
        if name == "platform":
            raise ConfigurationError(
                f"{descriptor.id} has encrypted fields but the engine holds no WeChat Pay public key or "
                "platform certificate to encrypt them with"
            )
        raise ConfigurationError(f"{descriptor.id} has fields encrypted with {ENCRYPTION_KEY_REMEDIES[name]}")

    def _encryptor(
        self, descriptor: Descriptor, key: PlatformKey, problems: list[str]
    ) -> Callable[[str, str, Field], str]:
        scheme = descriptor.encryption.scheme

        def encrypt(value: str, path: str, field: Field) -> str:
            try:
                ciphertext = self._encrypt_field(plaintext=value, key=key, scheme=scheme)
            except ValueError:  # the cipher refused this value ("Encryption failed"); the validator bounds
                # the plaintext to what the key holds first, so this is the cipher's verdict, not a length
                problems.append(f"the field cipher refused this value ({scheme} under {key.key_id}) @ {path}")
                return ""
            if ciphertext is None:
                raise ConfigurationError(f"no plugin encrypted the field @ {path} ({scheme})")
            problems.extend(ciphertext_problems(field, cast(str, ciphertext), path))
            return cast(str, ciphertext)

        return encrypt

    def _headers(
        self, plan: "_Plan", user_headers: Headers, key: Optional[PlatformKey], content_type: Optional[str]
    ) -> Headers:
        descriptor = plan.descriptor
        if user_headers:
            _check_user_headers(user_headers)
        base = {"Accept": "application/json", "User-Agent": self.settings.user_agent}
        if content_type is not None:
            base["Content-Type"] = content_type
        trait = descriptor.idempotency
        if trait is not None and trait.header is not None and trait.header not in user_headers:
            base[trait.header] = self.nonce()  # made once per call: every attempt resends the same key
        if key is not None:
            base[H_SERIAL] = key.key_id
        headers = Headers(base).merged(user_headers)
        missing = [name for name in plan.required_headers if name not in headers]
        if missing:
            raise ValidationError(descriptor.id, [f"missing required header @ $headers.{n}" for n in missing])
        return headers

    # -- sign ------------------------------------------------------------------------------

    def sign(self, prepared: Prepared) -> Request:
        """The prepared request signed afresh: with an Authorization header, or as the signer rebuilt it."""
        context = SigningContext(self.credentials, int(self.clock()), self.nonce())
        signed = self._sign_request(request=prepared.request, signing=context, descriptor=prepared.descriptor)
        if signed is None:
            raise ConfigurationError("no plugin signed the request")
        if isinstance(signed, Request):
            return signed
        return prepared.request.with_headers(prepared.request.headers.with_header("Authorization", signed))

    # -- interpret -------------------------------------------------------------------------

    def interpret(self, prepared: Prepared, raw: RawResponse) -> Response:
        """Verify, decode and decrypt an answer; raise for anything that is not a trusted 2xx.

        An operation whose descriptor says its answers are unsigned (``signed_answer: false``) skips
        verification, and only such an operation: ``verified_with`` is then ``None``.
        """
        descriptor = prepared.descriptor
        if not 200 <= raw.status < 300 and not (descriptor.redirect and 300 <= raw.status < 400):
            raise self._api_error(raw, prepared)
        plan = self._plan(descriptor)
        try:
            key_id = self.verify(raw, None, descriptor, prepared.request) if descriptor.signed_answer else None
            decoded = self._answers_of(prepared).codec.decode(descriptor, raw)
        except ApiError as error:  # a family whose errors travel in a 2xx body (APIv2 result_code=FAIL)
            if error.outcome_unknown and error.reconcile is None:
                error.reconcile = prepared.reconcile
            raise
        data = self._decrypted(descriptor, decoded) if plan.encrypted_answer else decoded
        request_id = raw.headers.get(H_REQUEST_ID, "")
        return Response(raw.status, raw.headers, data, request_id, key_id, descriptor.id)

    def _decrypted(self, descriptor: Descriptor, decoded: Any) -> Any:
        """``decoded`` with its encrypted fields decrypted; a failure leaves no plaintext in a frame."""
        try:
            return map_encrypted(descriptor.response, decoded, self._decrypt)
        except BaseException as error:  # the fields decrypted before it are in the walker's frames
            forget_frames(error, sys._getframe())
            raise

    def verify(
        self,
        raw: RawResponse,
        keyring: Optional[PlatformKeyring] = None,
        descriptor: Optional[Descriptor] = None,
        request: Optional[Request] = None,
    ) -> str:
        """The id of the key that verified ``raw`` (by default among the engine's trusted keys)."""
        chosen = self.keyring if keyring is None else keyring
        key_id = self._verify_response(
            response=raw,
            keyring=chosen,
            now=int(self.clock()),
            descriptor=descriptor,
            request=request,
            credentials=self.credentials,
        )
        if not key_id:
            raise SignatureError("unverified", "no verifier plugin accepted the answer; its data is withheld")
        return str(key_id)

    def _decrypt(self, value: str, path: str) -> str:
        try:
            plaintext = self._decrypt_field(ciphertext=value, credentials=self.credentials)
        except ValueError:
            raise MalformedResponseError(f"cannot decrypt the encrypted answer field @ {path}") from None
        if plaintext is None:
            raise ConfigurationError(f"no plugin decrypted the answer field @ {path}")
        return cast(str, plaintext)

    def interpret_error(self, raw: RawResponse, prepared: Optional[Prepared] = None) -> ApiError:
        """The ``ApiError`` a non-2xx answer stands for."""
        return self._api_error(raw, prepared)

    def _api_error(self, raw: RawResponse, prepared: Optional[Prepared] = None) -> ApiError:
        descriptor, request = (prepared.descriptor, prepared.request) if prepared is not None else (None, None)
        try:
            verified = bool(self.verify(raw, None, descriptor, request))
        except (SignatureError, MalformedResponseError, ApiError):
            verified = False
        body = _error_body(raw.body)
        return ApiError(
            status=raw.status,
            code=str(body.get("code") or f"HTTP_{raw.status}"),
            message=str(body.get("message") or "no error message in the answer"),
            detail=body.get("detail"),
            request_id=raw.headers.get(H_REQUEST_ID, ""),
            verified=verified,
            reconcile=prepared.reconcile if prepared is not None and raw.status >= 500 else None,
        )


@attrs.frozen
class _Answers:
    """What the plugins answered for one descriptor, stamped with the generation of plugins asked.

    One record, replaced whole: a thread reading it never sees one answer of the old plugins beside
    one of the new.
    """

    generation: int
    codec: BodyCodec
    refusal: Optional[str]  # the family's reason this engine cannot make the calls, or None
    held: TransportConfig  # a held answer's transport settings (screened as the family says)
    streamed: TransportConfig  # a streamed answer's: never screened (bill files are not signed)


class _Plan:
    """What the stages need to know of one descriptor, worked out at its first call."""

    __slots__ = (
        "answers",
        "descriptor",
        "encrypted_answer",
        "encrypted_body",
        "encrypted_query",
        "names_platform_key",
        "required_headers",
        "validator",
    )

    def __init__(self, descriptor: Descriptor, validator: Optional[PayloadValidator]) -> None:
        self.descriptor = descriptor
        self.validator = validator  # None: a free-form descriptor takes any payload
        # asked of the plugins at first use, and again after they change (Pipeline._answers)
        self.answers: Optional[_Answers] = None
        self.encrypted_body = any_encrypted(descriptor.request.body)
        self.encrypted_query = any_encrypted(descriptor.request.query)
        self.encrypted_answer = any_encrypted(descriptor.response)
        self.required_headers = tuple(name for name, f in descriptor.request.header.items() if f.required)
        # Wechatpay-Serial names the keyring's key that encrypts the fields; a descriptor whose fields
        # another key encrypts (APIv2 pay_bank) must not name one that did not
        self.names_platform_key = descriptor.encryption.key == "platform"

    @classmethod
    def of(cls, descriptor: Descriptor) -> "_Plan":
        return cls(descriptor, None if descriptor.free_form else compile_validator(caller_view(descriptor)))


def _check_user_headers(user_headers: Headers) -> None:
    for name in RESERVED_HEADERS:
        if name in user_headers:
            raise UsageError(f"the {name} header is set by the engine; do not pass it")
    for name, value in user_headers.items():
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
            raise UsageError(f"the {name!r} header contains a line break, which could inject headers")


def _reconcile(descriptor: Descriptor, body: Any) -> Optional[Reconcile]:
    """For a state-changing call: the business number that finds its outcome, and where to look."""
    if descriptor.method == "GET":
        return None
    trait = descriptor.idempotency
    if trait is None or trait.key is None:
        return Reconcile(descriptor.id)
    value = body.get(trait.key) if isinstance(body, dict) else None
    return Reconcile(descriptor.id, trait.key, value, trait.query)


def direct_caller(hook_caller: Any) -> Callable[..., Any]:
    """The hook itself, or, when every implementation is a plain function, a direct call of them.

    Calling plain implementations in pluggy's order (the back of ``get_hookimpls()`` first) with the
    arguments each names, stopping at the first answer of a ``firstresult`` hook, is what pluggy
    would do, minus its dispatch (a few microseconds a call; the APIv3 and APIv2 built-ins share the
    signing and verifying hooks, so every call pays it twice otherwise). The answer has pluggy's
    shape: the result of a ``firstresult`` hook, the list of results otherwise. Any wrapper, or an
    implementation with keyword-only arguments, makes this return the hook caller unchanged.
    """
    implementations = hook_caller.get_hookimpls()
    if not implementations or any(i.hookwrapper or i.wrapper or i.kwargnames for i in implementations):
        return cast(Callable[..., Any], hook_caller)
    calls = [(i.function, _picker(i.argnames)) for i in reversed(implementations)]
    if hook_caller.spec is not None and hook_caller.spec.opts.get("firstresult"):

        def first(**arguments: Any) -> Any:
            for function, pick in calls:
                result = function(*pick(arguments))
                if result is not None:
                    return result
            return None

        return first

    def collected(**arguments: Any) -> list[Any]:
        results = []
        for function, pick in calls:
            result = function(*pick(arguments))
            if result is not None:
                results.append(result)
        return results

    return collected


def _picker(names: tuple[str, ...]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """The arguments an implementation names, in its order, as a tuple (``itemgetter``: one C call a
    hook call, where a list comprehension is a Python frame; it returns a bare value for one name)."""
    if len(names) > 1:
        return operator.itemgetter(*names)
    if names:
        name = names[0]
        return lambda arguments: (arguments[name],)
    return lambda arguments: ()


class HookWatch:
    """A generation number for the implementations of some hooks: it moves on when they change.

    What plugins answered once per descriptor (the body codec, the family's facts) is stamped with
    the generation it was asked under, and asked again when the generation has moved on: a plugin
    registered or removed after the engine was built (the Stubber's, a user's family) takes part
    from the next call on. A change made while another thread is asking leaves that thread's
    answer stamped with the old generation, so it too is asked again at the next call.
    """

    __slots__ = ("_current", "_watched")

    def __init__(self, *hook_callers: Any) -> None:
        self._watched = self._look(hook_callers)
        self._current = 0

    @staticmethod
    def _look(hook_callers: Any) -> tuple[tuple[Any, list[Any]], ...]:
        return tuple((caller, list(caller._hookimpls)) for caller in hook_callers)

    def generation(self) -> int:
        # pluggy keeps a hook's implementations in one list it edits in place: compare it, uncopied
        for caller, seen in self._watched:
            if caller._hookimpls != seen:
                # the generation first: a thread that sees the new snapshot must also see it has moved
                self._current += 1
                self._watched = self._look(caller for caller, _ in self._watched)
                break
        return self._current


class DirectHook:
    """A hook caller for the per-call hooks: ``direct_caller``, kept current.

    The registered implementations are compared on every call (one list comparison) and resolved
    again when they changed, so a plugin registered or removed after the engine was built, the
    Stubber's for one, takes part from the next call on, exactly as through pluggy.
    """

    __slots__ = ("_caller", "_direct", "_seen")

    def __init__(self, hook_caller: Any) -> None:
        self._caller = hook_caller
        self._seen: Optional[list[Any]] = None
        self._direct: Callable[..., Any] = hook_caller

    def __call__(self, **arguments: Any) -> Any:
        # pluggy keeps a hook's implementations in one list it edits in place; compare it, uncopied,
        # with the copy taken when the direct call was made
        implementations = self._caller._hookimpls
        if implementations != self._seen:
            self._seen, self._direct = list(implementations), direct_caller(self._caller)
        return self._direct(**arguments)


def _error_body(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}
