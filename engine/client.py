"""``Engine``: the object users hold. It wires settings, keys, plugins and descriptors together.

Design decisions:

* Everything is checked when the engine is built: keys are parsed once (a bad key fails here, with
  a ``CredentialError`` naming the setting), plugins are validated against the hookspecs, and at
  least one WeChat Pay key must be present, because an answer that cannot be verified is never
  returned.
* ``call`` (sync) and ``acall`` (async) are one code path: ``call`` runs ``acall``'s coroutine on the
  portal loop. Transports are made by the ``wxpay_transport`` hook once per event loop.
* ``Engine.sandbox()`` is an ordinary engine whose base URL is ``sandbox://`` and whose plugins
  include the in-process sandbox transport bound to a fresh emulator, exposed as ``.emulator``.
* The repr names the merchant and key ids only.
"""

from __future__ import annotations

import asyncio
import platform
import time
import weakref
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence, Union

from engine import __version__
from engine.certificates import CertificateManager
from engine.chain import Chain
from engine.descriptor import Descriptor
from engine.downloads import Download, download
from engine.errors import ConfigurationError, CredentialError
from engine.executor import Executor, Settings
from engine.hookspecs import Transport
from engine.invoke import app_parameters, jsapi_parameters
from engine.keys import (
    KeySource,
    MerchantCredentials,
    PlatformKey,
    PlatformKeyring,
    load_certificate,
    load_private_key,
    load_public_key,
)
from engine.notifications import Handler, MemoryReplayStore, Notification, NotificationReceiver, ReplayStore, Reply
from engine.plugin_manager import build_plugin_manager
from engine.portal import Portal
from engine.protocol import new_nonce
from engine.registry import BUILTIN_ENDPOINTS, Registry
from engine.wire import Response

DEFAULT_BASE_URL = "https://api.mch.weixin.qq.com"
DEFAULT_HOSTS = {"hk": "https://apihk.mch.weixin.qq.com"}


