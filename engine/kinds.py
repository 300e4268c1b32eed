"""What kind of value each constructor setting takes, declared once and checked in one place.

Design decisions:

* Every keyword of ``Engine(...)``, ``Engine.sandbox(...)`` and ``Engine.from_env(...)`` has a
  ``Kind`` in a table here (``ENGINE_KINDS``, ``SANDBOX_KINDS``, ``FROM_ENV_KINDS``), and
  ``check_settings`` judges the keywords given against it before anything else reads them. A value
  of the wrong kind (``base_url=b"..."``, ``timeout="30"``, ``plugins="x"``, text with a NUL, a line
  break or a lone surrogate) is a ``ConfigurationError`` naming the setting, instead of whatever
  ``TypeError``, ``AttributeError`` or ``UnicodeError`` the first code to touch it would raise,
  sometimes only at the first call. An unknown keyword is one too (with the closest names).
* Messages never carry the value, only the setting's name, what it takes and the value's type
  name: a value in the wrong setting may be a key, or a URL with a password.
* A kind's ``problem`` returns what is wrong (or ``None``) and raises nothing; it is handed a boxed
  setting's value opened inline (``engine.secret``) and has returned before the refusal is raised,
  so no frame of the traceback holds the plaintext.
* Key material (``private_key``, the APIv3 and APIv2 keys, certificates, ``signer``) and objects
  with a protocol of their own (``transport``, ``retry``, ``defaults``) are declared ``PARSED``
  (or given only their outer shape): their parsers judge them in depth, key material as a
  ``CredentialError``, and a second, shallower check here would only say less.
* ``ENGINE_KINDS`` names exactly the parameters of ``Engine.__init__`` (a test holds them equal),
  and a keyword it does not name is refused: a new setting cannot be taken without its kind.
* Text settings tolerate surrounding whitespace (they are stripped where they are read: a value
  read from a file keeps its newline), never a control character inside; URLs take no whitespace.
"""

from __future__ import annotations

import difflib
import functools
import math
import os
import unicodedata
from typing import Any, Callable, Iterable, Mapping, Optional
from urllib.parse import urlsplit

import attrs

from engine.configuration import APIV2_SIGN_TYPES
from engine.errors import ConfigurationError
from engine.secret import reveal

Problem = Optional[str]  # what is wrong with a value, in words that never quote it; None: nothing


@attrs.frozen
class Kind:
    """What a setting takes (``expected``, for messages) and the check of one value (``problem``)."""

    expected: str
    problem: Callable[[Any], Problem]


def _got(value: Any) -> str:
    """What a value of the wrong type is, by its type's name only."""
    return f"got {type(value).__name__}"


def _text_problem(value: Any) -> Problem:
    if not isinstance(value, str):
        return _got(value)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "the text holds a lone surrogate"
    if any(unicodedata.category(char) == "Cc" for char in value.strip()):
        return "the text holds a control character"
    return None


def _url_text_problem(value: Any) -> Problem:
    """Text that may be a URL: no control character and no whitespace anywhere."""
    problem = _text_problem(value)
    if problem is None and any(char.isspace() for char in value):
        return "the URL holds whitespace"
    return problem


def _url_problem(value: Any) -> Problem:
    problem = _url_text_problem(value)
    if problem is not None:
        return problem
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  (raises on a port that is not a number)
    except ValueError:
        return "not a URL"
    if not (parts.scheme and parts.hostname):
        return "not a URL with a scheme and a host"
    return None if _resolvable(parts.hostname) else "the URL's host has an empty label or one of over 63 characters"


def _resolvable(host: str) -> bool:
    """Whether ``getaddrinfo`` can take ``host``: it encodes the name with the ``idna`` codec, whose
    UnicodeError (``a..b``, a label of 64 characters) would otherwise escape the first call raw."""
    try:
        host.encode("idna")
    except UnicodeError:
        return False
    return True


def _server_url_problem(value: Any) -> Problem:
    """A URL the engine sends signed requests to: no ``user:password@``. WeChat Pay authenticates by
    the signature, and aiohttp refuses credentials in a URL beside an Authorization header (a bare
    ValueError at the first call); a gateway wanting its own credentials is a proxy or a plugin."""
    problem = _url_problem(value)
    if problem is None and "@" in urlsplit(value).netloc:
        return "the URL carries user:password@, which signed requests cannot send"
    return problem


