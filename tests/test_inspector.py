"""The inspector page, rendered by a real headless Chromium (the Debian package, through chromedriver).

The screenshot of the page is kept as a test artifact: tests/artifacts/inspector.png (git-ignored).
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from conftest import COMBINE_PAPAY, PATIENCE, REAL_NAME

from engine import ApiError, Engine
from engine.keys import private_pem
from engine.sandbox import Sandbox, SandboxIdentity
from engine.sandbox.server import ServerThread

ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
LAUNCH_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)


@pytest.fixture(scope="module")
def served(identity: SandboxIdentity) -> Iterator[ServerThread]:
    with ServerThread(Sandbox(identity)) as server:
        yield server


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    assert shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER), "quickstart.sh installs chromium and chromium-driver"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*LAUNCH_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,1800"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def wait_for(condition: Callable[[], Any], seconds: float = PATIENCE) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("the page never showed it")


ROWS = """return Array.from(document.querySelectorAll('#exchanges tr.exchange'))
  .map(row => [row.dataset.path, row.querySelector('[data-verification]').textContent]);"""


def rows(browser: Any) -> dict[str, str]:
    """Each rendered exchange's path and verification, read in one script (the page re-renders live)."""
    return dict(browser.execute_script(ROWS))


def test_the_page_shows_each_call_its_verification_and_nothing_secret(
    served: ServerThread, identity: SandboxIdentity, browser: Any
) -> None:
    engine = Engine(**identity.engine_settings(), base_url=served.base_url, load_entry_points=False)
    stranger = SandboxIdentity.generate()  # signs with a key the sandbox does not know
    forger = Engine(
        **{**identity.engine_settings(), "private_key": stranger.merchant_key},
        base_url=served.base_url,
        load_entry_points=False,
    )
    with engine, forger:
        engine.call("combine_papay.mini_program", COMBINE_PAPAY)
        engine.call("individual_contracts.real_name.mini_program", REAL_NAME)
        with pytest.raises(ApiError):
            forger.call("v3.pay.transactions.out_trade_no._out_trade_no_.get", {"out_trade_no": "X", "mchid": "1"})
        browser.get(served.base_url + "/sandbox/")
        seen = wait_for(lambda: len(rows(browser)) >= 3 and rows(browser))
        assert seen["/v3/ecommerce/combine-papay/contracts/pre-entrust-sign/mini-program"] == "verified"
        assert seen["/v3/ecommerce/individual-contracts/pre-entrust-sign-with-real-name-identity/mini-program"] == (
            "verified"
        )
        assert seen["/v3/pay/transactions/out-trade-no/X"].startswith("signature does not match")
        engine.call("v3.security.echo.post", {"echo_message": "live", "encrypted_echo_message": "秘密的回显"})
        live = wait_for(lambda: "/v3/security/echo" in rows(browser) and rows(browser))  # no reload: the stream
        assert live["/v3/security/echo"] == "verified"
    text = browser.execute_script("return document.body.textContent")
    assert "characters of ciphertext" in text and "masked (3 characters)" in text and "masked (18 characters)" in text
    browser.execute_script("document.querySelectorAll('#exchanges details').forEach(d => { d.open = true; })")
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "inspector.png"))
    page = browser.page_source
    secrets = [REAL_NAME["real_name"], REAL_NAME["cred_id"], "秘密的回显", identity.apiv3_key.decode()]
    secrets += [line for line in private_pem(identity.merchant_key).decode().splitlines()[1:-1]][:3]
    assert [s for s in secrets if s in page] == []


def test_the_page_needs_no_external_asset(served: ServerThread) -> None:
    with urllib.request.urlopen(served.base_url + "/sandbox/") as answer:
        page = answer.read().decode("utf-8")
    assert answer.headers["Content-Type"].startswith("text/html")
    assert "http://" not in page and "https://" not in page and "//cdn" not in page
    assert "<script src" not in page and 'rel="stylesheet"' not in page and '<link rel="icon" href="data:,">' in page


def test_the_state_holds_objects_and_callbacks_with_secrets_masked(served: ServerThread, identity) -> None:
    with Engine(**identity.engine_settings(), base_url=served.base_url, load_entry_points=False) as engine:
        engine.call("individual_contracts.real_name.mini_program", {**REAL_NAME, "out_contract_code": "RN-2"})
    with urllib.request.urlopen(served.base_url + "/sandbox/state") as answer:
        state = json.loads(answer.read())
    (contract,) = [o for o in state["objects"] if o["number"] == "RN-2"]
    assert contract["state"] == "PRE_SIGN" and contract["fields"]["cred_id"] == "masked (18 characters)"
    assert REAL_NAME["cred_id"] not in json.dumps(state, ensure_ascii=False)