class Engine:
    """A WeChat Pay APIv3 client for one merchant. See the README for every setting."""

    def __init__(
        self,
        *,
        mchid: str,
        serial_no: str,
        private_key: Union[KeySource, Any],
        platform_public_key: Optional[KeySource] = None,
        platform_public_key_id: Optional[str] = None,
        platform_certificates: Sequence[KeySource] = (),
        apiv3_key: Union[str, bytes, None] = None,
        base_url: str = DEFAULT_BASE_URL,
        plugins: Iterable[Any] = (),
        endpoint_dirs: Sequence[Union[str, Path]] = (),
        timeout: float = 30.0,
        connect_timeout: float = 10.0,
        get_retries: int = 1,
        clock: Callable[[], float] = time.time,
        nonce_factory: Callable[[], str] = new_nonce,
        load_entry_points: bool = True,
        certificates_dir: Union[str, Path, None] = None,
        notification_store: Optional[ReplayStore] = None,
        hosts: Optional[Mapping[str, str]] = None,
    ) -> None:
        self.credentials = MerchantCredentials(
            _required(mchid, "mchid"), _required(serial_no, "serial_no"), load_private_key(private_key)
        )
        self._apiv3_key = _apiv3_key(apiv3_key)
        self.keyring = _keyring(platform_public_key, platform_public_key_id, platform_certificates)
        certificate_mode = bool(platform_certificates) or certificates_dir is not None or not self.keyring
        if not self.keyring and self._apiv3_key is None:
            raise ConfigurationError(
                "no WeChat Pay key to verify answers with: give platform_public_key with platform_public_key_id "
                "(public-key mode), platform_certificates or apiv3_key to download them (certificate mode), or both"
            )
        self.plugin_manager = build_plugin_manager(plugins, entry_points=load_entry_points)
        self.registry = _registry(self.plugin_manager, endpoint_dirs)
        _check_limits(timeout, connect_timeout, get_retries)
        settings = Settings(
            base_url.rstrip("/"), _user_agent(), timeout, connect_timeout, get_retries, _hosts(base_url, hosts)
        )
        self._executor = Executor(
            self.registry, self.plugin_manager.hook, self.credentials, self.keyring, settings, clock, nonce_factory
        )
        self._transports: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Transport]" = (
            weakref.WeakKeyDictionary()
        )
        store_dir = Path(certificates_dir) if certificates_dir is not None else None
        self.certificates = CertificateManager(self._executor, self._apiv3_key if certificate_mode else None, store_dir)
        if self.certificates.enabled:
            self._executor.on_unknown_serial = self.certificates.refresh_for_unknown_serial
        self.notifications = NotificationReceiver(
            self._executor.verify,
            self._apiv3_key,
            notification_store or MemoryReplayStore(),
            clock,
            self._refresh_for_unknown_serial if self.certificates.enabled else None,
        )
        self._portal = Portal()
        self.emulator: Any = None  # the in-process Sandbox, on engines made by Engine.sandbox()

    @classmethod
    def sandbox(
        cls, *, identity: Any = None, plugins: Iterable[Any] = (), mode: str = "public_key", **options: Any
    ) -> "Engine":
        """An engine wired to a fresh in-process emulator (``.emulator``): throwaway keys, no network.

        ``identity`` reuses a ``SandboxIdentity`` (saves key generation); ``mode`` is ``public_key``,
        ``certificate`` or ``both`` (which WeChat Pay keys the engine trusts); other options go to
        ``Engine``.
        """
        from engine.plugins.sandbox_transport import SANDBOX_URL, SandboxTransportPlugin
        from engine.sandbox import Sandbox, SandboxIdentity

        identity = identity or SandboxIdentity.generate()
        emulator = Sandbox(identity, clock=options.get("clock", time.time), mode=mode)
        try:
            settings = {**identity.engine_settings(mode), **options}
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        engine = cls(base_url=SANDBOX_URL, plugins=[SandboxTransportPlugin(emulator), *plugins], **settings)
        emulator.registry = engine.registry  # the sandbox validates against the engine's own descriptors
        engine.emulator = emulator
        return engine

    # -- calling -------------------------------------------------------------------------------

    def call(self, endpoint: str, payload: Any = None, *, headers: Optional[Mapping[str, str]] = None) -> Response:
        """Validate, encrypt, sign, send, verify and decrypt one call; block until done."""
        return self._portal.run(self.acall(endpoint, payload, headers=headers))

    async def acall(
        self, endpoint: str, payload: Any = None, *, headers: Optional[Mapping[str, str]] = None
    ) -> Response:
        """The async form of ``call``: the same pipeline, awaited."""
        transport = self._transport()
        if not self.keyring and self.certificates.enabled:  # certificate mode, first contact: fetch them first
            await self.certificates.refresh(transport)
        return await self._executor.run(transport, endpoint, payload, headers)

    # -- downloads -----------------------------------------------------------------------------

    def download(self, endpoint: str, payload: Any, dest: Union[str, Path], *, gunzip: bool = True) -> Download:
        """Request a bill (verified) and stream its file to ``dest``, checking its digest."""
        return self._portal.run(self.adownload(endpoint, payload, dest, gunzip=gunzip))

    async def adownload(self, endpoint: str, payload: Any, dest: Union[str, Path], *, gunzip: bool = True) -> Download:
        step_one = await self.acall(endpoint, payload)
        return await download(self._executor, self._transport(), step_one, Path(dest), gunzip)

    # -- certificates --------------------------------------------------------------------------

    def download_certificates(self) -> list[str]:
        """Download (or refresh) the platform certificates now; return their serials."""
        return self._portal.run(self.adownload_certificates())

    async def adownload_certificates(self) -> list[str]:
        return await self.certificates.refresh(self._transport())

    def start_certificate_refresh(self, interval: float = 3600.0) -> "asyncio.Task[None]":
        """For async users: refresh certificates every ``interval`` seconds in a task (cancel it to stop)."""
        return asyncio.get_running_loop().create_task(self.certificates.run_periodically(self._transport, interval))

    # -- callbacks -----------------------------------------------------------------------------

    def parse_notification(self, headers: Mapping[str, str], body: Union[bytes, str]) -> Notification:
        """Verify, check and decrypt one callback; raise a ``NotificationError`` saying what failed."""
        if self.notifications.refresh_keys is None:
            return self.notifications.parse(headers, body)
        return self._portal.run(self.notifications.aparse(headers, body))

    async def aparse_notification(self, headers: Mapping[str, str], body: Union[bytes, str]) -> Notification:
        """The async form of ``parse_notification``."""
        return await self.notifications.aparse(headers, body)

    async def _refresh_for_unknown_serial(self) -> bool:
        return await self.certificates.refresh_for_unknown_serial(self._transport())

    async def handle_notification(self, headers: Mapping[str, str], body: bytes, handler: Handler) -> Reply:
        """Framework-neutral receiver: parse, run ``handler``, acknowledge, and return the reply to send."""
        return await self.notifications.handle(headers, body, handler)

    def notification_handler(self, handler: Handler) -> Callable[[Any], Any]:
        """An ``aiohttp.web`` handler receiving callbacks for ``handler``."""
        return self.notifications.aiohttp_handler(handler)

    # -- payment invocation --------------------------------------------------------------------

    def jsapi_payment(self, appid: str, prepay_id: str) -> dict[str, str]:
        """Signed parameters for ``wx.requestPayment`` (mini program) or JSAPI."""
        return jsapi_parameters(self.credentials, appid, prepay_id, self._executor.clock, self._executor.nonce)

    def app_payment(self, appid: str, prepay_id: str) -> dict[str, str]:
        """Signed parameters for the APP SDK's payment request."""
        return app_parameters(self.credentials, appid, prepay_id, self._executor.clock, self._executor.nonce)

    def _transport(self) -> Transport:
        loop = asyncio.get_running_loop()
        transport = self._transports.get(loop)
        if transport is None:
            config = self._executor.settings.transport_config()
            transport = self.plugin_manager.hook.wxpay_transport(config=config)
            if transport is None:
                raise ConfigurationError(f"no transport plugin serves base_url {config.base_url!r}")
            self._transports[loop] = transport
        return transport

    def reset_transports(self) -> list[Transport]:
        """Forget the transports cached per event loop, so the next call asks ``wxpay_transport`` again.

        Nothing is closed: the forgotten transports are returned to whoever owns them
        (``engine.testing.Stubber`` swaps its stub transport in and out this way).
        """
        forgotten = list(self._transports.values())
        self._transports.clear()
        return forgotten

    # -- chainable addressing ------------------------------------------------------------------

    @property
    def v3(self) -> Chain:
        """``engine.v3.pay.transactions.jsapi.post(json=...)``: the chainable style (see ``engine.chain``)."""
        return Chain(self, (("v3", False),))

    def chain(self, path: str) -> Chain:
        """``engine.chain("v3/pay/transactions/jsapi").post(json=...)``."""
        return Chain(self)[path]

    def __getitem__(self, path: str) -> Chain:
        """``engine["v3/pay/transactions/id/{transaction_id}"].get(transaction_id=...)``."""
        return self.chain(path)

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

    async def aclose(self) -> None:
        """Release the transport of the running event loop."""
        transport = self._transports.pop(asyncio.get_running_loop(), None)
        if transport is not None:
            await transport.aclose()

    def close(self) -> None:
        """Release the sync portal and its transport."""
        if self._portal.started:
            self._portal.run(self.aclose())
            self._portal.close()

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> "Engine":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return (
            f"<Engine mchid={self.credentials.mchid} serial_no={self.credentials.serial_no} "
            f"platform_keys={self.keyring.ids()} base_url={self._executor.settings.base_url}>"
        )


