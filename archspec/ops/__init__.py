"""The primitive ops: each one's attributes, shape rule, parameters and MACs, registered once.

One module per family (`spatial`, `norm`, `basic`, `joins`, ...); this registry is the
only list of them. A new op is a class in its family's module and a line here.
"""

from __future__ import annotations

from typing import Any

from archspec.ops.attention import MultiheadAttention, Select
from archspec.ops.base import (
    ACTIVATIONS,
    CHECKERS,
    GELU_APPROXIMATIONS,
    Attr,
    AttrError,
    Op,
    Shape,
    ShapeError,
)
from archspec.ops.basic import (
    Activation,
    Dropout,
    Elementwise,
    Flatten,
    Gelu,
    LeakyRelu,
    Linear,
    LogSoftmax,
    Softmax,
    StochasticDepth,
)
from archspec.ops.joins import Add, Concat, Multiply
from archspec.ops.norm import BatchNorm2d, GroupNorm, LayerNorm, LayerNorm2d
from archspec.ops.param import Parameter
from archspec.ops.spatial import (
    AdaptiveAvgPool2d,
    AdaptiveMaxPool2d,
    Conv2d,
    GlobalAvgPool,
    GlobalMaxPool,
    Pool2d,
)
from archspec.ops.tensor import ChannelShuffle, Chunk, MultiOutput, Permute, Reshape, Split
from archspec.ops.window import (
    Matmul,
    Pad,
    RelativePositionBias,
    RelativePositionIndex,
    Roll,
    Scale,
    Slice,
    WindowMask,
)

__all__ = [
    "ACTIVATIONS",
    "CHECKERS",
    "GELU_APPROXIMATIONS",
    "INIT_SCHEMES",
    "OPS",
    "Activation",
    "Attr",
    "AttrError",
    "MultiOutput",
    "Op",
    "Shape",
    "ShapeError",
]

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
        # new ops go below, one line each (the order is the schema's and the docs')
        StochasticDepth(),
        Permute(),
        Reshape(),
        Chunk(),
        Split(),
        ChannelShuffle(),
        LayerNorm(),
        LayerNorm2d(),
        GroupNorm(),
        Parameter(),
        Roll(),
        Slice(),
        Pad(),
        Scale(),
        Matmul(),
        RelativePositionIndex(),
        RelativePositionBias(),
        WindowMask(),
        Select(),
        MultiheadAttention(),
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
    "trunc_normal": {"mean": 0.0, "std": 1.0, "a": -2.0, "b": 2.0},  # bounds absolute, as torch's
}
