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
  registry instance (never in a module global). Aliases are read on the first alias lookup. The
  listing keeps names only (id -> directory), no ``Path`` per file: for the 1,019 built-in files
  that is a millisecond of the first call instead of ten.
* **Matching a concrete path walks a trie, it does not scan.** The route index groups templates by
  method and segment count; each group's templates form a trie of literal segments and parameters,
  built on the group's first match, so ``matches`` costs the path's depth and the branches that fit
  (a handful), not one comparison per same-length template (a hundred for POST with six segments,
  and the sandbox matches every request it serves, twice). The fits come out in the order the scan
  gave: fewest template parameters first, then by id.
* Later sources win: user directories and plugin endpoints override the built-in ones with the same
  id, and descriptors registered in Python override files.
* ``"METHOD /path"`` resolves to a registered descriptor when one matches the path (literal or
  template), otherwise to an ad-hoc descriptor that is signed, sent and verified but not validated.
* **The built-in catalogue is parsed once per process.** It is immutable package data, so every
  engine's registry is an overlay on one shared ``builtin_registry()`` (its directory listing,
  aliases, route index and parsed descriptors): a thousand engines for a thousand merchants hold
  one copy. What an engine adds (``endpoint_dirs``, plugin sources, ``register``) stays in its own
  overlay and overrides the shared layer for that engine only.
* **A raw target is made a valid request target before anything signs it** (``serialize.raw_target``):
  control characters (C0, DEL, C1: tab, CR and LF among them) and lone surrogates are refused with a
  ``UsageError``, because no encoding of them is what the caller could have meant; every other
  character outside RFC 3986's path and query set (space, ``#``, ``"<>\\^`{|}[]``, non-ASCII, a
  ``%`` that starts no escape) is percent-encoded as UTF-8. The encoded target is what is signed
  and what is sent, so no HTTP library can send something else. A repeated query key keeps every
  value, in order: a descriptor's array field receives them all, any other field a list that
  validation refuses, rather than the last value silently winning.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence, Union
from urllib.parse import parse_qsl, unquote

import engine.endpoints as endpoints_package
from engine import forksafe
from engine.descriptor import Descriptor, adhoc_descriptor
from engine.errors import DescriptorError, UnknownEndpointError, UsageError
from engine.loader import load_descriptor_file, parse_yaml, read_source, semantic_problems
from engine.serialize import grouped, raw_target

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
    """``"POST /v3/x"`` -> ``("POST", "/v3/x")``, the target percent-encoded; anything else -> None.

    ``UsageError`` when the target holds a character no request target may carry (see above).
    """
    method, _, path = ref.partition(" ")
    if method.upper() in _METHODS and path.startswith("/"):
        return method.upper(), raw_target(path.strip(" "))
    return None


def query_parameters(target: str) -> dict[str, Union[str, list[str]]]:
    """A raw target's query as decoded text; a key given more than once keeps every value, in order."""
    return grouped(parse_qsl(target.partition("?")[2], keep_blank_values=True))


