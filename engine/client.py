"""``Engine``: the object users hold. It wires settings, keys, plugins and descriptors together.

Design decisions:

* Everything is checked when the engine is built: keys are parsed once (a bad key fails here, with
  a ``CredentialError`` naming the setting), plugins are validated against the hookspecs, and APIv3
  credentials need at least one WeChat Pay key, because an answer that cannot be verified is never
  returned (``engine.configuration`` says which sets of credentials an engine takes). A missing
  ``mchid`` is a ``ConfigurationError`` too, not Python's ``TypeError``, while type checkers still
  see it required.
* Dependencies point one way: ``Engine`` builds the ``Pipeline`` (sans-I/O stages), the
  ``Runtime`` (the one owner of loop-bound state), the ``Sender`` (the send loop), the key provider
  (``StaticKeys`` or ``CertificateKeys``) and the ``Executor`` that strings them together, each
  given what it needs at construction; nothing is patched in afterwards.
* ``call`` (sync) and ``acall`` (async) are one code path: ``call`` runs ``acall``'s coroutine through
  ``Runtime.run_sync``, with a bounded wait. So does every other sync method with an async twin
  (``download``, ``download_certificates``, ``acknowledge_notification``), through the one
  ``_run_sync``; the few that differ on purpose say why where they do. Transports are made per
  event loop by the ``wxpay_transport`` hook; ``Engine(transport=...)`` is a plugin answering that
  hook with the given object, so the Stubber (``tryfirst``) still takes over.
* The merchant key is a key-level signer: ``private_key`` becomes a ``PrivateKeySigner``, or
  ``signer=`` is any object with ``sign(data) -> bytes`` (a KMS, an HSM). Every merchant signature
  goes through it.
* ``Engine.sandbox()`` is an ordinary engine whose base URL is ``sandbox://`` and whose plugins
  include the in-process sandbox transport bound to a fresh emulator, exposed as ``.emulator``.
* Shared state (notification claims and acknowledgements, the certificate cache, cross-process
  locks) lives in one store (``engine.stores``): ``Engine(store="redis://...")`` or the environment's
  ``WECHATPAY_STORE``; in memory otherwise. It is bound to this merchant's id, so engines for many
  merchants can share one Redis without seeing each other's state. An unreachable store fails here.
* ``defaults`` fill fields such as ``sp_mchid`` or ``notify_url`` into payloads that leave them out
  (``engine.defaults``), before validation.
* An engine refuses ``pickle`` and ``copy`` with a ``UsageError`` saying why: it holds keys,
  connections and loops, and a process pool or a task queue needs one built in each process.
* The repr names the merchant and key ids only. The constructors (``Engine(...)``, ``Engine.sandbox``,
  ``Engine.from_env``) box key settings and a store URL in ``Secret`` before their first line, so no
  frame of a refused construction shows them.
* ``import engine`` loads what a first call needs and no more: certificate mode (and with it
  ``cryptography.x509``, a tenth of the import), bill downloads and the chainable style are
  imported by the methods that use them.
* APIv2 is the same engine: ``apiv2_key`` (and ``apiv2_sign_type``) join the credentials,
  ``client_certificate`` and ``appid`` the settings, ``engine.v2`` is the chain root for
  ``engine.v2.pay.micropay.post(xml={...})``, and APIv2 callbacks have their own entry points
  (``parse_v2_notification``, ``handle_v2_notification``, ``v2_notification_handler``) because
  they share nothing with APIv3's (no headers, no envelope, an XML reply).
* An APIv2-only merchant gives ``mchid`` and ``apiv2_key`` (and ``client_certificate``, ``appid``)
  and nothing of APIv3: the engine then holds no signer and no WeChat Pay key, and refuses every
  APIv3 use, a call, a certificate download, a callback, a payment-invocation signature, with a
  ``ConfigurationError`` naming the missing settings before anything is signed or sent. The TLS
  client certificate's key then comes from the certificate setting itself.
* ``pay_bank_public_key`` is the RSA key of APIv2 ``risk/getpublickey``: operations whose
  descriptor says ``encryption: {key: pay_bank}`` (企业付款到银行卡) have their ``encrypted`` fields
  encrypted with it; the caller passes plaintext. The payload of every call is boxed
  (``engine.secret``) on its first line, because it may hold such plaintext.
"""

