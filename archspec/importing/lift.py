"""`archspec import`, stage 2: every traced call as an archspec primitive with its
attributes (a Conv2d's kernel, stride, padding, groups, bias; a BatchNorm2d's eps and
momentum; `torch.flatten(x, 1)`; `out += identity`), or a record of why it cannot be one.

Every call is looked at, so one run reports every unsupported op, each with its module
path, the PyTorch call and the line that makes it. Axes are per sample in a spec (the
batch axis is not counted): PyTorch's dim 1 is axis 0.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from archspec.errors import Diagnostic, Pos


@dataclass
class Lifted:
    """One primitive: the fx node it comes from and where it sits in the module tree."""

    name: str  # the fx node's name (unique)
    op: str
    attrs: dict[str, Any]
    inputs: list[str]  # fx names of the tensors it reads, in order
    scopes: list[tuple[str, type]]  # enclosing modules, outermost first: (path, class)
    leaf: str | None = None  # the leaf module's path (a call_module), else None
    params: list[str] = field(default_factory=list)  # the leaf's parameters and buffers


class Unsupported(Exception):
    """A call the spec language cannot express, and why."""


def lift(captured) -> tuple[list[Lifted], str, str, list[Diagnostic]]:
    """The graph's primitives in execution order, its input and output names, and one
    diagnostic per unsupported call."""
    model = captured.model
    modules = dict(model.named_modules())
    lifted: list[Lifted] = []
    problems: list[Diagnostic] = []
    placeholders = [n for n in captured.graph.nodes if n.op == "placeholder"]
    output = next(n for n in captured.graph.nodes if n.op == "output")
    if len(placeholders) != 1:
        names = ", ".join(n.name for n in placeholders)
        problems.append(
            Diagnostic(
                Pos(captured.target),
                f"forward takes {len(placeholders)} inputs ({names}): a spec takes one",
            )
        )
    checks = shape_checks(captured.graph)
    for node in captured.graph.nodes:
        if node.op in ("placeholder", "output") or node in checks:
            continue
        try:
            lifted += _lift_node(node, modules)
        except Unsupported as exc:
            problems.append(_problem(node, captured.target, str(exc), modules))
    result = output.args[0]
    if not hasattr(result, "name"):
        problems.append(
            Diagnostic(
                Pos(captured.target),
                f"forward returns {type(result).__name__}: a spec returns one tensor",
            )
        )
        return lifted, placeholders[0].name if placeholders else "", "", problems
    return lifted, placeholders[0].name if placeholders else "", result.name, problems


def shape_checks(graph) -> set:
    """`torch._assert` calls and what only they read (`x.shape[1] == c`): checks of the
    traced shapes, which the spec's own shape inference makes for every instance."""
    import torch

    checks = {n for n in graph.nodes if n.op == "call_function" and n.target is torch._assert}
    for node in reversed(graph.nodes):  # users come after what they use
        if node.op not in ("placeholder", "output") and node.users and set(node.users) <= checks:
            checks.add(node)
    return checks


def _without_defaults(op: str, attrs: dict[str, Any]) -> dict[str, Any]:
    """The attributes that differ from the op's defaults (as a person writes a spec)."""
    from archspec.ops import OPS

    declared = OPS[op].attrs
    return {
        k: v
        for k, v in attrs.items()
        if k not in declared or declared[k].default != v or declared[k].required
    }


def _lift_node(node, modules: dict[str, Any]) -> list[Lifted]:
    """One call as primitives: usually one; a spatial mean that drops its axes is a
    global pool and a flatten (the flatten keeps the call's name: its readers read it)."""
    item = _lift_call(node, modules)
    item.attrs = _without_defaults(item.op, item.attrs)
    if item.op != "global_avg_pool" or not item.attrs.pop("drop_axes", False):
        return [item]
    pool = Lifted(f"{item.name}_pool", item.op, {}, item.inputs, item.scopes)
    return [pool, Lifted(item.name, "flatten", {}, [pool.name], item.scopes)]


