"""Backends: one folder per framework under `backends/`, discovered, never named here.

A backend folder holds `backend.yaml` (how each primitive maps to the framework's API,
and the framework's idioms for sequences, optional modules and initialisation loops)
and jinja2 templates. Adding a framework is adding a folder.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
import yaml
from pydantic import BaseModel, ConfigDict, Field

from archspec.errors import Pos, SpecError, did_you_mean
from archspec.resources import BACKENDS_DIR

# more backends folders (os.pathsep-separated): a fourth framework, or a bundled backend
# overridden by a folder of the same name
BACKENDS_ENV = "ARCHSPEC_BACKENDS"
NO_DEFAULT = "<none>"


class Strict(BaseModel):
    """Unknown keys in a backend table are mistakes."""

    model_config = ConfigDict(extra="forbid")


class ArgSpec(Strict):
    """One constructor argument: the framework's name and how to compute it.

    `value` is an expression over the op's attributes (and `in`, its input channels);
    the argument is left out when it equals `default`, unless `always` is set because
    the framework's default differs from the spec language's semantics.
    """

    name: str
    value: str
    default: Any = NO_DEFAULT
    positional: bool = False
    always: bool = False
    square: bool = False  # a pair [a, a] is passed as a; [a, b] is refused
    only: Any = NO_DEFAULT  # not passed: the framework supports only this value
    raw: bool = False  # `value` is Python source, with {fan_in} etc. filled in


class CaseSpec(Strict):
    """Another call, or other arguments, for an op when `when` holds (see OpSpec.cases)."""

    when: str
    call: str | None = None  # None: the op's own call
    args: list[ArgSpec] = Field(default_factory=list)  # replace same-named args, else appended
    requires: dict[str, str] = Field(default_factory=dict)


class OpSpec(Strict):
    """A primitive in one framework: a module constructor or a functional expression.

    `cases` are tried in order; the first whose `when` holds changes the call and arguments.
    `when` reads the op's attributes and the values its Op.emit_values derives (`same`,
    `uneven`, `unit_stride` for padding); a value only known at run time makes it false.
    """

    call: str | None = None
    args: list[ArgSpec] = Field(default_factory=list)
    requires: dict[str, str] = Field(default_factory=dict)  # expression -> why, when false
    cases: list[CaseSpec] = Field(default_factory=list)
    expr: str | None = None  # functional: {inputs} (list source), {sum}, {product}
    tensors: dict[str, str] = Field(default_factory=dict)  # spec tensor -> framework name
    transposed: list[str] = Field(default_factory=list)  # stored (in, out) instead of (out, in)
    extra: dict[str, int] = Field(default_factory=dict)  # framework-only state: name -> value
    # a `parameter` with a leading batch axis of 1 expanded to the batch (concat):
    # {tensor}, {batch} (the batch size's source), {rest} (-1 per per-sample axis)
    expand: str | None = None
    # forward's statement calling the module when it is not `{out} = {module}({x})`
    apply: str | None = None
    # the layer starts as PyTorch's does (a layers.py class), whatever `init.native_default`
    native_default: bool = False
    # in place, where the compiler proves the input has no other reader (archspec/inplace.py):
    # the constructor keyword that makes the module overwrite its input (`inplace`), or the
    # statement a functional op of two inputs becomes (`{x} += {y}`)
    inplace_arg: str | None = None
    inplace_stmt: str | None = None
    # the op's result is a new tensor its backward does not read: it may be overwritten
    owns_output: bool = False


class InitSpec(Strict):
    """How a framework writes initialisation: one call per scheme and a statement form.

    Argument values are expressions over the scheme's arguments, `tensor` (the tensor's
    source) and `fan_in` / `fan_out` (from `fans`, per op).
    """

    native_default: bool = False  # true: the framework's own default is PyTorch's
    form: str = "{call}"  # the statement; {call} the scheme call, {tensor} the tensor
    schemes: dict[str, OpSpec]
    fans: dict[str, dict[str, str]] = Field(default_factory=dict)  # op -> fan -> source


class TargetSpec(Strict):
    """An emission option: the same module, tensors and checkpoints, other code for some ops
    (MindSpore's CPU convolutions as unfold + matmul)."""

    doc: str
    ops: dict[str, dict[str, Any]]  # op -> the OpSpec fields replaced


class BackendSpec(Strict):
    """A framework's table: what `backend.yaml` holds."""

    name: str
    title: str
    rank: int = 100  # order in `all`: the first is the reference of `archspec check`
    imports: list[str]
    stdlib_imports: list[str] = []  # the standard library's, written first (used ones)
    base_class: str
    forward: str
    sequential: str
    sequential_takes_list: bool = False
    is_present: str = "self.{attr} is not None"
    # children whose name is not an identifier (`key:`): `add_child` (a call of `{key}` and
    # `{value}`) in the constructor, `get_child` (of `{key}`) in forward; a sequence of
    # (name, module) pairs is `sequential(named_sequential_wrap([pairs]))`, or
    # `sequential(*pairs)` if null
    add_child: str | None = None
    get_child: str = "getattr(self, {key})"
    named_sequential_wrap: str | None = None
    segment_pattern: str | None = None  # a regex every module path segment must match
    modules_loop: str  # a `for` header binding `m` to every sub-module
    ops: dict[str, OpSpec]
    init: InitSpec
    # emission options (`--backend mindspore:cpu`): ops whose table entries they replace
    targets: dict[str, TargetSpec] = {}


class Backend:
    """A loaded backend: its table and its jinja environment."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.target: str | None = None
        self._layers: dict[str, tuple[str, frozenset[str]]] | None = None
        text = (folder / "backend.yaml").read_text(encoding="utf-8")
        data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # libyaml's
        self.spec = BackendSpec.model_validate(data)
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader([folder, folder.parent]),
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
            undefined=jinja2.StrictUndefined,
            autoescape=False,  # Python source, not HTML; every value is built by archspec
        )

    @property
    def name(self) -> str:
        """The folder name, used in `--backend` and in `generated/<name>/`."""
        return self.folder.name

    @property
    def label(self) -> str:
        """The name with its target, if any (`mindspore:cpu`): how reports name it."""
        return f"{self.name}:{self.target}" if self.target else self.name

    @property
    def title(self) -> str:
        """The framework's display name, with the target's (`MindSpore (target cpu)`)."""
        return f"{self.spec.title} (target {self.target})" if self.target else self.spec.title

    def with_target(self, target: str, option: str = "--backend") -> Backend:
        """This backend with an emission option's op entries in place of its own."""
        found = self.spec.targets
        if target not in found:
            raise SpecError.at(
                Pos(option),
                f"backend `{self.name}` has no target `{target}`"
                + (f" (it has: {', '.join(sorted(found))})" if found else " (it has none)"),
            )
        return self.with_ops(found[target].ops, target)

    def with_ops(self, changes: dict[str, dict[str, Any]], target: str | None = None) -> Backend:
        """This backend (its folder, templates and layers) with some fields of some op
        entries replaced: an emission target, or a test's variant of the table."""
        ops = dict(self.spec.ops)
        for op, fields in changes.items():
            ops[op] = ops[op].model_copy(update=fields)
        variant = copy.copy(self)
        variant.spec, variant.target = self.spec.model_copy(update={"ops": ops}), target
        return variant

    @property
    def layers(self) -> dict[str, tuple[str, frozenset[str]]]:
        """Small layers the framework lacks (`layers.py`): name -> (source, names it uses).

        A generated module that uses one gets a copy of its source (and of the layers that
        one uses), so each file still stands alone.
        """
        if self._layers is None:
            self._layers = _read_layers(self.folder / "layers.py")
        return self._layers

    def layer_sources(self, lines: list[str]) -> list[str]:
        """Source lines of every layer `lines` refer to, with their own needs, in file order."""
        text = "\n".join(lines)
        needed = {n for n in self.layers if re.search(rf"\b{re.escape(n)}\b", text)}
        pending = set(needed)
        while pending:
            for used in self.layers[pending.pop()][1] & self.layers.keys():
                if used not in needed:
                    needed.add(used)
                    pending.add(used)
        out: list[str] = []
        for name, (source, _) in self.layers.items():
            if name in needed:
                out += [*source.splitlines(), "", ""]
        return out[:-2]

    def render(self, view: Any) -> str:
        """Render a module view with this backend's `module.py.j2`."""
        return self.env.get_template("module.py.j2").render(m=view, b=self.spec)


def _read_layers(path: Path) -> dict[str, tuple[str, frozenset[str]]]:
    """Top-level classes and functions of a backend's `layers.py`, in file order."""
    import ast

    if not path.is_file():
        return {}
    text = path.read_text(encoding="utf-8")
    data = text.encode()
    # byte offset of each line: ast.get_source_segment splits the whole file per call
    starts = [0]
    for line in data.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    found = {}
    for node in ast.parse(text).body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            names = frozenset(n.id for n in ast.walk(node) if isinstance(n, ast.Name))
            begin = starts[node.lineno - 1] + node.col_offset
            end = starts[node.end_lineno - 1] + node.end_col_offset
            found[node.name] = (data[begin:end].decode(), names)
    return found


@cache
def folders() -> dict[str, Path]:
    """Every backend folder (one with a backend.yaml), by name, unread.

    The bundled backends first, then each folder of ARCHSPEC_BACKENDS, a later folder
    replacing an earlier backend of the same name.
    """
    import os

    roots = [BACKENDS_DIR]
    roots += [Path(p) for p in os.environ.get(BACKENDS_ENV, "").split(os.pathsep) if p]
    found: dict[str, Path] = {}
    for root in roots:
        for folder in sorted(root.iterdir()) if root.is_dir() else []:
            if (folder / "backend.yaml").is_file():
                found[folder.name] = folder.resolve()
    return found


@cache
def load(name: str) -> Backend:
    """One backend, read once (a build for one framework reads only its table)."""
    return Backend(folders()[name])


def available() -> dict[str, Backend]:
    """Every backend, by name, in `rank` order (the first is `check`'s reference)."""
    found = {name: load(name) for name in folders()}
    return dict(sorted(found.items(), key=lambda item: (item[1].spec.rank, item[0])))


def pick(names: str | Iterable[str] | None, option: str = "--backend") -> list[Backend]:
    """Backends by name (`"torch"`, `"torch,paddle"`, `["paddle"]`); all for None or `all`."""
    if not names or names == "all":
        return list(available().values())
    if isinstance(names, str):
        names = names.split(",")
    found = folders()
    chosen = []
    for name in (n.strip() for n in names):
        name, _, target = name.partition(":")  # `mindspore:cpu`: with an emission option
        if name not in found:
            raise SpecError.at(Pos(option), f"unknown backend `{name}`", did_you_mean(name, found))
        chosen.append(load(name).with_target(target, option) if target else load(name))
    return chosen
