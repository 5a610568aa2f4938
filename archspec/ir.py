"""The IR: a spec bound to concrete values, with every node's attributes and shapes.

Binding substitutes parameters, evaluates `let`s and checks, unrolls `repeat` and
`for_each`, decides `when`, resolves input references, and runs each op's shape rule.
Errors are collected, not raised one by one, so a file reports all of them; a node whose
input is already broken gets shape `None` and is not checked again.
"""

from __future__ import annotations

import re
from collections import ChainMap
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from archspec.errors import Collector, Pos, SpecError, did_you_mean, quote, shorten
from archspec.expr import CONSTANTS, BudgetError, Evaluator, Expr, ExprError, Function
from archspec.ops import (
    CHECKERS,
    INIT_SCHEMES,
    OPS,
    Activation,
    AttrError,
    MultiOutput,
    Op,
    Shape,
    ShapeError,
)
from archspec.ops.spatial import padding_is_literal
from archspec.spec import BlockSpec, NetworkSpec, NodeSpec, ParamSpec, coerce

OVERRIDE_POS = Pos("--set")
# Limits on the work of binding: far above any real network (a 152-layer network binds 515 ops, 569
# nodes in all and 50 repeat iterations), low enough that any spec binds within a second.
MAX_NODES = 20_000  # ops in the network
MAX_BOUND = 50_000  # nodes and block parameters bound, in all: absent nodes count
MAX_ITERATIONS = 50_000  # repeat and for_each iterations, summed over nesting
MAX_NESTED = 100  # block calls and sequences inside each other
MAX_PATH = 500  # characters of a module path (`layer1.0.downsample.0`)
MAX_REPEAT = 10_000  # one repeat's count
MAX_CYCLES = 100  # block cycles reported (a spec can hold more than anyone reads)
# broadcast a batchless `parameter` over the batch
PARAMETER_JOINS = ("add", "multiply", "relative_position_bias")
# a `parameter` with a leading batch axis of 1 (`batch_axis`): also expanded by concat
BATCH_AXIS_JOINS = ("add", "multiply", "concat")
KEY_RESERVED = frozenset({"out_channels", "reset_parameters"})  # attributes modules set
STRING_KINDS = ("activation", "depth_mode", "padding")  # may be names: quote hints


@dataclass(frozen=True)
class BlockRef:
    """A block named in an expression (`block: unit` where `let: {unit: MyBlock}`)."""

    name: str
    kind = "a block"


@dataclass(frozen=True)
class Value:
    """A tensor flowing through the graph: who made it and its per-sample shape."""

    producer: str
    shape: Shape | None
    kind = "a node"
    index: int | None = None  # which output of a node with several (`parts[1]`)


class Parts(list):
    """The outputs of a node with several (chunk, split): `parts[k]` is one Value.

    A list, so `inputs: "parts[1]"` indexes it; used whole where one tensor is expected,
    it is refused with a located error (`whole_parts`).
    """

    def __init__(self, producer: str, values: list[Value]):
        super().__init__(values)
        self.producer = producer


@dataclass
class Node:
    """One bound op: the unit of analysis and of emission."""

    path: str
    op: str
    attrs: dict[str, Any]
    inputs: list[str]
    in_shapes: list[Shape]
    shape: Shape
    params: dict[str, Shape]
    buffers: dict[str, Shape]
    macs: int
    init: dict[str, tuple[str, dict[str, Any]]]
    pos: Pos
    parts: list[Shape] | None = None  # every output's shape, for a node with several

    @property
    def outputs(self) -> list[Shape]:
        """The shapes of the node's outputs (one, or its parts)."""
        return self.parts if self.parts is not None else [self.shape]


@dataclass
class Module:
    """The module tree: network, block instances, sequences, repeats and op leaves."""

    path: str
    kind: str  # network | block | seq | repeat | op
    name: str  # block name, op name, or "" for containers
    args: dict[str, Any] = field(default_factory=dict)
    children: list[Module] = field(default_factory=list)
    node: Node | None = None


@dataclass
class Graph:
    """A fully bound network: what analysis reads and what emitters render."""

    spec: NetworkSpec
    name: str
    params: dict[str, Any]
    input_shape: Shape
    nodes: list[Node]
    root: Module
    output: Value


def bind(
    spec: NetworkSpec, overrides: Mapping[str, Any] | None = None, input_shape: Shape | None = None
) -> Graph:
    """Bind a validated spec into a Graph, or raise every error found, located."""
    binder = _Binder(spec)
    binder.errors.extend(check_structure(spec))
    return binder.bind(dict(overrides or {}), input_shape)


def join(prefix: str, name: str) -> str:
    """Module path of `name` inside `prefix`."""
    return f"{prefix}.{name}" if prefix else name


