"""The ``wechatpay`` pytest fixtures under their former name; they live in ``wechatpay_engine_pytest``.

Kept so that ``pytest_plugins = ["engine.pytest_plugin"]`` and ``-p engine.pytest_plugin`` keep
working. The installed entry point names ``wechatpay_engine_pytest``, which loads even where a
project's own ``engine`` package shadows this one.
"""

from wechatpay_engine_pytest import (
    RunningSandbox,
    pytest_runtest_makereport,
    wechatpay_sandbox,
    wechatpay_sandbox_identity,
    wechatpay_sandbox_options,
    wechatpay_sandbox_server,
    wechatpay_stubber,
)

__all__ = [
    "RunningSandbox",
    "pytest_runtest_makereport",
    "wechatpay_sandbox",
    "wechatpay_sandbox_identity",
    "wechatpay_sandbox_options",
    "wechatpay_sandbox_server",
    "wechatpay_stubber",
]