def _lift_call(node, modules: dict[str, Any]) -> Lifted:
    stack = list(node.meta.get("nn_module_stack", {}).values())
    scopes = [(path, cls) for path, cls in stack]
    if node.op == "call_module":
        module = modules[node.target]
        op, attrs = _module(module)
        if scopes and scopes[-1][0] == node.target:
            scopes = scopes[:-1]  # the leaf itself is not a scope
        params = [n for n, _ in module.named_parameters()] + [n for n, _ in module.named_buffers()]
        inputs = _tensor_args(node, 1)
        return Lifted(node.name, op, attrs, inputs, scopes, node.target, params)
    if node.op == "call_function":
        op, attrs, inputs = _function(node)
        return Lifted(node.name, op, attrs, inputs, scopes)
    if node.op == "call_method":
        op, attrs, inputs = _method(node)
        return Lifted(node.name, op, attrs, inputs, scopes)
    raise Unsupported(f"reading `{node.target}` directly in forward (a get_attr)")


def _problem(node, target: str, reason: str, modules: dict[str, Any]) -> Diagnostic:
    """`path`: the PyTorch call: why, at the line of the model's code that makes it."""
    stack = list(node.meta.get("nn_module_stack", {}).keys())
    where = node.target if node.op == "call_module" else (stack[-1] if stack else "(top level)")
    return Diagnostic(
        _stack_pos(node) or Pos(target), f"`{where}`: {_describe(node, modules)}: {reason}"
    )


def _describe(node, modules: dict[str, Any]) -> str:
    """The call as the model's code writes it: `nn.PixelShuffle`, `torch.cumsum`, `Tensor.roll`."""
    if node.op == "call_module":
        cls = type(modules[node.target])
        return f"{cls.__module__}.{cls.__name__}"
    if node.op == "call_method":
        return f"Tensor.{node.target}"
    target = node.target
    name = getattr(target, "__name__", None) or str(target)
    module = getattr(target, "__module__", None) or ""
    if module in ("", "torch._VariableFunctionsClass", "torch._C._VariableFunctions"):
        module = "torch"
    return name if module == "_operator" else f"{module}.{name}"


def _stack_pos(node) -> Pos | None:
    """The innermost line of the model's own code in the node's recorded stack trace."""
    from archspec.importing.capture import is_library

    found = None
    for line in (node.stack_trace or "").splitlines():
        line = line.strip()
        if line.startswith('File "'):
            file, _, rest = line[6:].partition('", line ')
            number = rest.split(",")[0]
            if number.isdigit() and not is_library(file):
                found = Pos(file, int(number), 1)
    return found


# -- modules --------------------------------------------------------------------------------
def _module(m) -> tuple[str, dict[str, Any]]:
    from torch import nn

    kind = type(m)
    if kind in _simple():
        return _simple()[kind], {}
    handler = _MODULES.get(kind.__name__) if kind.__module__.startswith("torch.nn") else None
    if handler is None or not isinstance(m, nn.Module):
        raise Unsupported("no archspec primitive for this module")
    return handler(m)


def _pair(value) -> int | list[int]:
    if isinstance(value, (tuple, list)):
        return value[0] if len(set(value)) == 1 else list(value)
    return value


def _conv(m) -> tuple[str, dict[str, Any]]:
    if m.padding_mode != "zeros":
        raise Unsupported(f"padding_mode={m.padding_mode!r} (archspec pads with zeros)")
    padding = m.padding if isinstance(m.padding, str) else _pair(m.padding)
    if padding == "valid":
        padding = 0
    attrs = {
        "out": m.out_channels,
        "kernel": _pair(m.kernel_size),
        "stride": _pair(m.stride),
        "padding": padding,
        "dilation": _pair(m.dilation),
        "groups": m.groups,
        "bias": m.bias is not None,
    }
    return "conv2d", attrs


