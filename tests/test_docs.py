"""The documentation site: it builds (MkDocs, strict), and its pages hold what they promise, examples that run."""

from __future__ import annotations

import asyncio
import contextlib
import html
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any, Iterator

import pytest

from engine import ApiError, Engine
from engine.registry import BUILTIN_ENDPOINTS, Registry
from engine.sandbox.flows import needs_object

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import docgen  # noqa: E402  (tools/docgen.py)

SEEDS = {
    "combine_papay.mini_program": (
        "v3/ecommerce/combine-papay/contracts/pre-entrust-sign/mini-program",
        ["appid", "plan_id", "out_contract_code", "contract_display_account", "notify_url"],
    ),
    "password_exempt.ecommerce.pay_redirect_sign": (
        "v3/password-exempt-contract/contracts/ecommerce/pre-entrust-sign/pay-redirect-sign",
        ["appid", "service_id", "out_contract_code", "notify_url", "contract_display_account", "prepay_id", "openid"],
    ),
    "individual_contracts.real_name.mini_program": (
        "v3/ecommerce/individual-contracts/pre-entrust-sign-with-real-name-identity/mini-program",
        ["appid", "out_contract_code", "openid", "real_name", "cred_type", "cred_id", "Wechatpay-Serial"],
    ),
}
SAMPLE = [
    *SEEDS,
    "pay.transactions.jsapi",
    "pay.transactions.out_trade_no.get",
    "merchant.media.upload",
    "refund.domestic.refunds",
    "hk_refunds",
    "marketing.favor.users._openid_.coupons",
]


@pytest.fixture(scope="module")
def site() -> Iterator[Path]:
    """The built site, in a directory of its own (other pytest runs may prune pytest's numbered ones)."""
    out = Path(tempfile.mkdtemp(prefix="wechatpay-site-"))
    try:
        yield _build(out)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def _build(out: Path) -> Path:
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent)) or shutil.which("mkdocs")
    assert mkdocs, "mkdocs is a test dependency (pip install -e '.[test]')"
    result = subprocess.run(
        [mkdocs, "build", "--strict", "--quiet", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return out


def _text(site: Path, page: str) -> str:
    """A built page's text: tags dropped, entities decoded (code blocks come out as written)."""
    raw = (site / page / "index.html").read_text(encoding="utf-8")
    return html.unescape(re.sub(r"<[^>]+>", "", raw))


def test_every_operation_has_a_page_and_the_index_links_them(site: Path) -> None:
    pages = [p for p in (site / "reference").iterdir() if (p / "index.html").exists()]
    assert len(pages) == 1155  # 1,019 APIv3 and 136 APIv2 operations
    index = (site / "reference" / "index.html").read_text(encoding="utf-8")
    assert index.count('href="combine_papay.mini_program/"') == 1


@pytest.mark.parametrize("name", list(SEEDS))
def test_the_seed_pages(site: Path, name: str) -> None:
    path, fields = SEEDS[name]
    text = _text(site, f"reference/{name}")
    request = text[text.index("Request") : text.index("Calling it")]
    for field in fields:
        assert field in request
    for style in (
        f'engine.call("{name}"',
        f'engine.acall("{name}"',
        f"engine.{path.replace('/', '.')}",
        f'engine.chain("{path}")',
        f'engine["{path}"]',
    ):
        assert style.replace("-", "_") in text.replace("-", "_"), style
    assert text.count(".post(json=") == 3 and text.count(".apost(json=") == 3
    answer = text[text.index("Answer") :]
    assert all(field in answer for field in Registry([BUILTIN_ENDPOINTS]).get(name).response)


def test_nesting_encryption_and_enums_are_shown(site: Path) -> None:
    jsapi = _text(site, "reference/pay.transactions.jsapi")
    assert re.search(r"└ total\s*body\s*integer\s*yes", jsapi)
    real_name = _text(site, "reference/individual_contracts.real_name.mini_program")
    assert "encrypted" in real_name and "one of ID_CARD" in real_name


def test_the_guides_come_from_the_readme(site: Path) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for title in docgen.guide_titles(readme):
        page = _text(site, docgen.slug(title))
        assert title in page
    assert "./quickstart.sh" in _text(site, "quick-start")


@pytest.mark.parametrize("name", SAMPLE)
def test_the_examples_on_a_page_run_against_the_sandbox(
    name: str, identity: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = docgen.operation_page(name, Registry([BUILTIN_ENDPOINTS]).get(name))  # what pages() renders
    blocks = re.findall(r"```python\n(.*?)\n```", page, re.S)
    assert len(blocks) >= 2
    monkeypatch.chdir(tmp_path)
    (tmp_path / "example.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(16))
    # a query or action on an object the stateful sandbox does not hold answers 404 as WeChat Pay
    # does: the example still runs as written, and is sent
    stateful = needs_object(Registry([BUILTIN_ENDPOINTS]).get(name).id)
    with Engine.sandbox(identity=identity, load_entry_points=False) as engine:
        namespace = {"engine": engine, "Path": Path, "print": lambda *_: None}
        for block in blocks:
            with pytest.raises(ApiError) if stateful else contextlib.nullcontext():
                if "await " in block:
                    exec("async def _example():\n" + textwrap.indent(block, "    "), namespace)
                    asyncio.run(namespace["_example"]())
                else:
                    exec(block, namespace)
        assert len(engine.emulator.exchanges) == len(blocks)
