"""Engine settings from ``WECHATPAY_*`` environment variables: one reader for ``Engine.from_env`` and the CLI.

==================================  =====================================================
variable                            setting
==================================  =====================================================
``WECHATPAY_MCHID``                 ``mchid`` (required)
``WECHATPAY_SERIAL_NO``             ``serial_no``: the merchant API certificate serial (required)
``WECHATPAY_PRIVATE_KEY``           ``private_key``: a PEM file path, or PEM text (required)
``WECHATPAY_PUBLIC_KEY``            ``platform_public_key``: file or PEM text (public-key mode)
``WECHATPAY_PUBLIC_KEY_ID``         ``platform_public_key_id``: ``PUB_KEY_ID_...``
``WECHATPAY_PLATFORM_CERTIFICATES`` ``platform_certificates``: files, ``os.pathsep``-separated
``WECHATPAY_APIV3_KEY``             ``apiv3_key``: 32 bytes of text
``WECHATPAY_BASE_URL``              ``base_url``
==================================  =====================================================

Design decisions:

* A variable that is unset or empty is left out, so ``Engine``'s own defaults apply and its own
  checks (``ConfigurationError``, ``CredentialError``) judge what is there; values are never echoed.
* The reader only reads: ``Engine.from_env`` and the CLI add their own overrides (keyword
  arguments, command-line flags) on top, and say in their own words what is missing.
* Each setting can be read with the variable it came from (``read_sources``), because
  ``wechatpay doctor`` names the variable at fault; ``read_environment`` is the same reading with
  the sources dropped, so the two can never disagree on what a variable means.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Optional

ENVIRONMENT = {
    "mchid": "WECHATPAY_MCHID",
    "serial_no": "WECHATPAY_SERIAL_NO",
    "private_key": "WECHATPAY_PRIVATE_KEY",
    "platform_public_key": "WECHATPAY_PUBLIC_KEY",
    "platform_public_key_id": "WECHATPAY_PUBLIC_KEY_ID",
    "platform_certificates": "WECHATPAY_PLATFORM_CERTIFICATES",
    "apiv3_key": "WECHATPAY_APIV3_KEY",
    "apiv2_key": "WECHATPAY_APIV2_KEY",
    "client_certificate": "WECHATPAY_CLIENT_CERTIFICATE",
    "base_url": "WECHATPAY_BASE_URL",
}
REQUIRED = ("mchid", "serial_no", "private_key")
Sourced = dict[str, tuple[Any, str]]  # setting -> (value, the variable or flag it came from)


def read_environment(environ: Optional[Mapping[str, str]] = None) -> dict[str, Any]:
    """The ``Engine`` settings the ``WECHATPAY_*`` variables of ``environ`` (default ``os.environ``) give."""
    return values(read_sources(environ))


def read_sources(environ: Optional[Mapping[str, str]] = None) -> Sourced:
    """``read_environment``'s settings, each with the variable it came from."""
    source = os.environ if environ is None else environ
    return {name: (_value(name, source[var]), var) for name, var in ENVIRONMENT.items() if source.get(var)}


def values(settings: Mapping[str, tuple[Any, str]]) -> dict[str, Any]:
    """``settings`` without where each came from: what ``Engine`` takes."""
    return {name: value for name, (value, _) in settings.items()}


def _value(name: str, text: str) -> Any:
    if name == "platform_certificates":  # several files in one variable, like PATH
        return [p for p in text.split(os.pathsep) if p]
    return text


def missing(settings: Mapping[str, Any]) -> list[str]:
    """The variables of the required settings that ``settings`` lacks (a ``signer`` stands in for the key)."""
    needed = [name for name in REQUIRED if not (name == "private_key" and settings.get("signer") is not None)]
    return [ENVIRONMENT[name] for name in needed if not settings.get(name)]
