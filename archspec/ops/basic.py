"""Linear layers, activations, softmax, flatten, dropout, stochastic depth: ops of any rank."""

from __future__ import annotations

import math

from archspec.ops.base import Attr, Op, ShapeError, _fmt
from archspec.ops.tensor import axis_of


class Linear(Op):
    """Fully connected layer on the last dimension."""

    name = "linear"
    attrs = {
        "out": Attr("int+", required=True, doc="Output features."),
        "bias": Attr("bool", True, doc="Whether the layer has a bias."),
    }
    tensors = ("weight", "bias")
    reads = "last"

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


class Flatten(Op):
    """Flatten axes `start` to `end` (per sample) into one; by default all but the batch."""

    name = "flatten"
    attrs = {
        "start": Attr("int", 0, doc="First per-sample axis flattened: 0 is the channel axis."),
        "end": Attr("int", -1, doc="Last per-sample axis flattened (included); -1 the last."),
    }

    def shape(self, ins, a):
        shape = ins[0]
        if not shape:
            return (1,)
        start = axis_of(shape, a["start"], self.name, "start")
        end = axis_of(shape, a["end"], self.name, "end")
        if start > end:
            raise ShapeError(
                f"flatten: start {a['start']} comes after end {a['end']} in {_fmt(shape)}"
            )
        return (*shape[:start], math.prod(shape[start : end + 1]), *shape[end + 1 :])


class Dropout(Op):
    """Dropout with probability `p` of zeroing (identity in eval)."""

    name = "dropout"
    attrs = {"p": Attr("prob", 0.5, doc="Probability of zeroing an element.")}


class StochasticDepth(Op):
    """Stochastic depth (torchvision.ops.StochasticDepth): zero whole samples (`row`) or the
    whole batch (`batch`) with probability `p`, scale survivors by 1 / (1 - p); identity in
    eval."""

    name = "stochastic_depth"
    attrs = {
        "p": Attr("unit", required=True, doc="Probability of zeroing a sample (or the batch)."),
        "mode": Attr(
            "depth_mode",
            "row",
            doc="'row' (one draw per sample) or 'batch' (one for the batch); a string.",
        ),
    }
