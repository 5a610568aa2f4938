"""A hypothesis strategy of random spec *structures*: every construct of the language.

`fuzz_specs.py` draws chains of ops; this draws how specs are put together: blocks that
call blocks (with parameters, lets and checks), `seq` at every depth, `repeat` and
`for_each` at every level (on ops, block calls, sequences and sequence items), `when`
anywhere (on repeats and on sequence items too), `inputs` as names and as expressions,
tables, spec functions, and `extends` (a base file and a spec that overrides it).

Spatial sizes are kept (3x3 convolutions are padded, pools have stride 1) except for a
few stride-2 convolutions, so almost every drawn spec is valid; the rare invalid one
must be refused by `validate` with a located error.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import yaml
from hypothesis import strategies as st

ACTS = ["relu", "relu6", "hardswish", "hardsigmoid", "sigmoid", "identity"]


@dataclass
class Ctx:
    """What an expression may use where a node is drawn."""

    ints: list[str]  # integer names in scope (params, lets, columns, `i`)
    bools: list[str]  # boolean names in scope
    blocks: list[str]  # blocks that may be called here (no recursion)
    depth: int = 0
    in_seq: bool = False
    loops: list[str] = field(default_factory=list)  # loop variables bound here
    unit: str | None = None  # a let naming a block (`block: unit`)

    def inner(self, **changes) -> Ctx:
        """A copy one level deeper."""
        values = {**self.__dict__, "depth": self.depth + 1, **changes}
        return Ctx(**values)


def int_expr(draw, ctx: Ctx, low: int = 1, high: int = 6) -> int | str:
    """A channel count: a literal or an expression of the names in scope (always >= 1)."""
    if not ctx.ints or draw(st.booleans()):
        return draw(st.integers(low, high))
    name = draw(st.sampled_from(ctx.ints))
    form = draw(st.sampled_from(["{n} + 1", "{n} % 4 + 1", "max({n}, 2)", "{n} * 2 % 5 + 1"]))
    return form.format(n=name)


def bool_expr(draw, ctx: Ctx) -> bool | str:
    """A `when` condition."""
    choices = [*ctx.bools, *(f"{n} % 2 == 0" for n in ctx.ints), "true", "false"]
    if "i" in ctx.loops:
        choices.append("i == 0")
    pick = draw(st.sampled_from(choices))
    return {"true": True, "false": False}.get(pick, pick)


@st.composite
def op_node(draw, ctx: Ctx) -> dict:
    """One module op (never a join: those cannot be sequence items)."""
    kind = draw(st.sampled_from(["conv", "conv", "bn", "act", "pool", "dropout", "fn"]))
    if kind == "conv":
        stride = draw(st.sampled_from([1, 1, 1, 2]))
        node = {"op": "conv2d", "out": int_expr(draw, ctx), "kernel": 3, "padding": 1}
        if stride > 1:
            node["stride"] = stride
        if draw(st.booleans()):
            node["kernel"], node["padding"] = 1, 0
        if draw(st.booleans()):
            node["bias"] = False
        if not ctx.loops and not ctx.in_seq and draw(st.integers(0, 5)) == 0:
            node["init"] = {"weight": {"normal": {"std": 0.05}}}
        return node
    if kind == "bn":
        return {"op": "batchnorm2d"}
    if kind == "act":
        return {"op": draw(st.sampled_from(ACTS))}
    if kind == "pool":
        return {
            # max pools stacked on max pools make ties, where frameworks route the
            # gradient to different (equally valid) inputs: the op fuzzer covers them
            "op": "avg_pool2d",
            "kernel": 3,
            "stride": 1,
            "padding": 1,
        }
    if kind == "dropout":
        return {"op": "dropout", "p": 0.25}
    return {"op": "activation", "fn": f"'{draw(st.sampled_from(ACTS))}'"}


@st.composite
def block_call(draw, ctx: Ctx) -> dict:
    """A call of an earlier block, with drawn arguments."""
    name = draw(st.sampled_from(ctx.blocks + ([ctx.unit] if ctx.unit else [])))
    args: dict = {"out": int_expr(draw, ctx)}
    if draw(st.booleans()):
        args["flag"] = bool_expr(draw, ctx)
    return {"block": name, "args": args}


@st.composite
def item(draw, ctx: Ctx) -> dict:
    """A node of any kind, maybe repeated and maybe conditional (names are added later)."""
    kinds = ["op", "op"]
    if ctx.blocks:
        kinds += ["block", "block"]
    if ctx.depth < 3:
        kinds.append("seq")
    kind = draw(st.sampled_from(kinds))
    loop = None
    if ctx.depth < 3 and draw(st.integers(0, 4)) == 0:
        loop = draw(st.sampled_from(["repeat", "for_each"]))
    inner = loop_ctx(ctx, loop)
    if kind == "op":
        node = draw(op_node(inner))
    elif kind == "block":
        node = draw(block_call(inner))
    else:
        count = draw(st.integers(1, 3))
        node = {"seq": [draw(item(inner.inner(in_seq=True))) for _ in range(count)]}
    if loop == "repeat":
        node["repeat"] = draw(st.sampled_from([0, 1, 2, 2]))
    elif loop == "for_each":
        node["for_each"] = "cfg"
    if draw(st.integers(0, 3)) == 0:
        node["when"] = bool_expr(draw, ctx)
    return node


def loop_ctx(ctx: Ctx, loop: str | None) -> Ctx:
    """The names a repeated node's body sees: `i`, and a table's columns."""
    if loop == "repeat":
        return ctx.inner(ints=[*ctx.ints, "i"], loops=[*ctx.loops, "i"], depth=ctx.depth)
    if loop == "for_each":
        return ctx.inner(
            ints=[*ctx.ints, "i", "tc"],
            bools=[*ctx.bools, "tf"],
            loops=[*ctx.loops, "i", "tc", "tf"],
            depth=ctx.depth,
        )
    return ctx


@st.composite
def node_list(draw, ctx: Ctx, low: int = 1, high: int = 4) -> list[dict]:
    """A graph: chained nodes with named branches, residual adds and concatenations."""
    nodes: list[dict] = []

    def add(node: dict) -> str:
        node = {"name": f"n{len(nodes)}", **node}
        nodes.append(node)
        return node["name"]

    for _ in range(draw(st.integers(low, high))):
        pattern = draw(st.sampled_from(["item", "item", "item", "residual", "concat", "gate"]))
        if pattern == "item":
            add(draw(item(ctx)))
        elif pattern == "residual":  # the branch keeps the shape, so the add always fits
            base = add({"op": "identity"})
            add({"op": "batchnorm2d"})
            branch = add({"op": draw(st.sampled_from(ACTS))})
            add({"op": "add", "inputs": [branch, base], **maybe_when(draw, ctx)})
        elif pattern == "concat":
            base = add({"op": "identity"})
            extra = add(
                {
                    "op": "conv2d",
                    "out": int_expr(draw, ctx),
                    "kernel": 1,
                    "inputs": base,
                    **maybe_when(draw, ctx),
                }
            )
            times = draw(st.sampled_from(["1", "2", *(f"{n} % 3" for n in ctx.ints)]))
            inputs = draw(
                st.sampled_from(
                    [
                        [base, extra],
                        f"[{base}] * ({times}) + [{extra}]",
                        f"[{extra}] + [{base}] * ({times})",
                    ]
                )
            )
            add({"op": "concat", "inputs": inputs})
        else:  # squeeze-and-excite style gate: a multiply broadcast over space
            base = add({"op": "identity"})
            add({"op": "global_avg_pool"})
            add({"op": "conv2d", "out": 1, "kernel": 1})  # one gate, broadcast over channels
            gate = add({"op": "sigmoid"})
            add({"op": "multiply", "inputs": [base, gate]})
    return nodes


def maybe_when(draw, ctx: Ctx) -> dict:
    """Sometimes a `when` (an absent node stands for its first input)."""
    return {"when": bool_expr(draw, ctx)} if draw(st.integers(0, 3)) == 0 else {}


@st.composite
def block(draw, index: int, callable_: list[str]) -> dict:
    """Block `B<index>`: `out` and `flag` parameters, a let, a check, a drawn graph."""
    ints = ["out", "in_channels", "mid"]
    ctx = Ctx(ints=ints, bools=["flag"], blocks=callable_)
    spec: dict = {
        "params": {"out": "int", "flag": draw(st.booleans())},
        "let": {
            "mid": draw(st.sampled_from(["out + in_channels % 3", "max(out, 2)", "half(out)"]))
        },
        "checks": [{"expr": "out >= 1", "message": "out must be positive"}],
        "nodes": draw(node_list(ctx)),
    }
    # the block ends on its `out` channels: callers' static channel counts rest on it
    if draw(st.booleans()):
        spec["nodes"].append({"name": "proj", "op": "conv2d", "out": "out", "kernel": 1})
    elif draw(st.integers(0, 2)) == 0:  # or its output is an earlier node
        spec["output"] = draw(st.sampled_from([n["name"] for n in spec["nodes"]]))
    return spec


@st.composite
def structured_specs(draw) -> dict[str, str]:
    """File name -> YAML text of a random spec (`net.yaml`, and `base.yaml` it may extend)."""
    blocks: dict = {}
    for k in range(draw(st.integers(0, 3))):
        blocks[f"B{k}"] = draw(block(k, list(blocks)))
    unit = draw(st.sampled_from(list(blocks))) if blocks and draw(st.booleans()) else None
    ctx = Ctx(ints=["width"], bools=["deep"], blocks=list(blocks), unit="unit" if unit else None)
    spec: dict = {
        "name": "Structure",
        "input": {"channels": draw(st.integers(1, 4)), "height": 8, "width": 8},
        "params": {
            "width": {"type": "int", "default": draw(st.integers(1, 5))},
            "deep": {"type": "bool", "default": draw(st.booleans())},
            "num_classes": {"type": "int", "default": 3},
        },
        "functions": {"half": {"args": ["v"], "expr": "max(v // 2, 1)"}},
        "tables": {
            "cfg": {
                "columns": ["tc", "tf"],
                "rows": [
                    [draw(st.integers(1, 4)), draw(st.booleans())]
                    for _ in range(draw(st.integers(1, 3)))
                ],
            }
        },
        "blocks": blocks,
        "nodes": draw(node_list(ctx, 1, 5)),
    }
    if draw(st.booleans()):
        spec["nodes"] += [
            {"name": "pool", "op": "global_avg_pool"},
            {"name": "flatten", "op": "flatten"},
            {"name": "fc", "op": "linear", "out": "num_classes"},
        ]
    if not blocks:
        del spec["blocks"]
    if unit:
        spec["let"] = {"unit": unit}
    if draw(st.booleans()):
        spec["defaults"] = {"conv2d": {"bias": False}, "batchnorm2d": {"eps": 0.001}}
    if draw(st.booleans()):
        spec["init"] = {
            "conv2d": {"weight": {"kaiming_normal": {"mode": "fan_out", "nonlinearity": "relu"}}},
            "batchnorm2d": {"weight": "ones", "bias": "zeros"},
            "linear": {"weight": {"normal": {"std": 0.01}}, "bias": "zeros"},
        }
    files = {}
    if draw(st.booleans()):  # extends: the base holds everything, the spec overrides
        files["base.yaml"] = dump(spec)
        derived: dict = {"extends": "base.yaml", "name": "Derived"}
        if draw(st.booleans()):
            derived["params"] = {"width": {"default": draw(st.integers(1, 5))}}
        spec = derived
    files["net.yaml"] = dump(spec)
    return files


def dump(spec: dict) -> str:
    """YAML text, keys in the order written."""
    return yaml.safe_dump(spec, sort_keys=False, default_flow_style=None, width=100)
