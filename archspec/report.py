"""Human-readable rendering of summaries (rich tables); the JSON form lives on Summary.

Every piece of user text (names, paths, parameter values, error messages) reaches rich
as a `Text`, never as markup: a `[/x]` or `[link=...]` in a spec prints as written.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from archspec.analysis import Summary


def shape_text(shape: tuple[int, ...]) -> str:
    """`N x 64 x 56 x 56`: the batch is always N."""
    return " x ".join(["N", *map(str, shape)])


def parts_text(parts: tuple[tuple[int, ...], ...]) -> str:
    """The outputs of an op with several: `2 x (N x 58 x 28 x 28)`, or each one's shape."""
    if len(set(parts)) == 1:
        return f"{len(parts)} x ({shape_text(parts[0])})"
    return ", ".join(map(shape_text, parts))


def render_summary(summary: Summary, console: Console | None = None) -> None:
    """Print a torchinfo-style table: one row per op (or per folded block), then totals."""
    longest = max((len(layer.path) for layer in summary.layers), default=10)
    console = console or Console(width=max(Console().width, longest + 95))
    params = ", ".join(f"{k}={v!r}" for k, v in summary.params.items())
    caption = f"input {shape_text(summary.input_shape)}; MACs per sample: conv, linear, attention"
    if summary.depth is not None:
        caption += f"; folded at depth {summary.depth}: one row per block, seq or repeat"
    table = Table(
        title=Text(f"{summary.name}({params})"),
        caption=caption,
        show_footer=True,
        header_style="bold",
    )
    table.add_column("Layer", footer="Total", no_wrap=True)
    table.add_column("Op" if summary.depth is None else "Op / block", no_wrap=True)
    table.add_column("Output", footer=shape_text(summary.output_shape), no_wrap=True)
    table.add_column("Trainable", justify="right", footer=f"{summary.trainable:,}")
    table.add_column("BN stats", justify="right", footer=f"{summary.bn_stats:,}")
    table.add_column("MACs", justify="right", footer=f"{summary.macs:,}")
    for layer in summary.layers:
        table.add_row(
            Text(layer.path),
            Text(layer.op),
            parts_text(layer.parts) if layer.parts else shape_text(layer.shape),
            _count(layer.trainable),
            _count(layer.bn_stats),
            _count(layer.macs),
        )
    console.print(table)


def _count(n: int) -> str:
    return f"{n:,}" if n else "-"


def render_check(report, console: Console | None = None) -> None:
    """One table per spec: each backend's figures and its differences from the first."""
    from archspec.check import TOLERANCE

    console = console or Console(width=max(Console().width, 180))
    exp = report.expected
    shape = " x ".join(map(str, report.input_shape))
    table = Table(
        title=Text(
            f"{report.spec}: {report.network} {'agree' if report.ok else 'DISAGREE'}"
            f" (input N x {shape})"
        ),
        caption="differences: max abs / relative to the reference's largest magnitude; "
        f"tolerance {TOLERANCE:g} relative (float32); train mode uses batch statistics with "
        "dropout and stochastic depth off (their randomness differs by framework); "
        "train-mode gradients are reported, not gated; "
        f"expected {exp['trainable']:,} trainable, {exp['bn_stats']:,} BN stats, "
        f"output {exp['output']}",
        header_style="bold",
    )
    for column in (
        "backend",
        "output",
        "trainable",
        "BN stats",
        "eval",
        "train",
        "grad input",
        "grad weights",
        "train grads",
        "status",
    ):
        table.add_column(column, no_wrap=True)
    for b in report.backends:
        status = (
            "reference"
            if b.eval is None
            else "ok"
            if b.ok
            else (f"DIFFERS from {b.first_divergence}")
        )
        if b.kink_flips:
            status += f" ({b.kink_flips} units at a kink: gradients not gated)"
        table.add_row(
            b.backend,
            "x".join(map(str, b.output_shape)),
            f"{b.trainable:,}",
            f"{b.bn_stats:,}",
            _diff(b.eval),
            _diff(b.train),
            _diff(b.grad_input),
            _diff(b.grad_weights),
            _diff(b.train_grad_weights),
            Text(b.error or status),
        )
    console.print(table)


def _diff(d) -> str:
    return "-" if d is None else f"{d.abs:.1e}/{d.rel:.1e}"
