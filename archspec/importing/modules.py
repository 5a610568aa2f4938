"""`archspec import`, lifting modules: a leaf `torch.nn` module as a primitive with its
attributes (a Conv2d's kernel, stride, padding, groups, bias; a BatchNorm2d's eps and
momentum). Axes are per sample in a spec: PyTorch's dim 1 is axis 0.
"""

from __future__ import annotations

from functools import cache
from typing import Any


class Unsupported(Exception):
    """A call the spec language cannot express, and why."""


def lift_module(m) -> tuple[str, dict[str, Any]]:
    """A leaf module's primitive and attributes (those of `torch.nn` classes only)."""
    from torch import nn

    kind = type(m)
    if kind in _simple():
        return _simple()[kind], {}
    handler = _MODULES.get(kind.__name__) if kind.__module__.startswith("torch.nn") else None
    if handler is None or not isinstance(m, nn.Module):
        raise Unsupported("no archspec primitive for this module")
    return handler(m)


def pair(value) -> int | list[int]:
    """A size pair as a spec writes it: one number when both are equal."""
    if isinstance(value, (tuple, list)):
        return value[0] if len(set(value)) == 1 else list(value)
    return value


def _conv(m) -> tuple[str, dict[str, Any]]:
    if m.padding_mode != "zeros":
        raise Unsupported(f"padding_mode={m.padding_mode!r} (archspec pads with zeros)")
    padding = m.padding if isinstance(m.padding, str) else pair(m.padding)
    if padding == "valid":
        padding = 0
    attrs = {
        "out": m.out_channels,
        "kernel": pair(m.kernel_size),
        "stride": pair(m.stride),
        "padding": padding,
        "dilation": pair(m.dilation),
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


def max_pool(kernel, stride, padding, dilation, ceil_mode, return_indices) -> dict[str, Any]:
    """`max_pool2d`'s attributes, from nn.MaxPool2d's or F.max_pool2d's arguments."""
    if return_indices:
        raise Unsupported("return_indices=True")
    return {
        "kernel": pair(kernel),
        "stride": pair(stride or kernel),
        "padding": pair(padding),
        "ceil_mode": ceil_mode,
        "dilation": pair(dilation),
    }


def avg_pool(kernel, stride, padding, ceil_mode, count_include_pad, divisor) -> dict[str, Any]:
    """`avg_pool2d`'s attributes, from nn.AvgPool2d's or F.avg_pool2d's arguments."""
    if divisor is not None:
        raise Unsupported("divisor_override")
    return {
        "kernel": pair(kernel),
        "stride": pair(stride or kernel),
        "padding": pair(padding),
        "ceil_mode": ceil_mode,
        "count_include_pad": count_include_pad,
    }


def _max_pool(m) -> tuple[str, dict[str, Any]]:
    args = (m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode, m.return_indices)
    return "max_pool2d", max_pool(*args)


def _avg_pool(m) -> tuple[str, dict[str, Any]]:
    args = (m.kernel_size, m.stride, m.padding, m.ceil_mode, m.count_include_pad)
    return "avg_pool2d", avg_pool(*args, m.divisor_override)


def _adaptive(op: str, global_op: str):
    def lift_adaptive(m) -> tuple[str, dict[str, Any]]:
        size = m.output_size
        sizes = list(size) if isinstance(size, (tuple, list)) else [size, size]
        if None in sizes:
            raise Unsupported("an output size of None (keep the input's)")
        return (global_op, {}) if sizes == [1, 1] else (op, {"output": pair(sizes)})

    return lift_adaptive


def _attention(m) -> tuple[str, dict[str, Any]]:
    if not m.batch_first or not m._qkv_same_embed_dim or m.bias_k is not None or m.add_zero_attn:
        raise Unsupported("only batch_first self-attention with one in-projection is expressible")
    return "multihead_attention", {
        "heads": m.num_heads,
        "dropout": m.dropout,
        "bias": m.in_proj_bias is not None,
    }


def _flatten(m) -> tuple[str, dict[str, Any]]:
    return "flatten", {"start": axis(m.start_dim), "end": axis(m.end_dim)}


def axis(dim: int) -> int:
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
    "MultiheadAttention": _attention,
    "Softmax": lambda m: ("softmax", {"axis": axis(m.dim if m.dim is not None else -1)}),
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
    }
