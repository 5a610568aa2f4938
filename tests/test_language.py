"""One focused test per feature of the spec language (docs/spec-language.md).

Every spec is inline and tiny; every assertion is an exact figure worked out by hand.
"""

from __future__ import annotations

import json

import pytest
from conftest import HEAD, by_path, clean, run_cli

from archspec.analysis import summarize
from archspec.compiler import compile_spec
from archspec.errors import SpecError

# -- parameters ----------------------------------------------------------------------------

PARAMS_SPEC = (
    HEAD
    + """\
params:
  width: {type: int, default: 4, doc: Output channels.}
  scale: 2
  ratio: 0.5
  use_bias: false
  act: {type: str, default: relu, choices: [relu, sigmoid]}
  sizes: [1, 2]
  mult: {type: float, default: 1}
  planes: int
checks:
  - {expr: width % 2 == 0, message: width must be even}
nodes:
  - {name: conv, op: conv2d, out: width * scale, kernel: 1, bias: use_bias}
  - {name: a, op: activation, fn: act}
"""
)


def test_params_types_defaults_and_shorthand(compile_yaml):
    graph = compile_yaml(PARAMS_SPEC, {"planes": 7})
    assert graph.params == {
        "width": 4,
        "scale": 2,
        "ratio": 0.5,
        "use_bias": False,
        "act": "relu",
        "sizes": [1, 2],
        "mult": 1.0,
        "planes": 7,
    }
    assert type(graph.params["mult"]) is float  # an int default is accepted for a float
    conv = by_path(graph)["conv"]
    assert (conv.shape, conv.params) == ((8, 8, 8), {"weight": (8, 3, 1, 1)})
    assert by_path(graph)["a"].op == "relu"


def test_required_param_without_value_is_reported(compile_error):
    assert compile_error(PARAMS_SPEC) == "spec.yaml:11:11: error: missing argument `planes`"


def test_overrides_replace_defaults(compile_yaml):
    overrides = {"planes": 1, "width": 6, "mult": 2, "act": "sigmoid", "use_bias": True}
    graph = compile_yaml(PARAMS_SPEC, overrides)
    assert graph.params["mult"] == 2.0 and type(graph.params["mult"]) is float
    conv = by_path(graph)["conv"]
    assert (conv.shape, conv.params) == ((12, 8, 8), {"weight": (12, 3, 1, 1), "bias": (12,)})
    assert by_path(graph)["a"].op == "sigmoid"


def test_overrides_are_type_checked(compile_error):
    overrides = {
        "planes": 1,
        "width": "six",
        "use_bias": 1,
        "ratio": True,
        "act": "gelu",
        "sizes": 3,
        "widht": 8,
    }
    assert compile_error(PARAMS_SPEC, overrides).splitlines() == [
        "--set: error: `widht` is not a parameter of Net (did you mean `width`?)",
        "--set: error: argument `act` must be one of ['relu', 'sigmoid'], got 'gelu'",
        "--set: error: argument `ratio`: expected float, got True",
        "--set: error: argument `sizes`: expected list, got 3",
        "--set: error: argument `use_bias`: expected bool, got 1",
        "--set: error: argument `width`: expected int, got 'six'",
    ]


def test_override_failing_a_check_is_reported_at_the_check(compile_error):
    assert compile_error(PARAMS_SPEC, {"planes": 1, "width": 5}) == (
        "spec.yaml:13:5: error: check failed: width must be even"
    )


# -- let, checks, functions ------------------------------------------------------------------


def test_let_values_are_evaluated_in_order(compile_yaml):
    graph = compile_yaml(
        HEAD
        + clean(
            """
            params: {base: 2}
            let:
              a: base * 3
              b: a + 1
              c: "[a, b]"
            nodes:
              - {op: conv2d, out: b, kernel: 1}
            """
        )
    )
    assert {k: graph.root.args[k] for k in "abc"} == {"a": 6, "b": 7, "c": [6, 7]}
    assert graph.nodes[0].shape == (7, 8, 8)


def test_let_cannot_see_a_later_let(compile_error):
    spec = HEAD + "let:\n  b: a + 1\n  a: 1\nnodes:\n  - {op: relu}\n"
    assert compile_error(spec) == "spec.yaml:4:6: error: undefined name `a`"