def _required(value: Any, setting: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{setting} is required (a non-empty string)")
    return value.strip()


def _keyring(
    public_key: Optional[KeySource], public_key_id: Optional[str], certificates: Sequence[KeySource]
) -> PlatformKeyring:
    keyring = PlatformKeyring()
    if (public_key is None) != (public_key_id is None):
        raise ConfigurationError("platform_public_key and platform_public_key_id go together: give both or neither")
    if public_key is not None and public_key_id is not None:
        if not public_key_id.startswith("PUB_KEY_ID_"):
            raise ConfigurationError(f"platform_public_key_id must start with PUB_KEY_ID_, got {public_key_id!r}")
        keyring.add(PlatformKey(public_key_id, load_public_key(public_key)))
    if isinstance(certificates, (str, bytes, Path)):
        certificates = [certificates]
    for index, certificate in enumerate(certificates):
        keyring.add(PlatformKey.from_certificate(load_certificate(certificate, f"platform_certificates[{index}]")))
    return keyring


def _check_limits(timeout: float, connect_timeout: float, get_retries: int) -> None:
    for name, value in (("timeout", timeout), ("connect_timeout", connect_timeout)):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
            raise ConfigurationError(f"{name} must be a positive number of seconds, got {value!r}")
    if not isinstance(get_retries, int) or isinstance(get_retries, bool) or get_retries < 0:
        raise ConfigurationError(f"get_retries must be a whole number >= 0, got {get_retries!r}")


def _hosts(base_url: str, hosts: Optional[Mapping[str, str]]) -> dict[str, str]:
    """Host families: WeChat Pay's own for the production base URL; else (sandbox, proxy) all the same URL."""
    if hosts is not None:
        return {family: url.rstrip("/") for family, url in hosts.items()}
    if base_url.rstrip("/") == DEFAULT_BASE_URL:
        return dict(DEFAULT_HOSTS)
    return {family: base_url.rstrip("/") for family in DEFAULT_HOSTS}


def _apiv3_key(value: Union[str, bytes, None]) -> Optional[bytes]:
    if value is None:
        return None
    key = value.encode("utf-8") if isinstance(value, str) else bytes(value)
    if len(key) != 32:
        raise CredentialError(f"apiv3_key: must be 32 bytes, got {len(key)}")
    return key


def _registry(plugin_manager: Any, endpoint_dirs: Sequence[Union[str, Path]]) -> Registry:
    directories: list[Path] = [BUILTIN_ENDPOINTS]
    descriptors: list[Descriptor] = []
    for contributed in reversed(plugin_manager.hook.wxpay_endpoint_sources()):
        for source in contributed or ():
            if isinstance(source, Descriptor):
                descriptors.append(source)
            else:
                directories.append(Path(source))
    for directory in endpoint_dirs:
        path = Path(directory)
        if not path.is_dir():
            raise ConfigurationError(f"endpoint_dirs: {str(path)!r} is not a directory")
        directories.append(path)
    return Registry(directories, descriptors)


def _user_agent() -> str:
    return f"wechatpay-engine/{__version__} ({platform.system()}) Python/{platform.python_version()}"
