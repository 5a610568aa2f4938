"""Image ops on C x H x W: convolution and pooling.

Padding is symmetric (p or [ph, pw]), explicit ([[top, bottom], [left, right]]) or
TensorFlow's `same`: out = ceil(in / stride), total = max((out - 1) * stride + d * (k - 1)
+ 1 - in, 0), top = total // 2 and the extra unit at the bottom (right). Pools pad with
-inf (max) or leave `same`'s padding out of the average (avg), as TensorFlow does.
"""

from __future__ import annotations

import math
from typing import Any

from archspec.ops.base import Attr, AttrError, Op, ShapeError, _image, _window

PADDING_DOC = "Padding: p or [ph, pw] (each side), [[top, bottom], [left, right]], or 'same'."


def _axis(size: int, k: int, s: int, pads, d: int, ceil: bool, what: str) -> int:
    """Output size on one axis for `same` or (before, after) padding."""
    if pads == "same":
        return math.ceil(size / s)
    before, after = pads
    if before == after:
        return _window(size, k, s, before, d, ceil, what)
    span = d * (k - 1) + 1
    out = (size + before + after - span) // s + 1
    if out < 1:
        raise ShapeError(
            f"{what} {span} is larger than the padded input ({size} + {before} + {after})"
        )
    return out


def _pads(a: dict, axis: int):
    return "same" if a["padding"] == "same" else a["padding"][axis]


def padding_is_literal(value: Any) -> None:
    """Refuse `same` or uneven padding computed from names: emitters choose a framework's
    layer from the padding's form, which must be known when the module is written."""
    if value == "same" or (isinstance(value, list) and any(isinstance(v, list) for v in value)):
        raise AttrError("'same' and [[top, bottom], [left, right]] must be written as literals")


def padding_values(a: dict) -> dict[str, Any]:
    """For backend tables (Op.emit_values): `same`, `uneven`, explicit padding as `pads`
    [top, bottom, left, right] and `explicit` ((top, bottom), (left, right)), and
    `padding` as p or [ph, pw] when it is symmetric."""
    if "padding" not in a:
        return {}
    pad = a["padding"]
    if pad == "same":
        return {"same": True, "uneven": False}
    (t, b), (left, r) = pad
    values = {
        "same": False,
        "uneven": t != b or left != r,
        "pads": [t, b, left, r],
        "explicit": ((t, b), (left, r)),  # a tuple: written as Python's nested tuples
    }
    if not values["uneven"]:
        values["padding"] = t if t == left else [t, left]  # as p or [ph, pw] are written
    return values


class Conv2d(Op):
    """2-D convolution, zero padding, PyTorch weight layout (O, I/groups, kH, kW)."""

    name = "conv2d"
    attrs = {
        "out": Attr("int+", required=True, doc="Output channels."),
        "kernel": Attr("pair+", required=True, doc="Kernel size: k or [kh, kw]."),
        "stride": Attr("pair+", 1, doc="Stride: s or [sh, sw]."),
        "padding": Attr("padding", 0, doc=PADDING_DOC),
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
        (kh, kw), (sh, sw), (dh, dw) = a["kernel"], a["stride"], a["dilation"]
        return (
            a["out"],
            _axis(h, kh, sh, _pads(a, 0), dh, False, "kernel height"),
            _axis(w, kw, sw, _pads(a, 1), dw, False, "kernel width"),
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

    def emit_values(self, a):
        return {
            **padding_values(a),
            **_unit("unit_stride", a.get("stride")),
            **_unit("unit_dilation", a.get("dilation")),
            **_unit("unit_kernel", a.get("kernel")),  # `same` pads a 1x1 kernel by 0
        }


def _unit(name: str, pair) -> dict[str, bool]:
    return {} if pair is None else {name: tuple(pair) == (1, 1)}


class Pool2d(Op):
    """Max or average pooling; stride defaults to the kernel."""

    attrs = {
        "kernel": Attr("pair+", required=True, doc="Window size: k or [kh, kw]."),
        "stride": Attr("pair?", None, doc="Stride (default: the kernel size)."),
        "padding": Attr("padding", 0, doc=PADDING_DOC),
        "ceil_mode": Attr("bool", False, doc="Round the output size up, as PyTorch does."),
    }

    def __init__(self, name: str, extra: dict[str, Attr]):
        self.name = name
        self.attrs = {**Pool2d.attrs, **extra}

    def shape(self, ins, a):
        c, h, w = _image(ins[0], self.name)
        (kh, kw), pad = a["kernel"], a["padding"]
        sh, sw = a["stride"] or a["kernel"]
        if pad != "same":
            self.check_padding(pad, (kh, kw), a["ceil_mode"])
        elif a["ceil_mode"]:
            raise ShapeError(
                "ceil_mode does not apply to padding 'same' (its output is ceil(in / stride))"
            )
        dh, dw = a.get("dilation", (1, 1))
        return (
            c,
            _axis(h, kh, sh, _pads(a, 0), dh, a["ceil_mode"], "pool window height"),
            _axis(w, kw, sw, _pads(a, 1), dw, a["ceil_mode"], "pool window width"),
        )

    @staticmethod
    def check_padding(pad, kernel, ceil_mode: bool) -> None:
        (t, b), (left, r) = pad
        kh, kw = kernel
        if max(t, b) > kh // 2 or max(left, r) > kw // 2:
            shown = (t, left) if t == b and left == r else pad
            raise ShapeError(f"padding {shown} must be at most half the kernel {kernel}")
        if ceil_mode and (t != b or left != r):
            raise ShapeError("ceil_mode needs symmetric padding (PyTorch's rule is defined for it)")

    def emit_values(self, a):
        stride = a.get("stride") or a.get("kernel") if "stride" in a else None
        return {**padding_values(a), **_unit("unit_stride", stride)}


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
