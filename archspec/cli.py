"""The `archspec` command: validate and summarise specs.

Exit status: 0 success, 2 a user error (printed as PATH:LINE:COL: error: ...), 1 a bug
in archspec (traceback only with --debug).

Each command imports what it uses when it runs: a command is one process, and `build`
or `schema` should not pay for analysis, rich tables or frameworks they never touch.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

import click

from archspec import __version__
from archspec.errors import Pos, SpecError

EXIT_USER, EXIT_BUG = 2, 1


def parse_set(items: tuple[str, ...]) -> dict[str, Any]:
    """`--set k=v` values, read as YAML scalars (3, 0.75, true, relu, [1, 2])."""
    from archspec.errors import LimitError, shorten
    from archspec.load import parse_scalar

    values: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise SpecError.at(Pos("--set"), f"expected NAME=VALUE, got `{shorten(item)}`")
        try:
            value = parse_scalar(raw, "--set")
        except LimitError as exc:  # a value beyond a limit: say which one
            reason = exc.diagnostics[0].message
            raise SpecError.at(Pos("--set"), f"`{shorten(key.strip())}`: {reason}") from None
        except SpecError:
            value = None
        if value is None or isinstance(value, dict):
            raise SpecError.at(
                Pos("--set"), f"`{shorten(item)}`: expected a number, boolean, name or list"
            )
        values[key.strip()] = value
    return values


def parse_input(text: str | None) -> tuple[int, ...] | None:
    """`--input 3x224x224` as a (C, H, W) tuple of positive integers below 10^15."""
    from archspec.errors import shorten

    if text is None:
        return None
    parts = text.lower().split("x")
    # at most 15 digits: Python refuses to convert more than 4,300, and no size needs 16
    if len(parts) != 3 or not all(
        p.isascii() and p.isdigit() and len(p) <= 15 and int(p) > 0 for p in parts
    ):
        raise SpecError.at(
            Pos("--input"),
            f"expected CxHxW with positive integers, got `{shorten(text)}`",
        )
    return tuple(int(p) for p in parts)


def handle_errors(func: Callable) -> Callable:
    """User errors -> located messages and exit 2; bugs -> exit 1 with a pointer to --debug."""

    @wraps(func)
    def wrapper(*args, **kwargs):
        debug = kwargs.pop("debug", False)
        try:
            return func(*args, **kwargs)
        except SpecError as exc:
            click.echo(str(exc), err=True)
            sys.exit(EXIT_USER)
        except KeyboardInterrupt:  # Ctrl-C: whatever was being written was rolled back
            click.echo("archspec: interrupted", err=True)
            sys.exit(130)
        except Exception:
            if debug:
                import traceback

                traceback.print_exc()
            click.echo(
                "archspec: internal error (this is a bug in archspec, please report it); "
                "run again with --debug for the traceback",
                err=True,
            )
            sys.exit(EXIT_BUG)

    return click.option("--debug", is_flag=True, help="Show tracebacks of internal errors.")(
        wrapper
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="archspec")
def main() -> None:
    """archspec: compile YAML network specs; check them, count them, emit them."""


@main.command()
@click.argument("specs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "--backend",
    "backend_names",
    default=None,
    help="Also report what these backends cannot express (comma-separated, or all).",
)
@handle_errors
def validate(specs: tuple[str, ...], backend_names: str | None) -> None:
    """Validate SPEC files: structure, expressions and shapes, with their defaults.

    Every spec that passes builds for every backend, except for the documented limits
    of a backend, which `--backend NAME` reports too.
    """
    from archspec.analysis import summarize
    from archspec.backend import pick
    from archspec.compiler import compile_spec
    from archspec.emit import module_view

    backends = pick(backend_names, "--backend") if backend_names else []
    errors: list[SpecError] = []
    for path in specs:
        try:
            graph = compile_spec(path)
            for backend in backends:
                module_view(graph, backend, [])
        except SpecError as exc:
            errors.append(exc)
            continue
        s = summarize(graph)
        click.echo(f"ok {path}: {s.name}, {s.trainable:,} trainable, {s.macs:,} MACs")
    if errors:
        raise SpecError([d for e in errors for d in e.diagnostics])


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="NAME=VALUE",
    help="Override a network parameter (repeatable).",
)
@click.option("--input", "input_", metavar="CxHxW", help="Input size, e.g. 3x256x256.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for tools.")
@click.option(
    "--depth",
    type=click.IntRange(min=0),
    default=None,
    help="Fold the module tree below this depth: one row per block, sequence or repeat "
    "(1: the network's direct children). Totals are unchanged.",
)
@handle_errors
def summary(
    spec: str, sets: tuple[str, ...], input_: str | None, as_json: bool, depth: int | None
) -> None:
    """Print per-layer shapes, parameters, BN statistics and MACs of SPEC, and totals."""
    from archspec.analysis import summarize
    from archspec.compiler import compile_spec
    from archspec.report import render_summary

    graph = compile_spec(spec, parse_set(sets), parse_input(input_))
    result = summarize(graph, depth)
    if as_json:
        import json

        click.echo(json.dumps(result.to_json(), indent=2))
    else:
        render_summary(result)


@main.command("graph")
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    help="Write FILE.dot (or .gv), FILE.svg or FILE.png (those two need Graphviz's `dot`); "
    "default: DOT on standard output.",
)
@click.option(
    "--depth",
    type=click.IntRange(min=0),
    default=None,
    help="Expand the module tree down to this depth; deeper blocks, sequences and repeats "
    "are one box each (1: the network's direct children). Default: every op.",
)
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="NAME=VALUE",
    help="Override a network parameter (repeatable).",
)
@click.option("--input", "input_", metavar="CxHxW", help="Input size, e.g. 3x256x256.")
@handle_errors
def draw(
    spec: str, output: str | None, depth: int | None, sets: tuple[str, ...], input_: str | None
) -> None:
    """Draw the layer graph of SPEC: boxes for ops and blocks, output shapes on the edges."""
    from archspec.compiler import compile_spec
    from archspec.graph import find_dot, output_format, to_dot, write_graph

    target = None if output in (None, "-") else Path(output)
    if target is not None and output_format(target) != "dot":
        find_dot()  # a missing Graphviz is reported before any work
    text = to_dot(compile_spec(spec, parse_set(sets), parse_input(input_)), depth)
    if target is None:
        click.echo(text, nl=False)
    else:
        write_graph(text, target)
        click.echo(f"wrote {output}")


@main.command()
@click.argument("specs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "--backends",
    "backend_names",
    default="all",
    show_default=True,
    help="Comma-separated backends; the first one is the reference.",
)
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="NAME=VALUE",
    help="Override a network parameter (repeatable).",
)
@click.option("--input", "input_", metavar="CxHxW", help="Input size (default: the spec's).")
@click.option(
    "--batch", default=2, show_default=True, type=click.IntRange(1, 1024), help="Batch size."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for tools.")
@handle_errors
def check(
    specs: tuple[str, ...],
    backend_names: str,
    sets: tuple[str, ...],
    input_: str | None,
    batch: int,
    as_json: bool,
) -> None:
    """Prove the backends' modules compute the same function: shapes, counts, numbers.

    Exit status 0 when every backend agrees within the tolerance, 1 when any disagrees.
    """
    from archspec.backend import pick
    from archspec.check import TOLERANCE, check_spec
    from archspec.compiler import compile_spec
    from archspec.report import render_check
    from archspec.runner import Workers

    backends = pick(backend_names, "--backends")
    overrides, shape = parse_set(sets), parse_input(input_)
    for path in specs:  # bad input is found before any framework starts
        compile_spec(path, overrides, shape)
    reports = []
    with Workers() as workers, progress(len(specs) > 1 and not as_json) as bar:
        task = bar.add_task("checking", total=len(specs))
        for path in specs:
            bar.update(task, description=f"checking {path}")
            reports.append(check_spec(Path(path), backends, workers, overrides, shape, batch))
            bar.advance(task)
    if as_json:
        import json

        click.echo(
            json.dumps(
                {
                    "tolerance": TOLERANCE,
                    "ok": all(r.ok for r in reports),
                    "specs": [r.to_json() for r in reports],
                },
                indent=2,
            )
        )
    else:
        for report in reports:
            render_check(report)
    sys.exit(0 if all(r.ok for r in reports) else 1)


def progress(enabled: bool):
    """A rich progress bar on stderr for multi-spec runs (a no-op otherwise)."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}", markup=False),  # descriptions hold user paths
        BarColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=not enabled,
        transient=True,
    )


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--from", "source", required=True, help="Framework of the input checkpoint.")
@click.argument("src", type=click.Path())
@click.option("--to", "target", required=True, help="Framework of the output checkpoint.")
@click.argument("dst", type=click.Path())
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="NAME=VALUE",
    help="Network parameters the checkpoint was trained with.",
)
@handle_errors
def convert(spec: str, source: str, src: str, target: str, dst: str, sets: tuple[str, ...]) -> None:
    """Convert checkpoint SRC of framework --from into DST for framework --to.

    archspec convert SPEC --from torch IN.pt --to paddle OUT.pdparams

    The suffix chooses the format: .safetensors (holding the framework's names and layouts,
    read and written without pickle or a framework) or the framework's own (.pt, .pdparams,
    .ckpt). Nothing in SRC is ever run. A wrapper ({"state_dict": ...}) and a `module.`
    prefix are removed, other floating-point precisions become float32; each is reported.
    """
    from archspec.compiler import compile_spec
    from archspec.convert import convert as run_convert
    from archspec.convert import pick_framework

    src_backend = pick_framework(source, "--from")
    dst_backend = pick_framework(target, "--to")
    graph = compile_spec(spec, parse_set(sets))
    result = run_convert(graph, src_backend, Path(src), dst_backend, Path(dst))
    for note in result.notes:
        click.echo(f"{src}: note: {note}")
    click.echo(
        f"wrote {dst}: {result.count} tensors, {src_backend.spec.title} -> {dst_backend.spec.title}"
    )


