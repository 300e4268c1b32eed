"""pytest fixtures for testing code that calls WeChat Pay, installed as the ``wechatpay`` pytest plugin.

The distribution registers this top-level module under the ``pytest11`` entry point group, so the
fixtures are available in any test suite of a project that installs the engine:

* ``wechatpay_sandbox_identity`` (session): one generated ``SandboxIdentity``, shared by every
  sandbox engine of the session, because RSA key generation is the slow part.
* ``wechatpay_sandbox_options``: keyword arguments for ``Engine.sandbox()`` (empty); override it in a
  ``conftest.py`` to choose a key ``mode``, add ``plugins`` or inject a ``clock``.
* ``wechatpay_sandbox``: an ``Engine.sandbox()`` engine on that identity, closed after the test.
* ``wechatpay_stubber``: an active ``engine.testing.Stubber`` around ``wechatpay_sandbox``; after a
  test that passed, it asserts that every queued answer was used.
* ``wechatpay_sandbox_server``: the sandbox served over HTTP on 127.0.0.1 (a free port) for the
  test, with ``.base_url``, ``.sandbox``, ``.identity`` and ``.engine(**options)`` building engines
  pointed at it (closed after the test). Any HTTP client, in any language, can be pointed there too.

Opting out: ``pytest -p no:wechatpay``. With ``PYTEST_DISABLE_PLUGIN_AUTOLOAD`` set, opt in with
``-p wechatpay_engine_pytest`` or ``pytest_plugins = ["wechatpay_engine_pytest"]`` in a conftest.

Design decisions:

* A top-level module with a name of its own, not ``engine.pytest_plugin``: the package is called
  ``engine``, and a project with its own ``engine`` package or module would shadow it, making
  pytest fail to load the plugin and with it the whole run. Loading this module imports nothing
  but pytest, so such a project's tests run as if the plugin were not there.
* The engine is imported inside the fixtures, not when pytest loads the plugin, so test suites that
  never ask for a fixture pay nothing for it; if the ``engine`` found then is not this one, the
  fixture fails with that explanation instead of an obscure attribute error.
* ``RunningSandbox.engine(**options)`` boxes the options and the identity's keys
  (``engine.secret.hide_settings``) before anything can fail, as ``Engine.sandbox`` does: an error
  tracker recording the frames of a refused construction sees ``Secret(<hidden>)``.
* The no-pending-answers check runs only when the test itself passed (a ``pytest_runtest_makereport``
  wrapper records the outcome): a failing test already says what went wrong, and a second error at
  teardown about the answers it never reached would only bury it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator

import pytest

if TYPE_CHECKING:
    from engine import Engine
    from engine.sandbox import SandboxIdentity
    from engine.testing import Stubber

_CALL_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call" and "wechatpay_stubber" in getattr(item, "fixturenames", ()):
        item.stash[_CALL_FAILED] = report.failed
    return report


def _engine_module() -> Any:
    """This distribution's ``engine`` package, or a ``pytest.UsageError`` saying what shadows it."""
    import engine

    if not hasattr(engine, "Engine") or not hasattr(engine, "Untyped"):
        where = getattr(engine, "__file__", None) or list(getattr(engine, "__path__", []))
        raise pytest.UsageError(
            f"the wechatpay fixtures need wechatpay-engine's 'engine' package, but 'engine' here is {where}: "
            "this project's own engine package shadows it (run these tests from a project without one)"
        )
    return engine


@pytest.fixture(scope="session")
def wechatpay_sandbox_identity() -> "SandboxIdentity":
    """Throwaway merchant and WeChat Pay keys, generated once per test session."""
    _engine_module()
    from engine.sandbox import SandboxIdentity

    return SandboxIdentity.generate()


@pytest.fixture
def wechatpay_sandbox_options() -> dict[str, Any]:
    """Extra keyword arguments for ``Engine.sandbox()``; override this fixture to change them."""
    return {}


@pytest.fixture
def wechatpay_sandbox(
    wechatpay_sandbox_identity: "SandboxIdentity", wechatpay_sandbox_options: dict[str, Any]
) -> Iterator["Engine"]:
    """An engine wired to an in-process WeChat Pay sandbox (``.emulator``), closed after the test."""
    engine = _engine_module().Engine.sandbox(identity=wechatpay_sandbox_identity, **wechatpay_sandbox_options)
    yield engine
    engine.close()


class RunningSandbox:
    """What ``wechatpay_sandbox_server`` yields: a served sandbox and engines pointed at it."""

    def __init__(self, thread: Any, identity: "SandboxIdentity") -> None:
        self.thread = thread
        self.identity = identity
        self.base_url: str = thread.base_url
        self.sandbox = thread.sandbox
        self._engines: list["Engine"] = []

    def engine(self, **options: Any) -> "Engine":
        """An engine on the served sandbox's credentials; ``options`` are further ``Engine`` settings."""
        from engine import Engine
        from engine.secret import hide_settings

        hide_settings(options)  # in place, first: this frame holds options (and the identity's keys below)
        settings = hide_settings({**self.identity.engine_settings(), "base_url": self.base_url, **options})
        engine = Engine(**settings)
        self._engines.append(engine)
        return engine

    def close_engines(self) -> None:
        for engine in self._engines:
            engine.close()


@pytest.fixture
def wechatpay_sandbox_server(wechatpay_sandbox_identity: "SandboxIdentity") -> Iterator[RunningSandbox]:
    """The sandbox served over HTTP on 127.0.0.1 for one test."""
    from engine.sandbox import Sandbox
    from engine.sandbox.server import ServerThread

    with ServerThread(Sandbox(wechatpay_sandbox_identity)) as thread:
        running = RunningSandbox(thread, wechatpay_sandbox_identity)
        yield running
        running.close_engines()


@pytest.fixture
def wechatpay_stubber(wechatpay_sandbox: "Engine", request: pytest.FixtureRequest) -> Iterator["Stubber"]:
    """An active ``Stubber`` on ``wechatpay_sandbox``; a passing test must use every queued answer."""
    from engine.testing import Stubber

    with Stubber(wechatpay_sandbox) as stub:
        yield stub
    if not request.node.stash.get(_CALL_FAILED, True):
        stub.assert_no_pending_responses()
