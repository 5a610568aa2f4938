"""ShuffleNetV2 (0.5x, 1.0x, 1.5x, 2.0x) reproduces torchvision's model: counts, MACs, keys
and outputs, and the three frameworks agree.

torchvision is imported as tests/test_mobilenet.py does (`register_fake` patched out); without
it, the comparisons with it are skipped.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
from conftest import check_workers
from test_mobilenet import import_torchvision

from archspec.analysis import summarize
from archspec.backend import available
from archspec.check import check_spec
from archspec.compiler import compile_spec

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
GENERATED = ROOT / "generated" / "torch"
SPEC_NAMES = [
    "shufflenet_v2_x0_5",
    "shufflenet_v2_x1_0",
    "shufflenet_v2_x1_5",
    "shufflenet_v2_x2_0",
]

# networks.md, "More torchvision networks": trainable, BN stats, GFLOPS, state-dict tensors
# (x1_5 is not in the table: torchvision's model code is its reference below)
FIGURES = {
    "shufflenet_v2_x0_5": (1_366_792, 7_952, 0.04, 338),
    "shufflenet_v2_x1_0": (2_278_604, 16_180, 0.145, 338),
    "shufflenet_v2_x2_0": (7_393_996, 33_716, 0.583, 338),
}
# the x1_5 figures, measured on torchvision 0.28's model code (and its `_ops` metadata)
X1_5 = (3_503_624, 23_440, 0.296, 338)


def reference(spec: str):
    """torchvision's model, randomly initialised (no download)."""
    return getattr(import_torchvision().models, spec)()


def generated(spec: str):
    """The checked-in generated PyTorch module's network, with its defaults."""
    path = GENERATED / f"{spec}.py"
    module_spec = importlib.util.spec_from_file_location(f"shufflenet_{spec}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    suffix = spec.removeprefix("shufflenet_v2_").upper()
    return getattr(module, f"ShuffleNetV2{suffix}")()


def summary(spec: str):
    return summarize(compile_spec(SPECS / f"{spec}.yaml"))


@pytest.mark.parametrize("spec", FIGURES)
def test_summary_matches_networks_md(spec):
    trainable, bn_stats, gflops, _ = FIGURES[spec]
    s = summary(spec)
    assert (s.trainable, s.bn_stats, s.output_shape) == (trainable, bn_stats, (1000,))
    assert round(s.macs / 1e9, 3) == gflops


def test_x1_5_summary():
    trainable, bn_stats, gflops, _ = X1_5
    s = summary("shufflenet_v2_x1_5")
    assert (s.trainable, s.bn_stats, round(s.macs / 1e9, 3)) == (trainable, bn_stats, gflops)


@pytest.mark.parametrize("spec", SPEC_NAMES)
def test_summary_matches_torchvision(spec):
    model = reference(spec)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    bn_stats = sum(b.numel() for n, b in model.named_buffers() if n.endswith(("_mean", "_var")))
    meta = import_torchvision().models.get_model_weights(spec).DEFAULT.meta
    s = summary(spec)
    assert (s.trainable, s.bn_stats) == (trainable, bn_stats)
    assert trainable == meta["num_params"]
    assert round(s.macs / 1e9, 3) == meta["_ops"]
    assert len(model.state_dict()) == FIGURES.get(spec, X1_5)[3]


def test_variants_change_only_the_widths():
    """Every variant has x1_0's structure: the same ops, paths and block arguments' strides."""
    base = compile_spec(SPECS / "shufflenet_v2_x1_0.yaml")
    for spec in SPEC_NAMES:
        graph = compile_spec(SPECS / f"{spec}.yaml")
        assert [(n.path, n.op) for n in graph.nodes] == [(n.path, n.op) for n in base.nodes]


def _perturb(model) -> None:
    """Non-trivial BN statistics, scales and logits, so 1e-5 means something."""
    import torch

    torch.manual_seed(0)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0.0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0.0, 0.1)
            elif isinstance(module, torch.nn.Linear):
                module.weight.normal_(0.0, 1.0 / module.in_features**0.5)
                module.bias.normal_(0.0, 0.1)


@pytest.mark.parametrize("spec", SPEC_NAMES)
def test_state_dict_keys_are_torchvisions_in_order(spec):
    assert list(generated(spec).state_dict()) == list(reference(spec).state_dict())


# x1_5 and x2_0: x1_0's generated code with other widths (test_variants_change_only_the_widths;
# their counts and keys in order are compared above): their outputs nightly
@pytest.mark.parametrize(
    "spec",
    [
        "shufflenet_v2_x0_5",
        "shufflenet_v2_x1_0",
        pytest.param("shufflenet_v2_x1_5", marks=pytest.mark.nightly),
        pytest.param("shufflenet_v2_x2_0", marks=pytest.mark.nightly),
    ],
)
def test_generated_module_loads_torchvision_weights(spec):
    import torch

    theirs = reference(spec).eval()
    ours = generated(spec).eval()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    _perturb(theirs)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    for size in (224, 64):
        x = torch.randn(2, 3, size, size)
        with torch.no_grad():
            expected, got = theirs(x), ours(x)
        assert got.shape == expected.shape == (2, 1000)
        assert expected.abs().max().item() > 0.1
        diff = (got - expected).abs().max().item()
        assert diff <= 1e-5, diff
        assert not math.isnan(diff)


def test_generated_block_shuffles_as_torchvision():
    """One unit (stride 1: chunk, branch2, concat, shuffle) equals torchvision's, weights shared."""
    import torch

    theirs = reference("shufflenet_v2_x0_5").stage3[1].eval()
    ours = generated("shufflenet_v2_x0_5").stage3[1].eval()
    _perturb(theirs)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(2, 96, 7, 7)
    with torch.no_grad():
        diff = (ours(x) - theirs(x)).abs().max().item()
    assert diff <= 1e-6, diff
    assert ours.branch1 is None and not hasattr(theirs.branch1, "weight")


@pytest.mark.parametrize("spec", ["shufflenet_v2_x0_5", "shufflenet_v2_x1_0"])
def test_three_frameworks_agree(spec):
    path = SPECS / f"{spec}.yaml"
    report = check_spec(path, list(available().values()), check_workers(), {}, (3, 32, 32), 2)
    assert [b.error for b in report.backends] == [None, None, None]
    assert report.ok, report.to_json()
    assert report.expected["output"] == [2, 1000]
