"""specs/seed_ms_resnet50.yaml: the MindSpore ResNet-50 tutorial for CIFAR-10.

The reference is the tutorial's own model code, written below as MindSpore cells (from
networks.md: nn.Conv2d with its default pad_mode "same", nn.MaxPool2d(3, 2, "same"),
nn.AvgPool2d()). It runs in a subprocess that imports MindSpore only: the generated
module must hold the same parameter names in the same order, start as the tutorial
initialises, and compute the reference's outputs with its weights. `archspec check` then
shows PyTorch and PaddlePaddle compute the same function.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import check_workers
from test_new_ops import render_spec

from archspec.analysis import summarize
from archspec.backend import available
from archspec.check import check_spec
from archspec.compiler import compile_spec

SPEC = Path(__file__).parent.parent / "specs" / "seed_ms_resnet50.yaml"

REFERENCE = r'''
"""The tutorial's ResNet-50, and the generated module loaded with its weights."""
import importlib.util
import json
import sys

import numpy as np
import mindspore as ms
from mindspore import Tensor, nn
from mindspore.common.initializer import Normal

ms.set_context(mode=ms.PYNATIVE_MODE)
ms.set_seed(0)
weight_init = Normal(mean=0, sigma=0.02)
gamma_init = Normal(mean=1, sigma=0.02)


class ResidualBlock(nn.Cell):
    expansion = 4

    def __init__(self, in_channel, out_channel, stride=1, down_sample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channel, out_channel, kernel_size=1, weight_init=weight_init)
        self.norm1 = nn.BatchNorm2d(out_channel)
        self.conv2 = nn.Conv2d(
            out_channel, out_channel, kernel_size=3, stride=stride, weight_init=weight_init
        )
        self.norm2 = nn.BatchNorm2d(out_channel)
        self.conv3 = nn.Conv2d(
            out_channel, out_channel * self.expansion, kernel_size=1, weight_init=weight_init
        )
        self.norm3 = nn.BatchNorm2d(out_channel * self.expansion)
        self.relu = nn.ReLU()
        self.down_sample = down_sample

    def construct(self, x):
        identity = x
        out = self.relu(self.norm1(self.conv1(x)))
        out = self.relu(self.norm2(self.conv2(out)))
        out = self.norm3(self.conv3(out))
        if self.down_sample is not None:
            identity = self.down_sample(x)
        return self.relu(out + identity)


def make_layer(last_out_channel, block, channel, block_nums, stride=1):
    down_sample = None
    if stride != 1 or last_out_channel != channel * block.expansion:
        down_sample = nn.SequentialCell([
            nn.Conv2d(last_out_channel, channel * block.expansion, kernel_size=1,
                      stride=stride, weight_init=weight_init),
            nn.BatchNorm2d(channel * block.expansion, gamma_init=gamma_init),
        ])
    layers = [block(last_out_channel, channel, stride=stride, down_sample=down_sample)]
    in_channel = channel * block.expansion
    for _ in range(1, block_nums):
        layers.append(block(in_channel, channel))
    return nn.SequentialCell(layers)


