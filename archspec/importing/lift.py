"""`archspec import`, stage 2: every traced call as an archspec primitive with its
attributes (a Conv2d's kernel, stride, padding, groups, bias; a BatchNorm2d's eps and
momentum; `torch.flatten(x, 1)`; `out += identity`), or a record of why it cannot be one.

Every call is looked at, so one run reports every unsupported op, each with its module
path, the PyTorch call and the line that makes it. Axes are per sample in a spec (the
batch axis is not counted): PyTorch's dim 1 is axis 0.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from archspec.errors import Diagnostic, Pos
from archspec.importing.calls import (
    LIFTED_AS,
    THROUGH,
    Alias,
    base,
    lift_function,
    lift_method,
    own_weight_functions,
    tensor_args,
    value_of,
)
from archspec.importing.modules import Unsupported, lift_module
from archspec.importing.patterns import fold_patterns
from archspec.importing.windows import expansion


@dataclass
class Lifted:
    """One primitive: the fx node it comes from and where it sits in the module tree."""

    name: str  # the fx node's name (unique)
    op: str
    attrs: dict[str, Any]
    inputs: list[str]  # fx names of the tensors it reads, in order
    scopes: list[tuple[str, type]]  # enclosing modules, outermost first: (path, class)
    leaf: str | None = None  # the leaf module's path (a call_module), else None
    params: list[str] = field(default_factory=list)  # the leaf's parameters and buffers


def lift(captured) -> tuple[list[Lifted], str, str, list[Diagnostic]]:
    """The graph's primitives in execution order, its input and output names, and one
    diagnostic per unsupported call."""
    graph = captured.graph
    modules = dict(captured.model.named_modules())
    lifted: list[Lifted] = []
    problems: list[Diagnostic] = []
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    output = next(n for n in graph.nodes if n.op == "output")
    if len(placeholders) != 1:
        names = ", ".join(n.name for n in placeholders)
        problems.append(
            Diagnostic(
                Pos(captured.target),
                f"forward takes {len(placeholders)} inputs ({names}): a spec takes one",
            )
        )
    skipped = shape_checks(graph) | weight_reads(graph) | _unused(graph)
    aliases: dict[str, str] = {}
    for node in graph.nodes:
        if node.op in ("placeholder", "output") or node in skipped:
            continue
        try:
            found = _lift_node(node, modules)
        except Unsupported as exc:
            problems.append(_problem(node, captured.target, str(exc), modules))
            continue
        if isinstance(found, Alias):
            aliases[node.name] = _resolve(aliases, found.of)
            continue
        for item in found:
            item.inputs = [_resolve(aliases, v) for v in item.inputs]
            if item.name == node.name:  # what a later `node[k]` or `x, _ =` reads
                node.meta[LIFTED_AS] = item.op
        lifted += found
    lifted = fold_patterns(_dissolve_owners(lifted, modules, problems, captured.target))
    result = output.args[0]
    x = placeholders[0].name if placeholders else ""
    if not hasattr(result, "name"):
        problems.append(
            Diagnostic(
                Pos(captured.target),
                f"forward returns {type(result).__name__}: a spec returns one tensor",
            )
        )
        return lifted, x, "", problems
    return lifted, x, _resolve(aliases, result.name), problems


def _resolve(aliases: dict[str, str], value: str) -> str:
    """The value an alias stands for (`chunk_1[0]` for a part of a chunk)."""
    value_base = base(value)
    return aliases.get(value_base, value_base) + value[len(value_base) :]


def shape_checks(graph) -> set:
    """`torch._assert` calls and what only they read (`x.shape[1] == c`): checks of the
    traced shapes, which the spec's own shape inference makes for every instance."""
    import torch

    checks = {n for n in graph.nodes if n.op == "call_function" and n.target is torch._assert}
    for node in reversed(graph.nodes):  # users come after what they use
        if node.op not in ("placeholder", "output") and node.users and set(node.users) <= checks:
            checks.add(node)
    return checks


