"""The public Python API: what the `archspec` command does, as functions.

    import archspec

    graph = archspec.compile_spec("my_net.yaml", {"num_classes": 10})
    figures = archspec.summary(graph)                  # .trainable, .bn_stats, .macs, .layers
    source = archspec.emit_module(graph, "torch")      # one generated module, as text
    archspec.build_modules(["my_net.yaml"], backend="paddle", out="generated")
    report = archspec.check_spec("my_net.yaml", input_shape=(3, 64, 64))  # .ok
    archspec.convert_checkpoint("my_net.yaml", "torch", "in.pt", "mindspore", "o.ckpt")

Errors in a spec raise `archspec.SpecError`, whose `str()` is the located message the
command prints. Nothing here imports a deep-learning framework: `check` and `convert`
run each framework in a worker process of its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archspec.analysis import Summary, summarize
from archspec.backend import available, pick
from archspec.build import PathLike, planned_outputs, render, write_all
from archspec.compiler import compile_spec
from archspec.errors import SpecError
from archspec.ir import Graph


def backends() -> list[str]:
    """The names of the available backends, the reference (`check`'s first) first."""
    return list(available())


def summary(
    spec: PathLike | Graph,
    overrides: Mapping[str, Any] | None = None,
    input_shape: tuple[int, ...] | None = None,
    depth: int | None = None,
) -> Summary:
    """Per-layer and total parameters, BN statistics and MACs of a spec (or a bound graph).

    `depth` folds the module tree below that depth into one row per block (as torchinfo).
    """
    graph = spec if isinstance(spec, Graph) else compile_spec(spec, overrides, input_shape)
    return summarize(graph, depth)


def emit_module(graph: Graph, backend: str, overrides: Mapping[str, Any] | None = None) -> str:
    """The source of the module `build` writes for one backend."""
    (chosen,) = pick(backend)
    return render(graph, Path(graph.spec.pos.file or graph.name), chosen, overrides or {})


@dataclass
class Built:
    """What `build` did."""

    written: list[Path]
    unchanged: list[Path]


def build_modules(
    specs: Sequence[PathLike],
    backend: str | Iterable[str] | None = "all",
    out: PathLike = "generated",
    overrides: Mapping[str, Any] | None = None,
    force: bool = False,
) -> Built:
    """Write `OUT/<backend>/<spec>.py` for every spec and backend, as one transaction."""
    files = planned_outputs(specs, backend, out, overrides)
    written = write_all(files, force, Path(out))
    done = set(written)
    return Built(written, [f.path for f in files if f.path not in done])


def check_spec(
    spec: PathLike,
    backends: str | Iterable[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    input_shape: tuple[int, ...] | None = None,
    batch: int = 2,
):
    """`archspec check` for one spec: a `SpecReport` (`.ok`, per-backend differences)."""
    from archspec.check import check_spec as run
    from archspec.runner import Workers

    chosen = pick(backends, "--backends")
    with Workers() as workers:
        return run(Path(spec), chosen, workers, dict(overrides or {}), input_shape, batch)


def convert_checkpoint(
    spec: PathLike,
    source: str,
    src: PathLike,
    target: str,
    dst: PathLike,
    overrides: Mapping[str, Any] | None = None,
):
    """Convert checkpoint `src` of framework `source` into `dst` for `target`.

    Returns what was done (`.count` tensors, `.notes` on what was unwrapped or converted).
    """
    from archspec.convert import convert as run
    from archspec.convert import pick_framework

    graph = compile_spec(spec, overrides)
    return run(
        graph, pick_framework(source, "--from"), Path(src), pick_framework(target, "--to"),
        Path(dst),
    )  # fmt: skip


__all__ = [
    "Built",
    "Graph",
    "SpecError",
    "Summary",
    "backends",
    "build_modules",
    "check_spec",
    "compile_spec",
    "convert_checkpoint",
    "emit_module",
    "planned_outputs",
    "summary",
]