def test_checks_pass_and_fail_with_their_message(compile_yaml, compile_error):
    spec = HEAD + clean(
        """
        blocks:
          Even:
            params: {n: int}
            checks:
              - {expr: n % 2 == 0, message: n must be even}
            nodes:
              - {op: conv2d, out: n, kernel: 1}
        nodes:
          - {name: ok, block: Even, args: {n: 4}}
          - {name: bad, block: Even, args: {n: 5}}
        """
    )
    assert compile_error(spec) == "spec.yaml:12:5: error: check failed: n must be even"
    graph = compile_yaml(spec.replace("n: 5", "n: 6"), name="fixed.yaml")
    assert [n.shape for n in graph.nodes] == [(4, 8, 8), (6, 8, 8)]


def test_functions_are_usable_everywhere_and_may_call_each_other(compile_yaml):
    graph = compile_yaml(
        HEAD
        + clean(
            """
            params: {multiplier: 0.75}
            functions:
              make_divisible: {args: [v], expr: "ceil(v / 8) * 8"}
              scaled: {args: [c, m], expr: make_divisible(c * m)}
            let:
              w: scaled(20, multiplier)
            nodes:
              - {op: conv2d, out: w, kernel: 1}
              - {op: conv2d, out: "make_divisible(17)", kernel: 1}
            """
        )
    )
    assert graph.root.args["w"] == 16  # ceil(15 / 8) * 8
    assert [n.shape[0] for n in graph.nodes] == [16, 24]


# -- expressions ---------------------------------------------------------------------------

EXPRESSIONS = [
    ("1 + 2 * 3", 7),
    ("(1 + 2) * 3", 9),
    ("7 // 2", 3),
    ("-7 // 2", -4),
    ("7 / 2", 3.5),
    ("8 / 2", 4.0),
    ("7 % 3", 1),
    ("2 ** 10", 1024),
    ("-(3 - 5)", 2),
    ("3 > 2", True),
    ("2 <= 2 < 3", True),
    ("1 != 1", False),
    ("1 == 1.0", True),
    ("'relu' in ['relu', 'sigmoid']", True),
    ("3 not in [1, 2]", True),
    ("true and not false", True),
    ("0 or 5", 5),
    ("1 and 0", 0),
    ("'a' if 2 > 3 else 'b'", "b"),
    ("1 if true else 2", 1),
    ("min(3, 1, 2)", 1),
    ("max([4, 9, 2])", 9),
    ("ceil(7 / 2)", 4),
    ("floor(7 / 2)", 3),
    ("floor(-0.5)", -1),
    ("abs(-3)", 3),
    ("round(2.6)", 3),
    ("int(3.9)", 3),
    ("float(2)", 2.0),
    ("len([1, 2, 3])", 3),
    ("sum([1, 2, 3])", 6),
    ("[1, 2] + [3]", [1, 2, 3]),
    ("[0] * 3", [0, 0, 0]),
    ("2 * [1, 2]", [1, 2, 1, 2]),
    ("[7] * 0", []),
    ("[10, 20, 30][1]", 20),
    ("[10, 20, 30][-1]", 30),
    ("[[1, 2], [3]][0][1]", 2),
    ("([1] + [2] * 2)[2]", 2),
]


@pytest.mark.parametrize(("source", "expected"), EXPRESSIONS)
def test_expression_values(compile_yaml, source, expected):
    spec = HEAD + f"let:\n  v: {json.dumps(source)}\nnodes:\n  - {{op: relu}}\n"
    value = compile_yaml(spec).root.args["v"]
    assert value == expected
    assert type(value) is type(expected)


# -- inputs --------------------------------------------------------------------------------


def test_inputs_default_to_previous_node_and_can_be_named(compile_yaml):
    graph = compile_yaml(
        HEAD
        + clean(
            """
            nodes:
              - {name: a, op: conv2d, out: 4, kernel: 1}
              - {name: b, op: conv2d, out: 4, kernel: 3, padding: 1}
              - {name: sum, op: add, inputs: [a, b]}
              - {name: cat, op: concat, inputs: [x, sum]}
              - {name: single, op: relu, inputs: a}
            """
        )
    )
    nodes = by_path(graph)
    assert {p: n.inputs for p, n in nodes.items()} == {
        "a": ["input"],
        "b": ["a"],
        "sum": ["a", "b"],
        "cat": ["input", "sum"],
        "single": ["a"],
    }
    assert nodes["cat"].shape == (7, 8, 8)
    assert graph.output.producer == "single"


