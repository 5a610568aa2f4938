"""Loading YAML safely, keeping the position of every key and value.

PyYAML's composer (libyaml's, when available) builds a node graph with line and column
marks and constructs no objects. We turn those nodes into plain Python data plus a table
`positions[path] -> Pos`, refuse every non-standard tag (`!!python/object` and friends),
bound alias expansion, and resolve `extends:` by deep-merging the base spec under the
child. Nothing here knows what a spec means; that is `spec.py`'s job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from archspec.errors import Pos, SpecError

MAX_BYTES = 2_000_000
MAX_VALUES = 200_000
MAX_EXTENDS = 16
_TAG = "tag:yaml.org,2002:"
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# YAML 1.2 booleans only: `yes`, `no`, `on`, `off` stay strings (no "Norway problem")
_BOOLS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}

_FLOAT_12 = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)[eE][-+]?[0-9]+$")

PathKey = tuple[Any, ...]


def parse_scalar(text: str, where: str) -> Any:
    """A command-line value read as a spec file would read it (YAML 1.2 scalars, lists)."""
    if not text.strip():
        raise SpecError.at(Pos(where), "expected a value")
    return parse_text(f"value: {text}", where).data["value"]


@dataclass
class Document:
    """Plain data of a (merged) spec file, with where each piece was written."""

    data: Any
    positions: dict[PathKey, Pos] = field(default_factory=dict)
    key_positions: dict[PathKey, Pos] = field(default_factory=dict)
    file: str = ""

    def pos(self, path: PathKey, key: bool = False) -> Pos:
        """The position of `path`, or of its closest enclosing value."""
        table = self.key_positions if key else self.positions
        path = tuple(path)
        if path in table:
            return table[path]
        while path:
            path = path[:-1]
            if path in self.positions:
                return self.positions[path]
        return Pos(self.file, 1, 1)


def display_path(path: Path) -> str:
    """A short, stable name for a file in messages: relative to the cwd when possible."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def load_document(path: Path, _chain: tuple[Path, ...] = ()) -> Document:
    """Load a spec file and everything it extends, merged into one Document."""
    doc = _load_file(path.resolve(), display_path(path))
    base_ref = doc.data.get("extends") if isinstance(doc.data, dict) else None
    if base_ref is None:
        return doc
    if not isinstance(base_ref, str):
        raise SpecError.at(doc.pos(("extends",)), "`extends` must be a file path")
    base_path = (path.parent / base_ref).resolve()
    chain = (*_chain, path.resolve())
    if base_path in chain:
        raise SpecError.at(doc.pos(("extends",)), f"`extends` cycle through {base_ref}")
    if len(chain) > MAX_EXTENDS:
        raise SpecError.at(doc.pos(("extends",)), "`extends` chain is too long")
    if not base_path.is_file():
        raise SpecError.at(doc.pos(("extends",)), f"base spec not found: {base_ref}")
    base = load_document(base_path, chain)
    return merge(base, doc)


def _load_file(path: Path, name: str) -> Document:
    try:
        if path.stat().st_size > MAX_BYTES:
            raise SpecError.at(Pos(name), f"file is larger than {MAX_BYTES} bytes")
        raw = path.read_bytes()
    except OSError as exc:
        raise SpecError.at(Pos(name), f"cannot read file: {exc.strerror}") from None
    return _parse_cached(raw, name)


