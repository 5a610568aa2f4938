"""Block calls, repeats, sequences and conditions compose at every level, in every backend.

The shapes torchvision writes: a `features` sequence whose items are blocks (MobileNet,
EfficientNet), a stack of blocks at one index of a sequence (MnasNet's `layers.8.0`), a
sequence inside a block inside a repeated sequence (`features.3.0.block.1`), `when` on a
repeated node. Each spec is built for all three frameworks and run by `archspec check`:
the modules instantiate, their counts and state-dict keys are the IR's, and all three
compute the same function.
"""

from __future__ import annotations

import pytest
from conftest import HEAD, by_path, check_workers, run_cli

from archspec.backend import available
from archspec.check import check_spec
from archspec.compiler import compile_spec
from archspec.emit import module_view

BLOCKS_IN_A_SEQ = """\
name: SeqOfBlocks
input: {channels: 3, height: 8, width: 8}
blocks:
  B:
    nodes:
      - {name: conv, op: conv2d, out: 4, kernel: 1}
nodes:
  - name: s
    seq:
      - {block: B}
      - {block: B}
"""

# torchvision's module paths: features.1.0.block.0 (a seq of blocks, each stage a stack),
# layers.8.0 (a repeated item inside a seq), a `when` on a repeated node
COMPOSED = (
    HEAD
    + """\
params: {width: 4, deep: true}
blocks:
  ConvBN:
    params: {out: int, stride: 1}
    nodes:
      - {name: conv, op: conv2d, out: out, kernel: 3, padding: 1, stride: stride, bias: false}
      - {name: bn, op: batchnorm2d}
      - {name: relu, op: relu}
  MBConv:
    doc: a seq inside a block (torchvision's `block`), called from a repeated seq
    params: {out: int, expand: 2}
    nodes:
      - name: block
        seq:
          - {block: ConvBN, args: {out: in_channels * expand}}
          - {op: conv2d, out: out, kernel: 1, bias: false}
          - {op: batchnorm2d}
      - {name: add, op: add, inputs: [block, x], when: in_channels == out}
  Maybe:
    params: {out: int, extra: false}
    nodes:
      - {name: a, op: conv2d, out: out, kernel: 1}
      - {name: b, op: conv2d, out: out * 2, kernel: 1, when: extra}
nodes:
  - name: features
    seq:
      - {block: ConvBN, args: {out: width, stride: 2}}
      - {block: Maybe, args: {out: width, extra: deep}}
      - {block: MBConv, args: {out: 5}, repeat: 2}
      - seq:
          - {block: MBConv, args: {out: 6, expand: 1}}
          - {block: MBConv, args: {out: 6}}
      - {op: relu}
  - name: stages
    repeat: 2
    seq:
      - {block: ConvBN, args: {out: width * (i + 1), stride: 2 if i == 0 else 1}}
      - {block: Maybe, args: {out: 3, extra: i == 1}}
  - name: optional
    repeat: 2
    when: deep
    block: MBConv
    args: {out: 6}
  - {name: pool, op: global_avg_pool}
  - {name: flatten, op: flatten}
  - {name: fc, op: linear, out: 10}
"""
)


def test_blocks_in_a_seq_are_built_from_static_channels(write_spec):
    path = write_spec(BLOCKS_IN_A_SEQ, "seqblocks.yaml")
    graph = compile_spec(path)
    torch = available()["torch"]
    text = torch.render(module_view(graph, torch, []))
    # the second block's input is known from the first block's arguments: no container is
    # read before it exists (the bug was `B(self.s[0].out_channels)`)
    assert "self.s = nn.Sequential(B(in_channels), B(4))" in text
    for backend in available().values():
        module_view(graph, backend, [])


def test_composed_module_paths_follow_the_spec(compile_yaml):
    graph = compile_yaml(COMPOSED)
    nodes = by_path(graph)
    for path in [
        "features.0.conv",  # a block as a sequence item
        "features.1.b",  # a conditional node inside a block, present with deep=true
        "features.2.0.block.0.conv",  # a repeated block inside a seq: a stack at index 2
        "features.2.1.block.1",
        "features.3.1.block.2",  # a seq inside a seq, of blocks holding seqs
        "stages.0.0.conv",  # a repeated seq of blocks
        "stages.1.1.b",  # Maybe(extra=i == 1) on the second repeat only
        "optional.1.block.0.bn",  # `when` on a repeated node
        "fc",
    ]:
        assert path in nodes, path
    assert "stages.0.1.b" not in nodes
    assert nodes["features.2.0.block.1"].attrs["out"] == 5
    assert nodes["fc"].in_shapes == [(6,)]


@pytest.mark.parametrize("overrides", [{}, {"deep": False, "width": 2}], ids=["defaults", "set"])
def test_composed_spec_runs_and_agrees_in_every_backend(write_spec, overrides):
    path = write_spec(COMPOSED, "composed.yaml")
    report = check_spec(path, list(available().values()), check_workers(), overrides, None, 2)
    assert [b.error for b in report.backends] == [None, None, None]
    assert report.ok, report.to_json()
    assert report.expected["output"] == [2, 10]


def test_repro_builds_for_every_backend_from_the_cli(write_spec, tmp_path):
    write_spec(BLOCKS_IN_A_SEQ, "seqblocks.yaml")
    result = run_cli("build", "seqblocks.yaml", "--backend", "all", "--out", "out", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for name in ("torch", "paddle", "mindspore"):
        assert (tmp_path / "out" / name / "seqblocks.py").is_file()


def test_validate_backend_reports_a_backend_limit(write_spec, tmp_path):
    write_spec(HEAD + "nodes:\n  - {op: max_pool2d, kernel: 3, stride: 1, dilation: 2}\n")
    plain = run_cli("validate", "spec.yaml", cwd=tmp_path)
    assert plain.returncode == 0, plain.stderr
    limited = run_cli("validate", "spec.yaml", "--backend", "paddle", cwd=tmp_path)
    assert limited.returncode == 2
    assert limited.stderr.strip() == (
        "spec.yaml:4:5: error: PaddlePaddle emitter: max_pool2d: `dilation` must be 1 here, got 2"
    )
    assert run_cli("validate", "spec.yaml", "--backend", "torch", cwd=tmp_path).returncode == 0
