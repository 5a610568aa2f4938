"""The front end in one call: path -> loaded document -> validated spec -> bound graph."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from archspec.ir import Graph, bind
from archspec.load import load_document
from archspec.spec import NetworkSpec, validate_document


def load_spec(path: str | Path) -> NetworkSpec:
    """Load and validate one spec file (with what it extends)."""
    return validate_document(load_document(Path(path)))


def compile_spec(
    path: str | Path,
    overrides: Mapping[str, Any] | None = None,
    input_shape: tuple[int, ...] | None = None,
) -> Graph:
    """Load, validate and bind a spec into its IR graph."""
    return bind(load_spec(path), overrides, input_shape)
