"""The primitive ops: each one's attributes, shape rule, parameters and MACs, registered once.

Shapes are per sample, without the batch dimension: (C, H, W) for images, (F,) once
flattened. Semantics follow PyTorch wherever a choice is needed (docs/spec-language.md).
MACs count convolutions and linear layers only, as networks.md's convention does.
"""

from __future__ import annotations

import math
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


def _float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise AttrError(f"expected a number, got {value!r}")
    return float(value)


def _prob(value: Any) -> float:
    value = _float(value)
    if not 0.0 <= value < 1.0:
        raise AttrError(f"expected a probability in [0, 1), got {value}")
    return value


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise AttrError(f"expected true or false, got {value!r}")
    return value


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
    "float": _float,
    "prob": _prob,
    "bool": _bool,
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


class Conv2d(Op):
    """2-D convolution, zero padding, PyTorch weight layout (O, I/groups, kH, kW)."""

    name = "conv2d"
    attrs = {
        "out": Attr("int+", required=True, doc="Output channels."),
        "kernel": Attr("pair+", required=True, doc="Kernel size: k or [kh, kw]."),
        "stride": Attr("pair+", 1, doc="Stride: s or [sh, sw]."),
        "padding": Attr("pair0", 0, doc="Zero padding on each side: p or [ph, pw]."),
        "dilation": Attr("pair+", 1, doc="Dilation: d or [dh, dw]."),
        "groups": Attr("int+", 1, doc="Groups (in_channels for a depthwise convolution)."),
        "bias": Attr("bool", True, doc="Whether the convolution has a bias."),
    }
    tensors = ("weight", "bias")

    def shape(self, ins, a):
        c, h, w = _image(ins[0], self.name)
        g = a["groups"]
        if c % g or a["out"] % g:
            raise ShapeError(
                f"groups={g} must divide the input channels ({c}) and out ({a['out']})"
            )
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (
            a["kernel"],
            a["stride"],
            a["padding"],
            a["dilation"],
        )
        return (
            a["out"],
            _window(h, kh, sh, ph, dh, False, "kernel height"),
            _window(w, kw, sw, pw, dw, False, "kernel width"),
        )

    def params(self, ins, a):
        kh, kw = a["kernel"]
        shapes = {"weight": (a["out"], ins[0][0] // a["groups"], kh, kw)}
        if a["bias"]:
            shapes["bias"] = (a["out"],)
        return shapes

    def macs(self, ins, out, a):
        kh, kw = a["kernel"]
        return math.prod(out) * (ins[0][0] // a["groups"]) * kh * kw


class BatchNorm2d(Op):
    """Batch norm over channels; momentum in PyTorch's convention."""

    name = "batchnorm2d"
    attrs = {
        "eps": Attr("float", 1e-5, doc="Added to the variance."),
        "momentum": Attr(
            "prob", 0.1, doc="Weight of the new batch in the running statistics (PyTorch's)."
        ),
    }
    tensors = ("weight", "bias")

    def shape(self, ins, a):
        return _image(ins[0], self.name)

    def params(self, ins, a):
        return {"weight": (ins[0][0],), "bias": (ins[0][0],)}

    def buffers(self, ins, a):
        return {"running_mean": (ins[0][0],), "running_var": (ins[0][0],)}


class Linear(Op):
    """Fully connected layer on the last dimension."""

    name = "linear"
    attrs = {
        "out": Attr("int+", required=True, doc="Output features."),
        "bias": Attr("bool", True, doc="Whether the layer has a bias."),
    }
    tensors = ("weight", "bias")

    def shape(self, ins, a):
        if not ins[0]:
            raise ShapeError("linear needs at least one dimension")
        return (*ins[0][:-1], a["out"])

    def params(self, ins, a):
        shapes = {"weight": (a["out"], ins[0][-1])}
        if a["bias"]:
            shapes["bias"] = (a["out"],)
        return shapes

    def macs(self, ins, out, a):
        return math.prod(out) * ins[0][-1]


class Activation(Op):
    """`op: activation, fn: <expr>` picks one of ACTIVATIONS by value."""

    name = "activation"
    attrs = {
        "fn": Attr("activation", required=True, doc="The activation's name, an expression."),
    }


class Elementwise(Op):
    """relu, relu6, hardswish, hardsigmoid, sigmoid, identity, silu, tanh: shape kept."""

    def __init__(self, name: str):
        self.name = name


class Gelu(Op):
    """GELU, x * Phi(x): exact (erf) by default, or PyTorch's tanh approximation."""

    name = "gelu"
    attrs = {
        "approximate": Attr(
            "approximation",
            "none",
            doc="'none' (exact, with erf) or 'tanh' (PyTorch's approximation); a string.",
        ),
    }


class LeakyRelu(Op):
    """Leaky ReLU: x for x >= 0, slope * x below."""

    name = "leaky_relu"
    attrs = {
        "slope": Attr("float", 0.01, doc="Slope for negative inputs (PyTorch's negative_slope)."),
    }


class Softmax(Op):
    """Softmax over one per-sample axis (0: channels of C x H x W; -1: the last)."""

    name = "softmax"
    attrs = {
        "axis": Attr(
            "int",
            -1,
            doc="Per-sample axis, without the batch: 0 is the channel axis, -1 the last.",
        ),
    }

    def shape(self, ins, a):
        rank, axis = len(ins[0]), a["axis"]
        if not -rank <= axis < rank:
            layout = {1: "F", 3: "C x H x W"}.get(rank, _fmt(ins[0]))
            valid = f"-{rank} to {rank - 1}" if rank else "none"
            raise ShapeError(
                f"{self.name}: axis {axis} is out of range for a {rank}-d input ({layout}); "
                f"valid axes: {valid}"
            )
        return ins[0]


class LogSoftmax(Softmax):
    """Log of the softmax over one per-sample axis (0: channels of C x H x W; -1: the last)."""

    name = "log_softmax"


class Pool2d(Op):
    """Max or average pooling; stride defaults to the kernel."""

    attrs = {
        "kernel": Attr("pair+", required=True, doc="Window size: k or [kh, kw]."),
        "stride": Attr("pair?", None, doc="Stride (default: the kernel size)."),
        "padding": Attr("pair0", 0, doc="Padding on each side."),
        "ceil_mode": Attr("bool", False, doc="Round the output size up, as PyTorch does."),
    }

    def __init__(self, name: str, extra: dict[str, Attr]):
        self.name = name
        self.attrs = {**Pool2d.attrs, **extra}

    def shape(self, ins, a):
        c, h, w = _image(ins[0], self.name)
        (kh, kw), (ph, pw) = a["kernel"], a["padding"]
        sh, sw = a["stride"] or a["kernel"]
        if ph > kh // 2 or pw > kw // 2:
            raise ShapeError(
                f"padding {a['padding']} must be at most half the kernel {a['kernel']}"
            )
        dh, dw = a.get("dilation", (1, 1))
        return (
            c,
            _window(h, kh, sh, ph, dh, a["ceil_mode"], "pool window height"),
            _window(w, kw, sw, pw, dw, a["ceil_mode"], "pool window width"),
        )


class GlobalAvgPool(Op):
    """Average over the whole spatial extent: C x 1 x 1."""

    name = "global_avg_pool"

    def shape(self, ins, a):
        return (_image(ins[0], self.name)[0], 1, 1)


class AdaptiveAvgPool2d(Op):
    """Average pooling to a fixed output size."""

    name = "adaptive_avg_pool2d"
    attrs = {"output": Attr("pair+", required=True, doc="Output size: s or [h, w].")}

    def shape(self, ins, a):
        return (_image(ins[0], self.name)[0], *a["output"])


class GlobalMaxPool(Op):
    """Maximum over the whole spatial extent: C x 1 x 1."""

    name = "global_max_pool"

    def shape(self, ins, a):
        return (_image(ins[0], self.name)[0], 1, 1)


class AdaptiveMaxPool2d(Op):
    """Max pooling to a fixed output size (PyTorch's windows: floor start, ceil end)."""

    name = "adaptive_max_pool2d"
    attrs = {"output": Attr("pair+", required=True, doc="Output size: s or [h, w].")}

    def shape(self, ins, a):
        return (_image(ins[0], self.name)[0], *a["output"])


class Flatten(Op):
    """Flatten everything but the batch."""

    name = "flatten"

    def shape(self, ins, a):
        return (math.prod(ins[0]),)


class Dropout(Op):
    """Dropout with probability `p` of zeroing (identity in eval)."""

    name = "dropout"
    attrs = {"p": Attr("prob", 0.5, doc="Probability of zeroing an element.")}


class Add(Op):
    """Element-wise sum of inputs of one shape."""

    name = "add"
    joins = True
    min_inputs, max_inputs = 2, 64

    def shape(self, ins, a):
        if any(s != ins[0] for s in ins):
            raise ShapeError("add needs inputs of one shape, got " + ", ".join(map(_fmt, ins)))
        return ins[0]


class Multiply(Op):
    """Element-wise product with broadcasting (squeeze-excite: C x H x W times C x 1 x 1)."""

    name = "multiply"
    joins = True
    min_inputs, max_inputs = 2, 2

    def shape(self, ins, a):
        a_, b_ = ins
        if len(a_) != len(b_) or any(
            p != q and 1 not in (p, q) for p, q in zip(a_, b_, strict=True)
        ):
            raise ShapeError(f"multiply cannot broadcast {_fmt(a_)} with {_fmt(b_)}")
        if b_[0] not in (a_[0], 1):
            # the product keeps the first input's channels (a gate scales a feature map)
            raise ShapeError(
                f"multiply: the second input {_fmt(b_)} has more channels than the first, "
                f"{_fmt(a_)} (put the feature map first)"
            )
        return tuple(max(p, q) for p, q in zip(a_, b_, strict=True))


class Concat(Op):
    """Concatenation along channels."""

    name = "concat"
    joins = True
    min_inputs, max_inputs = 1, 10_000

    def shape(self, ins, a):
        for s in ins:
            _image(s, self.name)
            if s[1:] != ins[0][1:]:
                raise ShapeError("concat needs one spatial size, got " + ", ".join(map(_fmt, ins)))
        return (sum(s[0] for s in ins), *ins[0][1:])


OPS: dict[str, Op] = {
    op.name: op
    for op in [
        Conv2d(),
        BatchNorm2d(),
        Linear(),
        Activation(),
        GlobalAvgPool(),
        AdaptiveAvgPool2d(),
        GlobalMaxPool(),
        AdaptiveMaxPool2d(),
        Softmax(),
        LogSoftmax(),
        Flatten(),
        Dropout(),
        Add(),
        Multiply(),
        Concat(),
        Pool2d("max_pool2d", {"dilation": Attr("pair+", 1, doc="Dilation of the window.")}),
        Pool2d(
            "avg_pool2d",
            {"count_include_pad": Attr("bool", True, doc="Count the padding in the average.")},
        ),
        Gelu(),
        LeakyRelu(),
        *(Elementwise(n) for n in ACTIVATIONS if n not in (Gelu.name, LeakyRelu.name)),
    ]
}

INIT_SCHEMES: dict[str, dict[str, Any]] = {
    "default": {},  # the framework's own default for the layer (PyTorch's, emitted in each)
    "zeros": {},
    "ones": {},
    "constant": {"value": None},
    "normal": {"mean": 0.0, "std": 1.0},
    "uniform": {"low": 0.0, "high": 1.0},
    "kaiming_normal": {"mode": "fan_in", "nonlinearity": "leaky_relu", "a": 0.0},
    "kaiming_uniform": {"mode": "fan_in", "nonlinearity": "leaky_relu", "a": 0.0},
    "xavier_normal": {"gain": 1.0},
    "xavier_uniform": {"gain": 1.0},
}