@pytest.mark.parametrize(
    ("r", "channels", "inputs"),
    [
        (2, 3 * 2 + 5 + 3 * 2, ["input", "input", "e", "input", "input"]),
        (1, 3 + 5 + 3, ["input", "e", "input"]),
        (0, 5, ["e"]),
    ],
)
def test_inputs_as_an_expression_feed_concat(compile_yaml, r, channels, inputs):
    spec = HEAD + clean(
        """
        params: {r: 1}
        nodes:
          - {name: e, op: conv2d, out: 5, kernel: 1}
          - {name: cat, op: concat, inputs: "[x] * r + [e] + [x] * r"}
        """
    )
    cat = by_path(compile_yaml(spec, {"r": r}))["cat"]
    assert (cat.shape, cat.inputs) == ((channels, 8, 8), inputs)


# -- when, repeat, for_each, seq --------------------------------------------------------------

WHEN_SPEC = (
    HEAD
    + """\
params: {proj: false}
nodes:
  - {name: body, op: conv2d, out: 3, kernel: 3, padding: 1}
  - {name: shortcut, op: conv2d, out: 3, kernel: 1, inputs: x, when: proj}
  - {name: add, op: add, inputs: [body, shortcut]}
"""
)


def test_when_false_node_stands_for_its_first_input(compile_yaml):
    graph = compile_yaml(WHEN_SPEC)
    assert [n.path for n in graph.nodes] == ["body", "add"]
    assert by_path(graph)["add"].inputs == ["body", "input"]


def test_when_true_node_is_present(compile_yaml):
    graph = compile_yaml(WHEN_SPEC, {"proj": True})
    assert [n.path for n in graph.nodes] == ["body", "shortcut", "add"]
    assert by_path(graph)["add"].inputs == ["body", "shortcut"]
    assert summarize(graph).trainable == (3 * 3 * 9 + 3) + (3 * 3 + 3)


REPEAT_SPEC = (
    HEAD
    + """\
blocks:
  Stage:
    params: {out: int, stride: 1}
    nodes:
      - {name: conv, op: conv2d, out: out, kernel: 3, stride: stride, padding: 1}
      - {name: relu, op: relu}
nodes:
  - name: layer
    repeat: 3
    block: Stage
    args: {out: "4 * (i + 1)", stride: "2 if i == 0 else 1"}
  - {name: r, op: relu, repeat: 2}
"""
)


def test_repeat_binds_i_and_indexes_module_paths(compile_yaml):
    graph = compile_yaml(REPEAT_SPEC)
    assert [(n.path, n.shape) for n in graph.nodes] == [
        ("layer.0.conv", (4, 4, 4)),
        ("layer.0.relu", (4, 4, 4)),
        ("layer.1.conv", (8, 4, 4)),
        ("layer.1.relu", (8, 4, 4)),
        ("layer.2.conv", (12, 4, 4)),
        ("layer.2.relu", (12, 4, 4)),
        ("r.0", (12, 4, 4)),
        ("r.1", (12, 4, 4)),
    ]
    s = summarize(graph)
    # weights + biases: 4*3*9+4, 8*4*9+8, 12*8*9+12
    assert s.trainable == 112 + 296 + 876
    # out * H' * W' * in * 9 per conv
    assert s.macs == 4 * 16 * 3 * 9 + 8 * 16 * 4 * 9 + 12 * 16 * 8 * 9
    layer = graph.root.children[0]
    assert (layer.kind, layer.path) == ("repeat", "layer")
    assert [(m.kind, m.path, m.name, m.args) for m in layer.children] == [
        ("block", "layer.0", "Stage", {"out": 4, "stride": 2}),
        ("block", "layer.1", "Stage", {"out": 8, "stride": 1}),
        ("block", "layer.2", "Stage", {"out": 12, "stride": 1}),
    ]


def test_repeat_zero_times_passes_the_input_through(compile_yaml):
    graph = compile_yaml(HEAD + "nodes:\n  - {op: conv2d, out: 4, kernel: 1, repeat: 0}\n")
    assert graph.nodes == []
    assert graph.output.shape == (3, 8, 8)


