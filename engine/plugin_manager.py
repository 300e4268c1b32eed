"""Building the plugin manager of one engine.

Design decisions:

* One manager per engine, built by ``build_plugin_manager``; nothing is registered at import time,
  so two engines in one process can run different plugins.
* Built-ins are registered exactly like third-party plugins (by module), first, and their hooks are
  ``trylast``; entry-point plugins (group ``wechatpay.plugins``) and then ``Engine(plugins=[...])``
  come after, so they are consulted first and override a built-in by answering.
* A plugin given as a string is imported by dotted name, so the CLI and config files can name one.
* Protocol families are plugins too. Pluggy consults ``trylast`` implementations in registration
  order (each new one goes to the front of the group, and calls run from the back), so the APIv3
  built-ins are registered before the APIv2 ones: an APIv3 call is answered by the first built-in
  asked, and the APIv2 ones are reached only by APIv2 calls, whose descriptors the APIv3 built-ins
  decline (tests/test_hooks.py checks the order).
* Entry-point discovery is pluggy's own, run only when some installed distribution may declare the
  group. Asking ``importlib.metadata`` costs a process about 13 ms (9 ms to import it, 4 ms to parse
  every distribution's entry points), a tenth of a cold start, and most environments declare no
  plugin. ``_may_declare`` reads the ``entry_points.txt`` files on ``sys.path`` directly; whatever
  it cannot read the way ``importlib.metadata`` would (a zip on the path, a meta-path finder that
  supplies its own distributions) counts as "may", so it can only cause a scan, never skip a plugin.
"""

from __future__ import annotations

import importlib
import os
import sys
from importlib.machinery import PathFinder
from typing import Any, Iterable, Optional

import pluggy

from engine import hookspecs
from engine.errors import ConfigurationError

ENTRY_POINT_GROUP = "wechatpay.plugins"

DEFAULT_PLUGINS = (
    "engine.plugins.json_codec",
    "engine.plugins.signer",
    "engine.plugins.verifier",
    "engine.plugins.family",
    "engine.plugins.field_crypto",
    "engine.plugins.call_log",
    "engine.plugins.aiohttp_transport",
    "engine.plugins.v2_codec",
    "engine.plugins.v2_signer",
    "engine.plugins.v2_verifier",
    "engine.plugins.v2_family",
)


def build_plugin_manager(
    plugins: Iterable[Any] = (), builtins: Iterable[Any] = DEFAULT_PLUGINS, entry_points: bool = True
) -> pluggy.PluginManager:
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    for plugin in builtins:
        _register(manager, plugin)
    if entry_points and _may_declare(ENTRY_POINT_GROUP):
        manager.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    for plugin in plugins:
        _register(manager, plugin)
    try:
        manager.check_pending()
    except pluggy.PluginValidationError as exc:
        raise ConfigurationError(f"plugins: plugin {exc.plugin!r} implements an unknown hook: {exc}") from None
    return manager


def _register(manager: pluggy.PluginManager, plugin: Any) -> None:
    if isinstance(plugin, str):
        try:
            plugin = importlib.import_module(plugin)
        except ImportError as exc:
            raise ConfigurationError(f"plugins: cannot import plugin {plugin!r}: {exc}") from None
    if manager.is_registered(plugin):
        return
    try:
        manager.register(plugin)
    except pluggy.PluginValidationError as exc:
        raise ConfigurationError(f"plugins: plugin {plugin!r} does not match the hook specifications: {exc}") from None


def _may_declare(group: str) -> bool:
    """Whether an installed distribution may declare entry points in ``group`` (see the module docstring)."""
    if any(hasattr(finder, "find_distributions") for finder in sys.meta_path if finder is not PathFinder):
        return True
    section = f"[{group}]"
    for entry in sys.path:
        directory = _path_text(entry)
        texts = _entry_point_texts(directory) if directory is not None else None
        if texts is None or any(section in text for text in texts):
            return True
    return False


def _path_text(entry: Any) -> Optional[str]:
    """A ``sys.path`` entry as text, as ``importlib.metadata`` reads it (a ``Path`` too); ``None`` for
    anything else (bytes, a stray object), which is left to ``importlib.metadata`` to read or refuse."""
    if not entry:
        return "."
    try:
        text = os.fspath(entry)
    except TypeError:
        return None
    return text if isinstance(text, str) else None


def _entry_point_texts(directory: str) -> Optional[list[str]]:
    """The ``entry_points.txt`` of every distribution ``importlib.metadata`` would find in ``directory``;
    ``None`` for a path entry that is a file (a zip or an egg), which only ``importlib.metadata`` reads."""
    try:
        with os.scandir(directory) as listing:
            names = [entry.name for entry in listing]
    except NotADirectoryError:
        return None
    except OSError:  # missing or unreadable: importlib.metadata finds nothing there either
        return []
    infos = [name for name in names if name.lower().endswith((".dist-info", ".egg-info"))]
    if os.path.basename(directory).lower().endswith(".egg"):  # an unzipped egg: its EGG-INFO, in any case
        infos += [name for name in names if name.lower() == "egg-info"]
    texts = []
    for info in infos:
        try:
            with open(os.path.join(directory, info, "entry_points.txt"), encoding="utf-8", errors="replace") as file:
                texts.append(file.read())
        except OSError:  # no entry points (the usual case), or an .egg-info that is a file
            continue
    return texts
