"""The spec language as pydantic models: what a valid YAML spec may contain.

Validation here is structural (keys, types, names, expression syntax). Meaning that
needs values (shapes, which blocks exist, op attributes) is checked in `ir.py`, which
still reports it at the place it was written, through the positions kept by `load.py`.
"""

from __future__ import annotations

import builtins
import keyword
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from archspec.errors import Diagnostic, Pos, SpecError, quote, shorten
from archspec.expr import Expr, ExprError, parse, source_budget
from archspec.load import Document

RESERVED = frozenset(
    {
        "forward",
        "construct",
        "training",
        "parameters",
        "modules",
        "children",
        "state_dict",
        "buffers",
        "named_parameters",
        "cells",
        "train",
        "eval",
        "cuda",
        "to",
        "apply",
        "self",
        "super",
        "x",
        "in_channels",
        "in_height",
        "in_width",
        "i",
    }
)
# names a parameter, let, function, table column or block cannot take: they would shadow
# a Python builtin, a module the generated code imports, or an attribute it sets
SHADOWING = (
    frozenset(
        {n for n in dir(builtins) if not n.startswith("_")}
        | {
            "nn",
            "ops",
            "init",
            "math",
            "torch",
            "paddle",
            "mindspore",
            "ms",
            "np",
            "ACTIVATIONS",
            "out_channels",
            "reset_parameters",
            "ceil",
            "floor",
            "true",
            "false",
            "none",
        }
    )
    | RESERVED
)
PARAM_TYPES = {"int": int, "float": float, "bool": bool, "str": str, "list": list}


def _expr(value: Any) -> Expr:
    try:
        return parse(value)
    except ExprError as exc:
        raise ValueError(exc.message) from None


def _check_identifier(name: str, what: str) -> str:
    if not name.isidentifier() or not name.isascii():
        raise ValueError(f"{what} `{shorten(name)}` is not a valid identifier")
    if keyword.iskeyword(name) or name.startswith("__"):
        raise ValueError(f"{what} `{shorten(name)}` is a reserved word")
    return name


ExprField = Annotated[Expr, BeforeValidator(_expr)]


class Model(BaseModel):
    """Base of every spec model: unknown keys are errors, positions are attached later.

    The docstring under each field documents it; `archspec schema` shows it (schema.py
    reads it from this file). Not pydantic's `use_attribute_docstrings`: that reads the
    source of every model on import, a third of the time of a whole `archspec build`.
    Validators are built on first use (`defer_build`): validating a spec builds one, for
    NetworkSpec and every model inside it, instead of one per model on import.
    """

    model_config = ConfigDict(
        extra="forbid", arbitrary_types_allowed=True, frozen=False, defer_build=True
    )
    _pos: Pos | None = PrivateAttr(default=None)
    _field_pos: dict[str, Pos] = PrivateAttr(default_factory=dict)

    def field_pos(self, name: str) -> Pos:
        """Where the value of one of this mapping's keys was written."""
        return (self.__pydantic_private__ or {}).get("_field_pos", {}).get(name, self.pos)

    @property
    def pos(self) -> Pos:
        """Where this mapping starts in its YAML file."""
        # read from pydantic's own slot: `self._pos` is several times slower, and binding
        # asks for positions on every node it binds
        return (self.__pydantic_private__ or {}).get("_pos") or Pos("<unknown>")