from __future__ import annotations

import asyncio
import functools
import os
import time
from pathlib import Path
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Coroutine,
    Iterable,
    Mapping,
    Optional,
    ParamSpec,
    Sequence,
    TypeVar,
    Union,
    cast,
)

from engine import configuration
from engine.configuration import DEFAULT_BASE_URL
from engine.defaults import Defaults
from engine.descriptor import Descriptor
from engine.environment import refuse_empty
from engine.errors import ConfigurationError, UsageError
from engine.executor import Executor
from engine.hookspecs import hookimpl
from engine.invoke import app_parameters, jsapi_parameters
from engine.keyprovider import KeyProvider, StaticKeys
from engine.keys import KeySource, MerchantCredentials, MerchantSigner, parsed_private_key
from engine.kinds import ENGINE_KINDS, FROM_ENV_KINDS, Kind, check_settings, sandbox_kinds
from engine.pipeline import Pipeline, Settings
from engine.plugin_manager import build_plugin_manager
from engine.protocol import new_nonce
from engine.registry import Registry
from engine.retry import RetryPolicy
from engine.runtime import Runtime
from engine.secret import hide, hide_settings
from engine.sender import Sender
from engine.stores import DEFAULT_ACK_TTL, DEFAULT_CLAIM_TTL, STORE_ENV, Store, open_store
from engine.tls import client_certificate as parse_client_certificate
from engine.transport import (
    DEFAULT_MAX_ANSWER_BYTES,
    DEFAULT_MAX_DOWNLOAD_BYTES,
    BaseTransport,
    Transport,
    TransportConfig,
    Write,
    check_transport,
)
from engine.wire import RawResponse, Request, Response

if TYPE_CHECKING:  # generated stubs: type checkers read them, run time never imports them
    from engine.chain import Chain
    from engine.downloads import Download
    from engine.notifications import Handler, Notification, NotificationReceiver, Reply
    from engine.types._calls import ACall, Call
    from engine.types._chain import ChainOf, V3Chain
    from engine.v2.notifications import V2Handler, V2Notification, V2NotificationReceiver

T = TypeVar("T")
P = ParamSpec("P")
SYNC_MARGIN_SECONDS = 1.0


def _boxing(make: Callable[P, T]) -> Callable[P, T]:
    """``make`` (a constructor taking ``Engine`` settings as keywords) with those settings boxed first.

    Here, before its first line, because ``make``'s frame holds its keywords (``**options``) for as
    long as it runs: so no frame of a traceback of a refused ``Engine.sandbox(...)`` or
    ``Engine.from_env(...)`` shows a key or a store password (``engine.secret``).
    """

    @functools.wraps(make)
    def boxing(*args: P.args, **kwargs: P.kwargs) -> T:
        hide_settings(kwargs)
        if len(args) > 1:  # args[0] is the class
            raise ConfigurationError(f"Engine.{make.__name__} takes its settings by name")
        return make(*args, **kwargs)

    return boxing


def _judge(settings: Mapping[str, Any], kinds: Mapping[str, Kind], constructor: str, environment: bool) -> None:
    """What every constructor checks first, in this order: empty text (all such settings named at
    once, ``refuse_empty``), then each keyword's kind (``engine.kinds``). Never a value in a message."""
    refuse_empty(settings, environment=environment)
    check_settings(settings, kinds, constructor)


