"""Drawing the layer graph: DOT text written here, SVG and PNG through Graphviz's `dot`.

One box per op or per collapsed block, sequence or repeat (the module tree cut at
`depth`, as `summary --depth` folds it); expanded blocks, sequences and repeats are
clusters. Edges follow the data flow of `Node.inputs`, from the box holding the producer
to the box holding the consumer, labelled with the producer's output shape: a collapsed
subtree's internal edges disappear, and there are no self-loops or duplicate edges.
The graph input and output are nodes of their own.

Reads only the IR; needs no deep-learning framework, and no Python package for DOT.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from archspec.analysis import cut, module_nodes, unit_label
from archspec.errors import Pos, SpecError
from archspec.ir import Graph, Module, Node
from archspec.ops import ACTIVATIONS

FORMATS = {".dot": "dot", ".gv": "dot", ".svg": "svg", ".png": "png"}
INSTALL_HINT = (
    "install Graphviz: `apt-get install graphviz` on Debian or Ubuntu, `brew install graphviz` "
    "on macOS; or write DOT with `-o FILE.dot`"
)
OUTPUT_POS = Pos("--output")

# fill colours by op family; anything else is white
COLOURS = {
    "conv2d": "#cfe2f3",
    "linear": "#d9d2e9",
    "batchnorm2d": "#fff2cc",
    "max_pool2d": "#fce5cd",
    "avg_pool2d": "#fce5cd",
    "global_avg_pool": "#fce5cd",
    "adaptive_avg_pool2d": "#fce5cd",
    "add": "#eeeeee",
    "multiply": "#eeeeee",
    "concat": "#eeeeee",
    "chunk": "#eeeeee",
    "split": "#eeeeee",
}
ACTIVATION_COLOUR = "#d9ead3"
UNIT_COLOUR = "#f3f3f3"


@dataclass
class Box:
    """One drawn node: an op, a collapsed module, or the graph's input or output."""

    id: str
    lines: list[str]
    style: dict[str, str]


@dataclass
class Cluster:
    """An expanded block, sequence or repeat, holding boxes and clusters in order."""

    label: str
    items: list[Box | Cluster] = field(default_factory=list)


@dataclass
class Edge:
    """Data flowing from one box to another, with its shape(s)."""

    src: str
    dst: str
    shapes: list[str]


@dataclass
class Drawing:
    """The whole picture, ready to be written as DOT."""

    title: str
    items: list[Box | Cluster]
    edges: list[Edge]


def shape_label(shape: tuple[int, ...] | None) -> str:
    """`64x56x56`: a per-sample shape as the edges show it."""
    return "x".join(map(str, shape or ()))


def op_label(node: Node) -> str:
    """An op with its key attributes: `conv2d 3x3 /2, 64`, `max_pool2d 3x3 /2`, `linear, 10`."""
    a = node.attrs
    text = node.op
    if "kernel" in a:
        text += " " + _pair(a["kernel"], square=True)
        if a.get("stride", (1, 1)) != (1, 1):
            text += " /" + _pair(a["stride"])
        if a.get("dilation", (1, 1)) != (1, 1):
            text += " dilation " + _pair(a["dilation"])
    extras = []
    if "out" in a:
        extras.append(str(a["out"]))
    if a.get("groups", 1) != 1:
        extras.append(f"groups {a['groups']}")
    if node.op == "adaptive_avg_pool2d":
        extras.append("to " + _pair(a["output"], square=True))
    if node.op == "dropout":
        extras.append(f"p={a['p']:g}")
    extras += _tensor_extras(node)
    return ", ".join([text, *extras])


def _tensor_extras(node: Node) -> list[str]:
    """Key attributes of the tensor ops: parts, axes, shapes."""
    a, extras = node.attrs, []
    if node.parts is not None:
        extras.append(f"{len(node.parts)} parts")
    if a.get("axis", 0) != 0 and node.op in ("concat", "chunk", "split"):
        extras.append(f"axis {a['axis']}")
    if node.op == "split":
        extras.append("sizes " + ", ".join(map(str, a["sizes"])))
    if node.op == "permute":
        extras.append("dims " + ", ".join(map(str, a["dims"])))
    if node.op == "reshape":
        extras.append("to " + shape_label(node.shape))
    if node.op == "flatten" and (a["start"], a["end"]) != (0, -1):
        extras.append(f"axes {a['start']} to {a['end']}")
    return extras


