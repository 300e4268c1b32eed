"""A fresh venv holding the engine installed from its wheel, as a user gets it (tests and bench/typecheck.py).

Its own site-packages holds only the wheel (``pip install --no-deps``); the calling environment's
site-packages is appended by a ``.pth`` line for the dependencies, and the editable install's
finder there stays inactive (a ``.pth`` line adds a path, it does not run that path's ``.pth`` files).
Building, installing and whatever the tests run in that venv use ``user_environment()``: without
``PYTHONPATH``. With it pointing at a checkout (``PYTHONPATH=worktree pytest``), pip took the
checkout's ``egg-info`` for an installed engine and skipped the wheel, and the venv imported the
checkout's ``engine``: the wheel was never tested.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def user_environment() -> dict[str, str]:
    """This process's environment as a user of the wheel has it: no ``PYTHONPATH`` pointing at a checkout."""
    return {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}


def install_wheel(work: Path) -> Path:
    """Build the wheel into ``work/dist`` and install it into the venv ``work/venv``; return the venv."""
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(work / "dist"), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
        env=user_environment(),
    )
    wheel = next((work / "dist").glob("wechatpay_engine-*.whl"))
    venv = work / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120, env=user_environment()
    )
    python = venv / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
        env=user_environment(),
    ).stdout.strip()
    base = next(p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir())
    (Path(site) / "_test_environment.pth").write_text(base + "\n", encoding="utf-8")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=300,
        env=user_environment(),
    )
    return venv
