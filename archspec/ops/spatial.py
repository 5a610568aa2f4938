"""Image ops on C x H x W: convolution and pooling."""

from __future__ import annotations

import math

from archspec.ops.base import Attr, Op, ShapeError, _image, _window


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
