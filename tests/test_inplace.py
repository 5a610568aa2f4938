"""In-place emission in PyTorch (`nn.ReLU(inplace=True)`, `bn3 += downsample`): exactly
where the graph proves nothing else reads the overwritten tensor, and never a changed
result: the fuzzers' graphs (shortcuts, concatenations, blocks, sequences, conditions)
give bit-identical outputs, gradients and BN statistics with and without it, in eval and
in training, and the caller's input is never written."""

from __future__ import annotations

import tempfile
import textwrap
import types
from pathlib import Path

import pytest
import yaml
from fuzz_specs import specs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from structure_specs import structured_specs

from archspec.backend import Backend, available
from archspec.compiler import compile_spec
from archspec.emit import module_view
from archspec.errors import SpecError
from archspec.ir import Graph

torch = pytest.importorskip("torch")


def torch_backend(in_place: bool = True) -> Backend:
    """PyTorch's table, or the same without its in-place forms (the reference)."""
    backend = available()["torch"]
    if in_place:
        return backend
    ops = backend.spec.ops
    return backend.with_ops(
        {
            op: {"inplace_arg": None, "inplace_stmt": None}
            for op, t in ops.items()
            if t.owns_output or t.inplace_arg
        }
    )


def network_class(graph: Graph, backend: Backend) -> type:
    """The generated network class, executed from its source (as `build` writes it)."""
    view = module_view(graph, backend, [])
    module = types.ModuleType("generated_inplace")
    exec(compile(backend.render(view), "<generated>", "exec"), module.__dict__)
    return getattr(module, next(c.name for c in view.classes if c.is_network))


def forward_lines(write_spec, text: str) -> list[str]:
    """The generated module's lines, stripped, for a spec written in the test."""
    backend = torch_backend()
    graph = compile_spec(write_spec(textwrap.dedent(text)))
    return [ln.strip() for ln in backend.render(module_view(graph, backend, [])).splitlines()]


# -- where it is emitted ------------------------------------------------------------------------
SHORTCUT = """
    name: Net
    input: {channels: 4, height: 8, width: 8}
    blocks:
      Unit:
        params: {channels: int}
        nodes:
          - {name: conv1, op: conv2d, out: channels, kernel: 3, padding: 1, bias: false}
          - {name: bn1, op: batchnorm2d}
          - {name: act1, op: relu}
          - {name: conv2, op: conv2d, out: channels, kernel: 3, padding: 1}
          - {name: sum, op: add, inputs: [conv2, x]}
          - {name: act2, op: relu}
    nodes:
      - {name: head_act, op: relu}
      - {name: unit, block: Unit, args: {channels: 4}}
      - {name: conv, op: conv2d, out: 4, kernel: 1}
      - {name: mixed, op: add, inputs: [conv, unit]}
      - {name: tail_act, op: relu}
      - {name: joined, op: concat, inputs: [tail_act, mixed]}
"""


def test_relu_after_a_layer_and_a_shortcut_sum_work_in_place(write_spec):
    lines = forward_lines(write_spec, SHORTCUT)
    assert "self.act1 = nn.ReLU(inplace=True)" in lines  # bn1's output: read by act1 only
    assert "conv2 += x" in lines  # conv2's own tensor; the block input is only read
    assert "self.act2 = nn.ReLU(inplace=True)" in lines  # the sum's: read by act2 only
    assert "out = self.act2(conv2)" in lines


def test_what_is_read_elsewhere_or_not_made_here_is_never_overwritten(write_spec):
    lines = forward_lines(write_spec, SHORTCUT)
    assert "self.head_act = nn.ReLU()" in lines  # the network's input: the caller holds it
    assert "conv += unit" in lines  # conv's tensor is read by the sum only, but the sum
    # is read twice (tail_act and the concat), so tail_act may not overwrite it
    assert "self.tail_act = nn.ReLU()" in lines


def test_a_block_output_a_conditional_layer_and_a_parameter_are_left_alone(write_spec):
    lines = forward_lines(
        write_spec,
        """
        name: Net
        input: {channels: 4, height: 8, width: 8}
        params: {gate: {type: bool, default: true}}
        blocks:
          Pair:
            output: a
            nodes:
              - {name: a, op: conv2d, out: 4, kernel: 1}
              - {name: b, op: relu}
        nodes:
          - {name: pair, block: Pair}
          - {name: after_block, op: relu}
          - {name: maybe, op: conv2d, out: 4, kernel: 1, when: gate}
          - {name: after_maybe, op: relu}
          - {name: learnt, op: parameter, shape: [4, 8, 8]}
          - {name: shifted, op: add, inputs: [learnt, after_maybe]}
          - {seq: [{op: conv2d, out: 4, kernel: 1}, {op: relu}, {op: relu}]}
        """,
    )
    assert "self.b = nn.ReLU()" in lines  # `a` is the block's output: its caller reads it
    assert "self.after_block = nn.ReLU()" in lines  # a block may hand on its own input
    assert "self.after_maybe = nn.ReLU()" in lines  # absent, `maybe` hands on `pair`
    assert "out = self.learnt + after_maybe" in lines  # a learnt tensor: never written
    # in a sequence: after a convolution, in place; after an activation, not
    assert "nn.Conv2d(4, 4, kernel_size=1), nn.ReLU(inplace=True), nn.ReLU()" in " ".join(lines)