def snake(name: str) -> str:
    """`SqueezeExcite` -> `squeeze_excite`: default node names for block calls."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


class _Binder:
    def __init__(self, spec: NetworkSpec):
        self.spec = spec
        self.errors = Collector()
        functions = {n: Function(n, tuple(f.args), f.expr) for n, f in spec.functions.items()}
        self.ev = Evaluator(functions)
        self.nodes: list[Node] = []
        self.parents: list[Module] = []
        self.stack: list[str] = []
        self.blocks = {name: BlockRef(name) for name in spec.blocks}
        self.bound = 0  # nodes and block parameters bound so far (MAX_BOUND)
        self.iterations_done = 0  # repeat and for_each iterations so far (MAX_ITERATIONS)
        self.nested = 0  # block calls and sequences being bound (MAX_NESTED)
        self.rows: dict[str, list[dict[str, Any]]] = {}  # each table's rows, bound once
        self.node_names: dict[int, tuple[list[str], set[str]]] = {}  # by id of the spec's list
        self.costs: dict[int, int] = {}  # by id of a block: the work of binding its params
        self.bad_keys: dict[int, bool] = {}  # by node id: unknown attributes (-id: init tensors)
        self.parameters: set[str] = set()  # paths of `parameter` nodes: tensors with no batch
        self.batch_axis: set[str] = set()  # those of them with a leading batch axis of 1

    # -- entry ---------------------------------------------------------------------------
    def bind(self, overrides: dict[str, Any], input_shape: Shape | None) -> Graph:
        spec = self.spec
        shape = input_shape or (spec.input.channels, spec.input.height, spec.input.width)
        for key in overrides:
            if key not in spec.params:
                self.errors.add(
                    OVERRIDE_POS,
                    f"`{shorten(key)}` is not a parameter of {spec.name}",
                    did_you_mean(key, spec.params),
                )
        scope = self.scope(spec, overrides, spec.pos, {}, arg_pos=OVERRIDE_POS)
        root = Module("", "network", spec.name, dict(scope or {}))
        self.parents.append(root)
        output = Value("input", shape)
        if scope is not None:
            output = self.bind_nodes(spec.nodes, _output(spec), scope, "", output, seq=False)
        if isinstance(output, Parts):
            where = _output(spec)[1] if spec.output else spec.nodes[-1].pos
            self.errors.add(where, whole_parts(output))
            output = Value(output.producer, None)
        self.check_flatten()
        self.errors.raise_if_any()
        params = {k: scope[k] for k in spec.params}
        return Graph(spec, spec.name, params, shape, self.nodes, root, output)

    # -- scopes --------------------------------------------------------------------------
    def scope(
        self,
        owner: BlockSpec,
        args: Mapping[str, Any],
        pos: Pos,
        extra: dict[str, Any],
        arg_pos: Pos | None = None,
    ) -> dict[str, Any] | None:
        """Parameters (args over defaults), then lets, then checks; None if any failed."""
        before = self.errors.count
        self.spend(self.scope_cost(owner), pos)
        own: dict[str, Any] = dict(extra)
        scope = ChainMap(own, self.blocks)  # not a copy of every block per block call
        for name, param in owner.params.items():
            scope[name] = self.param_value(name, param, args, pos, arg_pos)
        for name, expr in owner.let.items():
            if name in owner.params:
                self.errors.add(expr.pos, f"`{shorten(name)}` is both a parameter and a let")
            scope[name] = self.eval(expr, scope)
        if self.errors.count > before:
            return None
        for check in owner.checks:
            ok = self.eval(check.expr, scope)
            if ok is not None and not ok:
                # a block's check is reported where it is called, a network's where written
                where = check.pos if arg_pos is OVERRIDE_POS else pos
                self.errors.add(where, f"check failed: {shorten(check.message, 300)}")
        return scope if self.errors.count == before else None

    def scope_cost(self, owner: BlockSpec) -> int:
        """Work of binding an owner's parameters: one each, and one per choice compared."""
        key = id(owner)
        if key not in self.costs:
            choices = (len(p.choices) for p in owner.params.values() if p.choices is not None)
            self.costs[key] = len(owner.params) + sum(choices)
        return self.costs[key]

    def param_value(
        self, name: str, param: ParamSpec, args: Mapping[str, Any], pos: Pos, arg_pos: Pos | None
    ) -> Any:
        if name not in args:
            if param.required:
                where = param.pos if arg_pos is OVERRIDE_POS else pos
                self.errors.add(where, f"missing argument `{shorten(name)}`")
            return param.default
        value, where = args[name], arg_pos or pos
        if isinstance(value, tuple):  # (value, position) from a block call
            value, where = value
            if value is None:  # its expression already reported an error
                return param.default
        try:
            value = coerce(value, param.type)
        except ValueError as exc:
            self.errors.add(where, f"argument `{shorten(name)}`: {exc}")
            return param.default
        if param.choices is not None and value not in param.choices:
            self.errors.add(
                where,
                f"argument `{shorten(name)}` must be one of {quote(param.choices)}, "
                f"got {quote(value)}",
            )
        return value

    def eval(self, expr: Expr, scope: Mapping[str, Any], wants_str: bool = False) -> Any:
        """Evaluate, recording a located error (and returning None) on failure.

        `wants_str`: the value is a string, so a bare undefined name is most likely a
        string written without its inner quotes; the hint says so.
        """
        try:
            return self.ev.eval(expr, scope)
        except BudgetError as exc:  # the whole compile's budget: nothing more is evaluated
            self.errors.stop(expr.pos or self.spec.pos, exc.message)
        except ExprError as exc:
            hint = exc.hint
            source = expr.source.strip()
            if wants_str and source.isidentifier() and source not in scope:
                hint = f"a string needs quotes inside the YAML value: \"'{shorten(source)}'\""
            self.errors.add(expr.pos or self.spec.pos, exc.message, hint)
            return None

    # -- graphs --------------------------------------------------------------------------
    def bind_nodes(
        self,
        nodes: list[NodeSpec],
        output: str | None,
        scope: dict[str, Any],
        prefix: str,
        x: Value,
        seq: bool,
        packed: bool = False,
    ) -> Value:
        """Bind a list of nodes in order; returns the output value (last node by default).

        In a `packed` sequence an absent item takes no index: the next present one takes it.
        """
        output, output_pos = output if isinstance(output, tuple) else (output, self.spec.pos)
        names, known = self.names(nodes, seq)
        env: dict[str, Value] = {"x": x}
        prev = x
        present = 0  # items that built a module so far: a packed sequence's next index
        segments = {n for n, ns in zip(names, nodes, strict=True) if ns.key is None}
        for ns, name in zip(nodes, names, strict=True):
            segment = str(present) if packed else name
            if _names_module(ns):
                segment = self.key(ns, scope, segments) or segment
            if ns.name and ns.name in scope:
                self.errors.add(
                    ns.pos, f"node name `{shorten(ns.name)}` is also a parameter, let or block"
                )
            if len(prefix) + len(segment) >= MAX_PATH:  # before the path is built, per instance
                self.spend(1, ns.pos)
                self.errors.add(ns.pos, f"module path longer than {MAX_PATH} characters")
                env[name] = prev = Value(prefix, None)
                continue
            ins = self.inputs(ns, scope, env, known, prev)
            if seq and ns.op in OPS and OPS[ns.op].joins:  # refused by check_structure
                ins = None
            if ins is None:
                value = Value(join(prefix, segment), None)
            else:
                built = len(self.parents[-1].children)
                value = self.bind_node(ns, scope, join(prefix, segment), ins)
                present += len(self.parents[-1].children) > built
            env[name] = prev = value
        if output is None:
            return self.batched(prev, nodes[-1].pos if nodes else output_pos)
        if output not in env:
            self.errors.add(
                output_pos,
                f"output `{shorten(output)}` is not a node",
                did_you_mean(output, env),
            )
            return Value(prefix, None)
        return self.batched(env[output], output_pos)

    def batched(self, value: Value, pos: Pos) -> Value:
        """A block's or the network's output: not a parameter, which has no batch axis."""
        if value.producer in self.parameters:
            self.errors.add(
                pos,
                f"the output is the parameter `{shorten(value.producer)}`, which has no batch "
                "axis: use it in add or multiply with an input that has one",
            )
            return Value(value.producer, None)
        return value

    def names(self, nodes: list[NodeSpec], seq: bool) -> tuple[list[str], set[str]]:
        """The names of a node list's nodes (worked out once per list, not per instance)."""
        key = id(nodes)
        if key not in self.node_names:
            names = [str(i) for i in range(len(nodes))] if seq else _node_names(nodes)
            self.node_names[key] = (names, set(names))
        return self.node_names[key]

    def inputs(
        self, ns: NodeSpec, scope, env: dict[str, Value], names: set[str], prev: Value
    ) -> list[Value] | None:
        if ns.inputs is None:
            return [prev]
        self.spend(len(ns.inputs.names), ns.inputs.pos)
        if not self.part_indexes(ns, env):
            return None  # each is looked up, per instance
        missing = sorted(
            n for n in ns.inputs.names if n not in env and n not in scope and n not in CONSTANTS
        )
        for name in missing:
            if name in names:
                self.errors.add(
                    ns.inputs.pos,
                    f"input `{shorten(name)}` is defined later: a node can "
                    "only use earlier nodes (no cycles)",
                )
            else:
                self.errors.add(
                    ns.inputs.pos, f"unknown node `{shorten(name)}`", did_you_mean(name, env, names)
                )
        if missing:
            return None
        value = self.eval(ns.inputs, _child(scope, env))
        values = value if isinstance(value, list) and not isinstance(value, Parts) else [value]
        if value is None or not values or not all(isinstance(v, (Value, Parts)) for v in values):
            if value is not None:
                self.errors.add(ns.inputs.pos, "`inputs` must name nodes")
            return None
        return values

    def part_indexes(self, ns: NodeSpec, env: dict[str, Value]) -> bool:
        """Outputs of a node with several are named one by one, `parts[1]`, with a literal
        index in range; an index on a node with one output is a mistake. False if reported.
        """
        import ast

        subscripts = {
            id(n.value): n for n in ast.walk(ns.inputs.tree) if isinstance(n, ast.Subscript)
        }
        problems = []
        for node in ast.walk(ns.inputs.tree):
            value = env.get(node.id) if isinstance(node, ast.Name) else None
            sub = subscripts.get(id(node))
            if isinstance(value, Parts):
                problems.append(_part_problem(node.id, value, sub))
            elif isinstance(value, Value) and sub is not None:
                one = f"`{node.id}` has one output: write `{node.id}`, not an index"
                problems.append(one if value.shape is not None else "")  # broken: said once
        for problem in filter(None, problems):
            self.errors.add(ns.inputs.pos, problem)
        return all(p is None for p in problems)

    def bind_node(self, ns: NodeSpec, scope, path: str, ins: list[Value]) -> Value:
        self.spend(1, ns.pos)
        whole = next((v for v in ins if isinstance(v, Parts)), None)
        if whole is not None:
            where = ns.inputs.pos if ns.inputs is not None else ns.pos
            self.errors.add(where, whole_parts(whole))
            return Value(path, None)
        if ns.when is not None:
            present = self.eval(ns.when, scope)
            if present is None:
                return Value(path, None)
            if not present:  # an absent node passes its first input through
                return self.absent(ns, scope, path, ins[0])
        if ns.repeat is None and ns.for_each is None:
            return self.bind_body(ns, scope, path, ins)
        if ns.op in OPS and OPS[ns.op].joins:  # refused by check_structure
            return Value(path, None)
        module = self.push(Module(path, "repeat", ""))
        value = ins[0]
        keys: set[str] = set()
        for k, extra in enumerate(self.iterations(ns, scope)):
            if isinstance(value, Parts):  # the last iteration's output feeds the next
                self.errors.add(ns.pos, whole_parts(value))
                value = Value(path, None)
                break
            inner = _child(scope, extra)
            segment = (self.key(ns, inner, keys) if ns.key is not None else None) or str(k)
            value = self.bind_body(ns, inner, f"{path}.{segment}", ins if k == 0 else [value])
        self.pop(module)
        return value

    def key(self, ns: NodeSpec, scope, taken: set[str]) -> str | None:
        """A node's `key`: its module path segment, unique among its siblings; None (and
        a located error) if it is not a usable one."""
        value = self.eval(ns.key, scope, wants_str=True)
        if value is None:
            return None
        problem = key_problem(value, taken)
        if problem is None and value in scope:  # a plain attribute would shadow it
            problem = f"`key` {quote(value)} is also a parameter, let or block"
        if problem:
            self.errors.add(ns.key.pos, problem)
            return None
        taken.add(value)
        return value

    def absent(self, ns: NodeSpec, scope, path: str, x: Value) -> Value | Parts:
        """An absent node's value: its input; each part of an absent chunk or split is it."""
        op = OPS.get(ns.op) if ns.kind == "op" else None
        if not isinstance(op, MultiOutput):
            return x
        attrs = self.op_attrs(op, ns, scope)
        if attrs is None:
            return Value(path, None)
        return Parts(path, [x] * op.count(attrs))

    def spend(self, count: int, pos: Pos) -> None:
        """Count nodes and block parameters bound, absent ones too, against MAX_BOUND."""
        self.bound += count
        if self.bound > MAX_BOUND:
            self.errors.stop(
                pos,
                f"the network binds more than {MAX_BOUND:,} nodes and block parameters in all "
                "(every repeat, block call and absent node counts)",
            )

    def iterations(self, ns: NodeSpec, scope) -> list[dict[str, Any]]:
        """The loop variables of each iteration, counted against MAX_ITERATIONS first."""
        if ns.repeat is not None:
            count = self.eval(ns.repeat, scope)
            if count is None:
                return []
            if (
                isinstance(count, bool)
                or not isinstance(count, int)
                or not 0 <= count <= MAX_REPEAT
            ):
                self.errors.add(
                    ns.repeat.pos,
                    f"`repeat` needs a count in 0..{MAX_REPEAT}, got {quote(count)}",
                )
                return []
            self.spend_iterations(ns, count)
            return [{"i": i} for i in range(count)]
        table = self.spec.tables.get(ns.for_each)
        if table is None:
            self.errors.add(
                ns.pos,
                f"unknown table `{shorten(ns.for_each)}`",
                did_you_mean(ns.for_each, self.spec.tables),
            )
            return []
        self.spend_iterations(ns, len(table.rows))
        if ns.for_each not in self.rows:  # once per table: rows can be long
            self.rows[ns.for_each] = [
                {"i": i, **dict(zip(table.columns, row, strict=True))}
                for i, row in enumerate(table.rows)
            ]
        return self.rows[ns.for_each]

    def spend_iterations(self, ns: NodeSpec, count: int) -> None:
        """Count a loop's iterations, before any is bound, even if its nodes are absent."""
        self.iterations_done += count
        if self.iterations_done > MAX_ITERATIONS:
            self.errors.stop(
                ns.pos,
                f"repeat: more than {MAX_ITERATIONS:,} iterations in all "
                "(`repeat` and `for_each`, nested loops multiplied)",
            )

    def bind_body(self, ns: NodeSpec, scope, path: str, ins: list[Value]) -> Value:
        if ns.kind == "op":
            return self.bind_op(ns, scope, path, ins)
        if len(ins) != 1:
            self.errors.add(ns.pos, f"a {ns.kind} takes one input, got {len(ins)}")
            return Value(path, None)
        if self.nested >= MAX_NESTED:  # before Python's own stack runs out
            self.errors.add(ns.pos, f"blocks and sequences nested more than {MAX_NESTED} deep")
            return Value(path, None)
        self.nested += 1
        try:
            if ns.kind == "seq":
                module = self.push(Module(path, "seq", ""))
                value = self.bind_nodes(ns.seq, None, scope, path, ins[0], True, ns.packed)
                self.pop(module)
                return value
            return self.bind_block(ns, scope, path, ins[0])
        finally:
            self.nested -= 1

    # -- blocks --------------------------------------------------------------------------
    def bind_block(self, ns: NodeSpec, scope, path: str, x: Value) -> Value:
        ref = self.block_ref(ns, scope)
        if ref is None or x.shape is None:
            return Value(path, None)
        if ref.name in self.stack:  # check_structure has reported the cycle
            return Value(path, None)
        block = self.spec.blocks[ref.name]
        args = {}
        before = self.errors.count
        for name, expr in ns.args.items():
            param = block.params.get(name)
            if param is None:
                self.errors.add(
                    expr.pos,
                    f"block `{ref.name}` has no parameter `{shorten(name)}`",
                    did_you_mean(name, block.params),
                )
            wants_str = param is not None and param.type == "str"
            args[name] = (self.eval(expr, scope, wants_str), expr.pos)
        if self.errors.count > before:  # the call is wrong: its body is not bound
            return Value(path, None)
        extra = _input_names(x.shape)
        inner = self.scope(block, args, ns.pos, extra)
        if inner is None:
            return Value(path, None)
        bound = {k: inner[k] for k in block.params}
        module = self.push(Module(path, "block", ref.name, bound))
        self.stack.append(ref.name)
        value = self.bind_nodes(block.nodes, _output(block), inner, path, x, seq=False)
        self.stack.pop()
        self.pop(module)
        return value

    def block_ref(self, ns: NodeSpec, scope) -> BlockRef | None:
        expr = ns.block
        if len(expr.names) == 1 and not expr.calls and expr.source.strip() in expr.names:
            name = expr.source.strip()
            if name not in scope:
                self.errors.add(
                    expr.pos, f"unknown block `{shorten(name)}`", did_you_mean(name, self.blocks)
                )
                return None
        ref = self.eval(expr, scope)
        if ref is not None and not isinstance(ref, BlockRef):
            self.errors.add(expr.pos, f"`block` must name a block, got {quote(ref)}")
            return None
        return ref

    # -- ops -----------------------------------------------------------------------------
    def bind_op(self, ns: NodeSpec, scope, path: str, ins: list[Value]) -> Value:
        if len(self.nodes) >= MAX_NODES:  # before loops of loops exhaust memory
            if len(self.nodes) == MAX_NODES:
                self.errors.add(ns.pos, f"the network has more than {MAX_NODES:,} ops")
                self.nodes.append(None)  # report once
            return Value(path, None)
        op = OPS.get(ns.op)
        if op is None:
            self.errors.add(ns.pos, f"unknown op `{shorten(ns.op)}`", did_you_mean(ns.op, OPS))
            return Value(path, None)
        attrs = self.op_attrs(op, ns, scope)
        if attrs is None:
            return Value(path, None)
        if isinstance(op, Activation):
            op, attrs = OPS[attrs["fn"]], {}
        ins = self.op_inputs(op, ns, path, ins)
        if ins is None:
            return Value(path, None)
        shapes = [v.shape for v in ins]
        try:
            shape, parts = _outputs(op, shapes, attrs)
        except ShapeError as exc:
            self.errors.add(ns.pos, f"{path}: {exc}")
            return Value(path, None)
        params = op.params(shapes, attrs)
        node = Node(
            path,
            op.name,
            attrs,
            [v.producer for v in ins],
            shapes,
            shape,
            params,
            op.buffers(shapes, attrs),
            op.macs(shapes, shape, attrs),
            self.bind_init(op, ns, scope, params),
            ns.pos,
            parts,
        )
        self.nodes.append(node)
        if op.source:
            self.parameters.add(path)
            if attrs.get("batch_axis"):
                self.batch_axis.add(path)
        self.parents[-1].children.append(Module(path, "op", op.name, node=node))
        return Value(path, shape) if parts is None else _parts(path, parts)

    def op_inputs(self, op: Op, ns: NodeSpec, path: str, ins: list[Value]) -> list[Value] | None:
        """The inputs an op takes, or None: a wrong count, an unknown shape, a parameter
        where it cannot go."""
        if op.source:  # a tensor of its own: the previous node is not its input
            if ns.inputs is not None or path.rpartition(".")[2].isdigit():
                return None  # with inputs, repeated or a sequence item: check_structure refuses
            return []
        if not op.min_inputs <= len(ins) <= op.max_inputs:
            expected = (
                op.min_inputs if op.min_inputs == op.max_inputs else f"{op.min_inputs} or more"
            )
            self.errors.add(ns.pos, f"{op.name} takes {expected} input(s), got {len(ins)}")
            return None
        if any(v.shape is None for v in ins) or not self.batch_of(op, ins, ns, path):
            return None
        return ins

    def batch_of(self, op: Op, ins: list[Value], ns: NodeSpec, path: str) -> bool:
        """A parameter has no batch axis: only add and multiply broadcast it, against an
        input that has one (generated code writes `self.scale * x`); one with `batch_axis`
        (a leading 1) also goes into concat, which expands it to the batch."""
        own = [v.producer for v in ins if v.producer in self.parameters]
        if not own or (len(own) < len(ins) and op.name in PARAMETER_JOINS):
            return True
        if len(own) < len(ins) and op.name in BATCH_AXIS_JOINS:
            batchless = [p for p in own if p not in self.batch_axis]
            if not batchless:
                return True
            own = batchless
        if own[0] in self.batch_axis:
            what, joins = "whose batch axis is 1", "add, multiply or concat"
        else:
            what, joins = "which has no batch axis", "add or multiply"
        self.errors.add(
            ns.pos,
            f"{path}: {op.name} cannot take the parameter `{shorten(own[0])}`, {what}: use it "
            f"in {joins} with an input that has one",
        )
        return False

    def op_attrs(self, op: Op, ns: NodeSpec, scope) -> dict[str, Any] | None:
        defaults = self.spec.defaults.get(op.name, {})
        before = self.errors.count
        if id(ns) not in self.bad_keys:  # once per node, not per instance
            self.bad_keys[id(ns)] = self.unknown_keys(op, ns)
        attrs = {}
        for key, attr in op.attrs.items():
            expr = ns.attrs.get(key, defaults.get(key))
            if expr is None:
                if attr.required:
                    self.errors.add(ns.pos, f"{op.name} needs attribute `{key}`")
                    continue
                value, where = attr.default, ns.pos
            else:
                errors = self.errors.count
                value, where = self.eval(expr, scope, attr.kind in STRING_KINDS), expr.pos
                if self.errors.count > errors:
                    continue
            try:
                self.ev.size(value)  # a message may quote it: long values cost their length
                attrs[key] = CHECKERS[attr.kind](value)
                if attr.kind == "padding" and expr is not None and expr.names:
                    padding_is_literal(value)
            except BudgetError as exc:
                self.errors.stop(where, exc.message)
            except ExprError as exc:
                self.errors.add(where, f"{op.name} attribute `{key}`: {exc.message}")
            except AttrError as exc:  # its message quotes the value: cut it
                self.errors.add(where, f"{op.name} attribute `{key}`: {shorten(str(exc), 120)}")
        ok = self.errors.count == before and not self.bad_keys[id(ns)]
        return attrs if ok else None

    def unknown_keys(self, op: Op, ns: NodeSpec) -> bool:
        """Report a node's attributes that its op does not have; True if there are any."""
        for key, expr in ns.attrs.items():
            if key not in op.attrs:
                self.errors.add(
                    expr.pos,
                    f"{op.name} has no attribute `{shorten(key)}`",
                    did_you_mean(key, op.attrs),
                )
        return any(key not in op.attrs for key in ns.attrs)

    def bind_init(self, op: Op, ns: NodeSpec, scope, params) -> dict[str, tuple[str, dict]]:
        defaults = self.spec.init.get(op.name, {})
        if ns.init and -id(ns) not in self.bad_keys:  # once per node, not per instance
            self.bad_keys[-id(ns)] = True
            for tensor, init in ns.init.items():
                if tensor not in op.tensors:
                    self.errors.add(
                        init.pos,
                        f"{op.name} has no tensor `{shorten(tensor)}` to initialise",
                        did_you_mean(tensor, op.tensors),
                    )
        bound = {}
        for tensor in params:
            init = ns.init.get(tensor) or defaults.get(tensor)
            if init is None:
                bound[tensor] = ("default", {})
                continue
            known = INIT_SCHEMES.get(init.scheme)
            if known is None:
                self.errors.add(
                    init.pos,
                    f"unknown initialisation `{shorten(init.scheme)}`",
                    did_you_mean(init.scheme, INIT_SCHEMES),
                )
                continue
            args = dict(known)
            for key, expr in init.args.items():
                if key not in known:
                    self.errors.add(
                        expr.pos,
                        f"`{init.scheme}` has no argument `{shorten(key)}`",
                        did_you_mean(key, known),
                    )
                # string-valued arguments (mode, nonlinearity) are names, not expressions
                literal = isinstance(known.get(key), str)
                args[key] = expr.source.strip("'\"") if literal else self.eval(expr, scope)
            bound[tensor] = (init.scheme, args)
        return bound

    def check_flatten(self) -> None:
        """Flattened maps larger than 1x1 must all have one size: modules are built for it."""
        sizes: dict[tuple[int, ...], Node] = {}
        for node in self.nodes:
            if node is None or node.op != "flatten":
                continue
            if node.in_shapes[0] and node.attrs["start"] % len(node.in_shapes[0]):
                continue  # flattening after the channel axis keeps the channels
            spatial = flattened(node)
            if spatial not in ((), (1, 1)):
                sizes.setdefault(spatial, node)
        if len(sizes) > 1:
            (a, first), (b, second) = list(sizes.items())[:2]
            self.errors.add(
                second.pos,
                f"flatten of maps of several sizes ({'x'.join(map(str, a))} at {first.path}, "
                f"{'x'.join(map(str, b))} here): generated modules size the next layer for one; "
                "pool to 1x1 first",
            )

    # -- module tree ---------------------------------------------------------------------
    def push(self, module: Module) -> Module:
        self.parents[-1].children.append(module)
        self.parents.append(module)
        return module

    def pop(self, module: Module) -> None:
        assert self.parents.pop() is module


