"""`archspec import`, lifting calls: a traced function or tensor method as a primitive
(`torch.flatten(x, 1)`, `out += identity`, `x.chunk(2, dim=1)`), as a module's own op when
it runs on that module's weights (`F.batch_norm(x, self.running_mean, ...)`: timm's
BatchNormAct2d), or as an alias when it hands a value on unchanged (`x.contiguous()`, one
part of a chunk).

Every node knows its value in the real run beside the trace (capture.py), so a reshape
is written with the sizes it made, and a view that only merges axes is a `flatten`.
Axes are per sample in a spec (the batch axis is not counted): PyTorch's dim 1 is axis 0.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from functools import cache
from typing import Any

from archspec.importing.modules import Unsupported, avg_pool, axis, max_pool, pair


@dataclass
class Call:
    """A call as one primitive: its op, attributes and the fx values it reads; `owner` is
    the module whose weights it runs on, when it runs on one's (named and keyed by it)."""

    op: str
    attrs: dict[str, Any]
    inputs: list[str]
    owner: str | None = None


@dataclass
class Alias:
    """A call that hands on a value unchanged (`of`: the fx value, `chunk[1]` for a part)."""

    of: str


LIFTED_AS = "archspec_op"  # node.meta key: the op a traced value was lifted as
MULTI_OUTPUT = ("chunk", "split")  # their parts are read as `node[k]`
THROUGH = ("contiguous", "clone", "detach", "to", "type_as", "float")  # same values


def base(value: str) -> str:
    """The fx value a reference reads a part of (`chunk_1` for `chunk_1[0]`)."""
    return value.partition("[")[0]


def tensor_args(node, count: int | None = None) -> list[str]:
    """The fx values a call reads (in the first `count` positional arguments)."""
    args = node.args if count is None else node.args[:count]
    found = []
    for a in args:
        if hasattr(a, "op"):
            found.append(a.name)
        elif isinstance(a, (list, tuple)):
            found += [x.name for x in a if hasattr(x, "op")]
    return found


def weight_source(arg):
    """The get_attr node an argument reads through `.to(dtype)` and the like, or None."""
    while hasattr(arg, "op") and arg.op == "call_method" and arg.target in THROUGH:
        arg = arg.args[0]
    return arg if hasattr(arg, "op") and arg.op == "get_attr" else None


# -- functions on a module's own weights ------------------------------------------------------
def _weights(
    node, positions: dict[str, int], required: str | None = None
) -> tuple[str | None, dict[str, Any]]:
    """The module the weight arguments belong to, and each one (None where absent);
    `required` says what is missing when any is absent (then any absent one is refused)."""
    owners, found = set(), {}
    for name, index in positions.items():
        arg = node.args[index] if len(node.args) > index else node.kwargs.get(name)
        source = weight_source(arg)
        if arg is not None and source is None:
            raise Unsupported(f"`{name}` is not a module's own tensor")
        if source is not None:
            path = source.target.rpartition(".")[0]
            owners.add(path)
            found[name] = value_of(source)
        else:
            found[name] = None
    if len(owners) > 1:
        raise Unsupported("weights of several modules in one call")
    if required is not None and (not owners or None in found.values()):
        raise Unsupported(required)
    return (owners.pop() if owners else None), found


def _own_batch_norm(node) -> Call:
    stats = {"running_mean": 1, "running_var": 2, "weight": 3, "bias": 4}
    owner, _ = _weights(node, stats, "batch norm without affine weights or running statistics")
    if _arg(node, 5, "training", False):
        raise Unsupported("batch norm that always uses the batch's statistics")
    momentum = _arg(node, 6, "momentum", 0.1)
    return Call(
        "batchnorm2d",
        {"eps": _arg(node, 7, "eps", 1e-5), "momentum": momentum},
        tensor_args(node, 1),
        owner,
    )


def _own_layer_norm(node) -> Call:
    owner, _ = _weights(node, {"weight": 2, "bias": 3}, "layer norm without affine weights")
    shape = list(_arg(node, 1, "normalized_shape", None))
    return Call(
        "layer_norm",
        {"shape": shape, "eps": _arg(node, 4, "eps", 1e-5)},
        tensor_args(node, 1),
        owner,
    )


def _own_group_norm(node) -> Call:
    owner, _ = _weights(node, {"weight": 2, "bias": 3}, "group norm without affine weights")
    attrs = {"groups": _arg(node, 1, "num_groups", None), "eps": _arg(node, 4, "eps", 1e-5)}
    return Call("group_norm", attrs, tensor_args(node, 1), owner)


def _own_linear(node) -> Call:
    owner, w = _weights(node, {"weight": 1, "bias": 2})
    if owner is None:
        raise Unsupported("a linear map whose weight is computed in forward")
    attrs = {"out": w["weight"].shape[0], "bias": w["bias"] is not None}
    return Call("linear", attrs, tensor_args(node, 1), owner)


