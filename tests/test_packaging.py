"""The wheel holds the runtime package only, as real files; a checkout imports as that package.

The wheel is built once per session with the ordinary client (``pip wheel``, no build isolation, so
no index is needed: ``setuptools`` comes from the test extra) from a copy of the files it is built
from, so that nothing is written into the checkout and no stale ``build/`` can leak into it.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parent.parent
BUILT_FROM = ("pyproject.toml", "README.md", "engine", "plugins", "endpoints")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[zipfile.ZipFile]:
    source = tmp_path_factory.mktemp("source")
    for name in BUILT_FROM:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, source / name)
    out = tmp_path_factory.mktemp("dist")
    command = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", out, source]
    subprocess.run(command, check=True, capture_output=True, text=True)
    (built,) = out.glob("wechatpay_engine-*.whl")
    with zipfile.ZipFile(built) as archive:
        yield archive


def _names(wheel: zipfile.ZipFile, folder: str, suffix: str) -> set[str]:
    return {n.removeprefix(folder) for n in wheel.namelist() if n.startswith(folder) and n.endswith(suffix)}


def test_the_wheel_carries_the_package_its_plugins_its_descriptors_and_py_typed(wheel: zipfile.ZipFile) -> None:
    assert "engine/py.typed" in wheel.namelist()
    assert _names(wheel, "engine/plugins/", ".py") == {p.name for p in (ROOT / "plugins").glob("*.py")}
    assert _names(wheel, "engine/endpoints/", ".yaml") == {p.name for p in (ROOT / "endpoints").glob("*.yaml")}
    assert "engine/endpoints/__init__.py" in wheel.namelist() and "engine/sandbox/emulator.py" in wheel.namelist()
    assert _names(wheel, "engine/v2/", ".py") == {p.name for p in (ROOT / "engine" / "v2").glob("*.py")}


def test_the_wheel_holds_nothing_but_the_runtime_package(wheel: zipfile.ZipFile) -> None:
    tops = {name.split("/")[0] for name in wheel.namelist()}
    assert tops == {"engine", "wechatpay_engine-0.1.0.dist-info"}
    assert not [n for n in wheel.namelist() if "catalogue" in n or n.startswith("tools/")]
    links = [info.filename for info in wheel.infolist() if stat.S_ISLNK(info.external_attr >> 16)]
    assert links == []  # the checkout's engine/plugins and engine/endpoints links became real files


def test_the_wheel_states_the_pythons_it_is_tested_on(wheel: zipfile.ZipFile) -> None:
    metadata = Parser().parsestr(wheel.read("wechatpay_engine-0.1.0.dist-info/METADATA").decode())
    assert metadata["Requires-Python"] == ">=3.11"
    pythons = [c for c in metadata.get_all("Classifier") if c.startswith("Programming Language :: Python :: 3.")]
    assert pythons and all(c.rsplit(" ", 1)[1] in {"3.11", "3.12", "3.13"} for c in pythons)
    assert f"{sys.version_info.major}.{sys.version_info.minor}" in {c.rsplit(" ", 1)[1] for c in pythons}


@pytest.mark.parametrize("name", ["plugins", "endpoints"])
def test_the_checkout_links_the_package_to_the_top_level_folders(name: str) -> None:
    link = ROOT / "engine" / name
    assert link.is_symlink() and os.readlink(link) == f"../{name}"  # relative: valid in any clone
    assert link.resolve() == (ROOT / name).resolve()