@main.command()
@click.argument("specs", nargs=-1, type=click.Path(dir_okay=False))
@click.option(
    "--backend",
    "backend_name",
    default="all",
    show_default=True,
    help="A folder under backends/ (torch, paddle, mindspore, ...) or `all`.",
)
@click.option(
    "--out",
    default="generated",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Output folder: files go to OUT/<backend>/<spec>.py.",
)
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="NAME=VALUE",
    help="Override a network parameter's default (repeatable).",
)
@click.option(
    "--all", "build_all", is_flag=True, help="Every bundled spec in specs/ for every backend."
)
@click.option(
    "--target",
    metavar="NAME",
    help="An emission option of the backend, as in `--backend mindspore:cpu` (MindSpore's "
    "`cpu`: convolutions as unfold + matmul, same weights, much faster on CPU).",
)
@click.option("--force", is_flag=True, help="Overwrite generated files edited by hand.")
@click.option(
    "--check",
    is_flag=True,
    help="Write nothing; exit 1 if any file is missing or differs from a fresh build.",
)
@handle_errors
def build(
    specs: tuple[str, ...],
    backend_name: str,
    out: str,
    sets: tuple[str, ...],
    build_all: bool,
    target: str | None,
    force: bool,
    check: bool,
) -> None:
    """Emit framework modules for SPEC files: OUT/<backend>/<spec>.py."""
    from archspec.build import planned_outputs, write_all
    from archspec.resources import SPECS_DIR

    paths = [Path(p) for p in specs] + (sorted(SPECS_DIR.glob("*.yaml")) if build_all else [])
    backend = None if build_all else backend_name
    if target is not None:
        if backend in (None, "all"):
            raise SpecError.at(Pos("--target"), "--target needs one --backend (not all)")
        backend = ",".join(f"{name.strip()}:{target}" for name in backend.split(","))
    outputs = planned_outputs(paths, backend, out, parse_set(sets))
    if check:
        stale = [
            o.path
            for o in outputs
            if not o.path.exists() or o.path.read_text(encoding="utf-8") != o.text
        ]
        for path in stale:
            click.echo(f"stale: {path}", err=True)
        sys.exit(1 if stale else 0)
    written = set(write_all(outputs, force, Path(out)))
    for output in outputs:
        if output.path in written:
            click.echo(f"wrote {output.path}")
        elif output.path.name != "__init__.py":
            click.echo(f"up to date: {output.path}")


