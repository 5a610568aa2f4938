"""Static analysis of a bound graph: per-layer and total parameters, BN statistics, MACs.

Reads only the IR; imports no deep-learning framework. `summarize(graph, depth)` folds
the module tree below `depth` into one row per block, sequence or repeat (as torchinfo's
`depth`); `cut` is that fold, shared with `archspec graph`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

from archspec.ir import Graph, Module, Node
from archspec.ops import OPS


@dataclass(frozen=True)
class Layer:
    """One row of a summary."""

    path: str
    op: str
    shape: tuple[int, ...]
    trainable: int
    bn_stats: int
    macs: int
    # every output's shape, for an op with several (chunk, split); `shape` is the first's
    parts: tuple[tuple[int, ...], ...] | None = field(default=None, kw_only=True)


@dataclass(frozen=True)
class Row(Layer):
    """One row of a folded summary: an op, or a block, sequence or repeat with its totals.

    `op` is the op's name, the block's name (`MyBlock`), `seq`, or a repeat's
    `MyBlock x3`; `kind` is the module kind and `ops` the number of ops folded.
    """

    kind: str
    ops: int


@dataclass(frozen=True)
class Summary:
    """A network's figures: what `archspec summary` prints and tests assert."""

    name: str
    params: dict
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    layers: list[Layer]
    trainable: int
    bn_stats: int
    macs: int
    activations: int  # elements of every op output, for one sample
    depth: int | None = None  # rows folded below this depth of the module tree

    def to_json(self) -> dict:
        """A plain-data form for `--json` and for tools."""
        data = asdict(self)
        data["layers"] = [_plain(layer) for layer in self.layers]
        if self.depth is None:
            del data["depth"]
        return data


def _plain(layer: Layer) -> dict:
    """A layer as plain data; `parts` only where an op has several outputs."""
    data = asdict(layer)
    if data["parts"] is None:
        del data["parts"]
    return data


def activations(node: Node) -> int:
    """Elements of every output of an op, for one sample."""
    return sum(math.prod(s) for s in node.outputs)


def layer(node: Node) -> Layer:
    """The figures of one op."""
    return Layer(
        node.path,
        node.op,
        node.shape,
        sum(math.prod(s) for s in node.params.values()),
        0 if OPS[node.op].buffer else sum(math.prod(s) for s in node.buffers.values()),
        node.macs,
        parts=None if node.parts is None else tuple(node.parts),
    )


def summarize(graph: Graph, depth: int | None = None) -> Summary:
    """Count everything from the IR alone; with `depth`, fold the rows (totals are the same).

    Depth counts as torchinfo does: 1 is the network's direct children, 0 the network as
    one row; a block, sequence or repeat at `depth` is one row.
    """
    layers = [layer(n) for n in graph.nodes]
    rows = layers if depth is None else folded_rows(graph, depth)
    return Summary(
        graph.name,
        dict(graph.params),
        graph.input_shape,
        graph.output.shape or (),
        rows,
        sum(x.trainable for x in layers),
        sum(x.bn_stats for x in layers),
        sum(x.macs for x in layers),
        sum(activations(n) for n in graph.nodes),
        depth,
    )


def cut(root: Module, depth: int | None) -> Iterator[tuple[Module, int, bool]]:
    """The module tree down to `depth`, in order: (module, level, shown as one unit).

    The network is level 0, its children level 1. A module with no op below it (a repeat
    of zero, a sequence of absent items) is left out; an op is always one unit; a block,
    sequence or repeat is one unit at `depth` (never with `depth` None) and is expanded
    above it. Nothing below a unit is visited.
    """
    stack = [(root, 0)]
    while stack:
        module, level = stack.pop()
        if not has_ops(module):
            continue
        folded = module.kind == "op" or (depth is not None and level >= depth)
        yield module, level, folded
        if not folded:
            stack.extend((child, level + 1) for child in reversed(module.children))


def has_ops(module: Module) -> bool:
    """Whether any op is bound below `module` (or is `module`)."""
    return module.node is not None or any(has_ops(c) for c in module.children)


def module_nodes(module: Module) -> list[Node]:
    """The ops below `module`, in graph order."""
    if module.node is not None:
        return [module.node]
    return [n for child in module.children for n in module_nodes(child)]


def unit_label(module: Module) -> str:
    """What a unit is: its op, its block's name, `seq`, or `MyBlock x3` for a repeat."""
    if module.kind == "op":
        return module.name
    if module.kind != "repeat":
        return module.name or module.kind
    labels = {unit_label(c) for c in module.children}
    count = len(module.children)
    return f"{labels.pop()} x{count}" if len(labels) == 1 else f"repeat x{count}"


def leaving(graph: Graph, owner: dict[str, int]) -> set[str]:
    """Ops whose value is read outside their unit (by another unit, or as the output)."""
    read = {graph.output.producer}
    for node in graph.nodes:
        unit = owner.get(node.path)
        read.update(p for p in node.inputs if owner.get(p, unit) != unit)
    return read


def folded_rows(graph: Graph, depth: int) -> list[Row]:
    """One row per unit of the tree cut at `depth`, each with the sums of its ops."""
    units = [m for m, _, folded in cut(graph.root, depth) if folded]
    members = [module_nodes(m) for m in units]
    owner = {n.path: k for k, nodes in enumerate(members) for n in nodes}
    read = leaving(graph, owner)
    rows = []
    for module, nodes in zip(units, members, strict=True):
        parts = [layer(n) for n in nodes]
        # the value leaving the unit: the last op read outside it, else its last op
        out = ([n for n in nodes if n.path in read] or nodes)[-1]
        rows.append(
            Row(
                module.path,
                unit_label(module),
                out.shape,
                sum(x.trainable for x in parts),
                sum(x.bn_stats for x in parts),
                sum(x.macs for x in parts),
                module.kind,
                len(nodes),
            )
        )
    return rows
