"""Tokens and attention: selecting one token, multi-head self-attention.

Tokens are per-sample `L x D` tensors (L tokens of width D), the batch first in every
framework, as PyTorch's `batch_first=True` layers take them.
"""

from __future__ import annotations

from archspec.ops.base import Attr, Op, ShapeError, _fmt
from archspec.ops.tensor import axis_of


class Select(Op):
    """One index along one per-sample axis, the axis dropped (`x[:, 0]`: the first token)."""

    name = "select"
    joins = True  # an indexing expression in forward, not a module
    attrs = {
        "index": Attr("int", required=True, doc="The index taken; negative counts from the end."),
        "axis": Attr("int", 0, doc="Per-sample axis: 0 is the first after the batch."),
    }

    def shape(self, ins, a):
        shape, index = ins[0], a["index"]
        axis = axis_of(shape, a["axis"], self.name)
        if not -shape[axis] <= index < shape[axis]:
            raise ShapeError(
                f"select: index {index} is out of range for axis {a['axis']} of "
                f"{_fmt(shape)} (size {shape[axis]})"
            )
        return (*shape[:axis], *shape[axis + 1 :])


class MultiheadAttention(Op):
    """Multi-head self-attention of `L x D` tokens, as torch.nn.MultiheadAttention(D, heads,
    dropout, bias, batch_first=True) called with the tokens as query, key and value.

    Its tensors are PyTorch's: the query, key and value projections stacked in
    `in_proj_weight` (3D x D) and `in_proj_bias`, and the output projection `out_proj`.
    """

    name = "multihead_attention"
    attrs = {
        "heads": Attr("int+", required=True, doc="Attention heads; must divide the width D."),
        "dropout": Attr("prob", 0.0, doc="Dropout on the attention weights (in training only)."),
        "bias": Attr("bool", True, doc="Biases of the input and output projections."),
    }
    tensors = ("in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias")
    reads = "last"

    def shape(self, ins, a):
        shape = ins[0]
        if len(shape) != 2:
            raise ShapeError(
                f"multihead_attention expects L x D tokens (a 2-d input per sample), "
                f"got {_fmt(shape)}"
            )
        if shape[1] % a["heads"]:
            raise ShapeError(
                f"multihead_attention: {a['heads']} heads do not divide the width {shape[1]}"
            )
        return shape

    def params(self, ins, a):
        d = ins[0][-1]
        shapes = {"in_proj_weight": (3 * d, d)}
        if a["bias"]:
            shapes["in_proj_bias"] = (3 * d,)
        shapes["out_proj.weight"] = (d, d)
        if a["bias"]:
            shapes["out_proj.bias"] = (d,)
        return shapes

    def macs(self, ins, out, a):
        """The projections as linear layers (L x D x 3D in, L x D x D out), and the two
        products, scores and weighted values (L x L x D/heads each, per head)."""
        length, d = ins[0]
        return length * d * 3 * d + length * d * d + 2 * length * length * d
