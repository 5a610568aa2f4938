"""Module paths that are not identifiers: a node's `key`.

torchvision names some children with strings that are not identifiers (RegNet's
`trunk_output.block1.block1-0`); a spec reproduces any state-dict key with `key:`. These
tests bind specs using each form (a node of a block or of the network, sequence items,
repetitions named per iteration), read the paths and the state-dict keys, the exact lines
each backend writes for them, and prove that every framework builds the same network,
loads the same checkpoint and compiles it (torch.export, paddle.jit.to_static, MindSpore
GRAPH_MODE).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import check_workers

from archspec.backend import available
from archspec.check import check_spec
from archspec.compiler import compile_spec
from archspec.emit import EmitError, module_view
from archspec.expr import Evaluator, ExprError, parse
from archspec.tensors import tensor_maps

ROOT = Path(__file__).resolve().parent.parent

# (1) nodes of a block and of the network; a key computed from a block parameter
NODES = """\
name: Net
input: {channels: 3, height: 8, width: 8}
blocks:
  Unit:
    params: {out: int, tag: str}
    nodes:
      - {name: conv, key: "'conv-a'", op: conv2d, out: out, kernel: 3, padding: 1}
      - {name: bn, key: "tag + '-bn'", op: batchnorm2d}
      - {name: act, key: "'act'", op: relu}
nodes:
  - {name: stem, key: "'stem-0'", block: Unit, args: {out: 4, tag: "'s'"}}
  - {name: fc, key: "'fc-1'", op: conv2d, out: 2, kernel: 1}
"""

# (2) sequence items, inline and built as a list (packed, with absent items)
SEQUENCES = """\
name: Net
input: {channels: 3, height: 8, width: 8}
params: {wide: true}
nodes:
  - name: body
    seq:
      - {op: conv2d, key: "'c-1'", out: 4, kernel: 1}
      - {op: batchnorm2d}
      - {op: relu, key: "'r'", when: "not wide"}
  - name: features
    packed: true
    seq:
      - {op: conv2d, key: "'stem-conv'", out: 4, kernel: 3, padding: 1}
      - {op: batchnorm2d, when: wide}
      - {op: relu, key: "'act-0'", when: "not wide"}
      - {op: relu, key: "'act-1'"}
"""

# (3) repetitions named per iteration: a repeated op in a block, a table of stages,
# a repeated sequence item
REPEATS = """\
name: Net
input: {channels: 3, height: 8, width: 8}
tables:
  stages:
    columns: [out, depth]
    rows:
      - [4, 2]
      - [6, 1]
blocks:
  Stage:
    params: {out: int, depth: int, index: int}
    nodes:
      - name: units
        key: "'block' + str(index) + '-' + str(i)"
        op: conv2d
        out: out
        kernel: 1
        repeat: depth
nodes:
  - name: trunk
    for_each: stages
    key: "'block' + str(i + 1)"
    block: Stage
    args: {out: out, depth: depth, index: i + 1}
  - name: head
    seq:
      - {op: conv2d, out: 5, kernel: 1, repeat: 2, key: "'r' + str(i)"}
      - {op: relu, key: "'last'"}
"""

# nested loops (the inner key reads the inner `i`), and a conditional repeated node
NESTED = """\
name: Net
input: {channels: 3, height: 8, width: 8}
params: {deep: true}
nodes:
  - name: stack
    repeat: 2
    seq:
      - {op: conv2d, out: 4, kernel: 1, repeat: 2, key: "'u' + str(i)"}
      - {op: relu, key: "'act-' + str(i)"}
  - {name: opt, key: "'o-' + str(i)", op: conv2d, out: 4, kernel: 1, repeat: 2, when: deep}
