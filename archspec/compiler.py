"""The front end in one call: path -> loaded document -> validated spec -> bound graph."""

from __future__ import annotations

import gc
import math
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from archspec.errors import SpecError, reset_hints
from archspec.ir import Graph, bind
from archspec.load import load_document
from archspec.spec import NetworkSpec, validate_document


def load_spec(path: str | Path) -> NetworkSpec:
    """Load and validate one spec file (with what it extends)."""
    with front_end():
        return validate_document(load_document(Path(path)))


@contextmanager
def front_end() -> Iterator[None]:
    """One compile: hints get their budget, and the cyclic garbage collector waits.

    Compiling makes many long-lived objects and almost no cycles; collecting while they
    are made rescans them over and over (half the time of a large spec, for nothing).
    """
    reset_hints()
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def compile_spec(
    path: str | Path,
    overrides: Mapping[str, Any] | None = None,
    input_shape: tuple[int, ...] | None = None,
) -> Graph:
    """Load, validate and bind a spec into its IR graph, within the size limits."""
    with front_end():
        graph = bind(load_spec(path), overrides, input_shape)
        check_limits(graph)
    return graph


def limits() -> tuple[int, int]:
    """Largest network accepted: parameters and activation elements per sample.

    Set with ARCHSPEC_MAX_PARAMS and ARCHSPEC_MAX_ACTIVATIONS; the defaults (10^10 each,
    40 GB in float32) are far above any real network and far below a typo's 10^15.
    """
    return (
        int(os.environ.get("ARCHSPEC_MAX_PARAMS", 10**10)),
        int(os.environ.get("ARCHSPEC_MAX_ACTIVATIONS", 10**10)),
    )


def check_limits(graph: Graph) -> None:
    """Refuse, before any framework allocates memory, a network beyond the limits."""
    max_params, max_activations = limits()
    params = sum(
        math.prod(s) for n in graph.nodes for s in (*n.params.values(), *n.buffers.values())
    )
    activations = sum(math.prod(s) for n in graph.nodes for s in n.outputs)
    problems = []
    if params > max_params:
        problems.append(
            f"{params:,} parameters, more than the limit of {max_params:,} (ARCHSPEC_MAX_PARAMS)"
        )
    if activations > max_activations:
        problems.append(
            f"{activations:,} activation values per sample, more than the limit "
            f"of {max_activations:,} (ARCHSPEC_MAX_ACTIVATIONS)"
        )
    if problems:
        raise SpecError.at(graph.spec.pos, f"network too large: {'; '.join(problems)}")
