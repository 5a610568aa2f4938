"""The expression language: a whitelisted subset of Python syntax, never `eval`.

Expressions are parsed once with `ast.parse` and checked against a whitelist of node
types, so anything outside the language (attribute access, lambdas, comprehensions,
dunder names, calls of unknown functions) is refused before it is ever evaluated. The
evaluator walks the tree itself and bounds the size of every value it makes.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from archspec.errors import Pos, did_you_mean, quote, shorten

MAX_INT = 10**15  # no channel, size or count in a real network comes close
MAX_LIST = 10_000  # items of a value, those of nested lists included
MAX_DEPTH = 64  # expressions (and spec functions calling each other) nested in each other
MAX_SOURCE = 2_000  # characters of one expression
MAX_SOURCES = 100_000  # characters of all the expressions of a spec (their trees take memory)
MAX_STEPS = 500_000  # evaluation steps of a whole compile (a 152-layer network takes 2,530)
MAX_ROUND = 64  # round(x, n): |n| at most this


class ExprError(Exception):
    """An expression that cannot be parsed or evaluated; the caller adds the location."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


class BudgetError(ExprError):
    """The compile spent its whole evaluation budget: nothing more can be evaluated."""


def _ceil(x):
    return math.ceil(x)


def _floor(x):
    return math.floor(x)


def _round(x, ndigits=None):
    if isinstance(ndigits, int) and abs(ndigits) > MAX_ROUND:  # 10 ** n would be computed
        raise ValueError(f"the number of digits must be within -{MAX_ROUND}..{MAX_ROUND}")
    return round(x) if ndigits is None else round(x, ndigits)


def _sum(items, start=0):
    """sum(); lists are joined in linear time (Python's own sum is quadratic on lists)."""
    if not isinstance(start, list) or not isinstance(items, list):
        return sum(items, start)
    out = list(start)
    for item in items:
        if not isinstance(item, list):
            raise TypeError(f"can only add lists to a list, not {_kind(item)}")
        out.extend(item)
    return out


