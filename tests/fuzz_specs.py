"""A hypothesis strategy of random valid specs built from the primitives.

Chains and branches of convolutions (random channels, kernels, strides, padding, groups,
dilation), batch norm, every activation, pools, residual adds, channel concatenation,
squeeze-excite multiplies, dropout and linear heads. Shapes are tracked while drawing, so
almost every example is valid; the rare invalid one must be refused with a located error.
"""

from __future__ import annotations

import yaml
from hypothesis import strategies as st

ACTIVATIONS = ["relu", "relu6", "hardswish", "hardsigmoid", "sigmoid", "identity"]


def _out(size: int, k: int, s: int, p: int, d: int = 1) -> int:
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


@st.composite
def conv(draw, c: int, h: int) -> tuple[dict, int, int]:
    groups = draw(st.sampled_from([g for g in (1, 2, 3, 4) if c % g == 0]))
    out = groups * draw(st.integers(1, 4))
    k = draw(st.integers(1, 5))
    d = draw(st.integers(1, 2)) if k > 1 else 1
    s = draw(st.integers(1, 2))
    p = draw(st.integers(0, (k // 2) * d))
    if _out(h, k, s, p, d) < 1:
        k, d, s, p = 1, 1, 1, 0
    node = {
        "op": "conv2d",
        "out": out,
        "kernel": k,
        "stride": s,
        "padding": p,
        "dilation": d,
        "groups": groups,
        "bias": draw(st.booleans()),
    }
    return node, out, _out(h, k, s, p, d)


@st.composite
def pool(draw, h: int) -> tuple[dict, int]:
    k = draw(st.integers(2, 3))
    s = draw(st.integers(1, 2))
    p = draw(st.integers(0, k // 2))
    ceil = p == 0 and draw(st.booleans())  # Paddle refuses ceil_mode with padding
    node = {
        "op": draw(st.sampled_from(["max_pool2d", "avg_pool2d"])),
        "kernel": k,
        "stride": s,
        "padding": p,
        "ceil_mode": ceil,
    }
    if node["op"] == "avg_pool2d":
        node["count_include_pad"] = draw(st.booleans())
    size = -(-(h + 2 * p - k) // s) + 1 if ceil else _out(h, k, s, p)
    if ceil and (size - 1) * s >= h + p:
        size -= 1
    return (node, size) if size >= 1 and h + 2 * p >= k else ({"op": "identity"}, h)


def _layer(draw, kind: str, c: int, h: int, add) -> tuple[int, int]:
    """Append one random layer (or small subgraph); returns the new channels and size."""
    if kind == "conv":
        node, c, h = draw(conv(c, h))
        add(node)
    elif kind == "bn":
        add({"op": "batchnorm2d", "momentum": draw(st.sampled_from([0.1, 0.01]))})
    elif kind == "act":
        add({"op": draw(st.sampled_from(ACTIVATIONS))})
    elif kind == "pool":
        node, h = draw(pool(h))
        add(node)
    elif kind == "dropout":
        add({"op": "dropout", "p": draw(st.sampled_from([0.1, 0.5]))})
    elif kind == "residual":
        base = add({"op": "identity"})
        branch = add({"op": "conv2d", "out": c, "kernel": 3, "padding": 1})
        add({"op": "add", "inputs": [branch, base]})
    elif kind == "concat":
        base = add({"op": "identity"})
        extra = draw(st.integers(1, 4))
        branch = add({"op": "conv2d", "out": extra, "kernel": 1, "inputs": base})
        add({"op": "concat", "inputs": [base, branch, base]})
        c = 2 * c + extra
    else:  # squeeze-excite
        base = add({"op": "identity"})
        add({"op": "global_avg_pool"})
        add({"op": "conv2d", "out": c, "kernel": 1})
        gate = add({"op": draw(st.sampled_from(["sigmoid", "hardsigmoid"]))})
        add({"op": "multiply", "inputs": [base, gate]})
    return c, h


KINDS = ["conv", "bn", "act", "pool", "residual", "concat", "se", "dropout"]


@st.composite
def specs(draw) -> str:
    """YAML text of a random valid network."""
    c, h = draw(st.integers(1, 6)), draw(st.integers(6, 16))
    spec: dict = {"name": "Fuzz", "input": {"channels": c, "height": h, "width": h}}
    nodes: list[dict] = []

    def add(node: dict) -> str:
        node = {"name": f"n{len(nodes)}", **node}
        nodes.append(node)
        return node["name"]

    for _ in range(draw(st.integers(1, 6))):
        c, h = _layer(draw, draw(st.sampled_from(KINDS)), c, h, add)
    if draw(st.booleans()):
        add({"op": "global_avg_pool"})
    add({"op": "flatten"})
    add({"op": "linear", "out": draw(st.integers(1, 8))})
    spec["nodes"] = nodes
    return yaml.safe_dump(spec, sort_keys=False, default_flow_style=None)
