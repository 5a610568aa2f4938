"""`archspec import`, stage 5: the recovered structure as a spec file people read.

A Sequential of calls of one block is written as a `repeat` with its arguments per index
(`2 if i == 0 else 1`); one-line nodes are YAML flow mappings, as the bundled specs are.
The model's own class count (an int constructor argument that is the last layer's `out`,
torchvision's `num_classes`) becomes a network parameter; parameters the importer named
itself carry a comment saying so.
"""

from __future__ import annotations

import keyword
import re
from typing import Any

import yaml

from archspec.spec import SHADOWING

HEADER = """\
# Imported by `archspec import {target}`: blocks are the model's module classes, their
# parameters what differs between instances; module paths are the model's own.
"""


class Expr(str):
    """An expression of the spec's parameters (`planes * 4`, `i == 0`), written as it is;
    a plain str in a node is a string value, written as a string literal (`'batch'`)."""


NOTES = "__notes__"  # a block's (or the network's) comments on its parameters, by name
LAYERS = ("linear", "conv2d")  # the ops whose `out` a constructor argument may set


def network_spec(
    cls: type,
    input_shape,
    blocks: dict,
    nodes: list,
    output: str | None,
    init_args: dict[str, Any] | None = None,
) -> dict:
    """The whole spec as plain data, repeats folded; `init_args` are the model's own
    constructor arguments (what its network parameters may be named after)."""
    spec: dict[str, Any] = {"name": _class_name(cls.__name__)}
    doc = summary(cls)
    if doc:
        spec["doc"] = doc
    c, h, w = input_shape
    spec["input"] = {"channels": c, "height": h, "width": w}
    nodes = fold_repeats(nodes)
    if params := network_params(nodes, init_args or {}, set(blocks)):
        spec["params"] = params
        spec[NOTES] = {k: f"{cls.__name__}'s constructor argument" for k in params}
    if blocks:
        spec["blocks"] = {
            name: {**b, "nodes": fold_repeats(b["nodes"])} for name, b in blocks.items()
        }
    if output:
        spec["output"] = output
    spec["nodes"] = nodes
    return spec


def summary(cls: type) -> str:
    """A class's docstring as a spec's `doc`: its first paragraph, up to an `Args:` list."""
    text = (cls.__doc__ or "").strip().split("\n\n")[0]
    text = re.split(r"\n\s*(?:Args|Arguments|Parameters|Returns|Example)s?:?\s*\n?", text)[0]
    return " ".join(text.split())


def network_params(nodes: list[dict], init_args: dict[str, Any], taken: set[str]) -> dict:
    """The model's class count as a parameter (`num_classes: {type: int, default: 1000}`,
    read by the head as `out: num_classes`); `nodes` are changed in place.

    Conservative on purpose, a literal is better than a misnamed parameter: an int (not
    bool) constructor argument becomes a parameter only when its value is the `out` of the
    last linear or convolution among the top-level nodes (seq items included, blocks not),
    when that value occurs nowhere else among their int literals (call arguments, repeat
    counts, kernel sizes), when no other int argument has that value, and when its name
    is a free identifier (no keyword, builtin, node or block name). So a width that is also
    a stem's `out` stays a literal; only the one value where the argument is meant moves.
    """
    layers = [n for n in _walk(nodes) if n.get("op") in LAYERS]
    if not layers:
        return {}
    value = layers[-1].get("out")
    if type(value) is not int or _ints(nodes).count(value) != 1:
        return {}
    named = [k for k, v in init_args.items() if type(v) is int and v == value]
    if len(named) != 1:
        return {}
    (name,) = named
    names = {n.get(k) for n in _walk(nodes) for k in ("name", "key")}
    if (
        not name.isidentifier()
        or not name.isascii()
        or keyword.iskeyword(name)
        or name.startswith("__")
        or name in SHADOWING
        or name in names | taken
    ):
        return {}
    layers[-1]["out"] = Expr(name)
    return {name: {"type": "int", "default": value}}


def _walk(nodes: list[dict]):
    """Nodes and, after each, its sequence's items, in the order they run."""
    for node in nodes:
        yield node
        yield from _walk(node.get("seq") or [])


def _ints(value) -> list[int]:
    """Every int literal (not bool) in nodes, at any depth."""
    if isinstance(value, dict):
        return [i for v in value.values() for i in _ints(v)]
    if isinstance(value, list):
        return [i for v in value for i in _ints(v)]
    return [value] if type(value) is int else []