def _outputs(op: Op, shapes: list[Shape], attrs: dict) -> tuple[Shape, list[Shape] | None]:
    """An op's output shape, and every output's for an op with several."""
    return op.shape(shapes, attrs), op.parts(shapes, attrs) if isinstance(op, MultiOutput) else None


def _parts(path: str, shapes: list[Shape]) -> Parts:
    return Parts(path, [Value(path, shape, k) for k, shape in enumerate(shapes)])


def _written_in_forward(op: Op) -> str:
    """Why an op is an expression in `forward`, not a module."""
    return "has several outputs" if isinstance(op, MultiOutput) else "joins several inputs"


def flattened(node: Node) -> Shape:
    """The axes after the channels that a flatten from axis 0 folds into them."""
    shape = node.in_shapes[0]
    return shape[1 : node.attrs["end"] % len(shape) + 1] if shape else ()


def whole_parts(parts: Parts, name: str | None = None) -> str:
    """The message for a node with several outputs used where one tensor is expected."""
    name = name or parts.producer.rsplit(".", 1)[-1]
    return (
        f"`{name}` has {len(parts)} outputs: name one of them, "
        f"`{name}[0]` to `{name}[{len(parts) - 1}]`, where one tensor is expected"
    )


def _part_problem(name: str, parts: Parts, sub) -> str | None:
    """What is wrong with naming `name` (a node with several outputs) here, if anything."""
    index = None if sub is None else part_index(sub.slice)
    if sub is None:
        return whole_parts(parts, name)
    if index is None:
        return f"`{name}` has {len(parts)} outputs: name one with a literal index, `{name}[0]`"
    if not -len(parts) <= index < len(parts):
        last = len(parts) - 1
        return (
            f"`{name}[{index}]`: `{name}` has {len(parts)} outputs, `{name}[0]` to `{name}[{last}]`"
        )
    return None