def _path_problem(value: Any) -> Problem:
    if isinstance(value, bytes) or not isinstance(value, (str, os.PathLike)):
        return _got(value)
    try:
        text = os.fspath(value)
    except Exception:  # a PathLike of the caller's own: whatever it raises, it names no path
        return "the object names no path"
    if not isinstance(text, str):
        return "the path is bytes"
    if any(unicodedata.category(char) == "Cc" for char in text):  # a NUL, or a pasted line break: a mistake
        return "the path holds a control character"
    try:
        os.fsencode(text)
    except UnicodeEncodeError:
        return "the path is not encodable for this file system"
    return None


def _is_text(value: Any) -> bool:
    return isinstance(value, (str, bytes, bytearray))


def optional(kind: Kind) -> Kind:
    """``kind`` or ``None`` (the setting left at its default)."""
    return Kind(f"{kind.expected}, or None", lambda value: None if value is None else kind.problem(value))


def _number_problem(value: Any) -> Problem:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return _got(value)
    if not math.isfinite(value) or value <= 0:
        return "got zero, a negative number or a non-finite one"
    return None


def whole(least: int) -> Kind:
    """An ``int`` (not a ``bool``) of at least ``least``."""

    def problem(value: Any) -> Problem:
        if isinstance(value, bool) or not isinstance(value, int):
            return _got(value)
        return f"got a number below {least}" if value < least else None

    return Kind(f"a whole number >= {least}", problem)


def one_of(*choices: str) -> Kind:
    def problem(value: Any) -> Problem:
        if not isinstance(value, str):
            return _got(value)
        return None if value in choices else "got another value"

    return Kind(f"one of {', '.join(choices)}", problem)


def instance_of(cls: Callable[[], type], expected: str) -> Kind:
    """An instance of the class ``cls()`` returns (a callable: the class may be imported late)."""
    return Kind(expected, lambda value: None if isinstance(value, cls()) else _got(value))


def _sequence_of(item: Callable[[Any], Problem], single: Callable[[Any], bool]) -> Callable[[Any], Problem]:
    """A list or tuple whose every item passes ``item``; a lone value for which ``single`` holds passes too."""

    def problem(value: Any) -> Problem:
        if single(value):
            return None
        if not isinstance(value, (list, tuple)):
            return _got(value)
        for index, each in enumerate(value):
            found = item(each)
            if found is not None:
                return f"item {index}: {found}"
        return None

    return problem


def _plugins_problem(value: Any) -> Problem:
    if _is_text(value) or isinstance(value, Mapping) or not isinstance(value, Iterable):
        return _got(value)  # a str would be taken as one plugin per character
    if isinstance(value, (list, tuple)):  # only these are looked into: an iterator would be used up
        for index, plugin in enumerate(value):
            if plugin is None or isinstance(plugin, (bytes, bytearray, int, float, Mapping)):
                return f"item {index}: {_got(plugin)}, neither a plugin object nor a module name"
    return None


def _hosts_problem(value: Any) -> Problem:
    if not isinstance(value, Mapping):
        return _got(value)
    for family, url in value.items():
        if _text_problem(family) is not None:
            return f"a host family's name: {_text_problem(family)}"
        found = _server_url_problem(url)
        if found is not None:
            return f"the URL of a host family: {found}"
    return None


STORE_METHODS = ("claim", "acknowledge", "release", "load_certificates", "save_certificates", "lock")


def _store_problem(value: Any) -> Problem:
    if isinstance(value, str):  # the URL itself is judged where it is opened (engine.stores)
        return _url_text_problem(value)
    if all(callable(getattr(value, method, None)) for method in STORE_METHODS):
        return None
    return f"{_got(value)}, which lacks the Store methods"


def _environ_problem(value: Any) -> Problem:
    from engine.environment import ENVIRONMENT

    if not isinstance(value, Mapping):
        return _got(value)
    for variable in ENVIRONMENT.values():
        if variable in value and not isinstance(value[variable], str):
            return f"{variable}: {_got(value[variable])}, not text"
    return None