def _pair(pair: tuple[int, int], square: bool = False) -> str:
    """`3x3` for a kernel (`square`), `2` for an equal pair of strides, else `2x1`."""
    return f"{pair[0]}x{pair[1]}" if square or pair[0] != pair[1] else str(pair[0])


def build_drawing(graph: Graph, depth: int | None = None) -> Drawing:
    """Cut the module tree at `depth` (None: every op) and connect the boxes."""
    owner: dict[str, str] = {}
    boxes = 0
    top: list[Box | Cluster] = [_io_box("input", "input", graph.input_shape)]
    open_clusters: list[tuple[int, list[Box | Cluster]]] = [(0, top)]
    for module, level, folded in cut(graph.root, depth):
        while open_clusters[-1][0] >= level and len(open_clusters) > 1:
            open_clusters.pop()
        items = open_clusters[-1][1]
        if folded:
            box = _module_box(module, f"n{boxes}")
            boxes += 1
            items.append(box)
            owner.update((n.path, box.id) for n in module_nodes(module))
        elif level > 0:
            cluster = Cluster(f"{module.path}: {unit_label(module)}")
            items.append(cluster)
            open_clusters.append((level, cluster.items))
    top.append(_io_box("output", "output", graph.output.shape))
    return Drawing(_title(graph), top, _edges(graph, owner))


def _io_box(box_id: str, name: str, shape: tuple[int, ...] | None) -> Box:
    return Box(box_id, [name, shape_label(shape)], {"shape": "oval", "fillcolor": "white"})


def _module_box(module: Module, box_id: str) -> Box:
    if module.node is not None:
        op = module.node.op
        colour = ACTIVATION_COLOUR if op in ACTIVATIONS else COLOURS.get(op, "white")
        return Box(box_id, [module.path, op_label(module.node)], {"fillcolor": colour})
    params = sum(math.prod(s) for n in module_nodes(module) for s in n.params.values())
    lines = [module.path or module.name, unit_label(module), f"{params:,} params"]
    return Box(box_id, lines, {"fillcolor": UNIT_COLOUR, "penwidth": "2"})


def _title(graph: Graph) -> str:
    params = ", ".join(f"{k}={v!r}" for k, v in graph.params.items())
    return f"{graph.name}({params})"


def _edges(graph: Graph, owner: dict[str, str]) -> list[Edge]:
    """Producer box -> consumer box for every input, merged, without self-loops.

    An edge carries the shape its consumer reads: one part of a node with several outputs.
    """
    defined: set[str] = set()
    edges: dict[tuple[str, str], Edge] = {}

    def connect(producer: str, dst: str, shape: tuple[int, ...] | None) -> None:
        # `input` is the graph input unless a node of that name came earlier
        src = "input" if producer == "input" and producer not in defined else owner[producer]
        if src == dst:
            return
        edge = edges.setdefault((src, dst), Edge(src, dst, []))
        if shape_label(shape) not in edge.shapes:
            edge.shapes.append(shape_label(shape))

    for node in graph.nodes:
        for producer, shape in zip(node.inputs, node.in_shapes, strict=True):
            connect(producer, owner[node.path], shape)
        defined.add(node.path)
    connect(graph.output.producer, "output", graph.output.shape)
    return list(edges.values())


# -- DOT ---------------------------------------------------------------------------------
def quote(text: str) -> str:
    """A DOT double-quoted string showing `text` as written (one line per line).

    DOT unescapes only `\\"`; Graphviz then reads backslash escapes in labels (`\\n`,
    `\\l`, `\\N`, ...), so a backslash is doubled, a quote escaped, a line break
    becomes `\\n`, other white space a space; other control characters are dropped.
    """
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch.isprintable():
            out.append(ch)
        elif ch.isspace():
            out.append(" ")
    return '"' + "".join(out) + '"'


def _label(lines: list[str]) -> str:
    return quote("\n".join(lines))