def test_for_each_binds_table_columns_and_i(compile_yaml):
    graph = compile_yaml(
        HEAD
        + clean(
            """
            tables:
              cfg:
                columns: [out, k, act]
                rows:
                  - [4, 3, relu]
                  - [6, 1, sigmoid]
            nodes:
              - name: stage
                for_each: cfg
                seq:
                  - {op: conv2d, out: out + i, kernel: k, padding: k // 2}
                  - {op: activation, fn: act}
            """
        )
    )
    assert [(n.path, n.op, n.shape) for n in graph.nodes] == [
        ("stage.0.0", "conv2d", (4, 8, 8)),
        ("stage.0.1", "relu", (4, 8, 8)),
        ("stage.1.0", "conv2d", (7, 8, 8)),
        ("stage.1.1", "sigmoid", (7, 8, 8)),
    ]
    assert by_path(graph)["stage.1.0"].params == {"weight": (7, 4, 1, 1), "bias": (7,)}


def test_seq_children_chain_and_are_indexed(compile_yaml):
    graph = compile_yaml(
        HEAD
        + clean(
            """
            nodes:
              - name: down
                seq:
                  - {op: conv2d, out: 8, kernel: 1, stride: 2, bias: false}
                  - {op: batchnorm2d}
              - {op: relu}
            """
        )
    )
    assert [(n.path, n.inputs, n.shape) for n in graph.nodes] == [
        ("down.0", ["input"], (8, 4, 4)),
        ("down.1", ["down.0"], (8, 4, 4)),
        ("relu", ["down.1"], (8, 4, 4)),
    ]
    down = graph.root.children[0]
    assert (down.kind, [c.path for c in down.children]) == ("seq", ["down.0", "down.1"])


# -- blocks --------------------------------------------------------------------------------

BLOCKS_SPEC = (
    HEAD
    + """\
let: {unit: Wide}
blocks:
  ConvBN:
    params: {out: int}
    nodes:
      - {name: conv, op: conv2d, out: out, kernel: 1, bias: false}
      - {name: bn, op: batchnorm2d}
  Wide:
    params: {factor: 2}
    let: {width: in_channels * factor}
    nodes:
      - {name: inner, block: ConvBN, args: {out: width}}
      - {name: pool, op: avg_pool2d, kernel: 4}
      - {name: side, op: relu, inputs: inner}
    output: pool
nodes:
  - {name: w, block: unit, args: {factor: 3}}
  - {name: after, op: flatten}
"""
)


def test_blocks_nest_see_their_input_channels_and_are_chosen_by_a_let(compile_yaml):
    graph = compile_yaml(BLOCKS_SPEC)
    assert [(n.path, n.shape) for n in graph.nodes] == [
        ("w.inner.conv", (9, 8, 8)),
        ("w.inner.bn", (9, 8, 8)),
        ("w.pool", (9, 2, 2)),
        ("w.side", (9, 8, 8)),
        ("after", (36,)),  # the block's `output: pool`, not its last node
    ]
    assert by_path(graph)["w.inner.conv"].params == {"weight": (9, 3, 1, 1)}
    wide = graph.root.children[0]
    assert (wide.kind, wide.path, wide.name, wide.args) == ("block", "w", "Wide", {"factor": 3})
    inner = wide.children[0]
    assert (inner.kind, inner.path, inner.name, inner.args) == (
        "block",
        "w.inner",
        "ConvBN",
        {"out": 9},
    )


def test_network_output_names_a_node(compile_yaml):
    spec = HEAD + clean(
        """
        nodes:
          - {name: a, op: conv2d, out: 4, kernel: 1}
          - {name: b, op: global_avg_pool}
        output: a
        """
    )
    graph = compile_yaml(spec)
    assert (graph.output.producer, summarize(graph).output_shape) == ("a", (4, 8, 8))


# -- extends -------------------------------------------------------------------------------

BASE = (
    HEAD
    + """\
params: {n: 4}
let:
  sizes: [4, 8]
  k: 1
defaults:
  conv2d: {bias: false, stride: 1}
nodes:
  - {name: c, op: conv2d, out: "sizes[0]", kernel: k}
  - {name: d, op: conv2d, out: "sizes[1]", kernel: k}
"""
)


