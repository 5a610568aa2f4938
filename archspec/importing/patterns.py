"""`archspec import`, lifting patterns: runs of primitives that one primitive says better,
as the model's authors meant them.

- reshape to (g, C/g, H, W), swap the first two axes, merge them back: `channel_shuffle`
  (torchvision's and timm's `channel_shuffle` functions);
- permute to channels-last, a layer norm over the channels, permute back: `layer_norm2d`
  (torchvision's LayerNorm2d), keyed by the layer norm's module.

A run folds only when nothing else reads its intermediate values.
"""

from __future__ import annotations

from collections import Counter
from itertools import pairwise

from archspec.importing.calls import base


def fold_patterns(lifted: list) -> list:
    """The primitives with every foldable run folded into one."""
    readers = Counter(base(v) for item in lifted for v in item.inputs)
    out: list = []
    k = 0
    while k < len(lifted):
        run = lifted[k : k + 3]
        folded = _fold(run) if len(run) == 3 and _chained(run, readers) else None
        if folded is None:
            out.append(lifted[k])
            k += 1
        else:
            out.append(folded)
            k += 3
    return out


def _chained(run: list, readers: Counter) -> bool:
    """Each item reads the one before only, and the first two have no other reader."""
    return all(b.inputs == [a.name] and readers[a.name] == 1 for a, b in pairwise(run))


def _fold(run: list):
    first, middle, last = run
    if (
        first.op == "permute"
        and first.attrs.get("dims") == [1, 2, 0]
        and middle.op == "layer_norm"
        and len(middle.attrs.get("shape", [])) == 1
        and last.op == "permute"
        and last.attrs.get("dims") == [2, 0, 1]
    ):
        attrs = {k: v for k, v in middle.attrs.items() if k == "eps"}
        return _replace(middle, "layer_norm2d", attrs, first.inputs, last.name)
    if (
        first.op == "reshape"
        and len(first.attrs["shape"]) == 4
        and middle.op == "permute"
        and middle.attrs.get("dims") == [1, 0, 2, 3]
        and last.op == "flatten"
        and last.attrs.get("start", 0) == 0
        and last.attrs.get("end") == 1
    ):
        groups = first.attrs["shape"][0]
        return _replace(first, "channel_shuffle", {"groups": groups}, first.inputs, last.name)
    return None


def _replace(item, op: str, attrs: dict, inputs: list[str], name: str):
    """`item` as `op`, reading `inputs`, under the run's last name (what its readers read)."""
    from dataclasses import replace

    return replace(item, name=name, op=op, attrs=attrs, inputs=inputs)
