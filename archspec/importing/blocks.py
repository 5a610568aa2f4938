"""`archspec import`, stage 4: one spec block per module class, from its instances.

The instances' node lists are laid over the longest one: a node missing from some
instances is kept under a flag (absent, a node hands on its input, so `inputs` that named
it read what it would have read); an attribute equal in every instance is written as it
is, one that differs becomes a parameter, named after the constructor argument whose
values it follows (`planes`, or `planes * 4`) or else after the node (`conv2_stride`).
A parameter the importer had to name itself (after a node, or an invented `has_` flag) is
written with a comment saying so.
"""

from __future__ import annotations

import keyword
from typing import Any

from archspec.errors import Diagnostic, Pos
from archspec.importing.recover import INSTANCE, Recoverer, Scope
from archspec.importing.write import NOTES, Expr, summary
from archspec.spec import SHADOWING


class BlockWriter:
    """Writes the blocks a Recoverer met and the arguments of every call."""

    def __init__(self, rec: Recoverer):
        self.rec = rec
        self.blocks: dict[str, dict[str, Any]] = {}
        self.call_args: dict[int, dict[str, Any]] = {}  # id(scope) -> its call's arguments
        self.block_of: dict[int, str] = {
            id(scope): name for name, found in rec.instances.items() for scope, _ in found
        }

    def run(self) -> dict[str, dict[str, Any]]:
        """Every block, by name, in the order their classes were met."""
        for name in list(self.rec.instances):
            self.block(name)
        return self.blocks

    def materialize(self, value):
        """A node (or list of nodes) with each block call's arguments in place."""
        if isinstance(value, list):
            return [self.materialize(v) for v in value]
        if not isinstance(value, dict):
            return value
        if INSTANCE in value:
            scope = value[INSTANCE]
            if id(scope) not in self.call_args:
                self.block(self.block_of[id(scope)])
            args = self.call_args.get(id(scope), {})
            value = {k: v for k, v in value.items() if k != INSTANCE}
            value["block"] = self.block_of[id(scope)]
            return value | ({"args": args} if args else {})
        return {k: self.materialize(v) for k, v in value.items()}

    def block(self, name: str) -> None:
        """Write one block from a class's instances, and each instance's call arguments;
        instances built differently (a branch only some have in forward, a Sequential of
        another length) make one block per way they are built: `Name`, `Name_2`, ..."""
        if name in self.blocks:
            return
        self.blocks[name] = {}  # a class inside itself would recurse: it cannot, but be safe
        instances = self.rec.instances[name]
        if self.write(name, instances, report=False):
            return
        for k, group in enumerate(self.groups(name, instances)):
            variant = name if k == 0 else self.variant_name(name)
            for scope, _ in group:
                self.block_of[id(scope)] = variant
            self.blocks[variant] = {}
            self.write(variant, group, report=True)

    def groups(self, name: str, instances: list) -> list[list]:
        """The instances in as few groups as blocks can hold: those built alike together,
        then each such set joined to the first group it can share a block with."""
        alike: dict[str, list] = {}
        for instance in instances:
            built = self.materialize(instance[1][0])  # nested blocks by their variants
            alike.setdefault(_signature(built), []).append(instance)
        groups: list[list] = []
        for found in alike.values():
            joined = next((g for g in groups if self.write(name, g + found, report=False)), None)
            if joined is None:
                groups.append(list(found))
            else:
                joined += found
        return groups

    def variant_name(self, name: str) -> str:
        """`Name_2`, `Name_3`, ...: the first not taken by a block or a class."""
        taken = set(self.blocks) | set(self.rec.instances)
        k = 2
        while f"{name}_{k}" in taken:
            k += 1
        return f"{name}_{k}"

    def write(self, name: str, instances: list, report: bool) -> bool:
        """One block over `instances`; False (and a problem if `report`) if it cannot be."""
        template_scope, (template, output) = max(instances, key=lambda i: len(i[1][0]))
        order = [n["name"] for n in template]
        kept: list[tuple[Scope, dict[str, dict]]] = []
        for scope, (nodes, out) in instances:
            if not _subsequence([n["name"] for n in nodes], order) or out != output:
                if not report:
                    return False
                self.problem(scope, f"its structure differs from `{template_scope.path}`'s")
                continue
            kept.append((scope, {n["name"]: self.materialize(n) for n in nodes}))
        self.unifier = _Unifier(self.rec.init_args, [s.module for s, _ in kept], set(order))
        try:
            found = [found for _, found in kept]
            nodes = [self.merged(node, found, template) for node in template]
        except Mismatch as exc:
            if report:
                self.problem(template_scope, f"{exc}: one block per class cannot hold them")
            return False
        lets = self.unifier.lets(nodes, set(order))
        nodes = _with_lets(nodes, {expr: Expr(name) for name, expr in lets.items()})
        spec = self.spec(template_scope.cls, output, nodes)
        if lets:
            spec = {k: v for k, v in spec.items() if k != "nodes"} | {"let": lets, "nodes": nodes}
        self.blocks[name] = spec
        for (scope, _), values in zip(kept, self.unifier.args, strict=True):
            self.call_args[id(scope)] = values
        return True

    def spec(self, cls: type, output: str | None, nodes: list[dict]) -> dict[str, Any]:
        """The block's mapping: doc, params (with the importer's notes), output, nodes."""
        spec: dict[str, Any] = {}
        if doc := summary(cls):
            spec["doc"] = doc
        if self.unifier.params:
            spec["params"] = self.unifier.params
        if self.unifier.notes:
            spec[NOTES] = self.unifier.notes
        if output:
            spec["output"] = output
        spec["nodes"] = nodes
        return spec

    def merged(self, node: dict, instances: list[dict[str, dict]], template: list[dict]) -> dict:
        """One template node over every instance: literals, parameters and its flag."""
        name = node["name"]
        present = [name in found for found in instances]
        keys = list(dict.fromkeys(k for found in instances if name in found for k in found[name]))
        per = [_with_defaults(found.get(name), keys) for found in instances]
        written: dict[str, Any] = {}
        for key in keys:
            if key == "name":
                written[key] = node[key]
            elif key == "inputs":  # the template's: absent nodes pass their input on
                if "inputs" not in node:
                    self.check_implicit(node, template, instances)
                    continue
                written[key] = node[key]
            else:
                values = [v.get(key) if v is not None else None for v in per]
                if key in ("op", "block") and len({v for v in values if v is not None}) > 1:
                    raise Mismatch(f"`{name}` is a different {key} in different instances")
                written[key] = self.unifier.unify(f"{name}_{key}", values)
        if not all(present):
            written["when"] = self.unifier.flag(name, present)
            _main_path_first(written, template)
        return _ordered(written)

    def check_implicit(self, node: dict, template: list[dict], instances: list[dict]) -> None:
        """A template node reading the node before it, where an instance names its input:
        the same when the nodes between are absent there (each passes its input on)."""
        name = node["name"]
        k = next(i for i, n in enumerate(template) if n["name"] == name)
        for found in instances:
            if name not in found or "inputs" not in found[name]:
                continue
            j, read = k - 1, None
            while read is None:
                before = template[j] if j >= 0 else None
                if before is None:
                    read = "x"
                elif before["name"] in found:
                    read = before["name"]
                elif "inputs" in before:
                    read = before["inputs"]
                j -= 1
            if found[name]["inputs"] != read:
                raise Mismatch(f"`{name}` reads different nodes in different instances")

    def problem(self, scope: Scope, message: str) -> None:
        """An instance that cannot be written as its class's block."""
        self.rec.problems.append(Diagnostic(Pos(self.rec.target), f"`{scope.path}`: {message}"))