class ParamSpec(Model):
    """A typed parameter with an optional default; `name: 3` and `name: int` are shorthand."""

    type: Literal["int", "float", "bool", "str", "list"]
    """The parameter's type: int, float (an int is accepted), bool, str or list."""
    default: Any = None
    """The default value; without one the parameter is required."""
    required: bool = False
    """Set by archspec when no default is given."""
    choices: list[Any] | None = None
    """The values the parameter may take."""
    doc: str | None = None
    """What the parameter means (the generated constructor's documentation)."""

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, str) and value in PARAM_TYPES:
            return {"type": value, "required": True}
        if not isinstance(value, dict):
            return {"type": _type_of(value), "default": value}
        if "default" not in value and "type" in value:
            return {**value, "required": True}
        if "type" not in value and "default" in value:
            return {**value, "type": _type_of(value["default"])}
        return value

    @model_validator(mode="after")
    def _default_fits(self) -> ParamSpec:
        if not self.required:
            self.default = coerce(self.default, self.type)
            if self.choices is not None and self.default not in self.choices:
                raise ValueError(
                    f"default {quote(self.default)} is not one of {quote(self.choices)}"
                )
        return self


def _type_of(value: Any) -> str:
    for name in ("bool", "int", "float", "str", "list"):
        if isinstance(value, PARAM_TYPES[name]):
            return name
    raise ValueError(f"cannot infer a parameter type from {quote(value)}")


def coerce(value: Any, type_name: str) -> Any:
    """Check a value against a parameter type; ints are accepted where floats are."""
    if type_name == "float" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    expected = PARAM_TYPES[type_name]
    wrong_bool = isinstance(value, bool) and type_name in ("int", "float")
    if wrong_bool or not isinstance(value, expected):
        raise ValueError(f"expected {type_name}, got {quote(value)}")
    return value


class CheckSpec(Model):
    """An assertion over parameters with the message shown when it fails."""

    expr: ExprField
    """A condition over the scope's parameters and lets."""
    message: str
    """The error reported when the condition is false."""


class FunctionSpec(Model):
    """A pure function written in the spec, usable in every expression."""

    args: list[str]
    """The function's argument names."""
    expr: ExprField
    """Its body: one expression over the arguments."""


class TableSpec(Model):
    """Rows of literal data that `for_each` repeats a node over."""

    columns: list[str]
    """Column names, bound by `for_each` in each row."""
    rows: list[list[Any]]
    """Rows of literal values, one per column."""

    @model_validator(mode="after")
    def _rectangular(self) -> TableSpec:
        for name in self.columns:
            _check_identifier(name, "column")
        for i, row in enumerate(self.rows):
            if len(row) != len(self.columns):
                raise ValueError(
                    f"row {i} has {len(row)} values but the table has {len(self.columns)} columns"
                )
        return self


class InitSpec(Model):
    """An initialisation scheme and its arguments: `zeros` or `{kaiming_normal: {...}}`."""

    scheme: str
    """The initialisation scheme."""
    args: dict[str, ExprField] = Field(default_factory=dict)
    """The scheme's arguments."""

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"scheme": value}
        if isinstance(value, dict) and len(value) == 1 and "scheme" not in value:
            ((scheme, args),) = value.items()
            if not isinstance(args, dict):
                args = {"value": args}
            return {"scheme": scheme, "args": args}
        return value


