"""ConvNeXt (tiny, small, base, large) reproduces torchvision's model: counts, MACs, keys in
order, equal outputs with torchvision's weights, and the three frameworks agree.

torchvision is imported as tests/test_mobilenet.py does (`import_torchvision`); without it the
comparisons with it are skipped.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
from conftest import by_path, check_workers, convert_on_shared_workers
from test_mobilenet import import_torchvision, on_meta

from archspec.analysis import summarize
from archspec.backend import available
from archspec.check import check_spec
from archspec.compiler import compile_spec
from archspec.tensors import tensor_maps

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
GENERATED = ROOT / "generated" / "torch"

# networks.md: trainable, BN stats, GFLOPS, state-dict tensors; large: torchvision's model
# (its meta: 197,767,336 parameters, 34.361 GFLOPS)
FIGURES = {
    "convnext_tiny": (28_589_128, 0, 4.456, 182),
    "convnext_small": (50_223_688, 0, 8.684, 344),
    "convnext_base": (88_591_464, 0, 15.355, 344),
    "convnext_large": (197_767_336, 0, 34.361, 344),
}
CLASSES = {
    "convnext_tiny": "ConvNeXtTiny",
    "convnext_small": "ConvNeXtSmall",
    "convnext_base": "ConvNeXtBase",
    "convnext_large": "ConvNeXtLarge",
}
# torchvision's stochastic_depth_prob per model, reached by the last block
LAST_P = {"convnext_tiny": 0.1, "convnext_small": 0.4, "convnext_base": 0.5, "convnext_large": 0.5}


def reference(spec: str):
    """torchvision's model, randomly initialised (no download)."""
    return getattr(import_torchvision().models, spec)()


