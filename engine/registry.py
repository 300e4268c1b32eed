"""Finding descriptors by id, alias or ``"METHOD /path"``, parsing each only when first used.

Design decisions:

* **The id rule.** An endpoint's canonical id is derived from its method and path, so the whole
  catalogue can follow it mechanically and it reads like the chainable SDK call it mirrors::

      POST /v3/ecommerce/combine-papay/contracts/pre-entrust-sign/mini-program
      -> v3.ecommerce.combine_papay.contracts.pre_entrust_sign.mini_program.post

  Path segments are lower-cased with every non-alphanumeric run turned into ``_``; a template
  parameter ``{transaction_id}`` becomes ``_transaction_id_``; the lower-case method comes last.
  An endpoint served from another host (``host: hk``, from the catalogue's ``x-baseuri``) is
  prefixed with it: ``hk.v3.global.certificates.get``. (The catalogue's ``hk/`` and ``global/``
  folders are URL prefixes on the main host, so ``/hk/v3/refunds`` is simply ``hk.v3.refunds.post``.)
  An endpoint of another protocol family is prefixed with the family instead (its host is then a
  trait only): ``POST /pay/micropay`` with ``protocol: v2`` is ``v2.pay.micropay.post``, as the
  catalogue's ``v2/`` folder and the chainable SDKs (``$instance->v2->pay->micropay``) name it. APIv2
  paths are unique across its hosts, so ``v2.risk.getpublickey.post`` needs no ``fraud.`` as well.
  Short, human names (``combine_papay.mini_program``) are *aliases* kept in one ``aliases.yaml``
  per endpoint directory.
* **One file per endpoint, named by its id** (``<id>.yaml``). Resolving an id is a dictionary lookup
  over a directory listing; only the file asked for is read and parsed, then memoised on this
  registry instance (never in a module global). Aliases are read on the first alias lookup.
* Later sources win: user directories and plugin endpoints override the built-in ones with the same
  id, and descriptors registered in Python override files.
* ``"METHOD /path"`` resolves to a registered descriptor when one matches the path (literal or
  template), otherwise to an ad-hoc descriptor that is signed, sent and verified but not validated.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Iterable, Optional, Sequence
from urllib.parse import parse_qsl, unquote

import engine.endpoints as endpoints_package
from engine.descriptor import Descriptor, adhoc_descriptor
from engine.errors import DescriptorError, UnknownEndpointError
from engine.loader import load_descriptor_file, parse_yaml, semantic_problems

ALIASES_FILE = "aliases.yaml"
HOST_FAMILIES = ("hk",)  # hosts other than the main API host that prefix ids (host: hk)
PROTOCOL_PREFIXES = ("v2",)  # protocol families other than APIv3: they prefix ids instead of their host
ID_PREFIXES = (*HOST_FAMILIES, *PROTOCOL_PREFIXES)  # id prefixes that are not segments of the URL path
# The data package's directory (importlib.resources would pull in tempfile & co. at import time).
BUILTIN_ENDPOINTS = Path(next(iter(endpoints_package.__path__)))
_NON_ALNUM = re.compile(r"[^0-9a-z]+")
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def endpoint_id(method: str, path: str, host: Optional[str] = None, protocol: str = "v3") -> str:
    """The canonical id of ``method path`` under the documented rule (a family, else a host, prefixes it)."""
    segments = [_id_segment(s) for s in path.split("?", 1)[0].split("/") if s]
    prefix = protocol if protocol in PROTOCOL_PREFIXES else host
    return ".".join([*([prefix] if prefix else []), *segments, method.lower()])


def _id_segment(segment: str) -> str:
    if segment.startswith("{") and segment.endswith("}"):
        return f"_{_NON_ALNUM.sub('_', segment[1:-1].lower()).strip('_')}_"
    return _NON_ALNUM.sub("_", segment.lower()).strip("_")


def split_method_path(ref: str) -> Optional[tuple[str, str]]:
    """``"POST /v3/x"`` -> ``("POST", "/v3/x")``; anything else -> None."""
    method, _, path = ref.partition(" ")
    if method.upper() in _METHODS and path.startswith("/"):
        return method.upper(), path.strip()
    return None


class Registry:
    """The endpoints one engine knows: files in directories plus descriptors registered in Python."""

    def __init__(self, directories: Sequence[Path] = (), descriptors: Iterable[Descriptor] = ()) -> None:
        self._directories = [Path(d) for d in directories]
        self._files: Optional[dict[str, Path]] = None
        self._aliases: Optional[dict[str, str]] = None
        self._extra_aliases: dict[str, str] = {}
        self._loaded: dict[str, Descriptor] = {}
        self._registered: dict[str, Descriptor] = {}
        self._routes: Optional[dict[tuple[str, int], list[tuple[tuple[str, ...], str]]]] = None
        for descriptor in descriptors:
            self.register(descriptor)

    def register(self, descriptor: Descriptor, aliases: Iterable[str] = ()) -> None:
        """Add (or override) an endpoint built in Python, checked like a file is."""
        problems = list(semantic_problems(descriptor))
        if problems:
            raise DescriptorError(f"{descriptor.id!r} (registered in Python)", problems)
        self._registered[descriptor.id] = descriptor
        for alias in aliases:
            self._extra_aliases[alias] = descriptor.id
        self._routes = None

    def get(self, ref: str) -> Descriptor:
        """Resolve an id, an alias or ``"METHOD /path"``; raise ``UnknownEndpointError`` otherwise."""
        return self.resolve(ref)[0]

    def resolve(self, ref: str) -> tuple[Descriptor, dict[str, str]]:
        """Like ``get``, plus the path and query values (as text) a concrete ``"METHOD /path?q"`` carries."""
        found = self._by_id(ref) or self._by_id(self._alias_target(ref))
        if found is not None:
            return found, {}
        method_path = split_method_path(ref)
        if method_path is None:
            raise UnknownEndpointError(ref, self.suggest(ref))
        matched = self.match(*method_path)
        if matched is None:
            return adhoc_descriptor(*method_path), {}  # sent as written, query included
        query = dict(parse_qsl(method_path[1].partition("?")[2], keep_blank_values=True))
        return matched, {**query, **path_parameters(matched.path, method_path[1])}

    def __contains__(self, endpoint_id: object) -> bool:
        """Whether a canonical id is known, without parsing anything."""
        return endpoint_id in self._registered or endpoint_id in self._file_index()

    def ids(self) -> list[str]:
        """Every canonical id this registry can resolve, sorted."""
        return sorted({*self._file_index(), *self._registered})

    def aliases(self) -> dict[str, str]:
        """Alias -> canonical id."""
        return {**self._alias_index(), **self._extra_aliases}

    def suggest(self, ref: str, limit: int = 3) -> list[str]:
        """The closest ids and aliases to a misspelt reference, best first."""
        names = [*self.ids(), *self.aliases()]
        close = difflib.get_close_matches(ref, names, n=limit, cutoff=0.5)
        return close or [n for n in names if ref.split(".")[-1] in n][:limit]

    def match(self, method: str, path: str) -> Optional[Descriptor]:
        """The registered descriptor whose method and path template match a concrete path."""
        found = self.matches(method, path)
        return found[0] if found else None

    def matches(self, method: str, path: str) -> list[Descriptor]:
        """Every descriptor fitting ``method path``, most specific (fewest template parameters) first."""
        segments = tuple(_id_segment(s) for s in path.split("?", 1)[0].split("/") if s)
        candidates = self._route_index().get((method.lower(), len(segments)), [])
        fits = sorted((w, cid) for pattern, cid in candidates if (w := _route_fit(pattern, segments)) is not None)
        found: list[Descriptor] = []
        for _, candidate_id in fits:
            descriptor = self._by_id(candidate_id)
            # A file named against the rule could hold another path: trust the loaded template.
            fitting = descriptor is not None and descriptor.method == method.upper()
            if fitting and _template_fits(descriptor.path, path) and descriptor not in found:
                found.append(descriptor)
        return found

    # -- internals ---------------------------------------------------------------------------

    def _by_id(self, endpoint_id: Optional[str]) -> Optional[Descriptor]:
        if endpoint_id is None:
            return None
        if endpoint_id in self._registered:
            return self._registered[endpoint_id]
        if endpoint_id not in self._loaded:
            path = self._file_index().get(endpoint_id)
            if path is None:
                return None
            self._loaded[endpoint_id] = load_descriptor_file(path, endpoint_id)
        return self._loaded[endpoint_id]

    def _alias_target(self, ref: str) -> Optional[str]:
        return self._extra_aliases.get(ref) or self._alias_index().get(ref)

    def _file_index(self) -> dict[str, Path]:
        if self._files is None:
            files: dict[str, Path] = {}
            for directory in self._directories:
                for path in sorted(directory.glob("*.yaml")):
                    if path.name != ALIASES_FILE:
                        files[path.name[: -len(".yaml")]] = path
            self._files = files
        return self._files

    def _alias_index(self) -> dict[str, str]:
        if self._aliases is None:
            aliases: dict[str, str] = {}
            for directory in self._directories:
                aliases.update(_read_aliases(directory / ALIASES_FILE))
            self._aliases = aliases
        return self._aliases

    def _route_index(self) -> dict[tuple[str, int], list[tuple[tuple[str, ...], str]]]:
        if self._routes is None:
            entries = [(known, known) for known in self._file_index()]
            # An id may start with a host or protocol family (hk.v3.global.certificates.get = host hk +
            # /v3/..., v2.pay.micropay.post = /pay/micropay): index it without the prefix too; the
            # loaded descriptor's real path confirms any match.
            entries += [(k.split(".", 1)[1], k) for k in self._file_index() if k.split(".", 1)[0] in ID_PREFIXES]
            entries += [(endpoint_id(d.method, d.path), known) for known, d in self._registered.items()]
            routes: dict[tuple[str, int], list[tuple[tuple[str, ...], str]]] = {}
            for canonical, known in entries:
                *segments, method = canonical.split(".")
                routes.setdefault((method, len(segments)), []).append((tuple(segments), known))
            self._routes = routes
        return self._routes


def _route_fit(pattern: tuple[str, ...], segments: tuple[str, ...]) -> Optional[int]:
    """How many template parameters ``pattern`` needs to match ``segments``; None if it does not."""
    wildcards = 0
    for expected, actual in zip(pattern, segments, strict=True):
        if len(expected) > 2 and expected[0] == expected[-1] == "_":
            wildcards += 1
        elif expected != actual:
            return None
    return wildcards


def _template_fits(template: str, path: str) -> bool:
    return _template_regex(template).fullmatch(path.split("?", 1)[0]) is not None


def _template_regex(template: str) -> re.Pattern[str]:
    return re.compile(re.sub(r"\\{([^{}/]+)\\}", lambda m: f"(?P<{_group(m.group(1))}>[^/]+)", re.escape(template)))


def _group(name: str) -> str:
    return "p_" + _NON_ALNUM.sub("_", name.lower())


def path_parameters(template: str, path: str) -> dict[str, str]:
    """The percent-decoded values a concrete path gives a template's parameters."""
    names = re.findall(r"{([^{}/]+)}", template)
    match = _template_regex(template).fullmatch(path.split("?", 1)[0])
    if match is None:
        return {}
    return {name: unquote(match.group(_group(name))) for name in names}


def _read_aliases(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    raw = parse_yaml(path.read_bytes(), str(path))
    if not isinstance(raw, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in raw.items()):
        raise DescriptorError(str(path), ["expected a mapping of alias: canonical id @ $"])
    return raw
