"""`archspec import` over published models: every bundled network's PyTorch reference
(torchvision's ResNet, ResNeXt, Wide ResNet, EfficientNet and EfficientNetV2, MobileNetV3,
ConvNeXt, ShuffleNetV2, RegNet, ViT and Swin, and the seed tutorial ResNeXt) and timm
architectures chosen for variety. Each becomes a spec whose rebuilt PyTorch module loads
the model's state dict strictly and agrees with it (1e-5 of the output's scale), with the
model's counts; its blocks are the model's module classes (`Name_2` where a class is
built two ways).

Randomly initialised models (nothing is downloaded); 64x64 inputs where the model takes
any size, 224x224 where it needs it (ViT's position embedding, the tutorial's 7x7 pool)."""

from __future__ import annotations

import pytest
import yaml
from test_mobilenet import import_torchvision, import_with_stub

from archspec.importing import import_model
from archspec.importing.prove import TOLERANCE, prove

torch = pytest.importorskip("torch")

TV = "torchvision.models"
# (target, positional argument, input size, the spec's blocks, the spec's lines)
REFERENCES = [
    (f"{TV}:resnet50", "", 64, ["Bottleneck"], 44),
    (f"{TV}:resnext50_32x4d", "", 64, ["Bottleneck"], 45),
    (f"{TV}:wide_resnet50_2", "", 64, ["Bottleneck"], 45),
    (f"{TV}:efficientnet_b0", "", 64, ["MBConv", "MBConv_2", "SqueezeExcitation"], 67),
    (
        f"{TV}:mobilenet_v3_small",
        "",
        64,
        ["InvertedResidual", "InvertedResidual_2", "InvertedResidual_3", "SqueezeExcitation"],
        102,
    ),
    (
        f"{TV}:efficientnet_v2_s",
        "",
        64,
        ["FusedMBConv", "FusedMBConv_2", "MBConv", "SqueezeExcitation"],
        90,
    ),
    (
        f"{TV}:mobilenet_v3_large",
        "",
        64,
        [
            "InvertedResidual",
            "InvertedResidual_2",
            "InvertedResidual_3",
            "InvertedResidual_4",
            "InvertedResidual_5",
            "SqueezeExcitation",
        ],
        140,
    ),
    (f"{TV}:convnext_tiny", "", 64, ["CNBlock"], 44),
    (f"{TV}:shufflenet_v2_x0_5", "", 64, ["InvertedResidual", "InvertedResidual_2"], 88),
    (f"{TV}:vit_b_16", "", 224, ["Encoder", "EncoderBlock"], 44),
    (
        f"{TV}:swin_t",
        "",
        64,
        ["PatchMerging", "ShiftedWindowAttention", "SwinTransformerBlock"],
        104,
    ),
    ("test_seed_resnext50:tutorial_model", "", 224, ["BN_Conv2d", "ResNeXt_Block"], 41),
    (f"{TV}:regnet_y_400mf", "", 64, ["ResBottleneckBlock", "SqueezeExcitation"], 88),
]
POOL = "SelectAdaptivePool2d"
TIMM = [  # residual, inverted residual, squeeze-excite, ghost, multi-branch, plain, ...
    ("resnet50d", ["Bottleneck", "Bottleneck_2", POOL], 94),
    ("efficientnet_b0", ["DepthwiseSeparableConv", "InvertedResidual", POOL, "SqueezeExcite"], 71),
    (
        "mobilenetv3_large_100",
        [
            "ConvBnAct",
            "DepthwiseSeparableConv",
            "InvertedResidual",
            "InvertedResidual_2",
            "InvertedResidual_3",
            "InvertedResidual_4",
            POOL,
            "SqueezeExcite",
        ],
        139,
    ),
    ("mobilenetv2_100", ["DepthwiseSeparableConv", "InvertedResidual", POOL], 57),
    (
        "regnety_002",
        ["Bottleneck", "ClassifierHead", "ConvNormAct", "RegStage", "SEModule", POOL],
        72,
    ),
    (
        "ghostnet_100",
        ["ConvBnAct", "GhostBottleneck", "GhostModule", "GhostModule_2", POOL, "SqueezeExcite"],
        116,
    ),
    ("repvgg_a0", ["ClassifierHead", "ConvNormAct", "RepVggBlock", POOL], 50),
    ("darknet17", ["ClassifierHead", "ConvNormAct", "DarkBlock", "DarkStage", POOL], 45),
    ("vgg11", ["ClassifierHead", "ConvMlp", POOL], 54),
    ("lcnet_050", ["DepthwiseSeparableConv", POOL, "SqueezeExcite"], 54),
    ("resnext26ts", ["BottleneckBlock", "ClassifierHead", "ConvNormAct", POOL], 53),
    ("semnasnet_050", ["DepthwiseSeparableConv", "InvertedResidual", POOL, "SqueezeExcite"], 76),
]


def import_timm():
    """timm (after torchvision: it imports it), with `register_fake` patched out."""
    import_torchvision()
    return import_with_stub("timm")


def assert_round_trip(target, args, size, blocks, lines):
    imported = import_model(target, args, (3, size, size))
    spec = yaml.safe_load(imported.text)
    assert sorted(spec.get("blocks", {})) == blocks
    assert len(imported.text.splitlines()) == lines
    proof = prove(imported.text, imported.model, (3, size, size))
    assert proof.problems == []
    assert proof.keys == len(imported.model.state_dict())
    assert proof.trainable[0] == proof.trainable[1] > 0
    assert proof.bn_stats[0] == proof.bn_stats[1]
    assert proof.difference <= TOLERANCE
    return proof


