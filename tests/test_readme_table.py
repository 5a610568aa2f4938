"""The README's table of bundled specs is what `scripts/spec_table.py` prints from the specs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_table_is_the_specs_own_figures():
    table = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "spec_table.py")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert table.count("\n") == 2 + len(list((ROOT / "specs").glob("*.yaml")))
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert table in readme, "README's table is stale: paste `python scripts/spec_table.py`"
