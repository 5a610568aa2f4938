"""The `stochastic_depth` op: torchvision.ops.StochasticDepth in every framework.

Static facts (no parameters, no MACs, attributes checked), each backend's emitted call and
the layer copied into the module, then the layer's behaviour measured in each framework
(MindSpore in GRAPH_MODE and PyNative): identity in eval and at p = 0, whole samples
("row") or the whole batch ("batch") zeroed at rate p, survivors scaled by exactly
1 / (1 - p), everything zeroed at p = 1. `archspec check` agrees across frameworks with the
layer switched off in its train pass, as dropout is.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import by_path, check_workers
from rich.console import Console

from archspec.api import build_modules
from archspec.backend import available
from archspec.check import check_spec
from archspec.ops import OPS
from archspec.report import render_check

BACKENDS = ["torch", "paddle", "mindspore"]

SPEC = """
name: Net
input: {channels: 2, height: 3, width: 3}
params: {p: 0.3, mode: {type: str, default: row}}
nodes:
  - {name: sd, op: stochastic_depth, p: p, mode: mode}
"""


def test_registered_with_no_params_or_macs(compile_yaml):
    op = OPS["stochastic_depth"]
    assert list(op.attrs) == ["p", "mode"]
    assert op.attrs["p"].required and op.attrs["mode"].default == "row"
    graph = compile_yaml(SPEC, {"p": 1.0, "mode": "batch"})
    node = by_path(graph)["sd"]
    assert (node.shape, node.params, node.buffers, node.macs) == ((2, 3, 3), {}, {}, 0)
    assert node.attrs == {"p": 1.0, "mode": "batch"}


def test_p_is_an_expression_of_the_block_index(compile_yaml):
    graph = compile_yaml(
        """
        name: Net
        input: {channels: 2, height: 3, width: 3}
        nodes:
          - {name: s, op: stochastic_depth, p: 0.2 * i / 4, repeat: 4}
        """
    )
    assert [n.attrs["p"] for n in graph.nodes] == [0.0, 0.05, 0.1, 0.15000000000000002]


CALLS = {
    "torch": ["self.sd = StochasticDepth(p, mode=mode)", "self.b = StochasticDepth(0.5)"],
    "paddle": ["self.sd = StochasticDepth(p, mode=mode)", "self.b = StochasticDepth(0.5)"],
    "mindspore": ["self.sd = StochasticDepth(p, mode=mode)", "self.b = StochasticDepth(0.5)"],
}
LAYER_HEADER = {
    "torch": "class StochasticDepth(nn.Module):",
    "paddle": "class StochasticDepth(nn.Layer):",
    "mindspore": "class StochasticDepth(nn.Cell):",
}


@pytest.mark.parametrize("backend", BACKENDS)
def test_each_backend_writes_the_layer_and_copies_its_source(write_spec, tmp_path, backend):
    path = write_spec(SPEC + "  - {name: b, op: stochastic_depth, p: 0.5, mode: \"'row'\"}\n")
    build_modules([path], backend=backend, out=tmp_path / "gen")
    text = (tmp_path / "gen" / backend / "spec.py").read_text()
    calls = [line.strip() for line in text.splitlines() if "= StochasticDepth(" in line]
    assert calls == CALLS[backend]
    assert text.count(LAYER_HEADER[backend]) == 1
    assert text.index(LAYER_HEADER[backend]) < text.index("class Net(")


# Runs in a fresh process per framework: builds the layer from the generated module and
# reports what it does to a batch of ones.
PROBE = r"""
import importlib, json, os, sys
import numpy as np

backend, path, mode = sys.argv[1:4]
if backend == "mindspore":
    import mindspore as ms
    ms.set_context(mode=ms.GRAPH_MODE if mode == "graph" else ms.PYNATIVE_MODE)
    ms.set_seed(0)
    tensor = ms.Tensor
    numpy = lambda t: t.asnumpy()
    train = lambda m, on: m.set_train(on)
elif backend == "paddle":
    import paddle
    paddle.seed(0)
    tensor = paddle.to_tensor
    numpy = lambda t: t.numpy()
    train = lambda m, on: m.train() if on else m.eval()
else:
    import torch
    torch.manual_seed(0)
    tensor = torch.from_numpy
    numpy = lambda t: t.detach().numpy()
    train = lambda m, on: m.train(on)
sys.path.insert(0, os.path.dirname(path))  # GRAPH_MODE imports the layer's module by name
module = importlib.import_module(os.path.basename(path)[:-3])
ones = np.ones((4000, 2, 3), np.float32)
small = np.ones((3, 2, 2), np.float32)
x = np.random.default_rng(0).standard_normal((5, 2, 3)).astype(np.float32)

layers = {}  # one layer per setting: GRAPH_MODE compiles each new cell once