def weight_reads(graph) -> set:
    """The reads of a module's weights that only a function running its op makes
    (`self.weight` in `F.layer_norm(x, ..., self.weight, self.bias)`, through `.to()`)."""
    own = own_weight_functions()
    calls = {
        n
        for n in graph.nodes
        if n.op == "call_function" and (n.target in own or expansion(n.target) is not None)
    }
    found: set = set()
    for call in calls:
        for arg in (*call.args, *call.kwargs.values()):
            chain = []
            while hasattr(arg, "op") and arg.op == "call_method" and arg.target in THROUGH:
                chain.append(arg)
                arg = arg.args[0]
            if hasattr(arg, "op") and arg.op == "get_attr":
                found |= {arg, *chain}
    return {n for n in found if set(n.users) <= found | calls}


def _unused(graph) -> set:
    """Values nothing reads: the attention weights of `x, _ = attention(x, x, x)`."""
    return {
        n
        for n in graph.nodes
        if not n.users and (n.op == "get_attr" or n.target is operator.getitem)
    }


def _without_defaults(op: str, attrs: dict[str, Any]) -> dict[str, Any]:
    """The attributes that differ from the op's defaults (as a person writes a spec)."""
    from archspec.ops import OPS

    declared = OPS[op].attrs
    return {
        k: v
        for k, v in attrs.items()
        if k not in declared or declared[k].default != v or declared[k].required
    }


def _lift_node(node, modules: dict[str, Any]) -> list[Lifted] | Alias:
    """One call as primitives: usually one; a spatial mean that drops its axes is a
    global pool and a flatten (the flatten keeps the call's name: its readers read it)."""
    expand = expansion(node.target) if node.op == "call_function" else None
    if expand is not None:  # a library function torch.fx keeps whole: its primitives
        scopes = _scopes(node)

        def make(name, op, attrs, inputs, leaf, params):
            return Lifted(name, op, _without_defaults(op, attrs), inputs, scopes, leaf, params)

        return expand(node, make)
    item = _lift_call(node, modules)
    if isinstance(item, Alias):
        return item
    item.attrs = _without_defaults(item.op, item.attrs)
    if item.op != "global_avg_pool" or not item.attrs.pop("drop_axes", False):
        return [item]
    pool = Lifted(f"{item.name}_pool", item.op, {}, item.inputs, item.scopes)
    return [pool, Lifted(item.name, "flatten", {}, [pool.name], item.scopes)]


def _lift_call(node, modules: dict[str, Any]) -> Lifted | Alias:
    scopes = _scopes(node)
    if node.op == "call_module":
        module = modules[node.target]
        if type(module) in (_identity(),):
            return Alias(tensor_args(node, 1)[0])  # nothing to write, nothing to load
        op, attrs = lift_module(module)
        return _owned(node.name, op, attrs, _module_inputs(node, op), scopes, node.target, module)
    if node.op == "get_attr":
        return _parameter(node, modules, scopes)
    found = lift_function(node) if node.op == "call_function" else lift_method(node)
    if isinstance(found, Alias):
        return found
    if found.owner is not None:
        owner = modules[found.owner]
        return _owned(node.name, found.op, found.attrs, found.inputs, scopes, found.owner, owner)
    return Lifted(node.name, found.op, found.attrs, found.inputs, scopes)


def _scopes(node) -> list[tuple[str, type]]:
    """The modules a call ran in, outermost first: (path, class)."""
    return [(path, cls) for path, cls in node.meta.get("nn_module_stack", {}).values()]


def _owned(name, op, attrs, inputs, scopes, path: str, module) -> Lifted:
    """A primitive that is a module's (named and keyed by its path): the module is not a
    scope of its own, and its parameterless helpers join its parent (`_dissolve_owners`)."""
    while scopes and scopes[-1][0] == path:
        scopes = scopes[:-1]
    params = [n for n, _ in module.named_parameters()] + [n for n, _ in module.named_buffers()]
    return Lifted(name, op, attrs, inputs, scopes, path, params)


