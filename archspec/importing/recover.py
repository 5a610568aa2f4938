"""`archspec import`, stage 3: the model's structure, recovered from its module tree.

Every module the trace entered becomes a scope holding, in execution order, the
primitives it called and the modules it called. A plain `nn.Sequential` becomes a `seq`;
every other module class becomes one spec block (its constant structure written once),
whose parameters are what differs between its instances, named after the constructor's
arguments where their values match (`planes`, `stride`, `planes * 4`), and whose
children present in some instances only are kept under a flag (`when: downsample`). A
`Sequential` of instances of one block is a `repeat`, its arguments written per index
(`2 if i == 0 else 1`). Module paths are the model's own, so its state dict loads key for key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from archspec.errors import Diagnostic, Pos
from archspec.importing.calls import base
from archspec.importing.lift import Lifted


@dataclass
class Scope:
    """One module the trace entered: what it called, in order."""

    path: str
    cls: type
    module: Any
    entries: list[Lifted | Scope] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)  # fx values it reads from outside
    output: str = ""  # the fx value it hands on

    @property
    def produced(self) -> set[str]:
        """The fx values computed inside the scope (its own calls and its children's)."""
        found = set()
        for e in self.entries:
            found |= e.produced if isinstance(e, Scope) else {e.name}
        return found


def scope_tree(model, lifted: list[Lifted], problems: list[Diagnostic], target: str) -> Scope:
    """Nest the primitives in the scopes of the modules that called them."""
    modules = dict(model.named_modules())
    root = Scope("", type(model), model)
    by_path = {"": root}
    closed: set[str] = set()
    open_chain: list[str] = [""]
    for item in lifted:
        chain = [""] + [p for p, _ in item.scopes]
        # leave the scopes that are not on this item's chain: once left, never re-entered
        while open_chain[-1] not in chain:
            closed.add(open_chain.pop())
        for path, cls in item.scopes:
            if path in by_path:
                continue
            if path in closed:
                problems.append(Diagnostic(Pos(target), f"`{path}` is called more than once"))
                continue
            parent = by_path[open_chain[-1]]
            scope = Scope(path, cls, modules.get(path))
            parent.entries.append(scope)
            by_path[path] = scope
            open_chain.append(path)
        by_path[open_chain[-1]].entries.append(item)
    return root


def wire(scope: Scope, consumers: dict[str, list[str]], graph_output: str) -> None:
    """Each scope's outside inputs and its output (the value read after it ends)."""
    for e in scope.entries:
        if isinstance(e, Scope):
            wire(e, consumers, graph_output)
    produced = scope.produced
    reads: list[str] = []
    for e in scope.entries:
        for value in e.inputs:
            if base(value) not in produced and value not in reads:
                reads.append(value)
    scope.inputs = reads
    leaving = [
        v
        for v in _in_order(scope)
        if v == graph_output or any(c not in produced for c in consumers.get(v, []))
    ]
    scope.output = leaving[-1] if leaving else ""


def _in_order(scope: Scope) -> list[str]:
    out = []
    for e in scope.entries:
        out += _in_order(e) if isinstance(e, Scope) else [e.name]
    return out


# -- specs -------------------------------------------------------------------------------------
INSTANCE = "__instance__"  # a block call's key holding its scope until the block is written


class Recoverer:
    """Turns the scope tree into blocks and network nodes."""

    def __init__(self, init_args: dict[int, dict[str, Any]], target: str):
        self.init_args = init_args
        self.target = target
        self.problems: list[Diagnostic] = []
        # block name -> (scope, (nodes, output)) of every instance, in the order met
        self.instances: dict[str, list[tuple[Scope, tuple[list[dict], str | None]]]] = {}
        self.block_names: dict[type, str] = {}

    def fail(self, scope: Scope, message: str) -> None:
        """Record what the spec language cannot say about this scope; go on."""
        self.problems.append(
            Diagnostic(Pos(self.target), f"`{scope.path or '(model)'}`: {message}")
        )

    # a scope's own node list, attributes as literals
    def body(self, scope: Scope, x: str) -> tuple[list[dict], str | None]:
        """The scope's nodes and the name of its output where it is not the last node."""
        names: dict[str, str] = {x: "x"}  # fx value -> node name in this list
        nodes: list[dict] = []
        sources: list[dict] = []  # parameters and constants
        prev = x
        taken = {_relative(scope.path, p) for p in _module_paths(scope)} | {"x"}
        for e in scope.entries:
            node = self.entry(scope, e)
            if node is None:
                continue
            node = self.named(scope, e, node, taken, set(names.values()))
            if node is None:
                return nodes, None
            taken.add(node["name"])
            if e.inputs and e.inputs != [prev]:
                refs = [_ref(names, v) for v in e.inputs]
                if None in refs:
                    self.fail(scope, "reads a value computed outside it that is not its input")
                    return nodes, None
                node["inputs"] = refs[0] if len(refs) == 1 and not _is_join(node) else refs
            value = _output(e)
            names[value] = node["name"]
            if node.get("op") in SOURCES:  # reads nothing: first in the list, off the chain
                sources.append(node)
                continue
            prev = value
            nodes.append(node)
        if sources and nodes and "inputs" not in nodes[0]:
            nodes[0] = {**nodes[0], "inputs": "x"}  # not the source listed before it
        nodes = sources + nodes
        if scope.output and scope.output != prev:
            ref = _ref(names, scope.output)
            if ref is None or ref == "x":
                self.fail(scope, "hands on its input unchanged or a value from outside")
            return nodes, ref
        return nodes, None

    def named(self, scope: Scope, e, node: dict, taken: set[str], used: set[str]) -> dict | None:
        """The node under a name of its own: a function call's after its op, a module's
        after its attribute (a key where that is no identifier: `block1-0`)."""
        if "name" not in node:
            return {"name": _fresh(node["op"], taken), **node}
        if node["name"] in used:  # a module called again
            if isinstance(e, Scope) or e.params:
                self.fail(scope, f"calls `{node['name']}` twice: its weights would be shared")
                return None
            node["name"] = _fresh(node["name"], taken)  # parameterless: a copy
        if not node["name"].isidentifier():
            key = node["name"]
            rest = {k: v for k, v in node.items() if k != "name"}
            node = {"name": _fresh(_identifier(key), taken), "key": repr(key), **rest}
        return node

    def entry(self, scope: Scope, e: Lifted | Scope) -> dict | None:
        """One thing a scope calls, as a node named by its attribute (None: refused)."""
        if isinstance(e, Lifted):
            node = {"op": e.op, **e.attrs}
            if e.leaf is not None:
                rel = _relative(scope.path, e.leaf)
                if "." in rel:
                    self.fail(scope, f"calls `{e.leaf}` of another module directly")
                    return None
                node = {"name": rel, **node}
            return node
        rel = _relative(scope.path, e.path)
        if "." in rel:
            self.fail(scope, f"calls `{e.path}` of another module directly")
            return None
        if _one_op(e):  # a parameterless wrapper of one call (torchvision's Permute)
            return {"name": rel, "op": e.entries[0].op, **e.entries[0].attrs}
        if len(e.inputs) != 1:
            self.fail(e, f"takes {len(e.inputs)} inputs: a block takes one")
            return None
        return {"name": rel, **self.call(e)}

    def call(self, scope: Scope) -> dict:
        """A child scope as a node: a `seq` of its items, or a call of its class's block."""
        from torch import nn

        if type(scope.module) is nn.Sequential or (
            isinstance(scope.module, nn.Sequential)
            and type(scope.module).forward is nn.Sequential.forward
        ):
            return self.sequence(scope)
        name = self.block_name(scope.cls)
        self.instances.setdefault(name, []).append((scope, self.body(scope, scope.inputs[0])))
        return {"block": name, INSTANCE: scope}

    def sequence(self, scope: Scope) -> dict:
        """A Sequential: its items, each reading the one before (keys where not 0, 1, ...)."""
        items = []
        for k, e in enumerate(scope.entries):
            node = self.entry(scope, e)
            if node is None:
                continue
            expected = scope.inputs[0] if k == 0 else _output(scope.entries[k - 1])
            if e.inputs != [expected]:
                self.fail(scope, "a Sequential item that does not read the item before")
            name = node.pop("name", None)
            if name is not None and name != str(k):
                node = {"key": repr(name), **node}  # an expression: a string literal
            items.append(node)
        return {"seq": _keyed(items)}

    def block_name(self, cls: type) -> str:
        """The class's name, numbered if another class of that name was met first."""
        if cls not in self.block_names:
            base = cls.__name__.lstrip("_") or "Block"  # `_InvertedResidual`: no leading _
            name, k = base, 2
            while name in self.block_names.values():
                name, k = f"{base}{k}", k + 1
            self.block_names[cls] = name
        return self.block_names[cls]


SOURCES = ("parameter", "relative_position_index")  # ops that read no tensor


def _keyed(items: list[dict]) -> list[dict]:
    """Sequence items where some carry a module's key (`'0'` after a call the model makes
    in forward): the others keyed after their op, so no position repeats a key."""
    keys = {i["key"] for i in items if "key" in i}
    if not keys:
        return items
    out = []
    for k, item in enumerate(items):
        if "key" not in item and repr(str(k)) in keys:
            base, n = item.get("op", "item"), 1
            key = repr(base)
            while key in keys:
                key, n = repr(f"{base}_{n}"), n + 1
            keys.add(key)
            item = {"key": key, **item}
        out.append(item)
    return out


def _one_op(scope: Scope) -> bool:
    """A module without weights whose forward makes one call: written as that call."""
    only = scope.entries[0] if len(scope.entries) == 1 else None
    return (
        isinstance(only, Lifted)
        and only.leaf is None
        and scope.module is not None
        and not any(True for _ in scope.module.parameters())
        and not any(True for _ in scope.module.buffers())
    )


def _ref(names: dict[str, str], value: str) -> str | None:
    """A value as the node list names it: `node` or `node[k]` for a part."""
    name = names.get(base(value))
    return None if name is None else name + value[len(base(value)) :]


def _output(e: Lifted | Scope) -> str:
    return e.output if isinstance(e, Scope) else e.name


def _is_join(node: dict) -> bool:
    return node.get("op") in ("add", "multiply", "concat")


def _module_paths(scope: Scope) -> list[str]:
    """The paths of the modules a scope calls directly (leaves and child scopes)."""
    return [
        e.path if isinstance(e, Scope) else e.leaf
        for e in scope.entries
        if isinstance(e, Scope) or e.leaf is not None
    ]


def _relative(parent: str, path: str) -> str:
    return path[len(parent) + 1 :] if parent else path


def _identifier(text: str) -> str:
    """A module name as a node name: `block1-0` -> `block1_0`, `0` -> `m0`."""
    name = re.sub(r"\W", "_", text)
    return name if name[:1].isalpha() else f"m{name}"


def _fresh(base: str, taken: set[str]) -> str:
    base = re.sub(r"\W", "_", base)
    name, k = base, 1
    while name in taken:
        name, k = f"{base}_{k}", k + 1
    return name
