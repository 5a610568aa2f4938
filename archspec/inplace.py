"""Where forward may overwrite a tensor in place, as hand-written PyTorch does
(`nn.ReLU(inplace=True)`, `out += identity`): proved safe from the spec's graph.

A node may overwrite its input when the backend gives it an in-place form and the input
is a tensor that (1) its producer made new (`owns_output`: a convolution, a norm, a sum,
never a view, a parameter or the block's own input, which the caller may still hold),
(2) nobody else reads (one reader: this node; not the block's output), and (3) the
producer's backward does not need (the backend table says which ops own their output).
A node that is absent (`when`) hands its input on unchanged, so a conditional producer
is never trusted; a conditional consumer is fine (present: the only reader; absent: the
tensor flows on untouched). Every fresh tensor holds the whole batch: the language lets only
add, multiply and concat read a learnt `parameter`, with an input that has the batch.
"""

from __future__ import annotations

import ast
from collections import Counter

from archspec.backend import BackendSpec
from archspec.spec import NodeSpec


def in_place_nodes(
    nodes: list[NodeSpec], names: list[str], table: BackendSpec, output: str | None
) -> set[str]:
    """The names of the nodes of one node list that may overwrite their (first) input."""
    readers = _reader_counts(nodes, names, output)
    by_name = dict(zip(names, nodes, strict=True))
    chosen = set()
    for k, (ns, name) in enumerate(zip(nodes, names, strict=True)):
        if not _has_in_place_form(ns, table):
            continue
        source = _first_input(ns, names, k)
        if source is None or readers[source] != 1:
            continue
        if owns_output(by_name[source], table):
            chosen.add(name)
    return chosen


def owns_output(ns: NodeSpec, table: BackendSpec) -> bool:
    """Whether the node always makes a new tensor that its backward does not read."""
    op = table.ops.get(ns.op) if ns.kind == "op" else None
    return op is not None and op.owns_output and _single_and_unconditional(ns)


def can_overwrite(ns: NodeSpec, table: BackendSpec) -> bool:
    """Whether the node is a module op with an in-place constructor argument (a sequence
    item: its input is the item before's output, read by nothing else)."""
    op = table.ops.get(ns.op) if ns.kind == "op" else None
    return op is not None and op.inplace_arg is not None and _single(ns)


def _has_in_place_form(ns: NodeSpec, table: BackendSpec) -> bool:
    op = table.ops.get(ns.op) if ns.kind == "op" else None
    if op is None or not _single(ns) or ns.key is not None:
        return False
    if op.inplace_arg is not None:
        return True
    # a functional form for two inputs only: `a += b + c` would add in another order
    return op.inplace_stmt is not None and ns.inputs is not None and _input_count(ns) == 2


def _single(ns: NodeSpec) -> bool:
    return ns.repeat is None and ns.for_each is None


def _single_and_unconditional(ns: NodeSpec) -> bool:
    return _single(ns) and ns.when is None


def _input_count(ns: NodeSpec) -> int:
    tree = ns.inputs.tree
    return len(tree.elts) if isinstance(tree, ast.List) else 1


def _first_input(ns: NodeSpec, names: list[str], k: int) -> str | None:
    """The node whose tensor `ns` would overwrite: the one before, or its first named
    input (None: the block's input, a part of a node, or an expression)."""
    if ns.inputs is None:
        return names[k - 1] if k > 0 else None
    tree = ns.inputs.tree
    first = tree.elts[0] if isinstance(tree, ast.List) and tree.elts else tree
    return first.id if isinstance(first, ast.Name) and first.id in names[:k] else None


def _read_names(ns: NodeSpec, names: list[str], k: int) -> list[str]:
    """The nodes (and `x`, the list's input) that node k reads, once per mention."""
    if ns.inputs is None:
        return [names[k - 1] if k > 0 else "x"]
    known = {*names[:k], "x"}
    return [s.id for s in ast.walk(ns.inputs.tree) if isinstance(s, ast.Name) and s.id in known]


def _reader_counts(nodes: list[NodeSpec], names: list[str], output: str | None) -> Counter:
    """How many times each node's tensor is read: by the next node (no `inputs`), by every
    mention in an `inputs` expression, and once as the list's output."""
    readers: Counter = Counter()
    for k, ns in enumerate(nodes):
        readers.update(_read_names(ns, names, k))
    if names:
        readers[output or names[-1]] += 1
    return readers
