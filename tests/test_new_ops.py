"""Activations silu, tanh, gelu and leaky_relu, softmax and log_softmax over an axis, and
global and adaptive max pooling: static shapes, emitted calls, and the same function in
every framework.

Three kinds of evidence: the IR's shapes and counts (no framework); each backend's module
run alone on a known input against a NumPy float64 formula of PyTorch's definition (so a
framework default that differs, such as MindSpore's tanh-approximated GELU, fails here);
and `archspec check` on small networks, which compares outputs and gradients across the
three frameworks.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from conftest import by_path, check_workers

from archspec.analysis import summarize
from archspec.backend import available
from archspec.check import build, check_spec, run
from archspec.compiler import compile_spec
from archspec.emit import module_view
from archspec.ops import ACTIVATIONS, OPS

NEW_ACTIVATIONS = ["silu", "tanh", "gelu", "leaky_relu"]
NEW_OPS = [*NEW_ACTIVATIONS, "softmax", "log_softmax", "global_max_pool", "adaptive_max_pool2d"]
BACKENDS = ["torch", "paddle", "mindspore"]


def spec_with(nodes: str, c: int = 3, h: int = 8, w: int = 8, extra: str = "") -> str:
    """A network of the given node lines, on a C x H x W input."""
    return f"name: Net\ninput: {{channels: {c}, height: {h}, width: {w}}}\n{extra}nodes:\n{nodes}"


# -- registry and static analysis -----------------------------------------------------------


def test_new_ops_are_registered_once_with_no_params_or_macs():
    for name in NEW_OPS:
        op = OPS[name]
        assert op.name == name and op.tensors == () and not op.joins
        assert all(attr.doc for attr in op.attrs.values()), name
    assert ACTIVATIONS[-4:] == tuple(NEW_ACTIVATIONS)  # appended: old dicts only grow
    assert {k: a.default for k, a in OPS["gelu"].attrs.items()} == {"approximate": "none"}
    assert {k: a.default for k, a in OPS["leaky_relu"].attrs.items()} == {"slope": 0.01}
    assert {k: a.default for k, a in OPS["softmax"].attrs.items()} == {"axis": -1}
    assert OPS["log_softmax"].attrs == OPS["softmax"].attrs
    assert list(OPS["adaptive_max_pool2d"].attrs) == ["output"]


# (input C, H, W, node attributes) -> (output shape, bound attributes)
SHAPES = {
    "silu": ((3, 8, 8), "op: silu", (3, 8, 8), {}),
    "tanh": ((3, 8, 8), "op: tanh", (3, 8, 8), {}),
    "gelu": ((3, 8, 8), "op: gelu", (3, 8, 8), {"approximate": "none"}),
    "gelu_tanh": (
        (3, 8, 8),
        "op: gelu, approximate: \"'tanh'\"",
        (3, 8, 8),
        {"approximate": "tanh"},
    ),
    "leaky_relu": ((3, 8, 8), "op: leaky_relu", (3, 8, 8), {"slope": 0.01}),
    "leaky_relu_slope": ((3, 8, 8), "op: leaky_relu, slope: 1 / 5", (3, 8, 8), {"slope": 0.2}),
    "leaky_relu_int_slope": ((3, 8, 8), "op: leaky_relu, slope: 2", (3, 8, 8), {"slope": 2.0}),
    "softmax": ((3, 8, 8), "op: softmax", (3, 8, 8), {"axis": -1}),
    "softmax_channels": ((3, 8, 8), "op: softmax, axis: 0", (3, 8, 8), {"axis": 0}),
    "softmax_height": ((3, 8, 8), "op: softmax, axis: -2", (3, 8, 8), {"axis": -2}),
    "log_softmax": ((3, 5, 7), "op: log_softmax, axis: 2", (3, 5, 7), {"axis": 2}),
    "log_softmax_first": ((3, 5, 7), "op: log_softmax, axis: -3", (3, 5, 7), {"axis": -3}),
    "global_max_pool": ((3, 8, 8), "op: global_max_pool", (3, 1, 1), {}),
    "global_max_pool_odd": ((5, 7, 3), "op: global_max_pool", (5, 1, 1), {}),
    "adaptive_max_pool2d": ((3, 8, 8), "op: adaptive_max_pool2d, output: 3", (3, 3, 3), {}),
    "adaptive_max_pool2d_pair": (
        (3, 7, 5),
        "op: adaptive_max_pool2d, output: [2, 4]",
        (3, 2, 4),
        {},
    ),
    "adaptive_max_pool2d_larger": (
        (3, 4, 4),
        "op: adaptive_max_pool2d, output: [6, 5]",
        (3, 6, 5),
        {},
    ),
}


@pytest.mark.parametrize("case", SHAPES.values(), ids=SHAPES.keys())
def test_static_shape_counts_and_attributes(compile_yaml, case):
    (c, h, w), attrs, shape, bound = case
    graph = compile_yaml(spec_with(f"  - {{name: n, {attrs}}}\n", c, h, w))
    s = summarize(graph)
    assert (s.output_shape, s.trainable, s.bn_stats, s.macs) == (shape, 0, 0, 0)
    node = by_path(graph)["n"]
    assert (node.shape, node.params, node.buffers, node.macs) == (shape, {}, {}, 0)
    if "output" in attrs:
        bound = {"output": shape[1:]}
    assert node.attrs == bound


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
@pytest.mark.parametrize("axis", [0, -1])
def test_softmax_on_a_flattened_vector(compile_yaml, op, axis):
    graph = compile_yaml(
        spec_with(
            "  - {op: global_max_pool}\n  - {op: flatten}\n  - {op: linear, out: 5}\n"
            f"  - {{name: p, op: {op}, axis: {axis}}}\n"
        )
    )
    node = by_path(graph)["p"]
    assert (node.in_shapes, node.shape, node.attrs) == ([(5,)], (5,), {"axis": axis})
    assert summarize(graph).trainable == 3 * 5 + 5


def test_activation_fn_binds_the_op_with_its_defaults(compile_yaml):
    graph = compile_yaml(
        spec_with(
            "  - {name: a, op: activation, fn: act}\n",
            extra="params: {act: {type: str, default: gelu}}\n",
        ),
        {"act": "leaky_relu"},
    )
    node = by_path(graph)["a"]
    assert (node.op, node.shape, node.params, node.macs) == ("leaky_relu", (3, 8, 8), {}, 0)


def test_axis_out_of_range_names_the_rank():
    from archspec.ops import ShapeError

    with pytest.raises(ShapeError, match=r"axis 3 is out of range for a 3-d input \(C x H x W\)"):
        OPS["softmax"].shape([(3, 8, 8)], {"axis": 3})
    with pytest.raises(ShapeError, match=r"axis -2 is out of range for a 1-d input \(F\)"):
        OPS["log_softmax"].shape([(10,)], {"axis": -2})


# -- emitted calls --------------------------------------------------------------------------

CALLS_SPEC = spec_with(
    """\
  - {name: c, op: conv2d, out: 4, kernel: 3, padding: 1}
  - {name: s, op: silu}
  - {name: t, op: tanh}
  - {name: g, op: gelu}
  - {name: gt, op: gelu, approximate: "'tanh'"}
  - {name: l, op: leaky_relu}
  - {name: l2, op: leaky_relu, slope: 0.2}
  - {name: sm0, op: softmax, axis: 0}
  - {name: sm, op: softmax}
  - {name: lsm1, op: log_softmax, axis: 1}
  - {name: lsm, op: log_softmax, axis: -2}
  - {name: am, op: adaptive_max_pool2d, output: [3, 2]}
  - {name: gm, op: global_max_pool}
  - {name: fg, op: activation, fn: "'gelu'"}
  - {name: fl, op: activation, fn: "'leaky_relu'"}
