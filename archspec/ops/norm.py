"""Normalisation layers."""

from __future__ import annotations

from archspec.ops.base import Attr, Op, _image


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