class Registry:
    """The endpoints one engine knows: files in directories plus descriptors registered in Python."""

    def __init__(
        self,
        directories: Sequence[Path] = (),
        descriptors: Iterable[Descriptor] = (),
        parent: Optional["Registry"] = None,
    ) -> None:
        self._parent = parent  # a shared, read-only lower layer (the built-in catalogue)
        self._directories = [Path(d) for d in directories]
        self._own_files: Optional[dict[str, Path]] = None
        self._files: Optional[dict[str, Path]] = None
        self._aliases: Optional[dict[str, str]] = None
        self._extra_aliases: dict[str, str] = {}
        self._loaded: dict[str, Descriptor] = {}
        self._registered: dict[str, Descriptor] = {}
        self._routes: Optional[dict[tuple[str, int], _Routes]] = None
        # An id or alias already resolved, so a call's lookup is one dict hit, not the layered search
        # (own files, the parent, the aliases). Bounded by the known ids and aliases; emptied by register().
        self._resolved: dict[str, Descriptor] = {}
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
        self._resolved.clear()

    def get(self, ref: str) -> Descriptor:
        """Resolve an id, an alias or ``"METHOD /path"``; raise ``UnknownEndpointError`` otherwise."""
        return self.resolve(ref)[0]

    def resolve(self, ref: str) -> tuple[Descriptor, dict[str, Any]]:
        """Like ``get``, plus the path and query values (as text) a concrete ``"METHOD /path?q"`` carries.

        A query key given more than once maps to the list of its values.
        """
        if not isinstance(ref, str):
            raise UsageError(
                f"an endpoint reference is a string (an id, an alias or 'METHOD /path'), got {type(ref).__name__}"
            )
        known = self._resolved.get(ref)
        if known is not None:
            return known, {}
        found = self._by_id(ref) or self._by_id(self._alias_target(ref))
        if found is not None:
            self._resolved[ref] = found
            return found, {}
        method_path = split_method_path(ref)
        if method_path is None:
            raise UnknownEndpointError(ref, self.suggest(ref))
        matched = self.match(*method_path)
        if matched is None:
            return adhoc_descriptor(*method_path), {}  # sent as written, query included
        return matched, {**query_parameters(method_path[1]), **path_parameters(matched.path, method_path[1])}

    def __contains__(self, endpoint_id: object) -> bool:
        """Whether a canonical id is known, without parsing anything."""
        return endpoint_id in self._registered or endpoint_id in self._file_index()

    def ids(self) -> list[str]:
        """Every canonical id this registry can resolve, sorted."""
        return sorted({*self._file_index(), *self._registered})

    def aliases(self) -> dict[str, str]:
        """Alias -> canonical id."""
        return {**self._alias_index(), **self._extra_aliases}

    def names(self) -> dict[str, list[str]]:
        """Canonical id -> its aliases, the short name first (the built-ins' ``aliases.yaml`` comes first)."""
        found: dict[str, list[str]] = {}
        for alias, target in self.aliases().items():
            found.setdefault(target, []).append(alias)
        return found

    def suggest(self, ref: str, limit: int = 3) -> list[str]:
        """The closest ids and aliases to a misspelt reference, best first."""

        names = [*self.ids(), *self.aliases()]
        import difflib  # only for a misspelt reference

        close = difflib.get_close_matches(ref, names, n=limit, cutoff=0.5)
        return close or [n for n in names if ref.split(".")[-1] in n][:limit]

    def match(self, method: str, path: str) -> Optional[Descriptor]:
        """The registered descriptor whose method and path template match a concrete path."""
        found = self.matches(method, path)
        return found[0] if found else None

    def matches(self, method: str, path: str) -> list[Descriptor]:
        """Every descriptor fitting ``method path``, most specific (fewest template parameters) first."""
        segments = tuple(_id_segment(s) for s in path.split("?", 1)[0].split("/") if s)
        fits = self._fits(method, segments)
        found: list[Descriptor] = []
        for _, candidate_id in fits:
            descriptor = self._by_id(candidate_id)
            # A file named against the rule could hold another path: trust the loaded template.
            if descriptor is None or descriptor.method != method.upper():
                continue
            if _template_fits(descriptor.path, path) and descriptor not in found:
                found.append(descriptor)
        return found

    def fitting(self, method: str, segments: Sequence[str]) -> Optional[Descriptor]:
        """The most specific descriptor whose template fits path segments compared as the id rule folds
        them (``out_trade_no`` fits ``out-trade-no``); a template parameter fits any segment."""
        folded = tuple(_id_segment(s) for s in segments)
        for _, candidate_id in self._fits(method, folded):
            descriptor = self._by_id(candidate_id)
            # As in ``matches``: the loaded template, not the file name, has the last word.
            if descriptor is not None and descriptor.method == method.upper():
                template = tuple(_id_segment(s) for s in descriptor.path.split("/") if s)
                if len(template) == len(folded) and _route_fit(template, folded) is not None:
                    return descriptor
        return None

    # -- internals ---------------------------------------------------------------------------

    def _by_id(self, endpoint_id: Optional[str]) -> Optional[Descriptor]:
        if endpoint_id is None:
            return None
        if endpoint_id in self._registered:
            return self._registered[endpoint_id]
        if endpoint_id not in self._loaded:
            directory = self._own_file_index().get(endpoint_id)
            if directory is None:
                return self._parent._by_id(endpoint_id) if self._parent is not None else None
            self._loaded[endpoint_id] = load_descriptor_file(directory / f"{endpoint_id}.yaml", endpoint_id)
        return self._loaded[endpoint_id]

    def _alias_target(self, ref: str) -> Optional[str]:
        return self._extra_aliases.get(ref) or self._alias_index().get(ref)

    def _own_file_index(self) -> dict[str, Path]:
        """Id -> the directory holding its file (the last directory given wins)."""
        if self._own_files is None:
            files: dict[str, Path] = {}
            for directory in self._directories:
                # Names, not Path objects, are listed, and the path is joined only for a file that is
                # loaded: a thousand Path joins cost more than the rest of the index at start-up.
                for name in _yaml_names(directory):
                    if name != ALIASES_FILE:
                        files[name[: -len(".yaml")]] = directory
            self._own_files = files
        return self._own_files

    def _file_index(self) -> dict[str, Path]:
        if self._files is None:
            if self._parent is None:
                self._files = self._own_file_index()
            elif not self._directories:
                self._files = self._parent._file_index()  # the shared dict itself, not a copy
            else:
                self._files = {**self._parent._file_index(), **self._own_file_index()}
        return self._files

    def _alias_index(self) -> dict[str, str]:
        if self._aliases is None:
            if self._parent is not None and not self._directories:
                self._aliases = self._parent._alias_index()
                return self._aliases
            aliases: dict[str, str] = dict(self._parent._alias_index()) if self._parent is not None else {}
            for directory in self._directories:
                aliases.update(_read_aliases(directory / ALIASES_FILE))
            self._aliases = aliases
        return self._aliases

    def _fits(self, method: str, segments: tuple[str, ...]) -> list[tuple[int, str]]:
        """(template parameters needed, id) of every indexed template fitting folded ``segments``."""
        routes = self._route_index().get((method.lower(), len(segments)))
        return routes.fits(segments) if routes is not None else []

    def _route_index(self) -> dict[tuple[str, int], _Routes]:
        if self._routes is None and self._parent is not None and not self._directories and not self._registered:
            self._routes = self._parent._route_index()
        if self._routes is None:
            entries = [(known, known) for known in self._file_index()]
            # An id may start with a host or protocol family (hk.v3.global.certificates.get = host hk +
            # /v3/..., v2.pay.micropay.post = /pay/micropay): index it without the prefix too; the
            # loaded descriptor's real path confirms any match.
            entries += [(k.split(".", 1)[1], k) for k in self._file_index() if k.split(".", 1)[0] in ID_PREFIXES]
            entries += [(endpoint_id(d.method, d.path), known) for known, d in self._registered.items()]
            routes: dict[tuple[str, int], _Routes] = {}
            for canonical, known in entries:
                *segments, method = canonical.split(".")
                routes.setdefault((method, len(segments)), _Routes()).add(tuple(segments), known)
            self._routes = routes
        return self._routes


