"""Loading YAML safely, keeping the position of every key and value.

The spec file is read only if it is a regular file, and never past its size limit. PyYAML's
parser (libyaml's, when available) turns it into a stream of events with line and column
marks; we build plain Python data from those events ourselves, without recursion, plus a
table `positions[path] -> Pos`. Every non-standard tag (`!!python/object` and friends) is
refused, alias expansion and nesting are bounded, and `extends:` is resolved by
deep-merging the base spec under the child. Nothing here knows what a spec means; that is
`spec.py`'s job.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from archspec.errors import LimitError, Pos, SpecError, shorten

MAX_BYTES = 2_000_000  # one file, and a spec with every file it extends
MAX_VALUES = 50_000  # values of a document, aliases expanded, and of an `extends` chain
MAX_NESTING = 100  # lists and mappings inside each other
MAX_EXTENDS = 16
MAX_INT_DIGITS = 4_300  # Python's own limit for converting integers to and from text
_CACHED_BYTES = 20_000  # base specs are parsed once per process; big files are not kept
_TAG = "tag:yaml.org,2002:"
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# YAML 1.2 booleans only: `yes`, `no`, `on`, `off` stay strings (no "Norway problem")
_BOOLS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_FLOAT_12 = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)[eE][-+]?[0-9]+$")
_BIG_INT = 10**MAX_INT_DIGITS
# non-blocking: a pipe swapped in after the type check does not wait for a writer
_OPEN_FLAGS = os.O_RDONLY | sum(getattr(os, f, 0) for f in ("O_NONBLOCK", "O_NOCTTY", "O_BINARY"))
_FILE_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a pipe"),
    (stat.S_ISSOCK, "a socket"),
)

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
    values: int = 0  # how many values the data holds, aliases expanded
    size: int = 0  # bytes read, with every file it extends

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
    except (ValueError, OSError, RuntimeError):  # elsewhere, a symlink loop, a bad name
        return str(path)


def load_document(path: Path) -> Document:
    """Load a spec file and everything it extends, merged into one Document.

    The spec and the files it extends are read as one input: at most MAX_BYTES and
    MAX_VALUES in all, however they are split between files.
    """
    return _load(os.path.realpath(path), path.parent, Pos(display_path(path)), None, (), 0, 0)


def _load(
    real: str, parent: Path, where: Pos, base: str | None, chain: tuple, size: int, values: int
) -> Document:
    """Load one file of an `extends` chain (`where`: what errors about the file point to)."""
    raw = read_regular_file(real, where, base, MAX_BYTES - size)
    name = where.file if not chain else display_path(Path(real))
    doc = _parse_cached(raw, name) if len(raw) <= _CACHED_BYTES else _parse(raw, name)
    size, values = size + len(raw), values + doc.values
    if values > MAX_VALUES:
        raise LimitError.at(
            where, f"`extends`: the spec and its bases hold more than {MAX_VALUES:,} values in all"
        )
    base_ref = doc.data.get("extends")
    if base_ref is None:
        return doc
    where = doc.pos(("extends",))
    if not isinstance(base_ref, str) or not base_ref:
        raise SpecError.at(where, "`extends` must be a file path")
    if "\0" in base_ref:
        raise SpecError.at(where, "`extends`: a file path cannot contain a NUL character")
    base_path = parent / base_ref
    base_real = os.path.realpath(base_path)
    chain = (*chain, real)
    if base_real in chain:
        raise SpecError.at(where, f"`extends` cycle through {shorten(base_ref)}")
    if len(chain) > MAX_EXTENDS:
        raise SpecError.at(where, f"`extends` chain is longer than {MAX_EXTENDS} files")
    base = _load(base_real, Path(base_real).parent, where, base_ref, chain, size, values)
    return merge(base, doc)


def read_regular_file(path: str, where: Pos, base: str | None, limit: int) -> bytes:
    """The bytes of a regular file, at most `limit` of them: never a device, pipe or folder.

    `base` is how the spec names a base file (None for the spec itself). The type is checked
    before opening and again on the open file, which is opened non-blocking (a pipe swapped
    in between never blocks); at most `limit + 1` bytes are read whatever the size says.
    """
    what = "file" if base is None else f"base spec {shorten(base)}"
    try:
        _must_be_regular(os.stat(path), where, what)
        fd = os.open(path, _OPEN_FLAGS)
        try:
            _must_be_regular(os.fstat(fd), where, what)
            raw = _read_at_most(fd, limit + 1)
        finally:
            os.close(fd)
    except OSError as exc:
        if base is not None and exc.errno == errno.ENOENT:
            raise SpecError.at(where, f"base spec not found: {shorten(base)}") from None
        raise SpecError.at(where, f"cannot read {what}: {exc.strerror or exc}") from None
    except ValueError as exc:  # a name the OS cannot take
        raise SpecError.at(where, f"cannot read {what}: {shorten(str(exc))}") from None
    if len(raw) > limit:
        if base is None:
            raise LimitError.at(where, f"file is larger than {MAX_BYTES} bytes")
        raise LimitError.at(
            where, f"`extends`: the spec and its bases are larger than {MAX_BYTES} bytes in all"
        )
    return raw


def _must_be_regular(info: os.stat_result, where: Pos, what: str) -> None:
    if not stat.S_ISREG(info.st_mode):
        kind = next((k for test, k in _FILE_KINDS if test(info.st_mode)), "not a file")
        raise SpecError.at(where, f"{what} is {kind}, not a regular file")


def _read_at_most(fd: int, count: int) -> bytes:
    chunks, size = [], 0
    while size < count:
        chunk = os.read(fd, min(count - size, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


@lru_cache(maxsize=32)
def _parse_cached(raw: bytes, name: str) -> Document:
    """Parse once per file content: base specs are shared by many children."""
    return _parse(raw, name)


def _parse(raw: bytes, name: str) -> Document:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise SpecError.at(Pos(name, line, col), "file is not valid UTF-8") from None
    doc = parse_text(text, name)
    doc.size = len(raw)
    return doc


def parse_text(text: str, name: str) -> Document:
    """Parse YAML text into a Document; YAML errors become located SpecErrors."""
    builder = _Builder(name)
    try:
        for event in yaml.parse(text, Loader=_Loader):
            builder.feed(event)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        pos = Pos(name, mark.line + 1, mark.column + 1) if mark else Pos(name)
        problem = exc.problem or exc.context or "invalid YAML"
        raise SpecError.at(pos, f"YAML syntax error: {problem}") from None
    except yaml.YAMLError as exc:
        raise SpecError.at(Pos(name, 1, 1), f"YAML error: {shorten(str(exc))}") from None
    if not builder.documents:
        raise SpecError.at(Pos(name, 1, 1), "file is empty")
    if not isinstance(builder.root, dict):
        raise SpecError.at(Pos(name, 1, 1), "a spec must be a mapping of keys to values")
    doc = Document(builder.root, file=name, values=builder.count)
    doc.positions = dict(builder.log)
    doc.key_positions = dict(builder.key_log)
    return doc


@dataclass
class _Open:
    """A list or mapping being built, with the path of its next item."""

    value: list | dict
    path: PathKey
    anchor: str | None
    start: tuple[int, int, int]  # value count and log lengths when it opened
    key: str | None = None  # a mapping's key waiting for its value
    height: int = 1  # lists and mappings nested in it, itself included


@dataclass(frozen=True)
class _Anchor:
    """A finished anchored value: what an alias to it expands to."""

    value: Any
    values: int
    height: int  # lists and mappings nested in the value, itself included (0: a scalar)
    log: tuple[tuple[PathKey, Pos], ...]
    key_log: tuple[tuple[PathKey, Pos], ...]
    text: str | None = None  # a scalar's text, as a key written `*alias :` takes it


class _Builder:
    """Builds plain data from YAML events, iteratively, recording positions.

    Each value is counted (an alias counts every value it expands to), so expansion stops
    at MAX_VALUES before it costs anything; nesting stops at MAX_NESTING.
    """

    def __init__(self, name: str):
        self.name = name
        self.count = 0
        self.documents = 0
        self.root: Any = None
        self.stack: list[_Open] = []
        self.log: list[tuple[PathKey, Pos]] = []
        self.key_log: list[tuple[PathKey, Pos]] = []
        self.anchors: dict[str, _Anchor | None] = {}  # None: still open (an alias is recursive)
        self.resolver = yaml.resolver.Resolver()
        self.constructor = yaml.constructor.SafeConstructor()
        self.handlers = {
            yaml.DocumentStartEvent: self.document,
            yaml.ScalarEvent: self.scalar,
            yaml.SequenceStartEvent: self.start,
            yaml.MappingStartEvent: self.start,
            yaml.SequenceEndEvent: self.end,
            yaml.MappingEndEvent: self.end,
            yaml.AliasEvent: self.alias,
        }

    def feed(self, event: yaml.Event) -> None:
        """Take one parse event."""
        handler = self.handlers.get(type(event))
        if handler is not None:
            handler(event)

    def document(self, event: yaml.DocumentStartEvent) -> None:
        if self.documents:
            raise SpecError.at(self.at(event), "YAML syntax error: but found another document")
        self.documents += 1

    def wants_key(self) -> bool:
        return (
            bool(self.stack)
            and isinstance(self.stack[-1].value, dict)
            and self.stack[-1].key is None
        )

    def at(self, event: yaml.Event) -> Pos:
        mark = event.start_mark
        return Pos(self.name, mark.line + 1, mark.column + 1)

    def next_path(self) -> PathKey:
        if not self.stack:
            return ()
        top = self.stack[-1]
        return (*top.path, top.key if isinstance(top.value, dict) else len(top.value))

    def counted(self, pos: Pos, values: int = 1) -> None:
        self.count += values
        if self.count > MAX_VALUES:
            raise LimitError.at(
                pos, f"document expands to more than {MAX_VALUES:,} values (runaway YAML aliases?)"
            )

    def place(self, value: Any, height: int = 0) -> None:
        if not self.stack:
            self.root = value
            return
        top = self.stack[-1]
        top.height = max(top.height, height + 1)
        if isinstance(top.value, dict):
            top.value[top.key] = value
            top.key = None
        else:
            top.value.append(value)

    def open_anchor(self, event: yaml.NodeEvent, pos: Pos) -> None:
        if event.anchor is None:
            return
        if event.anchor in self.anchors:
            raise SpecError.at(pos, f"YAML anchor `&{shorten(event.anchor)}` is defined twice")
        self.anchors[event.anchor] = None

    def close_anchor(self, done: _Open) -> None:
        cut = len(done.path)
        self.anchors[done.anchor] = _Anchor(
            done.value,
            self.count - done.start[0],
            done.height,
            tuple((p[cut:], pos) for p, pos in self.log[done.start[1] :]),
            tuple((p[cut:], pos) for p, pos in self.key_log[done.start[2] :]),
        )

    # -- events --------------------------------------------------------------------------
    def key(self, event: yaml.ScalarEvent) -> None:
        pos = self.at(event)
        plain = event.tag is None and event.implicit[0]
        if (plain and event.value == "<<") or event.tag == _TAG + "merge":
            raise SpecError.at(pos, "mapping keys must be plain names")
        self.open_anchor(event, pos)
        if event.anchor is not None:
            self.anchors[event.anchor] = _Anchor(event.value, 1, 0, (((), pos),), (), event.value)
        self.set_key(event.value, pos)

    def set_key(self, key: str, pos: Pos) -> None:
        top = self.stack[-1]
        if key in top.value:
            raise SpecError.at(pos, f"duplicate key `{shorten(key)}`")
        self.key_log.append(((*top.path, key), pos))
        top.key = key

    def scalar(self, event: yaml.ScalarEvent) -> None:
        if self.wants_key():
            self.key(event)
            return
        pos = self.at(event)
        path = self.next_path()
        self.counted(pos)
        self.log.append((path, pos))
        self.open_anchor(event, pos)
        value = self.convert_scalar(event, pos)
        if event.anchor is not None:
            self.anchors[event.anchor] = _Anchor(value, 1, 0, (((), pos),), (), event.value)
        self.place(value)

    def start(self, event: yaml.CollectionStartEvent) -> None:
        pos = self.at(event)
        if self.wants_key():
            raise SpecError.at(pos, "mapping keys must be plain names")
        is_map = isinstance(event, yaml.MappingStartEvent)
        tag = event.tag
        if tag not in (None, "!", _TAG + ("map" if is_map else "seq")):
            raise SpecError.at(
                pos, f"YAML tag `{shorten(tag)}` is not allowed: specs hold plain data only"
            )
        if len(self.stack) >= MAX_NESTING:
            raise LimitError.at(pos, f"YAML nested more than {MAX_NESTING} levels deep")
        path = self.next_path()
        self.counted(pos)
        self.log.append((path, pos))
        self.open_anchor(event, pos)
        start = (self.count - 1, len(self.log) - 1, len(self.key_log))
        self.stack.append(_Open({} if is_map else [], path, event.anchor, start))

    def end(self, event: yaml.CollectionEndEvent) -> None:
        done = self.stack.pop()
        if done.anchor is not None:
            self.close_anchor(done)
        self.place(done.value, done.height)

    def alias(self, event: yaml.AliasEvent) -> None:
        pos = self.at(event)
        name = event.anchor
        if name not in self.anchors:
            raise SpecError.at(pos, f"YAML syntax error: found undefined alias `{shorten(name)}`")
        anchor = self.anchors[name]
        if self.wants_key():  # `*name : value`: the anchored scalar's text is the key
            if anchor is None or anchor.text is None:
                raise SpecError.at(pos, "mapping keys must be plain names")
            self.set_key(anchor.text, anchor.log[0][1])  # placed where the anchor is
            return
        if anchor is None:
            raise SpecError.at(pos, "recursive YAML alias: a value cannot contain itself")
        if len(self.stack) + anchor.height > MAX_NESTING:
            raise LimitError.at(pos, f"YAML nested more than {MAX_NESTING} levels deep")
        self.counted(pos, anchor.values)
        path = self.next_path()
        self.log.extend(((*path, *p), at) for p, at in anchor.log)
        self.key_log.extend(((*path, *p), at) for p, at in anchor.key_log)
        self.place(anchor.value, anchor.height)

    def convert_scalar(self, event: yaml.ScalarEvent, pos: Pos) -> Any:
        """YAML 1.2 scalars: 1e-5 is a float; yes/no/on/off and dates stay strings."""
        tag = event.tag
        if tag is None or tag == "!":
            tag = self.resolver.resolve(yaml.ScalarNode, event.value, event.implicit)
        kind = tag[len(_TAG) :] if tag.startswith(_TAG) else None
        value = event.value
        if kind == "str":
            return float(value) if not event.style and _FLOAT_12.match(value) else value
        if kind == "null":
            return None
        if kind == "bool":
            return _BOOLS.get(value, value)
        if kind == "timestamp":
            return value
        if kind == "int":
            return self.integer(value, pos)
        if kind == "float":
            return self.constructor.construct_yaml_float(yaml.ScalarNode(tag, value))
        raise SpecError.at(
            pos, f"YAML tag `{shorten(tag)}` is not allowed: specs hold plain data only"
        )

    def integer(self, text: str, pos: Pos) -> int:
        too_big = f"integer with more than {MAX_INT_DIGITS:,} digits"
        if len(text) > MAX_INT_DIGITS:  # before converting: Python refuses, and base 60 is slow
            raise LimitError.at(pos, too_big)
        if text.isdigit() and (text[0] != "0" or text == "0"):
            return int(text)  # the common case; YAML 1.1's octal, hex, `_` and base 60 below
        try:
            value = self.constructor.construct_yaml_int(yaml.ScalarNode(_TAG + "int", text))
        except ValueError:
            raise LimitError.at(pos, too_big) from None
        if abs(value) >= _BIG_INT:  # 0x... of 4,000 hex digits
            raise LimitError.at(pos, too_big)
        return value


def merge(base: Document, child: Document) -> Document:
    """Deep-merge `child` over `base`: mappings merge key by key, anything else replaces.

    The base's positions under a replaced value are dropped; the work is proportional to
    what is replaced, so long `extends` chains of big files stay linear.
    """
    replaced: list[tuple[PathKey, Any]] = []
    data = _merge_data(base.data, child.data, (), replaced)
    data.pop("extends", None)
    merged = Document(data, file=child.file)
    merged.positions = dict(base.positions)
    merged.key_positions = dict(base.key_positions)
    for path, old in replaced:
        for sub in _paths(old, path):
            merged.positions.pop(sub, None)
            merged.key_positions.pop(sub, None)
    merged.positions.pop(("extends",), None)
    merged.key_positions.pop(("extends",), None)
    merged.positions.update(child.positions)
    merged.key_positions.update(child.key_positions)
    merged.values = base.values + child.values
    merged.size = base.size + child.size
    return merged


def _merge_data(base: Any, child: Any, path: PathKey, replaced: list) -> Any:
    if isinstance(base, dict) and isinstance(child, dict):
        out = dict(base)
        for key, value in child.items():
            if key in base:
                out[key] = _merge_data(base[key], value, (*path, key), replaced)
            else:
                out[key] = value
        return out
    replaced.append((path, base))
    return child


def _paths(data: Any, prefix: PathKey):
    """Every path to a value inside nested dicts and lists, without recursion."""
    pending = [(prefix, data)]
    while pending:
        path, value = pending.pop()
        yield path
        if isinstance(value, dict):
            pending.extend(((*path, k), v) for k, v in value.items())
        elif isinstance(value, list):
            pending.extend(((*path, i), v) for i, v in enumerate(value))
