"""Turning ``Engine(...)`` keyword settings into checked parts: keys, limits, hosts, descriptors.

Design decisions:

* Every setting is checked when the engine is built, and a bad one raises ``ConfigurationError``
  (``CredentialError`` for key material) naming the *setting* and what is wrong with it. Messages
  never carry a credential's value.
* What *kind* of value each setting takes (text, a URL, a positive number of seconds...) is
  declared and checked in ``engine.kinds`` before any of these run; these judge what the kind
  cannot (a key's content, a proxy's scheme, settings that go together).
* These are plain functions, so ``Engine.__init__`` reads as a list of settings and
  ``Engine.from_env``-style constructors can reuse them.
* A merchant brings the APIv3 credentials (``serial_no`` with ``private_key`` or ``signer``, and a
  WeChat Pay key or the ``apiv3_key``), the APIv2 key, or both. Either set is all or nothing: half
  of the APIv3 one (a serial without a key, a WeChat Pay key without the merchant's) is refused,
  because an engine that can sign but not verify, or verify but not sign, fails only at its first
  call. With neither set there is nothing the engine could do, and it is refused too.
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union
from urllib.parse import urlsplit

from engine import __version__
from engine.descriptor import Descriptor
from engine.errors import ConfigurationError, CredentialError
from engine.keys import (
    KeySource,
    MerchantCredentials,
    PlatformKey,
    PlatformKeyring,
    load_certificate,
    load_public_key,
    merchant_signer,
    pay_bank_key,
)
from engine.registry import Registry, builtin_registry
from engine.retry import RetryPolicy
from engine.secret import Secret, reveal

DEFAULT_BASE_URL = "https://api.mch.weixin.qq.com"
BACKUP_BASE_URL = "https://api2.mch.weixin.qq.com"  # WeChat Pay's backup domain: the same API
# Host families descriptors may name (host:), from the catalogue's x-baseuri / x-base-uri.
DEFAULT_HOSTS = {
    "hk": "https://apihk.mch.weixin.qq.com",
    "fraud": "https://fraud.mch.weixin.qq.com",
    "payapp": "https://payapp.weixin.qq.com",
    "payapp_mch": "https://payapp.mch.weixin.qq.com",
}
APIV2_SIGN_TYPES: tuple[str, ...] = ("HMAC-SHA256", "MD5")


def required_text(value: Any, setting: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{setting} is required (a non-empty string)")
    return value.strip()


NO_CREDENTIALS = (
    "no credentials: give serial_no with private_key (or signer) and a WeChat Pay key for APIv3, "
    "apiv2_key for APIv2, or both"
)
NO_VERIFYING_KEY = (
    "no WeChat Pay key to verify answers with: give platform_public_key with platform_public_key_id "
    "(public-key mode), platform_certificates or apiv3_key to download them (certificate mode), or both"
)
_KEY_SETTINGS = {"public_key": "platform_public_key", "certificate": "platform_certificates"}


def merchant_credentials(
    mchid: Any, serial_no: Any, private_key: Any, signer: Any, apiv2_key: Any, apiv2_sign_type: Any
) -> MerchantCredentials:
    """Who the engine signs as: the APIv3 credentials (serial and key, together), the APIv2 key, or both.

    ``private_key`` may be inside a ``Secret``; it is parsed here, once.
    """
    merchant_id = required_text(mchid, "mchid")
    apiv2 = parse_apiv2_key(apiv2_key)
    sign_type = check_apiv2_sign_type(apiv2_sign_type)
    if serial_no is None and reveal(private_key) is None and signer is None:
        if apiv2 is None:
            raise ConfigurationError(NO_CREDENTIALS)
        return MerchantCredentials(merchant_id, None, None, apiv2, sign_type)
    merchant = merchant_signer(private_key, signer)
    if serial_no is None:
        raise ConfigurationError(
            "serial_no is required with private_key or signer (the merchant API certificate's serial); "
            "give none of the three for an APIv2-only engine"
        )
    return MerchantCredentials(merchant_id, required_text(serial_no, "serial_no"), merchant, apiv2, sign_type)


def check_verifying_keys(credentials: MerchantCredentials, keyring: PlatformKeyring, apiv3_key: Any) -> None:
    """APIv3 credentials need a WeChat Pay key (or the APIv3 key to download one); APIv2-only ones take none."""
    if credentials.apiv3:
        if not keyring and apiv3_key is None:
            raise ConfigurationError(NO_VERIFYING_KEY)
        return
    held = (keyring.find(key_id) for key_id in keyring.ids())
    given = sorted({_KEY_SETTINGS[key.kind] for key in held if key is not None})
    given += ["apiv3_key"] if apiv3_key is not None else []
    if given:
        raise ConfigurationError(
            f"APIv3 settings given without serial_no and private_key (or signer): {', '.join(given)}; "
            "give those too, or leave these out for an APIv2-only engine"
        )


def build_keyring(
    public_key: Optional[KeySource], public_key_id: Optional[str], certificates: Sequence[KeySource]
) -> PlatformKeyring:
    keyring = PlatformKeyring()
    if (public_key is None) != (public_key_id is None):
        raise ConfigurationError("platform_public_key and platform_public_key_id go together: give both or neither")
    if public_key is not None and public_key_id is not None:
        public_key_id = public_key_id.strip()  # read from a file, it may end with a newline
        if not public_key_id.startswith("PUB_KEY_ID_"):
            raise ConfigurationError("platform_public_key_id: must start with PUB_KEY_ID_ (the value given does not)")
        keyring.add(PlatformKey(public_key_id, load_public_key(public_key)))
    if isinstance(certificates, (str, bytes, Path)):
        certificates = [certificates]
    for index, certificate in enumerate(certificates):
        keyring.add(PlatformKey.from_certificate(load_certificate(certificate, f"platform_certificates[{index}]")))
    return keyring


def encryption_keys(pay_bank_public_key: Optional[KeySource]) -> dict[str, PlatformKey]:
    """The keys descriptors name in their ``encryption`` trait, by name: APIv2 ``pay_bank``'s when given."""
    return {} if pay_bank_public_key is None else {"pay_bank": pay_bank_key(pay_bank_public_key)}


