"""`archspec import` over published models: prints, per model, whether the round trip
holds, the spec's blocks and lines, the state-dict keys loaded, the largest output
difference and the time taken; or, for a model that cannot be imported, how many calls
were reported and the first reason.

    python scripts/import_zoo.py                 # torchvision's references, timm's set
    python scripts/import_zoo.py timm:create_model=convnext_atto torchvision.models:densenet121

Models are randomly initialised (nothing is downloaded); inputs are 3x64x64, or 3x224x224
for the models that need that size. torchvision and timm import with
`torch.library.register_fake` patched out (their compiled ops are built for another torch).
"""

from __future__ import annotations

import sys
import time

TV = "torchvision.models"
MODELS = [
    *(
        f"{TV}:{name}"
        for name in (
            "resnet50",
            "resnext50_32x4d",
            "wide_resnet50_2",
            "efficientnet_b0",
            "efficientnet_v2_s",
            "mobilenet_v3_small",
            "mobilenet_v3_large",
            "convnext_tiny",
            "shufflenet_v2_x0_5",
            "regnet_y_400mf",
            "vit_b_16",
            "swin_t",
        )
    ),
    *(
        f"timm:create_model={name}"
        for name in (
            "resnet50d",
            "efficientnet_b0",
            "mobilenetv3_large_100",
            "mobilenetv2_100",
            "regnety_002",
            "ghostnet_100",
            "repvgg_a0",
            "darknet17",
            "vgg11",
            "lcnet_050",
            "resnext26ts",
            "semnasnet_050",
        )
    ),
]
FIXED_SIZE = ("vit_", "seed")  # models whose input must be 224x224


def main(argv: list[str]) -> int:
    import torch

    original = torch.library.register_fake
    torch.library.register_fake = lambda name, fn=None, *a, **k: fn or (lambda f: f)
    try:
        import timm  # noqa: F401
        import torchvision  # noqa: F401
    finally:
        torch.library.register_fake = original
    import yaml

    from archspec.errors import SpecError
    from archspec.importing import import_model
    from archspec.importing.prove import prove

    print(f"{'model':42} {'result':8} {'blocks':>6} {'lines':>5} {'keys':>5} {'diff':>8} {'s':>5}")
    for entry in argv or MODELS:
        target, _, arg = entry.partition("=")
        size = 224 if any(k in entry for k in FIXED_SIZE) else 64
        shape = (3, size, size)
        start = time.perf_counter()
        try:
            imported = import_model(target, (arg,) if arg else (), shape)
            proof = prove(imported.text, imported.model, shape)
        except SpecError as exc:
            first = exc.diagnostics[0].message[:60]
            print(f"{entry:42} refused  {len(exc.diagnostics):>6} calls: {first}")
            continue
        blocks = len(yaml.safe_load(imported.text).get("blocks", {}))
        lines = len(imported.text.splitlines())
        result = "agrees" if proof.ok else "DIFFERS"
        took = time.perf_counter() - start
        print(
            f"{entry:42} {result:8} {blocks:>6} {lines:>5} {proof.keys:>5} "
            f"{proof.difference:>8.1e} {took:>5.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
