"""Meta-tests keeping code, data and docs honest with each other."""

from __future__ import annotations

import ast
import inspect
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

import engine
from engine import Engine, SignatureError, ValidationError, hookspecs
from engine.examples import example_headers, example_payload
from engine.registry import BUILTIN_ENDPOINTS, Registry
from engine.sandbox.flows import needs_object

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
HOOKS = sorted(name for name in dir(hookspecs) if name.startswith("wxpay_"))


def test_all_is_complete_and_resolvable() -> None:
    loaded = {n for n, v in vars(engine).items() if not n.startswith("_") and not inspect.ismodule(v)}
    public = loaded | set(engine._LAZY)  # callback types load at first use
    assert set(engine.__all__) - {"__version__"} == public
    assert public <= set(dir(engine))
    for name in engine.__all__:
        assert hasattr(engine, name)


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented(hook: str) -> None:
    spec = getattr(hookspecs, hook)
    assert spec.__doc__
    signature = f"{hook}({', '.join(inspect.signature(spec).parameters)})"
    assert signature in README, f"README lacks the signature {signature}"


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_test(hook: str) -> None:
    tests = (ROOT / "tests" / "test_hooks.py").read_text(encoding="utf-8")
    assert f"def test_hook_{hook}(" in tests


def _sources() -> list[Path]:
    return sorted([*ROOT.glob("engine/**/*.py"), *ROOT.glob("plugins/*.py"), *ROOT.glob("endpoints/*.py")])


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_module_opens_with_a_docstring(path: Path) -> None:
    assert ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))), f"{path} has no module docstring"