"""
)

EXPECTED_CALLS = {
    "torch": [
        "self.s = nn.SiLU(inplace=True)",  # after a convolution: in place
        "self.t = nn.Tanh()",
        "self.g = nn.GELU()",
        'self.gt = nn.GELU(approximate="tanh")',
        "self.l = nn.LeakyReLU()",
        "self.l2 = nn.LeakyReLU(negative_slope=0.2)",
        "self.sm0 = nn.Softmax(dim=1)",
        "self.sm = nn.Softmax(dim=-1)",
        "self.lsm1 = nn.LogSoftmax(dim=2)",
        "self.lsm = nn.LogSoftmax(dim=-2)",
        "self.am = nn.AdaptiveMaxPool2d([3, 2])",
        "self.gm = nn.AdaptiveMaxPool2d(1)",
        "self.fg = nn.GELU()",
        "self.fl = nn.LeakyReLU()",
    ],
    "paddle": [
        "self.s = nn.Silu()",
        "self.t = nn.Tanh()",
        "self.g = nn.GELU()",
        "self.gt = nn.GELU(approximate=True)",
        "self.l = nn.LeakyReLU()",
        "self.l2 = nn.LeakyReLU(negative_slope=0.2)",
        "self.sm0 = nn.Softmax(axis=1)",
        "self.sm = nn.Softmax()",
        "self.lsm1 = nn.LogSoftmax(axis=2)",
        "self.lsm = nn.LogSoftmax(axis=-2)",
        "self.am = nn.AdaptiveMaxPool2D([3, 2])",
        "self.gm = nn.AdaptiveMaxPool2D(1)",
        "self.fg = nn.GELU()",
        "self.fl = nn.LeakyReLU()",
    ],
    "mindspore": [
        "self.s = nn.SiLU()",
        "self.t = nn.Tanh()",
        "self.g = nn.GELU(approximate=False)",  # nn.GELU() is the tanh approximation
        "self.gt = nn.GELU(approximate=True)",
        "self.l = nn.LeakyReLU(alpha=0.01)",  # nn.LeakyReLU() has alpha=0.2
        "self.l2 = nn.LeakyReLU(alpha=0.2)",
        "self.sm0 = nn.Softmax(axis=1)",
        "self.sm = nn.Softmax(axis=-1)",
        "self.lsm1 = nn.LogSoftmax(axis=2)",
        "self.lsm = nn.LogSoftmax(axis=-2)",
        "self.am = nn.AdaptiveMaxPool2d([3, 2])",
        "self.gm = nn.AdaptiveMaxPool2d(1)",
        "self.fg = nn.GELU(approximate=False)",
        "self.fl = nn.LeakyReLU(alpha=0.01)",
    ],
}


def render_spec(path: Path, backend: str, overrides: dict | None = None) -> str:
    """The generated module's text for one backend."""
    b = available()[backend]
    return b.render(module_view(compile_spec(path, overrides), b, []))


