"""Emission options (`--backend mindspore:cpu`, `build --target cpu`): the same module with
other code for some ops, the same tensors and checkpoints, the same function."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import check_workers, run_cli

from archspec.backend import pick
from archspec.check import check_spec
from archspec.errors import SpecError
from archspec.tensors import tensor_maps

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "specs" / "resnext50.yaml"

# Im2colConv2d against nn.Conv2d with the same weights, eval output and gradients (input
# and parameters), in PyNative and in GRAPH_MODE, in a process of its own
EQUIVALENCE = """
import sys
import numpy as np
import mindspore as ms
from mindspore import nn
sys.path.insert(0, sys.argv[1])
from layers import Im2colConv2d

CASES = [  # kernel, stride, pad_mode, padding, dilation, groups, bias
    (3, 1, "pad", 1, 1, 1, False), (3, 2, "pad", 1, 1, 1, True), (1, 1, "pad", 0, 1, 1, False),
    (1, 2, "pad", 0, 1, 1, True), (3, 1, "pad", 1, 1, 4, False), (3, 2, "same", 0, 1, 1, False),
    (5, 2, "same", 0, 1, 8, True), (3, 1, "pad", 2, 2, 1, False), (7, 2, "pad", 3, 1, 1, False),
    (3, 2, "pad", (0, 1, 0, 1), 1, 1, False), (3, 1, "valid", 0, 1, 2, True),
    (4, 2, "same", 0, 1, 1, False),
]
rng = np.random.default_rng(0)
worst = {"out": 0.0, "grad_input": 0.0, "grad_weights": 0.0}
for mode in (ms.PYNATIVE_MODE, ms.GRAPH_MODE):
    ms.set_context(mode=mode)
    for k, s, pad_mode, p, d, g, bias in CASES if mode == ms.PYNATIVE_MODE else CASES[:4]:
        args = dict(stride=s, pad_mode=pad_mode, padding=p, dilation=d, group=g, has_bias=bias)
        ref, new = nn.Conv2d(8, 16, k, **args), Im2colConv2d(8, 16, k, **args)
        assert [q.name for q in new.get_parameters()] == [q.name for q in ref.get_parameters()]
        for a, b in zip(ref.get_parameters(), new.get_parameters()):
            b.set_data(ms.Tensor(rng.standard_normal(a.shape).astype(np.float32)))
            a.set_data(b.data)
        x = ms.Tensor(rng.standard_normal((2, 8, 11, 13)).astype(np.float32))
        def loss_ref(x):
            return (ref(x) ** 2).sum()
        def loss_new(x):
            return (new(x) ** 2).sum()
        gr = ms.grad(loss_ref, grad_position=0, weights=ref.trainable_params())(x)
        gn = ms.grad(loss_new, grad_position=0, weights=new.trainable_params())(x)
        a, b = ref(x).asnumpy(), new(x).asnumpy()
        assert a.shape == b.shape, (k, s, pad_mode, p, a.shape, b.shape)
        rel = lambda u, v: float(np.abs(u - v).max() / np.abs(u).max())
        worst["out"] = max(worst["out"], rel(a, b))
        worst["grad_input"] = max(worst["grad_input"], rel(gr[0].asnumpy(), gn[0].asnumpy()))
        for u, v in zip(gr[1], gn[1]):
            worst["grad_weights"] = max(worst["grad_weights"], rel(u.asnumpy(), v.asnumpy()))
print(worst)
"""


def run_layers_script(folder: Path, text: str) -> str:
    """The last line a script printed that imports MindSpore's layers.py, run as a file
    (GRAPH_MODE parses source: a file, not `-c`) in a process of its own."""
    script = folder / "script.py"
    script.write_text(text)
    proc = subprocess.run(
        [sys.executable, str(script), str(ROOT / "backends" / "mindspore")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()[-1]


def test_im2col_convolution_equals_mindspores_own(tmp_path):
    worst = eval(run_layers_script(tmp_path, EQUIVALENCE))  # a dict of floats this test printed
    assert worst["out"] < 2e-6 and worst["grad_input"] < 2e-6, worst
    assert worst["grad_weights"] < 1e-5, worst


# PaddedMaxPool2d against nn.MaxPool2d: outputs and input gradients equal bit for bit, in
# PyNative and GRAPH_MODE; the fast path (pad + unpadded pool) where it applies, else its own
POOLS = """
import sys
import numpy as np
import mindspore as ms
from mindspore import nn
sys.path.insert(0, sys.argv[1])
from layers import PaddedMaxPool2d

