"""The generated types: up to date, free at run time, and what mypy --strict and pyright strict make of user code.

The type checkers run on tests/typing/ against the engine installed from the wheel (``wheel_venv``),
as a user's project sees it. Their timings are recorded in BENCHMARKS.md, not asserted.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "tests" / "typing"
sys.path.insert(0, str(ROOT / "tools"))

import typegen  # noqa: E402  (tools/typegen.py)
from wheelenv import user_environment  # noqa: E402

BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(BIN)) or shutil.which(name)
    assert found, f"{name} is a test dependency (pip install -e '.[test]')"
    return found


def test_the_committed_stubs_are_the_generators_output() -> None:
    for name, text in typegen.generate().items():
        assert (ROOT / "engine" / "types" / name).read_text(encoding="utf-8") == text, "run: python tools/typegen.py"


def test_import_engine_imports_no_generated_types() -> None:
    code = "import sys, engine; print([m for m in sys.modules if m.startswith('engine.types')])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_types_exist_at_run_time_as_dict() -> None:
    from engine import types

    assert types.CombinePapayMiniProgramPayload is dict
    assert types.PayTransactionsJsapiPayloadAmount(total=1) == {"total": 1}
    with pytest.raises(AttributeError, match="did you mean CombinePapayMiniProgramPayload"):
        types.CombinePapayMiniProgramPayloda  # noqa: B018


def test_every_operation_has_its_overload_under_both_names() -> None:
    from engine.registry import BUILTIN_ENDPOINTS, Registry

    registry = Registry([BUILTIN_ENDPOINTS])
    calls = (ROOT / "engine" / "types" / "_calls.pyi").read_text(encoding="utf-8")
    call = calls[: calls.index("class ACall")]
    for name, endpoint_id in registry.aliases().items():
        assert f"Literal[{endpoint_id!r}, {name!r}]" in call


@pytest.fixture(scope="module")
def samples(wheel_venv: Path) -> Path:
    """The sample scripts, copied where no ``engine/`` directory sits beside them."""
    where = wheel_venv.parent / "typing"
    where.mkdir(exist_ok=True)
    for script in SAMPLES.glob("*.py"):
        shutil.copy(script, where / script.name)
    return where


def _lines_with(output: str, script: str, pattern: str) -> set[int]:
    """Line numbers of ``script`` on which the output reports an error matching ``pattern``."""
    found = set()
    # pyright indents the lines that explain an error with no-break spaces
    for match in re.finditer(rf"{script}:(\d+)(?::\d+)?:? ?-? ?error: (.*(?:\n[ \u00a0]{{3,}}.*)*)", output):
        if re.search(pattern, match.group(2)):
            found.add(int(match.group(1)))
    return found


def test_mypy_strict(wheel_venv: Path, samples: Path) -> None:
    result = subprocess.run(
        [
            _tool("mypy"),
            "--strict",
            "--python-executable",
            str(wheel_venv / "bin" / "python"),
            "--cache-dir",
            str(samples / ".mypy_cache"),
            "ten_operations.py",
            "wrong_payloads.py",
        ],
        cwd=samples,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env=user_environment(),
    )
    out = result.stdout
    assert "ten_operations.py" not in out.replace("wrong_payloads.py", ""), out[:3000]
    # The call form: flagged (mypy says no overload matches, without naming the field) ...
    assert _lines_with(out, "wrong_payloads.py", "No overload variant") == {21, 31}
    # ... the chain form and annotated payloads: flagged with the field's name.
    assert _lines_with(out, "wrong_payloads.py", 'TypedDict item "plan_id" has type "int"') == {38, 57}
    assert _lines_with(out, "wrong_payloads.py", 'Extra key "plan_idd"') == {45}


def test_pyright_strict(wheel_venv: Path, samples: Path) -> None:
    config = {
        "typeCheckingMode": "strict",
        "venvPath": str(wheel_venv.parent),
        "venv": wheel_venv.name,
        "pythonVersion": f"{sys.version_info.major}.{sys.version_info.minor}",
    }
    (samples / "pyrightconfig.json").write_text(json.dumps(config), encoding="utf-8")
    result = subprocess.run(
        [_tool("basedpyright"), "ten_operations.py", "wrong_payloads.py"],
        cwd=samples,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env=user_environment(),
    )
    out = result.stdout
    assert "ten_operations.py:" not in out, out[:3000]
    # Every form is flagged with the field's name: the call form too.
    assert _lines_with(out, "wrong_payloads.py", r'"Literal\[\'12535\'\]" is not assignable to "int"') == {25, 38, 57}
    assert _lines_with(out, "wrong_payloads.py", '"plan_idd" is an undefined item') == {31, 51}


def test_the_ten_operations_script_runs(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(SAMPLES / "ten_operations.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