def _str(value: Any) -> str:
    """`str(i)`: a number as text, for module path keys (`'block' + str(i)`)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise TypeError(f"expects a number or a string, got {_kind(value)}")
    return str(value)


BUILTINS: dict[str, Callable[..., Any]] = {
    "ceil": _ceil,
    "floor": _floor,
    "min": min,
    "max": max,
    "abs": abs,
    "round": _round,
    "int": int,
    "float": float,
    "len": len,
    "sum": _sum,
    "str": _str,
}
CONSTANTS = {"true": True, "false": False, "True": True, "False": False, "none": None}

_BINOPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Not: operator.not_}
_COMPARE = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}
_ALLOWED = (
    ast.Expression,
    ast.BinOp,
    ast.UnaryOp,
    ast.BoolOp,
    ast.Compare,
    ast.IfExp,
    ast.Call,
    ast.Name,
    ast.Constant,
    ast.List,
    ast.Tuple,
    ast.Subscript,
    ast.Load,
    ast.And,
    ast.Or,
    *_BINOPS,
    *_UNARY,
    *_COMPARE,
)
_REFUSED = {
    ast.Attribute: "attribute access",
    ast.Lambda: "a lambda",
    ast.ListComp: "a comprehension",
    ast.SetComp: "a comprehension",
    ast.DictComp: "a comprehension",
    ast.GeneratorExp: "a comprehension",
    ast.Dict: "a dictionary",
    ast.Set: "a set",
    ast.Starred: "a starred argument",
    ast.NamedExpr: "an assignment expression",
    ast.JoinedStr: "an f-string",
    ast.Slice: "a slice",
    ast.Await: "await",
    ast.Yield: "yield",
}


@dataclass(eq=False)
class Expr:
    """A parsed expression with the place it was written."""

    source: str
    tree: ast.expr
    names: frozenset[str]
    calls: frozenset[str]
    pos: Pos | None = field(default=None, compare=False)

    @property
    def constant(self) -> Any:
        """The value if the expression is a literal, else raise ExprError."""
        if isinstance(self.tree, ast.Constant):
            return self.tree.value
        raise ExprError(f"expected a literal value, got `{shorten(self.source)}`")

    @property
    def is_constant(self) -> bool:
        """True for a plain literal such as 3, 0.5, true or 'relu'."""
        return isinstance(self.tree, ast.Constant)

    def __repr__(self) -> str:
        return f"Expr({self.source!r})"


def parse(value: Any) -> Expr:
    """Parse a YAML value (string expression, number, bool or list) into an Expr."""
    if isinstance(value, Expr):
        return value
    if isinstance(value, (bool, int, float)) or value is None:
        node: ast.expr = ast.Constant(value)
        return Expr(repr(value), node, frozenset(), frozenset())
    if isinstance(value, list):
        items = [parse(v) for v in value]
        node = ast.List([i.tree for i in items], ast.Load())
        names = frozenset().union(*(i.names for i in items))
        calls = frozenset().union(*(i.calls for i in items))
        return Expr("[" + ", ".join(i.source for i in items) + "]", node, names, calls)
    if not isinstance(value, str):
        raise ExprError(f"expected an expression, got a {type(value).__name__}")
    return _parse_source(value)


_SOURCES: ContextVar[list[int] | None] = ContextVar("archspec_sources", default=None)


@contextmanager
def source_budget(limit: int | None = None) -> Iterator[list[int]]:
    """Bound the characters of the expressions parsed in this block (one spec) to `limit`.

    The budget is `[what is left, limit]`; past it, `parse` raises once and then
    returns `none` for every expression, so a spec of a million expressions costs nothing
    more to refuse.
    """
    limit = MAX_SOURCES if limit is None else limit
    budget = [limit, limit]  # what is left, and the limit
    token = _SOURCES.set(budget)
    try:
        yield budget
    finally:
        _SOURCES.reset(token)


def _parse_source(source: str) -> Expr:
    if len(source) > MAX_SOURCE:
        raise ExprError(f"expression longer than {MAX_SOURCE} characters")
    if _over_budget(source):
        return parse(None)
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExprError(f"invalid expression `{shorten(source)}`: {exc.msg}") from None
    except (RecursionError, MemoryError, ValueError):  # nesting Python's parser cannot take
        raise ExprError(f"expression nested too deeply: `{shorten(source)}`") from None
    names: set[str] = set()
    calls: set[str] = set()
    pending = [(tree, 0)]  # a walk that knows each node's depth
    while pending:
        node, depth = pending.pop()
        if depth > MAX_DEPTH:  # deeper trees could not be evaluated, nor written as Python
            raise ExprError(
                f"expression nested more than {MAX_DEPTH} levels deep: `{shorten(source)}`"
            )
        _check_node(node, source)
        if isinstance(node, ast.Name):
            names.add(node.id)
        if isinstance(node, ast.Call):
            calls.add(node.func.id)  # _check_node made sure it is a plain name
        pending.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return Expr(source, tree.body, frozenset(names - calls), frozenset(calls))


def _over_budget(source: str) -> bool:
    """Spend `source`'s length from the spec's budget: raise once, then True (not parsed)."""
    budget = _SOURCES.get()
    if budget is None:
        return False
    left = budget[0]
    budget[0] -= len(source)
    if budget[0] >= 0:
        return False
    if left < 0:  # reported already
        return True
    raise ExprError(f"expressions too long: more than {budget[1]:,} characters in all")


def _check_node(node: ast.AST, source: str) -> None:
    if type(node) in _REFUSED:
        raise ExprError(
            f"{_REFUSED[type(node)]} is not part of the expression language: `{shorten(source)}`"
        )
    if not isinstance(node, _ALLOWED):
        raise ExprError(
            f"`{shorten(source)}` uses syntax outside the expression language "
            f"({type(node).__name__})"
        )
    if isinstance(node, ast.Name) and node.id.startswith("_"):
        raise ExprError(f"names starting with an underscore are not allowed: `{shorten(node.id)}`")
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name):
            raise ExprError(f"only named functions can be called: `{shorten(source)}`")
        if node.keywords:
            raise ExprError(f"keyword arguments are not supported: `{shorten(source)}`")
    if isinstance(node, ast.Constant) and not isinstance(
        node.value, (int, float, str, bool, type(None))
    ):
        raise ExprError(f"unsupported literal in `{shorten(source)}`")


@dataclass(frozen=True)
class Function:
    """A function written in a spec: `make_divisible: {args: [x], expr: ...}`."""

    name: str
    args: tuple[str, ...]
    body: Expr


class Evaluator:
    """Evaluates expressions against a scope of names; bounded and side-effect free.

    One evaluator serves a whole compile, and its budget of `max_steps` is for all of it:
    each expression node evaluated costs a step, and work on lists (joining, repeating,
    comparing, summing) costs a step per item it touches. Every value stays below
    MAX_LIST items, nested lists' items included, and MAX_DEPTH levels of nesting.
    """

    def __init__(self, functions: Mapping[str, Function] | None = None, max_steps=None):
        self.functions = dict(functions or {})
        self.max_steps = MAX_STEPS if max_steps is None else max_steps
        self.steps = 0

    def eval(self, expr: Expr, scope: Mapping[str, Any]) -> Any:
        """Evaluate `expr` with the names of `scope` bound."""
        return self._eval(expr.tree, scope, 0)

    def charge(self, steps: int) -> None:
        """Spend `steps` of the budget; BudgetError once it is spent."""
        self.steps += steps
        if self.steps > self.max_steps:
            raise BudgetError(
                f"expression too costly: more than {self.max_steps:,} evaluation steps in all"
            )

    def size(self, value: Any) -> int:
        """Items of a value, nested lists' included: charged, and bounded."""
        if not isinstance(value, list):
            if isinstance(value, str):
                self.charge(len(value) // 64)
            return 0
        items, depth = _measure(value)
        self.charge(items)
        if items > MAX_LIST:
            if len(value) > MAX_LIST:
                raise ExprError(f"list longer than {MAX_LIST} items")
            raise ExprError(f"list of more than {MAX_LIST} items in all (nested lists counted)")
        if depth > MAX_DEPTH:
            raise ExprError(f"lists nested more than {MAX_DEPTH} levels deep")
        return items

    def _eval(self, node: ast.expr, scope: Mapping[str, Any], depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise ExprError("expression nested too deeply (recursive function?)")
        self.steps += 1
        if self.steps > self.max_steps:
            self.charge(0)
        value = _METHODS[type(node)](self, node, scope, depth + 1)
        if type(value) is int and -MAX_INT <= value <= MAX_INT:
            return value  # the common case, without a call
        return _bounded(value)

    def _eval_Constant(self, node: ast.Constant, scope, depth):
        return node.value

    def _eval_Name(self, node: ast.Name, scope, depth):
        if node.id in scope:
            return scope[node.id]
        if node.id in CONSTANTS:
            return CONSTANTS[node.id]
        raise ExprError(f"undefined name `{shorten(node.id)}`", did_you_mean(node.id, scope))

    def _eval_List(self, node: ast.List, scope, depth):
        values = [self._eval(e, scope, depth) for e in node.elts]
        self.size(values)
        return values

    _eval_Tuple = _eval_List

    def _eval_BinOp(self, node: ast.BinOp, scope, depth):
        left = self._eval(node.left, scope, depth)
        right = self._eval(node.right, scope, depth)
        if isinstance(left, list) or isinstance(right, list):
            return self._list_op(type(node.op), left, right)
        if isinstance(node.op, ast.Add) and isinstance(left, str) and isinstance(right, str):
            return _bounded(left + right)  # joined text: module path keys
        return _binop(type(node.op), left, right)

    def _list_op(self, op: type, left: Any, right: Any) -> Any:
        """`list + list` and `list * int`, sized before they are built."""
        if op is ast.Add and isinstance(left, list) and isinstance(right, list):
            if self.size(left) + self.size(right) > MAX_LIST:
                raise ExprError(f"list of more than {MAX_LIST} items in all (nested lists counted)")
            return left + right
        if op is ast.Mult and isinstance(left, list) != isinstance(right, list):
            items, count = (left, right) if isinstance(left, list) else (right, left)
            if not isinstance(count, int) or isinstance(count, bool):
                raise ExprError(
                    f"a list can only be repeated an integer number of times, not {_kind(count)}"
                )
            if count > 0 and len(items) * count > MAX_LIST:
                raise ExprError(f"list longer than {MAX_LIST} items")
            if count > 0 and self.size(items) * count > MAX_LIST:
                raise ExprError(f"list of more than {MAX_LIST} items in all (nested lists counted)")
            self.charge(len(items) * max(count, 0))
            return items * max(count, 0)
        return _binop(op, left, right)

    def _eval_UnaryOp(self, node: ast.UnaryOp, scope, depth):
        value = self._eval(node.operand, scope, depth)
        if not isinstance(node.op, ast.Not):
            _need_number(value, "unary minus")
        return _UNARY[type(node.op)](value)

    def _eval_BoolOp(self, node: ast.BoolOp, scope, depth):
        is_and = isinstance(node.op, ast.And)
        value = None
        for operand in node.values:
            value = self._eval(operand, scope, depth)
            if bool(value) != is_and:
                return value
        return value

    def _eval_Compare(self, node: ast.Compare, scope, depth):
        left = self._eval(node.left, scope, depth)
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            right = self._eval(comparator, scope, depth)
            self.size(left)  # comparing lists (or long strings) touches every item
            self.size(right)
            try:
                ok = _COMPARE[type(op)](left, right)
            except TypeError:
                raise ExprError(f"cannot compare {_kind(left)} with {_kind(right)}") from None
            if not ok:
                return False
            left = right
        return True

    def _eval_IfExp(self, node: ast.IfExp, scope, depth):
        test = self._eval(node.test, scope, depth)
        return self._eval(node.body if test else node.orelse, scope, depth)

    def _eval_Subscript(self, node: ast.Subscript, scope, depth):
        target = self._eval(node.value, scope, depth)
        index = self._eval(node.slice, scope, depth)
        if not isinstance(target, list):
            raise ExprError(f"only lists can be indexed, not {_kind(target)}")
        if not isinstance(index, int) or isinstance(index, bool):
            raise ExprError(f"a list index must be an integer, got {_kind(index)}")
        if not -len(target) <= index < len(target):
            raise ExprError(f"index {index} is out of range for a list of {len(target)}")
        return target[index]

    def _eval_Call(self, node: ast.Call, scope, depth):
        name = node.func.id
        args = [self._eval(a, scope, depth) for a in node.args]
        if name in self.functions:
            return self._call_function(self.functions[name], args, depth)
        if name in BUILTINS:
            if name in ("sum", "min", "max"):
                for arg in args:
                    self.size(arg)
            return _call_builtin(name, args)
        raise ExprError(
            f"unknown function `{shorten(name)}`", did_you_mean(name, BUILTINS, self.functions)
        )

    def _call_function(self, fn: Function, args: list[Any], depth: int) -> Any:
        if len(args) != len(fn.args):
            raise ExprError(
                f"{shorten(fn.name)}() takes {len(fn.args)} argument(s), got {len(args)}"
            )
        try:
            return self._eval(fn.body.tree, dict(zip(fn.args, args, strict=True)), depth)
        except BudgetError:
            raise
        except ExprError as exc:
            if exc.message.startswith("in function"):
                raise
            raise ExprError(f"in function `{shorten(fn.name)}`: {exc.message}", exc.hint) from None


_METHODS = {
    getattr(ast, name[len("_eval_") :]): method
    for name, method in vars(Evaluator).items()
    if name.startswith("_eval_")
}


def _measure(value: list) -> tuple[int, int]:
    """Items of a list, nested lists' included, and how deep it nests; stops past MAX_LIST."""
    items, deepest = 0, 0
    pending = [(value, 1)]
    while pending:
        current, level = pending.pop()
        items += len(current)
        deepest = max(deepest, level)
        if items > MAX_LIST or deepest > MAX_DEPTH:
            break
        pending.extend((v, level + 1) for v in current if isinstance(v, list))
    return items, deepest


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return getattr(value, "kind", "a value")


def _need_number(value: Any, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ExprError(f"{what} needs a number, got {_kind(value)}")


def _binop(op: type, left: Any, right: Any) -> Any:
    _need_number(left, "arithmetic")
    _need_number(right, "arithmetic")
    if op in (ast.Div, ast.FloorDiv, ast.Mod) and right == 0:
        raise ExprError("division by zero")
    if op is ast.Pow and (abs(right) > 64 or abs(left) > MAX_INT):
        raise ExprError("exponent too large")
    try:
        return _BINOPS[op](left, right)
    except (OverflowError, ValueError, ZeroDivisionError) as exc:
        raise ExprError(f"arithmetic error: {exc}") from None


def _call_builtin(name: str, args: list[Any]) -> Any:
    try:
        if name in ("min", "max") and len(args) == 1:
            return BUILTINS[name](args[0])
        return BUILTINS[name](*args)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ExprError(f"{name}(): {shorten(str(exc), 120)}") from None


def _bounded(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT:
        raise ExprError(f"value {quote(value)} is out of range (more than {MAX_INT:.0e})")
    if isinstance(value, complex):
        raise ExprError("the result is not a real number")
    if isinstance(value, float) and not math.isfinite(value):
        raise ExprError(f"value {value} is not a finite number")
    if isinstance(value, (list, str)) and len(value) > MAX_LIST:
        raise ExprError(f"value longer than {MAX_LIST} items")
    return value


PYTHON_FUNCTIONS = {"ceil": "math.ceil", "floor": "math.floor"}
PYTHON_CONSTANTS = {"true": "True", "false": "False", "none": "None"}


def to_python(expr: Expr, rename: Callable[[str], str | None] = lambda name: None) -> str:
    """Python source computing `expr`: names mapped by `rename`, ceil/floor via math.

    The result is built from the checked AST with `ast.unparse`, never by splicing text,
    so precedence is kept and nothing outside the expression language can appear.
    """
    return ast.unparse(_Renamer(rename).visit(_copy(expr.tree)))


def _copy(tree: ast.expr) -> ast.expr:
    return ast.parse(ast.unparse(tree), mode="eval").body


class _Renamer(ast.NodeTransformer):
    def __init__(self, rename: Callable[[str], str | None]):
        self.rename = rename

    def visit_Call(self, node: ast.Call) -> ast.AST:
        node.args = [self.visit(a) for a in node.args]
        target = PYTHON_FUNCTIONS.get(node.func.id)
        if target:
            node.func = ast.parse(target, mode="eval").body
        return node

    def visit_Name(self, node: ast.Name) -> ast.AST:
        new = self.rename(node.id) or PYTHON_CONSTANTS.get(node.id)
        return ast.parse(new, mode="eval").body if new else node

    def visit_List(self, node: ast.List) -> ast.AST:
        node.elts = [self.visit(e) for e in node.elts]
        return node


def uses_math(expr: Expr) -> bool:
    """True when the Python form of `expr` needs `import math`."""
    return bool(expr.calls & PYTHON_FUNCTIONS.keys())
