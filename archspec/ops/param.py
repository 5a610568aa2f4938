"""Learnable tensors as nodes: a parameter of a given shape, used by the ops after it."""

from __future__ import annotations

from archspec.ops.base import Attr, Op, ShapeError


class Parameter(Op):
    """A learnable tensor of its own (a layer scale, a class token, a position embedding).

    It takes no input: later nodes name it in their `inputs` (`multiply`, `add`, `concat`).
    It lives in its block's module at the node's name (`features.1.0.layer_scale`), starts
    at zeros, and its `init` (the tensor `value`) is applied in `reset_parameters`.

    Without `batch_axis` its `shape` is the whole tensor's (`[dim, 1, 1]`); with it the
    tensor has a leading axis of 1 before `shape` (PyTorch's `[1, L, D]` position
    embedding), which add and multiply broadcast over the batch and concat expands to it.
    """

    name = "parameter"
    attrs = {
        "shape": Attr(
            "ints",
            required=True,
            doc="The tensor's shape, all of it: [dim, 1, 1]; with batch_axis, after the 1.",
        ),
        "batch_axis": Attr(
            "bool",
            False,
            doc="A leading axis of 1 before `shape` (a [1, L, D] tensor), broadcast over "
            "the batch by add and multiply, expanded to it by concat.",
        ),
    }
    min_inputs = max_inputs = 0
    tensors = ("value",)
    source = True

    def shape(self, ins, a):
        if any(s < 1 for s in a["shape"]):
            raise ShapeError(f"parameter: shape {list(a['shape'])} needs sizes >= 1")
        return tuple(a["shape"])

    def params(self, ins, a):
        return {"value": (1, *a["shape"]) if a["batch_axis"] else tuple(a["shape"])}