def _guarded(init: Callable[P, None]) -> Callable[P, None]:
    """``init`` behind what must come before its first line.

    The key settings (and a store URL, which may carry a password) are boxed in ``Secret`` first,
    here, because this frame holds them for as long as ``init`` runs: so no frame of a traceback
    shows them (``engine.secret``). Settings given by position are refused as one message. Settings
    given as empty text are refused next, all named at once, by the check ``Engine.from_env`` and the
    CLI use (``engine.environment.refuse_empty``): an empty key or URL is a mistake, not "unset", and
    judged later it would read as a file path or pass as a blank URL. Then each setting's kind
    (``engine.kinds``): a setting of the wrong type is refused by name here. Then a call without
    ``mchid`` is a ``ConfigurationError`` rather than Python's ``TypeError``; type checkers see
    ``init``'s own signature, where ``mchid`` stays required.
    """

    @functools.wraps(init)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> None:
        hide_settings(kwargs)
        if len(args) > 1:
            raise ConfigurationError("Engine takes its settings by name: Engine(mchid=..., ...)")
        _judge(kwargs, ENGINE_KINDS, "Engine", environment=False)  # Engine reads no variable
        if "mchid" not in kwargs:
            raise ConfigurationError("mchid is required (a non-empty string)")
        init(*args, **kwargs)

    return guarded


