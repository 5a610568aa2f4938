"""Static analysis of a bound graph: per-layer and total parameters, BN statistics, MACs.

Reads only the IR; imports no deep-learning framework.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from archspec.ir import Graph


@dataclass(frozen=True)
class Layer:
    """One row of a summary."""

    path: str
    op: str
    shape: tuple[int, ...]
    trainable: int
    bn_stats: int
    macs: int


@dataclass(frozen=True)
class Summary:
    """A network's figures: what `archspec summary` prints and tests assert."""

    name: str
    params: dict
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    layers: list[Layer]
    trainable: int
    bn_stats: int
    macs: int
    activations: int  # elements of every op output, for one sample

    def to_json(self) -> dict:
        """A plain-data form for `--json` and for tools."""
        data = asdict(self)
        data["layers"] = [asdict(layer) for layer in self.layers]
        return data


def summarize(graph: Graph) -> Summary:
    """Count everything from the IR alone."""
    layers = [
        Layer(
            n.path,
            n.op,
            n.shape,
            sum(math.prod(s) for s in n.params.values()),
            sum(math.prod(s) for s in n.buffers.values()),
            n.macs,
        )
        for n in graph.nodes
    ]
    return Summary(
        graph.name,
        dict(graph.params),
        graph.input_shape,
        graph.output.shape or (),
        layers,
        sum(layer.trainable for layer in layers),
        sum(layer.bn_stats for layer in layers),
        sum(layer.macs for layer in layers),
        sum(math.prod(n.shape) for n in graph.nodes),
    )
