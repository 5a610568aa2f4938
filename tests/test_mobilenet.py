"""MobileNetV3 (large, small) reproduces torchvision's model: counts, MACs, keys and outputs.

torchvision is optional: it is installed beside torch with `pip install --no-deps
torchvision==0.28.0`, and its compiled operators do not match every torch build, so
`torch.library.register_fake` is replaced by a no-op before it is imported (the models
need none of those operators). Without torchvision, the comparisons with it are skipped.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
from conftest import check_workers

from archspec.analysis import summarize
from archspec.backend import available
from archspec.check import check_spec
from archspec.compiler import compile_spec

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
GENERATED = ROOT / "generated" / "torch"

# networks.md, "More torchvision networks": trainable, BN stats, GFLOPS, state-dict tensors
FIGURES = {
    "mobilenet_v3_large": (5_483_032, 24_400, 0.217, 312),
    "mobilenet_v3_small": (2_542_856, 12_112, 0.057, 244),
}
CLASSES = {"mobilenet_v3_large": "MobileNetV3Large", "mobilenet_v3_small": "MobileNetV3Small"}


def _no_fake(name, fn=None, *args, **kwargs):
    """`torch.library.register_fake` as a no-op: `(name, fn)` returns fn; `(name)` a decorator."""
    if fn is None:
        return lambda f: f
    return fn


def import_torchvision():
    """torchvision, with `register_fake` patched out while it imports; skip if absent."""
    return import_with_stub("torchvision")


def import_with_stub(name: str):
    """A library whose compiled ops are built for another torch (torchvision, timm), with
    `register_fake` patched out while it imports; skip if absent."""
    torch = pytest.importorskip("torch")
    if importlib.util.find_spec(name) is None:
        pytest.skip(f"{name} is not installed")
    original = torch.library.register_fake
    torch.library.register_fake = _no_fake
    try:
        return importlib.import_module(name)
    finally:
        torch.library.register_fake = original


def on_meta(build, *args, **kwargs):
    """`build(*args, **kwargs)` on PyTorch's meta device: the same modules, parameter and
    buffer shapes and attributes, without allocating or initialising any weight (seconds for
    the larger networks). For the tests that only count, name or inspect modules."""
    import torch

    with torch.device("meta"):
        return build(*args, **kwargs)


def reference(spec: str):
    """torchvision's model, randomly initialised (no download)."""
    return getattr(import_torchvision().models, spec)()


def generated(spec: str):
    """The checked-in generated PyTorch module's network, with its defaults."""
    path = GENERATED / f"{spec}.py"
    module_spec = importlib.util.spec_from_file_location(f"mobilenet_{spec}", path)
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


@pytest.mark.parametrize("spec", FIGURES)
def test_summary_matches_torchvision(spec):
    model = reference(spec)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    bn_stats = sum(b.numel() for n, b in model.named_buffers() if n.endswith(("_mean", "_var")))
    meta = import_torchvision().models.get_model_weights(spec).DEFAULT.meta
    s = summary(spec)
    assert (s.trainable, s.bn_stats) == (trainable, bn_stats)
    assert trainable == meta["num_params"]
    assert round(s.macs / 1e9, 3) == meta["_ops"]
    assert len(model.state_dict()) == FIGURES[spec][3]


@pytest.mark.parametrize("spec", FIGURES)
def test_generated_module_loads_torchvision_weights(spec):
    import torch

    theirs = reference(spec).eval()
    ours = generated(spec).eval()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    torch.manual_seed(0)
    with torch.no_grad():
        for module in theirs.modules():  # non-trivial statistics, scales and logits
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0.0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0.0, 0.1)
            elif isinstance(module, torch.nn.Linear):
                module.weight.normal_(0.0, 1.0 / module.in_features**0.5)
                module.bias.normal_(0.0, 0.1)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    for size in (224, 64):
        x = torch.randn(2, 3, size, size)
        with torch.no_grad():
            expected, got = theirs(x), ours(x)
        assert got.shape == expected.shape == (2, 1000)
        assert expected.abs().max().item() > 0.1  # logits far from zero: 1e-5 means something
        diff = (got - expected).abs().max().item()
        assert diff <= 1e-5, diff
        assert not math.isnan(diff)


@pytest.mark.parametrize("spec", FIGURES)
def test_three_frameworks_agree(spec):
    path = SPECS / f"{spec}.yaml"
    report = check_spec(path, list(available().values()), check_workers(), {}, (3, 32, 32), 2)
    assert [b.error for b in report.backends] == [None, None, None]
    assert report.ok, report.to_json()
    assert report.expected["output"] == [2, 1000]