class Engine:
    """A WeChat Pay client for one merchant: APIv3, APIv2 (``apiv2_key``), or both. See the README for every setting."""

    @_guarded
    def __init__(
        self,
        *,
        mchid: str,
        serial_no: Optional[str] = None,
        private_key: Union[KeySource, Any, None] = None,
        signer: Optional[MerchantSigner] = None,
        platform_public_key: Optional[KeySource] = None,
        platform_public_key_id: Optional[str] = None,
        platform_certificates: Sequence[KeySource] = (),
        apiv3_key: Union[str, bytes, None] = None,
        base_url: str = DEFAULT_BASE_URL,
        plugins: Iterable[Any] = (),
        transport: Optional[Transport] = None,
        endpoint_dirs: Sequence[Union[str, Path]] = (),
        timeout: float = 30.0,
        connect_timeout: float = 10.0,
        retry: Optional[RetryPolicy] = None,
        proxy: Optional[str] = None,
        trust_env: bool = False,
        pool_size: int = 100,
        max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES,
        clock: Callable[[], float] = time.time,
        nonce_factory: Callable[[], str] = new_nonce,
        load_entry_points: bool = True,
        certificates_dir: Union[str, Path, None] = None,
        notification_store: Optional[Store] = None,
        hosts: Optional[Mapping[str, str]] = None,
        store: Union[str, Store, None] = None,
        defaults: Optional[Mapping[str, Any]] = None,
        notification_ttl: float = DEFAULT_ACK_TTL,
        claim_ttl: float = DEFAULT_CLAIM_TTL,
        apiv2_key: Union[str, bytes, None] = None,
        apiv2_sign_type: str = "HMAC-SHA256",
        client_certificate: Any = None,
        appid: Optional[str] = None,
        pay_bank_public_key: Optional[KeySource] = None,
    ) -> None:
        # private_key and apiv3_key arrive boxed in Secret (_guarded): no frame of a traceback shows them.
        self.credentials = configuration.merchant_credentials(
            mchid, serial_no, private_key, signer, apiv2_key, apiv2_sign_type
        )
        apiv3 = configuration.parse_apiv3_key(apiv3_key)
        keyring = configuration.build_keyring(platform_public_key, platform_public_key_id, platform_certificates)
        configuration.check_verifying_keys(self.credentials, keyring, apiv3)
        given = [_GivenTransport(check_transport(transport, "transport"))] if transport is not None else []
        self.plugin_manager = build_plugin_manager([*plugins, *given], entry_points=load_entry_points)
        self.registry: Registry = configuration.build_registry(self.plugin_manager, endpoint_dirs)
        settings = Settings(
            base_url.rstrip("/"),
            configuration.user_agent(),
            timeout,
            connect_timeout,
            configuration.host_families(base_url, hosts),
            configuration.check_proxy(proxy),
            trust_env,
            pool_size,
            max_answer_bytes,
            parse_client_certificate(client_certificate, merchant_key=_merchant_key(private_key, self.credentials)),
            configuration.optional_text(appid, "appid"),
        )
        self.retry = configuration.check_retry(retry)
        self.pipeline = Pipeline(
            self.registry,
            self.plugin_manager.hook,
            self.credentials,
            keyring,
            settings,
            clock,
            nonce_factory,
            defaults=Defaults.from_setting(defaults),
            encryption_keys=configuration.encryption_keys(pay_bank_public_key),
        )
        self.runtime = Runtime(self._make_transport)
        spec = store if store is not None else notification_store
        self.store = open_store(
            spec if spec is not None else hide(os.environ.get(STORE_ENV)),
            namespace=self.credentials.mchid,
            runtime=self.runtime,
            clock=clock,
        )
        check = getattr(self.store, "check", None)
        if callable(check):
            check()
        sender = Sender(self.pipeline, self.runtime, self.retry)
        certificate_mode = bool(platform_certificates) or certificates_dir is not None or not keyring
        store_dir = Path(certificates_dir) if certificates_dir is not None else None
        self.keys: KeyProvider = (
            _certificate_keys()(keyring, self.pipeline, sender, apiv3, store_dir, store=self.store)
            if certificate_mode and apiv3 is not None
            else StaticKeys(keyring)
        )
        self._executor = Executor(self.pipeline, sender, self.keys)
        # The receivers (and their modules) are made at the first callback: a first call needs neither.
        self._receiver_settings = (apiv3, clock, notification_ttl, claim_ttl)
        self.emulator: Any = None  # the in-process Sandbox, on engines made by Engine.sandbox()

    @functools.cached_property
    def notifications(self) -> "NotificationReceiver":
        """The APIv3 callback receiver (verify, decrypt, exactly-once acknowledgement)."""
        from engine.notifications import NotificationReceiver

        self.credentials.require_apiv3(
            "receiving APIv3 callbacks", "; APIv2 callbacks go to parse_v2_notification or handle_v2_notification"
        )
        apiv3, clock, ack_ttl, claim_ttl = self._receiver_settings
        return NotificationReceiver(
            self.pipeline.verify,
            self.keys,
            apiv3,
            self.store,
            clock,
            mchid=self.credentials.mchid,
            ack_ttl=ack_ttl,
            claim_ttl=claim_ttl,
        )

    @functools.cached_property
    def v2_notifications(self) -> "V2NotificationReceiver":
        """The APIv2 callback receiver (payment and refund notifications)."""
        from engine.v2.notifications import V2NotificationReceiver

        return V2NotificationReceiver(self.credentials)

    @classmethod
    @_boxing
    def sandbox(
        cls, *, identity: Any = None, plugins: Iterable[Any] = (), mode: str = "public_key", **options: Any
    ) -> "Engine":
        """An engine wired to a fresh in-process emulator (``.emulator``): throwaway keys, no network.

        ``identity`` reuses a ``SandboxIdentity`` (saves key generation); ``mode`` is ``public_key``,
        ``certificate`` or ``both`` (which WeChat Pay keys the engine trusts), or ``apiv2`` (an
        APIv2-only merchant: no APIv3 credentials at all); other options go to ``Engine``, but
        ``base_url``: the sandbox chooses its own (``sandbox://wechatpay``), and refuses another, because
        its transport serves no other (a served sandbox is reached by ``Engine(base_url=...)``).
        """
        from engine.plugins.sandbox_transport import SANDBOX_URL, SandboxTransportPlugin
        from engine.sandbox import Sandbox, SandboxIdentity

        # First: the emulator below reads options (clock, mode) before Engine would judge them, and
        # base_url is the sandbox's own (a served sandbox is reached by Engine(base_url=...)).
        own = {"identity": identity, "plugins": plugins, "mode": mode}
        _judge({**options, **own}, sandbox_kinds(), "Engine.sandbox", environment=False)
        identity = identity if identity is not None else SandboxIdentity.generate()
        emulator = Sandbox(identity, clock=options.get("clock", time.time), mode=mode)
        # The identity's keys are boxed too: this frame holds them until the engine is built.
        settings = hide_settings({**identity.engine_settings(mode), **options})  # mode was judged above
        engine = cls(base_url=SANDBOX_URL, plugins=[SandboxTransportPlugin(emulator), *plugins], **settings)
        emulator.registry = engine.registry  # the sandbox validates against the engine's own descriptors
        engine.emulator = emulator
        return engine

    @classmethod
    @_boxing
    def from_env(cls, *, environ: Optional[Mapping[str, str]] = None, **options: Any) -> "Engine":
        """An engine configured by the ``WECHATPAY_*`` variables (see ``engine.environment``).

        ``environ`` defaults to ``os.environ``; ``options`` are further ``Engine`` settings, and win over
        the environment (``Engine.from_env(plugins=[...], timeout=10)``). A missing required variable
        is a ``ConfigurationError`` naming it; a bad value fails as it would passed to ``Engine``. An
        empty variable counts as unset; a keyword given as empty text is a ``ConfigurationError``
        naming it (``engine.environment.refuse_empty``).
        ``WECHATPAY_MCHID`` and ``WECHATPAY_APIV2_KEY`` alone make an APIv2-only engine.
        """
        from engine.environment import ENVIRONMENT, missing, paired_client_certificate, read_environment

        # First: an empty or ill-typed keyword is a mistake, whatever the environment holds.
        _judge({**options, "environ": environ}, FROM_ENV_KINDS, "Engine.from_env", environment=True)
        settings = {**read_environment(environ), **options}
        absent = missing(settings)
        if absent:
            apiv3 = absent != [ENVIRONMENT["mchid"]] and not settings.get("apiv2_key")
            hint = f" (or {ENVIRONMENT['apiv2_key']} instead, for an APIv2-only engine)" if apiv3 else ""
            raise ConfigurationError(f"missing settings: set {', '.join(absent)} in the environment{hint}")
        return cls(**paired_client_certificate(settings, environ))

    # -- calling -------------------------------------------------------------------------------

    def _call(
        self,
        endpoint: str,
        payload: Any = None,
        *,
        headers: Optional[Mapping[str, str]] = None,
        retry: Optional[RetryPolicy] = None,
    ) -> Response:
        """Validate, encrypt, sign, send, verify and decrypt one call; block until done.

        ``retry`` replaces the engine's retry policy for this call (``RetryPolicy.never()``: one attempt).
        """
        payload = hide(payload)  # boxed before anything can fail: no frame of a traceback shows it (engine.pipeline)
        policy = configuration.check_retry(retry) if retry is not None else None
        return self._run_sync(lambda: self._acall(endpoint, payload, headers=headers, retry=policy), policy)

    async def _acall(
        self,
        endpoint: str,
        payload: Any = None,
        *,
        headers: Optional[Mapping[str, str]] = None,
        retry: Optional[RetryPolicy] = None,
    ) -> Response:
        """The async form of ``call``: the same pipeline, awaited."""
        payload = hide(payload)  # as in call: the payload may hold plaintext of encrypted fields
        self.runtime.check_open()
        policy = configuration.check_retry(retry) if retry is not None else None
        return await self._executor.run(endpoint, payload, headers, policy)

    # Type checkers see one overload per operation (engine/types/_calls.pyi, generated): the id or
    # short name as a literal picks the payload and answer types; ``Untyped(ref)`` takes any other.
    if TYPE_CHECKING:
        call: Call
        acall: ACall
    else:
        call = _call
        acall = _acall

    @property
    def clock(self) -> Callable[[], float]:
        """The engine's clock (Unix seconds): ``time.time`` unless one was injected."""
        return self.pipeline.clock

    @property
    def keyring(self) -> Any:
        """The WeChat Pay keys this engine trusts now (public keys and platform certificates)."""
        return self.keys.keyring

    def _run_sync(self, make: Callable[[], Coroutine[Any, Any, T]], policy: Optional[RetryPolicy] = None) -> T:
        """How every sync method runs its async twin: ``make()``'s coroutine through ``Runtime.run_sync``.

        The wait is bounded by ``policy`` (the engine's unless a call brought its own): a call may need
        a certificate download and a refresh besides itself, each within the policy's deadline; plus a
        margin. (The bound is worked out here, not in a helper: ``call`` comes through here every time.)
        """
        deadline = (self.retry if policy is None else policy).deadline
        return self.runtime.run_sync(make, 3 * deadline + SYNC_MARGIN_SECONDS)

    def _make_transport(self) -> Transport:
        config = self.pipeline.settings.transport_config()
        transport = self.plugin_manager.hook.wxpay_transport(config=config)
        if transport is None:
            raise ConfigurationError(f"no transport plugin serves base_url {config.base_url!r}")
        return check_transport(transport, "the wxpay_transport hook's answer")

    # -- downloads -----------------------------------------------------------------------------

    def download(
        self,
        endpoint: str,
        payload: Any,
        dest: Union[str, Path],
        *,
        gunzip: bool = True,
        max_bytes: Optional[int] = DEFAULT_MAX_DOWNLOAD_BYTES,
    ) -> Download:
        """Request a bill (verified) and stream its file to ``dest``, checking its digest.

        ``max_bytes`` bounds the file's uncompressed size (1 GiB unless given; ``None`` lifts it):
        past it the download fails with ``AnswerTooLargeError`` and leaves no file.
        """
        return self._run_sync(lambda: self.adownload(endpoint, payload, dest, gunzip=gunzip, max_bytes=max_bytes))

    async def adownload(
        self,
        endpoint: str,
        payload: Any,
        dest: Union[str, Path],
        *,
        gunzip: bool = True,
        max_bytes: Optional[int] = DEFAULT_MAX_DOWNLOAD_BYTES,
    ) -> Download:
        """The async form of ``download``."""
        from engine.downloads import check_destination, check_max_bytes, download

        check_max_bytes(max_bytes)  # before step 1: a bad setting sends nothing
        target = check_destination(dest)
        step_one = await self._acall(endpoint, payload)
        return await download(self._executor, step_one, target, gunzip, max_bytes)

    # -- certificates --------------------------------------------------------------------------

    def download_certificates(self) -> list[str]:
        """Download (or refresh) the platform certificates now; return their serials."""
        return self._run_sync(self.adownload_certificates)

    async def adownload_certificates(self) -> list[str]:
        self.credentials.require_apiv3("downloading platform certificates")
        self.runtime.check_open()
        return await self.keys.refresh()

    def start_certificate_refresh(self, interval: float = 3600.0) -> "asyncio.Task[None]":
        """For async users: refresh certificates every ``interval`` seconds in a task on the running loop.

        The task is the loop's (cancel it to stop); it ends by itself when the loop shuts down or the
        engine closes.
        """
        from engine.certificates import CertificateKeys

        self.credentials.require_apiv3("refreshing platform certificates")
        if not isinstance(self.keys, CertificateKeys):
            raise ConfigurationError("certificate refresh needs certificate mode (apiv3_key)")
        return self.runtime.resources().spawn(self.keys.run_periodically(interval), "wechatpay-certificate-refresh")

    # -- callbacks -----------------------------------------------------------------------------

    def parse_notification(self, headers: Mapping[str, str], body: Union[bytes, str]) -> Notification:
        """The low-level step: verify, check and decrypt one callback; raise a ``NotificationError``.

        It remembers nothing: after processing, call ``acknowledge_notification`` (or use
        ``handle_notification[_sync]``, which claim, run the handler and acknowledge for you).
        """
        # Deliberately not always its async twin: with keys that never refresh, parsing is plain
        # synchronous code with nothing to await, so it runs here, on no event loop and with no bound;
        # only certificate mode, which may refresh the keys first, goes through aparse_notification.
        if not self.keys.refreshes:
            return self.notifications.parse(headers, body)
        return self._run_sync(lambda: self.aparse_notification(headers, body))

    async def aparse_notification(self, headers: Mapping[str, str], body: Union[bytes, str]) -> Notification:
        """The async form of ``parse_notification``."""
        return await self.notifications.aparse(headers, body)

    def acknowledge_notification(self, notification: Notification) -> None:
        """Record a parsed notification as processed (``notification_ttl``, 25 h by default)."""
        self._run_sync(lambda: self.aacknowledge_notification(notification))

    async def aacknowledge_notification(self, notification: Notification) -> None:
        """The async form of ``acknowledge_notification``."""
        self.runtime.check_open()  # as the sync form's run_sync does: a closed engine records nothing
        await self.notifications.acknowledge(notification)

    async def handle_notification(self, headers: Mapping[str, str], body: Union[bytes, str], handler: Handler) -> Reply:
        """For asyncio frameworks: verify, claim, run ``handler`` (sync or async), acknowledge; the reply to send."""
        self.runtime.check_open()
        return await self.notifications.handle(headers, body, handler)

    def handle_notification_sync(self, headers: Mapping[str, str], body: Union[bytes, str], handler: Handler) -> Reply:
        """For WSGI frameworks: the same, with ``handler`` called in this thread outside any event loop."""
        # Not run_sync(handle_notification): that would call a sync handler inside the private loop
        # (Django's ORM refuses to run in one). The receiver drives the same begin/finish coroutines
        # through _run_sync and calls the handler between them, here.
        return self.notifications.handle_sync(headers, body, handler, self._run_sync)

    def notification_handler(self, handler: Handler) -> Callable[[Any], Any]:
        """An ``aiohttp.web`` handler receiving callbacks for ``handler``."""
        return self.notifications.aiohttp_handler(handler)

    def parse_v2_notification(self, body: Union[bytes, str]) -> V2Notification:
        """Check and open one APIv2 callback (payment: sign verified; refund: ``req_info`` decrypted)."""
        return self.v2_notifications.parse(body)

    async def handle_v2_notification(self, body: Union[bytes, str], handler: V2Handler) -> Reply:
        """Parse an APIv2 callback, run ``handler``, and return the documented XML reply to send."""
        return await self.v2_notifications.handle(body, handler)

    def v2_notification_handler(self, handler: V2Handler) -> Callable[[Any], Any]:
        """An ``aiohttp.web`` handler receiving APIv2 callbacks for ``handler``."""
        return self.v2_notifications.aiohttp_handler(handler)

    # -- payment invocation --------------------------------------------------------------------

    def jsapi_payment(self, appid: str, prepay_id: str) -> dict[str, str]:
        """Signed parameters for ``wx.requestPayment`` (mini program) or JSAPI."""
        return jsapi_parameters(self.credentials, appid, prepay_id, self.pipeline.clock, self.pipeline.nonce)

    def app_payment(self, appid: str, prepay_id: str) -> dict[str, str]:
        """Signed parameters for the APP SDK's payment request."""
        return app_parameters(self.credentials, appid, prepay_id, self.pipeline.clock, self.pipeline.nonce)

    # -- chainable addressing ------------------------------------------------------------------

    @property
    def v3(self) -> "V3Chain":
        """``engine.v3.pay.transactions.jsapi.post(json=...)``: the chainable style (see ``engine.chain``)."""
        from engine.chain import Chain

        return cast("V3Chain", Chain(self, (("v3", False),)))

    @property
    def v2(self) -> "Chain":
        """``engine.v2.pay.micropay.post(xml=...)``: APIv2 in the same chainable style."""
        from engine.chain import Chain

        return Chain(self, (("v2", False),))

    def _chain(self, path: str) -> Chain:
        """``engine.chain("v3/pay/transactions/jsapi").post(json=...)``."""
        from engine.chain import Chain

        return Chain(self)[path]

    def _item(self, path: str) -> Chain:
        """``engine["v3/pay/transactions/id/{transaction_id}"].get(transaction_id=...)``."""
        return self._chain(path)

    # A catalogue path as a literal gives its typed node (engine/types/_chain.pyi); any other
    # string gives the untyped ``Chain``, whose undescribed paths are signed, sent and verified.
    if TYPE_CHECKING:
        chain: ChainOf
        __getitem__: ChainOf
    else:
        chain = _chain
        __getitem__ = _item

    # -- endpoints -----------------------------------------------------------------------------

    def register(self, descriptor: Descriptor, aliases: Iterable[str] = ()) -> None:
        """Add an endpoint built in Python (overrides a file with the same id)."""
        self.registry.register(descriptor, aliases)

    def endpoint(self, ref: str) -> Descriptor:
        """The descriptor an id, alias or ``"METHOD /path"`` resolves to."""
        return self.registry.get(ref)

    def endpoints(self) -> list[str]:
        """Every canonical endpoint id this engine knows."""
        return self.registry.ids()

    # -- lifecycle -----------------------------------------------------------------------------

    # close is not run_sync(aclose): run_sync refuses a closed runtime and runs on one loop, while
    # close must release every loop's resources (and the very loops run_sync drives). Runtime.aclose
    # is close plus awaiting the running loop's own resources, so the two share one release.
    async def aclose(self) -> None:
        """Release everything; from async code (the running loop's transport is awaited)."""
        await self.runtime.aclose()

    def close(self) -> None:
        """Release everything: transports of every loop, private loops, the portal, background tasks."""
        self.runtime.close()

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> "Engine":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __reduce_ex__(self, protocol: object) -> Any:
        # pickle (and copy) would otherwise fail deep inside, on a key object ("cannot pickle
        # 'RSAPrivateKey'"), or copy.copy would hand back a second Engine sharing this one's loops.
        raise UsageError(
            "an Engine does not pickle or copy: it holds keys, connections and event loops; "
            "build one in each process (Engine(...) or Engine.from_env()) and send payloads, not engines"
        )

    def __repr__(self) -> str:
        if "pipeline" not in vars(self) or "keys" not in vars(self):  # shown by a traceback of __init__
            return "<Engine (being built)>"
        credentials = self.credentials
        merchant = (
            f"serial_no={credentials.serial_no} platform_keys={self.keyring.ids()}"
            if credentials.apiv3
            else "APIv2 only"
        )
        return (
            f"<Engine mchid={credentials.mchid} {merchant} base_url={self.pipeline.settings.base_url} "
            f"store={getattr(self.store, 'description', type(self.store).__name__)}>"
        )