"""

SPECS = {"nodes": NODES, "sequences": SEQUENCES, "repeats": REPEATS, "nested": NESTED}


@pytest.fixture
def spec_path(write_spec):
    return lambda name: write_spec(SPECS[name], f"{name}.yaml")


def paths(path, overrides=None) -> list[str]:
    return [n.path for n in compile_spec(path, overrides).nodes]


def native_keys(path, backend: str) -> list[str]:
    graph = compile_spec(path)
    return [t.native for t in tensor_maps(graph, available()[backend])]


def emitted(path, backend: str) -> list[str]:
    b = available()[backend]
    return [line.strip() for line in b.render(module_view(compile_spec(path), b, [])).splitlines()]


# -- paths and state-dict keys ------------------------------------------------------------------
def test_paths_of_keyed_nodes(spec_path):
    path = spec_path("nodes")
    assert paths(path) == ["stem-0.conv-a", "stem-0.s-bn", "stem-0.act", "fc-1"]
    assert native_keys(path, "torch") == [
        "stem-0.conv-a.weight",
        "stem-0.conv-a.bias",
        "stem-0.s-bn.weight",
        "stem-0.s-bn.bias",
        "stem-0.s-bn.running_mean",
        "stem-0.s-bn.running_var",
        "fc-1.weight",
        "fc-1.bias",
    ]
    assert native_keys(path, "mindspore")[2:6] == [
        "stem-0.s-bn.gamma",
        "stem-0.s-bn.beta",
        "stem-0.s-bn.moving_mean",
        "stem-0.s-bn.moving_variance",
    ]


def test_paths_of_keyed_sequence_items(spec_path):
    path = spec_path("sequences")
    # an unkeyed item keeps its index; a packed sequence's index counts present items
    assert paths(path) == [
        "body.c-1",
        "body.1",
        "features.stem-conv",
        "features.1",
        "features.act-1",
    ]
    assert paths(path, {"wide": False}) == [
        "body.c-1",
        "body.1",
        "body.r",
        "features.stem-conv",
        "features.act-0",
        "features.act-1",
    ]
    assert native_keys(path, "paddle")[:4] == [
        "body.c-1.weight",
        "body.c-1.bias",
        "body.1.weight",
        "body.1.bias",
    ]


def test_paths_of_keyed_repetitions(spec_path):
    assert paths(spec_path("repeats")) == [
        "trunk.block1.units.block1-0",
        "trunk.block1.units.block1-1",
        "trunk.block2.units.block2-0",
        "head.0.r0",
        "head.0.r1",
        "head.last",
    ]


def test_paths_of_nested_keyed_loops(spec_path):
    path = spec_path("nested")
    stack = ["stack.0.0.u0", "stack.0.0.u1", "stack.0.act-0"]
    stack += ["stack.1.0.u0", "stack.1.0.u1", "stack.1.act-1"]
    assert paths(path) == [*stack, "opt.o-0", "opt.o-1"]
    assert paths(path, {"deep": False}) == stack


# -- emitted code ---------------------------------------------------------------------------
NODE_LINES = {
    "torch": [
        'self.add_module("stem-0", Unit(in_channels, out=4, tag="s"))',
        "self.add_module(self.bn_key, nn.BatchNorm2d(out))",
        'out = getattr(self, "stem-0")(x)',
        "out = getattr(self, self.bn_key)(out)",
    ],
    "paddle": [
        'self.add_sublayer("stem-0", Unit(in_channels, out=4, tag="s"))',
        "self.add_sublayer(self.bn_key, nn.BatchNorm2D(out))",
        'out = getattr(self, "stem-0")(x)',
        "out = getattr(self, self.bn_key)(out)",
    ],
    "mindspore": [
        'setattr(self, "stem-0", Unit(in_channels, out=4, tag="s"))',
        "setattr(self, self.bn_key, nn.BatchNorm2d(out))",
        'out = getattr(self, "stem-0")(x)',
        "out = getattr(self, self.bn_key)(out)",
    ],
}


@pytest.mark.parametrize("backend", NODE_LINES)
def test_keyed_nodes_are_added_by_name(spec_path, backend):
    lines = emitted(spec_path("nodes"), backend)
    for line in NODE_LINES[backend]:
        assert line in lines
    assert 'self.bn_key = tag + "-bn"' in lines  # a computed key is kept for forward
    assert "self.act = nn.ReLU()" in lines  # an identifier key is a plain attribute
    assert "out = self.act(out)" in lines


SEQUENCE_LINES = {
    "torch": [
        "self.body = nn.Sequential(",
        "OrderedDict(",
        '("c-1", nn.Conv2d(in_channels, 4, kernel_size=1)),',
        '("1", nn.BatchNorm2d(4)),',
        'features.append(("stem-conv", nn.Conv2d(4, 4, kernel_size=3, padding=1)))',
        "features.append((str(len(features)), nn.BatchNorm2d(4)))",
        'features.append(("act-1", nn.ReLU()))',
        "self.features = nn.Sequential(OrderedDict(features))",
    ],
    "paddle": [
        "self.body = nn.Sequential(",
        '("c-1", nn.Conv2D(in_channels, 4, kernel_size=1)),',
        '("1", nn.BatchNorm2D(4)),',
        "features.append((str(len(features)), nn.BatchNorm2D(4)))",
        "self.features = nn.Sequential(*features)",
    ],
    "mindspore": [
        "self.body = nn.SequentialCell(",
        "OrderedDict(",
        '("r", nn.ReLU() if not wide else nn.Identity()),',
        "self.features = nn.SequentialCell(OrderedDict(features))",
    ],
}


@pytest.mark.parametrize("backend", SEQUENCE_LINES)
def test_keyed_sequence_items_are_named_children(spec_path, backend):
    lines = emitted(spec_path("sequences"), backend)
    for line in SEQUENCE_LINES[backend]:
        assert line in lines
    has_ordered_dict = "from collections import OrderedDict" in lines
    assert has_ordered_dict == (backend != "paddle")


REPEAT_LINES = {
    "torch": [
        "units.append(",
        '("block" + str(index) + "-" + str(i), nn.Conv2d(channels, out, kernel_size=1))',
        "self.units = nn.Sequential(OrderedDict(units))",
        "for i, (out, depth) in enumerate(STAGES):",
        'trunk.append(("block" + str(i + 1), Stage(channels, out=out, depth=depth, index=i + 1)))',
        "channels = trunk[-1][1].out_channels",
        'head.append(("0", nn.Sequential(OrderedDict(head_0))))',
    ],
    "paddle": [
        "self.units = nn.Sequential(*units)",
        "channels = trunk[-1][1].out_channels",
        'head.append(("0", nn.Sequential(*head_0)))',
    ],
    "mindspore": [
        "self.units = nn.SequentialCell(OrderedDict(units))",
        'head.append(("0", nn.SequentialCell(OrderedDict(head_0))))',
    ],
}


@pytest.mark.parametrize("backend", REPEAT_LINES)
def test_keyed_repetitions_are_named_in_the_loop(spec_path, backend):
    lines = emitted(spec_path("repeats"), backend)
    for line in REPEAT_LINES[backend]:
        assert line in lines


def test_nested_keyed_loops_read_their_own_index(spec_path):
    lines = emitted(spec_path("nested"), "torch")
    expected = [
        "for i in range(2):",
        "for i_1 in range(2):",
        'stack_item_0.append(("u" + str(i_1), nn.Conv2d(channels, 4, kernel_size=1)))',
        'stack_item.append(("0", nn.Sequential(OrderedDict(stack_item_0))))',
        'stack_item.append(("act-" + str(i), nn.ReLU()))',
        "stack.append(nn.Sequential(OrderedDict(stack_item)))",
        "self.stack = nn.Sequential(*stack)",
        "if deep:",
        "for i in range(2):",
        'opt.append(("o-" + str(i), nn.Conv2d(channels, 4, kernel_size=1)))',
        "self.opt = nn.Sequential(OrderedDict(opt))",
    ]
    start = lines.index(expected[0])
    assert [line for line in lines[start:] if line in expected] == expected


def test_specs_without_keys_emit_no_named_children(write_spec):
    path = write_spec(
        "name: Net\ninput: {channels: 3, height: 8, width: 8}\nnodes:\n"
        "  - seq: [{op: conv2d, out: 4, kernel: 1}, {op: relu}]\n"
    )
    for backend in available():
        text = "\n".join(emitted(path, backend))
        assert "OrderedDict" not in text and "getattr" not in text


def test_segments_mindspore_cannot_name_are_a_backend_limit(write_spec):
    """MindSpore checks parameter names (their module paths) against `^\\w*[0-9a-zA-Z_.-]*$`."""
    from archspec.emit_args import EmitError

    path = write_spec(
        "name: Net\ninput: {channels: 3, height: 8, width: 8}\nnodes:\n"
        "  - {op: relu}\n"
        "  - {name: a, key: \"'a b'\", op: conv2d, out: 4, kernel: 1}\n"
    )
    assert 'self.add_module("a b", nn.Conv2d(in_channels, 4, kernel_size=1))' in emitted(
        path, "torch"
    )
    assert 'out = getattr(self, "a b")(out)' in emitted(path, "paddle")
    with pytest.raises(EmitError) as info:
        emitted(path, "mindspore")
    assert str(info.value) == (
        "spec.yaml:5:5: error: MindSpore emitter: module path segment 'a b' is not a name "
        "MindSpore accepts (it must match `[0-9A-Za-z_-]+`)"
    )


# -- the expression language --------------------------------------------------------------------
def test_str_and_joined_strings():
    ev = Evaluator({})
    assert ev.eval(parse("'block' + str(i + 1) + '-' + str(0)"), {"i": 3}) == "block4-0"
    assert ev.eval(parse("str('a')"), {}) == "a"
    with pytest.raises(ExprError, match="str\\(\\): expects a number or a string, got a boolean"):
        ev.eval(parse("str(true)"), {})
    with pytest.raises(ExprError, match="value longer than 10000 items"):
        ev.eval(parse("s + s"), {"s": "x" * 6000})  # joined text stays bounded
    with pytest.raises(ExprError, match="arithmetic needs a number, got a string"):
        ev.eval(parse("'a' - 'b'"), {})


# -- every framework: the same function, the same checkpoint, and it compiles ----------------------
@pytest.mark.parametrize(
    ("name", "overrides"),
    [
        ("nodes", {}),
        ("sequences", {}),
        ("sequences", {"wide": False}),
        ("repeats", {}),
        ("nested", {}),
        ("nested", {"deep": False}),
    ],
)
def test_every_framework_builds_and_agrees(spec_path, name, overrides):
    path = spec_path(name)
    report = check_spec(path, list(available().values()), check_workers(), overrides, None, 2)
    assert [b.error for b in report.backends] == [None, None, None]
    assert report.ok, report.to_json()


COMPILE = textwrap.dedent(
    """
    import importlib, json, sys
    import numpy as np
    sys.path.insert(0, sys.argv[1])
    from backend_worker import FRAMEWORKS
    framework = FRAMEWORKS[sys.argv[2]]()
    sys.path.insert(0, sys.argv[3])
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    nets = [importlib.import_module(m).Net() for m in sys.argv[4:]]
    print(json.dumps([framework.compile(net, x) for net in nets]))
    """
)


@pytest.mark.parametrize("backend", ["torch", "paddle", "mindspore"])
def test_keyed_modules_compile(spec_path, tmp_path, backend):
    from archspec.api import emit_module

    out = tmp_path / "modules"
    out.mkdir()
    for name in SPECS:
        (out / f"keys_{name}.py").write_text(emit_module(compile_spec(spec_path(name)), backend))
    modules = [f"keys_{name}" for name in SPECS]
    proc = subprocess.run(
        [sys.executable, "-c", COMPILE, str(ROOT / "tests"), backend, str(out), *modules],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.splitlines()[-1])
    assert len(results) == len(SPECS)
    for result in results:  # "<compiler> ok ..., max diff <compiled vs eager>"
        assert " ok" in result and float(result.rsplit(" ", 1)[-1]) <= 1e-5, result


# -- registration order (`order`) -----------------------------------------------------------
ORDER = """\
name: Net
input: {channels: 4, height: 8, width: 8}
blocks:
  Merge:
    nodes:
      - {name: norm, op: batchnorm2d}
      - {name: act, op: relu}
      - {name: reduce, op: conv2d, out: 8, kernel: 1}
    order: [reduce, act, norm]
