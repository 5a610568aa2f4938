"""Project rules: no framework imported by the front end, no network family in the compiler."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FRAMEWORKS = ("torch", "paddle", "mindspore", "tensorflow", "jax")


@pytest.mark.parametrize("command", [["validate"], ["summary", "--json"]])
def test_front_end_imports_no_framework(command):
    specs = sorted(str(p) for p in (ROOT / "specs").glob("*.yaml"))
    args = [*command, *(specs if command == ["validate"] else specs[:1])]
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "archspec.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    imported = {
        line.split("|")[-1].strip().split(".")[0]
        for line in proc.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "archspec" in imported
    assert imported.isdisjoint(FRAMEWORKS), imported & set(FRAMEWORKS)


def test_no_network_family_in_compiler_or_backends():
    families = [
        r"resne(x)?t",
        r"asymm(?!etric)",  # AsymmNet; "asymmetric" padding is a generic word
        "bottleneck",
        "mobilenet",
        "efficientnet",
        "mbconv",
        "convnext",
        "shufflenet",
        r"\bvit\b",
        "swin",
        "regnet",
        "densenet",
    ]
    pattern = re.compile("|".join(families), re.IGNORECASE)
    hits = [
        f"{path.relative_to(ROOT)}:{n}"
        for folder in ("archspec", "backends")
        for path in sorted((ROOT / folder).rglob("*"))
        if path.is_file() and path.suffix in {".py", ".j2", ".yaml", ".toml", ".md", ".txt"}
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert hits == []