def test_extends_deep_merges_mappings_and_replaces_lists(write_spec):
    write_spec(BASE, "base.yaml")
    path = write_spec(
        """
        extends: base.yaml
        name: Child
        let:
          sizes: [2, 6]
        defaults:
          conv2d: {stride: 2}
        """,
        "child.yaml",
    )
    graph = compile_spec(path)
    assert graph.name == "Child"
    assert graph.params == {"n": 4}
    # `sizes` replaced, `k` kept; conv2d defaults merged: bias false kept, stride 2 added
    assert [(n.path, n.shape, n.params) for n in graph.nodes] == [
        ("c", (2, 4, 4), {"weight": (2, 3, 1, 1)}),
        ("d", (6, 2, 2), {"weight": (6, 2, 1, 1)}),
    ]


def test_extends_chain_of_two_with_node_list_replaced(write_spec):
    write_spec(BASE, "base.yaml")
    write_spec("extends: base.yaml\nname: Mid\nlet:\n  sizes: [2]\n", "mid.yaml")
    top = write_spec(
        """
        extends: mid.yaml
        name: Top
        let:
          k: 3
        nodes:
          - {name: only, op: conv2d, out: "sizes[0] + n", kernel: k}
        """,
        "top.yaml",
    )
    graph = compile_spec(top)
    assert graph.name == "Top"
    # sizes from mid.yaml, n and the bias-free default from base.yaml, k from top.yaml
    assert [(n.path, n.shape, n.params) for n in graph.nodes] == [
        ("only", (6, 6, 6), {"weight": (6, 3, 3, 3)})
    ]


def test_extends_cycle_is_an_error(write_spec):
    write_spec("extends: b.yaml\nname: A\n", "a.yaml")
    write_spec("extends: a.yaml\nname: B\n", "b.yaml")
    with pytest.raises(SpecError) as info:
        compile_spec(write_spec("extends: a.yaml\nname: C\n", "c.yaml"))
    assert str(info.value) == "b.yaml:1:10: error: `extends` cycle through a.yaml"


# -- defaults and init -----------------------------------------------------------------------


def test_defaults_apply_per_op_and_node_attributes_win(compile_yaml):
    graph = compile_yaml(
        HEAD
        + clean(
            """
            defaults:
              conv2d: {bias: false, kernel: 3, padding: 1}
              max_pool2d: {kernel: 2}
            nodes:
              - {name: a, op: conv2d, out: 4}
              - {name: b, op: conv2d, out: 4, bias: true, kernel: 1, padding: 0}
              - {name: p, op: max_pool2d}
            """
        )
    )
    nodes = by_path(graph)
    assert (nodes["a"].shape, nodes["a"].params) == ((4, 8, 8), {"weight": (4, 3, 3, 3)})
    assert (nodes["b"].shape, nodes["b"].params) == (
        (4, 8, 8),
        {"weight": (4, 4, 1, 1), "bias": (4,)},
    )
    assert nodes["p"].shape == (4, 4, 4)


def test_init_spec_level_and_node_level(compile_yaml):
    graph = compile_yaml(
        HEAD
        + clean(
            """
            params: {zero: true, scale: 0.5}
            init:
              conv2d:
                weight: {kaiming_normal: {mode: fan_out, nonlinearity: relu}}
              batchnorm2d: {weight: ones, bias: zeros}
              linear:
                weight: {normal: {mean: 0, std: 1 / 100}}
            nodes:
              - {name: conv, op: conv2d, out: 4, kernel: 1}
              - name: bn
                op: batchnorm2d
                init: {weight: {constant: "0.0 if zero else 1.0"}}
              - {op: flatten}
              - name: fc
                op: linear
                out: 2
                init: {bias: {uniform: {low: -scale, high: scale * 2}}}
            """
        )
    )
    nodes = by_path(graph)
    assert nodes["conv"].init == {
        "weight": ("kaiming_normal", {"mode": "fan_out", "nonlinearity": "relu", "a": 0.0}),
        "bias": ("default", {}),
    }
    assert nodes["bn"].init == {
        "weight": ("constant", {"value": 0.0}),
        "bias": ("zeros", {}),
    }
    assert nodes["fc"].init == {
        "weight": ("normal", {"mean": 0, "std": 0.01}),
        "bias": ("uniform", {"low": -0.5, "high": 1.0}),
    }


# -- primitive ops ---------------------------------------------------------------------------