def part_index(tree) -> int | None:
    """The literal index of `parts[1]` or `parts[-1]`, else None."""
    import ast

    if isinstance(tree, ast.UnaryOp) and isinstance(tree.op, ast.USub):
        inner = part_index(tree.operand)
        return None if inner is None else -inner
    return tree.value if isinstance(tree, ast.Constant) and type(tree.value) is int else None


def _child(scope: Mapping[str, Any], names: Mapping[str, Any]) -> ChainMap:
    """`scope` with `names` over it, without copying it (scopes can be large)."""
    maps = scope.maps if isinstance(scope, ChainMap) else [scope]
    return ChainMap(names, *maps)


def _output(owner: BlockSpec) -> tuple[str, Pos] | None:
    return (owner.output, owner.field_pos("output")) if owner.output else None


def _input_names(shape: Shape) -> dict[str, int]:
    names = {"in_channels": shape[0]} if shape else {}
    if len(shape) == 3:
        names.update(in_height=shape[1], in_width=shape[2])
    return names


def _names_module(ns: NodeSpec) -> bool:
    """Whether a node's `key` is its own path segment: not repeated (the key then names
    each repetition), and a module (ops written in forward and tensors are refused)."""
    if ns.key is None or ns.repeat is not None or ns.for_each is not None:
        return False
    op = OPS.get(ns.op) if ns.op else None
    return op is None or not (op.joins or op.source)


