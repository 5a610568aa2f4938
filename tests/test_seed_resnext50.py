"""seed_resnext50 reproduces the PyTorch ResNeXt-50 tutorial model the project started from.

The reference is the tutorial's own code (networks.md, "Seed variants"), written out below
as the tutorial writes it: counts, state-dict keys in order and outputs are compared with
it, not with numbers copied by hand.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from conftest import check_workers

from archspec.analysis import summarize
from archspec.backend import available
from archspec.check import check_spec
from archspec.compiler import compile_spec

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "specs" / "seed_resnext50.yaml"


def tutorial_model(num_classes: int = 4):
    """`ResNeXt(layers=[3, 4, 6, 3], cardinality=32, group_depth=4, num_classes=4)`."""
    from torch import nn
    from torch.nn import functional as F

    class BN_Conv2d(nn.Module):  # the tutorial's names
        def __init__(self, cin, cout, kernel_size, stride, padding, groups=1):
            super().__init__()
            self.seq = nn.Sequential(
                nn.Conv2d(cin, cout, kernel_size, stride, padding, groups=groups, bias=False),
                nn.BatchNorm2d(cout),
            )

        def forward(self, x):
            return F.relu(self.seq(x))

    class ResNeXt_Block(nn.Module):
        def __init__(self, in_chnls, cardinality, group_depth, stride):
            super().__init__()
            self.group_chnls = cardinality * group_depth
            g = self.group_chnls
            self.conv1 = BN_Conv2d(in_chnls, g, 1, stride=1, padding=0)
            self.conv2 = BN_Conv2d(g, g, 3, stride=stride, padding=1, groups=cardinality)
            self.conv3 = nn.Conv2d(g, g * 2, 1, stride=1, padding=0)
            self.bn = nn.BatchNorm2d(g * 2)
            self.short_cut = nn.Sequential(
                nn.Conv2d(in_chnls, g * 2, 1, stride, 0, bias=False), nn.BatchNorm2d(g * 2)
            )

        def forward(self, x):
            out = self.conv1(x)
            out = self.conv2(out)
            out = self.bn(self.conv3(out))
            out += self.short_cut(x)
            return F.relu(out)

    class ResNeXt(nn.Module):
        def __init__(self, layers, cardinality, group_depth, num_classes):
            super().__init__()
            self.cardinality = cardinality
            self.channels = 64
            self.conv1 = BN_Conv2d(3, self.channels, 7, stride=2, padding=3)
            d1 = group_depth
            self.conv2 = self.make_layers(d1, layers[0], stride=1)
            self.conv3 = self.make_layers(d1 * 2, layers[1], stride=2)
            self.conv4 = self.make_layers(d1 * 4, layers[2], stride=2)
            self.conv5 = self.make_layers(d1 * 8, layers[3], stride=2)
            self.fc = nn.Linear(self.channels, num_classes)

        def make_layers(self, d, blocks, stride):
            layers = []
            for s in [stride] + [1] * (blocks - 1):
                layers.append(ResNeXt_Block(self.channels, self.cardinality, d, s))
                self.channels = self.cardinality * d * 2
            return nn.Sequential(*layers)

        def forward(self, x):
            out = self.conv1(x)
            out = F.max_pool2d(out, 3, 2, 1)
            out = self.conv5(self.conv4(self.conv3(self.conv2(out))))
            out = F.avg_pool2d(out, 7)
            out = out.view(out.size(0), -1)
            return F.softmax(self.fc(out), dim=1)

    return ResNeXt([3, 4, 6, 3], 32, 4, num_classes)


def generated(**kwargs):
    path = ROOT / "generated" / "torch" / "seed_resnext50.py"
    module_spec = importlib.util.spec_from_file_location("seed_resnext50_torch", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.SeedResNeXt50(**kwargs)


def test_summary_matches_networks_md():
    s = summarize(compile_spec(SPEC))
    assert (s.trainable, s.bn_stats, s.output_shape) == (37_574_724, 90_752, (4,))


def test_summary_matches_the_tutorial_model():
    pytest.importorskip("torch")
    model = tutorial_model()
    s = summarize(compile_spec(SPEC))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    stats = sum(b.numel() for n, b in model.named_buffers() if n.endswith(("_mean", "_var")))
    assert (s.trainable, s.bn_stats) == (trainable, stats)


def test_generated_module_loads_the_tutorial_checkpoint():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    theirs, ours = tutorial_model().eval(), generated().eval()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    with torch.no_grad():  # non-trivial statistics and logits
        for module in theirs.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0.0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0.0, 0.1)
        theirs.fc.weight.normal_(0.0, 0.2)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        expected, got = theirs(x), ours(x)
    assert got.shape == (2, 4)
    assert torch.allclose(got.sum(dim=1), torch.ones(2), atol=1e-6)  # probabilities
    assert expected.max().item() - expected.min().item() > 0.05  # not a uniform output
    assert (got - expected).abs().max().item() <= 1e-5


def test_three_frameworks_agree_at_32x32():
    # the 7x7 head window needs 224x224 input; at 32x32 the last map is 1x1
    report = check_spec(
        SPEC, list(available().values()), check_workers(), {"pool_size": 1}, (3, 32, 32), 2
    )
    assert [b.error for b in report.backends] == [None, None, None]
    assert report.ok, report.to_json()
    assert report.expected["output"] == [2, 4]
