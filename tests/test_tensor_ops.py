"""Tensor ops of any rank: permute, reshape, flatten's axes, concat's axis, chunk and split
(nodes with several outputs, addressed as `parts[k]`) and channel_shuffle.

The same three kinds of evidence as tests/test_new_ops.py: the IR's shapes (no framework);
each backend's emitted call, and its module run alone against a NumPy float64 definition of
PyTorch's semantics; and `archspec check` across the three frameworks.
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
from archspec.ops import OPS

BACKENDS = ["torch", "paddle", "mindspore"]
TENSOR_OPS = ["permute", "reshape", "chunk", "split", "channel_shuffle"]


# -- registry and static shapes ------------------------------------------------------------


def test_ops_are_registered_with_documented_attributes():
    for name in TENSOR_OPS:
        op = OPS[name]
        assert op.name == name and op.tensors == ()
        assert all(attr.doc for attr in op.attrs.values()), name
    assert [n for n in TENSOR_OPS if OPS[n].joins] == ["chunk", "split"]  # written in forward
    # the defaults keep today's behaviour: flatten all but the batch, concat on channels
    assert {k: a.default for k, a in OPS["flatten"].attrs.items()} == {"start": 0, "end": -1}
    assert {k: a.default for k, a in OPS["concat"].attrs.items()} == {"axis": 0}


# (input C, H, W, node attributes) -> output shape
SHAPES = {
    "permute_last": ((3, 4, 5), "op: permute, dims: [1, 2, 0]", (4, 5, 3)),
    "permute_swap": ((3, 4, 5), "op: permute, dims: [0, 2, 1]", (3, 5, 4)),
    "reshape": ((4, 3, 2), "op: reshape, shape: [2, 12]", (2, 12)),
    "reshape_infer": ((4, 3, 2), "op: reshape, shape: [-1, 6]", (4, 6)),
    "reshape_rank4": ((4, 3, 2), "op: reshape, shape: [2, 2, 3, -1]", (2, 2, 3, 2)),
    "flatten": ((3, 4, 5), "op: flatten", (60,)),
    "flatten_spatial": ((3, 4, 5), "op: flatten, start: 1", (3, 20)),
    "flatten_first_two": ((3, 4, 5), "op: flatten, end: 1", (12, 5)),
    "flatten_negative": ((3, 4, 5), "op: flatten, start: -2, end: -1", (3, 20)),
    "flatten_one_axis": ((3, 4, 5), "op: flatten, start: 1, end: 1", (3, 4, 5)),
    "channel_shuffle": ((6, 4, 5), "op: channel_shuffle, groups: 3", (6, 4, 5)),
}


@pytest.mark.parametrize("case", SHAPES.values(), ids=SHAPES.keys())
def test_static_shapes(compile_yaml, case):
    (c, h, w), attrs, shape = case
    graph = compile_yaml(spec_with(f"  - {{name: n, {attrs}}}\n", c, h, w))
    node = by_path(graph)["n"]
    assert (node.shape, node.params, node.macs, node.parts) == (shape, {}, 0, None)
    assert summarize(graph).output_shape == shape


# (input, chunk or split node, the node using its parts) -> (parts' shapes, output shape)
PARTS = {
    "chunk_channels": (
        (6, 4, 4),
        "op: chunk, chunks: 2",
        "{name: out, op: concat, inputs: '[p[1], p[0]]'}",
        [(3, 4, 4), (3, 4, 4)],
        (6, 4, 4),
    ),
    "chunk_width": (
        (2, 4, 6),
        "op: chunk, chunks: 3, axis: -1",
        "{name: out, op: concat, inputs: '[p[2], p[0]]', axis: 2}",
        [(2, 4, 2)] * 3,
        (2, 4, 4),
    ),
    "split_channels": (
        (6, 4, 4),
        "op: split, sizes: [1, 2, 3]",
        "{name: out, op: add, inputs: '[p[1], p[-2]]'}",
        [(1, 4, 4), (2, 4, 4), (3, 4, 4)],
        (2, 4, 4),
    ),
    "split_height": (
        (2, 5, 3),
        "op: split, sizes: [4, 1], axis: 1",
        "{name: out, op: relu, inputs: 'p[0]'}",
        [(2, 4, 3), (2, 1, 3)],
        (2, 4, 3),
    ),
}


@pytest.mark.parametrize("case", PARTS.values(), ids=PARTS.keys())
def test_parts_have_their_own_shapes(compile_yaml, case):
    (c, h, w), node, use, parts, out = case
    graph = compile_yaml(spec_with(f"  - {{name: p, {node}}}\n  - {use}\n", c, h, w))
    p, o = by_path(graph)["p"], by_path(graph)["out"]
    assert (p.parts, p.shape, o.shape) == (parts, parts[0], out)
    assert o.inputs == ["p"] * len(o.in_shapes)  # the producer is the node, the shape its part
    assert summarize(graph).activations == c * h * w + math.prod(out)  # the parts, the output


def test_an_absent_chunk_stands_for_its_input_in_each_part(compile_yaml):
    graph = compile_yaml(
        spec_with(
            "  - {name: p, op: chunk, chunks: 2, when: false}\n"
            "  - {name: out, op: concat, inputs: '[p[0], p[1]]'}\n"
        )
    )
    out = by_path(graph)["out"]
    assert (out.inputs, out.in_shapes, out.shape) == (
        ["input", "input"],
        [(3, 8, 8)] * 2,
        (6, 8, 8),
    )


def test_summary_and_json_show_every_part(compile_yaml):
    from archspec.report import parts_text

    graph = compile_yaml(
        spec_with("  - {name: p, op: split, sizes: [1, 2]}\n  - {op: relu, inputs: 'p[1]'}\n")
    )
    rows = summarize(graph).to_json()["layers"]
    assert rows[0]["parts"] == ((1, 8, 8), (2, 8, 8))
    assert "parts" not in rows[1]
    assert parts_text(((1, 8, 8), (2, 8, 8))) == "N x 1 x 8 x 8, N x 2 x 8 x 8"
    assert parts_text(((2, 8, 8), (2, 8, 8))) == "2 x (N x 2 x 8 x 8)"


def test_graph_edges_carry_the_part_read(compile_yaml):
    from archspec.graph import build_drawing

    graph = compile_yaml(
        spec_with(
            "  - {name: p, op: split, sizes: [1, 2]}\n  - {name: r, op: relu, inputs: 'p[1]'}\n"
        )
    )
    drawing = build_drawing(graph)
    labels = {(e.src, e.dst): e.shapes for e in drawing.edges}
    assert labels[("n0", "n1")] == ["2x8x8"]
    assert drawing.items[1].lines == ["p", "split, 2 parts, sizes 1, 2"]


# -- emitted calls --------------------------------------------------------------------------

CALLS_SPEC = spec_with(
    """\
  - {name: c, op: conv2d, out: 4, kernel: 3, padding: 1}
  - {name: halves, op: chunk, chunks: 2}
  - {name: parts, op: split, sizes: [1, 1], inputs: "halves[1]"}
  - {name: cat, op: concat, inputs: "[parts[1], halves[0], parts[0]]"}
  - {name: wide, op: concat, inputs: [cat, cat], axis: -1}
  - {name: sh, op: channel_shuffle, groups: 2}
  - {name: pm, op: permute, dims: [1, 2, 0]}
  - {name: rs, op: reshape, shape: [-1, 4]}
  - {name: fs, op: flatten, start: 1}
  - {name: fl, op: flatten}