PARSED = Kind("judged where it is parsed", lambda value: None)
TEXT = Kind("text", _text_problem)
URL = Kind("a URL (scheme://host...)", _url_problem)
SERVER_URL = Kind("a URL (scheme://host...) without user:password@", _server_url_problem)
SECONDS = Kind("a positive number of seconds", _number_problem)
FLAG = Kind("True or False", lambda value: None if isinstance(value, bool) else _got(value))
FUNCTION = Kind("a function", lambda value: None if callable(value) else _got(value))
PATH = Kind("a file-system path (str or os.PathLike)", _path_problem)
PATHS = Kind("a list of directory paths", _sequence_of(_path_problem, lambda value: False))
# platform_certificates: one certificate (PEM text, bytes or a path) or a list of them; the PEM is judged
# by its parser (a CredentialError naming the item), only the outer shape here.
CERTIFICATES = Kind(
    "a certificate (PEM text, PEM bytes or a path) or a list of them",
    _sequence_of(lambda item: None, lambda value: _is_text(value) or isinstance(value, os.PathLike)),
)
PLUGINS = Kind("a list of plugin objects or module names", _plugins_problem)
MAPPING = Kind("a mapping", lambda value: None if isinstance(value, Mapping) else _got(value))

ENGINE_KINDS: Mapping[str, Kind] = {
    "mchid": TEXT,
    "serial_no": optional(TEXT),
    "private_key": PARSED,
    "signer": PARSED,
    "platform_public_key": PARSED,
    "platform_public_key_id": optional(TEXT),
    "platform_certificates": CERTIFICATES,
    "apiv3_key": PARSED,
    "base_url": SERVER_URL,
    "plugins": PLUGINS,
    "transport": PARSED,
    "endpoint_dirs": PATHS,
    "timeout": SECONDS,
    "connect_timeout": SECONDS,
    "retry": PARSED,
    "proxy": optional(URL),
    "trust_env": FLAG,
    "pool_size": whole(1),
    "max_answer_bytes": whole(1024),
    "clock": FUNCTION,
    "nonce_factory": FUNCTION,
    "load_entry_points": FLAG,
    "certificates_dir": optional(PATH),
    "notification_store": optional(Kind("a store URL or a Store object", _store_problem)),
    "hosts": optional(Kind("a mapping of host family to URL", _hosts_problem)),
    "store": optional(Kind("a store URL or a Store object", _store_problem)),
    "defaults": optional(MAPPING),
    "notification_ttl": SECONDS,
    "claim_ttl": SECONDS,
    "apiv2_key": PARSED,
    "apiv2_sign_type": one_of(*APIV2_SIGN_TYPES),
    "client_certificate": PARSED,
    "appid": optional(TEXT),
    "pay_bank_public_key": PARSED,
}
FROM_ENV_KINDS: Mapping[str, Kind] = {
    **ENGINE_KINDS,
    "environ": optional(Kind("a mapping of environment variables to text", _environ_problem)),
}


@functools.cache
def sandbox_kinds() -> Mapping[str, Kind]:
    """``Engine.sandbox``'s keywords: its own, and ``Engine``'s but the one it sets itself (``base_url``).

    Made at the first sandbox (and kept), because it names ``engine.sandbox``'s classes, which a
    production engine never imports.
    """
    from engine.sandbox import SandboxIdentity
    from engine.sandbox.identity import KEY_MODES

    identity = Kind("a SandboxIdentity", lambda value: None if isinstance(value, SandboxIdentity) else _got(value))
    chosen = Kind(  # refused whatever its value: the sandbox's transport serves sandbox:// only
        "left out: Engine.sandbox chooses its own base URL (sandbox://wechatpay)",
        lambda value: "for a sandbox served over HTTP, give its URL and settings to Engine(...)",
    )
    return {**ENGINE_KINDS, "identity": optional(identity), "mode": one_of(*KEY_MODES), "base_url": chosen}


def check_settings(settings: Mapping[str, Any], kinds: Mapping[str, Kind], constructor: str = "Engine") -> None:
    """A ``ConfigurationError`` for the first keyword of ``settings`` that ``kinds`` does not know, or whose
    value is not of its kind; it names the setting and never the value.

    ``settings`` may hold ``Secret`` boxes: each is opened inline for its kind's check, never bound here.
    """
    unknown = sorted(set(settings) - set(kinds))
    if unknown:
        close = difflib.get_close_matches(unknown[0], list(kinds), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ConfigurationError(f"{constructor} takes no setting {', '.join(unknown)}{hint}")
    for name in settings:
        kind = kinds[name]
        problem = kind.problem(reveal(settings[name]))
        if problem is not None:
            raise ConfigurationError(f"{name} must be {kind.expected} ({problem})")
