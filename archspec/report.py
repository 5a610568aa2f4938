"""Human-readable rendering of summaries (rich tables); the JSON form lives on Summary."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from archspec.analysis import Summary


def shape_text(shape: tuple[int, ...]) -> str:
    """`N x 64 x 56 x 56`: the batch is always N."""
    return " x ".join(["N", *map(str, shape)])


def render_summary(summary: Summary, console: Console | None = None) -> None:
    """Print a torchinfo-style table: one row per op, then totals."""
    longest = max((len(layer.path) for layer in summary.layers), default=10)
    console = console or Console(width=max(Console().width, longest + 95))
    params = ", ".join(f"{k}={v!r}" for k, v in summary.params.items())
    table = Table(
        title=f"{summary.name}({params})",
        caption=f"input {shape_text(summary.input_shape)}; MACs per sample: conv + linear only",
        show_footer=True,
        header_style="bold",
    )
    table.add_column("Layer", footer="Total", no_wrap=True)
    table.add_column("Op", no_wrap=True)
    table.add_column("Output", footer=shape_text(summary.output_shape), no_wrap=True)
    table.add_column("Trainable", justify="right", footer=f"{summary.trainable:,}")
    table.add_column("BN stats", justify="right", footer=f"{summary.bn_stats:,}")
    table.add_column("MACs", justify="right", footer=f"{summary.macs:,}")
    for layer in summary.layers:
        table.add_row(
            layer.path,
            layer.op,
            shape_text(layer.shape),
            _count(layer.trainable),
            _count(layer.bn_stats),
            _count(layer.macs),
        )
    console.print(table)


def _count(n: int) -> str:
    return f"{n:,}" if n else "-"