_BUILTIN: Optional[Registry] = None
_BUILTIN_LOCK = forksafe.lock()


def builtin_registry() -> Registry:
    """The process's one registry of the built-in catalogue, shared (read-only) by every engine."""
    global _BUILTIN
    if _BUILTIN is None:
        with _BUILTIN_LOCK:
            if _BUILTIN is None:
                _BUILTIN = Registry([BUILTIN_ENDPOINTS])
    return _BUILTIN


def _route_fit(pattern: tuple[str, ...], segments: tuple[str, ...]) -> Optional[int]:
    """How many template parameters ``pattern`` needs to match ``segments``; None if it does not."""
    wildcards = 0
    for expected, actual in zip(pattern, segments, strict=True):
        if _is_parameter(expected):
            wildcards += 1
        elif expected != actual:
            return None
    return wildcards


def _is_parameter(segment: str) -> bool:
    """A folded template segment standing for a parameter (``_out_trade_no_``)."""
    return len(segment) > 2 and segment[0] == segment[-1] == "_"


class _RouteNode:
    """One step of a route trie: the literal segments that go on, the parameter that does, and the
    ids of the templates ending here."""

    __slots__ = ("ids", "literal", "parameter")

    def __init__(self) -> None:
        self.literal: dict[str, _RouteNode] = {}
        self.parameter: Optional[_RouteNode] = None
        self.ids: list[str] = []


