"""`archspec build` imports what building needs and nothing else (its start-up is its cost).

A structural test, not a timing one: which modules a whole `archspec build` process has
loaded. `scripts/benchmark.py` measures the time.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# run the command in a fresh interpreter, then list what it imported and which source
# files it read as text (inspect and pydantic's docstring reading go through linecache)
PROBE = """
import json, linecache, sys
from archspec.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    assert not exc.code, exc.code
print(json.dumps({"modules": sorted(sys.modules), "read": sorted(linecache.cache)}))
"""
# other commands' modules, rich (tables, progress bars) and every framework
NOT_FOR_BUILD = (
    "archspec.analysis",
    "archspec.api",
    "archspec.check",
    "archspec.checkpoint",
    "archspec.convert",
    "archspec.graph",
    "archspec.report",
    "archspec.runner",
    "archspec.schema",
    "archspec.worker",
    "mindspore",
    "numpy",
    "paddle",
    "rich",
    "safetensors",
    "torch",
)


def probe(*args: str, cwd: Path) -> dict[str, list[str]]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args], cwd=cwd, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def unwanted(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in NOT_FOR_BUILD or m in NOT_FOR_BUILD)


@pytest.mark.parametrize("backend", ["torch", "paddle", "mindspore"])
def test_build_imports_only_what_it_needs(tmp_path, backend):
    spec = ROOT / "specs" / "resnet50.yaml"
    found = probe("build", str(spec), "--backend", backend, "--out", "out", cwd=tmp_path)
    assert (tmp_path / "out" / backend / "resnet50.py").is_file()
    assert unwanted(set(found["modules"])) == []


def test_validating_a_spec_reads_no_python_source(tmp_path):
    found = probe("validate", str(ROOT / "specs" / "resnet18.yaml"), cwd=tmp_path)
    assert "archspec.spec" in found["modules"]
    # the field docstrings of spec.py are read for `archspec schema` only
    assert [f for f in found["read"] if f.endswith(".py")] == []