# (input C, H, W), node attributes, (shape, trainable, bn_stats, macs); MACs are per sample
OPS = {
    "conv2d": ((3, 8, 8), "op: conv2d, out: 4, kernel: 3", ((4, 6, 6), 112, 0, 4 * 36 * 27)),
    "conv2d_stride_padding": (
        (3, 8, 8),
        "op: conv2d, out: 4, kernel: 3, stride: 2, padding: 1",
        ((4, 4, 4), 112, 0, 4 * 16 * 27),
    ),
    "conv2d_dilation": (
        (3, 8, 8),
        "op: conv2d, out: 4, kernel: 3, dilation: 2, padding: 1, bias: false",
        ((4, 6, 6), 108, 0, 4 * 36 * 27),
    ),
    "conv2d_groups": (
        (4, 8, 8),
        "op: conv2d, out: 8, kernel: 3, padding: 1, groups: 2, bias: false",
        ((8, 8, 8), 8 * 2 * 9, 0, 8 * 64 * 2 * 9),
    ),
    "conv2d_depthwise": (
        (4, 8, 8),
        "op: conv2d, out: 4, kernel: 3, padding: 1, groups: 4",
        ((4, 8, 8), 36 + 4, 0, 4 * 64 * 9),
    ),
    "conv2d_pairs": (
        (3, 8, 8),
        "op: conv2d, out: 4, kernel: [1, 3], stride: [2, 1], padding: [0, 1]",
        ((4, 4, 8), 4 * 3 * 3 + 4, 0, 4 * 32 * 3 * 3),
    ),
    "batchnorm2d": ((3, 8, 8), "op: batchnorm2d, eps: 0.001, momentum: 0.01", ((3, 8, 8), 6, 6, 0)),
    "linear_on_last_dim": ((3, 8, 8), "op: linear, out: 5", ((3, 8, 5), 5 * 8 + 5, 0, 120 * 8)),
    "linear_no_bias": ((3, 1, 4), "op: linear, out: 2, bias: false", ((3, 1, 2), 8, 0, 6 * 4)),
    "max_pool2d": ((3, 8, 8), "op: max_pool2d, kernel: 2", ((3, 4, 4), 0, 0, 0)),
    "max_pool2d_stride": ((3, 8, 8), "op: max_pool2d, kernel: 3, stride: 2", ((3, 3, 3), 0, 0, 0)),
    "max_pool2d_padding": (
        (3, 8, 8),
        "op: max_pool2d, kernel: 3, stride: 2, padding: 1",
        ((3, 4, 4), 0, 0, 0),
    ),
    "max_pool2d_dilation": (
        (3, 8, 8),
        "op: max_pool2d, kernel: 2, stride: 1, dilation: 2",
        ((3, 6, 6), 0, 0, 0),
    ),
    # ceil mode by hand: H=8, k=3, s=2: ceil((8 - 3) / 2) + 1 = 4 windows, starting at
    # 0, 2, 4, 6, all inside the input (floor mode gives 3)
    "max_pool2d_ceil": (
        (3, 8, 8),
        "op: max_pool2d, kernel: 3, stride: 2, ceil_mode: true",
        ((3, 4, 4), 0, 0, 0),
    ),
    # H=5, k=2, s=2, p=1: ceil((5 + 2 - 2) / 2) + 1 = 4, but the 4th window would start at
    # padded index 6 = input index 5, in the right padding: PyTorch drops it -> 3.
    # W=6: ceil((6 + 2 - 2) / 2) + 1 = 4; the 4th starts at input index 5 (< 6): kept -> 4.
    "max_pool2d_ceil_drops_window_in_padding": (
        (3, 5, 6),
        "op: max_pool2d, kernel: 2, stride: 2, padding: 1, ceil_mode: true",
        ((3, 3, 4), 0, 0, 0),
    ),
    # H=6, k=3, s=2, p=1: floor mode 3, ceil mode ceil(5 / 2) + 1 = 4 (last start 6 < 6 + 1)
    "avg_pool2d_ceil": (
        (3, 6, 6),
        "op: avg_pool2d, kernel: 3, stride: 2, padding: 1, ceil_mode: true",
        ((3, 4, 4), 0, 0, 0),
    ),
    "avg_pool2d_floor": (
        (3, 6, 6),
        "op: avg_pool2d, kernel: 3, stride: 2, padding: 1, count_include_pad: false",
        ((3, 3, 3), 0, 0, 0),
    ),
    "global_avg_pool": ((3, 8, 8), "op: global_avg_pool", ((3, 1, 1), 0, 0, 0)),
    "adaptive_avg_pool2d": ((3, 8, 8), "op: adaptive_avg_pool2d, output: 2", ((3, 2, 2), 0, 0, 0)),
    "adaptive_avg_pool2d_pair": (
        (3, 8, 8),
        "op: adaptive_avg_pool2d, output: [1, 4]",
        ((3, 1, 4), 0, 0, 0),
    ),
    "flatten": ((3, 8, 8), "op: flatten", ((192,), 0, 0, 0)),
    "dropout": ((3, 8, 8), "op: dropout, p: 0.2", ((3, 8, 8), 0, 0, 0)),
    **{
        name: ((3, 8, 8), f"op: {name}", ((3, 8, 8), 0, 0, 0))
        for name in ("relu", "relu6", "hardswish", "hardsigmoid", "sigmoid", "identity")
    },
}


