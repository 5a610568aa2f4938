"""Joins: ops of several inputs, written as expressions in forward."""

from __future__ import annotations

from archspec.ops.base import Attr, Op, ShapeError, _fmt
from archspec.ops.tensor import axis_of


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
    """Concatenation along one per-sample axis (0, the channels, by default)."""

    name = "concat"
    joins = True
    min_inputs, max_inputs = 1, 10_000
    attrs = {"axis": Attr("int", 0, doc="Per-sample axis joined: 0 is the channel axis.")}

    def shape(self, ins, a):
        axis = axis_of(ins[0], a["axis"], self.name)
        rest = ins[0][:axis] + ins[0][axis + 1 :]  # every axis but the joined one
        for s in ins:
            if len(s) != len(ins[0]) or s[:axis] + s[axis + 1 :] != rest:
                same = "one spatial size" if axis == 0 and len(s) == 3 else "equal other axes"
                raise ShapeError(f"concat needs {same}, got " + ", ".join(map(_fmt, ins)))
        return (*ins[0][:axis], sum(s[axis] for s in ins), *ins[0][axis + 1 :])
