"""Certificate mode: download, verify, store and refresh WeChat Pay platform certificates (§5).

Design decisions:

* A key provider (``engine.keyprovider``): the executor awaits ``ready()`` and ``for_serial()``;
  nothing is patched into it. ``GET /v3/certificates`` is prepared by the ordinary pipeline and sent
  by the ordinary send loop; only its verification differs. Each ``encrypt_certificate`` is
  decrypted with the APIv3 key (associated data ``certificate``) and its serial must equal
  ``serial_no``. When a key is already trusted, the answer is verified with it *before* anything in
  it is parsed. Only on first contact, with no key to check it by, is the list decrypted first and
  the answer verified with the certificate it carries that ``Wechatpay-Serial`` names (the
  bootstrap the official SDKs use); afterwards a download must verify with a trusted key, so a
  forged list cannot add one. A malformed list is a ``MalformedResponseError``, never a raw error.
* Certificates outside their validity window are dropped; encryption uses the newest valid one
  (``PlatformKeyring.preferred``).
* Refreshing happens on demand (``refresh``), in the background for async users
  (``run_periodically``), and when an answer names an unknown serial (rotation), at most once per
  ``min_interval`` so a flood of forged serials cannot turn into a flood of downloads. After such a
  refresh the *same* answer is verified again; nothing is re-sent.
* Downloads are single-flight across every worker sharing the engine's store (``engine.stores``):
  a refresh notes the cached set's version, takes the store's ``certificates`` lock, and if the set
  changed while it waited (another worker downloaded), adopts that set instead of downloading
  again. The first contact looks in the store before downloading at all, and a periodic refresh
  adopts a set another worker fetched within half its interval. The store keeps the entries as
  WeChat Pay sent them, still encrypted under the APIv3 key: adopting one decrypts and checks it
  like a download, and nobody without the APIv3 key can place a certificate there. A store that
  fails is logged and bypassed: certificates are then downloaded without it.
* A directory store keeps ``<serial>.pem`` files, loaded at start, so a restart does not depend on
  the network.
* A merchant with no platform certificate (``RESOURCE_NOT_EXISTS``) is told to use public-key mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncIterator, Optional

from cryptography import x509

from engine.crypto import aead_decrypt
from engine.errors import (
    ApiError,
    ConfigurationError,
    CredentialError,
    EngineError,
    MalformedResponseError,
    StoreError,
)
from engine.keys import (
    PlatformKey,
    PlatformKeyring,
    certificate_pem,
    certificate_serial,
    load_certificate,
    normalize_serial,
)
from engine.secret import Secret

if TYPE_CHECKING:
    from engine.pipeline import Pipeline
    from engine.sender import Sender
    from engine.stores import CachedCertificates, Store

CERTIFICATES_REF = "GET /v3/certificates"
logger = logging.getLogger("engine.certificates")


class CertificateKeys:
    """Certificate mode as a key provider: downloads, verifies, stores and rotates the certificates."""

    refreshes = True

    def __init__(
        self,
        keyring: PlatformKeyring,
        pipeline: "Pipeline",
        sender: "Sender",
        apiv3_key: Secret,
        store_dir: Optional[Path] = None,
        min_interval: float = 60.0,
        store: Optional["Store"] = None,
    ) -> None:
        self.keyring = keyring
        self.store = store
        self._pipeline = pipeline
        self._sender = sender
        self._apiv3_key = apiv3_key
        self.store_dir = store_dir
        self.min_interval = min_interval
        self._last_refresh: Optional[float] = None
        if store_dir is not None:
            self._load_store(store_dir)

    async def ready(self) -> None:
        if self.keyring:
            return
        await self._adopt(await self._cached())  # first contact: another worker may have fetched them
        if not self.keyring:
            await self.refresh()

    async def for_serial(self, serial: str) -> Optional[PlatformKey]:
        """Refresh after an unknown serial, unless one happened within ``min_interval``."""
        key = self.keyring.find(serial)
        if key is not None:
            return key
        await self._adopt(await self._cached())  # another worker may have fetched the new one already
        key = self.keyring.find(serial)
        if key is not None:
            return key
        now = self._pipeline.clock()
        if self._last_refresh is not None and now - self._last_refresh < self.min_interval:
            return None
        await self.refresh()
        return self.keyring.find(serial)

    async def refresh(self, fresh_within: Optional[float] = None) -> list[str]:
        """Download the certificates now, single-flight across workers; return the serials added or confirmed.

        A set another worker saved while this one waited for the lock (or, with ``fresh_within``,
        within that many seconds) is adopted instead of downloading again.
        """
        seen = await self._cached()
        async with self._locked():
            cached = await self._cached()
            if cached is not None and (
                seen is None
                or cached.version != seen.version
                or (fresh_within is not None and self._pipeline.clock() - cached.saved_at < fresh_within)
            ):
                adopted = await self._adopt(cached)
                if adopted:
                    return adopted
            return await self._download()

    async def run_periodically(self, interval: float = 3600.0) -> None:
        """Refresh every ``interval`` seconds until cancelled; a failed round is logged, not fatal."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.refresh(fresh_within=interval / 2)
            except EngineError as exc:
                logger.warning(
                    "platform certificate refresh failed (%s); retrying in %.0f s", type(exc).__name__, interval
                )

    # -- internals -----------------------------------------------------------------------------

    async def _download(self) -> list[str]:
        prepared = self._pipeline.prepare(CERTIFICATES_REF, {"algorithm_type": "RSA"}, None)
        raw = await self._sender.send(prepared)
        if not 200 <= raw.status < 300:
            raise _explained(self._pipeline.interpret_error(raw))
        if self.keyring:  # a key is trusted: nothing in the answer is parsed before it verifies
            self._pipeline.verify(raw)
            entries = certificate_entries(raw.body)
            certificates = decrypt_entries(entries, self._apiv3_key)
        else:  # first contact: the answer can only be checked with what it carries
            entries = certificate_entries(raw.body)
            certificates = decrypt_entries(entries, self._apiv3_key)
            self._pipeline.verify(raw, PlatformKeyring([*(PlatformKey.from_certificate(c) for c in certificates)]))
        self._last_refresh = self._pipeline.clock()
        kept = [self._keep(cert) for cert in certificates if self._valid(cert)]
        if self.store is not None:
            try:
                await self.store.save_certificates(entries)
            except StoreError as exc:
                logger.warning("platform certificates not shared through the store: %s", exc)
        return kept

    async def _cached(self) -> Optional["CachedCertificates"]:
        if self.store is None:
            return None
        try:
            return await self.store.load_certificates()
        except StoreError as exc:
            logger.warning("platform certificates not read from the store: %s", exc)
            return None

    async def _adopt(self, cached: Optional["CachedCertificates"]) -> list[str]:
        """Trust a cached set (decrypted and checked like a download); the serials adopted."""
        if cached is None:
            return []
        try:
            certificates = decrypt_entries(list(cached.entries), self._apiv3_key)
        except MalformedResponseError:
            logger.warning("the store's cached platform certificates do not open with the APIv3 key; ignored")
            return []
        return [self._keep(cert) for cert in certificates if self._valid(cert)]

    @contextlib.asynccontextmanager
    async def _locked(self) -> AsyncIterator[None]:
        if self.store is None:
            async with self._sender.runtime.resources().lock("certificates"):
                yield
            return
        lock = self.store.lock("certificates")
        try:
            await lock.__aenter__()
        except StoreError as exc:
            logger.warning("certificate refresh not coordinated through the store: %s", exc)
            yield
            return
        try:
            yield
        finally:
            await lock.__aexit__(None, None, None)

    def _valid(self, cert: x509.Certificate) -> bool:
        moment = dt.datetime.fromtimestamp(self._pipeline.clock(), dt.UTC)
        return PlatformKey.from_certificate(cert).valid_at(moment)

    def _keep(self, cert: x509.Certificate) -> str:
        key = PlatformKey.from_certificate(cert)
        self.keyring.add(key)
        if self.store_dir is not None:
            self.store_dir.mkdir(parents=True, exist_ok=True)
            (self.store_dir / f"{key.key_id}.pem").write_bytes(certificate_pem(cert))
        return key.key_id

    def _load_store(self, store_dir: Path) -> None:
        """Load ``<serial>.pem`` files; every unusable one is reported by name, all in one error."""
        problems: list[str] = []
        for path in sorted(store_dir.glob("*.pem")) if store_dir.is_dir() else ():
            try:
                cert = load_certificate(path, path.name)
            except CredentialError as exc:
                problems.append(str(exc))  # "<file name>: what is wrong with it"
                continue
            if self._valid(cert):
                self.keyring.add(PlatformKey.from_certificate(cert))
        if problems:
            raise CredentialError(f"certificates_dir: unusable file(s): {'; '.join(problems)}")