class Mismatch(Exception):
    """Instances of one class whose structures cannot be laid over each other."""


class _Unifier:
    """Per-instance values of one block as literals or parameter expressions."""

    def __init__(self, init_args: dict[int, dict[str, Any]], modules: list, nodes: set[str]):
        # constructor arguments named like a node cannot be parameters: one name, two things
        # a reserved name (`out_channels`, a builtin) takes a trailing `_`, as in Python
        self.inits = [
            {
                (f"{k}_" if k in SHADOWING or keyword.iskeyword(k) else k): v
                for k, v in _named_values(m, init_args.get(id(m), {})).items()
                if k not in nodes
            }
            for m in modules
        ]
        self.params: dict[str, str] = {}
        self.notes: dict[str, str] = {}  # parameter -> why the importer named it so
        self.args: list[dict[str, Any]] = [{} for _ in modules]
        self.flags: dict[str, list[bool]] = {}  # flag -> where its node is present
        self.formulas: dict[str, list] = {}  # expression -> (instance, value) where known
        self.locals = [getattr(init_args, "locals", {}).get(id(m), {}) for m in modules]

    def unify(self, where: str, values: list):
        """A literal when every present instance agrees, else an expression of parameters;
        lists and mappings (sequence items, a nested call's arguments) element by element."""
        known = [v for v in values if v is not None]
        if all(_same(v, known[0]) for v in known):
            return known[0]
        first = known[0]
        if any(isinstance(v, (dict, list)) for v in known) and not _alike(known):
            raise Mismatch(f"`{where}` differs in structure between instances")
        if all(isinstance(v, dict) for v in known):  # an op's omitted attributes: defaults
            keys = list(dict.fromkeys(k for v in known for k in v))
            values = [_with_defaults(v, keys) for v in values]
            return {k: self.unify(f"{where}_{k}", [_at(v, k) for v in values]) for k in keys}
        if all(isinstance(v, list) and len(v) == len(first) for v in known):
            return [
                self.unify(f"{where}_{i}", [_at(v, i) for v in values]) for i in range(len(first))
            ]
        expr, name, column = self.match(values)
        if name is None:
            expr, name, column = self.follow(values)
        if name is None:  # absent instances take any value: the first present one's
            expr, name, column = where, where, [v if v is not None else first for v in values]
            self.notes[name] = "differs between instances; no constructor argument matches"
        self.params.setdefault(name, _type(column[0]))
        for instance, value in zip(self.args, column, strict=True):
            instance[name] = value
        if not expr.isidentifier():  # a computed value: a `let` if `__init__` named it
            self.formulas.setdefault(expr, [(k, v) for k, v in enumerate(values) if v is not None])
        return Expr(expr)

    def match(self, values: list) -> tuple[str | None, str | None, list]:
        """`arg`, `arg * k`, ... for a constructor argument whose values these follow (in
        the instances where the node is present: None marks the others)."""
        columns = ((a, [i.get(a) for i in self.inits]) for a in self.inits[0])
        return _following(columns, values)

    def lets(self, nodes: list[dict], taken: set[str]) -> dict[str, Expr]:
        """A value computed from the parameters and written more than once, under the
        name the constructor gave it (`width = int(planes * (base_width / 64.0)) * groups`
        is `let: {width: planes * 2}`)."""
        found: dict[str, Expr] = {}
        for expr, known in self.formulas.items():
            if _count(nodes, expr) < 2:
                continue
            name = next(
                (
                    n
                    for n in self.locals[0]
                    if all(self.locals[k].get(n) == v for k, v in known)
                    and n not in self.params
                    and n not in taken
                    and n not in found
                    and n not in SHADOWING
                    and not keyword.iskeyword(n)
                ),
                None,
            )
            if name is not None:
                found[name] = Expr(expr)
        return found

    def follow(self, values: list) -> tuple[str | None, str | None, list]:
        """An expression of a parameter already made whose values these follow (a second
        size that is always the first, or twice it)."""
        return _following(((n, [a.get(n) for a in self.args]) for n in list(self.params)), values)

    def flag(self, node: str, present: list[bool]) -> str:
        """A node present in some instances: under a constructor argument that is None
        (or false) exactly where it is absent (torchvision's `downsample`), else a flag."""
        name = next(
            (
                a
                for a in self.inits[0]
                if [i.get(a) is not None and i.get(a) is not False for i in self.inits] == present
            ),
            None,
        )
        if name is None:  # a flag made for another node present exactly where this one is
            name = next((f for f in self.flags if self.flags[f] == present), None)
        if name is None:
            name = f"has_{node}"
            self.notes[name] = f"invented: only some instances have `{node}`"
        self.flags[name] = present
        self.params[name] = "bool"
        for instance, p in zip(self.args, present, strict=True):
            instance[name] = p
        return Expr(name)


