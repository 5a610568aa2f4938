"""The bundled specs reproduce every figure of networks.md, to the unit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from archspec.analysis import summarize
from archspec.compiler import compile_spec

SPECS = Path(__file__).resolve().parent.parent / "specs"

# networks.md: network -> (trainable, BN stats, MACs), 224x224, 1000 classes
RESNETS = {
    "resnet18": (11_689_512, 9_600, 1_814_073_344),
    "resnet34": (21_797_672, 17_024, 3_663_761_408),
    "resnet50": (25_557_032, 53_120, 4_089_184_256),
    "resnet101": (44_549_160, 105_344, 7_801_405_440),
    "resnet152": (60_192_808, 151_424, 11_513_626_624),
    "resnext50": (25_028_904, 68_224, 4_230_479_872),
    "resnext101_32x8d": (88_791_336, 202_880, 16_414_015_488),
    "resnext101_64x4d": (83_455_272, 202_880, 15_460_270_080),
}
ASYMMNETS = {
    ("asymmnet_large", 1.0): (6_076_608, 24_400, 216_918_096),
    ("asymmnet_large", 0.75): (4_290_672, 18_544, 142_076_416),
    ("asymmnet_large", 0.5): (2_844_976, 12_352, 67_244_264),
    ("asymmnet_large", 0.35): (2_207_376, 8_864, 42_620_072),
    ("asymmnet_small", 1.0): (3_131_896, 12_112, 57_674_416),
    ("asymmnet_small", 0.75): (2_495_128, 9_264, 40_821_136),
    ("asymmnet_small", 0.5): (1_964_472, 6_144, 20_594_280),
    ("asymmnet_small", 0.35): (1_735_032, 4_576, 15_240_656),
}


def figures(spec: str, **overrides) -> tuple[int, int, int, tuple]:
    s = summarize(compile_spec(SPECS / f"{spec}.yaml", overrides))
    return s.trainable, s.bn_stats, s.macs, s.output_shape


@pytest.mark.parametrize(("spec", "expected"), RESNETS.items())
def test_resnet_figures(spec, expected):
    assert figures(spec) == (*expected, (1000,))


@pytest.mark.parametrize(("key", "expected"), ASYMMNETS.items(), ids=lambda v: str(v))
def test_asymmnet_figures(key, expected):
    spec, multiplier = key
    assert figures(spec, multiplier=multiplier) == (*expected, (1000,))


def test_asymmnet_large_16_classes_at_256():
    s = summarize(compile_spec(SPECS / "asymmnet_large.yaml", {"num_classes": 16}, (3, 256, 256)))
    assert (s.trainable, s.output_shape) == (4_816_104, (16,))


def test_asymmnet_large_state_dict_holds_265_tensors():
    graph = compile_spec(SPECS / "asymmnet_large.yaml")
    tensors = sum(len(n.params) + len(n.buffers) for n in graph.nodes)
    assert tensors == 265


def test_asymmnet_reference_names():
    graph = compile_spec(SPECS / "asymmnet_large.yaml")
    names = {f"{n.path}.{t}" for n in graph.nodes for t in n.params}
    for name in [
        "first_block.0.weight",
        "first_block.1.weight",
        "asymm_block.0.dw_conv.conv.weight",
        "asymm_block.1.expand.conv.weight",
        "asymm_block.1.expand.bn.bias",
        "asymm_block.3.se.out.0.weight",
        "asymm_block.3.se.out.2.bias",
        "asymm_block.3.pw_conv_linear.bn.weight",
        "last_block.0.weight",
        "last_block.1.bias",
        "last_block.4.weight",
        "output.weight",
        "output.bias",
    ]:
        assert name in names
    assert "asymm_block.0.expand.conv.weight" not in names  # 16 -> 16: no expansion


def test_resnet_torchvision_names():
    graph = compile_spec(SPECS / "resnet50.yaml")
    names = {f"{n.path}.{t}" for n in graph.nodes for t in [*n.params, *n.buffers]}
    assert {
        "conv1.weight",
        "bn1.running_var",
        "layer1.0.downsample.0.weight",
        "layer1.0.downsample.1.running_mean",
        "layer4.2.conv3.weight",
        "fc.bias",
    } <= names
    assert "layer1.1.downsample.0.weight" not in names
    assert len(names) == 53 * 4 + 53 + 1 + 1  # 53 BN x 4 tensors, 53 convs, fc weight + bias


def test_block_level_figures():
    """networks.md: one block on a 1x64x224x224 input.

    Those two figures split a block differently from the network tables: their
    "trainable" is the convolution weights alone and their "BN stats" all four BN
    tensors (scale, shift, running mean, running variance). Both splits are checked.
    """
    for spec, planes, conv_weights, bn_tensors, trainable, stats in [
        ("resnet18", 128, 229_376, 1_536, 230_144, 768),
        ("resnet50", 32, 23_552, 1_280, 24_192, 640),
    ]:
        graph = compile_block(spec, planes)
        s = summarize(graph)
        assert (s.trainable, s.bn_stats, s.output_shape) == (trainable, stats, (128, 112, 112))
        convs = sum(layer.trainable for layer in s.layers if layer.op == "conv2d")
        bns = sum(
            layer.trainable + layer.bn_stats for layer in s.layers if layer.op == "batchnorm2d"
        )
        assert (convs, bns) == (conv_weights, bn_tensors)


def compile_block(spec: str, planes: int):
    """Compile a one-block network from the spec's own block, via a tiny extending spec."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "block.yaml"
        path.write_text(
            f"extends: {SPECS / (spec + '.yaml')}\n"
            "name: OneBlock\n"
            "input: {channels: 64, height: 224, width: 224}\n"
            "nodes:\n"
            f"  - {{name: block, block: unit, args: {{planes: {planes}, stride: 2}}}}\n"
        )
        return compile_spec(path)