nodes:
  - {block: Merge}
"""


@pytest.mark.parametrize("backend", ["torch", "paddle", "mindspore"])
def test_order_registers_modules_in_the_given_order(write_spec, backend):
    lines = emitted(write_spec(ORDER), backend)
    built = [ln.split(" = ")[0] for ln in lines if ln.startswith("self.") and " = " in ln]
    assert built[:3] == ["self.reduce", "self.act", "self.norm"]
    body = lines[
        lines.index(
            "def " + ("construct" if backend == "mindspore" else "forward") + "(self, x):"
        ) :
    ]
    calls = [ln.split("(")[0].split(" = ")[1] for ln in body if " = self." in ln]
    assert calls[:3] == ["self.norm", "self.act", "self.reduce"]  # forward keeps the data flow


def test_order_state_dict_follows_it(write_spec, tmp_path):
    torch = pytest.importorskip("torch")
    path = write_spec(ORDER)
    b = available()["torch"]
    source = b.render(module_view(compile_spec(path), b, []))
    scope: dict = {}
    exec(compile(source, str(tmp_path / "net.py"), "exec"), scope)  # our own generated code
    net = scope["Net"]()
    assert list(net.state_dict())[:3] == [
        "merge.reduce.weight",
        "merge.reduce.bias",
        "merge.norm.weight",
    ]
    assert net(torch.zeros(1, 4, 8, 8)).shape == (1, 8, 8, 8)


def test_order_refuses_a_node_that_is_not_a_plain_module(write_spec):
    text = ORDER.replace(
        "- {name: reduce, op: conv2d, out: 8, kernel: 1}",
        "- {name: reduce, op: conv2d, out: 8, kernel: 1, when: in_channels > 1}",
    )
    with pytest.raises(EmitError) as info:
        emitted(write_spec(text), "torch")
    assert str(info.value) == (
        "spec.yaml:9:12: error: PyTorch emitter: `order` can reorder only nodes built by plain "
        "assignments; `reduce` is not"
    )