CASES = [  # kernel, stride, pad_mode, padding, dilation, ceil_mode, fast
    (3, 2, "pad", 1, 1, False, True), (3, 1, "pad", 1, 1, False, True),
    (2, 2, "pad", (0, 1), 1, False, True), (5, 2, "pad", 2, 1, False, True),
    (3, 2, "same", 0, 1, False, False), (2, 2, "valid", 0, 1, False, False),
    (3, 2, "pad", 1, 1, True, False), (3, 1, "pad", 1, 2, False, False),
]
rng = np.random.default_rng(0)
for mode in (ms.PYNATIVE_MODE, ms.GRAPH_MODE):
    ms.set_context(mode=mode)
    for k, s, pad_mode, p, d, ceil, fast in CASES:
        args = dict(stride=s, pad_mode=pad_mode, padding=p, dilation=d, ceil_mode=ceil)
        if pad_mode != "pad":
            args = dict(stride=s, pad_mode=pad_mode)
        ref, new = nn.MaxPool2d(k, **args), PaddedMaxPool2d(k, **args)
        assert new.fast == fast, (k, s, pad_mode, p)
        x = ms.Tensor(rng.standard_normal((2, 3, 11, 12)).astype(np.float32))
        def loss_ref(x):
            return (ref(x) ** 2).sum()
        def loss_new(x):
            return (new(x) ** 2).sum()
        gr, gn = ms.grad(loss_ref)(x).asnumpy(), ms.grad(loss_new)(x).asnumpy()
        assert np.array_equal(ref(x).asnumpy(), new(x).asnumpy()), (k, s, pad_mode, p, d, ceil)
        assert np.array_equal(gr, gn), ("grad", k, s, pad_mode, p, d, ceil)
print("equal")
"""


def test_padded_max_pool_equals_mindspores_own(tmp_path):
    assert run_layers_script(tmp_path, POOLS) == "equal"


def test_target_replaces_only_its_ops_and_keeps_the_tensors():
    (plain,), (cpu,) = pick("mindspore"), pick("mindspore:cpu")
    assert (cpu.name, cpu.label, cpu.title) == (
        "mindspore",
        "mindspore:cpu",
        "MindSpore (target cpu)",
    )
    assert cpu.spec.ops["conv2d"].call == "Im2colConv2d"
    assert plain.spec.ops["conv2d"].call == "nn.Conv2d"  # the plain backend is untouched
    changed = {op for op in plain.spec.ops if plain.spec.ops[op] != cpu.spec.ops[op]}
    assert changed == {"conv2d", "max_pool2d"}
    assert cpu.spec.ops["max_pool2d"].call == "PaddedMaxPool2d"
    from archspec.compiler import compile_spec

    graph = compile_spec(SPEC)
    assert tensor_maps(graph, cpu) == tensor_maps(graph, plain)


def test_build_target_writes_a_standalone_module(tmp_path):
    proc = run_cli(
        "build",
        str(SPEC),
        "--backend",
        "mindspore",
        "--target",
        "cpu",
        "--out",
        "out",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    text = (tmp_path / "out" / "mindspore" / "resnext50.py").read_text()
    assert text.splitlines()[0].endswith("for MindSpore (target cpu). Do not edit:")
    assert text.count("class Im2colConv2d(nn.Conv2d):") == 1
    assert "nn.Conv2d(" not in text  # every convolution is the im2col one
    plain = (ROOT / "generated" / "mindspore" / "resnext50.py").read_text()
    assert text.count("Im2colConv2d(") == 1 + plain.count("nn.Conv2d(") == 6  # class + 5 sites
    body = text[text.index("\nclass Bottleneck") :]  # the rest reads as before
    assert text.count("PaddedMaxPool2d(") == 1 + plain.count("nn.MaxPool2d(") == 2
    body = body.replace("Im2colConv2d", "nn.Conv2d").replace("PaddedMaxPool2d", "nn.MaxPool2d")
    assert body == plain[plain.index("\nclass Bottleneck") :]
    lint = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "-q", str(tmp_path / "out")],
        capture_output=True,
        text=True,
    )
    assert lint.returncode == 0, lint.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--backend", "mindspore", "--target", "gpu"],
            "--backend: error: backend `mindspore` has no target `gpu` (it has: cpu)",
        ),
        (
            ["--backend", "torch", "--target", "cpu"],
            "--backend: error: backend `torch` has no target `cpu` (it has none)",
        ),
        (["--target", "cpu", "--all"], "--target: error: --target needs one --backend (not all)"),
    ],
)
def test_unknown_targets_are_refused(tmp_path, args, message):
    proc = run_cli("build", str(SPEC), *args, "--out", "out", cwd=tmp_path)
    assert (proc.returncode, proc.stderr.strip()) == (2, message)
    assert not (tmp_path / "out").exists()


def test_pick_refuses_a_target_of_a_backend_without_one():
    with pytest.raises(SpecError, match="backend `paddle` has no target `cpu`"):
        pick("paddle:cpu")


def test_check_proves_the_target_equal():
    report = check_spec(SPEC, pick("torch,mindspore:cpu"), check_workers(), {}, (3, 48, 48), 2)
    assert [b.backend for b in report.backends] == ["torch", "mindspore:cpu"]
    assert [b.error for b in report.backends] == [None, None]
    assert report.ok, report.to_json()