@pytest.mark.parametrize("case", OPS.values(), ids=OPS.keys())
def test_primitive_op_shape_params_and_macs(compile_yaml, case):
    (c, h, w), attrs, expected = case
    spec = (
        f"name: Net\ninput: {{channels: {c}, height: {h}, width: {w}}}\n"
        f"nodes:\n  - {{name: n, {attrs}}}\n"
    )
    graph = compile_yaml(spec)
    s = summarize(graph)
    assert (s.output_shape, s.trainable, s.bn_stats, s.macs) == expected
    assert [(layer.path, layer.shape) for layer in s.layers] == [("n", expected[0])]


@pytest.mark.parametrize("op", ["max_pool2d", "avg_pool2d"])
def test_ceil_mode_window_wider_than_input(compile_yaml, op):
    # PyTorch (Pool.h): div_rtn(2 + 0 - 2 - 1 + (2 - 1), 2) + 1 = 1; the window starts at 0,
    # inside the input, so it is kept: nn.MaxPool2d(3, 2, ceil_mode=True) on 2x2 -> 1x1
    spec = (
        "name: Net\ninput: {channels: 3, height: 2, width: 2}\n"
        f"nodes:\n  - {{op: {op}, kernel: 3, stride: 2, ceil_mode: true}}\n"
    )
    assert compile_yaml(spec).output.shape == (3, 1, 1)


def test_op_attributes_are_bound_with_defaults(compile_yaml):
    spec = HEAD + clean(
        """
        nodes:
          - {name: c, op: conv2d, out: 4, kernel: 3}
          - {name: p, op: max_pool2d, kernel: 2}
          - {name: a, op: avg_pool2d, kernel: 2, stride: 1}
          - {name: bn, op: batchnorm2d}
          - {name: d, op: dropout}
        """
    )
    nodes = by_path(compile_yaml(spec))
    assert nodes["c"].attrs == {
        "out": 4,
        "kernel": (3, 3),
        "stride": (1, 1),
        "padding": ((0, 0), (0, 0)),  # ((top, bottom), (left, right))
        "dilation": (1, 1),
        "groups": 1,
        "bias": True,
    }
    assert nodes["p"].attrs == {
        "kernel": (2, 2),
        "stride": None,  # None: the kernel
        "padding": ((0, 0), (0, 0)),  # ((top, bottom), (left, right))
        "ceil_mode": False,
        "dilation": (1, 1),
    }
    assert nodes["a"].attrs["stride"] == (1, 1)
    assert nodes["a"].attrs["count_include_pad"] is True
    assert nodes["bn"].attrs == {"eps": 1e-5, "momentum": 0.1}
    assert nodes["d"].attrs == {"p": 0.5}
    assert nodes["d"].shape == (4, 2, 2)


def test_add_concat_and_multiply_broadcasting(compile_yaml):
    graph = compile_yaml(
        HEAD
        + clean(
            """
            nodes:
              - {name: a, op: conv2d, out: 3, kernel: 1}
              - {name: sum, op: add, inputs: [x, a, a]}
              - {name: cat, op: concat, inputs: [x, sum, a]}
              - {name: gate, op: global_avg_pool}
              - {name: scaled, op: multiply, inputs: [cat, gate]}
              - {name: scaled_rev, op: multiply, inputs: [gate, cat]}
              - {name: solo, op: concat, inputs: [gate]}
            """
        )
    )
    shapes = {n.path: n.shape for n in graph.nodes}
    assert shapes == {
        "a": (3, 8, 8),
        "sum": (3, 8, 8),
        "cat": (9, 8, 8),
        "gate": (9, 1, 1),
        "scaled": (9, 8, 8),
        "scaled_rev": (9, 8, 8),
        "solo": (9, 1, 1),
    }
    assert summarize(graph).macs == 3 * 64 * 3  # only the convolution counts


