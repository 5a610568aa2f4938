"""Tensor ops of any rank: permute, reshape, chunk, split, channel shuffle.

Axes are per sample (the batch is never an axis): 0 is the channel axis of C x H x W,
-1 the last. `chunk` and `split` have several outputs: a later node names one part with
`inputs: "parts[1]"`, and they are written in `forward` (no module), like the joins.
"""

from __future__ import annotations

import math

from archspec.ops.base import Attr, Op, Shape, ShapeError, _fmt, _image


def axis_of(shape: Shape, axis: int, op: str, what: str = "axis") -> int:
    """A per-sample axis, made non-negative; out of range is a ShapeError naming the rank."""
    rank = len(shape)
    if not -rank <= axis < rank:
        valid = f"-{rank} to {rank - 1}" if rank else "none"
        raise ShapeError(
            f"{op}: {what} {axis} is out of range for a {rank}-d input ({_fmt(shape)}); "
            f"valid axes: {valid}"
        )
    return axis % rank


class Permute(Op):
    """Reorder the per-sample axes (`dims: [1, 2, 0]`: C x H x W -> H x W x C)."""

    name = "permute"
    attrs = {
        "dims": Attr(
            "ints",
            required=True,
            doc="A permutation of the per-sample axes 0 .. rank-1: [1, 2, 0].",
        ),
    }

    def shape(self, ins, a):
        shape, dims = ins[0], list(a["dims"])
        if sorted(dims) != list(range(len(shape))):
            raise ShapeError(
                f"permute: dims {dims} is not a permutation of the {len(shape)} axes "
                f"of {_fmt(shape)} (0 to {len(shape) - 1})"
            )
        return tuple(shape[d] for d in dims)


class Reshape(Op):
    """A new per-sample shape of the same size; one size may be -1 (inferred)."""

    name = "reshape"
    attrs = {
        "shape": Attr(
            "ints",
            required=True,
            doc="The per-sample shape, e.g. [4, -1]; one -1 is inferred from the size.",
        ),
    }

    def shape(self, ins, a):
        size, want = math.prod(ins[0]), list(a["shape"])
        if not want or any(s < 1 and s != -1 for s in want) or want.count(-1) > 1:
            raise ShapeError(
                f"reshape: shape {want} needs sizes >= 1 and at most one -1, and one axis or more"
            )
        known = math.prod(s for s in want if s != -1)
        if -1 in want and size % known == 0:
            want[want.index(-1)] = size // known
        if math.prod(want) != size:
            raise ShapeError(
                f"reshape: cannot view {_fmt(ins[0])} ({size} values) as {list(a['shape'])}"
            )
        return tuple(want)


class ChannelShuffle(Op):
    """Interleave channel groups: the channels viewed as (g, C/g), transposed to (C/g, g)."""

    name = "channel_shuffle"
    attrs = {"groups": Attr("int+", required=True, doc="Groups; must divide the channels.")}

    def shape(self, ins, a):
        c = _image(ins[0], self.name)[0]
        if c % a["groups"]:
            raise ShapeError(f"channel_shuffle: {a['groups']} groups do not divide {c} channels")
        return ins[0]


class MultiOutput(Op):
    """An op with several outputs, addressed as `node[k]`; `shape` is the first one's."""

    joins = True  # written in forward: not a sequence item, never repeated

    def parts(self, ins: list[Shape], a: dict) -> list[Shape]:
        """The shapes of every output, in order."""
        raise NotImplementedError

    def count(self, a: dict) -> int:
        """How many outputs (known from the attributes alone)."""
        raise NotImplementedError

    def shape(self, ins, a):
        return self.parts(ins, a)[0]


class Chunk(MultiOutput):
    """Split into `chunks` equal parts along one axis (`x1, x2 = x.chunk(2, dim=1)`)."""

    name = "chunk"
    attrs = {
        "chunks": Attr("int+", required=True, doc="Number of parts; must divide the axis."),
        "axis": Attr("int", 0, doc="Per-sample axis: 0 is the channel axis."),
    }

    def count(self, a):
        return a["chunks"]

    def parts(self, ins, a):
        shape, k = ins[0], a["chunks"]
        axis = axis_of(shape, a["axis"], self.name)
        if shape[axis] % k:
            raise ShapeError(
                f"chunk: {k} chunks do not divide axis {a['axis']} of {_fmt(shape)} "
                f"(size {shape[axis]})"
            )
        part = (*shape[:axis], shape[axis] // k, *shape[axis + 1 :])
        return [part] * k


class Split(MultiOutput):
    """Split along one axis into parts of the given sizes (`torch.split(x, [a, b], dim=1)`)."""

    name = "split"
    attrs = {
        "sizes": Attr("ints", required=True, doc="Sizes of the parts; they sum to the axis."),
        "axis": Attr("int", 0, doc="Per-sample axis: 0 is the channel axis."),
    }

    def count(self, a):
        return len(a["sizes"])

    def parts(self, ins, a):
        shape, sizes = ins[0], list(a["sizes"])
        axis = axis_of(shape, a["axis"], self.name)
        if len(sizes) < 2 or min(sizes) < 1 or sum(sizes) != shape[axis]:
            raise ShapeError(
                f"split: sizes {sizes} must be two or more sizes >= 1 summing to axis "
                f"{a['axis']} of {_fmt(shape)} (size {shape[axis]})"
            )
        return [(*shape[:axis], s, *shape[axis + 1 :]) for s in sizes]
