"""What the two catalogue importers share: the run around the mapping, the report, the command line.

``tools.import_catalogue`` (APIv3) and ``tools.import_catalogue_v2`` (APIv2) map operations by their
own rules; everything before and after that mapping is the same for both and lives here.

Design decisions:

* **One run, in two passes.** ``read_operations`` walks the files in the order given, counting
  each, and keeps every operation the importer's own step returns; only then can traits that name
  *another* operation (``idempotency``'s ``query``) be derived, because the lookup operation may
  come later in the walk. ``write_all`` then writes each descriptor and removes the stale ones.
* **Checked, deterministic, re-runnable.** Every descriptor goes through
  ``engine.loader.structure_descriptor`` before it is written (a failure is an importer bug and
  raises). Output is ``yaml.safe_dump(..., allow_unicode=True, sort_keys=False)`` in the given key
  order, so the same input gives byte-identical files; unchanged files are not rewritten.
* **Each importer removes only its own stale files**: the APIv2 importer those whose id starts with
  ``v2.``, the APIv3 importer every other one; never ``aliases.yaml`` or ``__init__.py``.
* **One rule each for the facts both families state the same way**: a host family from an
  operation's base URI (``host_family``), and the lookup operation nearest a path
  (``nearest``: most shared leading segments, then the shorter path, then the id).
* **A developer tool, outside the installed package**: by default it writes into the
  ``endpoints/`` folder of the checkout it belongs to (found from this file's location, never from
  the installed ``engine.endpoints``), so it cannot write into site-packages. ``CatalogueError`` is
  defined here, with the tools; it is a ``UsageError``, so it travels like every engine error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

import attrs
import yaml

from engine.errors import DescriptorError, UsageError
from engine.loader import structure_descriptor
from engine.registry import ALIASES_FILE

KEEP_FILES = (ALIASES_FILE, "__init__.py")
OTHER_IMPORTERS = ("v2.",)  # id prefixes written by tools.import_catalogue_v2, never removed by the APIv3 one
CHECKOUT_ENDPOINTS = Path(__file__).resolve().parent.parent / "endpoints"  # the checkout's, not site-packages
Imported = tuple[str, dict[str, Any], str]  # (canonical id, descriptor, the catalogue file it came from)


@attrs.frozen
class Problem:
    """One thing the importer could not carry over: where, which operation, and why."""

    file: str
    operation: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file} {self.operation}: {self.reason}"


@attrs.frozen
class Written:
    """One operation written as a descriptor file."""

    id: str
    operation: str
    file: str


@attrs.define
class ImportReport:
    """What an import did: operations written, stale files removed, and what it could not express.

    ``unexpressed`` lists constructs our descriptor format could not carry (the aim: none).
    ``repaired`` lists defects of the catalogue itself and what the importer did about each: a typo
    read for what it plainly means, a fact left out because it cannot work anywhere.
    """

    source_files: int = 0
    written: list[Written] = attrs.field(factory=list)
    removed: list[str] = attrs.field(factory=list)
    unexpressed: list[Problem] = attrs.field(factory=list)
    repaired: list[Problem] = attrs.field(factory=list)
    idempotent: list[str] = attrs.field(factory=list)  # "id: key=..., query=..." for every resend-safe non-GET
    traits: list[str] = attrs.field(factory=list)  # other derived traits worth a review (APIv2: unsigned, one_of)

    def summary(self) -> str:
        imported = f"imported {len(self.written)} operations from {self.source_files} files"
        counts = f"{len(self.removed)} stale files removed, {len(self.unexpressed)} unexpressed"
        return f"{imported}: {counts}, {len(self.repaired)} repaired, {len(self.idempotent)} safe to resend"

    def lines(self) -> list[str]:
        return [
            *(f"unexpressed: {p}" for p in self.unexpressed),
            *(f"repaired: {p}" for p in self.repaired),
            *(f"removed: {name}" for name in self.removed),
            *(f"idempotent: {line}" for line in self.idempotent),
            *(f"trait: {line}" for line in self.traits),
        ]


class CatalogueError(UsageError):
    """The catalogue cannot be read at all (missing folder, unreadable YAML)."""


# -- the run ---------------------------------------------------------------------------------------


def read_operations(
    files: Iterable[Path],
    methods: Callable[[Path], Iterable[str]],
    one: Callable[[Path, str], Optional[Imported]],
    report: ImportReport,
) -> list[Imported]:
    """Every operation of ``files`` that ``one`` imports (``None``: left out), in order; each file is counted."""
    imported: list[Imported] = []
    for file in files:
        report.source_files += 1
        for method in methods(file):
            operation = one(file, method)
            if operation is not None:
                imported.append(operation)
    return imported


def write_all(out: Path, imported: Iterable[Imported], prefix: str = "") -> list[str]:
    """Write each descriptor, then remove the stale ones this importer owns (see ``_remove_stale``).

    Returns the names of the files removed.
    """
    produced: set[str] = set()
    for canonical, raw, relative in imported:
        _write(out, canonical, raw, relative)
        produced.add(canonical)
    return _remove_stale(out, produced, prefix)


def run_importer(
    importer: Callable[[Path, Path], ImportReport],
    prog: str,
    description: str,
    path_help: str,
    argv: Optional[Sequence[str]] = None,
) -> int:
    """The command line of an importer: PATH [--out DIR]; exit 2 for an unreadable catalogue, 1 for unexpressed."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("path", type=Path, help=path_help)
    parser.add_argument(
        "--out",
        type=Path,
        default=CHECKOUT_ENDPOINTS,
        metavar="DIR",
        help="where to write (default: the endpoints/ folder of this checkout)",
    )
    args = parser.parse_args(argv)
    try:
        report = importer(args.path, args.out)
    except CatalogueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{report.summary()} -> {args.out}")
    for line in report.lines():
        print(line)
    return 1 if report.unexpressed else 0