def _own_conv(node) -> Call:
    owner, w = _weights(node, {"weight": 1, "bias": 2})
    if owner is None or w["weight"].dim() != 4:
        raise Unsupported("a 2-d convolution whose weight is computed in forward")
    padding = _arg(node, 4, "padding", 0)
    attrs = {
        "out": w["weight"].shape[0],
        "kernel": pair(tuple(w["weight"].shape[2:])),
        "stride": pair(_arg(node, 3, "stride", 1)),
        "padding": padding if isinstance(padding, str) else pair(padding),
        "dilation": pair(_arg(node, 5, "dilation", 1)),
        "groups": _arg(node, 6, "groups", 1),
        "bias": w["bias"] is not None,
    }
    if attrs["padding"] == "valid":
        attrs["padding"] = 0
    return Call("conv2d", attrs, tensor_args(node, 1), owner)


def own_weight_functions() -> dict:
    """The functions that run a module's op on its weights, by function."""
    import torch
    from torch.nn import functional as F

    return {
        F.batch_norm: _own_batch_norm,
        F.layer_norm: _own_layer_norm,
        F.group_norm: _own_group_norm,
        F.linear: _own_linear,
        torch._C._nn.linear: _own_linear,
        F.conv2d: _own_conv,
        torch.conv2d: _own_conv,
    }


# -- functions ------------------------------------------------------------------------------
def lift_function(node) -> Call | Alias:
    """A call_function node."""
    t = node.target
    handler = own_weight_functions().get(t) or _functions().get(t)
    if handler is None and getattr(t, "__name__", "") == "stochastic_depth":
        handler = _stochastic_depth if "torchvision" in t.__module__ else None
    if handler is None:
        raise Unsupported("no archspec primitive for this function")
    return handler(node)


def _unary(op: str):
    return lambda node: Call(op, {}, tensor_args(node, 1))


def _two_or_number(op: str, operands: str):
    def lift_binary(node) -> Call:
        if _two_tensors(node):
            return Call(op, {}, tensor_args(node))
        if op == "multiply":
            return _multiply(node)
        raise Unsupported(f"{operands} that is not of two tensors")

    return lift_binary


@cache
def _functions() -> dict:
    """The functions with a primitive, by function (a handler taking the node)."""
    import torch
    from torch.nn import functional as F

    table = {
        operator.getitem: _getitem,
        operator.add: _two_or_number("add", "a sum"),
        operator.iadd: _two_or_number("add", "a sum"),
        torch.add: _two_or_number("add", "a sum"),
        operator.mul: _multiply,
        operator.imul: _multiply,
        torch.mul: _multiply,
        operator.truediv: _divide,
        torch.flatten: lambda node: _flatten(node, tensor_args(node, 1)),
        torch.cat: lambda node: Call(
            "concat", {"axis": axis(_arg(node, 1, "dim", 0))}, tensor_args(node, 1)
        ),
        F.gelu: lambda node: Call(
            "gelu", {"approximate": node.kwargs.get("approximate", "none")}, tensor_args(node, 1)
        ),
        F.softmax: lambda node: Call(
            "softmax", {"axis": axis(_arg(node, 1, "dim", -1))}, tensor_args(node, 1)
        ),
        F.adaptive_avg_pool2d: _adaptive_avg_pool,
        F.dropout: lambda node: Call(
            "dropout", {"p": _arg(node, 1, "p", 0.5)}, tensor_args(node, 1)
        ),
        F.pad: _pad,
        F.max_pool2d: _max_pool,
        F.avg_pool2d: _avg_pool,
    }
    for function in (torch.permute, torch.transpose, torch.reshape, torch.chunk, torch.split):
        table[function] = _as_method(function.__name__)
    for function, op in (
        (F.relu, "relu"),
        (torch.relu, "relu"),
        (F.relu6, "relu6"),
        (F.silu, "silu"),
        (torch.sigmoid, "sigmoid"),
        (F.sigmoid, "sigmoid"),
        (F.hardswish, "hardswish"),
        (F.hardsigmoid, "hardsigmoid"),
        (torch.tanh, "tanh"),
        (torch._C._nn.gelu, "gelu"),
    ):
        table[function] = _unary(op)
    return table


def _as_method(name: str):
    """`torch.permute(x, ...)` as `x.permute(...)` (the same arguments after the tensor)."""
    return lambda node: _METHODS[name](node)


def _stochastic_depth(node) -> Call:
    attrs = {"p": _arg(node, 1, "p", None), "mode": _arg(node, 2, "mode", None)}
    return Call("stochastic_depth", attrs, tensor_args(node, 1))


