"""Shared helpers: write inline YAML specs to files, compile them, run the CLI."""

from __future__ import annotations

import atexit
import subprocess
import sys
import textwrap
from collections.abc import Callable
from functools import cache
from pathlib import Path

import pytest

from archspec.compiler import compile_spec
from archspec.errors import SpecError
from archspec.ir import Graph, Node


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--nightly",
        action="store_true",
        help="also run the exhaustive tests marked nightly (large networks at full size)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "nightly: exhaustive; run by scripts/nightly.sh only")


def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:
    if config.getoption("--nightly"):
        return
    skip = pytest.mark.skip(reason="nightly (python -m pytest --nightly -m nightly)")
    for item in items:
        if "nightly" in item.keywords:
            item.add_marker(skip)


# The smallest valid header: most inline specs start with it.
HEAD = "name: Net\ninput: {channels: 3, height: 8, width: 8}\n"


def clean(text: str) -> str:
    """Dedent an inline YAML string and drop its leading newline, so line 1 is line 1."""
    return textwrap.dedent(text).lstrip("\n")


@pytest.fixture
def write_spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """Write a spec (str, dedented; or bytes, verbatim) to tmp_path/NAME and return its path.

    The working directory is tmp_path, so messages name files as `spec.yaml:L:C`.
    """
    monkeypatch.chdir(tmp_path)

    def write(text: str | bytes, name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(clean(text))
        return path

    return write


@pytest.fixture
def compile_yaml(write_spec) -> Callable[..., Graph]:
    """Write a spec (to spec.yaml or NAME) and compile it, with optional overrides / input."""

    def compile_(text: str | bytes, overrides=None, input_shape=None, name="spec.yaml") -> Graph:
        return compile_spec(write_spec(text, name), overrides, input_shape)

    return compile_


@pytest.fixture
def compile_error(compile_yaml) -> Callable[..., str]:
    """Compile a spec that must fail; return the error text (`file:line:col: error: ...`)."""

    def compile_(text: str | bytes, overrides=None, input_shape=None) -> str:
        with pytest.raises(SpecError) as info:
            compile_yaml(text, overrides, input_shape)
        return str(info.value)

    return compile_


def by_path(graph: Graph) -> dict[str, Node]:
    """The graph's op nodes keyed by module path."""
    return {node.path: node for node in graph.nodes}


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run `python -m archspec.cli ARGS` in `cwd`, capturing text output."""
    return subprocess.run(
        [sys.executable, "-m", "archspec.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
    )


@cache
def check_workers():
    """One pool of framework workers (`archspec check`'s) shared by the whole session."""
    from archspec.runner import Workers

    pool = Workers()
    atexit.register(pool.__exit__)
    return pool


def convert_on_shared_workers(spec: Path, overrides: dict, src_fw: str, src, dst_fw: str, dst):
    """`archspec convert SPEC --set ... --from SRC_FW SRC --to DST_FW DST`, run as the command
    runs it but on the session's shared framework workers (no process, no framework import
    per conversion); the command's own messages and exit statuses are tested in
    test_attack_checkpoints.py and test_safetensors.py."""
    from archspec.backend import available
    from archspec.convert import convert

    backends = available()
    graph = compile_spec(Path(spec), dict(overrides))
    return convert(graph, backends[src_fw], Path(src), backends[dst_fw], Path(dst), check_workers())