def test_lint_is_clean() -> None:
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    assert ruff, "ruff is a test dependency"
    # --no-cache: a cached verdict can hide what a fresh checkout would show (import order across symlinks)
    result = subprocess.run([ruff, "check", "--no-cache", str(ROOT)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout


def test_formatting_is_clean() -> None:
    """One layout everywhere (``ruff format``, pyproject's line length), so a diff shows changes, not reflows."""
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    assert ruff, "ruff is a test dependency"
    result = subprocess.run(
        [ruff, "format", "--check", "--no-cache", str(ROOT)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout[-4000:]


def test_types_are_strict_clean() -> None:
    """``mypy --strict`` (pyproject's [tool.mypy]) over engine/, its plugins and its sandbox."""
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "engine"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout[-4000:]


BUILTINS = Registry([BUILTIN_ENDPOINTS])
BUILTIN_IDS = BUILTINS.ids()
# Descriptors the sandbox cannot round-trip yet, each with the reason: engine limitations to fix.
# WeChat Pay does not sign bill files: through engine.call that answer is refused (tested below);
# bills are fetched with engine.download, which checks the digest from the verified step 1.
SANDBOX_LIMITS = {"v3.billdownload.file.get": "unsigned by design; see test_bill_file_is_refused_by_call"}
# Calls about an object that must exist first answer 404 for the example's number, as WeChat Pay
# does: tests/test_sandbox_objects.py creates the object and round-trips each of them.
SANDBOX_LIMITS.update({i: "stateful: needs an object first" for i in BUILTIN_IDS if needs_object(i)})
ROUND_TRIP_IDS = [i for i in BUILTIN_IDS if i not in SANDBOX_LIMITS]
# Nothing to drop: descriptors whose payload has no required field.
REQUIRING_IDS = [i for i in BUILTIN_IDS if example_payload(BUILTINS.get(i))]


@pytest.fixture(scope="module")
def builtin_engine(identity) -> Iterator[Engine]:
    """One sandbox engine for every descriptor case: building one per case is most of the cost."""
    engine = Engine.sandbox(identity=identity, load_entry_points=False)
    yield engine
    engine.close()


@pytest.mark.parametrize("endpoint_id", ROUND_TRIP_IDS)
def test_every_builtin_descriptor_round_trips(builtin_engine: Engine, endpoint_id: str) -> None:
    engine = builtin_engine
    engine.emulator.exchanges.clear()
    engine.emulator.world.clear()  # example payloads share numbers: each create starts afresh
    descriptor = engine.endpoint(endpoint_id)
    payload = example_payload(descriptor)
    response = engine.call(endpoint_id, payload, headers=example_headers(descriptor))
    if descriptor.signed_answer:
        assert 200 <= response.status < 300 and response.verified_with
    else:  # unsigned by the descriptor's trait (APIv2 red packets, bills...): no verification is attempted
        assert response.status in (200, 302) and response.verified_with is None
    served = engine.endpoint(engine.emulator.last.endpoint_id or endpoint_id)
    if served.protocol == "v2":  # the wire also carries what the engine filled in (mch_id, nonce_str, sign...)
        received = engine.emulator.last.payload
        assert {name: received[name] for name in payload} == payload
        assert set(received) - set(payload) <= set(descriptor.fills)
    elif served.id == endpoint_id:
        assert engine.emulator.last.payload == payload
    else:  # a twin template (/x/{business_code} vs /x/{applyment_id}): no request can tell them apart
        assert re.sub(r"{[^}]+}", "{}", served.path) == re.sub(r"{[^}]+}", "{}", descriptor.path)
        assert list(engine.emulator.last.payload.values()) == list(payload.values())
    answered = response.data if isinstance(response.data, dict) else {}  # bills and pages answer text
    for name, field in descriptor.response.items():
        if field.required and answered:
            assert name.replace("$n", "0") in answered  # APIv2's numbered fields (refund_id_$n): the first


@pytest.mark.parametrize("endpoint_id", REQUIRING_IDS)
def test_every_builtin_descriptor_refuses_a_missing_required_field(builtin_engine: Engine, endpoint_id: str) -> None:
    engine = builtin_engine
    engine.emulator.exchanges.clear()
    descriptor = engine.endpoint(endpoint_id)
    payload = example_payload(descriptor)
    dropped = sorted(payload)[0]
    del payload[dropped]
    with pytest.raises(ValidationError) as caught:
        engine.call(endpoint_id, payload, headers=example_headers(descriptor))
    group = next((g for g in descriptor.one_of if dropped in g), None)
    if group is None:
        assert caught.value.errors == (f"missing required field @ $.{dropped}",)
    else:  # transaction_id or out_trade_no: exactly one of them
        assert caught.value.errors == (f"missing one of {', '.join(group)} (give exactly one) @ $",)
    assert engine.emulator.exchanges == []


PYTHON_BLOCK = re.compile(r"```python\n(.*?)```", re.S)


@pytest.mark.parametrize("index", range(len(PYTHON_BLOCK.findall(README))))
def test_readme_python_examples_run_as_written(index: int, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    code = PYTHON_BLOCK.findall(README)[index]
    exec(compile(code, f"README.md python block {index}", "exec"), {"__name__": f"readme_{index}"})


DISCOVERY = re.findall(r"(?m)^\.venv/bin/wechatpay (endpoints .+)$", README)


@pytest.mark.parametrize("command", DISCOVERY)
def test_readme_discovery_examples_run_as_written(command: str) -> None:
    script = Path(sys.executable).with_name("wechatpay")
    result = subprocess.run(
        [str(script), *shlex.split(command)], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0 and result.stdout.strip(), result.stderr
    if "--json" in command:
        assert json.loads(result.stdout)
    else:
        assert result.stdout.split()[0] in ("name", "combine_papay.mini_program", "pay.transactions.out_trade_no.get")


def test_readme_discovery_examples_cover_grep_json_and_show() -> None:
    assert len(DISCOVERY) >= 6
    assert any("--grep 退款" in c for c in DISCOVERY) and any("list" in c and "--json" in c for c in DISCOVERY)
    assert any("show" in c and "--json" in c for c in DISCOVERY)


def test_readme_test_command_is_what_ci_runs() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    command = re.search(r"`(\.venv/bin/python -m pytest[^`]*)`", README)
    assert command and command.group(1) in ci
    assert "./quickstart.sh" in README and "./quickstart.sh" in ci


def test_engine_class_is_importable_without_side_effects() -> None:
    script = "import engine, logging, sys; assert not logging.getLogger('engine.calls').handlers; print('ok')"
    assert subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout == "ok\n"
    assert Engine.__doc__


def test_bill_file_is_refused_by_call(builtin_engine: Engine) -> None:
    step_one = builtin_engine.call("v3.bill.tradebill.get", {"bill_date": "2026-11-21"})
    token = step_one.data["download_url"].split("token=")[1]
    with pytest.raises(SignatureError) as caught:
        builtin_engine.call("v3.billdownload.file.get", {"token": token})
    assert caught.value.reason == "missing_header"  # the file came back, unsigned, and was withheld


def test_host_family_descriptor_goes_to_its_host(builtin_engine: Engine) -> None:
    from engine.pipeline import Settings

    descriptor = builtin_engine.endpoint("hk.v3.global.certificates.get")
    assert descriptor.host == "hk"
    production = Settings("https://api.mch.weixin.qq.com", "ua", hosts={"hk": "https://apihk.mch.weixin.qq.com"})
    assert production.base_url_for(descriptor) == "https://apihk.mch.weixin.qq.com"
    assert builtin_engine.call("hk.v3.global.certificates.get", example_payload(descriptor)).status == 200
