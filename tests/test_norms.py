"""Layer norm (last axes, and over the channels of a map), group norm, and learnable tensors
as nodes (`parameter`): static shapes and counts, emitted calls, each framework against a
NumPy definition, and `archspec check` agreement.

The NumPy cases run each backend's module on inputs of small variance (about 1e-5), where
the epsilon matters, so a framework default that differs (MindSpore's LayerNorm epsilon is
1e-7) fails; they load weights by their canonical names, so a tensor named otherwise in the
framework (MindSpore's gamma and beta) is mapped or fails.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import by_path, check_workers
from test_new_ops import render_spec, spec_with

from archspec.analysis import summarize
from archspec.backend import available
from archspec.check import build, check_spec, run
from archspec.compiler import compile_spec
from archspec.errors import SpecError
from archspec.ops import INIT_SCHEMES, OPS
from archspec.tensors import tensor_maps

NEW_OPS = ["layer_norm", "layer_norm2d", "group_norm", "parameter"]
END = "  - {name: end, op: relu, inputs: x}\n"  # a parameter (no batch) cannot be the output
BACKENDS = ["torch", "paddle", "mindspore"]


def test_ops_are_registered_with_documented_attributes():
    for name in NEW_OPS:
        op = OPS[name]
        assert op.name == name and not op.joins
        assert all(attr.doc for attr in op.attrs.values()), name
    assert {k: a.default for k, a in OPS["layer_norm"].attrs.items()} == {
        "shape": None,
        "eps": 1e-5,
    }
    assert {k: a.default for k, a in OPS["layer_norm2d"].attrs.items()} == {"eps": 1e-5}
    assert {k: a.default for k, a in OPS["group_norm"].attrs.items()} == {
        "groups": None,
        "eps": 1e-5,
    }
    assert [OPS[n].tensors for n in NEW_OPS] == [("weight", "bias")] * 3 + [("value",)]
    assert OPS["parameter"].source and (
        OPS["parameter"].min_inputs,
        OPS["parameter"].max_inputs,
    ) == (0, 0)
    assert not any(OPS[n].source for n in NEW_OPS[:3])
    assert INIT_SCHEMES["trunc_normal"] == {"mean": 0.0, "std": 1.0, "a": -2.0, "b": 2.0}


# (input C, H, W, node attributes) -> (output shape, trainable tensors)
SHAPES = {
    "layer_norm_last": (
        (3, 8, 5),
        "op: layer_norm, shape: [5]",
        (3, 8, 5),
        {"weight": (5,), "bias": (5,)},
    ),
    "layer_norm_two": (
        (3, 8, 5),
        "op: layer_norm, shape: [8, 5], eps: 1e-6",
        (3, 8, 5),
        {"weight": (8, 5), "bias": (8, 5)},
    ),
    "layer_norm_all": (
        (3, 4, 4),
        "op: layer_norm, shape: [3, 4, 4]",
        (3, 4, 4),
        {"weight": (3, 4, 4), "bias": (3, 4, 4)},
    ),
    "layer_norm2d": ((6, 5, 7), "op: layer_norm2d", (6, 5, 7), {"weight": (6,), "bias": (6,)}),
    "group_norm": (
        (6, 5, 7),
        "op: group_norm, groups: 3",
        (6, 5, 7),
        {"weight": (6,), "bias": (6,)},
    ),
    "group_norm_one": (
        (6, 5, 7),
        "op: group_norm, groups: 1",
        (6, 5, 7),
        {"weight": (6,), "bias": (6,)},
    ),
}


@pytest.mark.parametrize("case", SHAPES.values(), ids=SHAPES.keys())
def test_static_shape_counts_and_no_macs(compile_yaml, case):
    (c, h, w), attrs, shape, params = case
    graph = compile_yaml(spec_with(f"  - {{name: n, {attrs}}}\n", c, h, w))
    s = summarize(graph)
    trainable = sum(math.prod(p) for p in params.values())
    assert (s.output_shape, s.trainable, s.bn_stats, s.macs) == (shape, trainable, 0, 0)
    node = by_path(graph)["n"]
    assert (node.shape, node.params, node.buffers, node.macs) == (shape, params, {}, 0)


@pytest.mark.parametrize(
    ("shape", "count"), [("[4, 1, 1]", 4), ("[1, 7]", 7), ("[2, 3, 4, 5]", 120)]
)
def test_parameter_shape_and_count(compile_yaml, shape, count):
    graph = compile_yaml(spec_with(f"  - {{name: n, op: parameter, shape: {shape}}}\n" + END))
    node = by_path(graph)["n"]
    dims = tuple(int(d) for d in shape.strip("[]").split(", "))
    assert (node.shape, node.params, node.buffers, node.macs) == (dims, {"value": dims}, {}, 0)
    assert (node.inputs, node.in_shapes) == ([], [])
    s = summarize(graph)
    assert (s.output_shape, s.trainable, s.bn_stats, s.macs) == ((3, 8, 8), count, 0, 0)


def test_parameter_takes_no_input_and_is_named_by_its_path(compile_yaml):
    graph = compile_yaml(
        spec_with(
            "  - {name: c, op: conv2d, out: 4, kernel: 1}\n"
            "  - {name: s, op: parameter, shape: [4, 1, 1], init: {value: {constant: 0.5}}}\n"
            "  - {name: m, op: multiply, inputs: [s, c]}\n"
        )
    )
    nodes = by_path(graph)
    assert (nodes["s"].inputs, nodes["s"].in_shapes) == ([], [])
    assert nodes["s"].init == {"value": ("constant", {"value": 0.5})}
    assert (nodes["m"].inputs, nodes["m"].shape) == (["s", "c"], (4, 8, 8))
    for backend in BACKENDS:
        maps = tensor_maps(graph, available()[backend])
        assert [(m.canonical, m.native, m.trainable) for m in maps][:1] == [("s", "s", True)]


def test_a_blocks_own_parameters_come_first_in_tensor_order(compile_yaml):
    """PyTorch, Paddle and MindSpore list a module's own parameters before its children's."""
    graph = compile_yaml(
        spec_with(
            "  - {name: c, op: conv2d, out: 4, kernel: 1}\n"
            "  - {name: b, block: B}\n"
            "  - {name: t, op: parameter, shape: [1]}\n" + END,
            extra="blocks:\n  B:\n    nodes:\n"
            "      - {name: n, op: layer_norm2d}\n"
            "      - {name: s, op: parameter, shape: [4, 1, 1]}\n"
            "      - {name: s2, op: parameter, shape: [4, 1, 1]}\n"
            "      - {op: multiply, inputs: [s, n]}\n",
        )
    )
    names = [m.canonical for m in tensor_maps(graph, available()["mindspore"])]
    assert names == ["t", "c.weight", "c.bias", "b.s", "b.s2", "b.n.weight", "b.n.bias"]
    natives = [m.native for m in tensor_maps(graph, available()["mindspore"])]
    assert natives == ["t", "c.weight", "c.bias", "b.s", "b.s2", "b.n.gamma", "b.n.beta"]


# -- emitted calls --------------------------------------------------------------------------

CALLS_SPEC = spec_with(
    """\
  - {name: c, op: conv2d, out: 4, kernel: 3, padding: 1}
  - {name: ln2, op: layer_norm2d}
  - {name: ln2e, op: layer_norm2d, eps: 1e-6}
  - {name: gn, op: group_norm, groups: 2}
  - {name: gne, op: group_norm, groups: 4, eps: 1e-3}
  - {name: ln, op: layer_norm, shape: [8]}
  - {name: s, op: parameter, shape: [4, 1, 1]}
  - {name: t, op: parameter, shape: [3]}
  - {name: end, op: multiply, inputs: [s, c]}