@pytest.mark.parametrize(("target", "arg", "size", "blocks", "lines"), REFERENCES)
def test_every_bundled_reference_round_trips(target, arg, size, blocks, lines):
    import_torchvision()
    proof = assert_round_trip(target, (arg,) if arg else (), size, blocks, lines)
    if target.startswith("test_seed"):  # networks.md's figures
        assert proof.trainable == (37_574_724, 37_574_724)
        assert proof.bn_stats == (90_752, 90_752)


@pytest.mark.parametrize(("name", "blocks", "lines"), TIMM, ids=[t[0] for t in TIMM])
def test_timm_architectures_round_trip(name, blocks, lines):
    import_timm()
    assert_round_trip("timm:create_model", (name,), 64, blocks, lines)


def test_torchvision_efficientnet_names_parameters_after_its_configuration():
    """MBConv takes an MBConvConfig: its fields (`kernel`, `stride`) and the module's own
    `use_res_connect` name the parameters; `(kernel - 1) // 2` is the padding; the width
    its constructor computes is a `let`."""
    import_torchvision()
    spec = yaml.safe_load(import_model(f"{TV}:efficientnet_b0", (), (3, 64, 64)).text)
    block = spec["blocks"]["MBConv_2"]
    assert block["params"] == {
        "input_channels": "int",
        "kernel": "int",
        "stride": "int",
        "out_channels_": "int",  # a reserved name takes a trailing `_`
        "stochastic_depth_prob": "float",
        "use_res_connect": "bool",
    }
    # the expanded width, written three times, is the `let` MBConv.__init__ names
    assert block["let"] == {"expanded_channels": "input_channels * 6"}
    depthwise = block["nodes"][0]["seq"][1]["seq"][0]
    assert depthwise == {
        "op": "conv2d",
        "out": "expanded_channels",
        "kernel": "kernel",
        "stride": "stride",
        "padding": "(kernel - 1) // 2",
        "groups": "expanded_channels",
        "bias": False,
    }
    assert [n.get("when") for n in block["nodes"][1:]] == ["use_res_connect"] * 2


def test_torchvision_shufflenet_and_convnext_read_as_their_authors_wrote_them():
    """ShuffleNet's view-transpose-view is a `channel_shuffle`; ConvNeXt's LayerNorm2d
    (permute, layer norm, permute) is a `layer_norm2d`, its layer scale a parameter."""
    import_torchvision()
    shuffle = yaml.safe_load(import_model(f"{TV}:shufflenet_v2_x0_5", (), (3, 64, 64)).text)
    unit = shuffle["blocks"]["InvertedResidual_2"]["nodes"]  # stride 1: half the channels
    assert [n.get("op") for n in unit] == ["chunk", None, "concat", "channel_shuffle"]
    assert unit[1]["inputs"] == "chunk[1]"
    assert unit[2]["inputs"] == ["chunk[0]", "branch2"]
    assert unit[3]["groups"] == 2
    convnext = yaml.safe_load(import_model(f"{TV}:convnext_tiny", (), (3, 64, 64)).text)
    block = convnext["blocks"]["CNBlock"]["nodes"]
    assert block[0] == {"name": "layer_scale", "op": "parameter", "shape": ["dim", 1, 1]}
    stem = convnext["nodes"][0]["seq"][0]["seq"]
    assert stem[1] == {"op": "layer_norm2d", "eps": 1e-6}


def test_swin_window_attention_is_written_with_the_window_ops():
    """torchvision keeps `shifted_window_attention` whole under torch.fx: it is written as
    the spec's window primitives, the shift and its mask present only where the blocks
    shift (one flag), the padding where the map is not whole windows (64x64: 16 -> 21)."""
    import_torchvision()
    spec = yaml.safe_load(import_model(f"{TV}:swin_t", (), (3, 64, 64)).text)
    attention = spec["blocks"]["ShiftedWindowAttention"]
    ops = [n["op"] for n in attention["nodes"]]
    assert ops[:4] == ["parameter", "relative_position_index", "pad", "roll"]
    assert ops[-3:] == ["reshape", "roll", "slice"]
    assert ops.count("window_mask") == 1 and ops.count("matmul") == 2
    flags = {n["name"]: n.get("when") for n in attention["nodes"]}
    assert flags["roll"] == flags["window_mask"] == flags["roll_1"] == "has_roll"
    assert attention["nodes"][0] == {
        "name": "relative_position_bias_table",
        "op": "parameter",
        "shape": [169, "dim // 32"],
    }


def test_unsupported_calls_of_a_published_model_are_reported_at_once():
    """torchvision's MaxViT: every einsum, batch-moving view and unsqueeze is listed, each
    with its module path and the model's line; nothing stops at the first."""
    from archspec.errors import SpecError

    import_torchvision()
    with pytest.raises(SpecError) as caught:
        import_model(f"{TV}:maxvit_t", (), (3, 224, 224))
    lines = str(caught.value).splitlines()
    einsum = [line for line in lines if "torch.functional.einsum" in line]
    assert len(einsum) == 44  # two per attention, 22 attentions
    assert all("maxvit.py:" in line for line in einsum)
    assert len(lines) == 176
