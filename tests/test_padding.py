"""Padding beyond symmetric zeros: TensorFlow's `same` and explicit [[top, bottom], [left,
right]] on conv2d, max_pool2d and avg_pool2d.

Evidence: exact static shapes and MACs; each backend's emitted call; each framework's module
against a NumPy float64 definition of the rule (at the spec's size and at another one, since
`same` pads by the actual input size at run time); the refusals of what a framework cannot
express; and `archspec check` agreement across the three frameworks.
"""

from __future__ import annotations

import ast

import numpy as np
import pytest
from conftest import by_path, check_workers
from test_new_ops import render_spec, spec_with

from archspec.analysis import summarize
from archspec.backend import available
from archspec.check import build, check_spec, run
from archspec.compiler import compile_spec
from archspec.errors import SpecError

BACKENDS = ["torch", "paddle", "mindspore"]


# -- the rule, in NumPy ---------------------------------------------------------------------


def tf_same(size: int, k: int, s: int, d: int) -> tuple[int, int]:
    """TensorFlow's `same` padding (before, after) on one axis."""
    out = -(-size // s)
    total = max((out - 1) * s + d * (k - 1) + 1 - size, 0)
    return total // 2, total - total // 2


def windows(x: np.ndarray, k: int, s: int, d: int) -> np.ndarray:
    """Every window of a padded N x C x H x W array: N x C x H' x W' x k x k."""
    span = d * (k - 1) + 1
    ho, wo = (x.shape[2] - span) // s + 1, (x.shape[3] - span) // s + 1
    rows = [
        [x[:, :, i * d : i * d + s * (ho - 1) + 1 : s, j * d : j * d + s * (wo - 1) + 1 : s]]
        for i in range(k)
        for j in range(k)
    ]
    return np.stack([r[0] for r in rows], axis=-1).reshape(*x.shape[:2], ho, wo, k, k)


def reference(x, op, k, s, d=1, pad="same", weight=None, count_pad=True):
    """conv (no bias), max or avg pool of x (float64) with `same` or ((t, b), (l, r))."""
    h, w = x.shape[2:]
    pads = (tf_same(h, k, s, d), tf_same(w, k, s, d)) if pad == "same" else pad
    fill = -np.inf if op == "max" else 0.0
    padded = np.pad(x, ((0, 0), (0, 0), *pads), constant_values=fill)
    win = windows(padded, k, s, d)
    if op == "conv":
        return np.einsum("nchwij,ocij->nohw", win, weight)
    if op == "max":
        return win.max(axis=(-2, -1))
    total = win.sum(axis=(-2, -1))
    if count_pad and pad != "same":
        return total / (k * k)
    ones = np.pad(np.ones((1, 1, h, w)), ((0, 0), (0, 0), *pads))
    return total / windows(ones, k, s, d).sum(axis=(-2, -1))


# -- static analysis ------------------------------------------------------------------------

# attributes, input C x H x W -> output shape, MACs
SHAPES = {
    "conv_same_s1_odd_kernel": ("op: conv2d, out: 4, kernel: 3", (3, 9, 8), (4, 9, 8)),
    "conv_same_s1_even_kernel": ("op: conv2d, out: 4, kernel: 4", (3, 7, 6), (4, 7, 6)),
    "conv_same_s2_odd": ("op: conv2d, out: 4, kernel: 3, stride: 2", (3, 9, 7), (4, 5, 4)),
    "conv_same_s2_even": ("op: conv2d, out: 4, kernel: 3, stride: 2", (3, 8, 10), (4, 4, 5)),
    "conv_same_s3": ("op: conv2d, out: 4, kernel: 2, stride: 3", (3, 10, 11), (4, 4, 4)),
    "conv_same_dilated": (
        "op: conv2d, out: 4, kernel: 3, stride: 2, dilation: 3",
        (3, 9, 8),
        (4, 5, 4),
    ),
    "conv_same_larger_stride_than_input": (
        "op: conv2d, out: 4, kernel: 3, stride: 3",
        (3, 2, 1),
        (4, 1, 1),
    ),
    "max_same_s2": ("op: max_pool2d, kernel: 3, stride: 2", (3, 9, 8), (3, 5, 4)),
    "avg_same_default_stride": ("op: avg_pool2d, kernel: 2", (3, 7, 7), (3, 4, 4)),
}
SAME_MACS = {  # out x H' x W' x C x k x k
    "conv_same_s1_odd_kernel": 4 * 9 * 8 * 3 * 9,
    "conv_same_s1_even_kernel": 4 * 7 * 6 * 3 * 16,
    "conv_same_s2_odd": 4 * 5 * 4 * 3 * 9,
    "conv_same_s2_even": 4 * 4 * 5 * 3 * 9,
    "conv_same_s3": 4 * 4 * 4 * 3 * 4,
    "conv_same_dilated": 4 * 5 * 4 * 3 * 9,
    "conv_same_larger_stride_than_input": 4 * 1 * 1 * 3 * 9,
}


@pytest.mark.parametrize("name", SHAPES)
def test_same_shapes_and_macs(compile_yaml, name):
    attrs, (c, h, w), shape = SHAPES[name]
    graph = compile_yaml(spec_with(f"  - {{name: n, {attrs}, padding: \"'same'\"}}\n", c, h, w))
    node = by_path(graph)["n"]
    assert node.shape == shape
    assert node.attrs["padding"] == "same"
    assert node.macs == SAME_MACS.get(name, 0)
    assert summarize(graph).macs == SAME_MACS.get(name, 0)


EXPLICIT = {
    # conv k3 s2 on 8 x 9: H (8 + 0 + 1 - 3) // 2 + 1 = 4, W (9 + 2 + 1 - 3) // 2 + 1 = 5
    "conv_s2": ("op: conv2d, out: 4, kernel: 3, stride: 2", "[[0, 1], [2, 1]]", (4, 4, 5)),
    "conv_even_kernel": ("op: conv2d, out: 4, kernel: 2", "[[0, 1], [1, 0]]", (4, 8, 9)),
    "conv_symmetric_nested": ("op: conv2d, out: 4, kernel: 3", "[[1, 1], [0, 0]]", (4, 8, 7)),
    "max_s2": ("op: max_pool2d, kernel: 3, stride: 2", "[[1, 0], [0, 1]]", (3, 4, 4)),
    "avg_s1": ("op: avg_pool2d, kernel: 2, stride: 1", "[[0, 1], [1, 0]]", (3, 8, 9)),
}


@pytest.mark.parametrize("name", EXPLICIT)
def test_explicit_padding_shapes(compile_yaml, name):
    attrs, padding, shape = EXPLICIT[name]
    graph = compile_yaml(spec_with(f"  - {{name: n, {attrs}, padding: {padding}}}\n", 3, 8, 9))
    node = by_path(graph)["n"]
    assert node.shape == shape
    (t, b), (left, r) = eval(padding)  # the nested literal itself
    assert node.attrs["padding"] == ((t, b), (left, r))


def test_symmetric_forms_bind_alike(compile_yaml):
    nodes = "".join(
        f"  - {{name: {n}, op: conv2d, out: 3, kernel: 3, padding: {p}}}\n"
        for n, p in (("a", 1), ("b", "[1, 1]"), ("c", "[[1, 1], [1, 1]]"))
    )
    graph = by_path(compile_yaml(spec_with(nodes)))
    assert graph["a"].attrs["padding"] == graph["b"].attrs["padding"] == ((1, 1), (1, 1))
    assert graph["c"].attrs["padding"] == ((1, 1), (1, 1))
    assert graph["a"].shape == graph["c"].shape == (3, 8, 8)


# -- emission ---------------------------------------------------------------------------

CALLS_SPEC = spec_with(
    """\
  - {name: s1, op: conv2d, out: 4, kernel: 3, padding: "'same'"}
  - {name: s2, op: conv2d, out: 4, kernel: 3, stride: 2, padding: "'same'"}
  - {name: pw, op: conv2d, out: 4, kernel: 1, stride: 2, padding: "'same'"}
  - {name: ex, op: conv2d, out: 4, kernel: 3, padding: [[0, 1], [2, 1]]}
  - {name: sym, op: conv2d, out: 4, kernel: 3, padding: [[1, 1], [2, 2]]}
  - {name: mp, op: max_pool2d, kernel: 3, stride: 2, padding: "'same'"}
  - {name: ap, op: avg_pool2d, kernel: 3, stride: 1, padding: "'same'"}
""",
    3,
    16,
    16,
)
EXPECTED_CALLS = {
    "torch": [
        'self.s1 = nn.Conv2d(in_channels, 4, kernel_size=3, padding="same")',
        'self.s2 = PaddedConv2d(4, 4, kernel_size=3, stride=2, padding="same")',
        "self.pw = nn.Conv2d(4, 4, kernel_size=1, stride=2)",
        "self.ex = PaddedConv2d(4, 4, kernel_size=3, padding=((0, 1), (2, 1)))",
        "self.sym = nn.Conv2d(4, 4, kernel_size=3, padding=(1, 2))",
        'self.mp = PaddedMaxPool2d(kernel_size=3, stride=2, padding="same")',
        'self.ap = PaddedAvgPool2d(kernel_size=3, stride=1, padding="same")',
    ],
    "paddle": [
        'self.s1 = nn.Conv2D(in_channels, 4, kernel_size=3, padding="SAME")',
        'self.s2 = nn.Conv2D(4, 4, kernel_size=3, stride=2, padding="SAME")',
        'self.pw = nn.Conv2D(4, 4, kernel_size=1, stride=2, padding="SAME")',
        "self.ex = nn.Conv2D(4, 4, kernel_size=3, padding=(0, 1, 2, 1))",
        "self.sym = nn.Conv2D(4, 4, kernel_size=3, padding=(1, 2))",
        'self.mp = nn.MaxPool2D(kernel_size=3, stride=2, padding="SAME")',
        'self.ap = nn.AvgPool2D(kernel_size=3, stride=1, padding="SAME")',
    ],
    "mindspore": [
        'self.s1 = nn.Conv2d(in_channels, 4, kernel_size=3, pad_mode="same", has_bias=True)',
        'self.s2 = nn.Conv2d(4, 4, kernel_size=3, stride=2, pad_mode="same", has_bias=True)',
        'self.pw = nn.Conv2d(4, 4, kernel_size=1, stride=2, pad_mode="same", has_bias=True)',
        'self.ex = nn.Conv2d(4, 4, kernel_size=3, pad_mode="pad", padding=(0, 1, 2, 1), '
        "has_bias=True)",
        # MindSpore's pair would be (top and bottom, left and right) too, but read as one value
        'self.sym = nn.Conv2d(4, 4, kernel_size=3, pad_mode="pad", padding=(1, 1, 2, 2), '
        "has_bias=True)",
        'self.mp = nn.MaxPool2d(kernel_size=3, stride=2, pad_mode="same")',
        'self.ap = nn.AvgPool2d(kernel_size=3, stride=1, pad_mode="same")',
    ],
}


@pytest.mark.parametrize("backend", BACKENDS)
def test_each_backend_writes_its_idiom(write_spec, backend):
    assert layer_calls(render_spec(write_spec(CALLS_SPEC), backend)) == EXPECTED_CALLS[backend]


def layer_calls(text: str) -> list[str]:
    """Every `self.name = Call(...)` of a generated module, each on one line."""
    found = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            target = ast.unparse(node.targets[0])
            if target.startswith("self."):
                found.append(f"{target} = {ast.unparse(node.value)}".replace("'", '"'))
    return found


def test_torch_layers_are_copied_only_when_used(write_spec):
    text = render_spec(write_spec(CALLS_SPEC), "torch")
    assert "class PaddedConv2d(nn.Conv2d):" in text
    assert "def pad_input(" in text
    plain = render_spec(write_spec(spec_with("  - {op: conv2d, out: 4, kernel: 3}\n")), "torch")
    assert "Padded" not in plain and "pad_input" not in plain


def test_paddle_dilated_same_pads_in_its_own_layer(write_spec):
    spec = spec_with(
        "  - {name: d, op: conv2d, out: 4, kernel: 3, dilation: 2, padding: \"'same'\"}\n"
    )
    text = render_spec(write_spec(spec), "paddle")
    assert "self.d = Conv2DSame(in_channels, 4, kernel_size=3, dilation=2)" in text
    assert "class Conv2DSame(nn.Conv2D):" in text


REFUSED = {
    "mindspore_uneven_max_pool": (
        "  - {name: n, op: max_pool2d, kernel: 3, stride: 2, padding: [[0, 1], [1, 1]]}\n",
        "mindspore",
        "spec.yaml:4:5: error: MindSpore emitter: max_pool2d: MindSpore pools pad symmetrically "
        "([[top, bottom], [left, right]] needs top == bottom and left == right)",
        ["torch", "paddle"],
    ),
    "mindspore_uneven_avg_pool": (
        "  - {name: n, op: avg_pool2d, kernel: 2, stride: 1, padding: [[0, 1], [0, 1]], "
        "count_include_pad: false}\n",
        "mindspore",
        "spec.yaml:4:5: error: MindSpore emitter: avg_pool2d: MindSpore pools pad symmetrically "
        "([[top, bottom], [left, right]] needs top == bottom and left == right)",
        ["torch", "paddle"],
    ),
    "mindspore_dilated_same_max_pool": (
        "  - {name: n, op: max_pool2d, kernel: 2, stride: 1, dilation: 2, padding: \"'same'\"}\n",
        "mindspore",
        "spec.yaml:4:5: error: MindSpore emitter: max_pool2d: pad_mode='same' takes no dilation",
        ["torch"],  # Paddle has no dilated max pool at all
    ),
    "paddle_uneven_avg_pool_counting_padding": (
        "  - {name: n, op: avg_pool2d, kernel: 2, stride: 1, padding: [[0, 1], [0, 1]]}\n",
        "paddle",
        "spec.yaml:4:5: error: PaddlePaddle emitter: avg_pool2d: uneven padding needs "
        "count_include_pad false (AvgPool2D(exclusive=False) counts those windows otherwise)",
        ["torch"],
    ),
}


@pytest.mark.parametrize("name", REFUSED)
def test_what_a_framework_cannot_express_is_refused_at_the_node(write_spec, name):
    nodes, backend, message, writers = REFUSED[name]
    path = write_spec(spec_with(nodes))
    with pytest.raises(SpecError) as info:
        render_spec(path, backend)
    assert str(info.value) == message
    for other in writers:
        assert "self.n = " in render_spec(path, other)


# -- each framework against the NumPy rule ----------------------------------------------------

# attributes, input C x H x W, reference keyword arguments, backends that express it
FORMULAS = {
    "conv_same_s2_odd": ("op: conv2d, out: 2, kernel: 3, stride: 2", (3, 9, 8), {}),
    "conv_same_s2_even_kernel": ("op: conv2d, out: 2, kernel: 4, stride: 2", (3, 8, 8), {}),
    "conv_same_s3": ("op: conv2d, out: 2, kernel: 3, stride: 3", (3, 10, 11), {}),
    "conv_same_s1_even_kernel": ("op: conv2d, out: 2, kernel: 2", (3, 7, 7), {}),
    "conv_same_dilated": ("op: conv2d, out: 2, kernel: 3, dilation: 2", (3, 7, 8), {"d": 2}),
    "conv_same_dilated_s2": (
        "op: conv2d, out: 2, kernel: 3, stride: 2, dilation: 2",
        (3, 9, 9),
        {"d": 2},
    ),
    "conv_explicit": (
        "op: conv2d, out: 2, kernel: 3, stride: 2, padding: [[0, 1], [2, 1]]",
        (3, 8, 9),
        {"pad": ((0, 1), (2, 1))},
    ),
    "max_same_s2": ("op: max_pool2d, kernel: 3, stride: 2", (3, 9, 8), {}),
    "max_same_s1_even": ("op: max_pool2d, kernel: 2, stride: 1", (3, 7, 8), {}),
    "avg_same_s2": ("op: avg_pool2d, kernel: 3, stride: 2", (3, 9, 8), {}),
    "avg_same_k2": ("op: avg_pool2d, kernel: 2", (3, 7, 7), {}),
    "avg_same_counting_flag_ignored": (
        "op: avg_pool2d, kernel: 3, stride: 1, count_include_pad: false",
        (3, 6, 7),
        {},
    ),
    "max_explicit": (
        "op: max_pool2d, kernel: 3, stride: 2, padding: [[0, 1], [1, 0]]",
        (3, 8, 9),
        {"pad": ((0, 1), (1, 0))},
    ),
    "avg_explicit_not_counted": (
        "op: avg_pool2d, kernel: 3, stride: 1, padding: [[0, 1], [1, 1]], count_include_pad: false",
        (3, 6, 7),
        {"pad": ((0, 1), (1, 1)), "count_pad": False},
    ),
    "avg_explicit_counted": (
        "op: avg_pool2d, kernel: 3, stride: 2, padding: [[0, 1], [1, 0]]",
        (3, 7, 8),
        {"pad": ((0, 1), (1, 0))},
    ),
}
UNSUPPORTED = {  # refused above, with a located error
    ("max_explicit", "mindspore"),
    ("avg_explicit_not_counted", "mindspore"),
    ("avg_explicit_counted", "mindspore"),
    ("avg_explicit_counted", "paddle"),
}
OTHER_SIZE = (11, 6)  # `same` pads by the input's own size: a module built for one runs on any
FORMULA_ATOL = 2e-5


def _formula_params():
    for name in FORMULAS:
        for backend in BACKENDS:
            if (name, backend) not in UNSUPPORTED:
                yield pytest.param(name, backend, id=f"{name}-{backend}")


@pytest.mark.parametrize(("name", "backend"), list(_formula_params()))
def test_each_framework_computes_the_rule(write_spec, name, backend):
    attrs, (c, h, w), kwargs = FORMULAS[name]
    if "padding" not in attrs:
        attrs += ", padding: \"'same'\""
    path = write_spec(spec_with(f"  - {{name: n, {attrs}}}\n", c, h, w), "p.yaml")
    graph = compile_spec(path)
    node = by_path(graph)["n"]
    op = {"conv2d": "conv", "max_pool2d": "max", "avg_pool2d": "avg"}[node.op]
    k, s = node.attrs["kernel"][0], (node.attrs.get("stride") or node.attrs["kernel"])[0]
    rng = np.random.default_rng(1)
    weights = None
    if op == "conv":
        weight = rng.standard_normal(node.params["weight"]).astype(np.float32)
        weights = {"n.weight": weight, "n.bias": np.zeros(node.params["bias"], np.float32)}
        kwargs = {**kwargs, "weight": weight.astype(np.float64)}
    workers = check_workers()
    b = available()[backend]
    build(graph, path, b, workers, {})
    sizes = [(h, w)] if "pad" in kwargs else [(h, w), OTHER_SIZE]
    for size in sizes:
        x = rng.standard_normal((2, c, *size)).astype(np.float32)
        expected = reference(x.astype(np.float64), op, k, s, **kwargs)
        data = workers.path("padding-data.npz")
        np.savez(data, x=x, probe=np.ones(expected.shape, np.float32))
        got = run(graph, b, workers, weights, data)["eval"]
        assert got.shape == expected.shape
        assert float(np.max(np.abs(got - expected))) <= FORMULA_ATOL, size


# -- archspec check: the three frameworks agree, forward and backward -------------------------

CHECKED = """\
  - {op: conv2d, out: 4, kernel: 3, stride: 2, padding: "'same'"}
  - {op: conv2d, out: 4, kernel: 3, dilation: 2, padding: "'same'"}
  - {op: conv2d, out: 4, kernel: 2, padding: [[0, 1], [1, 0]]}
  - {op: max_pool2d, kernel: 3, stride: 2, padding: "'same'"}
  - {op: avg_pool2d, kernel: 2, stride: 1, padding: "'same'"}
  - {op: global_avg_pool}
  - {op: flatten}
  - {op: linear, out: 5}
"""


@pytest.mark.parametrize(("h", "w"), [(9, 8), (16, 16)])
def test_check_agrees_in_every_framework(write_spec, h, w):
    path = write_spec(spec_with(CHECKED, 3, h, w), "net.yaml")
    report = check_spec(path, list(available().values()), check_workers(), {}, None, 2)
    assert [b.backend for b in report.backends] == BACKENDS
    assert [b.error for b in report.backends] == [None, None, None]
    assert report.ok, report.to_json()
    assert report.expected["output"] == [2, 5]


# -- misuse -----------------------------------------------------------------------------------


def test_same_or_uneven_padding_must_be_literal(compile_error):
    spec = """\
        name: Net
        input: {channels: 3, height: 8, width: 8}
        blocks:
          B:
            params: {p: 1}
            nodes:
              - {op: conv2d, out: 4, kernel: 3, padding: "'same' if p == 0 else p"}
        nodes:
          - {block: B, args: {p: 1}}
          - {block: B, args: {p: 0}}
        """
    assert compile_error(spec) == (
        "spec.yaml:7:50: error: conv2d attribute `padding`: 'same' and [[top, bottom], "
        "[left, right]] must be written as literals"
    )