@lru_cache(maxsize=64)
def _parse_cached(raw: bytes, name: str) -> Document:
    """Parse once per file content: base specs are shared by many children."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise SpecError.at(Pos(name, line, col), "file is not valid UTF-8") from None
    return parse_text(text, name)


def parse_text(text: str, name: str) -> Document:
    """Parse YAML text into a Document; YAML errors become located SpecErrors."""
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        pos = Pos(name, mark.line + 1, mark.column + 1) if mark else Pos(name)
        problem = exc.problem or exc.context or "invalid YAML"
        raise SpecError.at(pos, f"YAML syntax error: {problem}") from None
    except yaml.YAMLError as exc:
        raise SpecError.at(Pos(name, 1, 1), f"YAML error: {exc}") from None
    if root is None:
        raise SpecError.at(Pos(name, 1, 1), "file is empty")
    doc = Document(None, file=name)
    doc.data = _Converter(doc, name).convert(root, ())
    if not isinstance(doc.data, dict):
        raise SpecError.at(Pos(name, 1, 1), "a spec must be a mapping of keys to values")
    return doc


class _Converter:
    """Turns composed YAML nodes into plain data, recording positions."""

    def __init__(self, doc: Document, name: str):
        self.doc = doc
        self.name = name
        self.count = 0
        self.scalars = yaml.SafeLoader("")
        self.open: set[int] = set()  # nodes being converted: a recursive alias comes back

    def convert(self, node: yaml.Node, path: PathKey) -> Any:
        pos = self.at(node)
        self.count += 1
        if self.count > MAX_VALUES:
            raise SpecError.at(
                pos, f"document expands to more than {MAX_VALUES} values (runaway YAML aliases?)"
            )
        self.doc.positions[path] = pos
        kind = node.tag[len(_TAG) :] if node.tag.startswith(_TAG) else None
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, kind, pos)
        if id(node) in self.open:
            raise SpecError.at(pos, "recursive YAML alias: a value cannot contain itself")
        self.open.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode) and kind == "map":
                return self._mapping(node, path)
            if isinstance(node, yaml.SequenceNode) and kind == "seq":
                return [self.convert(item, (*path, i)) for i, item in enumerate(node.value)]
        finally:
            self.open.discard(id(node))
        raise SpecError.at(pos, f"YAML tag `{node.tag}` is not allowed: specs hold plain data only")

    def _scalar(self, node: yaml.ScalarNode, kind: str | None, pos: Pos) -> Any:
        """YAML 1.2 scalars: 1e-5 is a float; yes/no/on/off and dates stay strings."""
        if kind == "str" and not node.style and _FLOAT_12.match(node.value):
            return float(node.value)
        if kind in ("str", "int", "float", "null"):
            return self.scalars.construct_object(node)
        if kind == "bool":
            return _BOOLS.get(node.value, node.value)
        if kind == "timestamp":
            return node.value
        raise SpecError.at(pos, f"YAML tag `{node.tag}` is not allowed: specs hold plain data only")

    def _mapping(self, node: yaml.MappingNode, path: PathKey) -> dict:
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key_pos = self.at(key_node)
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _TAG + "merge":
                raise SpecError.at(key_pos, "mapping keys must be plain names")
            key = key_node.value
            if key in out:
                raise SpecError.at(key_pos, f"duplicate key `{key}`")
            self.doc.key_positions[(*path, key)] = key_pos
            out[key] = self.convert(value_node, (*path, key))
        return out

    def at(self, node: yaml.Node) -> Pos:
        return Pos(self.name, node.start_mark.line + 1, node.start_mark.column + 1)


def merge(base: Document, child: Document) -> Document:
    """Deep-merge `child` over `base`: mappings merge key by key, anything else replaces."""
    data = _merge_data(base.data, child.data)
    data.pop("extends", None)
    merged = Document(data, file=child.file)
    for table in ("positions", "key_positions"):
        for path, pos in getattr(base, table).items():
            getattr(merged, table)[path] = pos
    _prune(merged, data)
    for table in ("positions", "key_positions"):
        getattr(merged, table).update(getattr(child, table))
    return merged


def _merge_data(base: Any, child: Any) -> Any:
    if isinstance(base, dict) and isinstance(child, dict):
        out = dict(base)
        for key, value in child.items():
            out[key] = _merge_data(base[key], value) if key in base else value
        return out
    return child


def _prune(doc: Document, data: Any) -> None:
    """Drop base positions whose paths no longer exist in the merged data."""
    for table in (doc.positions, doc.key_positions):
        for path in [p for p in table if not _exists(data, p)]:
            del table[path]


def _exists(data: Any, path: PathKey) -> bool:
    for key in path:
        in_list = isinstance(data, list) and isinstance(key, int) and key < len(data)
        if in_list or (isinstance(data, dict) and key in data):
            data = data[key]
        else:
            return False
    return True
