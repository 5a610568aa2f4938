"""`packed: true` sequences: absent items vanish and the later items take the next indices.

torchvision builds its `block` Sequentials from a list it appends to conditionally
(`layers = []; if expand: layers.append(...)`), so the depthwise conv is `block.0` without
an expansion and `block.1` with one. A packed sequence says that: module paths, the static
analysis and the generated modules (a list built with conditional appends, then the
framework's sequence over it) all skip absent items, and the three frameworks agree.
"""

from __future__ import annotations

import pytest
from conftest import HEAD, by_path, check_workers

from archspec.backend import available
from archspec.check import check_spec
from archspec.compiler import compile_spec
from archspec.emit import module_view

PACKED = (
    HEAD
    + """\
params: {expand: true, gate: false}
blocks:
  Unit:
    params: {expand: bool, gate: bool, out: int}
    let: {mid: "in_channels * 2 if expand else in_channels"}
    nodes:
      - name: block
        packed: true
        seq:
          - {seq: [{op: conv2d, out: mid, kernel: 1}, {op: relu}], when: expand}
          - {op: conv2d, out: mid, kernel: 3, padding: 1, groups: mid}
          - {op: sigmoid, when: gate}
          - {op: conv2d, out: out, kernel: 1}
      - {name: add, op: add, inputs: [block, x], when: in_channels == out}
nodes:
  - {name: u, block: Unit, args: {expand: expand, gate: gate, out: 6}}
  - {name: v, block: Unit, args: {expand: false, gate: true, out: 6}}
  - name: stack
    repeat: 3
    packed: true
    seq:
      - {op: conv2d, out: 6, kernel: 1, when: i != 1}
      - {op: relu}
"""
)


def _paths(graph) -> list[str]:
    return [node.path for node in graph.nodes]


def test_absent_items_take_no_index(compile_yaml):
    graph = compile_yaml(PACKED)
    assert _paths(graph) == [
        "u.block.0.0",  # the expansion, present
        "u.block.0.1",
        "u.block.1",  # depthwise
        "u.block.2",  # projection: the absent gate took no index
        "v.block.0",  # no expansion: depthwise moves up to 0
        "v.block.1",  # the gate
        "v.block.2",
        "v.add",  # v keeps its width: the residual add
        "stack.0.0",
        "stack.0.1",
        "stack.1.0",  # the second repeat has no conv: its relu is item 0
        "stack.2.0",
        "stack.2.1",
    ]
    nodes = by_path(graph)
    assert nodes["v.block.0"].attrs["kernel"] == (3, 3)  # the depthwise conv
    assert nodes["u.block.1"].attrs["kernel"] == (3, 3) and nodes["u.block.1"].macs == 6 * 9 * 64
    assert nodes["stack.1.0"].op == "relu"


def test_without_packed_an_absent_item_keeps_its_index(compile_yaml):
    graph = compile_yaml(PACKED.replace("packed: true", "packed: false"))
    assert "u.block.3" in by_path(graph) and "u.block.2" not in by_path(graph)
    assert "stack.1.1" in by_path(graph) and "stack.1.0" not in by_path(graph)


def test_counts_follow_the_present_items(compile_yaml):
    both = compile_yaml(PACKED, {"expand": False, "gate": True})
    assert _paths(both)[:3] == ["u.block.0", "u.block.1", "u.block.2"]
    assert by_path(both)["u.block.1"].op == "sigmoid"


EXPECTED = {
    "torch": [
        "block = []",
        "if expand:",
        "block.append(",  # the ReLU overwrites the convolution's output (in place)
        "nn.Sequential(nn.Conv2d(in_channels, mid, kernel_size=1), nn.ReLU(inplace=True))",
        ")",
        "channels = mid",  # the running channels: the depthwise conv's input either way
        "else:",
        "channels = in_channels",
        "block.append(nn.Conv2d(channels, mid, kernel_size=3, padding=1, groups=mid))",
        "if gate:",
        "block.append(nn.Sigmoid())",
        "block.append(nn.Conv2d(mid, out, kernel_size=1))",
        "self.block = nn.Sequential(*block)",
    ],
    "paddle": [
        "block = []",
        "if expand:",
        "block.append(nn.Sequential(nn.Conv2D(in_channels, mid, kernel_size=1), nn.ReLU()))",
        "channels = mid",  # the running channels: the depthwise conv's input either way
        "else:",
        "channels = in_channels",
        "block.append(nn.Conv2D(channels, mid, kernel_size=3, padding=1, groups=mid))",
        "if gate:",
        "block.append(nn.Sigmoid())",
        "block.append(nn.Conv2D(mid, out, kernel_size=1))",
        "self.block = nn.Sequential(*block)",
    ],
}


@pytest.mark.parametrize("backend", EXPECTED)
def test_generated_code_appends_conditionally_without_identities(write_spec, backend):
    b = available()[backend]
    text = b.render(module_view(compile_spec(write_spec(PACKED)), b, []))
    init = text.split("class Unit(")[1].split("def forward")[0]
    lines = [line.strip() for line in init.splitlines()]
    start = lines.index("block = []")
    assert lines[start : start + len(EXPECTED[backend])] == EXPECTED[backend]
    assert "Identity" not in text


def test_mindspore_builds_a_sequential_cell_over_the_list(write_spec):
    b = available()["mindspore"]
    text = b.render(module_view(compile_spec(write_spec(PACKED)), b, []))
    assert "self.block = nn.SequentialCell(block)" in text
    assert "if gate:\n            block.append(nn.Sigmoid())\n" in text
    assert "Identity" not in text


def test_packed_without_conditions_stays_inline(write_spec):
    spec = HEAD + "nodes:\n  - name: s\n    packed: true\n    seq: [{op: relu}, {op: sigmoid}]\n"
    b = available()["torch"]
    text = b.render(module_view(compile_spec(write_spec(spec)), b, []))
    assert "self.s = nn.Sequential(nn.ReLU(), nn.Sigmoid())" in text


@pytest.mark.parametrize(
    "overrides",
    [{}, {"expand": False, "gate": True}],
    ids=["expand", "gate"],
)
def test_every_backend_has_the_irs_paths_and_agrees(write_spec, overrides):
    path = write_spec(PACKED, "packed.yaml")
    report = check_spec(path, list(available().values()), check_workers(), overrides, None, 2)
    assert [b.error for b in report.backends] == [None, None, None]
    assert report.ok, report.to_json()
    assert report.expected["output"] == [2, 6, 8, 8]


def test_packed_belongs_to_sequences(compile_error):
    error = compile_error(HEAD + "nodes:\n  - {op: relu, packed: true}\n")
    assert error == "spec.yaml:4:5: error: `packed` belongs to sequences (`seq`)"


def test_node_init_inside_a_packed_sequence_is_refused(compile_error):
    spec = HEAD + (
        "nodes:\n  - name: s\n    packed: true\n    seq:\n"
        "      - {op: relu, when: false}\n"
        "      - {op: conv2d, out: 4, kernel: 1, init: {weight: zeros}}\n"
    )
    assert compile_error(spec) == (
        "spec.yaml:8:56: error: node-level `init` is not supported inside a packed sequence; "
        "use the spec's `init:` section, or put the node in a block"
    )