# -- rules both families share ---------------------------------------------------------------------


def host_family(
    operation: Mapping[str, Any], key: str, hosts: Mapping[str, str], unexpressed: Callable[[str], None]
) -> Optional[str]:
    """The ``host`` trait of the base URI the operation states under ``key``; an unknown one is reported."""
    base = operation.get(key)
    if base is None:
        return None
    if base not in hosts:
        unexpressed(f"{key} {base} is not a known host family")
    return hosts.get(base)


def nearest(path: str, candidates: Iterable[tuple[str, str]], at_least: int = 0) -> Optional[str]:
    """The id of the ``(id, path)`` candidate sharing the most leading segments with ``path``.

    Ties go to the shorter path, then the smaller id; a candidate sharing fewer than ``at_least``
    segments is never chosen.
    """
    segments = path.strip("/").split("/")
    ranked = []
    for canonical, candidate in candidates:
        shared = _shared_prefix(segments, candidate.strip("/").split("/"))
        if shared >= at_least:
            ranked.append((-shared, len(candidate), canonical))
    return min(ranked)[2] if ranked else None


def _shared_prefix(first: list[str], second: list[str]) -> int:
    count = 0
    for a, b in zip(first, second, strict=False):  # the shorter path ends the comparison
        if a != b:
            break
        count += 1
    return count


# -- writing ---------------------------------------------------------------------------------------


def _write(out: Path, canonical: str, raw: dict[str, Any], relative: str) -> None:
    """Check the descriptor with the loader, then write it unless the file already holds these bytes."""
    target = out / f"{canonical}.yaml"
    try:
        structure_descriptor(raw, canonical, source=f"{relative} (import)")
    except DescriptorError as exc:
        raise AssertionError(f"the importer produced an invalid descriptor: {exc}") from exc
    text = render(raw, relative)
    out.mkdir(parents=True, exist_ok=True)
    if not target.exists() or target.read_text(encoding="utf-8") != text:
        target.write_text(text, encoding="utf-8")


def render(raw: Mapping[str, Any], relative: str) -> str:
    """The file text: a provenance comment, then the descriptor as block YAML in the given key order."""
    header = f"# Facts from the wechatpay-openapi catalogue (MIT): {relative}\n"
    body = yaml.safe_dump(dict(raw), allow_unicode=True, sort_keys=False, width=1000, default_flow_style=False)
    return header + body


def _remove_stale(out: Path, produced: set[str], prefix: str = "") -> list[str]:
    """Delete this importer's descriptors that it no longer produces: ids starting with ``prefix``
    (APIv2's importer: ``v2.``), or, with no prefix, every id but those of the other importers."""
    if not out.is_dir():
        return []

    def owned(stem: str) -> bool:
        return stem.startswith(prefix) if prefix else not stem.startswith(OTHER_IMPORTERS)

    stale = [
        p for p in sorted(out.glob("*.yaml")) if p.name not in KEEP_FILES and p.stem not in produced and owned(p.stem)
    ]
    for path in stale:
        path.unlink()
    return [p.name for p in stale]
