"""The language of primitive ops: attribute kinds and checkers, the Op base, shape helpers.

Shapes are per sample, without the batch dimension: (C, H, W) for images, (F,) once
flattened, any rank for tokens and permuted maps. Semantics follow PyTorch wherever a
choice is needed (docs/spec-language.md). MACs count convolutions, linear layers and
attention's projections and matrix products only, as networks.md's convention and
torchvision's figures do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Shape = tuple[int, ...]


class ShapeError(Exception):
    """An op applied to inputs it cannot take; the caller adds the node's location."""


class AttrError(Exception):
    """An attribute value of the wrong type or range."""


@dataclass(frozen=True)
class Attr:
    """An op attribute: its kind (how values are checked) and default (None: required)."""

    kind: str
    default: Any = None
    required: bool = False
    doc: str = ""  # for the JSON Schema (`archspec schema`) and editors


def _int(value: Any, low: int | None) -> int:
    if isinstance(value, float) and value.is_integer():
        raise AttrError(f"expected an integer, got the float {value!r} (use // or int())")
    if isinstance(value, bool) or not isinstance(value, int):
        raise AttrError(f"expected an integer, got {value!r}")
    if low is not None and value < low:
        raise AttrError(f"expected an integer >= {low}, got {value}")
    return value


def _pair(value: Any, low: int) -> tuple[int, int]:
    if isinstance(value, list):
        if len(value) != 2:
            raise AttrError(f"expected one integer or a pair [h, w], got {value!r}")
        return (_int(value[0], low), _int(value[1], low))
    v = _int(value, low)
    return (v, v)


def _padding(value: Any) -> str | tuple[tuple[int, int], tuple[int, int]]:
    """'same', or explicit ((top, bottom), (left, right)) from p, [ph, pw] or the nested form."""
    if isinstance(value, str):
        if value != "same":
            raise AttrError(
                f"expected 'same', p, [ph, pw] or [[top, bottom], [left, right]], got {value!r}"
            )
        return value
    if isinstance(value, list) and any(isinstance(v, list) for v in value):
        if len(value) != 2 or not all(isinstance(v, list) and len(v) == 2 for v in value):
            raise AttrError(f"expected [[top, bottom], [left, right]], got {value!r}")
        (t, b), (left, r) = value
        return ((_int(t, 0), _int(b, 0)), (_int(left, 0), _int(r, 0)))
    ph, pw = _pair(value, 0)
    return ((ph, ph), (pw, pw))


def _float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise AttrError(f"expected a number, got {value!r}")
    return float(value)


def _prob(value: Any) -> float:
    value = _float(value)
    if not 0.0 <= value < 1.0:
        raise AttrError(f"expected a probability in [0, 1), got {value}")
    return value


def _unit(value: Any) -> float:
    """A probability that may be 1 (stochastic depth drops every sample then)."""
    value = _float(value)
    if not 0.0 <= value <= 1.0:
        raise AttrError(f"expected a probability in [0, 1], got {value}")
    return value


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise AttrError(f"expected true or false, got {value!r}")
    return value


def _ints(value: Any) -> tuple[int, ...]:
    if not isinstance(value, list) or not value:
        raise AttrError(f"expected a list of integers, got {value!r}")
    return tuple(_int(v, None) for v in value)


# usable as ops and through `op: activation, fn: <expr>`; through `fn` an activation with
# attributes (gelu, leaky_relu) takes their defaults. New names go last: the order is the
# order of the ACTIVATIONS dict in generated modules.
ACTIVATIONS = (
    "relu",
    "relu6",
    "hardswish",
    "hardsigmoid",
    "sigmoid",
    "identity",
    "silu",
    "tanh",
    "gelu",
    "leaky_relu",
)
GELU_APPROXIMATIONS = ("none", "tanh")


def _activation(value: Any) -> str:
    if value not in ACTIVATIONS:
        # the list first: a message is cut at 120 characters, and a value can be long
        raise AttrError(f"expected one of {', '.join(ACTIVATIONS)}; got {value!r}")
    return value


DEPTH_MODES = ("row", "batch")


def _depth_mode(value: Any) -> str:
    if value not in DEPTH_MODES:
        raise AttrError(f"expected 'row' (one draw per sample) or 'batch', got {value!r}")
    return value


def _approximation(value: Any) -> str:
    if value not in GELU_APPROXIMATIONS:
        raise AttrError(f"expected 'none' (exact) or 'tanh', got {value!r}")
    return value


CHECKERS: dict[str, Callable[[Any], Any]] = {
    "int": lambda v: _int(v, None),
    "int+": lambda v: _int(v, 1),
    "int0": lambda v: _int(v, 0),
    "pair+": lambda v: _pair(v, 1),
    "pair0": lambda v: _pair(v, 0),
    "pair?": lambda v: None if v is None else _pair(v, 1),
    "padding": _padding,
    "float": _float,
    "prob": _prob,
    "unit": _unit,
    "depth_mode": _depth_mode,
    "bool": _bool,
    "ints": _ints,
    "ints?": lambda v: None if v is None else _ints(v),
    "activation": _activation,
    "approximation": _approximation,
}


class Op:
    """Base of all ops: one input, shape kept, no parameters, no MACs."""

    name = ""
    attrs: dict[str, Attr] = {}
    min_inputs = 1
    max_inputs = 1
    tensors: tuple[str, ...] = ()  # trainable tensors, in framework order
    # joins several inputs: written as an expression in `forward`, not a module, so it
    # cannot be a sequence item or repeat
    joins = False
    # takes no input: the node is a learnable tensor of its own (one `value`, named by the
    # node's path); not a module, so not a sequence item, not repeated, not conditional
    source = False
    buffer = False  # a source that is a constant buffer (not trainable), not a parameter
    # the input axis whose size the constructor takes (`in_channels`): "first" (conv2d's
    # channels), or "last" (a linear layer's features)
    reads = "first"

    def shape(self, ins: list[Shape], a: dict) -> Shape:
        """Output shape from input shapes and checked attributes."""
        return ins[0]

    def params(self, ins: list[Shape], a: dict) -> dict[str, Shape]:
        """Trainable tensors and their shapes."""
        return {}

    def buffers(self, ins: list[Shape], a: dict) -> dict[str, Shape]:
        """Non-trainable state (BN statistics) and their shapes."""
        return {}

    def macs(self, ins: list[Shape], out: Shape, a: dict) -> int:
        """Multiply-accumulates for one sample."""
        return 0

    def emit_values(self, a: dict) -> dict[str, Any]:
        """Values derived from known checked attributes, for backend tables' `cases`.

        `a` holds only the attributes known at emission; return what can be derived.
        """
        return {}


def _image(shape: Shape, op: str) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise ShapeError(f"{op} expects a C x H x W input, got {_fmt(shape)}")
    return shape  # type: ignore[return-value]


def _fmt(shape: Shape) -> str:
    return " x ".join(map(str, shape)) if shape else "a scalar"


def _window(size: int, k: int, s: int, p: int, d: int, ceil: bool, what: str) -> int:
    """PyTorch's output size (pooling_output_shape), ceil mode included."""
    span = d * (k - 1) + 1
    out = (size + 2 * p - span + (s - 1 if ceil else 0)) // s + 1
    if ceil and (out - 1) * s >= size + p:  # the last window must start inside the input
        out -= 1
    if out < 1:
        raise ShapeError(f"{what} {span} is larger than the padded input ({size} + 2 x {p})")
    return out
