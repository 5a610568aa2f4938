"""The generated-module cases every backend must pass: spec, constructor arguments, input.

Shared by the pytest suite (which computes the expected figures with archspec) and by
`backend_worker.py` (which runs one framework, alone in its process, and reports).
"""

from __future__ import annotations

RESNETS = [
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnext50",
    "resnext101_32x8d",
    "resnext101_64x4d",
]
ASYMMNETS = ["asymmnet_large", "asymmnet_small"]
# networks whose reference tests live in their own files (test_<family>.py); here they
# only go through every framework and its compiler, at a small input
MORE = {
    "mobilenet_v3_large": ({}, (3, 64, 64)),
    "mobilenet_v3_small": ({}, (3, 64, 64)),
    "efficientnet_b0": ({}, (3, 32, 32)),
    "efficientnet_v2_s": ({}, (3, 32, 32)),
    "convnext_tiny": ({}, (3, 32, 32)),
    "shufflenet_v2_x1_0": ({}, (3, 32, 32)),
    "seed_resnext50": ({"pool_size": 2}, (3, 64, 64)),  # the 7x7 head window needs 224x224
    "seed_ms_resnet50": ({}, (3, 32, 32)),
    # two layers at 32x32 (a 2x2 patch grid): the same code as twelve
    "vit_b_16": ({"image_size": 32, "num_layers": 2}, (3, 32, 32)),
    # 32x32: a padded, shifted first stage and unshifted whole-map windows after it
    "swin_t": ({"image_size": 32, "embed_dim": 24}, (3, 32, 32)),
}
# the deeper ResNets and ResNeXts: the same generated code as resnet18, resnet50 and
# resnext50 with other block counts (and widths), so CI builds and runs their defaults (their
# state-dict keys are checked against the reference's) and leaves their other head and their
# compiler runs (minutes of GRAPH_MODE and to_static on 100+ layers) to the nightly job
DEEP = ["resnet34", "resnet101", "resnet152", "resnext101_32x8d", "resnext101_64x4d"]
# the variants of those families (other widths and depths, the same code paths): nightly
NIGHTLY = [
    *((spec, {}, (3, 64, 64)) for spec in DEEP),
    *((spec, {"num_classes": 10}, (3, 64, 64)) for spec in DEEP),
    *((f"efficientnet_b{k}", {}, (3, 32, 32)) for k in range(1, 8)),
    *((f"convnext_{size}", {}, (3, 32, 32)) for size in ("small", "base", "large")),
    *((f"shufflenet_v2_x{w}", {}, (3, 32, 32)) for w in ("0_5", "1_5", "2_0")),
    ("vit_b_32", {"image_size": 64, "num_layers": 2}, (3, 64, 64)),
    *((f"vit_l_{p}", {"image_size": 64, "num_layers": 2}, (3, 64, 64)) for p in (16, 32)),
    *((f"swin_{size}", {"image_size": 32}, (3, 32, 32)) for size in ("s", "b")),
]
SPECS = RESNETS + ASYMMNETS

# (spec, constructor arguments, input C x H x W); the first case of each spec is the default
CASES: list[tuple[str, dict, tuple[int, int, int]]] = [
    *((spec, {}, (3, 64, 64)) for spec in SPECS),
    *((spec, {"num_classes": 10}, (3, 64, 64)) for spec in SPECS if spec not in DEEP),
    ("resnet50", {"zero_init_residual": True}, (3, 64, 64)),
    *((spec, {"multiplier": 0.5}, (3, 64, 64)) for spec in ASYMMNETS),
    *((spec, {"asymmrate": 0}, (3, 64, 64)) for spec in ASYMMNETS),
    *((spec, {"asymmrate": 2}, (3, 64, 64)) for spec in ASYMMNETS),
    ("asymmnet_large", {"num_classes": 16}, (3, 256, 256)),
    *((spec, kwargs, shape) for spec, (kwargs, shape) in MORE.items()),
]
# the first case of each spec; in CI it also goes through the framework's compiler, but for
# the DEEP specs (compiled nightly)
FIRST: dict[str, tuple[str, dict, tuple[int, int, int]]] = {}
for _case in CASES:
    FIRST.setdefault(_case[0], _case)
COMPILED = {spec: case for spec, case in FIRST.items() if spec not in DEEP}


def case_id(case: tuple[str, dict, tuple[int, int, int]]) -> str:
    """A readable test id: `asymmnet_large-multiplier=0.5-3x64x64`."""
    spec, kwargs, shape = case
    args = "-".join(f"{k}={v}" for k, v in kwargs.items()) or "defaults"
    return f"{spec}-{args}-{'x'.join(map(str, shape))}"