def key_problem(value: Any, taken: set[str]) -> str | None:
    """Why a `key` value cannot be a module path segment here, if it cannot."""
    from archspec.spec import RESERVED

    if not isinstance(value, str):
        return f"`key` must be a string, got {quote(value)}"
    if not value:
        return "`key` must not be empty"
    if "." in value:
        return f"`key` {quote(value)} contains `.`, which separates module path segments"
    if value in RESERVED | KEY_RESERVED:
        return f"`key` {quote(value)} is reserved: generated modules have that attribute"
    if value in taken:
        return f"duplicate key {quote(value)}: a sibling module already has this path segment"
    return None


def _node_names(nodes: list[NodeSpec]) -> list[str]:
    """Explicit names, else the op (or snake-cased block) name, numbered when repeated."""
    from archspec.spec import RESERVED

    taken = {n.name for n in nodes if n.name} | RESERVED
    seen: dict[str, int] = {}
    names = []
    for ns in nodes:
        if ns.name:
            names.append(ns.name)
            continue
        base = ns.op if ns.kind == "op" else snake(ns.block.source) if ns.kind == "block" else "seq"
        base = re.sub(r"\W", "_", base)
        k = seen.get(base, 0)
        name = base if k == 0 and base not in taken else f"{base}_{k}"
        while name in taken:
            k += 1
            name = f"{base}_{k}"
        seen[base] = k + 1
        taken.add(name)
        names.append(name)
    return names


