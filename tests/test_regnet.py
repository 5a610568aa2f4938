"""RegNetY-400MF reproduces torchvision's model: counts, MACs, keys (`block1-0`, named with
`key`) and outputs, and the three frameworks agree.

torchvision is imported as tests/test_mobilenet.py does (`register_fake` patched out).
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

from conftest import check_workers
from test_mobilenet import import_torchvision

from archspec.analysis import summarize
from archspec.backend import available
from archspec.check import check_spec
from archspec.compiler import compile_spec
from archspec.tensors import tensor_maps

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "specs" / "regnet_y_400mf.yaml"
GENERATED = ROOT / "generated" / "torch" / "regnet_y_400mf.py"


def reference():
    """torchvision's model, randomly initialised (no download)."""
    return import_torchvision().models.regnet_y_400mf()


def generated():
    """The checked-in generated PyTorch module's network, with its defaults."""
    module_spec = importlib.util.spec_from_file_location("regnet_y_400mf", GENERATED)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.RegNetY400MF()


def test_summary_matches_torchvision():
    model = reference()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    bn_stats = sum(b.numel() for n, b in model.named_buffers() if n.endswith(("_mean", "_var")))
    meta = import_torchvision().models.get_model_weights("regnet_y_400mf").DEFAULT.meta
    s = summarize(compile_spec(SPEC))
    assert (s.trainable, s.bn_stats, s.output_shape) == (4_344_144, 27_152, (1000,))
    assert (s.trainable, s.bn_stats) == (trainable, bn_stats)
    assert trainable == meta["num_params"]
    assert s.macs == 401_842_848
    assert round(s.macs / 1e9, 3) == meta["_ops"] == 0.402


def test_spec_keys_are_torchvision_keys_in_order():
    theirs = [k for k in reference().state_dict() if not k.endswith("num_batches_tracked")]
    graph = compile_spec(SPEC)
    ours = [t.native for t in tensor_maps(graph, available()["torch"])]
    assert ours == theirs
    assert "trunk_output.block4.block4-5.f.se.fc2.bias" in ours
    assert len(ours) == 331


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


def test_generated_module_loads_torchvision_weights():
    import torch

    theirs = reference().eval()
    ours = generated().eval()
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


def test_three_frameworks_agree():
    report = check_spec(SPEC, list(available().values()), check_workers(), {}, (3, 32, 32), 2)
    assert [b.error for b in report.backends] == [None, None, None]
    assert report.ok, report.to_json()
    assert report.expected["output"] == [2, 1000]