def out(p, mode, on, data):
    layer = layers.setdefault((p, mode, on), module.StochasticDepth(p, mode))
    train(layer, on)
    return numpy(layer(tensor(data)))

rows = out(0.3, "row", True, ones)
batches = [out(0.3, "batch", True, small) for _ in range(400)]
print(json.dumps({
    "eval_identity": bool(np.array_equal(out(0.5, "row", False, x), x)),
    "p0_identity": bool(np.array_equal(out(0.0, "row", True, x), x)),
    "p1_zero": bool(np.array_equal(out(1.0, "batch", True, x), np.zeros_like(x))),
    "row_values": sorted(set(np.unique(rows).tolist())),
    "row_constant_per_sample": bool((rows == rows[:, :1, :1]).all()),
    "row_dropped": float((rows[:, 0, 0] == 0).mean()),
    "batch_constant": all(bool((b == b.flat[0]).all()) for b in batches),
    "batch_dropped": float(np.mean([b.flat[0] == 0 for b in batches])),
    "batch_values": sorted(set(float(b.flat[0]) for b in batches)),
}))
"""

RUNS = [("torch", ""), ("paddle", ""), ("mindspore", "graph"), ("mindspore", "pynative")]


@pytest.mark.parametrize(("backend", "mode"), RUNS, ids=[f"{b}{m and '-' + m}" for b, m in RUNS])
def test_each_framework_computes_torchvisions_definition(write_spec, tmp_path, backend, mode):
    build_modules([write_spec(SPEC)], backend=backend, out=tmp_path / "gen")
    module = tmp_path / "gen" / backend / "spec.py"
    result = subprocess.run(
        [sys.executable, "-c", PROBE, backend, str(module), mode],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    got = json.loads(result.stdout.strip().splitlines()[-1])
    scale = 1 / 0.7
    assert got["eval_identity"] and got["p0_identity"] and got["p1_zero"]
    # survivors are scaled by 1 / (1 - p) (float32), the dropped are exactly 0
    assert got["row_values"][0] == 0.0 and got["row_values"][1] == pytest.approx(scale, rel=1e-6)
    assert len(got["row_values"]) == 2 and got["row_constant_per_sample"]
    # 4000 rows: the dropped fraction's standard deviation is 0.0072; 4 of them
    assert abs(got["row_dropped"] - 0.3) < 0.03
    # "batch": one draw per call, 400 calls: standard deviation 0.023; 4 of them
    assert got["batch_constant"] and abs(got["batch_dropped"] - 0.3) < 0.092
    assert got["batch_values"][0] == 0.0 and got["batch_values"][1] == pytest.approx(
        scale, rel=1e-6
    )


CHECKED = """
name: Net
input: {channels: 3, height: 8, width: 8}
nodes:
  - {name: conv, op: conv2d, out: 4, kernel: 3, padding: 1}
  - {name: sd, op: stochastic_depth, p: 0.5}
  - {name: sd2, op: stochastic_depth, p: 0.5, mode: "'batch'"}
  - {name: add, op: add, inputs: [sd2, conv]}
  - {op: global_avg_pool}
  - {op: flatten}
  - {op: linear, out: 5}
"""


def test_check_agrees_with_the_layer_off_in_train_mode(write_spec):
    path = write_spec(CHECKED, "net.yaml")
    report = check_spec(path, list(available().values()), check_workers(), {}, None, 2)
    assert [b.backend for b in report.backends] == BACKENDS
    assert [b.error for b in report.backends] == [None, None, None]
    assert report.ok, report.to_json()
    for b in report.backends[1:]:  # no batch norm: the train pass is the eval pass
        assert b.train.rel <= 1e-5
    console = Console(record=True, width=400)
    render_check(report, console)
    assert "dropout and stochastic depth off" in console.export_text()


def test_torch_runtime_switches_the_layer_off_in_train_mode(write_spec, tmp_path):
    import importlib.util

    import numpy as np
    import torch

    sys.path.insert(0, str(available()["torch"].folder))
    try:
        import runtime
    finally:
        sys.path.pop(0)
    build_modules([write_spec(CHECKED, "net.yaml")], backend="torch", out=tmp_path / "gen")
    spec = importlib.util.spec_from_file_location("net", tmp_path / "gen" / "torch" / "net.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch.manual_seed(0)
    net = module.Net()
    x = np.random.default_rng(0).standard_normal((64, 3, 8, 8)).astype(np.float32)
    out = runtime.run(net, x, np.ones((64, 5), np.float32))
    assert np.array_equal(out["train"], out["eval"])  # no batch norm: train is eval
    net.train()  # live, the layers change the output
    assert not np.allclose(net(torch.from_numpy(x)).detach().numpy(), out["eval"], atol=1e-3)