@pytest.mark.parametrize("backend", BACKENDS)
def test_each_backend_writes_its_framework_call(write_spec, backend):
    text = render_spec(write_spec(CALLS_SPEC), backend)
    lines = [line.strip() for line in text.splitlines() if line.strip().startswith("self.")]
    calls = [line for line in lines if " = " in line and not line.startswith("self.c =")]
    assert calls == EXPECTED_CALLS[backend]


def test_a_parametrised_axis_is_shifted_at_run_time(write_spec):
    path = write_spec(
        spec_with("  - {name: sm, op: softmax, axis: ax}\n", extra="params: {ax: 0}\n")
    )
    assert "self.sm = nn.Softmax(dim=ax + 1 if ax >= 0 else ax)" in render_spec(path, "torch")
    assert "self.sm = nn.Softmax(axis=ax + 1 if ax >= 0 else ax)" in render_spec(path, "paddle")


ACTIVATION_ENTRIES = {
    "torch": [
        '"silu": nn.SiLU,',
        '"tanh": nn.Tanh,',
        '"gelu": nn.GELU,',
        '"leaky_relu": nn.LeakyReLU,',
    ],
    "paddle": [
        '"silu": nn.Silu,',
        '"tanh": nn.Tanh,',
        '"gelu": nn.GELU,',
        '"leaky_relu": nn.LeakyReLU,',
    ],
    "mindspore": [
        '"silu": nn.SiLU,',
        '"tanh": nn.Tanh,',
        '"gelu": lambda: nn.GELU(approximate=False),',
        '"leaky_relu": lambda: nn.LeakyReLU(alpha=0.01),',
    ],
}

ACT_SPEC = spec_with(
    """\
  - {op: conv2d, out: 4, kernel: 3, padding: 1}
  - {name: a, op: activation, fn: act}
  - {op: global_avg_pool}
  - {op: flatten}
  - {op: linear, out: 5}
""",
    extra="params: {act: {type: str, default: relu}}\n",
)


