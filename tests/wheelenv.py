"""A fresh venv holding the engine installed from its wheel, as a user gets it (tests and bench/typecheck.py).

Its own site-packages holds only the wheel (``pip install --no-deps``); the calling environment's
site-packages is appended by a ``.pth`` line for the dependencies, and the editable install's
finder there stays inactive (a ``.pth`` line adds a path, it does not run that path's ``.pth`` files).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def install_wheel(work: Path) -> Path:
    """Build the wheel into ``work/dist`` and install it into the venv ``work/venv``; return the venv."""
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(work / "dist"), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )
    wheel = next((work / "dist").glob("wechatpay_engine-*.whl"))
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    base = next(p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir())
    (Path(site) / "_test_environment.pth").write_text(base + "\n", encoding="utf-8")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps", "--no-index",
         str(wheel)],
        check=True, capture_output=True, timeout=300,
    )
    return venv
