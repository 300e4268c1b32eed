"""MkDocs hook: add the generated pages (tools/docgen.py) to the site as it builds; nothing is written to docs/."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import docgen  # noqa: E402


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    for path, content in docgen.pages().items():
        files.append(File.generated(config, path, content=content))
    return files
