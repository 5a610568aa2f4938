"""`archspec import`, stage 5: the recovered structure as a spec file people read.

A Sequential of calls of one block is written as a `repeat` with its arguments per index
(`2 if i == 0 else 1`); one-line nodes are YAML flow mappings, as the bundled specs are.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

HEADER = """\
# Imported by `archspec import {target}`: blocks are the model's module classes, their
# parameters what differs between instances; module paths are the model's own.
"""


def network_spec(cls: type, input_shape, blocks: dict, nodes: list, output: str | None) -> dict:
    """The whole spec as plain data, repeats folded."""
    spec: dict[str, Any] = {"name": _class_name(cls.__name__)}
    doc = " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split())
    if doc:
        spec["doc"] = doc
    c, h, w = input_shape
    spec["input"] = {"channels": c, "height": h, "width": w}
    if blocks:
        spec["blocks"] = {
            name: {**b, "nodes": fold_repeats(b["nodes"])} for name, b in blocks.items()
        }
    if output:
        spec["output"] = output
    spec["nodes"] = fold_repeats(nodes)
    return spec


def fold_repeats(nodes: list[dict]) -> list[dict]:
    """A `seq` whose items all call one block with arguments: a `repeat` of that block."""
    out = []
    for node in nodes:
        items = node.get("seq")
        blocks = {i.get("block") for i in items or []}
        if (
            items
            and len(items) > 1
            and len(blocks) == 1
            and None not in blocks
            and not any(set(i) - {"block", "args"} for i in items)
        ):
            rest = {k: v for k, v in node.items() if k != "seq"}
            args = _per_index([i.get("args", {}) for i in items])
            node = {**rest, "block": items[0]["block"], "repeat": len(items)}
            if args:
                node["args"] = args
        out.append(node)
    return out


def _per_index(calls: list[dict]) -> dict:
    """Each argument as one value, or an expression of the index `i`."""
    out = {}
    for key in calls[0]:
        values = [c.get(key) for c in calls]
        if all(v == values[0] and type(v) is type(values[0]) for v in values):
            out[key] = values[0]
        elif (
            all(isinstance(v, bool) for v in values)
            and values[0] != values[1]
            and len(set(values[1:])) == 1
        ):
            out[key] = "i == 0" if values[0] else "i != 0"
        elif len({repr(v) for v in values[1:]}) == 1:
            out[key] = f"{_lit(values[0])} if i == 0 else {_lit(values[1])}"
        else:
            out[key] = f"[{', '.join(_lit(v) for v in values)}][i]"
    return out


def _lit(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def _class_name(name: str) -> str:
    return name if name[:1].isupper() else name[:1].upper() + name[1:]


# -- YAML ------------------------------------------------------------------------------------
def spec_text(spec: dict, target: str) -> str:
    """The spec as YAML: blocks and nodes one per line where they fit."""
    lines = HEADER.format(target=target).splitlines()
    for key, value in spec.items():
        if key == "blocks":
            lines.append("")
            lines.append("blocks:")
            for name, block in value.items():
                lines.append(f"  {name}:")
                for bkey, bvalue in block.items():
                    if bkey == "nodes":
                        lines.append("    nodes:")
                        lines += _nodes(bvalue, 6)
                    else:
                        lines.append(f"    {bkey}: {_flow(bvalue)}")
        elif key == "nodes":
            lines.append("")
            lines.append("nodes:")
            lines += _nodes(value, 2)
        else:
            lines.append(f"{key}: {_flow(value)}")
    return "\n".join(lines) + "\n"


def _nodes(nodes: list[dict], indent: int) -> list[str]:
    pad = " " * indent
    out = []
    for node in nodes:
        one = f"{pad}- {_flow(node)}"
        if len(one) <= 100 or "seq" not in node:
            out.append(one)
            continue
        rest = {k: v for k, v in node.items() if k != "seq"}
        first = True
        for k, v in rest.items():
            out.append(f"{pad}{'- ' if first else '  '}{k}: {_flow(v)}")
            first = False
        out.append(f"{pad}{'- ' if first else '  '}seq:")
        out += _nodes(node["seq"], indent + 4)
    return out


def _flow(value) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10**9, sort_keys=False).strip()
    if text.endswith("\n...") or text.endswith("..."):
        text = text.rsplit("\n", 1)[0].strip()
    return re.sub(r"\s+", " ", text)