def test_activation_fn_is_an_expression(compile_yaml):
    spec = HEAD + clean(
        """
        params: {act: hardswish}
        nodes:
          - {name: a, op: activation, fn: act}
          - {name: b, op: activation, fn: "'relu6' if act == 'relu' else 'hardsigmoid'"}
        """
    )
    assert [(n.path, n.op, n.attrs) for n in compile_yaml(spec).nodes] == [
        ("a", "hardswish", {}),
        ("b", "hardsigmoid", {}),
    ]
    assert [n.op for n in compile_yaml(spec, {"act": "relu"}).nodes] == ["relu", "relu6"]


def test_auto_names_number_repeated_ops_and_snake_case_blocks(compile_yaml):
    spec = HEAD + clean(
        """
        blocks:
          SqueezeExcite:
            nodes:
              - {op: relu}
        nodes:
          - {op: relu}
          - {op: relu}
          - {name: relu_2, op: sigmoid}
          - {op: relu}
          - {block: SqueezeExcite}
          - {block: SqueezeExcite}
          - seq: [{op: identity}]
        """
    )
    assert [n.path for n in compile_yaml(spec).nodes] == [
        "relu",
        "relu_1",
        "relu_2",
        "relu_3",
        "squeeze_excite.relu",
        "squeeze_excite_1.relu",
        "seq.0",
    ]


# -- analysis and the CLI on a valid spec --------------------------------------------------

SMALL_NET = (
    HEAD
    + """\
params: {classes: 10}
nodes:
  - {name: conv, op: conv2d, out: 8, kernel: 3, padding: 1, bias: false}
  - {name: bn, op: batchnorm2d}
  - {name: relu, op: relu}
  - {name: pool, op: global_avg_pool}
  - {name: flat, op: flatten}
  - {name: fc, op: linear, out: classes}
"""
)


def test_summary_totals(compile_yaml):
    s = summarize(compile_yaml(SMALL_NET))
    assert s.name == "Net" and s.params == {"classes": 10}
    assert (s.input_shape, s.output_shape) == ((3, 8, 8), (10,))
    assert s.trainable == 8 * 3 * 9 + 2 * 8 + 8 * 10 + 10
    assert s.bn_stats == 16
    assert s.macs == 8 * 64 * 27 + 80
    assert [(layer.path, layer.op, layer.shape) for layer in s.layers] == [
        ("conv", "conv2d", (8, 8, 8)),
        ("bn", "batchnorm2d", (8, 8, 8)),
        ("relu", "relu", (8, 8, 8)),
        ("pool", "global_avg_pool", (8, 1, 1)),
        ("flat", "flatten", (8,)),
        ("fc", "linear", (10,)),
    ]
    assert s.activations == 512 * 3 + 8 + 8 + 10


def test_input_shape_argument_overrides_the_spec(compile_yaml):
    s = summarize(compile_yaml(SMALL_NET, input_shape=(1, 16, 12)))
    assert s.input_shape == (1, 16, 12)
    assert s.macs == 8 * 192 * 9 + 80


def test_cli_summary_json_with_set_and_input(write_spec, tmp_path):
    write_spec(SMALL_NET)
    proc = run_cli(
        "summary", "spec.yaml", "--set", "classes=4", "--input", "1x4x4", "--json", cwd=tmp_path
    )
    assert (proc.returncode, proc.stderr) == (0, "")
    data = json.loads(proc.stdout)
    assert data["params"] == {"classes": 4}
    assert (data["input_shape"], data["output_shape"]) == ([1, 4, 4], [4])
    assert (data["trainable"], data["bn_stats"], data["macs"]) == (72 + 16 + 36, 16, 1152 + 32)


def test_cli_validate_reports_ok(write_spec, tmp_path):
    write_spec(SMALL_NET)
    proc = run_cli("validate", "spec.yaml", cwd=tmp_path)
    assert (proc.returncode, proc.stderr) == (0, "")
    assert proc.stdout == "ok spec.yaml: Net, 322 trainable, 13,904 MACs\n"
