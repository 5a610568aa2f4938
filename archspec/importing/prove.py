"""`archspec import`, stage 6: the round trip, proved before anything is written.

The spec is compiled and emitted for PyTorch like any other; the emitted module is built
with the spec's defaults, the original model's state dict is loaded into it strictly (key
for key, shape for shape), and both run the same input in eval mode. The spec's static
counts must equal the model's own.
"""

from __future__ import annotations

import tempfile
import types
from dataclasses import dataclass
from pathlib import Path

TOLERANCE = 1e-5  # largest absolute difference of the eval outputs, relative to their scale


@dataclass
class Proof:
    """What the round trip measured."""

    keys: int
    trainable: tuple[int, int]  # (spec, model)
    bn_stats: tuple[int, int]
    difference: float  # largest absolute difference / largest magnitude of the output
    problems: list[str]

    @property
    def ok(self) -> bool:
        """Whether the round trip holds."""
        return not self.problems


def prove(text: str, model, input_shape: tuple[int, ...]) -> Proof:
    """Build the spec's PyTorch module, load the model's weights strictly, compare."""
    import torch

    from archspec.analysis import summarize
    from archspec.backend import available
    from archspec.compiler import compile_spec
    from archspec.emit import module_view

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "imported.yaml"
        path.write_text(text, encoding="utf-8")
        graph = compile_spec(path, input_shape=input_shape)
    backend = available()["torch"]
    view = module_view(graph, backend, [])
    module = types.ModuleType("archspec_imported")
    exec(compile(backend.render(view), "<imported spec>", "exec"), module.__dict__)
    network = getattr(module, next(c.name for c in view.classes if c.is_network))()
    problems: list[str] = []
    state = model.state_dict()
    result = network.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        problems.append(
            f"state-dict keys differ: missing {result.missing_keys[:5]}, "
            f"unexpected {result.unexpected_keys[:5]}"
        )
    totals = summarize(graph)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    bn = sum(
        b.numel()
        for n, b in model.named_buffers()
        if n.rsplit(".", 1)[-1] in ("running_mean", "running_var")
    )
    if totals.trainable != trainable:
        problems.append(f"trainable parameters: spec {totals.trainable:,}, model {trainable:,}")
    if totals.bn_stats != bn:
        problems.append(f"BN statistics: spec {totals.bn_stats:,}, model {bn:,}")
    torch.manual_seed(0)
    x = torch.randn(2, *input_shape)
    model.eval()
    network.eval()
    with torch.no_grad():
        want, got = model(x), network(x)
    scale = float(want.abs().max()) or 1.0
    difference = (
        float((want - got).abs().max()) / scale if want.shape == got.shape else float("inf")
    )
    if not difference <= TOLERANCE:
        problems.append(f"eval outputs differ by {difference:.3g} (tolerance {TOLERANCE:g})")
    return Proof(
        len(state), (totals.trainable, trainable), (totals.bn_stats, bn), difference, problems
    )
