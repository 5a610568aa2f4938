"""Ops on token grids and windows: cyclic shift, strided slice, padding, matrix products,
scaling, relative position bias and the shifted-window mask.

Shapes are per sample (the batch is never an axis) and of any rank. Window attention is
written with them and the tensor ops (reshape, permute, chunk): no op here knows a network.
"""

from __future__ import annotations

import math

from archspec.ops.base import Attr, Op, ShapeError, _fmt
from archspec.ops.tensor import axis_of


def _axes(shape, axes, op: str) -> list[int]:
    """Distinct per-sample axes, made non-negative."""
    out = [axis_of(shape, a, op) for a in axes]
    if len(set(out)) != len(out):
        raise ShapeError(f"{op}: axes {list(axes)} name one axis twice")
    return out


def _per_axis(a: dict, key: str, axes, op: str, default):
    """An attribute list with one value per axis, or the default for each."""
    values = a.get(key)
    if values is None:
        return [default] * len(axes)
    if len(values) != len(axes):
        raise ShapeError(f"{op}: {key} {list(values)} needs one value per axis of {list(axes)}")
    return list(values)


class Roll(Op):
    """Cyclic shift along per-sample axes (`torch.roll(x, shifts, dims)`)."""

    name = "roll"
    attrs = {
        "shifts": Attr("ints", required=True, doc="Shift per axis (negative: towards 0)."),
        "axes": Attr("ints", required=True, doc="Per-sample axes rolled, one per shift."),
    }

    def shape(self, ins, a):
        _axes(ins[0], a["axes"], self.name)
        _per_axis(a, "shifts", a["axes"], self.name, 0)
        return ins[0]


class Slice(Op):
    """Strided slice of per-sample axes: `x[..., start:stop:step, ...]` per named axis."""

    name = "slice"
    attrs = {
        "axes": Attr("ints", required=True, doc="Per-sample axes sliced: [0, 1]."),
        "start": Attr("ints?", None, doc="First index per axis (>= 0). Default: 0 each."),
        "stop": Attr("ints?", None, doc="End per axis (excluded; <= size). Default: the size."),
        "step": Attr("ints?", None, doc="Step per axis (>= 1). Default: 1 each."),
    }

    def shape(self, ins, a):
        shape = list(ins[0])
        axes = _axes(ins[0], a["axes"], self.name)
        if min(a["axes"]) < 0 <= max(a["axes"]):
            raise ShapeError(
                f"slice: axes {list(a['axes'])} must all count from the front (>= 0) "
                "or all from the back (< 0)"
            )
        starts = _per_axis(a, "start", axes, self.name, 0)
        stops = _per_axis(a, "stop", axes, self.name, None)
        steps = _per_axis(a, "step", axes, self.name, 1)
        for axis, start, stop, step in zip(axes, starts, stops, steps, strict=True):
            size = shape[axis]
            stop = size if stop is None else stop
            if step < 1:
                raise ShapeError(f"slice: step {step} must be 1 or more")
            if not 0 <= start < stop <= size:
                raise ShapeError(
                    f"slice: {start}:{stop} is out of range for axis {axis} of {_fmt(ins[0])} "
                    f"(size {size}; need 0 <= start < stop <= size)"
                )
            shape[axis] = len(range(start, stop, step))
        return tuple(shape)


class Pad(Op):
    """Constant padding of per-sample axes (`F.pad`): `before` and `after` values per axis."""

    name = "pad"
    attrs = {
        "axes": Attr("ints", required=True, doc="Per-sample axes padded: [0, 1]."),
        "before": Attr("ints?", None, doc="Values added before, per axis. Default: 0 each."),
        "after": Attr("ints?", None, doc="Values added after, per axis. Default: 0 each."),
        "value": Attr("float", 0.0, doc="The padding value."),
    }

    def shape(self, ins, a):
        shape = list(ins[0])
        axes = _axes(ins[0], a["axes"], self.name)
        before = _per_axis(a, "before", axes, self.name, 0)
        after = _per_axis(a, "after", axes, self.name, 0)
        for axis, b, e in zip(axes, before, after, strict=True):
            if b < 0 or e < 0:
                raise ShapeError(f"pad: padding {b}, {e} of axis {axis} must be >= 0")
            shape[axis] += b + e
        return tuple(shape)


class Scale(Op):
    """Multiply by a constant (`q * head_dim ** -0.5`)."""

    name = "scale"
    joins = True  # an expression in forward: `x * 0.125`
    attrs = {"factor": Attr("float", required=True, doc="The constant factor.")}


def _broadcast(a, b, what: str) -> tuple[int, ...]:
    rank = max(len(a), len(b))
    a, b = (1,) * (rank - len(a)) + tuple(a), (1,) * (rank - len(b)) + tuple(b)
    if any(p != q and 1 not in (p, q) for p, q in zip(a, b, strict=True)):
        raise ShapeError(what)
    return tuple(max(p, q) for p, q in zip(a, b, strict=True))