def _adaptive_avg_pool(node) -> Call:
    size = _arg(node, 1, "output_size", None)
    if size in (1, (1, 1), [1, 1]):
        return Call("global_avg_pool", {}, tensor_args(node, 1))
    return Call("adaptive_avg_pool2d", {"output": pair(size)}, tensor_args(node, 1))


def _max_pool(node) -> Call:
    names = ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")
    defaults = (None, None, 0, 1, False, False)
    args = [_arg(node, k + 1, n, d) for k, (n, d) in enumerate(zip(names, defaults, strict=True))]
    return Call("max_pool2d", max_pool(*args), tensor_args(node, 1))


def _avg_pool(node) -> Call:
    names = ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad")
    defaults = (None, None, 0, False, True)
    args = [_arg(node, k + 1, n, d) for k, (n, d) in enumerate(zip(names, defaults, strict=True))]
    divisor = _arg(node, 6, "divisor_override", None)
    return Call("avg_pool2d", avg_pool(*args, divisor), tensor_args(node, 1))


def _divide(node) -> Call:
    if not _one_tensor_and_number(node) or not hasattr(node.args[0], "op"):
        raise Unsupported("a quotient that is not of a tensor by a number")
    return Call("scale", {"factor": 1 / node.args[1]}, tensor_args(node, 1))


def _multiply(node) -> Call:
    if _two_tensors(node):
        return Call("multiply", {}, tensor_args(node))
    if _one_tensor_and_number(node):
        number = next(a for a in node.args if not hasattr(a, "op"))
        return Call("scale", {"factor": float(number)}, tensor_args(node))
    raise Unsupported("a product that is not of two tensors or a tensor and a number")


def _getitem(node) -> Call | Alias:
    """A part of a chunk or split, the attention output of a MultiheadAttention call, or
    indexing of per-sample axes (`x[:, 0]`, `x[:, :c]`)."""
    source, index = node.args
    if not hasattr(source, "op"):
        raise Unsupported("indexing of a value that is not a tensor")
    kind = source.meta.get(LIFTED_AS)
    if kind in MULTI_OUTPUT and isinstance(index, int):
        return Alias(f"{source.name}[{index}]")
    if kind == "multihead_attention":
        if index != 0:
            raise Unsupported("the attention weights (a spec's attention hands on its output)")
        return Alias(source.name)
    return _indexing(node, source, index)


def _indexing(node, source, index) -> Call:
    index = index if isinstance(index, tuple) else (index,)
    if not index or index[0] != slice(None) or Ellipsis in index:
        raise Unsupported("indexing that is not of per-sample axes (`x[:, ...]`)")
    rest = index[1:]
    if len(rest) == 1 and isinstance(rest[0], int):
        return Call("select", {"index": rest[0], "axis": 0}, [source.name])
    if not all(isinstance(i, slice) for i in rest):
        raise Unsupported("indexing with tensors or several integers")
    shape = value_of(source).shape[1:]
    axes, start, stop, step = [], [], [], []
    for k, s in enumerate(rest):
        first, end, stride = s.indices(shape[k])
        if (first, end, stride) != (0, shape[k], 1):
            axes.append(k)
            start.append(first)
            stop.append(end)
            step.append(stride)
    if not axes:
        return Alias(source.name)  # type: ignore[return-value]
    attrs: dict[str, Any] = {"axes": axes, "start": start, "stop": stop}
    if set(step) != {1}:
        attrs["step"] = step
    return Call("slice", attrs, [source.name])


