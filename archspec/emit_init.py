"""Emission of initialisation: the network's `reset_parameters`, in each framework's idiom.

Per op type, the spec's scheme for each tensor (`init:`), then node-level overrides for
every instance of a block; the statements come from the backend table's `init` section.
"""

from __future__ import annotations

from typing import Any

from archspec.emit_args import (
    EmitError,
    Override,
    check_requires,
    make_call,
    to_python,
    walk,
)
from archspec.expr import Expr
from archspec.ops import INIT_SCHEMES, OPS
from archspec.pyfmt import Writer, from_source


class InitWriter:
    """The network's `reset_parameters`: per-type schemes, then node-level overrides."""

    def __init__(self, parent):
        self.m = parent
        self.table = parent.table
        self.init = parent.table.init

    def reset_lines(self, builders: list, overrides: list[Override]) -> list[str]:
        """The body of `reset_parameters` for the classes built by `builders`."""
        w = Writer(2)
        groups = merged(self.type_groups(builders))
        if groups:
            w.line(self.table.modules_loop)
            with w.indent():
                for k, (cls, lines) in enumerate(groups):
                    w.line(f"{'if' if k == 0 else 'elif'} isinstance(m, {cls}):")
                    w.lines += lines
        for cls in dict.fromkeys(o.cls for o in overrides):
            mine = [o for o in overrides if o.cls == cls]
            if cls == self.m.spec.name:
                for o in mine:
                    self.override(w, o, "self")
                continue
            w.line(self.table.modules_loop)
            with w.indent():
                if len(mine) == 1 and mine[0].guard:  # one `if`, not two nested (ruff SIM102)
                    w.line(f"if isinstance(m, {cls}) and {mine[0].guard.format(m='m')}:")
                    with w.indent():
                        self.override(w, mine[0], "m", guarded=True)
                    continue
                w.line(f"if isinstance(m, {cls}):")
                with w.indent():
                    for o in mine:
                        self.override(w, o, "m")
        if not w.lines:
            w.line("pass  # every layer keeps its framework's default initialisation")
        return w.lines

    def type_groups(self, builders: list) -> list[tuple[str, list]]:
        """(framework class, steps) for every op type with tensors to initialise."""
        ops = {ns.op for b in builders for ns in walk(b.owner.nodes) if ns.op}
        ops |= {
            ns.attrs["fn"].constant
            for b in builders
            for ns in walk(b.owner.nodes)
            if ns.op == "activation" and ns.attrs["fn"].is_constant
        }
        groups = []
        for op in sorted(ops):
            table = self.table.ops.get(op)
            if not OPS[op].tensors or table is None or table.call is None:
                continue
            steps = []
            for tensor in OPS[op].tensors:
                init = self.m.spec.init.get(op, {}).get(tensor)
                scheme, args = ("default", {}) if init is None else (init.scheme, init.args)
                native = self.init.native_default or table.native_default
                if scheme == "default" and (native or "." in tensor):
                    continue  # a child layer's tensor (`out_proj.weight`): its layer's default
                steps.append(self.step_fn("m", op, tensor, scheme, args, lambda n: None))
            if steps:
                groups.append((table.call, steps))
        return groups

    def override(self, w: Writer, o: Override, module: str, guarded: bool = False) -> None:
        """Write one node-level initialisation; `module` is `m` (a block) or `self`;
        `guarded`: the caller has tested the guard already."""
        target = o.target.format(m=module)
        rename = (lambda n: f"{module}.{n}") if module == "m" else (lambda n: f"self.{n}")
        scope_names = set(self.m.spec.params) | set(self.m.spec.let)
        if o.cls != self.m.spec.name:
            scope_names = set(self.m.spec.blocks[o.cls].params) | set(self.m.spec.blocks[o.cls].let)
        steps = [
            self.step_fn(
                target,
                o.op,
                tensor,
                init.scheme,
                init.args,
                lambda n: rename(n) if n in scope_names else None,
            )
            for tensor, init in o.node.init.items()
            if not (
                init.scheme == "default"
                and (self.init.native_default or self.table.ops[o.op].native_default)
            )
        ]
        if o.guard and not guarded:
            w.line(f"if {o.guard.format(m=module)}:")
            with w.indent():
                for step in steps:
                    step(w)
        else:
            for step in steps:
                step(w)

    def step_fn(
        self, module: str, op: str, tensor: str, scheme: str, args: dict[str, Expr], rename
    ):
        """A function writing one tensor's initialisation statement."""
        table = self.table.ops[op]
        keys = (f"{scheme}.{op}.{tensor}", f"{scheme}.{tensor}", scheme)
        spec = next((self.init.schemes[k] for k in keys if k in self.init.schemes), None)
        if spec is None:
            raise EmitError.at(self.m.spec.pos, f"{self.table.title} emitter: no `{scheme}` init")
        # a learnable tensor of its own (`parameter`) is the attribute itself
        t = module if OPS[op].source else f"{module}.{table.tensors.get(tensor, tensor)}"
        literals, sources = scheme_values(INIT_SCHEMES[scheme], args, rename)
        sources["tensor"] = t
        weight = f"{module}.{table.tensors.get('weight', 'weight')}"
        for fan, source in self.init.fans.get(op, {}).items():
            sources[fan] = source.format(weight=weight)
        check_requires(spec, literals, self.table.title, self.m.spec.pos)
        call = make_call(spec, literals, sources)
        statement = self.init.form.format(call=call.flat(), tensor=t)
        optional = tensor.endswith("bias") and "bias" in OPS[op].attrs  # in_proj_bias too

        def write(w: Writer) -> None:
            if optional:
                w.line(f"if {t} is not None:")
                with w.indent():
                    w.expr(from_source(statement))
            else:
                w.expr(from_source(statement))

        return write


def merged(groups: list[tuple[str, list]]) -> list[tuple[str, list[str]]]:
    """Classes initialised alike share one branch, `isinstance(m, (nn.Conv2d, nn.Linear))`,
    as hand-written code does (and ruff asks)."""
    found: dict[tuple[str, ...], list[str]] = {}
    for cls, steps in groups:
        w = Writer(4)
        for step in steps:
            step(w)
        found.setdefault(tuple(w.lines), []).append(cls)
    return [
        (classes[0] if len(classes) == 1 else f"({', '.join(classes)})", list(lines))
        for lines, classes in found.items()
    ]


def scheme_values(
    defaults: dict[str, Any], args: dict[str, Expr], rename
) -> tuple[dict[str, Any], dict[str, str]]:
    """An init scheme's arguments: known values, and Python source of the others."""
    literals: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for key, default in defaults.items():
        expr = args.get(key)
        if expr is None:
            literals[key] = default
        elif isinstance(default, str):  # mode, nonlinearity: names, not expressions
            literals[key] = expr.source.strip("'\"")
        elif expr.is_constant:
            literals[key] = expr.constant
        else:
            sources[key] = to_python(expr, rename)
    return literals, sources