def _batchnorm(m) -> tuple[str, dict[str, Any]]:
    if not (m.affine and m.track_running_stats):
        raise Unsupported("batch norm without affine weights or running statistics")
    if m.momentum is None:
        raise Unsupported("momentum=None (a cumulative average)")
    return "batchnorm2d", {"eps": m.eps, "momentum": m.momentum}


def _linear(m) -> tuple[str, dict[str, Any]]:
    return "linear", {"out": m.out_features, "bias": m.bias is not None}


def _max_pool(m) -> tuple[str, dict[str, Any]]:
    if m.return_indices:
        raise Unsupported("return_indices=True")
    attrs = {
        "kernel": _pair(m.kernel_size),
        "stride": _pair(m.stride or m.kernel_size),
        "padding": _pair(m.padding),
        "ceil_mode": m.ceil_mode,
        "dilation": _pair(m.dilation),
    }
    return "max_pool2d", attrs


def _avg_pool(m) -> tuple[str, dict[str, Any]]:
    if m.divisor_override is not None:
        raise Unsupported("divisor_override")
    attrs = {
        "kernel": _pair(m.kernel_size),
        "stride": _pair(m.stride or m.kernel_size),
        "padding": _pair(m.padding),
        "ceil_mode": m.ceil_mode,
        "count_include_pad": m.count_include_pad,
    }
    return "avg_pool2d", attrs


def _adaptive(op: str, global_op: str):
    def lift_adaptive(m) -> tuple[str, dict[str, Any]]:
        size = m.output_size
        sizes = list(size) if isinstance(size, (tuple, list)) else [size, size]
        if None in sizes:
            raise Unsupported("an output size of None (keep the input's)")
        return (global_op, {}) if sizes == [1, 1] else (op, {"output": _pair(sizes)})

    return lift_adaptive


def _flatten(m) -> tuple[str, dict[str, Any]]:
    return "flatten", {"start": _axis(m.start_dim), "end": _axis(m.end_dim)}


def _axis(dim: int) -> int:
    """PyTorch's dim as a per-sample axis (negative dims count from the end either way)."""
    if dim == 0:
        raise Unsupported("an operation on the batch axis (dim 0)")
    return dim - 1 if dim > 0 else dim


_MODULES = {
    "Conv2d": _conv,
    "BatchNorm2d": _batchnorm,
    "Linear": _linear,
    "MaxPool2d": _max_pool,
    "AvgPool2d": _avg_pool,
    "AdaptiveAvgPool2d": _adaptive("adaptive_avg_pool2d", "global_avg_pool"),
    "AdaptiveMaxPool2d": _adaptive("adaptive_max_pool2d", "global_max_pool"),
    "Flatten": _flatten,
    "Dropout": lambda m: ("dropout", {"p": m.p}),
    "LeakyReLU": lambda m: ("leaky_relu", {"slope": m.negative_slope}),
    "GELU": lambda m: ("gelu", {"approximate": m.approximate}),
    "Softmax": lambda m: ("softmax", {"axis": _axis(m.dim if m.dim is not None else -1)}),
    "LayerNorm": lambda m: ("layer_norm", {"shape": list(m.normalized_shape), "eps": m.eps}),
    "GroupNorm": lambda m: ("group_norm", {"groups": m.num_groups, "eps": m.eps}),
}


@cache  # torch is imported by `archspec import` only: the table is built on first use
def _simple() -> dict[type, str]:
    from torch import nn

    return {
        nn.ReLU: "relu",
        nn.ReLU6: "relu6",
        nn.SiLU: "silu",
        nn.Hardswish: "hardswish",
        nn.Hardsigmoid: "hardsigmoid",
        nn.Sigmoid: "sigmoid",
        nn.Tanh: "tanh",
        nn.Identity: "identity",
    }


