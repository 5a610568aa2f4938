"""EfficientNet B0-B7 and V2-S reproduce torchvision's models: counts, MACs, keys, outputs.

The specs' figures are compared with networks.md where it gives them and with torchvision's
own models (and their weights' metadata) for every variant; each generated PyTorch module
loads torchvision's state dict key for key and computes its eval outputs, and its
stochastic depth probabilities are torchvision's, block by block. The three frameworks
agree on B0 and V2-S. torchvision is imported as tests/test_mobilenet.py does.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
from conftest import check_workers
from test_mobilenet import import_torchvision, on_meta

from archspec.analysis import summarize
from archspec.backend import available
from archspec.check import check_spec
from archspec.compiler import compile_spec

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
GENERATED = ROOT / "generated" / "torch"

# networks.md, "More torchvision networks": trainable, BN stats, GFLOPS, state-dict tensors
FIGURES = {
    "efficientnet_b0": (5_288_548, 42_016, 0.386, 360),
    "efficientnet_b1": (7_794_184, 62_048, 0.687, 508),
    "efficientnet_b3": (12_233_232, 87_296, 1.827, 574),
    "efficientnet_b7": (66_347_960, 310_720, 37.746, 1200),
    "efficientnet_v2_s": (21_458_488, 153_872, 8.366, 782),
}
VARIANTS = [f"efficientnet_b{k}" for k in range(8)] + ["efficientnet_v2_s"]
CLASSES = {f"efficientnet_b{k}": f"EfficientNetB{k}" for k in range(8)}
CLASSES["efficientnet_v2_s"] = "EfficientNetV2S"
# torchvision's evaluation crop, the resolution of its `_ops` figure
CROPS = dict(zip(VARIANTS, [224, 240, 288, 300, 380, 456, 528, 600, 384], strict=True))


def reference(spec: str):
    """torchvision's model, randomly initialised (no download)."""
    return getattr(import_torchvision().models, spec)()