def duplicate_names(nodes: list[NodeSpec]) -> list[NodeSpec]:
    """Nodes whose explicit name repeats an earlier one in the same list."""
    seen: set[str] = set()
    dups = []
    for ns in nodes:
        if ns.name in seen:
            dups.append(ns)
        seen.add(ns.name or "")
    return dups


def check_structure(spec: NetworkSpec) -> Collector:
    """Static checks that need no values; returns what it found."""
    errors = Collector()
    for nodes in _node_lists(spec):
        for ns in duplicate_names(nodes):
            errors.add(ns.pos, f"duplicate node name `{shorten(ns.name)}`")
        for ns in nodes:
            for child in ns.seq or []:
                if child.name is not None or child.inputs is not None:
                    errors.add(child.pos, "sequence items take no `name` or `inputs`: they chain")
    _check_tables(spec, errors)
    _check_order(spec, errors)
    _check_recursion(spec, errors)
    _check_names(spec, errors)
    _check_emittable(spec, errors)
    return errors


def _check_order(spec: NetworkSpec, errors: Collector) -> None:
    """`order` names distinct top-level nodes of its block."""
    for owner in [spec, *spec.blocks.values()]:
        if owner.order is None:
            continue
        names = _node_names(owner.nodes)
        for name in owner.order:
            if name not in names:
                errors.add(
                    owner.field_pos("order"),
                    f"`order` names `{shorten(name)}`, which is not a node of this block",
                    did_you_mean(name, names),
                )
        if len(set(owner.order)) != len(owner.order):
            errors.add(owner.field_pos("order"), "`order` names a node twice")