class NodeSpec(Model):
    """One node of a graph: an op, a block call, or a sequence; op attributes inline."""

    model_config = ConfigDict(extra="allow", arbitrary_types_allowed=True)

    name: str | None = None
    """The node's name: its module path segment and its variable in `forward`."""
    op: str | None = None
    """The primitive op this node applies (its attributes are written inline)."""
    key: ExprField | None = None
    """The node's module path segment when it is not `name` (`'block1-0'`): any string
    without `.`; on a sequence item it replaces the index, on a repeated node it names
    each repetition (evaluated per iteration, with `i` bound)."""
    block: ExprField | None = None
    """The block this node calls: a block name, or an expression naming one."""
    seq: list[NodeSpec] | None = None
    """Items applied one after the other, with module paths `0`, `1`, ..."""
    packed: bool = False
    """On a `seq`: absent items vanish and the items after them take the next indices."""
    args: dict[str, ExprField] = Field(default_factory=dict)
    """Arguments of the block call (the block's parameters)."""
    inputs: ExprField | None = None
    """The node's inputs: a node name, a list of names, or (on concat) an expression."""
    when: ExprField | None = None
    """The node exists only when this is true; an absent node stands for its first input."""
    repeat: ExprField | None = None
    """Repeat the node N times in a chain, with `i` = 0..N-1."""
    for_each: str | None = None
    """Repeat the node once per row of this table, with `i` and its columns bound."""
    init: dict[str, InitSpec] = Field(default_factory=dict)
    """Initialisation of this node's tensors, per tensor."""
    doc: str | None = None
    """A comment on the node."""
    __pydantic_extra__: dict[str, ExprField] = Field(init=False)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None:
            _check_identifier(value, "node name")
            if value in RESERVED:
                raise ValueError(f"node name `{value}` is reserved")
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> NodeSpec:
        kinds = [k for k in ("op", "block", "seq") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(
                "a node needs exactly one of `op`, `block` or `seq`"
                + (f" (has {', '.join(kinds)})" if kinds else "")
            )
        if self.repeat is not None and self.for_each is not None:
            raise ValueError("use `repeat` or `for_each`, not both")
        if self.args and self.block is None:
            raise ValueError("`args` belongs to block calls; op attributes are written inline")
        if self.packed and self.seq is None:
            raise ValueError("`packed` belongs to sequences (`seq`)")
        if self.model_extra and self.op is None:
            raise ValueError(f"unknown key `{sorted(self.model_extra)[0]}`")
        return self

    @property
    def attrs(self) -> dict[str, Expr]:
        """The op's attributes as written (inline keys other than the reserved ones)."""
        return self.model_extra or {}

    @property
    def kind(self) -> str:
        """`op`, `block` or `seq`."""
        return "op" if self.op is not None else "block" if self.block is not None else "seq"


class BlockSpec(Model):
    """A named, parametrised subgraph; its input is `x`, its output its last node."""

    doc: str | None = None
    """What the block (or network) is: the generated class's docstring."""
    params: dict[str, ParamSpec] = Field(default_factory=dict)
    """Parameters: constructor arguments (a block's call `args`, a network's `--set`)."""
    let: dict[str, ExprField] = Field(default_factory=dict)
    """Named values computed in order from the parameters."""
    checks: list[CheckSpec] = Field(default_factory=list)
    """Conditions the parameters must meet."""
    nodes: list[NodeSpec]
    """The graph: nodes in order, each fed by the one before unless `inputs` says otherwise."""
    output: str | None = None
    """The output node (default: the last)."""
    order: list[str] | None = None
    """The order some of its top-level nodes' modules are registered in, when it is not the
    order they run in (a module built before one it runs after): their state-dict keys
    follow it. Names of plain module nodes."""

    @field_validator("params", "let")
    @classmethod
    def _scope_names(cls, value: dict) -> dict:
        for name in value:
            _check_identifier(name, "name")
        return value


class InputSpec(Model):
    """The input image: channels, height, width (one sample; the batch is N)."""

    channels: StrictInt = Field(gt=0)
    """Input channels of one sample."""
    height: StrictInt = Field(gt=0)
    """Input height."""
    width: StrictInt = Field(gt=0)
    """Input width."""


class NetworkSpec(BlockSpec):
    """A whole spec file: a network plus the blocks, functions and data it uses."""

    name: str
    """The network's class name in generated code."""
    input: InputSpec
    """The input of one sample (the batch is N)."""
    functions: dict[str, FunctionSpec] = Field(default_factory=dict)
    """Pure functions usable in every expression."""
    tables: dict[str, TableSpec] = Field(default_factory=dict)
    """Tables of literal rows for `for_each`."""
    blocks: dict[str, BlockSpec] = Field(default_factory=dict)
    """Reusable, parametrised subgraphs, by class name."""
    defaults: dict[str, dict[str, ExprField]] = Field(default_factory=dict)
    """Attribute defaults per op for the whole spec."""
    init: dict[str, dict[str, InitSpec]] = Field(default_factory=dict)
    """Initialisation per op and tensor for the whole spec."""

    @field_validator("name")
    @classmethod
    def _class_name(cls, value: str) -> str:
        return _check_identifier(value, "network name")

    @field_validator("blocks", "functions", "tables")
    @classmethod
    def _names(cls, value: dict) -> dict:
        for name in value:
            _check_identifier(name, "name")
        return value


def validate_document(doc: Document) -> NetworkSpec:
    """Validate a loaded document into a NetworkSpec, or raise all errors, located."""
    try:
        with source_budget():
            spec = NetworkSpec.model_validate(doc.data)
    except ValidationError as exc:
        raise SpecError([_diagnostic(doc, err) for err in exc.errors()]) from None
    attach_positions(spec, (), doc)
    return spec


def _diagnostic(doc: Document, err: dict) -> Diagnostic:
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p))
    kind = err["type"]
    if kind == "extra_forbidden":
        return Diagnostic(doc.pos(loc, key=True), f"unknown key `{shorten(str(loc[-1]))}`")
    if kind == "missing":
        return Diagnostic(doc.pos(loc[:-1]), f"missing key `{loc[-1]}`")
    message = err["msg"].removeprefix("Value error, ")
    expected = _EXPECTED.get(kind)
    got = _describe(err.get("input"))
    if expected:
        message = f"expected {expected}, got {got}"
    elif kind == "literal_error":
        message = message.replace("Input should be", "expected") + f", got {got}"
    elif kind == "greater_than":
        message = f"expected a number greater than {err['ctx']['gt']}, got {got}"
    return Diagnostic(doc.pos(loc), message)