def generated(spec: str):
    """The checked-in generated PyTorch module's network, with its defaults."""
    path = GENERATED / f"{spec}.py"
    module_spec = importlib.util.spec_from_file_location(f"efficientnet_{spec}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return getattr(module, CLASSES[spec])()


def summary(spec: str):
    return summarize(compile_spec(SPECS / f"{spec}.yaml"))


@pytest.mark.parametrize("spec", FIGURES)
def test_summary_matches_networks_md(spec):
    trainable, bn_stats, gflops, _ = FIGURES[spec]
    s = summary(spec)
    assert (s.trainable, s.bn_stats, s.output_shape) == (trainable, bn_stats, (1000,))
    assert round(s.macs / 1e9, 3) == gflops


@pytest.mark.parametrize("spec", VARIANTS)
def test_summary_matches_torchvision(spec):
    model = on_meta(reference, spec)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    bn_stats = sum(b.numel() for n, b in model.named_buffers() if n.endswith(("_mean", "_var")))
    meta = import_torchvision().models.get_model_weights(spec).DEFAULT.meta
    s = summary(spec)
    assert s.input_shape == (3, CROPS[spec], CROPS[spec])
    assert (s.trainable, s.bn_stats) == (trainable, bn_stats)
    assert trainable == meta["num_params"]
    assert round(s.macs / 1e9, 3) == meta["_ops"]
    if spec in FIGURES:
        assert len(model.state_dict()) == FIGURES[spec][3]


def _perturb(model) -> None:
    """Non-trivial statistics, scales and logits, so agreement to 1e-5 means something."""
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


@pytest.mark.parametrize("spec", VARIANTS)
def test_state_dict_keys_are_torchvisions_in_order(spec):
    """Every variant's generated module, key for key (on the meta device: no weights)."""
    theirs = list(on_meta(reference, spec).state_dict())
    assert list(on_meta(generated, spec).state_dict()) == theirs
    if spec in FIGURES:
        assert len(theirs) == FIGURES[spec][3]


# B0 also at its own resolution; the larger ones at 64 x 64 only, to keep the suite quick
SIZES = {spec: (64,) for spec in VARIANTS} | {"efficientnet_b0": (224, 64)}
# CI compares the three kinds of generated module: B0 (MBConv, BN eps 1e-5), B5 (other width
# and depth multipliers, BN eps 1e-3 and momentum 0.01, as B6 and B7) and V2-S (fused
# MBConv); B1-B4, B6 and B7 differ from those only in their multipliers (their counts and
# keys in order are compared above): nightly
IN_CI = ("efficientnet_b0", "efficientnet_b5", "efficientnet_v2_s")
ALL_IN_CI_OR_NIGHTLY = [
    spec if spec in IN_CI else pytest.param(spec, marks=pytest.mark.nightly) for spec in VARIANTS
]


@pytest.mark.parametrize("spec", ALL_IN_CI_OR_NIGHTLY)
def test_generated_module_loads_torchvision_weights(spec):
    import torch

    theirs = reference(spec).eval()
    ours = generated(spec).eval()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    _perturb(theirs)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    for size in SIZES[spec]:
        x = torch.randn(2, 3, size, size)
        with torch.no_grad():
            expected, got = theirs(x), ours(x)
        assert got.shape == expected.shape == (2, 1000)
        assert expected.abs().max().item() > 0.1  # logits far from zero
        diff = (got - expected).abs().max().item()
        assert diff <= 1e-5, diff
        assert not math.isnan(diff)


@pytest.mark.nightly
@pytest.mark.parametrize("spec", VARIANTS)
def test_outputs_at_torchvisions_resolution(spec):
    import torch

    theirs, ours = reference(spec).eval(), generated(spec).eval()
    _perturb(theirs)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(1, 3, CROPS[spec], CROPS[spec])
    with torch.no_grad():
        diff = (ours(x) - theirs(x)).abs().max().item()
    assert diff <= 1e-5, diff


def _depths(model) -> dict[str, tuple[float, str]]:
    """(p, mode) of every stochastic depth layer that is applied (in a residual block)."""
    return {
        name.rsplit(".", 1)[0]: (module.p, module.mode)
        for name, module in model.named_modules()
        if type(module).__name__ == "StochasticDepth"
    }


@pytest.mark.parametrize("spec", ["efficientnet_b0", "efficientnet_b7", "efficientnet_v2_s"])
def test_stochastic_depth_grows_with_the_block_index_as_torchvisions(spec):
    theirs, ours = on_meta(reference, spec), on_meta(generated, spec)
    mine = _depths(ours)
    # torchvision keeps the layer in every block but applies it only on a residual;
    # the spec builds it only there
    applied = {
        name: value
        for name, value in _depths(theirs).items()
        if theirs.get_submodule(name).use_res_connect
    }
    assert mine.keys() == applied.keys()
    for name, (p, mode) in applied.items():
        assert mode == mine[name][1] == "row"
        assert mine[name][0] == pytest.approx(p, rel=1e-12, abs=0.0), name
    assert max(p for p, _ in mine.values()) > 0.15  # the last residual blocks near 0.2


def test_train_mode_matches_torchvision_with_the_same_draws():
    """In training, B0 and torchvision draw the same masks from the same seed."""
    import torch

    theirs, ours = reference("efficientnet_b0"), generated("efficientnet_b0")
    _perturb(theirs)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    for model in (theirs, ours):  # dropout off: its draw order is the same, but keep it simple
        model.train()
        model.classifier[0].p = 0.0
    x = torch.randn(4, 3, 32, 32)
    torch.manual_seed(1)
    expected = theirs(x)
    torch.manual_seed(1)
    got = ours(x)
    torch.manual_seed(2)
    other = ours(x)
    assert (got - expected).abs().max().item() <= 1e-5
    assert (other - expected).abs().max().item() > 1e-3  # the draws matter


@pytest.mark.parametrize("spec", ["efficientnet_b0", "efficientnet_v2_s"])
def test_three_frameworks_agree(spec):
    path = SPECS / f"{spec}.yaml"
    report = check_spec(path, list(available().values()), check_workers(), {}, (3, 32, 32), 2)
    assert [b.error for b in report.backends] == [None, None, None]
    assert report.ok, report.to_json()
    assert report.expected["output"] == [2, 1000]