def _following(columns, values: list) -> tuple[str | None, str | None, list]:
    """The first (name, per-instance values) whose values these equal or follow by a
    formula, as (expression, name, its values); else (None, None, values)."""
    known = [(k, v) for k, v in enumerate(values) if v is not None]
    kind = type(known[0][1])
    for name, column in columns:
        if not all(type(c) is kind for c in column):
            continue
        if all(column[k] == v for k, v in known):
            return name, name, column
        if kind is int and (expr := _formula(name, column, known)) is not None:
            return expr, name, column
    return None, None, values


def _formula(arg: str, column: list, known: list[tuple[int, Any]]) -> str | None:
    """`arg * k`, `arg // k` or `(arg - 1) // 2` (a "same" padding) where every known value
    follows it."""
    k0, v0 = known[0]
    base = column[k0]
    if not base or not v0:
        return None
    candidates = []
    if v0 % base == 0 and v0 // base > 1:
        candidates.append((f"{arg} * {v0 // base}", lambda c, f=v0 // base: c * f))
    if base % v0 == 0 and base // v0 > 1:
        candidates.append((f"{arg} // {base // v0}", lambda c, d=base // v0: c // d))
    candidates.append((f"({arg} - 1) // 2", lambda c: (c - 1) // 2))
    for expr, f in candidates:
        if all(f(column[k]) == v for k, v in known):
            return expr
    return None


def _count(value, expr: str) -> int:
    """How often an expression is written in nodes."""
    if isinstance(value, dict):
        return sum(_count(v, expr) for v in value.values())
    if isinstance(value, list):
        return sum(_count(v, expr) for v in value)
    return int(isinstance(value, Expr) and value == expr)


def _with_lets(value, names: dict[str, Expr]):
    """Nodes with each hoisted expression replaced by its `let` name."""
    if isinstance(value, dict):
        return {k: _with_lets(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [_with_lets(v, names) for v in value]
    return names.get(value, value) if isinstance(value, Expr) else value


def _main_path_first(node: dict, template: list[dict]) -> None:
    """An absent node stands for its first input: a sum that only some instances make
    (`x + self.conv(x)`) lists the node before it first, which the others hand on."""
    inputs = node.get("inputs")
    if node.get("op") not in ("add", "multiply") or not isinstance(inputs, list):
        return
    k = next(i for i, n in enumerate(template) if n["name"] == node["name"])
    before = template[k - 1]["name"] if k else "x"
    if before in inputs:
        node["inputs"] = [before] + [i for i in inputs if i != before]


def _named_values(module, init_args: dict[str, Any]) -> dict[str, Any]:
    """What a parameter can be named after, first match first: the constructor's
    arguments, the fields of a configuration object passed to it (a block's settings:
    `out_channels`, `kernel`), then the module's own plain attributes (`use_res_connect`)."""
    found = dict(init_args)
    configs = [_fields(v) for v in init_args.values() if _is_config(v)]
    for source in (*configs, vars(module) if module is not None else {}):
        for k, v in source.items():
            if k.isidentifier() and not k.startswith("_") and k != "training" and _scalar(v):
                found.setdefault(k, v)
    return found


def _fields(value) -> dict[str, Any]:
    """An object's attributes, in `__dict__` or `__slots__`."""
    if hasattr(value, "__dict__"):
        return vars(value)
    slots = [s for cls in type(value).__mro__ for s in getattr(cls, "__slots__", ())]
    return {s: getattr(value, s) for s in slots if hasattr(value, s)}


def _is_config(value) -> bool:
    """A plain object holding settings (not a module, class, function or container)."""
    return (
        (hasattr(value, "__dict__") or hasattr(type(value), "__slots__"))
        and not isinstance(value, (type, str, bytes, int, float, tuple))
        and not callable(value)
        and type(value).__module__ not in ("builtins",)
        and type(value).__module__.split(".")[0] != "torch"
    )


def _scalar(value) -> bool:
    return isinstance(value, (bool, int, float, str))


def _signature(nodes: list[dict]) -> str:
    """How a node list is built, its values left out: names, ops, blocks, sequences."""

    def shape(node):
        if isinstance(node, list):
            return [shape(n) for n in node]
        if not isinstance(node, dict):
            return None
        kept = ("name", "op", "block", "key", "repeat", "inputs", "when")
        return {k: (shape(v) if k == "seq" else v) for k, v in node.items() if k in (*kept, "seq")}

    return repr(shape([{k: v for k, v in n.items() if k != INSTANCE} for n in nodes]))


def _subsequence(names: list[str], order: list[str]) -> bool:
    it = iter(order)
    return all(n in it for n in names)


def _same(a, b) -> bool:
    return type(a) is type(b) and a == b


def _with_defaults(node: dict | None, keys: list[str]) -> dict | None:
    """A node with the attributes it leaves out (its op's defaults) written in."""
    from archspec.ops import OPS

    if node is None or node.get("op") not in OPS:
        return node
    declared = OPS[node["op"]].attrs
    return {
        k: node[k] if k in node else declared[k].default for k in keys if k in node or k in declared
    }


def _ordered(node: dict) -> dict:
    """Keys in the order people write them: name, op, the op's attributes in its order."""
    from archspec.ops import OPS

    attrs = list(OPS[node["op"]].attrs) if node.get("op") in OPS else []
    order = ["name", "key", "op", "block", "repeat", *attrs, "args", "inputs", "when", "seq"]
    return dict(sorted(node.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else 99))


def _alike(values: list) -> bool:
    """Nodes of one op (or block), or lists of one length: what can be unified piecewise."""
    if all(isinstance(v, dict) for v in values):
        return len({(v.get("op"), v.get("block"), "seq" in v) for v in values}) == 1
    return all(isinstance(v, list) for v in values) and len({len(v) for v in values}) == 1


def _at(value, key):
    if isinstance(value, dict):
        return value.get(key)
    return None if value is None else value[key]


def _type(value) -> str:
    return {bool: "bool", int: "int", float: "float"}.get(type(value), "str")