"""
)

EXPECTED_CALLS = {
    "torch": [
        "self.ln2 = LayerNorm2d(4)",
        "self.ln2e = LayerNorm2d(4, eps=1e-06)",
        "self.gn = nn.GroupNorm(2, 4)",
        "self.gne = nn.GroupNorm(4, 4, eps=0.001)",
        "self.ln = nn.LayerNorm([8])",
        "self.s = nn.Parameter(torch.zeros(4, 1, 1))",
        "self.t = nn.Parameter(torch.zeros(3))",
    ],
    "paddle": [
        "self.ln2 = LayerNorm2D(4)",
        "self.ln2e = LayerNorm2D(4, epsilon=1e-06)",
        "self.gn = nn.GroupNorm(2, 4)",
        "self.gne = nn.GroupNorm(4, 4, epsilon=0.001)",
        "self.ln = nn.LayerNorm([8])",
        "self.s = self.create_parameter([4, 1, 1], "
        "default_initializer=nn.initializer.Constant(0.0))",
        "self.t = self.create_parameter([3], default_initializer=nn.initializer.Constant(0.0))",
    ],
    "mindspore": [
        "self.ln2 = LayerNorm2d(4)",
        "self.ln2e = LayerNorm2d(4, eps=1e-06)",
        "self.gn = nn.GroupNorm(2, 4)",
        "self.gne = nn.GroupNorm(4, 4, eps=0.001)",
        "self.ln = nn.LayerNorm([8], epsilon=1e-05)",  # nn.LayerNorm's epsilon is 1e-7
        "self.s = ms.Parameter(ops.zeros((4, 1, 1)))",
        "self.t = ms.Parameter(ops.zeros((3,)))",
    ],
}


@pytest.mark.parametrize("backend", BACKENDS)
def test_each_backend_writes_its_framework_call(write_spec, backend):
    text = render_spec(write_spec(CALLS_SPEC), backend)
    net = text[text.index("class Net(") :].splitlines()  # not the copied layers
    lines = [line.strip() for line in net if line.strip().startswith("self.")]
    calls = [line for line in lines if " = " in line and not line.startswith("self.c =")]
    assert calls == EXPECTED_CALLS[backend]
    assert ("class LayerNorm2D" if backend == "paddle" else "class LayerNorm2d") in text


def test_a_parametrised_shape_is_written_from_the_spec(write_spec):
    path = write_spec(
        spec_with(
            "  - {name: ln, op: layer_norm, shape: [w]}\n"
            "  - {name: s, op: parameter, shape: [c, 1, 1]}\n"
            "  - {name: t, op: parameter, shape: dims}\n" + END,
            extra="params: {w: 8, c: 3, dims: {type: list, default: [2, 3]}}\n",
        )
    )
    torch_text, ms_text = render_spec(path, "torch"), render_spec(path, "mindspore")
    assert "self.ln = nn.LayerNorm([w])" in torch_text
    assert "self.s = nn.Parameter(torch.zeros(c, 1, 1))" in torch_text
    assert "self.t = nn.Parameter(torch.zeros(*dims))" in torch_text
    # MindSpore's begin axes come from the length of the list written in the spec: -1, left out
    assert "self.ln = nn.LayerNorm([w], epsilon=1e-05)" in ms_text
    assert "self.t = ms.Parameter(ops.zeros(tuple(dims)))" in ms_text
    assert "self.s = self.create_parameter([c, 1, 1]," in render_spec(path, "paddle")


INIT_SPEC = spec_with(
    "  - {name: c, op: conv2d, out: 4, kernel: 1}\n"
    "  - {name: s, op: parameter, shape: [4, 1, 1], init: {value: {constant: 1e-6}}}\n"
    "  - {name: t, op: parameter, shape: [4, 1, 1], init: {value: {trunc_normal: {std: 0.02}}}}\n"
    "  - {op: multiply, inputs: [s, c]}\n",
    extra="init: {conv2d: {weight: {trunc_normal: {std: 0.02, a: -0.04, b: 0.04}}}}\n",
)

EXPECTED_INIT = {
    "torch": [
        "nn.init.trunc_normal_(m.weight, std=0.02, a=-0.04, b=0.04)",
        "nn.init.constant_(self.s, 1e-06)",
        "nn.init.trunc_normal_(self.t, std=0.02)",
    ],
    "paddle": [
        "nn.initializer.TruncatedNormal(std=0.02, a=-0.04, b=0.04)(m.weight)",
        "nn.initializer.Constant(1e-06)(self.s)",
        "nn.initializer.TruncatedNormal(std=0.02)(self.t)",
    ],
    "mindspore": [
        "init.TruncatedNormal(sigma=0.02, a=-0.04, b=0.04),",
        "self.s.set_data(init.initializer(init.Constant(1e-06), self.s.shape, self.s.dtype))",
        "self.t.set_data(",
        "init.initializer(init.TruncatedNormal(sigma=0.02), self.t.shape, self.t.dtype)",
    ],
}


@pytest.mark.parametrize("backend", BACKENDS)
def test_init_of_parameters_and_trunc_normal(write_spec, backend):
    text = render_spec(write_spec(INIT_SPEC), backend)
    lines = [line.strip() for line in text.splitlines()]
    for expected in EXPECTED_INIT[backend]:
        assert expected in lines, expected


# -- each framework against the definition ---------------------------------------------------


def _normalise(x, axes, eps):
    mean = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(var + eps)


def _layer_norm(x, w, b, k, eps):
    return _normalise(x, tuple(range(-k, 0)), eps) * w + b


def _layer_norm2d(x, w, b, eps):
    return _normalise(x, 1, eps) * w[:, None, None] + b[:, None, None]


def _group_norm(x, w, b, g, eps):
    n, c, h, wd = x.shape
    y = _normalise(x.reshape(n, g, c // g * h * wd), 2, eps).reshape(x.shape)
    return y * w[:, None, None] + b[:, None, None]


# id -> (node attributes, input C x H x W, weights by tensor (shapes), definition on the batch)
FORMULAS = {
    "layer_norm": (
        "op: layer_norm, shape: [7]",
        (3, 5, 7),
        (7,),
        lambda x, w, b: _layer_norm(x, w, b, 1, 1e-5),
    ),
    "layer_norm_eps": (
        "op: layer_norm, shape: [7], eps: 1e-6",
        (3, 5, 7),
        (7,),
        lambda x, w, b: _layer_norm(x, w, b, 1, 1e-6),
    ),
    "layer_norm_two_axes": (
        "op: layer_norm, shape: [5, 7]",
        (3, 5, 7),
        (5, 7),
        lambda x, w, b: _layer_norm(x, w, b, 2, 1e-5),
    ),
    "layer_norm2d": (
        "op: layer_norm2d",
        (6, 5, 7),
        (6,),
        lambda x, w, b: _layer_norm2d(x, w, b, 1e-5),
    ),
    "layer_norm2d_eps": (
        "op: layer_norm2d, eps: 1e-6",
        (6, 5, 7),
        (6,),
        lambda x, w, b: _layer_norm2d(x, w, b, 1e-6),
    ),
    "group_norm": (
        "op: group_norm, groups: 3",
        (6, 5, 7),
        (6,),
        lambda x, w, b: _group_norm(x, w, b, 3, 1e-5),
    ),
    "group_norm_eps": (
        "op: group_norm, groups: 2, eps: 1e-6",
        (6, 5, 7),
        (6,),
        lambda x, w, b: _group_norm(x, w, b, 2, 1e-6),
    ),
}
FORMULA_ATOL = 5e-5


def _inputs(shape: tuple[int, ...], scale: float) -> np.ndarray:
    """Two samples of distinct values spread over [-4, 4] * scale, in a fixed shuffled order."""
    values = np.linspace(-4.0, 4.0, 2 * math.prod(shape)) * scale
    return np.random.default_rng(0).permutation(values).reshape(2, *shape).astype(np.float32)


def _run(write_spec, backend: str, nodes: str, shape, weights: dict, x: np.ndarray, out_shape):
    path = write_spec(spec_with(nodes, *shape), "single.yaml")
    graph = compile_spec(path)
    workers = check_workers()
    b = available()[backend]
    data = workers.path("norm-data.npz")
    np.savez(data, x=x, probe=np.ones(out_shape, np.float32))
    build(graph, path, b, workers, {})
    return run(graph, b, workers, weights, data)["eval"]


# PaddlePaddle refuses a layer norm over several axes (test_paddle_refuses_...)
FORMULA_CASES = [
    pytest.param(backend, case, id=f"{name}-{backend}")
    for name, case in FORMULAS.items()
    for backend in BACKENDS
    if not (backend != "torch" and name == "layer_norm_two_axes")
]


@pytest.mark.parametrize(("backend", "case"), FORMULA_CASES)
def test_each_framework_computes_pytorchs_definition(write_spec, backend, case):
    attrs, shape, tensor, formula = case
    rng = np.random.default_rng(1)
    w = rng.uniform(0.5, 1.5, tensor).astype(np.float32)
    b = rng.normal(0.0, 0.5, tensor).astype(np.float32)
    x = _inputs(shape, 1e-3)  # variance about 5e-6: eps 1e-7, 1e-6 and 1e-5 differ
    expected = formula(x.astype(np.float64), w, b)
    got = _run(
        write_spec,
        backend,
        f"  - {{name: n, {attrs}}}\n",
        shape,
        {"n.weight": w, "n.bias": b},
        x,
        expected.shape,
    )
    assert got.shape == expected.shape
    assert float(np.max(np.abs(got - expected))) <= FORMULA_ATOL


@pytest.mark.parametrize("eps", [1e-7, 1e-4])
def test_the_inputs_tell_epsilons_apart(eps):
    x = _inputs((3, 5, 7), 1e-3).astype(np.float64)
    one = np.ones(7)
    gap = np.abs(_layer_norm(x, one, 0 * one, 1, eps) - _layer_norm(x, one, 0 * one, 1, 1e-5))
    assert gap.max() > 100 * FORMULA_ATOL


@pytest.mark.parametrize("backend", BACKENDS)
def test_each_framework_scales_by_a_parameter(write_spec, backend):
    """`parameter` first in a multiply (torchvision's `layer_scale * block(x)`), then added."""
    nodes = (
        "  - {name: s, op: parameter, shape: [3, 1, 1]}\n"
        "  - {name: t, op: parameter, shape: [3, 5, 7]}\n"
        "  - {name: m, op: multiply, inputs: [s, x]}\n"
        "  - {name: a, op: add, inputs: [m, t]}\n"
    )
    x = _inputs((3, 5, 7), 1.0)
    s = np.array([0.5, -2.0, 3.0], np.float32).reshape(3, 1, 1)
    t = np.linspace(-1.0, 1.0, 105, dtype=np.float32).reshape(3, 5, 7)
    got = _run(write_spec, backend, nodes, (3, 5, 7), {"s": s, "t": t}, x, (2, 3, 5, 7))
    assert float(np.max(np.abs(got - (s * x.astype(np.float64) + t)))) <= 1e-6


REFUSED = {
    "paddle": "PaddlePaddle emitter: layer_norm: layer_norm over several axes (PaddlePaddle "
    "flattens its weight)",
    "mindspore": "MindSpore emitter: layer_norm: layer_norm over several axes (MindSpore counts "
    "them from the batch)",
}
REFUSED_WRITTEN = {
    "paddle": "PaddlePaddle emitter: layer_norm: `axes` must be 1 here, got 2",
    "mindspore": "MindSpore emitter: layer_norm: `begin_norm_axis` must be -1 here, got -2",
}


@pytest.mark.parametrize("backend", ["paddle", "mindspore"])
def test_a_layer_norm_over_several_axes_is_a_backend_limit(write_spec, backend):
    """PaddlePaddle keeps such a weight flattened (PyTorch's checkpoints would not map);
    MindSpore's LayerNorm needs the input's rank for it. PyTorch writes it."""
    path = write_spec(spec_with("  - {name: n, op: layer_norm, shape: [5, 7]}\n", 3, 5, 7))
    with pytest.raises(SpecError) as info:
        render_spec(path, backend)
    assert str(info.value) == f"spec.yaml:4:5: error: {REFUSED[backend]}"
    assert "self.n = nn.LayerNorm([5, 7])" in render_spec(path, "torch")
    written = spec_with(
        "  - {name: n, op: layer_norm, shape: [h, w]}\n", 3, 5, 7, extra="params: {h: 5, w: 7}\n"
    )
    with pytest.raises(SpecError) as info:
        render_spec(write_spec(written, "written.yaml"), backend)
    assert str(info.value) == f"written.yaml:5:5: error: {REFUSED_WRITTEN[backend]}"


# -- archspec check: the three frameworks agree, forward and backward -------------------------

CHECKED = spec_with(
    """\
  - {op: conv2d, out: 4, kernel: 3, padding: 1}
  - {name: ln2, op: layer_norm2d, eps: 1e-6}
  - {name: gn, op: group_norm, groups: 2}
  - {name: body, block: Scaled}
  - {op: permute, dims: [1, 2, 0]}
  - {op: layer_norm, shape: [4]}
  - {op: permute, dims: [2, 0, 1]}
  - {op: global_avg_pool}
  - {op: flatten}
  - {op: linear, out: 5}
""",
    c=3,
    h=5,
    w=6,
    extra="""\
blocks:
  Scaled:
    nodes:
      - {name: branch, op: conv2d, out: in_channels, kernel: 3, padding: 1, groups: in_channels}
      - {name: scale, op: parameter, shape: [in_channels, 1, 1], init: {value: {constant: 0.5}}}
      - {name: m, op: multiply, inputs: [scale, branch]}
      - {op: add, inputs: [m, x]}
""",
)


def test_check_agrees_in_every_framework(write_spec):
    path = write_spec(CHECKED, "net.yaml")
    graph = compile_spec(path)
    assert summarize(graph).trainable == (4 * 27 + 4) + 8 + 8 + (4 * 9 + 4 + 4) + 8 + 25
    report = check_spec(path, list(available().values()), check_workers(), {}, None, 2)
    assert [b.backend for b in report.backends] == BACKENDS
    assert [b.error for b in report.backends] == [None, None, None]
    assert report.ok, report.to_json()
    assert report.expected["output"] == [2, 5]
