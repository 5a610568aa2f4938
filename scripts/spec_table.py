"""Print the README's table of bundled specs from `archspec summary`'s own figures.

    python scripts/spec_table.py           # the markdown table, as the README holds it

tests/test_readme_table.py asserts that the README holds exactly this output, so the table
cannot drift from the specs. Figures: 224x224 input (each spec's own input size where it
names another), each spec's default classes; GFLOPS as torchvision publishes them (MACs,
three decimals).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from archspec.analysis import summarize  # noqa: E402
from archspec.compiler import compile_spec  # noqa: E402

# one row per spec; a spec listed here shows its variants in one row, joined by " / "
VARIANTS = {
    "asymmnet_large": ("multiplier", [1.0, 0.75, 0.5, 0.35]),
    "asymmnet_small": ("multiplier", [1.0, 0.75, 0.5, 0.35]),
}


def figures(spec: Path, overrides: dict) -> tuple[str, ...]:
    s = summarize(compile_spec(spec, overrides))
    shape = "x".join(map(str, s.input_shape))
    out = "x".join(map(str, s.output_shape))
    return (
        f"{s.trainable:,}",
        f"{s.bn_stats:,}",
        f"{s.macs:,}",
        f"{s.macs / 1e9:.3f}",
        shape,
        out,
    )


def natural(path: Path) -> list:
    """resnet18 before resnet101: numbers compare as numbers."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.stem)]


def rows() -> list[str]:
    lines = [
        "| spec | trainable | BN stats | MACs | GFLOPS | input | output |",
        "|---|---|---|---|---|---|---|",
    ]
    for spec in sorted((ROOT / "specs").glob("*.yaml"), key=natural):
        name, settings = spec.stem, [{}]
        if spec.stem in VARIANTS:
            key, values = VARIANTS[spec.stem]
            settings = [{key: v} for v in values]
            name += f" (`--set {key}={'/'.join(map(str, values))}`)"
        columns = zip(*(figures(spec, s) for s in settings), strict=True)
        cells = [" / ".join(dict.fromkeys(c)) for c in columns]
        lines.append(f"| {name} | {' | '.join(cells)} |")
    return lines


def main() -> None:
    print("\n".join(rows()))


if __name__ == "__main__":
    main()