def test_only_pytorch_writes_in_place(write_spec):
    path = write_spec(textwrap.dedent(SHORTCUT))
    graph = compile_spec(path)
    for name, backend in available().items():
        source = backend.render(module_view(graph, backend, []))
        assert ("inplace=True" in source) == (name == "torch"), name
        assert ("+=" in source) == (name == "torch"), name


# -- it never changes a result ------------------------------------------------------------------
def same_function(graph: Graph) -> None:
    """The module with and without in-place forms: the same outputs, gradients (of the
    input and of every parameter) and BN statistics, bit for bit, eval and training; the
    caller's input unchanged."""
    classes = [network_class(graph, torch_backend(flag)) for flag in (True, False)]
    torch.manual_seed(0)
    fast = classes[0]()
    slow = classes[1]()
    slow.load_state_dict(fast.state_dict(), strict=True)
    x = torch.randn(2, *graph.input_shape)
    for train in (False, True):
        results = []
        for model in (fast, slow):
            model.train(train)
            torch.manual_seed(1)  # dropout draws the same masks
            given_x = x.clone().requires_grad_(train)
            y = model(given_x)
            assert torch.equal(given_x.detach(), x), "the input was overwritten"
            grads = []
            if train:
                y.square().sum().backward()
                grads = [given_x.grad] + [p.grad for p in model.parameters()]
                model.zero_grad(set_to_none=True)
            results.append((y.detach(), grads, [b.clone() for b in model.buffers()]))
        (y1, g1, b1), (y2, g2, b2) = results
        assert torch.equal(y1, y2)
        assert len(g1) == len(g2) and all(
            (a is None and b is None) or torch.equal(a, b) for a, b in zip(g1, g2, strict=True)
        )
        assert all(torch.equal(a, b) for a, b in zip(b1, b2, strict=True))


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(specs())
def test_in_place_never_changes_a_chain_with_shortcuts_and_concatenations(text):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.yaml"
        path.write_text(text)
        try:
            graph = compile_spec(path)
        except SpecError:
            return  # refused with a located error: test_fuzz checks that
        same_function(graph)


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(structured_specs())
def test_in_place_never_changes_a_composed_structure(files):
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in files.items():
            (Path(tmp) / name).write_text(text)
        try:
            graph = compile_spec(Path(tmp) / "net.yaml")
        except SpecError:
            return
        same_function(graph)


ACTS = ["relu", "relu6", "silu", "hardswish", "hardsigmoid", "sigmoid"]


@st.composite
def fan_out_specs(draw) -> str:
    """Random graphs where tensors have several readers: a block (called twice, its input
    read again after it) whose nodes each read any earlier node or the block's input,
    some of them conditional. The fuzzers' chains rarely read a fresh tensor twice."""
    c = draw(st.integers(1, 3))
    names, nodes = ["x"], []
    for k in range(draw(st.integers(2, 9))):
        kind = draw(st.sampled_from(["conv", "bn", "act", "act", "add"]))
        node: dict = {"name": f"n{k}", "inputs": draw(st.sampled_from(names))}
        if kind == "conv":
            kernel = draw(st.sampled_from([1, 3]))
            node |= {"op": "conv2d", "out": c, "kernel": kernel, "padding": kernel // 2}
        elif kind == "bn":
            node["op"] = "batchnorm2d"
        elif kind == "act":
            node["op"] = draw(st.sampled_from(ACTS))
        else:
            node |= {"op": "add", "inputs": [node["inputs"], draw(st.sampled_from(names))]}
        if kind != "add" and draw(st.integers(0, 4)) == 0:
            node["when"] = "gate"
        nodes.append(node)
        names.append(node["name"])
    nodes.append({"name": "out", "op": "add", "inputs": [names[-1], draw(st.sampled_from(names))]})
    spec = {
        "name": "FanOut",
        "input": {"channels": c, "height": 5, "width": 5},
        "params": {"gate": {"type": "bool", "default": draw(st.booleans())}},
        "blocks": {"Cell": {"params": {"gate": False}, "nodes": nodes}},
        "nodes": [
            {"name": "stem", "op": "conv2d", "out": c, "kernel": 1},
            {"name": "cell1", "block": "Cell", "args": {"gate": "gate"}},
            {"name": "cell2", "block": "Cell", "args": {"gate": "not gate"}},
            {"name": "again", "op": "add", "inputs": ["cell2", "stem"]},
        ],
    }
    return yaml.safe_dump(spec, sort_keys=False, default_flow_style=None)


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(fan_out_specs())
def test_in_place_never_changes_a_graph_with_fan_out(text):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fan_out.yaml"
        path.write_text(text)
        same_function(compile_spec(path))


@pytest.mark.parametrize("spec", ["resnet18", "mobilenet_v3_small", "shufflenet_v2_x0_5"])
def test_in_place_never_changes_a_bundled_network(spec):
    from archspec.resources import SPECS_DIR

    same_function(compile_spec(SPECS_DIR / f"{spec}.yaml", input_shape=(3, 32, 32)))