def check_retry(retry: Any) -> RetryPolicy:
    """The retry policy: the default one for ``None``, else a ``RetryPolicy`` (``RetryPolicy.never()`` for none)."""
    if retry is None:
        return RetryPolicy()
    if not isinstance(retry, RetryPolicy):
        raise ConfigurationError(f"retry must be an engine.RetryPolicy, got {type(retry).__name__}")
    return retry


def check_proxy(proxy: Optional[str]) -> Optional[str]:
    """An ``http://`` or ``https://`` proxy URL (its credentials, if any, are never echoed)."""
    if proxy is None:
        return None
    parts = urlsplit(proxy)  # a URL with a host: its kind (engine.kinds) was checked before
    if parts.scheme not in ("http", "https"):
        raise ConfigurationError("proxy: must be an http:// or https:// URL with a host")
    return proxy


def host_families(base_url: str, hosts: Optional[Mapping[str, str]]) -> dict[str, str]:
    """Host families: WeChat Pay's own for the production (or backup) base URL; else (sandbox, proxy)
    all the same URL."""
    if hosts is not None:
        return {family: url.rstrip("/") for family, url in hosts.items()}
    if base_url.rstrip("/") in (DEFAULT_BASE_URL, BACKUP_BASE_URL):
        return dict(DEFAULT_HOSTS)
    return {family: base_url.rstrip("/") for family in DEFAULT_HOSTS}


def parse_apiv3_key(value: Any) -> Optional[Secret]:
    """The APIv3 key as 32 bytes in a ``Secret``; ``value`` (a ``Secret`` or not) is never echoed."""
    if reveal(value) is None:
        return None
    kind = type(reveal(value))
    if kind not in (str, bytes, bytearray):
        raise CredentialError(f"apiv3_key: must be 32 bytes of text or bytes, got {kind.__name__}")
    try:
        key = Secret(reveal(value).encode("utf-8") if kind is str else bytes(reveal(value)))
    except UnicodeEncodeError:
        raise CredentialError("apiv3_key: not encodable as UTF-8") from None
    if len(key.reveal()) != 32:
        raise CredentialError(f"apiv3_key: must be 32 bytes, got {len(key.reveal())}")
    return key


def parse_apiv2_key(value: Union[str, bytes, Secret, None]) -> Optional[Secret]:
    """The APIv2 key, boxed: the 32 printable ASCII characters set in the merchant platform."""
    if reveal(value) is None:
        return None
    if not isinstance(reveal(value), (str, bytes, bytearray)):
        kind = type(reveal(value)).__name__
        raise CredentialError(f"apiv2_key: must be 32 characters of text or bytes, got {kind}")
    key = Secret(_ascii_bytes(reveal(value)))
    if len(key.reveal()) != 32 or not all(0x21 <= byte <= 0x7E for byte in key.reveal()):
        raise CredentialError(f"apiv2_key: must be 32 printable ASCII characters, got {len(key.reveal())} bytes")
    return key


def _ascii_bytes(value: Union[str, bytes, bytearray]) -> bytes:
    return value.encode("utf-8", errors="replace") if isinstance(value, str) else bytes(value)


def check_apiv2_sign_type(value: Any) -> str:
    if value not in APIV2_SIGN_TYPES:  # the kind check (engine.kinds) refuses it first; never echoed
        raise ConfigurationError(f"apiv2_sign_type must be one of {', '.join(APIV2_SIGN_TYPES)}")
    return str(value)


def optional_text(value: Any, setting: str) -> Optional[str]:
    if value is None:
        return None
    return required_text(value, setting)


def build_registry(plugin_manager: Any, endpoint_dirs: Sequence[Union[str, Path]]) -> Registry:
    directories: list[Path] = []  # the built-in catalogue is the shared parent layer
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
    return Registry(directories, descriptors, parent=builtin_registry())


def user_agent() -> str:
    return f"wechatpay-engine/{__version__} ({platform.system()}) Python/{platform.python_version()}"