MAX_CERTIFICATES = 16  # WeChat Pay lists one or two (during a rotation); a long list is not its answer


def decrypt_certificates(body: bytes, apiv3_key: Any) -> list[x509.Certificate]:
    """The certificates of a ``/v3/certificates`` answer, each checked against its ``serial_no``."""
    return decrypt_entries(certificate_entries(body), apiv3_key)


def certificate_entries(body: bytes) -> list[Any]:
    """The ``data`` entries of a ``/v3/certificates`` answer, still encrypted."""
    try:
        entries = json.loads(body)["data"]
    except (KeyError, TypeError, ValueError, AttributeError, UnicodeError) as exc:
        reason = type(exc).__name__ if isinstance(exc, (KeyError, TypeError, AttributeError)) else str(exc)[:200]
        raise MalformedResponseError(f"certificate download is not what WeChat Pay sends ({reason})") from None
    if not isinstance(entries, list) or not 0 < len(entries) <= MAX_CERTIFICATES:
        raise MalformedResponseError(
            f"certificate download is not what WeChat Pay sends (data must list 1 to {MAX_CERTIFICATES} certificates)"
        )
    return entries


def decrypt_entries(entries: list[Any], apiv3_key: Any) -> list[x509.Certificate]:
    """Each entry's certificate, decrypted with the APIv3 key and checked against its ``serial_no``."""
    try:
        return [_decrypt_one(entry, apiv3_key) for entry in entries]
    except (KeyError, TypeError, ValueError, AttributeError, UnicodeError) as exc:
        reason = type(exc).__name__ if isinstance(exc, (KeyError, TypeError, AttributeError)) else str(exc)[:200]
        raise MalformedResponseError(f"certificate download is not what WeChat Pay sends ({reason})") from None


def _decrypt_one(entry: dict[str, Any], apiv3_key: Any) -> x509.Certificate:
    sealed = entry["encrypt_certificate"]
    if sealed.get("algorithm") != "AEAD_AES_256_GCM" or sealed.get("associated_data") != "certificate":
        raise ValueError("encrypt_certificate must be AEAD_AES_256_GCM with associated_data 'certificate'")
    pem = aead_decrypt(apiv3_key, sealed["nonce"], sealed["associated_data"], sealed["ciphertext"])
    cert = x509.load_pem_x509_certificate(pem)
    if normalize_serial(certificate_serial(cert)) != normalize_serial(entry["serial_no"]):
        raise ValueError(f"certificate serial {certificate_serial(cert)} differs from serial_no {entry['serial_no']}")
    return cert


def _explained(error: ApiError) -> Exception:
    if error.code == "RESOURCE_NOT_EXISTS":
        return ConfigurationError(
            "WeChat Pay has no platform certificate for this merchant (RESOURCE_NOT_EXISTS): merchants onboarded "
            "since late 2024 use public-key mode; give platform_public_key and platform_public_key_id instead"
        )
    return error