def test_summary_json_matches_table():
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "archspec.cli",
            "summary",
            str(SPECS / "asymmnet_small.yaml"),
            "--set",
            "multiplier=0.5",
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    data = json.loads(out)
    assert (data["trainable"], data["bn_stats"], data["macs"]) == ASYMMNETS[("asymmnet_small", 0.5)]
    assert data["output_shape"] == [1000]
    assert data["params"]["multiplier"] == 0.5
    assert sum(layer["macs"] for layer in data["layers"]) == data["macs"]


def test_summary_table_prints_totals():
    out = subprocess.run(
        [sys.executable, "-m", "archspec.cli", "summary", str(SPECS / "resnet18.yaml")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "layer1.0.conv1" in out
    assert "11,689,512" in out and "1,814,073,344" in out and "N x 1000" in out


BUNDLED = [
    "asymmnet_large",
    "asymmnet_small",
    "convnext_base",
    "convnext_large",
    "convnext_small",
    "convnext_tiny",
    "efficientnet_b0",
    "efficientnet_b1",
    "efficientnet_b2",
    "efficientnet_b3",
    "efficientnet_b4",
    "efficientnet_b5",
    "efficientnet_b6",
    "efficientnet_b7",
    "efficientnet_v2_s",
    "mobilenet_v3_large",
    "mobilenet_v3_small",
    "regnet_y_400mf",
    "resnet101",
    "resnet152",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnext101_32x8d",
    "resnext101_64x4d",
    "resnext50",
    "seed_ms_resnet50",
    "seed_resnext50",
    "shufflenet_v2_x0_5",
    "shufflenet_v2_x1_0",
    "shufflenet_v2_x1_5",
    "shufflenet_v2_x2_0",
    "swin_b",
    "swin_s",
    "swin_t",
    "vit_b_16",
    "vit_b_32",
    "vit_l_16",
    "vit_l_32",
]


def test_validate_all_bundled_specs():
    specs = sorted(SPECS.glob("*.yaml"))
    assert [p.stem for p in specs] == BUNDLED
    proc = subprocess.run(
        [sys.executable, "-m", "archspec.cli", "validate", *map(str, specs)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("\nok ") + proc.stdout.startswith("ok ") == len(BUNDLED)