def fold_repeats(nodes: list[dict]) -> list[dict]:
    """A `seq` whose items all call one block with arguments: a `repeat` of that block."""
    out = []
    for node in nodes:
        if node.get("seq"):  # a sequence's own items first (stages within a sequence)
            node = {**node, "seq": fold_repeats(node["seq"])}
        items = node.get("seq")
        blocks = {i.get("block") for i in items or []}
        key = _key_per_index([i.get("key") for i in items or []])
        if (
            items
            and len(items) > 1
            and len(blocks) == 1
            and None not in blocks
            and not any(set(i) - {"block", "args", "key"} for i in items)
            and key is not False
            and not (key and "key" in node)  # a keyed item: its own key, not its items'
        ):
            rest = {k: v for k, v in node.items() if k != "seq"}
            args = _per_index([i.get("args", {}) for i in items])
            node = {**rest, "block": items[0]["block"], "repeat": len(items)}
            if key:
                node = (
                    {"name": node.pop("name"), "key": key, **node}
                    if "name" in node
                    else {"key": key, **node}
                )
            if args:
                node["args"] = args
        out.append(node)
    return out


def _key_per_index(keys: list) -> Expr | bool | None:
    """The items' keys as one expression of `i` (`'encoder_layer_' + str(i)`); None when
    they are the positions; False when no expression says them."""
    if all(k is None for k in keys):
        return None
    texts = [k[1:-1] if isinstance(k, str) and len(k) > 1 else None for k in keys]
    prefix = texts[0][:-1] if texts[0] and texts[0].endswith("0") else None
    if prefix is None or texts != [f"{prefix}{i}" for i in range(len(texts))]:
        return False
    return Expr(f"{prefix!r} + str(i)")


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
            out[key] = Expr("i == 0" if values[0] else "i != 0")
        elif len({repr(v) for v in values[1:]}) == 1:
            out[key] = Expr(f"{_lit(values[0])} if i == 0 else {_lit(values[1])}")
        else:
            out[key] = Expr(f"[{', '.join(_lit(v) for v in values)}][i]")
    return out


def _lit(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Expr):
        return f"({value})" if not value.isidentifier() else str(value)
    return repr(value)


REFERENCES = ("name", "op", "block", "inputs", "key", "seq")  # names, not values


def _written(node):
    """A node's values as the spec reads them: expressions as they are, strings quoted."""
    if isinstance(node, list):
        return [_written(n) for n in node]
    if not isinstance(node, dict):
        return node
    return {k: (_name(v) if k in REFERENCES and k != "seq" else _value(v)) for k, v in node.items()}


def _value(value):
    if isinstance(value, Expr):
        return str(value)
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, list):
        return [_written(v) if isinstance(v, dict) else _value(v) for v in value]
    if isinstance(value, dict):
        return {k: _value(v) for k, v in value.items()}
    return value


def _class_name(name: str) -> str:
    return name if name[:1].isupper() else name[:1].upper() + name[1:]


# -- YAML ------------------------------------------------------------------------------------
def spec_text(spec: dict, target: str) -> str:
    """The spec as YAML: blocks and nodes one per line where they fit."""
    lines = HEADER.format(target=target).splitlines()
    for key, value in spec.items():
        if key == NOTES:
            continue
        if key == "params":  # the network's: one per line, as the bundled specs write them
            lines.append("")
            lines += _params(value, spec.get(NOTES, {}), 0, always=True)
        elif key == "blocks":
            lines.append("")
            lines.append("blocks:")
            for name, block in value.items():
                lines += _block(name, block)
        elif key == "nodes":
            lines.append("")
            lines.append("nodes:")
            lines += _nodes(_written(value), 2)
        else:
            lines.append(f"{key}: {_flow(value)}")
    return "\n".join(lines) + "\n"


def _block(name: str, block: dict) -> list[str]:
    lines = [f"  {name}:"]
    for key, value in block.items():
        if key == "nodes":
            lines.append("    nodes:")
            lines += _nodes(_written(value), 6)
        elif key == "params":
            lines += _params(value, block.get(NOTES, {}), 4)
        elif key != NOTES:
            lines.append(f"    {key}: {_flow(value)}")
    return lines


def _params(params: dict, notes: dict[str, str], indent: int, always=False) -> list[str]:
    """`params:` on one line, or one per line where a comment says how one was named."""
    pad = " " * indent
    if not always and not any(k in notes for k in params):
        return [f"{pad}params: {_flow(params)}"]
    lines = [f"{pad}params:"]
    for name, value in params.items():
        line = f"{pad}  {name}: {_flow(value)}"
        lines.append(f"{line}  # {notes[name]}" if name in notes else line)
    return lines


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
    text = yaml.dump(
        value, Dumper=_Dumper, default_flow_style=True, width=10**9, sort_keys=False
    ).strip()
    if text.endswith("\n...") or text.endswith("..."):
        text = text.rsplit("\n", 1)[0].strip()
    return re.sub(r"\s+", " ", text)


class _Dumper(yaml.SafeDumper):
    """YAML with a string holding a single quote (a string literal of the expression
    language, `'batch'`) in double quotes: `"'batch'"`, as the bundled specs write it."""


def _represent_str(dumper, data):
    style = '"' if "'" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", str(data), style=style)


_Dumper.add_representer(str, _represent_str)
_Dumper.add_representer(Expr, _represent_str)


def _name(value):
    """A reference as written: names and keys as they are."""
    return str(value) if isinstance(value, Expr) else value