class Matmul(Op):
    """Matrix product of two inputs over their last two axes (`torch.matmul`), the axes
    before broadcast; `transpose` uses the second input's last two axes swapped (`q @ k^T`)."""

    name = "matmul"
    joins = True
    min_inputs = max_inputs = 2
    attrs = {
        "transpose": Attr(
            "bool", False, doc="Swap the last two axes of the second input first (q @ k^T)."
        ),
    }

    def shape(self, ins, a):
        x, y = ins
        if len(x) < 2 or len(y) < 2:
            raise ShapeError(f"matmul needs inputs of 2 axes or more, got {_fmt(x)} and {_fmt(y)}")
        k2, m = (y[-1], y[-2]) if a["transpose"] else (y[-2], y[-1])
        if x[-1] != k2:
            t = " (transposed)" if a["transpose"] else ""
            raise ShapeError(
                f"matmul: cannot multiply {_fmt(x)} by {_fmt(y)}{t}: "
                f"inner sizes {x[-1]} and {k2} differ"
            )
        lead = _broadcast(
            x[:-2], y[:-2], f"matmul cannot broadcast the leading axes of {_fmt(x)} and {_fmt(y)}"
        )
        return (*lead, x[-2], m)

    def macs(self, ins, out, a):
        return math.prod(out) * ins[0][-1]


class RelativePositionIndex(Op):
    """The constant index of a window's relative position bias table (a buffer, not
    trainable): for tokens p, q of a wh x ww window (row-major),
    (hp - hq + wh - 1) * (2 ww - 1) + (wp - wq + ww - 1); (wh ww)^2 int64 values."""

    name = "relative_position_index"
    attrs = {"window": Attr("pair+", required=True, doc="The window: w or [wh, ww].")}
    min_inputs = max_inputs = 0
    source = True
    buffer = True  # a constant of its own: in the state dict, never trained nor randomised

    def shape(self, ins, a):
        return (math.prod(a["window"]) ** 2,)

    def buffers(self, ins, a):
        return {"value": self.shape(ins, a)}


class RelativePositionBias(Op):
    """Add a relative position bias to attention logits: inputs [logits (... x heads x N x
    N), table ((2 wh - 1)(2 ww - 1) x heads), index (N N)]; adds table[index] viewed as
    N x N x heads, heads first."""

    name = "relative_position_bias"
    joins = True
    min_inputs = max_inputs = 3

    def shape(self, ins, a):
        x, table, index = ins
        if len(x) < 3 or x[-1] != x[-2]:
            raise ShapeError(
                f"relative_position_bias: logits must be ... x heads x N x N, got {_fmt(x)}"
            )
        if len(table) != 2 or table[1] != x[-3]:
            raise ShapeError(
                f"relative_position_bias: the table {_fmt(table)} must be rows x heads, "
                f"with the {x[-3]} heads of the logits {_fmt(x)}"
            )
        if index != (x[-1] * x[-1],):
            raise ShapeError(
                f"relative_position_bias: the index {_fmt(index)} must hold N x N = "
                f"{x[-1] * x[-1]} values for logits {_fmt(x)}"
            )
        return x


class WindowMask(Op):
    """Add the shifted-window attention mask to logits ... x windows x heads x N x N: -100
    between tokens of one window that came from different regions of the cyclically
    shifted grid (the regions split at -window and -shift on each axis), 0 elsewhere."""

    name = "window_mask"
    attrs = {
        "grid": Attr("pair+", required=True, doc="The (padded) grid: [H, W]."),
        "window": Attr("pair+", required=True, doc="The window: w or [wh, ww]."),
        "shift": Attr("pair0", required=True, doc="The cyclic shift: s or [sh, sw]."),
    }

    def shape(self, ins, a):
        x = ins[0]
        (gh, gw), (wh, ww), (sh, sw) = a["grid"], a["window"], a["shift"]
        if wh > gh or ww > gw:
            raise ShapeError(
                f"window_mask: the window {wh} x {ww} is larger than the grid {gh} x {gw}"
            )
        if gh % wh or gw % ww:
            raise ShapeError(
                f"window_mask: the window {wh} x {ww} does not tile the grid {gh} x {gw} "
                "(pad the grid to a multiple of the window)"
            )
        if sh >= wh or sw >= ww:
            raise ShapeError(
                f"window_mask: the shift {sh} x {sw} must be smaller than the window {wh} x {ww}"
            )
        windows, n = (gh // wh) * (gw // ww), wh * ww
        if len(x) < 4 or x[-4] != windows or x[-1] != n or x[-2] != n:
            raise ShapeError(
                f"window_mask: logits must be ... x {windows} windows x heads x {n} x {n} "
                f"for a {gh} x {gw} grid in {wh} x {ww} windows, got {_fmt(x)}"
            )
        return x