# -- functions and tensor methods -------------------------------------------------------------
def _tensor_args(node, count: int | None = None) -> list[str]:
    args = node.args if count is None else node.args[:count]
    found = []
    for a in args:
        if hasattr(a, "op"):
            found.append(a.name)
        elif isinstance(a, (list, tuple)):
            found += [x.name for x in a if hasattr(x, "op")]
    return found


def _function(node) -> tuple[str, dict[str, Any], list[str]]:
    import torch
    from torch.nn import functional as F

    t, args = node.target, node.args
    if t in (operator.add, operator.iadd, torch.add) and _two_tensors(node):
        return "add", {}, _tensor_args(node)
    if t in (operator.mul, operator.imul, torch.mul) and _two_tensors(node):
        return "multiply", {}, _tensor_args(node)
    if t is torch.flatten:
        start = _arg(node, 1, "start_dim", 0)
        end = _arg(node, 2, "end_dim", -1)
        return "flatten", {"start": _axis(start), "end": _axis(end)}, _tensor_args(node, 1)
    if t is torch.cat:
        return "concat", {"axis": _axis(_arg(node, 1, "dim", 0))}, _tensor_args(node, 1)
    simple = {
        F.relu: "relu",
        torch.relu: "relu",
        F.relu6: "relu6",
        F.silu: "silu",
        torch.sigmoid: "sigmoid",
        F.sigmoid: "sigmoid",
        F.hardswish: "hardswish",
        F.hardsigmoid: "hardsigmoid",
        torch.tanh: "tanh",
    }
    if t in simple:
        return simple[t], {}, _tensor_args(node, 1)
    if t is F.adaptive_avg_pool2d:
        size = _arg(node, 1, "output_size", None)
        if size in (1, (1, 1), [1, 1]):
            return "global_avg_pool", {}, _tensor_args(node, 1)
        return "adaptive_avg_pool2d", {"output": _pair(size)}, _tensor_args(node, 1)
    if t is F.dropout and not args[1:] and not node.kwargs.get("training", False):
        return "dropout", {"p": node.kwargs.get("p", 0.5)}, _tensor_args(node, 1)
    raise Unsupported("no archspec primitive for this function")


def _method(node) -> tuple[str, dict[str, Any], list[str]]:
    name = node.target
    if name in ("relu", "relu_", "sigmoid", "tanh"):
        return name.rstrip("_"), {}, _tensor_args(node, 1)
    if name in ("add", "add_", "__add__", "__iadd__") and _two_tensors(node):
        return "add", {}, _tensor_args(node)
    if name in ("mul", "mul_") and _two_tensors(node):
        return "multiply", {}, _tensor_args(node)
    if name == "mean":
        dims = _arg(node, 1, "dim", None)
        if sorted(_as_list(dims)) not in ([2, 3], [-2, -1]):
            raise Unsupported("a mean over other axes than the spatial ones")
        keep = _arg(node, 2, "keepdim", False)
        return "global_avg_pool", {} if keep else {"drop_axes": True}, _tensor_args(node, 1)
    if name == "flatten":
        start, end = _arg(node, 1, "start_dim", 0), _arg(node, 2, "end_dim", -1)
        return "flatten", {"start": _axis(start), "end": _axis(end)}, _tensor_args(node, 1)
    if name == "permute":
        dims = list(node.args[1:]) if not isinstance(node.args[1], (list, tuple)) else node.args[1]
        if dims[0] != 0:
            raise Unsupported("a permutation that moves the batch axis")
        return "permute", {"dims": [d - 1 for d in dims[1:]]}, _tensor_args(node, 1)
    raise Unsupported("no archspec primitive for this tensor method")


def _as_list(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _two_tensors(node) -> bool:
    return len(node.args) == 2 and all(hasattr(a, "op") for a in node.args) and not node.kwargs


def _arg(node, index: int, name: str, default):
    value = node.args[index] if len(node.args) > index else node.kwargs.get(name, default)
    if hasattr(value, "op"):
        raise Unsupported(f"`{name}` computed in forward")
    return value
