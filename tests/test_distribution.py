"""Packaging: what the wheel and the sdist carry, and the pytest plugin in other people's projects."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import textwrap
import zipfile
from pathlib import Path

import pytest
from wheelenv import user_environment

import engine

ROOT = Path(__file__).resolve().parent.parent


def _run_pytest(venv: Path, project: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=user_environment(),
    )


def _project(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text), encoding="utf-8")
    return root


def test_a_project_with_its_own_engine_package_runs_its_tests(wheel_venv: Path, tmp_path: Path) -> None:
    project = _project(
        tmp_path,
        {
            "engine/__init__.py": 'WHOSE = "the project\'s own"\n',
            "tests/test_own.py": """
            import engine

            def test_own_engine():
                assert engine.WHOSE == "the project's own"
            """,
        },
    )
    result = _run_pytest(wheel_venv, project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout and "Error while loading plugin" not in result.stderr


def test_a_fixture_there_says_what_shadows_the_engine(wheel_venv: Path, tmp_path: Path) -> None:
    project = _project(
        tmp_path,
        {
            "engine.py": "WHOSE = 'mine'\n",  # a module this time
            "tests/test_uses_fixture.py": """
            def test_wants_the_sandbox(wechatpay_sandbox):
                pass
            """,
        },
    )
    result = _run_pytest(wheel_venv, project)
    assert result.returncode != 0
    assert "this project's own engine package shadows it" in result.stdout + result.stderr


def test_the_fixtures_work_from_the_wheel(wheel_venv: Path, tmp_path: Path) -> None:
    project = _project(
        tmp_path,
        {
            "tests/test_pay.py": """
            import engine

            def test_sign_up(wechatpay_stubber, wechatpay_sandbox):
                assert "site-packages" in engine.__file__  # the wheel's engine, not the checkout's
                wechatpay_stubber.add_response("combine_papay.mini_program", {"pre_entrustweb_id": "x",
                    "mchid": "1", "plan_id": 1, "out_contract_code": "c"})
                answer = wechatpay_sandbox.call("combine_papay.mini_program", {"appid": "wx1", "plan_id": 1,
                    "out_contract_code": "c", "contract_display_account": "A", "notify_url": "https://x.example"})
                assert answer.data["pre_entrustweb_id"] == "x"
            """,
        },
    )
    result = _run_pytest(wheel_venv, project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def test_the_wheel_carries_licences_types_and_the_plugin(wheel_venv: Path) -> None:
    wheel = next((wheel_venv.parent / "dist").glob("*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
    assert {f"{info}/licenses/LICENSE", f"{info}/licenses/LICENSES/wechatpay-openapi.txt"} <= names
    assert {
        "engine/py.typed",
        "engine/types/__init__.pyi",
        "engine/types/_calls.pyi",
        "engine/types/_chain.pyi",
        "engine/endpoints/aliases.yaml",
        "wechatpay_engine_pytest.py",
    } <= names
    assert not any(n.startswith(("tools/", "tests/")) for n in names)
    metadata = zipfile.ZipFile(wheel).read(f"{info}/METADATA").decode()
    assert "Classifier: Typing :: Typed" in metadata and "Project-URL: Changelog" in metadata
    entry_points = zipfile.ZipFile(wheel).read(f"{info}/entry_points.txt").decode()
    assert "wechatpay = wechatpay_engine_pytest" in entry_points


def test_the_sdist_carries_licences_and_changelog(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--no-isolation", "--outdir", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    sdist = next(tmp_path.glob("*.tar.gz"))
    with tarfile.open(sdist) as archive:
        names = {n.split("/", 1)[1] for n in archive.getnames() if "/" in n}
    assert {"LICENSE", "LICENSES/wechatpay-openapi.txt", "CHANGELOG.md", "engine/types/__init__.pyi"} <= names


def test_the_changelog_names_the_current_version() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert f"## [{engine.__version__}]" in changelog
    catalogue_licence = (ROOT / "LICENSES" / "wechatpay-openapi.txt").read_text(encoding="utf-8")
    assert "TheNorthMemory" in catalogue_licence and "MIT" in (ROOT / "LICENSE").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", ["engine.pytest_plugin", "wechatpay_engine_pytest"])
def test_both_plugin_names_offer_the_fixtures(name: str) -> None:
    module = __import__(name, fromlist=["wechatpay_sandbox"])
    assert callable(module.wechatpay_sandbox) and callable(module.wechatpay_stubber)
