"""Engine settings from ``WECHATPAY_*`` environment variables: one reader for ``Engine.from_env`` and the CLI.

==================================  =====================================================
variable                            setting
==================================  =====================================================
``WECHATPAY_MCHID``                 ``mchid`` (required)
``WECHATPAY_SERIAL_NO``             ``serial_no``: the merchant API certificate serial (required for APIv3)
``WECHATPAY_PRIVATE_KEY``           ``private_key``: a PEM file path, or PEM text (required for APIv3)
``WECHATPAY_PUBLIC_KEY``            ``platform_public_key``: file or PEM text (public-key mode)
``WECHATPAY_PUBLIC_KEY_ID``         ``platform_public_key_id``: ``PUB_KEY_ID_...``
``WECHATPAY_PLATFORM_CERTIFICATES`` ``platform_certificates``: files, ``os.pathsep``-separated
``WECHATPAY_APIV3_KEY``             ``apiv3_key``: 32 bytes of text
``WECHATPAY_APIV2_KEY``             ``apiv2_key``: the 32-character APIv2 key
``WECHATPAY_PAY_BANK_PUBLIC_KEY``   ``pay_bank_public_key``: file or PEM text (risk/getpublickey's key)
``WECHATPAY_CLIENT_CERTIFICATE``    ``client_certificate``: ``apiclient_cert.pem``, with its key (below)
``WECHATPAY_CLIENT_KEY``            the client certificate's key (``apiclient_key.pem``); default
                                    ``WECHATPAY_PRIVATE_KEY``, the same file for APIv3 merchants
``WECHATPAY_BASE_URL``              ``base_url``
==================================  =====================================================

Design decisions:

* A variable that is unset or empty is left out, so ``Engine``'s own defaults apply and its own
  checks (``ConfigurationError``, ``CredentialError``) judge what is there; values are never echoed.
  Empty counts as unset because that is how shells, ``.env`` files, Docker and Kubernetes manifests
  commonly "unset" a variable (``WECHATPAY_APIV2_KEY=``); ``WECHATPAY_CLIENT_KEY`` too.
* An override given explicitly as empty text (``Engine.from_env(apiv2_key="")``, ``b""``, an empty
  entry in a list or pair, ``--mchid ""``) is a mistake, not "unset": it would replace the
  variable with nothing, or silently fall back to it. ``refuse_empty`` names every such setting
  (or flag) at once, with the variable that leaving it out would use, in a ``ConfigurationError``,
  before anything is read or parsed; ``Engine.from_env`` and the CLI both call it.
* ``Engine(...)`` itself refuses an empty setting through the same ``refuse_empty`` (before its
  first line, beside the boxing), so there is one list of settings whose empty form is a mistake
  (``EMPTY_REFUSED``: the reader's own, and the constructor's other identity and credential text,
  ``appid``, a store URL, a proxy URL) and one wording. Without that, ``Engine(private_key="")``
  was judged as a file path ("not a readable file (Is a directory)"), ``Engine(base_url="")`` and
  ``Engine(store="")`` were taken as given (a blank base URL; the in-memory store, or
  ``WECHATPAY_STORE``, in silence). The constructor reads no variable, so its message names none.
* The reader only reads: ``Engine.from_env`` and the CLI add their own overrides (keyword
  arguments, command-line flags) on top, and say in their own words what is missing.
* Each setting can be read with the variable it came from (``read_sources``), because
  ``wechatpay doctor`` names the variable at fault; ``read_environment`` is the same reading with
  the sources dropped, so the two can never disagree on what a variable means.
* An APIv2-only set (``WECHATPAY_APIV2_KEY`` and none of the APIv3 merchant variables) needs only
  ``WECHATPAY_MCHID``. Its client certificate's key has a variable of its own, because
  ``WECHATPAY_PRIVATE_KEY`` without ``WECHATPAY_SERIAL_NO`` is half of the APIv3 credentials, which
  the engine refuses. The pairing is done after the overrides (``paired_client_certificate``), so a
  ``--private-key`` flag pairs as the variable would.
* The key variables (the private key, the APIv3 and APIv2 keys, the client certificate's key) are
  read straight into an ``engine.secret.Secret``: they often hold the PEM or the key itself, and the
  frames of ``Engine.from_env`` and the CLI would otherwise show them in any traceback.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Mapping, Optional

from engine.errors import ConfigurationError
from engine.secret import Secret, hide, reveal

ENVIRONMENT = {
    "mchid": "WECHATPAY_MCHID",
    "serial_no": "WECHATPAY_SERIAL_NO",
    "private_key": "WECHATPAY_PRIVATE_KEY",
    "platform_public_key": "WECHATPAY_PUBLIC_KEY",
    "platform_public_key_id": "WECHATPAY_PUBLIC_KEY_ID",
    "platform_certificates": "WECHATPAY_PLATFORM_CERTIFICATES",
    "apiv3_key": "WECHATPAY_APIV3_KEY",
    "apiv2_key": "WECHATPAY_APIV2_KEY",
    "pay_bank_public_key": "WECHATPAY_PAY_BANK_PUBLIC_KEY",
    "client_certificate": "WECHATPAY_CLIENT_CERTIFICATE",
    "base_url": "WECHATPAY_BASE_URL",
}
REQUIRED = ("mchid", "serial_no", "private_key")
Sourced = dict[str, tuple[Any, str]]  # setting -> (value, the variable or flag it came from)
CLIENT_KEY = "WECHATPAY_CLIENT_KEY"  # not a setting of its own: half of client_certificate
APIV3_MERCHANT = ("serial_no", "private_key", "signer")
SECRET_VARIABLES = ("private_key", "apiv3_key", "apiv2_key")  # read into an engine.secret.Secret
# Settings whose empty text is a mistake, never "unset": the reader's, and Engine's other identity and
# credential text (a store or proxy URL may carry a password). refuse_empty judges these and no others.
EMPTY_REFUSED = (*ENVIRONMENT, "appid", "store", "notification_store", "proxy")


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
    if name in SECRET_VARIABLES:  # often the PEM or the key itself, not a path: boxed as read
        return Secret(text)
    return text


def refuse_empty(
    settings: Mapping[str, Any], kind: str = "settings", label: Callable[[str], str] = str, environment: bool = True
) -> None:
    """A ``ConfigurationError`` naming each setting of ``EMPTY_REFUSED`` that ``settings`` (explicit
    overrides: keywords, or flags as ``label`` names them) gives as empty text; names only, never a value.

    ``environment`` says whether leaving a setting out falls back to its variable (``Engine.from_env``,
    the CLI), so the message names the variables; ``Engine(...)`` reads none, and passes ``False``.
    """
    blank = [name for name in EMPTY_REFUSED if name in settings and _empty(settings[name])]
    if blank:
        variables = ", ".join(ENVIRONMENT[name] for name in blank if name in ENVIRONMENT)
        fallback = f"leave it out to use {variables}" if environment and variables else "leave out the optional ones"
        given = ", ".join(map(label, blank))
        raise ConfigurationError(f"empty {kind}: {given} (give each a value, or {fallback})")


def _empty(value: Any) -> bool:
    """Empty text or bytes, boxed or not, or a list or pair holding one (certificates, (cert, key))."""
    if isinstance(reveal(value), (list, tuple)):  # opened inline, never bound: it may be a key
        return any(map(_empty, reveal(value)))
    return isinstance(reveal(value), (str, bytes, bytearray)) and not reveal(value)


def missing(settings: Mapping[str, Any]) -> list[str]:
    """The variables of the required settings that ``settings`` lacks (a ``signer`` stands in for the key);
    an APIv2-only set needs the merchant id only."""
    if apiv2_only(settings):
        return [] if settings.get("mchid") else [ENVIRONMENT["mchid"]]
    needed = [name for name in REQUIRED if not (name == "private_key" and settings.get("signer") is not None)]
    return [ENVIRONMENT[name] for name in needed if not settings.get(name)]


def apiv2_only(settings: Mapping[str, Any]) -> bool:
    """True for the settings of an APIv2-only merchant: the APIv2 key, and no serial, key or signer."""
    return bool(settings.get("apiv2_key")) and not any(settings.get(name) for name in APIV3_MERCHANT)


def paired_client_certificate(
    settings: Mapping[str, Any], environ: Optional[Mapping[str, str]] = None
) -> dict[str, Any]:
    """``settings`` with a ``client_certificate`` path paired with its key: ``WECHATPAY_CLIENT_KEY`` of
    ``environ`` (default ``os.environ``), else the ``private_key`` setting."""
    # The setting may arrive boxed (Engine.from_env boxes its keywords): it is looked at inside the box.
    if not isinstance(reveal(settings.get("client_certificate")), str):  # absent, or a form Engine takes
        return dict(settings)
    source = os.environ if environ is None else environ
    key = hide(source.get(CLIENT_KEY) or None) or settings.get("private_key")  # empty: unset, as any variable
    if not key:
        raise ConfigurationError(
            f"{ENVIRONMENT['client_certificate']} needs its key: set {CLIENT_KEY} (apiclient_key.pem)"
        )
    return {**settings, "client_certificate": (settings["client_certificate"], key)}
