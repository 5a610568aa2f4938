"""Normalisation layers."""

from __future__ import annotations

from archspec.ops.base import Attr, Op, ShapeError, _fmt, _image


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


class LayerNorm(Op):
    """Layer norm over the last axes (nn.LayerNorm(normalized_shape)), with weight and bias."""

    name = "layer_norm"
    attrs = {
        "shape": Attr(
            "ints",
            required=True,
            doc="Sizes of the last axes normalised (PyTorch's normalized_shape): [dim].",
        ),
        "eps": Attr("float", 1e-5, doc="Added to the variance."),
    }
    tensors = ("weight", "bias")

    def shape(self, ins, a):
        shape, norm = ins[0], tuple(a["shape"])
        if len(norm) > len(shape) or shape[len(shape) - len(norm) :] != norm:
            raise ShapeError(
                f"layer_norm: shape {list(norm)} must equal the last axes of the input, "
                f"got {_fmt(shape)}"
            )
        return shape

    def params(self, ins, a):
        return {"weight": tuple(a["shape"]), "bias": tuple(a["shape"])}

    def emit_values(self, a):
        """`axes`: how many last axes are normalised, when the shape is written out."""
        return {"axes": len(a["shape"])} if "shape" in a else {}


class LayerNorm2d(Op):
    """Layer norm over the channels of each pixel of C x H x W (torchvision's LayerNorm2d)."""

    name = "layer_norm2d"
    attrs = {"eps": Attr("float", 1e-5, doc="Added to the variance.")}
    tensors = ("weight", "bias")

    def shape(self, ins, a):
        return _image(ins[0], self.name)

    def params(self, ins, a):
        return {"weight": (ins[0][0],), "bias": (ins[0][0],)}


class GroupNorm(Op):
    """Group norm of C x H x W: `groups` groups of channels, each normalised with its pixels."""

    name = "group_norm"
    attrs = {
        "groups": Attr("int+", required=True, doc="Number of channel groups; divides C."),
        "eps": Attr("float", 1e-5, doc="Added to the variance."),
    }
    tensors = ("weight", "bias")

    def shape(self, ins, a):
        shape = _image(ins[0], self.name)
        if shape[0] % a["groups"]:
            raise ShapeError(f"group_norm: {a['groups']} groups do not divide {shape[0]} channels")
        return shape

    def params(self, ins, a):
        return {"weight": (ins[0][0],), "bias": (ins[0][0],)}