def to_dot(graph: Graph, depth: int | None = None) -> str:
    """The DOT text of the graph's drawing at `depth`."""
    return render_dot(build_drawing(graph, depth))


def render_dot(drawing: Drawing) -> str:
    """DOT text: one statement per line, nodes before edges, ids `input`, `output`, `nK`."""
    lines = [
        f"digraph {quote(drawing.title)} {{",
        f'  graph [label={quote(drawing.title)}, labelloc=t, fontname="Helvetica", '
        'fontsize=14, rankdir=TB, nodesep=0.3, ranksep=0.35, charset="UTF-8"];',
        '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10, '
        'fillcolor=white, margin="0.12,0.04"];',
        '  edge [fontname="Helvetica", fontsize=9, color="#555555", arrowsize=0.7];',
    ]
    counter = iter(range(1 << 62))
    _write_items(drawing.items, lines, "  ", counter)
    for edge in drawing.edges:
        lines.append(f"  {edge.src} -> {edge.dst} [label={quote(' | '.join(edge.shapes))}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _write_items(items: list[Box | Cluster], lines: list[str], indent: str, counter) -> None:
    for item in items:
        if isinstance(item, Box):
            attrs = "".join(f", {k}={quote(v)}" for k, v in item.style.items())
            lines.append(f"{indent}{item.id} [label={_label(item.lines)}{attrs}];")
            continue
        lines.append(f"{indent}subgraph cluster_{next(counter)} {{")
        lines.append(
            f'{indent}  graph [label={quote(item.label)}, style="rounded,dashed", '
            'color="#888888", fontsize=10, labeljust=l];'
        )
        _write_items(item.items, lines, indent + "  ", counter)
        lines.append(f"{indent}}}")


# -- files -------------------------------------------------------------------------------
def output_format(path: Path) -> str:
    """`dot`, `svg` or `png` from the file's suffix; a located error for anything else."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise SpecError.at(
            OUTPUT_POS,
            f"cannot tell the format of `{path.name}` from its suffix",
            "use .dot or .gv for DOT, .svg or .png",
        )
    return fmt


def find_dot() -> str:
    """The path of Graphviz's `dot` program, or a located error saying how to install it."""
    dot = shutil.which("dot")
    if dot is None:
        raise SpecError.at(
            OUTPUT_POS,
            "writing SVG or PNG needs Graphviz's `dot` program, which is not installed "
            "(not found on PATH)",
            INSTALL_HINT,
        )
    return dot


def render_with_dot(text: str, fmt: str, dot: str | None = None) -> bytes:
    """Run `dot -T<fmt>` (no shell) on DOT text and return what it drew."""
    dot = dot or find_dot()
    try:
        done = subprocess.run(
            [dot, f"-T{fmt}"], input=text.encode("utf-8"), capture_output=True, check=False
        )
    except OSError as exc:
        message = f"cannot run `{dot}`: {exc.strerror}"
        raise SpecError.at(OUTPUT_POS, message, INSTALL_HINT) from None
    if done.returncode != 0 or not done.stdout:
        message = done.stderr.decode("utf-8", "replace").strip().splitlines()
        detail = f": {message[-1]}" if message else ""
        raise SpecError.at(OUTPUT_POS, f"Graphviz `dot -T{fmt}` failed{detail}")
    return done.stdout


def write_graph(text: str, path: Path) -> None:
    """Write DOT text to `path` as DOT, SVG or PNG (by suffix), atomically.

    The content goes to an unpredictable, exclusively created file in the same folder,
    which is then renamed over `path`: an error or an interrupt leaves `path` as it was.
    """
    fmt = output_format(path)
    data = text.encode("utf-8") if fmt == "dot" else render_with_dot(text, fmt)
    folder = path.parent
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise SpecError.at(OUTPUT_POS, f"cannot write into `{folder}`: {exc.strerror}") from None
    renamed = False
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
        renamed = True
    except OSError as exc:
        raise SpecError.at(OUTPUT_POS, f"cannot write `{path}`: {exc.strerror}") from None
    finally:
        if not renamed:  # an error or an interrupt: nothing of this run stays
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


__all__ = ["build_drawing", "find_dot", "output_format", "quote", "to_dot", "write_graph"]
