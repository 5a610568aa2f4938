"""Emission helpers shared by every backend: framework calls rendered from a backend table.

A backend's table says, per argument, how to compute it from the op's attributes and
whether the framework's own default can be left out; this module turns that into Python
source, folding what is known to literals. It also holds the small shared pieces of the
emitter (its error, node walks, literals and quoting).
"""

from __future__ import annotations

import ast
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from archspec.backend import NO_DEFAULT, ArgSpec, CaseSpec, OpSpec
from archspec.errors import Pos, SpecError
from archspec.expr import CONSTANTS, Evaluator, Expr, ExprError, parse
from archspec.expr import to_python as _to_python
from archspec.ops import CHECKERS, AttrError, Op
from archspec.pyfmt import Call, double_quotes
from archspec.spec import NodeSpec


class EmitError(SpecError):
    """A valid spec that an emitter cannot express (reported like any user error)."""


@dataclass
class Override:
    """A node-level initialisation: `{m}.bn3.weight` of every instance of a class."""

    cls: str
    target: str  # with `{m}` for the instance: `{m}.bn3`
    op: str
    node: NodeSpec
    guard: str | None  # `{m}.downsample is not None` for conditional modules


def walk(nodes: list[NodeSpec]):
    """Every node of a list, sequences included (block calls are not entered)."""
    for ns in nodes:
        yield ns
        if ns.seq is not None:
            yield from walk(ns.seq)


def literal(value: Any) -> str:
    """Python source for a literal value (lists become tuples), double-quoted strings."""
    if isinstance(value, list):
        value = tuple(value)
    return double_quotes(repr(value))


def check_requires(
    table: OpSpec, literals: dict[str, Any], title: str, pos: Pos, op: str = ""
) -> None:
    """Refuse what a framework cannot express (its table's `requires`), at the node."""
    for condition, why in table.requires.items():
        try:  # `and`/`or` short-circuit: a name known only at run time may not be needed
            holds = Evaluator().eval(parse(condition), literals)
        except ExprError:  # it is needed: the condition cannot be proven
            holds = False
        if not holds:
            raise EmitError.at(pos, f"{title} emitter: {op + ': ' if op else ''}{why}")


def choose_case(
    table: OpSpec, op: Op, literals: dict[str, Any], sources: dict[str, str]
) -> tuple[OpSpec, dict[str, Any]]:
    """The table with its first holding case applied, and the literals with the op's
    derived values (Op.emit_values) added.

    A case's `when` that reads a value known only at run time (a block argument) does not
    hold: cases go from the specific to the general, the op's own call last.
    """
    if not table.cases:
        return table, literals
    known = dict(literals)
    for key, source in sources.items():  # a list written in the spec is known too
        with suppress(ValueError, SyntaxError):
            known[key] = ast.literal_eval(source)
    checked = {}
    for key, attr in op.attrs.items():
        with suppress(KeyError, AttrError):  # unknown, or a value the IR already refused
            checked[key] = CHECKERS[attr.kind](known[key])
    values = {**literals, **op.emit_values(checked)}
    for case in table.cases:
        tree = parse(case.when)
        if tree.names <= values.keys() | CONSTANTS.keys() and Evaluator().eval(tree, values):
            return _apply(table, case), values
    return table, values


def _apply(table: OpSpec, case: CaseSpec) -> OpSpec:
    """The op's table with a case's call, arguments (by name) and requirements."""
    replaced = {arg.name: arg for arg in case.args}
    args = [replaced.pop(arg.name, arg) for arg in table.args] + list(replaced.values())
    return table.model_copy(
        update={
            "call": case.call or table.call,
            "args": args,
            "requires": {**table.requires, **case.requires},
            "cases": [],
        }
    )


def make_call(table: OpSpec, literals: dict[str, Any], sources: dict[str, str]) -> Call:
    """A framework call from its table: arguments rendered, defaults left out."""
    call = Call(table.call or "")
    for arg in table.args:
        value = render_arg(arg, literals, sources)
        if value is None:
            continue
        if arg.positional and not call.kwargs:
            call.args.append(value)
        else:
            call.kwargs.append((arg.name, value))
    return call