class ResNet(nn.Cell):
    def __init__(self, block, layer_nums, num_classes, input_channel):
        super().__init__()
        self.relu = nn.ReLU()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, weight_init=weight_init)
        self.norm = nn.BatchNorm2d(64)
        self.max_pool = nn.MaxPool2d(kernel_size=3, stride=2, pad_mode="same")
        self.layer1 = make_layer(64, block, 64, layer_nums[0])
        self.layer2 = make_layer(64 * block.expansion, block, 128, layer_nums[1], stride=2)
        self.layer3 = make_layer(128 * block.expansion, block, 256, layer_nums[2], stride=2)
        self.layer4 = make_layer(256 * block.expansion, block, 512, layer_nums[3], stride=2)
        self.avg_pool = nn.AvgPool2d()
        self.flatten = nn.Flatten()
        self.fc = nn.Dense(in_channels=input_channel, out_channels=num_classes)

    def construct(self, x):
        x = self.max_pool(self.relu(self.norm(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.flatten(self.avg_pool(x)))


def init_stats(params):
    """Mean and standard deviation of every tensor, by name."""
    return {n: [float(p.asnumpy().mean()), float(p.asnumpy().std())] for n, p in params}


spec = importlib.util.spec_from_file_location("generated", sys.argv[1])
generated = importlib.util.module_from_spec(spec)
spec.loader.exec_module(generated)
net = generated.SeedMSResNet50()
ref = ResNet(ResidualBlock, [3, 4, 6, 3], 10, 2048)
ref_params = list(ref.parameters_and_names())
net_params = list(net.parameters_and_names())
result = {
    "ref_names": [n for n, _ in ref_params],
    "names": [n for n, _ in net_params],
    "shapes_equal": all(
        a.shape == b.shape for (_, a), (_, b) in zip(ref_params, net_params, strict=False)
    ),
    "init": init_stats(net_params),
}
rng = np.random.default_rng(0)
for name, p in ref_params:  # statistics away from 0 and 1, so eval mode uses them
    if name.endswith("moving_mean"):
        p.set_data(Tensor(rng.normal(0.0, 0.1, p.shape).astype(np.float32)))
    elif name.endswith("moving_variance"):
        p.set_data(Tensor(rng.uniform(0.5, 1.5, p.shape).astype(np.float32)))
for (_, src), (_, dst) in zip(ref_params, net_params, strict=True):
    dst.set_data(Tensor(src.asnumpy()))
ref.set_train(False)
net.set_train(False)
x = Tensor(rng.standard_normal((2, 3, 32, 32)).astype(np.float32))
expected, got = ref(x).asnumpy(), net(x).asnumpy()
result["shape"] = list(got.shape)
result["max_diff"] = float(np.abs(expected - got).max())
result["scale"] = float(np.abs(expected).max())
print(json.dumps(result))
'''


def test_summary_figures():
    graph = compile_spec(SPEC)
    s = summarize(graph)
    assert (s.trainable, s.bn_stats, s.output_shape) == (23_528_522, 53_120, (10,))
    assert graph.input_shape == (3, 32, 32)
    same = [n.path for n in graph.nodes if n.attrs.get("padding") == "same"]
    assert len(same) == 1 + 1 + 3 * 16 + 4  # stem conv, max pool, 3 convs a block, shortcuts
    assert [n.path for n in graph.nodes if n.op == "avg_pool2d"] == ["avg_pool"]


def test_the_tutorials_model_loads_name_for_name_and_computes_the_same(tmp_path):
    module = tmp_path / "seed_ms_resnet50.py"
    module.write_text(render_spec(SPEC, "mindspore"))
    script = tmp_path / "reference.py"
    script.write_text(REFERENCE)
    done = subprocess.run(
        [sys.executable, str(script), str(module)],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["names"] == result["ref_names"]  # the same names, in the same order
    assert len(result["names"]) == 5 * 53 + 2  # 53 BN layers x 4 + 53 convs, fc weight + bias
    assert result["names"][:5] == [
        "conv1.weight",
        "norm.moving_mean",  # MindSpore registers a BN's statistics before its scale
        "norm.moving_variance",
        "norm.gamma",
        "norm.beta",
    ]
    assert "layer1.0.down_sample.1.moving_mean" in result["names"]
    assert result["names"][-2:] == ["fc.weight", "fc.bias"]
    assert result["shapes_equal"]
    assert result["shape"] == [2, 10]
    assert result["scale"] > 0.01  # a real output, not zeros
    assert result["max_diff"] <= 1e-5
    init = result["init"]
    for name, (mean, std) in init.items():
        if name.endswith(".weight") and name != "fc.weight":  # conv: Normal(0, 0.02)
            assert abs(mean) < 0.004 and 0.017 < std < 0.023, name
        elif name.endswith("down_sample.1.gamma"):  # the shortcut's BN scale: Normal(1, 0.02)
            assert abs(mean - 1) < 0.006 and 0.015 < std < 0.025, name
        elif name.endswith("gamma"):
            assert (mean, std) == (1.0, 0.0), name
        elif name.endswith("beta"):
            assert (mean, std) == (0.0, 0.0), name


def test_check_agrees_across_frameworks_at_32():
    report = check_spec(SPEC, list(available().values()), check_workers(), {}, None, 2)
    assert [b.backend for b in report.backends] == ["torch", "paddle", "mindspore"]
    assert [b.error for b in report.backends] == [None, None, None]
    assert report.ok, report.to_json()
    assert report.expected == {"trainable": 23_528_522, "bn_stats": 53_120, "output": [2, 10]}