def _pad(node) -> Call:
    mode = _arg(node, 2, "mode", "constant")
    if mode != "constant":
        raise Unsupported(f"mode={mode!r} (archspec pads with a constant)")
    widths = list(_arg(node, 1, "pad", None))
    rank = value_of(node.args[0]).dim() - 1
    axes, before, after = [], [], []
    for k in range(len(widths) // 2):  # pairs from the last axis backwards
        b, e = widths[2 * k], widths[2 * k + 1]
        if b or e:
            axes.insert(0, rank - 1 - k)
            before.insert(0, b)
            after.insert(0, e)
    if not axes or min(before + after) < 0:
        raise Unsupported("padding that is empty or crops")
    attrs: dict[str, Any] = {"axes": axes, "before": before, "after": after}
    value = _arg(node, 3, "value", 0.0) or 0.0
    if value:
        attrs["value"] = float(value)
    return Call("pad", attrs, tensor_args(node, 1))


# -- tensor methods -----------------------------------------------------------------------
def lift_method(node) -> Call | Alias:
    """A call_method node: `x.relu()`, `x.view(...)`, `x.chunk(2, 1)`."""
    handler = _METHODS.get(node.target)
    if handler is None:
        raise Unsupported("no archspec primitive for this tensor method")
    return handler(node)


def _method_unary(op: str):
    return lambda node: Call(op, {}, tensor_args(node, 1))


def _mean(node) -> Call:
    dims = _arg(node, 1, "dim", None)
    if sorted(_as_list(dims)) not in ([2, 3], [-2, -1]):
        raise Unsupported("a mean over other axes than the spatial ones")
    keep = _arg(node, 2, "keepdim", False)
    return Call("global_avg_pool", {} if keep else {"drop_axes": True}, tensor_args(node, 1))


def _flatten(node, x: list[str]) -> Call:
    start, end = _arg(node, 1, "start_dim", 0), _arg(node, 2, "end_dim", -1)
    return Call("flatten", {"start": axis(start), "end": axis(end)}, x)


def _transpose(node) -> Call:
    rank = value_of(node.args[0]).dim()
    a, b = (d % rank for d in node.args[1:3])
    dims = list(range(rank))
    dims[a], dims[b] = dims[b], dims[a]
    return _permute(node, dims)


def _expand(node) -> Alias:
    before, after = value_of(node.args[0]).shape, value_of(node).shape
    if before[0] == 1 and before[1:] == after[1:]:
        return Alias(node.args[0].name)  # a leading 1 to the batch: what add and concat do
    raise Unsupported("an expand of other axes than a leading 1")


def _chunk(node) -> Call:
    chunks, dim = _arg(node, 1, "chunks", None), _arg(node, 2, "dim", 0)
    return Call("chunk", {"chunks": chunks, "axis": axis(dim)}, tensor_args(node, 1))


def _split(node) -> Call:
    dim = axis(_arg(node, 2, "dim", 0))
    sizes = [part.shape[dim + 1] for part in value_of(node)]
    return Call("split", {"sizes": sizes, "axis": dim}, tensor_args(node, 1))


def _add_method(node) -> Call:
    if not _two_tensors(node):
        raise Unsupported("a sum that is not of two tensors")
    return Call("add", {}, tensor_args(node))


_METHODS = {
    **{name: _method_unary(name.rstrip("_")) for name in ("relu", "relu_", "sigmoid", "sigmoid_")},
    **{name: _method_unary("tanh") for name in ("tanh", "tanh_")},
    **{name: (lambda node: Alias(node.args[0].name)) for name in THROUGH},
    **{name: _add_method for name in ("add", "add_", "__add__", "__iadd__")},
    "mul": lambda node: _multiply(node),
    "mul_": lambda node: _multiply(node),
    "mean": _mean,
    "flatten": lambda node: _flatten(node, tensor_args(node, 1)),
    "permute": lambda node: _permute(
        node, list(node.args[1] if isinstance(node.args[1], (list, tuple)) else node.args[1:])
    ),
    "transpose": _transpose,
    "view": lambda node: _reshape(node),
    "reshape": lambda node: _reshape(node),
    "expand": _expand,
    "chunk": _chunk,
    "split": _split,
}


def _permute(node, dims: list[int]) -> Call:
    rank = value_of(node.args[0]).dim()
    dims = [d % rank for d in dims]
    if dims[0] != 0:
        raise Unsupported("a permutation that moves the batch axis")
    return Call("permute", {"dims": [d - 1 for d in dims[1:]]}, tensor_args(node, 1))


def _reshape(node) -> Call:
    """The sizes the run made: a `flatten` when it only merges neighbouring axes."""
    before, after = list(value_of(node.args[0]).shape), list(value_of(node).shape)
    if before[0] != after[0]:
        raise Unsupported("a reshape that moves values across the batch axis")
    before, after = before[1:], after[1:]
    x = tensor_args(node, 1)
    for start in range(len(before)):
        for end in range(start + 1, len(before)):
            merged = [*before[:start], math.prod(before[start : end + 1]), *before[end + 1 :]]
            if merged == after:  # `end` counted from the end where it is the last axis
                last = -1 if end == len(before) - 1 else end
                return Call("flatten", {"start": start, "end": last}, x)
    return Call("reshape", {"shape": after}, x)


# -- arguments ------------------------------------------------------------------------------
def value_of(node):
    """The node's value in the real run (tracer.py); lifting needs it for sizes."""
    value = node.meta.get("value")
    if value is None:
        raise Unsupported("its value could not be computed beside the trace")
    return value


def _as_list(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _two_tensors(node) -> bool:
    return len(node.args) == 2 and all(hasattr(a, "op") for a in node.args) and not node.kwargs


def _one_tensor_and_number(node) -> bool:
    kinds = [hasattr(a, "op") for a in node.args]
    numbers = [a for a in node.args if isinstance(a, (int, float)) and not isinstance(a, bool)]
    return len(node.args) == 2 and kinds.count(True) == 1 and len(numbers) == 1


def _arg(node, index: int, name: str, default):
    value = node.args[index] if len(node.args) > index else node.kwargs.get(name, default)
    if hasattr(value, "op"):
        raise Unsupported(f"`{name}` computed in forward")
    return value