def _describe(value: Any) -> str:
    """A value as a message shows it: short scalars as written, containers by kind."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return quote(value, 40)


_EXPECTED = {
    "model_type": "a mapping",
    "dict_type": "a mapping",
    "list_type": "a list",
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "float_type": "a number",
    "float_parsing": "a number",
}


def attach_positions(obj: Any, path: tuple, doc: Document) -> None:
    """Give every model and expression the position of the YAML it came from."""
    pending = [(obj, path)]  # without recursion: specs nest up to load.MAX_NESTING deep
    while pending:
        obj, path = pending.pop()
        if isinstance(obj, Model):
            _attach_model(obj, path, doc, pending)
        elif isinstance(obj, Expr):
            obj.pos = doc.pos(path)
        elif isinstance(obj, dict):
            pending.extend(((v, (*path, k)) for k, v in obj.items() if not _plain(v)))
        elif isinstance(obj, list):
            pending.extend(((v, (*path, i)) for i, v in enumerate(obj) if not _plain(v)))


def _plain(value: Any) -> bool:
    """Values that hold no model or expression (most of a spec's leaves)."""
    return value is None or isinstance(value, (str, int, float))


def _attach_model(obj: Model, path: tuple, doc: Document, pending: list) -> None:
    obj._pos = doc.pos(path)
    if isinstance(obj, InitSpec):  # written `{scheme: {arg: ...}}`, modelled `args: {arg: ...}`
        for key, value in obj.args.items():
            pending.append((value, (*path, obj.scheme, key)))
        return
    positions = doc.positions
    field_pos = obj._field_pos  # a field written nowhere is placed where its mapping starts
    values = obj.__dict__
    fields = type(obj).model_fields
    for name in obj.model_fields_set:  # fields left to their defaults hold nothing to place
        field = fields.get(name)
        if field is None:
            continue
        sub = (*path, field.alias or name)
        where = positions.get(sub)
        if where is not None:
            field_pos[name] = where
        value = values.get(name)
        if not _plain(value):
            pending.append((value, sub))
    if isinstance(obj, NodeSpec):
        pending.extend(((value, (*path, key)) for key, value in obj.attrs.items()))
