"""Loading YAML safely, keeping the position of every key and value.

ruamel.yaml's round-trip loader records line and column numbers. We turn its tree into
plain Python data plus a table `positions[path] -> Pos`, refuse object-constructing tags,
bound alias expansion, and resolve `extends:` by deep-merging the base spec under the
child. Nothing here knows what a spec means; that is `spec.py`'s job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from archspec.errors import Pos, SpecError

MAX_BYTES = 2_000_000
MAX_VALUES = 200_000
MAX_EXTENDS = 16
_STANDARD_TAG = "tag:yaml.org,2002:"
_PLAIN_TAGS = {"str", "int", "float", "bool", "null", "map", "seq", "omap"}

PathKey = tuple[Any, ...]


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
    name = display_path(path)
    doc = _load_file(path, name)
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
        raw = path.read_bytes()
    except OSError as exc:
        raise SpecError.at(Pos(name), f"cannot read file: {exc.strerror}") from None
    if len(raw) > MAX_BYTES:
        raise SpecError.at(Pos(name), f"file is larger than {MAX_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise SpecError.at(Pos(name, line, col), "file is not valid UTF-8") from None
    return parse_text(text, name)


def parse_text(text: str, name: str) -> Document:
    """Parse YAML text into a Document; YAML errors become located SpecErrors."""
    yaml = YAML(typ="rt", pure=True)
    try:
        tree = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        pos = Pos(name, mark.line + 1, mark.column + 1) if mark else Pos(name)
        problem = exc.problem or exc.context or "invalid YAML"
        raise SpecError.at(pos, f"YAML syntax error: {problem}") from None
    except YAMLError as exc:
        raise SpecError.at(Pos(name, 1, 1), f"YAML error: {exc}") from None
    if tree is None:
        raise SpecError.at(Pos(name, 1, 1), "file is empty")
    doc = Document(None, file=name)
    doc.data = _Converter(doc, name).convert(tree, (), Pos(name, 1, 1))
    if not isinstance(doc.data, dict):
        raise SpecError.at(Pos(name, 1, 1), "a spec must be a mapping of keys to values")
    return doc


class _Converter:
    """Turns ruamel's commented tree into plain data, recording positions."""

    def __init__(self, doc: Document, name: str):
        self.doc = doc
        self.name = name
        self.count = 0

    def convert(self, node: Any, path: PathKey, pos: Pos) -> Any:
        self.count += 1
        if self.count > MAX_VALUES:
            raise SpecError.at(pos, f"document expands to more than {MAX_VALUES} values "
                               "(runaway YAML aliases?)")
        self._check_tag(node, pos)
        self.doc.positions[path] = pos
        if isinstance(node, CommentedMap):
            return self._mapping(node, path)
        if isinstance(node, CommentedSeq):
            return [
                self.convert(item, (*path, i), self._at(node.lc.item(i)))
                for i, item in enumerate(node)
            ]
        return _scalar(node)

    def _mapping(self, node: CommentedMap, path: PathKey) -> dict:
        out = {}
        for key, value in node.items():
            key_pos = self._at(node.lc.key(key))
            if not isinstance(key, (str, int)) or isinstance(key, bool):
                raise SpecError.at(key_pos, f"mapping keys must be names, got {key!r}")
            key = str(key)
            self.doc.key_positions[(*path, key)] = key_pos
            out[key] = self.convert(value, (*path, key), self._at(node.lc.value(key)))
        return out

    def _at(self, line_col) -> Pos:
        line, col = line_col if line_col else (0, 0)
        return Pos(self.name, line + 1, col + 1)

    def _check_tag(self, node: Any, pos: Pos) -> None:
        tag = getattr(node, "tag", None)
        value = getattr(tag, "value", tag)
        if not value:
            return
        value = str(value)
        if value.startswith(_STANDARD_TAG) and value[len(_STANDARD_TAG):] in _PLAIN_TAGS:
            return
        raise SpecError.at(pos, f"YAML tag `{value}` is not allowed: specs hold plain data only")


def _scalar(node: Any) -> Any:
    if node is None or isinstance(node, (bool, int, float, str)):
        # ruamel's scalar subclasses (ScalarFloat, ...) become plain Python values
        if isinstance(node, bool) or node is None:
            return node
        for kind in (int, float, str):
            if isinstance(node, kind):
                return kind(node)
    raise SpecError.at(Pos("?"), f"unsupported YAML value {node!r}")


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
        if isinstance(data, dict) and key in data:
            data = data[key]
        elif isinstance(data, list) and isinstance(key, int) and key < len(data):
            data = data[key]
        else:
            return False
    return True