class _Routes:
    """The templates of one method and segment count, and their trie (built on the first match)."""

    __slots__ = ("_trie", "entries")

    def __init__(self) -> None:
        self.entries: list[tuple[tuple[str, ...], str]] = []
        self._trie: Optional[_RouteNode] = None

    def add(self, pattern: tuple[str, ...], endpoint: str) -> None:
        self.entries.append((pattern, endpoint))
        self._trie = None

    def fits(self, segments: tuple[str, ...]) -> list[tuple[int, str]]:
        """What ``_route_fit`` over every entry gives: (parameters needed, id), fewest first, then by id."""
        trie = self._trie if self._trie is not None else self._build()
        found: list[tuple[int, str]] = []
        _walk(trie, segments, 0, 0, found)
        found.sort()
        return found

    def _build(self) -> _RouteNode:
        root = _RouteNode()
        for pattern, endpoint in self.entries:
            node = root
            for segment in pattern:
                if _is_parameter(segment):
                    node.parameter = node.parameter or _RouteNode()
                    node = node.parameter
                else:
                    node = node.literal.setdefault(segment, _RouteNode())
            node.ids.append(endpoint)
        self._trie = root
        return root


def _walk(
    node: _RouteNode, segments: tuple[str, ...], depth: int, wildcards: int, found: list[tuple[int, str]]
) -> None:
    """Add to ``found`` every template under ``node`` fitting ``segments[depth:]``."""
    if depth == len(segments):
        found.extend((wildcards, endpoint) for endpoint in node.ids)
        return
    literal = node.literal.get(segments[depth])
    if literal is not None:
        _walk(literal, segments, depth + 1, wildcards, found)
    if node.parameter is not None:
        _walk(node.parameter, segments, depth + 1, wildcards + 1, found)


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


_PLAIN_ALIAS = re.compile(r"([A-Za-z0-9_.-]+): ([A-Za-z0-9_.-]+)")


def _read_aliases(path: Path) -> dict[str, str]:
    if not os.path.lexists(path):  # lexists: a symlink loop or a dangling link is an error, not "no aliases"
        return {}
    text = read_source(path).decode("utf-8", errors="replace")
    # The generated file is one "name: id" per line (about 1,000): read that shape directly, a tenth
    # of libyaml's time on the first alias lookup; anything else is read as the YAML it is.
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    plain = [_PLAIN_ALIAS.fullmatch(line) for line in lines]
    if all(plain):
        return {m.group(1): m.group(2) for m in plain if m is not None}
    raw = parse_yaml(text, str(path))
    if not isinstance(raw, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in raw.items()):
        raise DescriptorError(str(path), ["expected a mapping of alias: canonical id @ $"])
    return raw


def _yaml_names(directory: Path) -> list[str]:
    """The ``*.yaml`` file names in ``directory`` (none when it cannot be listed, as ``glob`` has it)."""
    try:
        with os.scandir(directory) as entries:
            return [entry.name for entry in entries if entry.name.endswith(".yaml") and not entry.name.startswith(".")]
    except OSError:
        return []