def _merchant_key(private_key: Any, credentials: MerchantCredentials) -> Optional[tuple[Any, Any]]:
    """The ``private_key`` setting (still a ``Secret``) with the key parsed from it, for reuse; ``None``
    when there is none (a ``signer``, or an APIv2-only engine, whose TLS key is the certificate setting's)."""
    parsed = parsed_private_key(credentials.signer)
    return None if parsed is None else (private_key, parsed)


def _certificate_keys() -> Any:
    """``CertificateKeys``, imported when certificate mode is used (x509 is a tenth of ``import engine``)."""
    from engine.certificates import CertificateKeys

    return CertificateKeys


class _GivenTransport:
    """The plugin behind ``Engine(transport=...)``: answers ``wxpay_transport`` with that object."""

    def __init__(self, transport: Transport) -> None:
        self._transport = _Borrowed(transport)

    @hookimpl
    def wxpay_transport(self, config: TransportConfig) -> Transport:
        return self._transport


class _Borrowed(BaseTransport):
    """A transport the engine uses on every loop but does not own: closing it is its owner's business."""

    def __init__(self, transport: Transport) -> None:
        self.inner = transport

    async def send(self, request: Request, config: TransportConfig) -> RawResponse:
        return await self.inner.send(request, config)

    async def stream(self, request: Request, config: TransportConfig, write: Write) -> RawResponse:
        return await self.inner.stream(request, config, write)

    def __repr__(self) -> str:
        return f"<borrowed {self.inner!r}>"