def render_arg(arg: ArgSpec, literals: dict[str, Any], sources: dict[str, str]) -> str | None:
    """Python source of one framework argument, or None when it is the framework default.

    `arg.value` is an expression over `literals` (known values) and `sources` (Python
    source of values known only at run time). Conditionals on known values are decided
    here, and a fully known value is folded to a literal, so defaults can be left out.
    """
    if arg.raw:
        return arg.value.format(**sources)
    tree = _Fold(literals, sources).visit(parse(arg.value).tree)
    names = set(names_in_order(tree)) - CONSTANTS.keys()  # `none`, `true`: known
    if arg.only != NO_DEFAULT:
        value = (
            Evaluator().eval(Expr(arg.value, tree, frozenset(), frozenset()), literals)
            if names <= literals.keys()
            else None
        )
        if not equal(value, arg.only):
            raise ValueError(f"`{arg.name}` must be {arg.only!r} here, got {value!r}")
        return None
    if names <= literals.keys():
        value = Evaluator().eval(Expr(arg.value, tree, frozenset(), frozenset()), literals)
        if arg.square and isinstance(value, (list, tuple)):
            if len(set(value)) != 1:
                raise ValueError(f"`{arg.name}` must be the same on both axes, got {value!r}")
            value = value[0]
        if not arg.always and arg.default != NO_DEFAULT and equal(value, arg.default):
            return None
        return literal(value)

    def rename(n: str) -> str | None:
        if n in literals:
            return literal(literals[n])
        return sources.get(n)

    return to_python(Expr(arg.value, tree, frozenset(names), frozenset()), rename)


class _Fold(ast.NodeTransformer):
    """Decide `a if test else b` when the test uses only known values, and `len(a)` when
    the length is known: a literal list, or a list written out in the spec (`[dim]`)."""

    def __init__(self, literals: dict[str, Any], sources: dict[str, str] | None = None):
        self.literals = literals
        self.sources = sources or {}

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        arg = node.args[0] if len(node.args) == 1 else None
        if not (isinstance(node.func, ast.Name) and node.func.id == "len"):
            return node
        if not isinstance(arg, ast.Name):
            return node
        value = self.literals.get(arg.id)
        if arg.id in self.sources:
            tree = ast.parse(self.sources[arg.id], mode="eval").body
            value = tree.elts if isinstance(tree, (ast.List, ast.Tuple)) else None
        return ast.Constant(len(value)) if isinstance(value, (list, tuple)) else node

    def visit_IfExp(self, node: ast.IfExp) -> ast.AST:
        names = set(names_in_order(node.test)) - CONSTANTS.keys()
        if names <= self.literals.keys():
            test = Evaluator().eval(Expr("", node.test, frozenset(), frozenset()), self.literals)
            return self.visit(node.body if test else node.orelse)
        return self.generic_visit(node)


def to_python(expr: Expr, rename=lambda name: None) -> str:
    """An expression as Python source, with ruff's double quotes."""
    return double_quotes(_to_python(expr, rename))


def names_in_order(tree: ast.AST) -> list[str]:
    """Names of an expression, left to right."""
    if isinstance(tree, ast.Name):
        return [tree.id]
    return [n for child in ast.iter_child_nodes(tree) for n in names_in_order(child)]


def node_exprs(ns: NodeSpec) -> list[Expr]:
    """Every expression written on a node (not inside its sequence items)."""
    exprs = [e for e in (ns.block, ns.inputs, ns.when, ns.repeat, ns.key) if e is not None]
    exprs += list(ns.args.values()) + list(ns.attrs.values())
    for init in ns.init.values():
        exprs += list(init.args.values())
    return exprs


def parse_literal(value: Any) -> Expr:
    """An Expr holding a Python literal (an op's default attribute).

    A string default is a string, not expression source: `"none"` is not the name `none`.
    """
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, str):
        return Expr(repr(value), ast.Constant(value), frozenset(), frozenset())
    return parse(value)


def equal(a: Any, b: Any) -> bool:
    """Framework-default comparison: 1 == [1, 1] for pair arguments."""

    def norm(v):
        if isinstance(v, (list, tuple)) and len(set(v)) == 1:
            v = v[0]
        return float(v) if isinstance(v, int) and not isinstance(v, bool) else v

    # 1 and 1.0 are the same default, True and 1 are not
    return type(norm(a)) is type(norm(b)) and norm(a) == norm(b)