"""
)

EXPECTED_INIT = {
    "torch": [
        "self.sh = nn.ChannelShuffle(2)",
        "self.pm = Permute([1, 2, 0])",
        "self.rs = Reshape([-1, 4])",
        "self.fs = nn.Flatten(start_dim=2)",
        "self.fl = nn.Flatten()",
    ],
    "paddle": [
        "self.sh = nn.ChannelShuffle(2)",
        "self.pm = Permute([1, 2, 0])",
        "self.rs = Reshape([-1, 4])",
        "self.fs = nn.Flatten(start_axis=2)",
        "self.fl = nn.Flatten()",
    ],
    "mindspore": [
        "self.sh = nn.ChannelShuffle(2)",
        "self.pm = Permute([1, 2, 0])",
        "self.rs = Reshape([-1, 4])",
        "self.fs = nn.Flatten(start_dim=2)",
        "self.fl = nn.Flatten()",
    ],
}
EXPECTED_FORWARD = {
    "torch": [
        "halves_0, halves_1 = out.chunk(2, dim=1)",
        "parts_0, parts_1 = halves_1.split([1, 1], dim=1)",
        "cat = torch.cat([parts_1, halves_0, parts_0], dim=1)",
        "out = torch.cat([cat, cat], dim=-1)",
    ],
    "paddle": [
        "halves_0, halves_1 = paddle.chunk(out, 2, axis=1)",
        "parts_0, parts_1 = paddle.split(halves_1, [1, 1], axis=1)",
        "cat = paddle.concat([parts_1, halves_0, parts_0], axis=1)",
        "out = paddle.concat([cat, cat], axis=-1)",
    ],
    "mindspore": [
        "halves_0, halves_1 = ops.chunk(out, 2, 1)",
        "parts_0, parts_1 = ops.split(halves_1, [1, 1], 1)",
        "cat = ops.cat([parts_1, halves_0, parts_0], 1)",
        "out = ops.cat([cat, cat], -1)",
    ],
}


@pytest.mark.parametrize("backend", BACKENDS)
def test_each_backend_writes_its_framework_calls(write_spec, backend):
    text = render_spec(write_spec(CALLS_SPEC), backend)
    lines = [line.strip() for line in text.splitlines()]
    layers = ("self.sh ", "self.pm ", "self.rs ", "self.fs ", "self.fl ")
    init = [ln for ln in lines if ln.startswith(layers)]
    assert init == EXPECTED_INIT[backend]
    start = lines.index("out = self.c(x)") + 1
    assert lines[start : start + 4] == EXPECTED_FORWARD[backend]
    # the small layers the framework lacks are copied into the module, which stands alone
    assert "class Permute(" in text and "class Reshape(" in text


def test_a_parametrised_axis_is_stored_and_shifted(write_spec):
    path = write_spec(
        spec_with(
            "  - {name: h, op: chunk, chunks: 2, axis: ax}\n"
            "  - {name: cat, op: concat, inputs: '[h[1], h[0]]', axis: ax}\n",
            c=4,
            extra="params: {ax: 0}\n",
        )
    )
    text = render_spec(path, "torch")
    assert "self.h_axis = ax" in text and "self.cat_axis = ax" in text
    assert "h_0, h_1 = x.chunk(2, dim=self.h_axis + 1 if self.h_axis >= 0 else self.h_axis)" in text


# -- each framework computes PyTorch's definition -------------------------------------------


def channel_shuffle(x: np.ndarray, groups: int) -> np.ndarray:
    """torchvision's shufflenetv2.channel_shuffle, in NumPy: view (g, C/g), transpose."""
    n, c, h, w = x.shape
    return x.reshape(n, groups, c // groups, h, w).transpose(0, 2, 1, 3, 4).reshape(n, c, h, w)


# (node lines, input C x H x W, definition on the batch)
FORMULAS = {
    "permute": (
        "  - {op: permute, dims: [1, 2, 0]}\n",
        (3, 4, 5),
        lambda x: x.transpose(0, 2, 3, 1),
    ),
    "permute_rank3_again": (
        "  - {op: permute, dims: [2, 0, 1]}\n  - {op: permute, dims: [0, 2, 1]}\n",
        (3, 4, 5),
        lambda x: x.transpose(0, 3, 2, 1),
    ),
    "reshape": (
        "  - {op: reshape, shape: [4, -1, 2]}\n",
        (4, 3, 2),
        lambda x: x.reshape(2, 4, 3, 2),
    ),
    "flatten_spatial": ("  - {op: flatten, start: 1}\n", (3, 4, 5), lambda x: x.reshape(2, 3, 20)),
    "flatten_first_two": ("  - {op: flatten, end: 1}\n", (3, 4, 5), lambda x: x.reshape(2, 12, 5)),
    "chunk_swap": (
        "  - {name: p, op: chunk, chunks: 2}\n  - {op: concat, inputs: '[p[1], p[0]]'}\n",
        (4, 3, 5),
        lambda x: np.concatenate([x[:, 2:], x[:, :2]], axis=1),
    ),
    "chunk_width_concat_height": (
        "  - {name: p, op: chunk, chunks: 3, axis: 2}\n"
        "  - {op: concat, inputs: '[p[2], p[0]]', axis: 1}\n",
        (2, 3, 6),
        lambda x: np.concatenate([x[..., 4:], x[..., :2]], axis=2),
    ),
    "split_sizes": (
        "  - {name: p, op: split, sizes: [1, 3]}\n  - {op: concat, inputs: '[p[1], p[0], p[1]]'}\n",
        (4, 3, 2),
        lambda x: np.concatenate([x[:, 1:], x[:, :1], x[:, 1:]], axis=1),
    ),
    "split_last": (
        "  - {name: p, op: split, sizes: [2, 3], axis: -1}\n"
        "  - {op: multiply, inputs: '[p[1], p[1]]'}\n",
        (2, 3, 5),
        lambda x: x[..., 2:] ** 2,
    ),
    "absent_chunk": (
        "  - {name: p, op: chunk, chunks: 2, when: false}\n"
        "  - {op: concat, inputs: '[p[0], p[1]]'}\n",
        (2, 3, 3),
        lambda x: np.concatenate([x, x], axis=1),
    ),
    "channel_shuffle_2": (
        "  - {op: channel_shuffle, groups: 2}\n",
        (6, 3, 3),
        lambda x: channel_shuffle(x, 2),
    ),
    "channel_shuffle_3": (
        "  - {op: channel_shuffle, groups: 3}\n",
        (12, 2, 3),
        lambda x: channel_shuffle(x, 3),
    ),
}
ATOL = 1e-6  # these ops move values; only the sum of `multiply` rounds


def _inputs(shape: tuple[int, ...]) -> np.ndarray:
    """Two samples of distinct values, in a fixed shuffled order (so a wrong move shows)."""
    size = 2 * math.prod(shape)
    values = np.linspace(-4.0, 4.0, size)
    return np.random.default_rng(0).permutation(values).reshape(2, *shape).astype(np.float32)


def test_numpy_channel_shuffle_is_torchvisions():
    torch = pytest.importorskip("torch")
    from test_mobilenet import import_torchvision

    shuffle = import_torchvision().models.shufflenetv2.channel_shuffle
    for c, groups in ((6, 2), (12, 3), (8, 4)):
        x = _inputs((c, 3, 2))
        expected = shuffle(torch.from_numpy(x), groups).numpy()
        assert np.array_equal(channel_shuffle(x, groups), expected)
        assert not np.array_equal(expected, x)  # it moves channels


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", FORMULAS.values(), ids=FORMULAS.keys())
def test_each_framework_computes_the_definition(write_spec, backend, case):
    nodes, (c, h, w), formula = case
    path = write_spec(spec_with(nodes, c, h, w), "single.yaml")
    graph = compile_spec(path)
    workers = check_workers()
    b = available()[backend]
    x = _inputs((c, h, w))
    expected = formula(x.astype(np.float64))
    assert tuple(expected.shape[1:]) == graph.output.shape
    data = workers.path("tensor-data.npz")
    np.savez(data, x=x, probe=np.ones(expected.shape, np.float32))
    build(graph, path, b, workers, {})
    got = run(graph, b, workers, None, data)["eval"]
    assert got.shape == expected.shape
    assert float(np.max(np.abs(got - expected))) <= ATOL


# -- archspec check: the three frameworks agree, forward and backward -------------------------

HEAD_NET = "  - {name: c, op: conv2d, out: 4, kernel: 3, padding: 1}\n"
TAIL_NET = "  - {op: global_avg_pool}\n  - {op: flatten}\n  - {op: linear, out: 5}\n"

CHECKED = {
    "chunk_shuffle": HEAD_NET
    + "  - {name: p, op: chunk, chunks: 2}\n"
    + "  - {name: b, op: conv2d, out: 2, kernel: 1, inputs: 'p[1]'}\n"
    + "  - {op: concat, inputs: '[p[0], b]'}\n"
    + "  - {op: channel_shuffle, groups: 2}\n"
    + TAIL_NET,
    "split_permute_linear": HEAD_NET
    + "  - {name: p, op: split, sizes: [3, 1]}\n"
    + "  - {op: relu, inputs: 'p[0]'}\n"
    + "  - {op: flatten, start: 1}\n"  # 3 x 64
    + "  - {op: permute, dims: [1, 0]}\n"  # 64 x 3
    + "  - {op: reshape, shape: [-1]}\n"
    + "  - {op: linear, out: 5}\n",
    # a part's channels are kept while a loop changes the running channel count
    "parts_across_a_loop": HEAD_NET
    + "  - {name: h, op: chunk, chunks: 2}\n"
    + "  - {name: more, op: conv2d, out: 6, kernel: 1, repeat: 2, inputs: 'h[0]'}\n"
    + "  - {name: b, op: conv2d, out: 3, kernel: 1, inputs: 'h[1]'}\n"
    + "  - {op: concat, inputs: '[more, b]'}\n"
    + TAIL_NET,
}


@pytest.mark.parametrize("nodes", CHECKED.values(), ids=CHECKED.keys())
def test_check_agrees_in_every_framework(write_spec, nodes):
    path = write_spec(spec_with(nodes), "net.yaml")
    report = check_spec(path, list(available().values()), check_workers(), {}, None, 2)
    assert [b.error for b in report.backends] == [None, None, None]
    assert report.ok, report.to_json()
    assert report.expected["output"] == [2, 5]


def test_existing_defaults_emit_as_before(write_spec):
    """Flatten and concat without the new attributes: the calls every spec had before."""
    path = write_spec(
        spec_with(
            "  - {name: a, op: relu}\n  - {name: cat, op: concat, inputs: [x, a]}\n"
            "  - {op: global_avg_pool}\n  - {op: flatten}\n"
        )
    )
    assert "self.flatten = nn.Flatten()" in render_spec(path, "torch")
    assert "out = torch.cat([x, a], dim=1)" in render_spec(path, "torch")
    assert "out = paddle.concat([x, a], axis=1)" in render_spec(path, "paddle")
    assert "out = ops.cat([x, a], 1)" in render_spec(path, "mindspore")
