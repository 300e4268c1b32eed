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
"""

from __future__ import annotations

import importlib
from typing import Any, Iterable

import pluggy

from engine import hookspecs
from engine.errors import ConfigurationError

ENTRY_POINT_GROUP = "wechatpay.plugins"

DEFAULT_PLUGINS = (
    "engine.plugins.json_codec",
    "engine.plugins.signer",
    "engine.plugins.verifier",
    "engine.plugins.field_crypto",
    "engine.plugins.call_log",
    "engine.plugins.aiohttp_transport",
    "engine.plugins.v2_codec",
    "engine.plugins.v2_signer",
    "engine.plugins.v2_verifier",
)


def build_plugin_manager(
    plugins: Iterable[Any] = (), builtins: Iterable[Any] = DEFAULT_PLUGINS, entry_points: bool = True
) -> pluggy.PluginManager:
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    for plugin in builtins:
        _register(manager, plugin)
    if entry_points:
        manager.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    for plugin in plugins:
        _register(manager, plugin)
    try:
        manager.check_pending()
    except pluggy.PluginValidationError as exc:
        raise ConfigurationError(f"plugin {exc.plugin!r} implements an unknown hook: {exc}") from None
    return manager


def _register(manager: pluggy.PluginManager, plugin: Any) -> None:
    if isinstance(plugin, str):
        try:
            plugin = importlib.import_module(plugin)
        except ImportError as exc:
            raise ConfigurationError(f"cannot import plugin {plugin!r}: {exc}") from None
    if manager.is_registered(plugin):
        return
    try:
        manager.register(plugin)
    except pluggy.PluginValidationError as exc:
        raise ConfigurationError(f"plugin {plugin!r} does not match the hook specifications: {exc}") from None