def _check_emittable(spec: NetworkSpec, errors: Collector) -> None:
    """Constructs that bind but that no generated module could express: refused here."""
    if spec.name in spec.blocks:
        errors.add(
            spec.field_pos("name"), f"network name `{shorten(spec.name)}` is also a block name"
        )
    owners = [spec, *spec.blocks.values()]
    for owner in owners:
        scope = set(owner.params) | set(owner.let) | {"in_channels", "i"}
        shadows = _Shadows(spec, scope)
        for ns in owner.nodes:
            _check_node(shadows, ns, errors, in_seq=False, context="")
        for expr in _owner_exprs(owner):
            for name in sorted(expr.names & {"in_height", "in_width"}):
                errors.add(
                    expr.pos,
                    f"`{name}` is not available: generated modules take any input size "
                    "(only `in_channels` is known when a block is built)",
                )


class _Shadows(dict):
    """Table columns named like a parameter, let or `i` of one scope, found once per table."""

    def __init__(self, spec: NetworkSpec, scope: set[str]):
        super().__init__()
        self.spec, self.scope = spec, scope

    def __missing__(self, table: str) -> list[str]:
        found = self[table] = sorted(set(self.spec.tables[table].columns) & self.scope)
        return found


def _check_node(
    shadows: _Shadows, ns: NodeSpec, errors: Collector, in_seq: bool, context: str
) -> None:
    op = OPS.get(ns.op) if ns.op else None
    repeats = ns.repeat is not None or ns.for_each is not None
    if op is not None and op.joins and (in_seq or repeats):
        where = "be a sequence item" if in_seq else "repeat"
        errors.add(ns.pos, f"`{ns.op}` {_written_in_forward(op)}: it cannot {where}")
    if op is not None and op.source:
        _check_source(ns, errors, in_seq, repeats)
    if ns.inputs is not None and ns.op != "concat" and not _names_only(ns.inputs):
        errors.add(
            ns.inputs.pos,
            "an `inputs` expression is only supported on concat; "
            "elsewhere name the inputs (`inputs: [a, b]`)",
        )
    if ns.for_each is not None and ns.for_each in shadows.spec.tables:
        for column in shadows[ns.for_each]:
            errors.add(
                ns.pos, f"table column `{shorten(column)}` shadows a parameter, let or index"
            )
    _check_key(ns, op, errors, in_seq, repeats)
    context = _init_context(ns, in_seq, repeats, context)
    if ns.init and context:
        errors.add(
            next(iter(ns.init.values())).pos,
            f"node-level `init` is not supported {context}; use the spec's `init:` "
            "section, or put the node in a block",
        )
    for child in ns.seq or []:
        _check_node(shadows, child, errors, in_seq=True, context=_items_context(ns, context))


def _init_context(ns: NodeSpec, in_seq: bool, repeats: bool, context: str) -> str:
    """Where node-level `init` is refused (on this node and inside it), if it is."""
    if repeats:
        return "inside a repeated node"
    if ns.key is not None and not in_seq and not context:  # its target is no attribute
        return "on a node with `key` or inside one (outside sequences)"
    if in_seq and ns.when is not None and not context:
        return "inside a conditional sequence item"
    return context


def _check_key(ns: NodeSpec, op: Op | None, errors: Collector, in_seq: bool, repeats: bool):
    """`key` names a module: ops written in `forward` and learnable tensors have none."""
    if ns.key is None:
        return
    if op is not None and op.joins:
        errors.add(ns.key.pos, f"`key` names a module, and `{ns.op}` {_written_in_forward(op)}")
    elif op is not None and op.source:
        errors.add(ns.key.pos, f"`key` names a module, and `{ns.op}` is a learnable tensor")
    elif ns.when is not None and not (in_seq or repeats):
        errors.add(
            ns.key.pos,
            "`key` on a conditional node is not supported: make it a sequence item "
            "(an absent item is an identity) or give it an identifier `name` instead",
        )


def _items_context(ns: NodeSpec, context: str) -> str:
    """Where a sequence's items are, for refusing node-level `init` there."""
    if ns.packed and not context:  # an item's index depends on the items before it
        return "inside a packed sequence"
    return context