@main.command()
@handle_errors
def schema() -> None:
    """Print the JSON Schema of the spec language (for editors: see the README)."""
    import json

    from archspec.schema import spec_schema

    click.echo(json.dumps(spec_schema(), indent=2))


@main.command("import")
@click.argument("target")
@click.option(
    "--args",
    "args",
    multiple=True,
    metavar="VALUE|NAME=VALUE",
    help="An argument of TARGET (repeatable): `--args 64 --args num_classes=10`.",
)
@click.option("--input", "input_", default="3x224x224", show_default=True, metavar="CxHxW")
@click.option(
    "-o", "--output", required=True, type=click.Path(dir_okay=False), help="The spec to write."
)
@click.option(
    "--weights",
    type=click.Path(dir_okay=False),
    help="Also write the model's state dict (.safetensors, PyTorch's names) for `convert`.",
)
@handle_errors
def import_(
    target: str, args: tuple[str, ...], input_: str, output: str, weights: str | None
) -> None:
    """Turn a PyTorch model into a spec: TARGET is `package.module:callable` or
    `file.py:callable` returning an nn.Module (this runs the model's own code).

    The spec is proved before it is written: its PyTorch module loads the model's state
    dict strictly and agrees in eval mode (1e-5), with the same parameter and BN-statistic
    counts; exit 1 (nothing written) if not. Every unsupported op is reported at once.
    """
    from archspec.importing import import_model, save_weights
    from archspec.importing.prove import TOLERANCE, prove

    if weights is not None and not weights.lower().endswith(".safetensors"):
        raise SpecError.at(Pos("--weights"), "expected a .safetensors file name")
    shape = parse_input(input_)
    imported = import_model(target, args, shape)
    proof = prove(imported.text, imported.model, shape)
    click.echo(
        f"{imported.name}: {proof.keys} state-dict keys loaded strictly; trainable "
        f"{proof.trainable[0]:,} (model {proof.trainable[1]:,}), BN statistics "
        f"{proof.bn_stats[0]:,} (model {proof.bn_stats[1]:,}); eval outputs differ by "
        f"{proof.difference:.2g} (tolerance {TOLERANCE:g})"
    )
    if not proof.ok:
        for problem in proof.problems:
            click.echo(f"{target}: round trip: {problem}", err=True)
        click.echo(f"nothing written to {output}", err=True)
        sys.exit(1)
    _write_text(Path(output), imported.text)
    click.echo(f"wrote {output}")
    if weights is not None:
        save_weights(imported.model, weights, imported.name)
        click.echo(f"wrote {weights}")


def _write_text(path: Path, text: str) -> None:
    """Write through a temporary file next to `path`, renamed: never half a file."""
    from archspec.build import write_file

    write_file(path, text)


if __name__ == "__main__":
    main()