def generated(spec: str):
    """The checked-in generated PyTorch module's network, with its defaults."""
    path = GENERATED / f"{spec}.py"
    module_spec = importlib.util.spec_from_file_location(f"convnext_{spec}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return getattr(module, CLASSES[spec])()


def summary(spec: str):
    return summarize(compile_spec(SPECS / f"{spec}.yaml"))


@pytest.mark.parametrize("spec", FIGURES)
def test_summary_matches_networks_md(spec):
    trainable, bn_stats, gflops, tensors = FIGURES[spec]
    graph = compile_spec(SPECS / f"{spec}.yaml")
    s = summarize(graph)
    assert (s.trainable, s.bn_stats, s.output_shape) == (trainable, bn_stats, (1000,))
    assert round(s.macs / 1e9, 3) == gflops
    assert len(tensor_maps(graph, available()["torch"])) == tensors


@pytest.mark.parametrize("spec", FIGURES)
def test_summary_matches_torchvision(spec):
    model = on_meta(reference, spec)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    meta = import_torchvision().models.get_model_weights(spec).DEFAULT.meta
    s = summary(spec)
    assert s.trainable == trainable == meta["num_params"]
    assert round(s.macs / 1e9, 3) == meta["_ops"]
    assert len(model.state_dict()) == FIGURES[spec][3]


@pytest.mark.parametrize("spec", FIGURES)
def test_canonical_tensor_names_are_torchvisions_in_order(spec):
    """tensors.py's names and order (layer scales before their block's layers) are the
    state dict's, for every framework's checkpoint conversion."""
    graph = compile_spec(SPECS / f"{spec}.yaml")
    names = [m.canonical for m in tensor_maps(graph, available()["torch"])]
    assert names == list(on_meta(reference, spec).state_dict())
    assert names[names.index("features.1.0.layer_scale") + 1] == "features.1.0.block.0.weight"


@pytest.mark.parametrize("spec", FIGURES)
def test_stochastic_depth_and_layer_scale_follow_torchvision(spec):
    graph = compile_spec(SPECS / f"{spec}.yaml")
    nodes = by_path(graph)
    probs = [n.attrs["p"] for n in graph.nodes if n.op == "stochastic_depth"]
    theirs = [
        m.p
        for m in on_meta(reference, spec).modules()
        if type(m).__name__ == "StochasticDepth"  # torchvision.ops.StochasticDepth
    ]
    assert probs == theirs
    assert probs[0] == 0.0 and probs[-1] == pytest.approx(LAST_P[spec])
    node = nodes["features.1.0.layer_scale"]
    width = node.shape[0]
    assert (node.op, node.shape, node.params) == (
        "parameter",
        (width, 1, 1),
        {"value": (width, 1, 1)},
    )
    assert node.init == {"value": ("constant", {"value": 1e-6})}


def test_generated_tiny_starts_as_torchvision_does():
    """Same init: layer scales 1e-6, trunc-normal (std 0.02) weights, zero biases, unit norms."""
    import torch

    torch.manual_seed(0)
    ours = dict(generated("convnext_tiny").state_dict())
    assert torch.equal(ours["features.1.0.layer_scale"], torch.full((96, 1, 1), 1e-6))
    weight = ours["features.5.3.block.3.weight"]
    assert abs(weight.std().item() - 0.02) < 0.001 and abs(weight.mean().item()) < 0.001
    text = (GENERATED / "convnext_tiny.py").read_text()
    assert "if isinstance(m, (nn.Conv2d, nn.Linear)):" in text  # as torchvision writes it
    assert "nn.init.trunc_normal_(m.weight, std=0.02)" in text  # bounds -2, 2: torch's own
    assert not ours["features.5.3.block.3.bias"].any()
    assert torch.equal(ours["classifier.0.weight"], torch.ones(768))
    assert not ours["features.0.1.bias"].any()


def _compare_with_torchvision(spec: str, sizes: tuple[int, ...]) -> None:
    import torch

    theirs = reference(spec).eval()
    ours = generated(spec).eval()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    torch.manual_seed(0)
    with torch.no_grad():
        for name, tensor in theirs.named_parameters():  # every branch and norm matters
            if name.endswith("layer_scale"):
                tensor.uniform_(0.1, 1.0)
            elif "norm" in name or tensor.ndim == 1:
                tensor.normal_(1.0 if name.endswith("weight") else 0.0, 0.1)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    for size in sizes:
        x = torch.randn(2, 3, size, size)
        with torch.no_grad():
            expected, got = theirs(x), ours(x)
        assert got.shape == expected.shape == (2, 1000)
        assert expected.abs().max().item() > 0.1  # logits far from zero: 1e-5 means something
        diff = (got - expected).abs().max().item()
        assert diff <= 1e-5, diff
        assert not math.isnan(diff)


def test_generated_module_loads_torchvision_weights():
    _compare_with_torchvision("convnext_tiny", (224, 64))


@pytest.mark.nightly
@pytest.mark.parametrize("spec", ["convnext_small", "convnext_base", "convnext_large"])
def test_larger_variants_load_torchvision_weights(spec):
    _compare_with_torchvision(spec, (224,))


# loads the converted checkpoint into the generated module and prints the eval output's
# largest difference from torchvision's; each framework in its own process
LOAD = {
    "paddle": """
import paddle
net = module.ConvNeXtTiny()
net.eval()
missing, unexpected = net.set_state_dict(paddle.load(sys.argv[2]))
assert (missing, unexpected) == ([], []), (missing, unexpected)
out = net(paddle.to_tensor(x)).numpy()
""",
    "mindspore": """
import mindspore as ms
net = module.ConvNeXtTiny()
net.set_train(False)
assert ms.load_param_into_net(net, ms.load_checkpoint(sys.argv[2]), strict_load=True) == ([], [])
out = net(ms.Tensor(x)).asnumpy()
""",
}
RUN = """
import importlib.util, sys
import numpy as np
spec = importlib.util.spec_from_file_location("convnext_tiny", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
x, expected = np.load(sys.argv[3]), np.load(sys.argv[4])
{load}
print(float(np.abs(out - expected).max()))
"""


@pytest.mark.parametrize(("backend", "suffix"), [("paddle", "pdparams"), ("mindspore", "ckpt")])
def test_torchvision_checkpoint_converted_runs_in_each_framework(tmp_path, backend, suffix):
    """`archspec convert` maps torchvision's state dict (layer scales, LayerNorm2d's weight and
    bias, MindSpore's gamma and beta) so the other frameworks compute torchvision's outputs."""
    import subprocess
    import sys

    import numpy as np
    import torch

    theirs = reference("convnext_tiny").eval()
    torch.manual_seed(0)
    with torch.no_grad():
        for name, tensor in theirs.named_parameters():
            if name.endswith("layer_scale"):
                tensor.uniform_(0.1, 1.0)
    torch.save(theirs.state_dict(), tmp_path / "tv.pt")
    x = np.random.default_rng(0).normal(size=(2, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        expected = theirs(torch.from_numpy(x)).numpy()
    assert np.abs(expected).max() > 0.1
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "expected.npy", expected)
    out = tmp_path / f"converted.{suffix}"
    spec = SPECS / "convnext_tiny.yaml"
    result = convert_on_shared_workers(spec, {}, "torch", tmp_path / "tv.pt", backend, out)
    assert (result.count, result.notes) == (182, [])
    module = ROOT / "generated" / backend / "convnext_tiny.py"
    code = RUN.format(load=LOAD[backend])
    files = [str(module), str(out), str(tmp_path / "x.npy"), str(tmp_path / "expected.npy")]
    run = subprocess.run([sys.executable, "-c", code, *files], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    assert float(run.stdout.strip().splitlines()[-1]) <= 1e-5


def test_three_frameworks_agree():
    path = SPECS / "convnext_tiny.yaml"
    report = check_spec(path, list(available().values()), check_workers(), {}, (3, 32, 32), 2)
    assert [b.error for b in report.backends] == [None, None, None]
    assert report.ok, report.to_json()
    assert report.expected["output"] == [2, 1000]