def _check_source(ns: NodeSpec, errors: Collector, in_seq: bool, repeats: bool) -> None:
    """A tensor of its own (`parameter`) is an attribute, not a module: it stands alone."""
    what = f"`{ns.op}` is a learnable tensor, not a layer"
    if in_seq or repeats:
        errors.add(ns.pos, f"{what}: it cannot {'be a sequence item' if in_seq else 'repeat'}")
    if ns.when is not None:
        errors.add(ns.when.pos, f"{what}: it cannot be conditional (`when`)")
    if ns.inputs is not None:
        errors.add(ns.inputs.pos, f"{what}: it takes no `inputs` (name it in the inputs of others)")


def _names_only(expr: Expr) -> bool:
    """`a`, `[a, b]` or `[parts[0], b]`: inputs named one by one (a part by its index)."""
    import ast

    tree = expr.tree
    elts = tree.elts if isinstance(tree, ast.List) else [tree]
    return all(isinstance(e, ast.Name) or is_part(e) for e in elts)


def is_part(e) -> bool:
    """`parts[1]`: one output of a node with several, a literal index."""
    import ast

    return (
        isinstance(e, ast.Subscript)
        and isinstance(e.value, ast.Name)
        and part_index(e.slice) is not None
    )


def _owner_exprs(owner: BlockSpec):
    yield from owner.let.values()
    yield from (check.expr for check in owner.checks)
    for ns in _walk(owner.nodes):
        yield from (e for e in (ns.block, ns.inputs, ns.when, ns.repeat, ns.key) if e is not None)
        yield from ns.args.values()
        yield from ns.attrs.values()
        for init in ns.init.values():
            yield from init.args.values()


def _check_names(spec: NetworkSpec, errors: Collector) -> None:
    """Names brought into scope must not shadow builtins or what generated code uses."""
    from archspec.spec import SHADOWING

    owners = [("", spec), *((f" of block `{shorten(n)}`", b) for n, b in spec.blocks.items())]
    found = [(f"block `{n}`", b.pos) for n, b in spec.blocks.items()]
    found += [(f"function `{n}`", f.pos) for n, f in spec.functions.items()]
    found += [(f"table `{n}`", t.pos) for n, t in spec.tables.items()]
    found += [(f"column `{c}`", t.pos) for t in spec.tables.values() for c in t.columns]
    for where, owner in owners:
        found += [(f"parameter `{n}`{where}", p.pos) for n, p in owner.params.items()]
        found += [(f"let `{n}`{where}", e.pos) for n, e in owner.let.items()]
    for what, pos in found:
        name = what.split("`")[1]
        if name in SHADOWING:
            errors.add(pos, f"{what} is a reserved name (a builtin, or a name generated code uses)")


def _check_tables(spec: NetworkSpec, errors: Collector) -> None:
    """`defaults:` and `init:` name real ops, attributes, tensors and schemes."""
    for section in ("defaults", "init"):
        for op, entries in getattr(spec, section).items():
            if op not in OPS:
                first = next(iter(entries.values()), None)
                where = first.pos if first is not None else spec.field_pos(section)
                errors.add(where, f"`{section}`: unknown op `{shorten(op)}`", did_you_mean(op, OPS))
                continue
            if section == "init" and OPS[op].source and entries:  # no class to find it by
                where = next(iter(entries.values())).pos
                errors.add(where, f"`init`: set a {op}'s initialisation on its node")
                continue
            known = OPS[op].attrs if section == "defaults" else OPS[op].tensors
            for key, value in entries.items():
                if key not in known:
                    what = "attribute" if section == "defaults" else "tensor"
                    errors.add(
                        value.pos,
                        f"`{section}`: {op} has no {what} `{shorten(key)}`",
                        did_you_mean(key, known),
                    )
                elif section == "init" and value.scheme not in INIT_SCHEMES:
                    errors.add(
                        value.pos,
                        f"unknown initialisation `{shorten(value.scheme)}`",
                        did_you_mean(value.scheme, INIT_SCHEMES),
                    )


def _check_recursion(spec: NetworkSpec, errors: Collector) -> None:
    """A block that calls itself, directly or through others, even if never used.

    A depth-first search without recursion, visiting each block once: linear in the
    number of calls (blocks that each call the next one twice, 60 deep, make 2^60 paths
    but 120 calls). Each cycle is reported once, at the call that closes it; after
    MAX_CYCLES cycles the search stops looking for more.
    """
    names = set(spec.blocks)
    calls = {
        name: [
            (n, ns) for ns in _walk(block.nodes) if ns.block for n in sorted(ns.block.names & names)
        ]
        for name, block in spec.blocks.items()
    }
    done: set[str] = set()
    seen: set[frozenset[str]] = set()
    for root in spec.blocks:
        if root in done:
            continue
        trail, on_trail, pending = [root], {root}, [iter(calls[root])]
        while pending:
            step = next(pending[-1], None)
            if step is None:
                pending.pop()
                done.add(trail[-1])
                on_trail.discard(trail.pop())
            elif step[0] in on_trail:
                if len(seen) < MAX_CYCLES:
                    _report_cycle(trail[trail.index(step[0]) :], step[1], seen, errors)
            elif step[0] not in done:
                trail.append(step[0])
                on_trail.add(step[0])
                pending.append(iter(calls[step[0]]))


def _report_cycle(cycle: list[str], call: NodeSpec, seen: set, errors: Collector) -> None:
    if frozenset(cycle) not in seen:
        seen.add(frozenset(cycle))
        chain = shorten(" -> ".join([*cycle, cycle[0]]), 200)
        errors.add(call.pos, f"block `{shorten(cycle[0])}` uses itself ({chain})")


def _walk(nodes: list[NodeSpec]):
    for ns in nodes:
        yield ns
        yield from _walk(ns.seq or [])


def _node_lists(spec: NetworkSpec):
    pending = [spec.nodes, *(b.nodes for b in spec.blocks.values())]
    while pending:
        nodes = pending.pop()
        yield nodes
        pending.extend(ns.seq for ns in nodes if ns.seq is not None)


__all__ = ["Graph", "Module", "Node", "SpecError", "Value", "bind", "check_structure"]
