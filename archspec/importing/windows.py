"""`archspec import`, windowed attention: the functions torchvision keeps whole under
torch.fx (`torch.fx.wrap`) for attention in shifted windows, written as the primitives
they compute, in the order the spec language's window ops take them:

- `_get_relative_position_bias(table, index, window)`: the learnable table (a `parameter`)
  and the constant index (`relative_position_index`), keyed as the module's own;
- `shifted_window_attention(x, qkv_weight, proj_weight, bias, window, heads, shift, ...)`:
  pad to whole windows, cyclic shift, window partition, `qkv`, heads, the scaled q k^T,
  the relative position bias, the shifted-window mask, softmax, attn v, `proj`, windows
  merged back, the shift undone, the padding cut off;
- `_patch_merging_pad(x)`: even sizes, the four 2x2 phases concatenated on the channels.

Sizes are the traced run's (the map's height and width at this input size).
"""

from __future__ import annotations

from typing import Any

from archspec.importing.calls import value_of
from archspec.importing.modules import Unsupported

LIBRARY = "torchvision."


def expansion(target):
    """The expander of a library function kept whole by torch.fx, or None."""
    module = getattr(target, "__module__", "") or ""
    if not module.startswith(LIBRARY):
        return None
    return _EXPANDERS.get(getattr(target, "__name__", ""))


class _Writer:
    """Primitives named after the call (`<call>_<k>`), the last one under its own name."""

    def __init__(self, node, make):
        self.node, self.make, self.items = node, make, []

    def add(self, op: str, attrs: dict, inputs: list[str], leaf: str | None = None, params=()):
        name = f"{self.node.name}_{len(self.items)}"
        self.items.append(self.make(name, op, attrs, inputs, leaf, list(params)))
        return name

    def done(self) -> list:
        self.items[-1].name = self.node.name  # what the call's readers read
        return self.items


def _arg(node, index: int, name: str, default=None):
    return node.args[index] if len(node.args) > index else node.kwargs.get(name, default)


def _weight_path(arg) -> str:
    if not hasattr(arg, "op") or arg.op != "get_attr":
        raise Unsupported("a weight that is not a module's own tensor")
    return arg.target


def _relative_position_bias(node, make) -> list:
    w = _Writer(node, make)
    table, index = _weight_path(node.args[0]), _weight_path(node.args[1])
    window = list(_arg(node, 2, "window_size"))
    shape = list(value_of(node.args[0]).shape)
    w.add("parameter", {"shape": shape}, [], table, [table.rpartition(".")[2]])
    w.add("relative_position_index", {"window": window}, [], index, [index.rpartition(".")[2]])
    return w.items  # read by the attention as `<call>_0` and `<call>_1`


def _shifted_window_attention(node, make) -> list:
    if _arg(node, 11, "logit_scale") is not None:
        raise Unsupported("cosine attention (a logit scale)")
    x = node.args[0]
    h, wd, c = value_of(x).shape[1:]
    window, heads = list(_arg(node, 4, "window_size")), _arg(node, 5, "num_heads")
    shift = list(_arg(node, 6, "shift_size"))
    pad = [(window[0] - h % window[0]) % window[0], (window[1] - wd % window[1]) % window[1]]
    grid = [h + pad[0], wd + pad[1]]
    shift = [0 if window[k] >= grid[k] else shift[k] for k in (0, 1)]
    rows, cols, n = grid[0] // window[0], grid[1] // window[1], window[0] * window[1]
    bias = _arg(node, 3, "relative_position_bias")
    w = _Writer(node, make)
    prev = x.name
    if any(pad):
        prev = w.add("pad", {"axes": [0, 1], "after": pad}, [prev])
    if any(shift):
        prev = w.add("roll", {"shifts": [-s for s in shift], "axes": [0, 1]}, [prev])
    prev = w.add("reshape", {"shape": [rows, window[0], cols, window[1], c]}, [prev])
    prev = w.add("permute", {"dims": [0, 2, 1, 3, 4]}, [prev])
    prev = w.add("reshape", {"shape": [rows * cols, n, c]}, [prev])
    prev = _linear(w, node.args[1], prev, _arg(node, 9, "qkv_bias"))
    prev = w.add("reshape", {"shape": [rows * cols, n, 3, heads, c // heads]}, [prev])
    prev = w.add("permute", {"dims": [2, 0, 3, 1, 4]}, [prev])
    parts = w.add("chunk", {"chunks": 3, "axis": 0}, [prev])
    q = w.add("scale", {"factor": (c // heads) ** -0.5}, [f"{parts}[0]"])
    k = w.add("permute", {"dims": [0, 1, 2, 4, 3]}, [f"{parts}[1]"])
    prev = w.add("matmul", {}, [q, k])
    prev = w.add("relative_position_bias", {}, [prev, f"{bias.name}_0", f"{bias.name}_1"])
    if any(shift):
        prev = w.add("window_mask", {"grid": grid, "window": window, "shift": shift}, [prev])
    prev = w.add("softmax", {"axis": -1}, [prev])
    prev = w.add("dropout", {"p": _arg(node, 7, "attention_dropout", 0.0)}, [prev])
    prev = w.add("matmul", {}, [prev, f"{parts}[2]"])
    prev = w.add("permute", {"dims": [0, 1, 3, 2, 4]}, [prev])
    prev = w.add("reshape", {"shape": [rows * cols, n, c]}, [prev])
    prev = _linear(w, node.args[2], prev, _arg(node, 10, "proj_bias"))
    prev = w.add("dropout", {"p": _arg(node, 8, "dropout", 0.0)}, [prev])
    prev = w.add("reshape", {"shape": [rows, cols, window[0], window[1], c]}, [prev])
    prev = w.add("permute", {"dims": [0, 2, 1, 3, 4]}, [prev])
    prev = w.add("reshape", {"shape": [grid[0], grid[1], c]}, [prev])
    if any(shift):
        prev = w.add("roll", {"shifts": shift, "axes": [0, 1]}, [prev])
    if any(pad):
        prev = w.add("slice", {"axes": [0, 1], "stop": [h, wd]}, [prev])
    return w.done()


def _linear(w: _Writer, weight, x: str, bias) -> str:
    """The linear layer whose weight the function was given, keyed by its module."""
    path = _weight_path(weight).rpartition(".")[0]
    out = value_of(weight).shape[0]
    params = ["weight"] + (["bias"] if bias is not None else [])
    return w.add("linear", {"out": out, "bias": bias is not None}, [x], path, params)


def _patch_merging_pad(node, make) -> list:
    x = node.args[0]
    h, wd = value_of(x).shape[-3:-1]
    w = _Writer(node, make)
    prev = x.name
    if h % 2 or wd % 2:
        prev = w.add("pad", {"axes": [0, 1], "after": [h % 2, wd % 2]}, [prev])
    phases = [
        w.add("slice", {"axes": [0, 1], "start": start, "step": [2, 2]}, [prev])
        for start in ([0, 0], [1, 0], [0, 1], [1, 1])
    ]
    w.add("concat", {"axis": -1}, phases)
    return w.done()


_EXPANDERS: dict[str, Any] = {
    "_get_relative_position_bias": _relative_position_bias,
    "shifted_window_attention": _shifted_window_attention,
    "_patch_merging_pad": _patch_merging_pad,
}