@pytest.mark.parametrize("backend", BACKENDS)
def test_activations_dict_fixes_the_defaults_of_every_framework(write_spec, backend):
    text = render_spec(write_spec(ACT_SPEC), backend).splitlines()
    start = text.index("ACTIVATIONS = {")
    entries = [line.strip() for line in text[start + 1 : text.index("}", start)]]
    assert [e.split(":")[0].strip('"') for e in entries] == list(ACTIVATIONS)
    assert entries[-4:] == ACTIVATION_ENTRIES[backend]
    assert "self.a = ACTIVATIONS[act]()" in render_spec(write_spec(ACT_SPEC), backend)


# -- each framework against the definition ---------------------------------------------------


def _gelu(x):
    erf = np.vectorize(math.erf)
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def _gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def _softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _adaptive_max(x, oh, ow):
    n, c, h, w = x.shape
    out = np.empty((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            hs, he = (i * h) // oh, -((-(i + 1) * h) // oh)  # floor start, ceil end
            ws, we = (j * w) // ow, -((-(j + 1) * w) // ow)
            out[:, :, i, j] = x[:, :, hs:he, ws:we].max(axis=(2, 3))
    return out


# id -> (node attributes, input C x H x W, PyTorch's definition on the batch, float64)
FORMULAS = {
    "silu": ("op: silu", (3, 8, 8), lambda x: x / (1.0 + np.exp(-x))),
    "tanh": ("op: tanh", (3, 8, 8), np.tanh),
    "gelu": ("op: gelu", (3, 8, 8), _gelu),
    "gelu_tanh": ("op: gelu, approximate: \"'tanh'\"", (3, 8, 8), _gelu_tanh),
    "leaky_relu": ("op: leaky_relu", (3, 8, 8), lambda x: np.where(x >= 0, x, 0.01 * x)),
    "leaky_relu_steep": (
        "op: leaky_relu, slope: 2.5",
        (3, 8, 8),
        lambda x: np.where(x >= 0, x, 2.5 * x),
    ),
    "leaky_relu_negative": (
        "op: leaky_relu, slope: -0.3",
        (3, 8, 8),
        lambda x: np.where(x >= 0, x, -0.3 * x),
    ),
    "fn_gelu": ("op: activation, fn: \"'gelu'\"", (3, 8, 8), _gelu),
    "fn_leaky_relu": (
        "op: activation, fn: \"'leaky_relu'\"",
        (3, 8, 8),
        lambda x: np.where(x >= 0, x, 0.01 * x),
    ),
    "softmax_channels": ("op: softmax, axis: 0", (3, 5, 7), lambda x: _softmax(x, 1)),
    "softmax_last": ("op: softmax", (3, 5, 7), lambda x: _softmax(x, -1)),
    "softmax_height": ("op: softmax, axis: 1", (3, 5, 7), lambda x: _softmax(x, 2)),
    "log_softmax_channels": (
        "op: log_softmax, axis: 0",
        (3, 5, 7),
        lambda x: np.log(_softmax(x, 1)),
    ),
    "log_softmax_width": (
        "op: log_softmax, axis: -1",
        (3, 5, 7),
        lambda x: np.log(_softmax(x, -1)),
    ),
    "global_max_pool": ("op: global_max_pool", (3, 7, 5), lambda x: _adaptive_max(x, 1, 1)),
    "adaptive_max_pool2d": (
        "op: adaptive_max_pool2d, output: 3",
        (3, 8, 8),
        lambda x: _adaptive_max(x, 3, 3),
    ),
    "adaptive_max_pool2d_uneven": (
        "op: adaptive_max_pool2d, output: [3, 2]",
        (3, 7, 5),
        lambda x: _adaptive_max(x, 3, 2),
    ),
    "adaptive_max_pool2d_larger": (
        "op: adaptive_max_pool2d, output: [9, 6]",
        (3, 7, 5),
        lambda x: _adaptive_max(x, 9, 6),
    ),
}
# MindSpore's CPU tanh is a polynomial good to 1.5e-5 on [-4, 4] (1e-4 on [4, 6]); the
# tanh-approximated GELU is 4.7e-4 from the exact one at 2.7, so this still tells them apart
FORMULA_ATOL = 5e-5


def _inputs(shape: tuple[int, ...]) -> np.ndarray:
    """Two samples of distinct values spread over [-4, 4], in a fixed shuffled order."""
    size = 2 * math.prod(shape)
    values = np.linspace(-4.0, 4.0, size)
    return np.random.default_rng(0).permutation(values).reshape(2, *shape).astype(np.float32)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", FORMULAS.values(), ids=FORMULAS.keys())
def test_each_framework_computes_pytorchs_definition(write_spec, backend, case):
    attrs, (c, h, w), formula = case
    path = write_spec(spec_with(f"  - {{name: n, {attrs}}}\n", c, h, w), "single.yaml")
    graph = compile_spec(path)
    workers = check_workers()
    b = available()[backend]
    x = _inputs((c, h, w))
    expected = formula(x.astype(np.float64))
    data = workers.path("formula-data.npz")
    np.savez(data, x=x, probe=np.ones(expected.shape, np.float32))
    build(graph, path, b, workers, {})
    got = run(graph, b, workers, None, data)["eval"]
    assert got.shape == expected.shape
    assert float(np.max(np.abs(got - expected))) <= FORMULA_ATOL


# -- archspec check: the three frameworks agree, forward and backward -------------------------

HEAD_NET = "  - {op: conv2d, out: 4, kernel: 3, padding: 1}\n"
TAIL_NET = "  - {op: global_avg_pool}\n  - {op: flatten}\n  - {op: linear, out: 5}\n"

CHECKED = {
    "silu": HEAD_NET + "  - {op: silu}\n" + TAIL_NET,
    "tanh": HEAD_NET + "  - {op: tanh}\n" + TAIL_NET,
    "gelu": HEAD_NET + "  - {op: gelu}\n" + TAIL_NET,
    "gelu_tanh": HEAD_NET + "  - {op: gelu, approximate: \"'tanh'\"}\n" + TAIL_NET,
    "leaky_relu": HEAD_NET + "  - {op: leaky_relu}\n" + TAIL_NET,
    "leaky_relu_slope": HEAD_NET + "  - {op: leaky_relu, slope: 0.2}\n" + TAIL_NET,
    "softmax_channels": HEAD_NET + "  - {op: softmax, axis: 0}\n" + TAIL_NET,
    "softmax_last": HEAD_NET + "  - {op: softmax, axis: -1}\n" + TAIL_NET,
    "log_softmax_height": HEAD_NET + "  - {op: log_softmax, axis: 1}\n" + TAIL_NET,
    "softmax_vector": HEAD_NET + TAIL_NET + "  - {op: softmax, axis: 0}\n",
    "log_softmax_vector": HEAD_NET + TAIL_NET + "  - {op: log_softmax}\n",
    "global_max_pool": HEAD_NET
    + "  - {op: global_max_pool}\n  - {op: flatten}\n  - {op: linear, out: 5}\n",
    "adaptive_max_pool2d": HEAD_NET
    + "  - {op: adaptive_max_pool2d, output: 3}\n  - {op: flatten}\n  - {op: linear, out: 5}\n",
    "adaptive_max_pool2d_pair": HEAD_NET
    + "  - {op: adaptive_max_pool2d, output: [2, 5]}\n  - {op: flatten}\n"
    + "  - {op: linear, out: 5}\n",
}


def _check(path: Path, overrides: dict) -> None:
    """`archspec check` on a batch of 2: no backend fails, and all agree with torch."""
    report = check_spec(path, list(available().values()), check_workers(), overrides, None, 2)
    assert [b.backend for b in report.backends] == BACKENDS
    assert [b.error for b in report.backends] == [None, None, None]
    assert report.ok, report.to_json()
    assert report.expected["output"] == [2, 5]


@pytest.mark.parametrize("nodes", CHECKED.values(), ids=CHECKED.keys())
def test_check_agrees_in_every_framework(write_spec, nodes):
    _check(write_spec(spec_with(nodes), "net.yaml"), {})


@pytest.mark.parametrize("act", NEW_ACTIVATIONS)
def test_check_agrees_through_activation_fn(write_spec, act):
    _check(write_spec(ACT_SPEC, "act.yaml"), {"act": act})