def _module_inputs(node, op: str) -> list[str]:
    """A module call's tensor inputs: attention's query, key and value must be one tensor."""
    if op != "multihead_attention":
        return tensor_args(node, 1)
    query = node.args[0] if node.args else node.kwargs.get("query")
    rest = [*node.args[1:3], node.kwargs.get("key"), node.kwargs.get("value")]
    if any(r is not None and r is not query for r in rest):
        raise Unsupported(
            "attention whose query, key and value differ (a spec's is self-attention)"
        )
    if node.kwargs.get("need_weights", True) or node.kwargs.get("attn_mask") is not None:
        raise Unsupported("attention returning its weights or taking a mask")
    return [query.name]


def _parameter(node, modules: dict[str, Any], scopes) -> Lifted:
    """A learnable tensor read in forward (a class token, a layer scale): a `parameter`
    node in the module that owns it; a leading 1 is the spec's batch axis."""
    path, _, attr = node.target.rpartition(".")
    owner = modules.get(path)
    if owner is None or attr not in dict(owner.named_parameters(recurse=False)):
        raise Unsupported(f"reading `{node.target}` (not a parameter) directly in forward")
    shape = list(value_of(node).shape)
    attrs: dict[str, Any] = {"shape": shape}
    if len(shape) >= 3 and shape[0] == 1:
        attrs = {"shape": shape[1:], "batch_axis": True}
    return Lifted(node.name, "parameter", attrs, [], scopes, node.target, [attr])


def _dissolve_owners(
    lifted: list[Lifted], modules: dict[str, Any], problems: list[Diagnostic], target: str
) -> list[Lifted]:
    """A module whose op a function runs on its weights is that op, not a scope: what
    else it calls joins its parent, unnamed (only parameterless helpers can)."""
    owners = {i.leaf for i in lifted if i.leaf is not None and i.leaf in _scope_paths(lifted)}
    for item in lifted:
        inside = [p for p, _ in item.scopes if p in owners]
        if not inside:
            continue
        item.scopes = [(p, c) for p, c in item.scopes if p not in owners]
        if item.leaf is not None and item.leaf not in owners:
            if item.params:
                problems.append(
                    Diagnostic(
                        Pos(target),
                        f"`{item.leaf}`: weights inside `{inside[-1]}`, "
                        "whose own op runs on its weights in forward",
                    )
                )
            item.leaf = None
    return lifted


def _scope_paths(lifted: list[Lifted]) -> set[str]:
    return {p for item in lifted for p, _ in item.scopes}


@cache
def _identity() -> type:
    from torch import nn

    return nn.Identity


def _problem(node, target: str, reason: str, modules: dict[str, Any]) -> Diagnostic:
    """`path`: the PyTorch call: why, at the line of the model's code that makes it."""
    stack = list(node.meta.get("nn_module_stack", {}).keys())
    where = node.target if node.op == "call_module" else (stack[-1] if stack else "(top level)")
    return Diagnostic(
        _stack_pos(node) or Pos(target), f"`{where}`: {_describe(node, modules)}: {reason}"
    )


def _describe(node, modules: dict[str, Any]) -> str:
    """The call as the model's code writes it: `nn.PixelShuffle`, `torch.cumsum`, `Tensor.roll`."""
    if node.op == "call_module":
        cls = type(modules[node.target])
        return f"{cls.__module__}.{cls.__name__}"
    if node.op == "call_method":
        return f"Tensor.{node.target}"
    target = node.target
    name = getattr(target, "__name__", None) or str(target)
    module = getattr(target, "__module__", None) or ""
    if module in ("", "torch._VariableFunctionsClass", "torch._C._VariableFunctions"):
        module = "torch"
    return name if module == "_operator" else f"{module}.{name}"


def _stack_pos(node) -> Pos | None:
    """The innermost line of the model's own code in the node's recorded stack trace."""
    from archspec.importing.capture import is_library

    found = None
    for line in (node.stack_trace or "").splitlines():
        line = line.strip()
        if line.startswith('File "'):
            file, _, rest = line[6:].partition('", line ')
            number = rest.split(",")[0]
            if number.isdigit() and not is_library(file):
                found = Pos(file, int(number), 1)
    return found
